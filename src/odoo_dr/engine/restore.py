"""Restore a snapshot into a new database and filestore folder.

The data goes under a temporary name first. The identity is set (copy or move) and
the database neutralized when requested, and only then are database and folder
renamed to the target, so no Odoo process can open a half-restored or un-neutralized
copy. An existing target is dropped only with `force`, and only after everything else
succeeded. The repository is only read.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from odoo_dr.engine.filestore_restore import restore_files
from odoo_dr.errors import OdooDrError, RejectedError, RestoreFailed
from odoo_dr.odoo import identity
from odoo_dr.odoo.inspect import count_rows
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST, neutralize
from odoo_dr.pg import restore as pg_restore
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import (
    clear_temporary_mark,
    drop_database,
    mark_temporary,
    server_version,
    stale_temporary_databases,
)
from odoo_dr.repository.manifest import FilestoreEntry, SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.timing import StepTimer

log = logging.getLogger(__name__)

Mode = Literal["copy", "move"]
TEMPORARY_PREFIX = "odoo-dr-restore-"


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


@dataclass
class RestoreResult:
    snapshot_id: str
    tenant: str
    target: str
    filestore: Path
    mode: Mode
    identity: identity.IdentityChange
    neutralized: list[str]
    tolerated_errors: list[str]
    files: int
    file_bytes: int
    replaced_existing: bool
    row_counts: dict[str, int] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)


def load_index(
    repository: Repository, manifest: SnapshotManifest
) -> list[FilestoreEntry]:
    raw = repository.read_blob(manifest.filestore.index)
    return [FilestoreEntry.model_validate(item) for item in json.loads(raw)]


@dataclass
class _Plan:
    """Everything the pre-checks established, so the work can start."""

    manifest: SnapshotManifest
    options: RestoreOptions
    tools: PgTools
    index: list[FilestoreEntry]
    target_exists: bool
    folder_exists: bool
    temporary: str = field(
        default_factory=lambda: TEMPORARY_PREFIX + uuid.uuid4().hex[:12]
    )

    @property
    def target_folder(self) -> Path:
        return self.options.filestore_root / self.options.target

    @property
    def temporary_folder(self) -> Path:
        return self.options.filestore_root / self.temporary


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


def plan_restore(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: RestoreOptions,
) -> _Plan:
    """Run every pre-check of a restore, raising `RejectedError` before any change."""
    target = validate_database_name(options.target, "target database name")
    if options.neutralize and target == manifest.tenant:
        raise RejectedError(
            f"refusing to neutralize {target!r}: it is the name of the database this "
            "snapshot was taken from",
            hint="restore under another --target name, or restore without --neutralize",
        )

    missing = repository.missing_objects([*manifest.dump, manifest.filestore.index])
    if missing:
        raise RejectedError(
            f"snapshot {manifest.id} is damaged: {len(missing)} objects missing from "
            f"repository {repository.location}, first {missing[0]}",
            hint="run 'odoo-dr verify'; restore an older snapshot meanwhile",
        )
    index = load_index(repository, manifest)
    missing = repository.missing_objects(index)
    if missing:
        raise RejectedError(
            f"snapshot {manifest.id} is damaged: {len(missing)} filestore objects "
            f"missing from repository {repository.location}, first {missing[0]}",
            hint="run 'odoo-dr verify'; restore an older snapshot meanwhile",
        )

    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version_text, major = server_version(connection)
        _check_privileges(connection, target, options.force)
        target_exists = (
            connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (target,)
            ).fetchone()
            is not None
        )
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
        raise RejectedError(
            f"target {what} {target!r} already exists"
            + ("" if target_exists else f" ({folder})"),
            hint="choose another --target, or pass --force to replace it",
        )

    dump_bytes = sum(item.size for item in manifest.dump)
    file_bytes = sum(entry.size for entry in index)
    _check_space(_dump_parent(options), dump_bytes, "the database dump", "--temp-dir")
    _check_space(
        options.filestore_root, file_bytes, "the filestore", "--filestore-root"
    )
    return _Plan(manifest, options, tools, index, target_exists, folder_exists)


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


def _dump_parent(options: RestoreOptions) -> Path:
    return options.temp_dir or Path(tempfile.gettempdir())


def _write_dump(
    repository: Repository, manifest: SnapshotManifest, folder: Path
) -> None:
    folder.mkdir(mode=0o700)
    for item in manifest.dump:
        with open(folder / item.name, "wb") as handle:
            for chunk in repository.iter_blob(item):
                handle.write(chunk)


def _create_database(settings: PgSettings, plan: _Plan) -> None:
    info = plan.manifest.database
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        statement = sql.SQL(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING {encoding}"
            " LC_COLLATE {collate} LC_CTYPE {ctype}"
        ).format(
            name=sql.Identifier(plan.temporary),
            encoding=sql.Literal(info.encoding),
            collate=sql.Literal(info.collate),
            ctype=sql.Literal(info.ctype),
        )
        _drop_stale_temporaries(connection, plan.options.filestore_root)
        try:
            connection.execute(statement)
            mark_temporary(connection, plan.temporary)
        except psycopg.Error as exc:
            raise RejectedError(
                f"cannot create database {plan.temporary!r} with encoding "
                f"{info.encoding} and locale {info.collate}: "
                f"{str(exc).strip().splitlines()[0]}",
                hint="the restoring role needs CREATEDB, and the server the locale "
                "of the original database",
            ) from None


def _run_pg_restore(settings: PgSettings, plan: _Plan, folder: Path) -> list[str]:
    returncode, stderr = pg_restore.run_restore(
        plan.tools, settings, plan.temporary, folder, plan.options.jobs
    )
    errors = pg_restore.parse_errors(stderr)
    tolerated: list[str] = []
    for error in errors:
        reason = error.harmless_reason()
        if reason is None:
            detail = "".join(
                f"\n{text}" for text in (error.hint, error.command) if text
            )
            raise RestoreFailed(
                f"pg_restore failed: {error.message}{detail}",
                hint="the target was removed; fix the cause on the server (a missing "
                "extension or role, for example) and restore again",
            )
        log.info("tolerated pg_restore error: %s (%s)", error.message, reason)
        tolerated.append(f"{error.message} ({reason})")
    if returncode != 0 and not errors:
        raise RestoreFailed(
            f"pg_restore failed with exit code {returncode}: {stderr.strip()[-2000:]}"
        )
    return tolerated


def _finish_database(
    settings: PgSettings, plan: _Plan
) -> tuple[dict[str, int], identity.IdentityChange, list[str]]:
    """Count rows as restored, then set the identity and neutralize."""
    with settings.connect(plan.temporary) as connection:
        with connection.cursor() as cursor:
            row_counts = count_rows(cursor, tuple(plan.manifest.row_counts))
            if plan.options.mode == "copy":
                change = identity.apply_copy_identity(cursor)
            else:
                kept = identity.read_identity(cursor)
                change = identity.IdentityChange(kept, kept)
            done = (
                neutralize(cursor, plan.options.cron_allow_list)
                if plan.options.neutralize
                else []
            )
        connection.commit()
    return row_counts, change, done


def _drop_stale_temporaries(
    connection: psycopg.Connection, filestore_root: Path
) -> None:
    """Drop temporary databases (and folders) of restores whose process was killed."""
    for name in stale_temporary_databases(connection):
        log.warning("dropping temporary database %r left by a killed odoo-dr", name)
        try:
            drop_database(connection, name)
        except psycopg.Error as exc:
            log.warning("could not drop %r: %s", name, str(exc).strip())
            continue
        shutil.rmtree(filestore_root / name, ignore_errors=True)


def _swap_into_place(settings: PgSettings, plan: _Plan) -> None:
    """Replace the target by the restored database and folder, database first."""
    target = plan.options.target
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        if plan.target_exists:
            log.warning("dropping existing database %r (--force)", target)
            drop_database(connection, target)
        connection.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(plan.temporary), sql.Identifier(target)
            )
        )
        clear_temporary_mark(connection, target)

    old_folder = None
    if plan.folder_exists:
        old_folder = plan.options.filestore_root / f"{plan.temporary}-replaced"
        log.warning(
            "replacing existing filestore folder %s (--force)", plan.target_folder
        )
        plan.target_folder.rename(old_folder)
    plan.temporary_folder.rename(plan.target_folder)
    if old_folder is not None:
        shutil.rmtree(old_folder, ignore_errors=True)


def _discard(settings: PgSettings, plan: _Plan) -> None:
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            drop_database(connection, plan.temporary)
    except (OdooDrError, psycopg.Error) as exc:
        log.error("could not drop temporary database %r: %s", plan.temporary, exc)
    shutil.rmtree(plan.temporary_folder, ignore_errors=True)


def execute_restore(
    repository: Repository, settings: PgSettings, plan: _Plan, timer: StepTimer
) -> RestoreResult:
    """Carry out a planned restore; on failure, remove everything it created."""
    options = plan.options
    work = Path(tempfile.mkdtemp(prefix="odoo-dr-restore-", dir=_dump_parent(options)))
    created = False
    try:
        with timer.step("create database"):
            _create_database(settings, plan)
            created = True
        with timer.step("write dump"):
            _write_dump(repository, plan.manifest, work / "dump")
        with timer.step("restore database and files"):
            tolerated, (files, file_bytes) = _restore_in_parallel(
                repository, settings, plan, work / "dump"
            )
        with timer.step("identity and neutralization"):
            row_counts, change, done = _finish_database(settings, plan)
        with timer.step("rename into place"):
            _swap_into_place(settings, plan)
    except BaseException as exc:
        if created:
            _discard(settings, plan)
        else:
            shutil.rmtree(plan.temporary_folder, ignore_errors=True)
        if isinstance(exc, RestoreFailed | KeyboardInterrupt):
            raise
        if isinstance(exc, OdooDrError):
            raise RestoreFailed(exc.message, exc.hint) from None
        if isinstance(exc, psycopg.Error):
            raise RestoreFailed(
                f"restore of snapshot {plan.manifest.id} failed: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from None
        if isinstance(exc, OSError):
            raise RestoreFailed(
                f"restore of snapshot {plan.manifest.id} failed: {exc}"
            ) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

    return RestoreResult(
        snapshot_id=plan.manifest.id,
        tenant=plan.manifest.tenant,
        target=options.target,
        filestore=plan.target_folder,
        mode=options.mode,
        identity=change,
        neutralized=done,
        tolerated_errors=tolerated,
        files=files,
        file_bytes=file_bytes,
        replaced_existing=plan.target_exists or plan.folder_exists,
        row_counts=row_counts,
        steps=dict(timer.steps),
    )


def _restore_in_parallel(
    repository: Repository, settings: PgSettings, plan: _Plan, dump_folder: Path
) -> tuple[list[str], tuple[int, int]]:
    """Run pg_restore while the filestore files are written, and wait for both."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg_restore") as pool:
        database = pool.submit(_run_pg_restore, settings, plan, dump_folder)
        try:
            files = restore_files(
                repository, plan.index, plan.temporary_folder, plan.options.jobs
            )
        except BaseException:
            wait([database])
            raise
        tolerated = database.result()
    return tolerated, files


def run_restore(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: RestoreOptions,
) -> RestoreResult:
    plan = plan_restore(repository, settings, manifest, options)
    return execute_restore(repository, settings, plan, StepTimer())
