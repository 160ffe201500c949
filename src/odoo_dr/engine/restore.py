"""Restore a snapshot into a new database and filestore folder.

The data goes into a temporary database, hidden from Odoo's database list, and a
temporary folder. The identity is set (copy or move) and the database neutralized
when requested, and only then are database and folder renamed to the target, so no
Odoo process can open a half-restored or un-neutralized copy. An existing target is
renamed aside and dropped only after the new database took its name. The repository
is only read.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr import progress, tempfiles
from odoo_dr.engine import swap
from odoo_dr.engine.backup import check_temp_dir
from odoo_dr.engine.disk_space import disk_full_error
from odoo_dr.engine.filestore_restore import naming_path, restore_files
from odoo_dr.engine.restore_plan import (
    Mode,
    RestoreOptions,
    RestorePlan,
    load_index,
    plan_restore,
)
from odoo_dr.errors import (
    DamagedDataFound,
    OdooDrError,
    RejectedError,
    RestoreFailed,
    SnapshotDamaged,
)
from odoo_dr.odoo import identity
from odoo_dr.odoo.inspect import count_rows
from odoo_dr.odoo.neutralize import neutralize
from odoo_dr.pg import restore as pg_restore
from odoo_dr.pg import temporary
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.processes import HOST, process_alive
from odoo_dr.repository.manifest import DumpFile, SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.timing import StepTimer

__all__ = [
    "RestoreOptions",
    "RestorePlan",
    "RestoreResult",
    "execute_restore",
    "load_index",
    "plan_restore",
    "run_restore",
]

log = logging.getLogger(__name__)


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
    warnings: list[str] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)


def _write_dump(
    repository: Repository,
    manifest: SnapshotManifest,
    folder: Path,
    jobs: int,
    done: progress.Advance | None = None,
) -> None:
    """Write the snapshot's dump files into `folder`; `done` gets each chunk's size."""
    folder.mkdir(mode=0o700)
    advance = done or (lambda _amount: None)

    def write(item: DumpFile) -> None:
        try:
            with (
                naming_path(folder / item.name),
                open(folder / item.name, "wb") as handle,
            ):
                for chunk in repository.blobs.iter_blob(item):
                    handle.write(chunk)
                    advance(len(chunk))
        except SnapshotDamaged as exc:
            raise SnapshotDamaged(
                f"{exc.message} (in dump file {item.name} of snapshot {manifest.id})",
                exc.hint,
            ) from None

    # The largest table files first, so the threads finish together.
    items = sorted(manifest.dump, key=lambda item: item.size, reverse=True)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dump") as pool:
        list(pool.map(write, items))


def _database_options(plan: RestorePlan) -> sql.Composable:
    info = plan.manifest.database
    return sql.SQL(
        "TEMPLATE template0 ENCODING {encoding} LC_COLLATE {collate} LC_CTYPE {ctype}"
    ).format(
        encoding=sql.Literal(info.encoding),
        collate=sql.Literal(info.collate),
        ctype=sql.Literal(info.ctype),
    )


def clean_leftovers(settings: PgSettings, filestore_root: Path | None) -> None:
    """Finish or remove what killed restores and drills left behind.

    Interrupted swaps in `filestore_root` are finished first (their databases are
    ready), then abandoned temporary databases are dropped, then temporary folders
    whose owner is gone are removed.
    """
    if filestore_root is not None and filestore_root.is_dir():
        for action in swap.finish_interrupted(settings, filestore_root):
            log.warning("leftover of a killed odoo-dr: %s", action)
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        for action in temporary.clean_stale(connection):
            log.warning("leftover of a killed odoo-dr: %s", action)
    if filestore_root is not None and filestore_root.is_dir():
        for entry in filestore_root.glob(temporary.RESTORE_PREFIX + "*"):
            if entry.is_dir() and _folder_abandoned(entry):
                log.warning("removing leftover folder %s of a killed odoo-dr", entry)
                shutil.rmtree(entry, ignore_errors=True)


# A temporary filestore folder contains this file, naming its restore, until the swap.
OWNER_FILE = ".odoo-dr-owner"


def _claim_folder(folder: Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        # The filestore root and the folders above it that this restore creates
        # go to the Odoo user too, because under a umask such as 077 only their
        # creator could enter them.
        missing = []
        parent = folder.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            os.chown(path, *owner, follow_symlinks=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNER_FILE).write_text(
        json.dumps({"pid": os.getpid(), "host": HOST}), encoding="utf-8"
    )


def _folder_abandoned(folder: Path) -> bool:
    """Return whether the restore writing `folder` is gone (same test as the marks)."""
    owner = folder / OWNER_FILE
    try:
        data = json.loads(owner.read_text(encoding="utf-8"))
        age = datetime.now(UTC).timestamp() - owner.stat().st_mtime
    except (OSError, ValueError):
        # No readable owner file: the folder of a restore killed before it wrote
        # one, or damaged; only an old folder is removed.
        age = datetime.now(UTC).timestamp() - folder.stat().st_mtime
        return age > temporary.STALE_AFTER.total_seconds()
    if age > temporary.STALE_AFTER.total_seconds():
        return True
    return data.get("host") == HOST and not process_alive(int(data.get("pid", 0)))


def _create_database(settings: PgSettings, plan: RestorePlan) -> None:
    info = plan.manifest.database
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        try:
            temporary.create_temporary(
                connection, plan.temporary, _database_options(plan)
            )
        except psycopg.Error as exc:
            raise RejectedError(
                f"cannot create the database for {plan.options.target!r} with encoding "
                f"{info.encoding} and locale {info.collate}: "
                f"{str(exc).strip().splitlines()[0]}",
                hint="the server needs the locale of the original database",
            ) from None


def _run_pg_restore(settings: PgSettings, plan: RestorePlan, folder: Path) -> list[str]:
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
                hint="nothing was left behind; fix the cause (a missing extension or "
                "role, for example) and restore again",
            )
        log.info("tolerated pg_restore error: %s (%s)", error.message, reason)
        tolerated.append(f"{error.message} ({reason})")
    if returncode != 0 and not errors:
        raise RestoreFailed(
            f"pg_restore failed with exit code {returncode}: {stderr.strip()[-2000:]}"
        )
    return tolerated


def _finish_database(
    settings: PgSettings, plan: RestorePlan
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
            done = []
            if plan.options.neutralize:
                done = neutralize(cursor, plan.options.cron_allow_list)
        connection.commit()
    return row_counts, change, done


def _swap_into_place(settings: PgSettings, plan: RestorePlan) -> None:
    swap.swap(
        settings,
        plan.options.target,
        plan.temporary,
        plan.options.filestore_root,
        plan.target_exists,
        plan.folder_exists,
        final_mark="drill" if plan.options.drill else None,
        owner_file=OWNER_FILE,
    )


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _discard(settings: PgSettings, plan: RestorePlan) -> None:
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            temporary.drop(connection, plan.temporary)
    except (OdooDrError, psycopg.Error) as exc:
        log.error("could not drop temporary database %r: %s", plan.temporary, exc)
    shutil.rmtree(plan.temporary_folder, ignore_errors=True)


def _as_restore_failure(exc: BaseException, plan: RestorePlan) -> OdooDrError | None:
    snapshot = plan.manifest.id
    if isinstance(exc, RestoreFailed):
        return exc
    if isinstance(exc, SnapshotDamaged):
        return DamagedDataFound(exc.message, exc.hint)
    if isinstance(exc, OdooDrError):
        return RestoreFailed(exc.message, exc.hint)
    if isinstance(exc, psycopg.Error):
        first_line = str(exc).strip().splitlines()[0]
        return RestoreFailed(f"restore of snapshot {snapshot} failed: {first_line}")
    if isinstance(exc, OSError):
        disk_full = disk_full_error(exc, plan.space_needs)
        if disk_full is not None:
            message, hint = disk_full
            return RestoreFailed(
                f"restore of snapshot {snapshot} failed: {message}", hint
            )
        where = f" on {exc.filename}" if exc.filename else ""
        return RestoreFailed(
            f"restore of snapshot {snapshot} failed{where}: {exc.strerror or exc}"
        )
    return None


def execute_restore(
    repository: Repository, settings: PgSettings, plan: RestorePlan, timer: StepTimer
) -> RestoreResult:
    """Carry out a planned restore; on failure, remove everything it created."""
    options = plan.options
    clean_leftovers(settings, options.filestore_root)
    tempfiles.remove_stale(plan.dump_parent)
    work = tempfiles.make_folder(plan.dump_parent, "restore")
    created = False
    marks = ExitStack()
    try:
        with timer.step("create database"):
            _claim_folder(plan.temporary_folder, plan.owner)
            # Set first: an interruption between CREATE DATABASE and its mark must
            # still drop the database (dropping one never created does nothing).
            created = True
            _create_database(settings, plan)
            marks.enter_context(
                temporary.kept_marked(
                    settings,
                    plan.temporary,
                    "temporary",
                    on_refresh=lambda: _touch(plan.temporary_folder / OWNER_FILE),
                )
            )
        with timer.step("restore database and files"):
            tolerated, (files, file_bytes) = _restore_in_parallel(
                repository, settings, plan, work / "dump"
            )
        with timer.step("identity and neutralization"):
            row_counts, change, done = _finish_database(settings, plan)
        marks.close()
        with timer.step("rename into place"):
            _swap_into_place(settings, plan)
    except BaseException as exc:
        marks.close()
        if created:
            _discard(settings, plan)
        else:
            shutil.rmtree(plan.temporary_folder, ignore_errors=True)
        failure = _as_restore_failure(exc, plan)
        if failure is None or failure is exc:
            raise
        raise failure from None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    warnings = [
        f"the snapshot recorded filestore file {problem.store_fname} as "
        f"{problem.reason} ({'; '.join(problem.attachments[:3])})"
        for problem in plan.manifest.filestore.problems
    ]
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
        warnings=warnings,
        steps=dict(timer.steps),
    )


def _restore_in_parallel(
    repository: Repository, settings: PgSettings, plan: RestorePlan, dump_folder: Path
) -> tuple[list[str], tuple[int, int]]:
    """Write the filestore files while the dump is written and pg_restore runs."""
    cancelled = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="filestore") as pool:
        files = pool.submit(
            restore_files,
            repository,
            plan.index,
            plan.temporary_folder,
            plan.options.jobs,
            plan.owner,
            cancelled,
        )
        try:
            size = sum(item.size for item in plan.manifest.dump)
            label = f"write dump of {plan.manifest.tenant}"
            with progress.track(label, size) as done:
                _write_dump(
                    repository, plan.manifest, dump_folder, plan.options.jobs, done
                )
            tolerated = _run_pg_restore(settings, plan, dump_folder)
        except BaseException:
            cancelled.set()
            wait([files])
            raise
        return tolerated, files.result()


def run_restore(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: RestoreOptions,
) -> RestoreResult:
    check_temp_dir(repository, options.temp_dir)
    # A restore killed during its renames left the target half renamed. Finish those
    # renames first, so the checks see the target as that restore made it.
    if options.filestore_root.is_dir():
        for action in swap.finish_interrupted(settings, options.filestore_root):
            log.warning("leftover of a killed odoo-dr: %s", action)
    plan = plan_restore(repository, settings, manifest, options)
    return execute_restore(repository, settings, plan, StepTimer())
