"""Releases and their restore points: the snapshot to go back to if a release fails.

`guard pre-deploy` records, before a release is deployed, which snapshot of the
tenant is its restore point: a complete snapshot, recent enough, whose drill passed.
The record is a small JSON document in the repository, under
`releases/<tenant hash>/<release hash>.json`, read and written through the
repository's document methods.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from odoo_dr import __version__
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.engine.migration import MigrationPlan
from odoo_dr.engine.retention import MAX_AGE_DAYS
from odoo_dr.engine.verify import verify
from odoo_dr.errors import RejectedError, RepositoryError, VerificationFailed
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.crypto import RepositoryKeys
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

# Environment variables that name the release when --release is not given, in
# order of preference. GitHub's GITHUB_REF_NAME is a tag only when GITHUB_REF_TYPE
# is "tag".
RELEASE_VARIABLES = (
    "ODOO_DR_RELEASE",
    "CI_COMMIT_TAG",
    "GITHUB_REF_NAME",
    "CI_COMMIT_SHA",
    "GITHUB_SHA",
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RestorePoint(BaseModel):
    """The snapshot a release goes back to, recorded before its deployment."""

    format: str = "odoo-dr-restore-point"
    version: int = 1
    tenant: str
    release: str
    release_source: str = Field(description="--release or the environment variable")
    recorded_at: datetime
    snapshot_id: str
    snapshot_time: datetime
    database: str
    drill_id: str
    modules: dict[str, str | None] = Field(description="the snapshot's modules")
    migration: MigrationPlan | None = None
    tool_version: str = __version__


def parse_duration(text: str) -> timedelta:
    """Return a duration written as a number with an optional unit: 90s, 15m, 2h, 1d."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise RejectedError(
            f"invalid duration {text!r}",
            hint="write a number with s, m, h or d, such as 15m",
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_AGE_DAYS * 86400:
        raise RejectedError(
            f"invalid duration {text!r}: longer than {MAX_AGE_DAYS} days",
            hint=f"write at most {MAX_AGE_DAYS}d",
        )
    return timedelta(seconds=seconds)


def resolve_release(explicit: str | None) -> tuple[str, str]:
    """Return the release name and where it came from.

    The order is --release, $ODOO_DR_RELEASE, $CI_COMMIT_TAG (GitLab),
    $GITHUB_REF_NAME when $GITHUB_REF_TYPE is tag, $CI_COMMIT_SHA (GitLab), then
    $GITHUB_SHA.
    """
    if explicit:
        return _check_release(explicit), "--release"
    for name in RELEASE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if name == "GITHUB_REF_NAME" and os.environ.get("GITHUB_REF_TYPE") != "tag":
            continue
        if value:
            return _check_release(value), f"${name}"
    raise RejectedError(
        "no release name: --release is not given and none of "
        f"{', '.join('$' + name for name in RELEASE_VARIABLES)} is set",
        hint="pass --release with the Git tag or commit being deployed",
    )


def _check_release(name: str) -> str:
    if len(name) > 200 or any(ord(char) < 32 for char in name):
        raise RejectedError(
            f"invalid release name {name!r}",
            hint="use up to 200 printable characters, such as a Git tag or commit",
        )
    return name


def _digest(text: str, purpose: str, keys: RepositoryKeys | None) -> str:
    if keys is not None:
        return keys.name(purpose, text)[:32]
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def restore_point_key(
    tenant: str, release: str, keys: RepositoryKeys | None = None
) -> str:
    """Return the document key of a restore point.

    An encrypted repository (`keys` given) names it by keyed hashes, so its path
    does not confirm a guessed tenant or release name.
    """
    tenant_part = _digest(tenant, "release tenant", keys)
    release_part = _digest(release, "release", keys)
    return f"releases/{tenant_part}/{release_part}.json"


def load_restore_point(
    repository: Repository, tenant: str, release: str
) -> RestorePoint | None:
    """Return the restore point recorded for `release` of `tenant`, or None."""
    key = restore_point_key(tenant, release, repository.keys)
    try:
        raw = repository.read_document(key)
    except ObjectNotFound:
        if repository.keys is None:
            return None
        # Encrypted repositories of earlier versions named restore points by
        # plain SHA-256 hashes.
        key = restore_point_key(tenant, release)
        try:
            raw = repository.read_document(key)
        except ObjectNotFound:
            return None
    try:
        point = RestorePoint.model_validate_json(raw)
    except ValidationError as exc:
        raise RepositoryError(
            f"restore point of release {release!r} of {tenant!r} is damaged "
            f"({repository.location}/{key}): {exc.errors()[0]['msg']}",
            hint="run 'odoo-dr guard pre-deploy --replace' to record it again",
        ) from None
    if point.tenant != tenant or point.release != release:
        raise RepositoryError(
            f"restore point {repository.location}/{key} names release "
            f"{point.release!r} of {point.tenant!r}, not {release!r} of {tenant!r}"
        )
    return point


def latest_restore_points(repository: Repository) -> dict[str, RestorePoint]:
    """Return, by tenant, the restore point recorded last (the one a rollback needs).

    A restore point that cannot be read is logged and left out.
    """
    latest: dict[str, RestorePoint] = {}
    for key in sorted(repository.backend.list("releases/")):
        if not key.endswith(".json"):
            continue
        try:
            point = RestorePoint.model_validate_json(repository.read_document(key))
        except (ValidationError, RepositoryError, ObjectNotFound) as exc:
            reason = exc.message if isinstance(exc, RepositoryError) else str(exc)
            log.warning("skipping unreadable restore point %s: %s", key, reason)
            continue
        known = latest.get(point.tenant)
        if known is None or point.recorded_at > known.recorded_at:
            latest[point.tenant] = point
    return latest


def save_restore_point(repository: Repository, point: RestorePoint) -> None:
    repository.write_document(
        restore_point_key(point.tenant, point.release, repository.keys),
        point.model_dump_json(indent=1).encode("utf-8"),
    )


@dataclass
class PreDeployOptions:
    tenant: str
    release: str
    release_source: str
    max_age: timedelta
    take: bool = False
    database: str | None = None
    filestore_root: Path | None = None
    filestore_root_source: str | None = None
    jobs: int = 2
    temp_dir: Path | None = None


def passed_drill(
    repository: Repository, manifest: SnapshotManifest
) -> DrillRecord | None:
    """Return the latest passed drill of `manifest`, or None."""
    drills = [
        record
        for record in repository.list_drills(manifest.tenant)
        if record.snapshot_id == manifest.id and record.passed
    ]
    return max(drills, key=lambda record: record.finished_at, default=None)


def snapshot_problems(repository: Repository, manifest: SnapshotManifest) -> list[str]:
    """Return why `manifest` is not a complete snapshot: chunks missing, for one."""
    report = verify(repository, manifest.tenant)
    for item in report.snapshots:
        if item.snapshot_id == manifest.id:
            return item.problems
    return [f"snapshot {manifest.id} not found by verify"]


def _why_unusable(
    repository: Repository,
    manifest: SnapshotManifest,
    max_age: timedelta,
    now: datetime,
) -> str | None:
    age = now - manifest.snapshot_time
    if age > max_age:
        return (
            f"the latest snapshot {manifest.id} of {manifest.tenant!r} is "
            f"{_minutes(age)} old, more than --max-age {_minutes(max_age)}"
        )
    if passed_drill(repository, manifest) is None:
        return f"snapshot {manifest.id} of {manifest.tenant!r} has no passed drill"
    return None


def _minutes(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m"


def choose_snapshot(
    repository: Repository, settings: PgSettings, options: PreDeployOptions
) -> tuple[SnapshotManifest, DrillRecord]:
    """Return the snapshot to record and its passed drill, taking both with --take.

    Raises `RejectedError` when no snapshot qualifies and `--take` was not given,
    and `VerificationFailed` when the snapshot taken now fails its drill.
    """
    now = datetime.now(UTC)
    latest = repository.latest_snapshot(options.tenant)
    reason = (
        f"tenant {options.tenant!r} has no snapshot"
        if latest is None
        else _why_unusable(repository, latest, options.max_age, now)
    )
    if latest is not None and reason is None:
        drill = passed_drill(repository, latest)
        assert drill is not None
        return latest, drill
    if not options.take:
        raise RejectedError(
            f"release {options.release!r} blocked: {reason}",
            hint="back up and drill the tenant first, or run pre-deploy with --take",
        )
    log.info("%s; taking a snapshot and drilling it (--take)", reason)
    if options.filestore_root is None:
        raise RejectedError("--take needs the filestore root")
    database = options.database or (
        latest.database.name if latest is not None else options.tenant
    )
    manifest = run_backup(
        repository,
        settings,
        BackupOptions(
            database=database,
            tenant=options.tenant,
            filestore_root=options.filestore_root,
            filestore_root_source=options.filestore_root_source,
            jobs=options.jobs,
            temp_dir=options.temp_dir,
            labels={"release": options.release, "purpose": "pre-deploy"},
        ),
    )
    record = run_drill(
        repository,
        settings,
        manifest,
        DrillOptions(jobs=options.jobs, temp_dir=options.temp_dir),
    )
    if not record.passed:
        failed = [check.name for check in record.checks if not check.passed]
        raise VerificationFailed(
            f"release {options.release!r} blocked: the drill {record.id} of the new "
            f"snapshot {manifest.id} failed"
            + (f" ({', '.join(failed)})" if failed else "")
            + (f": {record.error}" if record.error else ""),
            hint=f"see the drill with: odoo-dr drill {manifest.id}",
        )
    return manifest, record


def record_restore_point(
    repository: Repository,
    options: PreDeployOptions,
    manifest: SnapshotManifest,
    drill: DrillRecord,
    migration: MigrationPlan | None,
) -> RestorePoint:
    problems = snapshot_problems(repository, manifest)
    if problems:
        raise VerificationFailed(
            f"release {options.release!r} blocked: snapshot {manifest.id} is not "
            f"complete: {'; '.join(problems[:5])}",
            hint="run 'odoo-dr verify' and take a new backup",
        )
    point = RestorePoint(
        tenant=options.tenant,
        release=options.release,
        release_source=options.release_source,
        recorded_at=datetime.now(UTC),
        snapshot_id=manifest.id,
        snapshot_time=manifest.snapshot_time,
        database=manifest.database.name,
        drill_id=drill.id,
        modules=manifest.odoo.modules,
        migration=migration,
    )
    save_restore_point(repository, point)
    log.info(
        "recorded restore point of release %r of %r: snapshot %s",
        point.release,
        point.tenant,
        point.snapshot_id,
    )
    return point
