"""The pre-checks of a restore: everything is checked before anything changes."""

from __future__ import annotations

import grp
import json
import pwd
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
from pydantic import ValidationError

from odoo_dr.errors import RejectedError, SnapshotDamaged
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import server_version
from odoo_dr.pg.temporary import new_temporary_name
from odoo_dr.repository.manifest import FilestoreEntry, SnapshotManifest
from odoo_dr.repository.store import Repository

Mode = Literal["copy", "move"]


@dataclass(frozen=True)
class RestoreOptions:
    target: str
    filestore_root: Path
    mode: Mode
    neutralize: bool = False
    force: bool = False
    jobs: int = 2
    temp_dir: Path | None = None
    cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST
    owner: str | None = None


def parse_owner(owner: str) -> tuple[int, int]:
    """Return the uid and gid of `USER[:GROUP]`; the group defaults to the user's."""
    user, _, group = owner.partition(":")
    try:
        entry = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    except KeyError:
        raise RejectedError(
            f"invalid --owner {owner!r}: no such user or group on this host",
            hint="give the user Odoo runs as, such as odoo or odoo:odoo",
        ) from None
    return entry.pw_uid, gid


@dataclass
class RestorePlan:
    """Everything the pre-checks established, so the work can start."""

    manifest: SnapshotManifest
    options: RestoreOptions
    tools: PgTools
    index: list[FilestoreEntry]
    target_exists: bool
    folder_exists: bool
    owner: tuple[int, int] | None = None
    temporary: str = field(default_factory=new_temporary_name)

    @property
    def target_folder(self) -> Path:
        return self.options.filestore_root / self.options.target

    @property
    def temporary_folder(self) -> Path:
        return self.options.filestore_root / self.temporary

    @property
    def dump_parent(self) -> Path:
        return self.options.temp_dir or Path(tempfile.gettempdir())


def load_index(
    repository: Repository, manifest: SnapshotManifest
) -> list[FilestoreEntry]:
    raw = repository.blobs.read_blob(manifest.filestore.index)
    try:
        return [FilestoreEntry.model_validate(item) for item in json.loads(raw)]
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
    except ValueError as exc:
        problem = str(exc).splitlines()[0]
    raise SnapshotDamaged(
        f"the file index of snapshot {manifest.id} is damaged: {problem}",
        hint="run 'odoo-dr verify' to see which snapshots are affected",
    )


def _check_space(path: Path, needed: int, what: str, option: str) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise RejectedError(
            f"not enough free space for {what} in {probe}: {needed:,} bytes needed, "
            f"{free:,} free",
            hint=f"free space there or pass {option} on a larger disk",
        )


def _check_privileges(connection: psycopg.Connection, target: str, force: bool) -> None:
    """Check that the role may create databases and, with --force, drop the target."""
    can_create, user = connection.execute(
        "SELECT rolcreatedb OR rolsuper, rolname FROM pg_roles"
        " WHERE rolname = current_user"
    ).fetchone()
    if not can_create:
        raise RejectedError(
            f"role {user!r} may not create databases",
            hint=f"run ALTER ROLE {user} CREATEDB, or connect as another role",
        )
    if not force:
        return
    row = connection.execute(
        "SELECT pg_has_role(current_user, datdba, 'MEMBER')"
        " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        " FROM pg_database WHERE datname = %s",
        (target,),
    ).fetchone()
    if row is not None and not row[0]:
        raise RejectedError(
            f"role {user!r} may not drop the existing database {target!r}",
            hint="restore as its owner or a superuser, or choose another --target",
        )


def _missing(
    repository: Repository, manifest: SnapshotManifest
) -> tuple[list[str], list[FilestoreEntry]]:
    missing = repository.blobs.missing([*manifest.dump, manifest.filestore.index])
    index = [] if missing else load_index(repository, manifest)
    return missing or repository.blobs.missing(index), index


def _check_objects(
    repository: Repository, manifest: SnapshotManifest
) -> list[FilestoreEntry]:
    missing, index = _missing(repository, manifest)
    if missing and repository.blobs.index.add_unindexed_packs():
        # An index file may be lost while its packs are intact: their headers list
        # their chunks, and the restore reads them from there (nothing is written).
        missing, index = _missing(repository, manifest)
    if missing:
        raise SnapshotDamaged(
            f"snapshot {manifest.id} is damaged: {len(missing)} objects missing from "
            f"repository {repository.location}, first {missing[0]}",
            hint="run 'odoo-dr verify' to see which snapshots are affected",
        )
    return index


def plan_restore(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: RestoreOptions,
) -> RestorePlan:
    """Run every pre-check of a restore, raising `RejectedError` before any change."""
    target = validate_database_name(options.target, "target database name")
    if options.neutralize and target in {manifest.tenant, manifest.database.name}:
        raise RejectedError(
            f"refusing to neutralize {target!r}: it is the name of the database this "
            "snapshot was taken from",
            hint="restore under another --target name, or restore without --neutralize",
        )
    if options.filestore_root.exists() and not options.filestore_root.is_dir():
        raise RejectedError(f"filestore root {options.filestore_root} is not a folder")
    owner = parse_owner(options.owner) if options.owner else None
    index = _check_objects(repository, manifest)

    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version_text, major = server_version(connection)
        _check_privileges(connection, target, options.force)
        row = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target,)
        ).fetchone()
        target_exists = row is not None
    if major < manifest.postgres.server_major:
        raise RejectedError(
            f"snapshot {manifest.id} comes from PostgreSQL "
            f"{manifest.postgres.server_version}, newer than the target server "
            f"{version_text}",
            hint=f"restore into a PostgreSQL {manifest.postgres.server_major} server "
            "or newer",
        )
    tools = find_tools(
        max(manifest.postgres.pg_dump_major, major),
        f"restoring a dump of pg_dump {manifest.postgres.pg_dump_version}",
    )

    folder = options.filestore_root / target
    # An empty folder is replaced by the rename without loss, so it does not count.
    folder_exists = folder.exists() and (not folder.is_dir() or any(folder.iterdir()))
    if (target_exists or folder_exists) and not options.force:
        what = "database" if target_exists else "filestore folder"
        where = "" if target_exists else f" ({folder})"
        raise RejectedError(
            f"target {what} {target!r} already exists{where}",
            hint="choose another --target, or pass --force to replace it",
        )

    plan = RestorePlan(
        manifest, options, tools, index, target_exists, folder_exists, owner
    )
    dump_bytes = sum(item.size for item in manifest.dump)
    file_bytes = sum(entry.size for entry in index)
    _check_space(plan.dump_parent, dump_bytes, "the database dump", "--temp-dir")
    _check_space(
        options.filestore_root, file_bytes, "the filestore", "--filestore-root"
    )
    return plan
