"""Roll a tenant back to the restore point of a release.

The steps: a safety snapshot of the current state, then a restore of the restore
point's snapshot over the tenant as a move (the identity is kept), filestore
included, then the post-deploy checks. The restore is the ordinary one: it builds
in a hidden database and swaps it into place with a journal, so the tenant is
never half restored. What the rollback discarded is the difference between the
safety snapshot's row counts and the restore point's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.checks import check_modules
from odoo_dr.engine.post_deploy import LiveCheckOptions, run_live_checks
from odoo_dr.engine.release import RestorePoint
from odoo_dr.engine.restore import RestoreOptions, execute_restore, plan_restore
from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.odoo.identity import read_identity
from odoo_dr.pg.connection import PgSettings
from odoo_dr.pg.server import database_exists
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.manifest import CheckResult, SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.timing import StepTimer

log = logging.getLogger(__name__)


@dataclass
class RollbackOptions:
    filestore_root: Path
    database: str | None = None
    safety_snapshot: bool = True
    check_sql: list[Path] = field(default_factory=list)
    jobs: int = 2
    temp_dir: Path | None = None


@dataclass
class TableChange:
    table: str
    discarded: int
    restore_point: int

    @property
    def difference(self) -> int:
        return self.discarded - self.restore_point


@dataclass
class RollbackResult:
    point: RestorePoint
    database: str
    safety_snapshot: str | None
    checks: list[CheckResult]
    # Per table, rows in the state that was discarded and in the restore point, for
    # tables whose count differs.
    discarded_rows: list[TableChange]
    discarded_files: tuple[int, int] | None
    identity_kept: bool
    steps: dict[str, float]
    # The restore's own steps, such as "restore database and files".
    restore_steps: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _identity(settings: PgSettings, database: str) -> dict[str, str]:
    with settings.connect(database) as connection:
        with connection.cursor() as cursor:
            return read_identity(cursor)


def compare_row_counts(
    discarded: SnapshotManifest, restored: SnapshotManifest
) -> list[TableChange]:
    """Return the tables whose row count differs between the two snapshots."""
    changes = []
    for table in sorted(set(discarded.row_counts) | set(restored.row_counts)):
        before = discarded.row_counts.get(table, 0)
        after = restored.row_counts.get(table, 0)
        if before != after:
            changes.append(TableChange(table, before, after))
    return changes


def _identity_check(
    before: dict[str, str], after: dict[str, str], manifest: SnapshotManifest
) -> CheckResult:
    problems = []
    if manifest.odoo.uuid and after.get("database.uuid") != manifest.odoo.uuid:
        problems.append(
            f"database.uuid is {after.get('database.uuid')}, the restore point had "
            f"{manifest.odoo.uuid}"
        )
    for key in ("database.uuid", "database.secret"):
        if before and before.get(key) != after.get(key):
            # The values are not shown: database.secret signs Odoo's sessions.
            problems.append(f"{key} changed during the rollback")
    return CheckResult(
        name="identity kept",
        passed=not problems,
        summary="database.uuid and database.secret are the tenant's own"
        if not problems
        else "the rolled-back database has another identity",
        problems=problems,
    )


def run_rollback(
    repository: Repository,
    settings: PgSettings,
    point: RestorePoint,
    options: RollbackOptions,
) -> RollbackResult:
    """Roll the tenant of `point` back to it; see the module's description."""
    try:
        manifest = repository.load_snapshot(point.snapshot_id)
    except ObjectNotFound:
        raise RejectedError(
            f"the restore point of release {point.release!r} of {point.tenant!r} is "
            f"snapshot {point.snapshot_id}, which is no longer in repository "
            f"{repository.location}",
            hint="nothing was changed; restore another snapshot with 'odoo-dr "
            "restore --move', and record the next release's restore point with "
            "'odoo-dr guard pre-deploy'",
        ) from None
    database = options.database or point.database
    timer = StepTimer()
    exists = database_exists(settings, database)
    before = _identity(settings, database) if exists else {}

    safety: SnapshotManifest | None = None
    if options.safety_snapshot and exists:
        with timer.step("safety snapshot"):
            try:
                safety = run_backup(
                    repository,
                    settings,
                    BackupOptions(
                        database=database,
                        tenant=point.tenant,
                        filestore_root=options.filestore_root,
                        jobs=options.jobs,
                        temp_dir=options.temp_dir,
                        labels={"release": point.release, "purpose": "before-rollback"},
                    ),
                )
            except OdooDrError as exc:
                fallback = (
                    "nothing was restored. Fix the cause, or roll back without a "
                    "safety snapshot (--no-safety-snapshot), which loses what the "
                    "rollback replaces"
                )
                exc.hint = f"{exc.hint}. {fallback}" if exc.hint else fallback
                raise
        log.info("safety snapshot %s of %r", safety.id, database)

    plan = plan_restore(
        repository,
        settings,
        manifest,
        RestoreOptions(
            target=database,
            filestore_root=options.filestore_root,
            mode="move",
            force=True,
            jobs=options.jobs,
            temp_dir=options.temp_dir,
        ),
    )
    restore_timer = StepTimer()
    with timer.step("restore"):
        execute_restore(repository, settings, plan, restore_timer)

    with timer.step("checks"):
        with settings.connect(database) as connection:
            checks = run_live_checks(
                connection,
                LiveCheckOptions(
                    filestore_folder=options.filestore_root / database,
                    check_sql=options.check_sql,
                    jobs=options.jobs,
                ),
            )
            checks.insert(1, check_modules(connection, manifest))
            after = _identity_read(connection)
            checks.append(_identity_check(before, after, manifest))
            connection.rollback()

    discarded_files = None
    discarded_rows: list[TableChange] = []
    if safety is not None:
        discarded_rows = compare_row_counts(safety, manifest)
        discarded_files = (
            safety.filestore.referenced_files,
            manifest.filestore.referenced_files,
        )
    return RollbackResult(
        point=point,
        database=database,
        safety_snapshot=safety.id if safety is not None else None,
        checks=checks,
        discarded_rows=discarded_rows,
        discarded_files=discarded_files,
        identity_kept=checks[-1].passed,
        steps=timer.steps,
        restore_steps=restore_timer.steps,
    )


def _identity_read(connection: psycopg.Connection) -> dict[str, str]:
    with connection.cursor() as cursor:
        return read_identity(cursor)
