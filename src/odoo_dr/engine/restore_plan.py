"""The pre-checks of a restore: everything is checked before anything changes."""

from __future__ import annotations

import grp
import json
import pwd
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import psycopg
from pydantic import ValidationError

from odoo_dr.engine.disk_space import SpaceNeed, check_space
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
    # A drill's scratch copy: its files go to the drill's --temp-dir, and its
    # database stays marked as a drill's from the moment it takes its name.
    drill: bool = False


# The largest uid or gid: (uid_t) -1 means "unchanged" to chown(2).
_MAX_ID = 2**32 - 2
_OWNER_HINT = (
    "give the user Odoo runs as, by name or number, with an optional group: "
    "odoo, odoo:odoo, 101 or 101:101"
)


def _parse_id(text: str, kind: str, owner: str) -> int | None:
    """Return `text` as a uid or gid when it is a number, else None (a name)."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    if value > _MAX_ID:
        raise RejectedError(
            f"invalid --owner {owner!r}: {kind} {text} is out of range",
            hint=_OWNER_HINT,
        )
    return value


def parse_owner(owner: str) -> tuple[int, int]:
    """Return the uid and gid of `USER[:GROUP]`; the group defaults to the user's.

    USER and GROUP are names or numbers. A number needs no entry in the host's user
    database (containers often run Odoo as a bare uid), but then the group must be
    given, since no entry names the user's group.
    """
    user, colon, group = owner.partition(":")
    if not user or (colon and not group):
        raise RejectedError(
            f"invalid --owner {owner!r}: expected USER or USER:GROUP",
            hint=_OWNER_HINT,
        )
    uid = _parse_id(user, "uid", owner)
    entry = None
    try:
        entry = pwd.getpwuid(uid) if uid is not None else pwd.getpwnam(user)
    except KeyError:
        if uid is None:
            raise RejectedError(
                f"invalid --owner {owner!r}: no such user {user!r} on this host",
                hint=_OWNER_HINT,
            ) from None
    if uid is None:
        uid = entry.pw_uid
    if not group:
        if entry is None:
            raise RejectedError(
                f"invalid --owner {owner!r}: uid {uid} has no entry on this host, so "
                "its group is unknown",
                hint=f"give the group too, such as --owner {uid}:{uid}",
            )
        return uid, entry.pw_gid
    gid = _parse_id(group, "gid", owner)
    if gid is None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise RejectedError(
                f"invalid --owner {owner!r}: no such group {group!r} on this host",
                hint=_OWNER_HINT,
            ) from None
    return uid, gid


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

    @property
    def space_needs(self) -> list[SpaceNeed]:
        """The files the restore writes: the dump, then the filestore."""
        folders = {PurePosixPath(entry.path).parent for entry in self.index}
        return [
            # The work folder and its dump folder.
            SpaceNeed(
                self.dump_parent,
                "the database dump",
                "--temp-dir",
                tuple(item.size for item in self.manifest.dump),
                folders=2,
            ),
            # A drill's scratch filestore lies in its --temp-dir.
            SpaceNeed(
                self.options.filestore_root,
                "the filestore",
                "--temp-dir" if self.options.drill else "--filestore-root",
                tuple(entry.size for entry in self.index),
                folders=len(folders | {PurePosixPath(".")}),
            ),
        ]


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
    problem = manifest.dump_problem()
    if problem is not None:
        raise SnapshotDamaged(
            f"snapshot {manifest.id} is damaged: {problem} "
            f"({repository.manifest_path(manifest.id)})",
            hint="restore another snapshot; run 'odoo-dr verify' for the others",
        )
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


@dataclass(frozen=True)
class TargetState:
    """The target server and whether the target database or its folder exists."""

    name: str
    exists: bool
    folder_exists: bool
    server_major: int
    server_version: str


def check_target(
    settings: PgSettings, options: RestoreOptions, sources: set[str]
) -> TargetState:
    """Run the pre-checks of a restore that need no snapshot; raise `RejectedError`.

    `sources` are the names the snapshot's database had, which --neutralize never
    touches. A point-in-time restore runs these checks before its long recovery.
    """
    target = validate_database_name(options.target, "target database name")
    if options.neutralize and target in sources:
        raise RejectedError(
            f"refusing to neutralize {target!r}: it is the name of the database this "
            "snapshot was taken from",
            hint="restore under another --target name, or restore without --neutralize",
        )
    if options.filestore_root.exists() and not options.filestore_root.is_dir():
        raise RejectedError(f"filestore root {options.filestore_root} is not a folder")
    if options.owner:
        parse_owner(options.owner)

    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version_text, major = server_version(connection)
        _check_privileges(connection, target, options.force)
        row = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target,)
        ).fetchone()
        target_exists = row is not None

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
    return TargetState(target, target_exists, folder_exists, major, version_text)


def plan_restore(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: RestoreOptions,
) -> RestorePlan:
    """Run every pre-check of a restore, raising `RejectedError` before any change."""
    # The snapshot first: a damaged one is reported without reaching PostgreSQL.
    index = _check_objects(repository, manifest)
    state = check_target(settings, options, {manifest.tenant, manifest.database.name})
    owner = parse_owner(options.owner) if options.owner else None
    if state.server_major < manifest.postgres.server_major:
        raise RejectedError(
            f"snapshot {manifest.id} comes from PostgreSQL "
            f"{manifest.postgres.server_version}, newer than the target server "
            f"{state.server_version}",
            hint=f"restore into a PostgreSQL {manifest.postgres.server_major} server "
            "or newer",
        )
    tools = find_tools(
        max(manifest.postgres.pg_dump_major, state.server_major),
        f"restoring a dump of pg_dump {manifest.postgres.pg_dump_version}",
    )

    plan = RestorePlan(
        manifest, options, tools, index, state.exists, state.folder_exists, owner
    )
    check_space(plan.space_needs)
    return plan
