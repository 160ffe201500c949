"""Take a consistent snapshot of one Odoo database and its filestore.

Odoo's own backup copies the filestore before it dumps the database, so files added
in between are missing from the archive. odoo-dr works the other way round:

1. Open a repeatable-read transaction. Lock `ir_attachment` against Odoo's filestore
   garbage collector (SHARE UPDATE EXCLUSIVE lets Odoo insert and update attachments
   but makes the collector's `LOCK ir_attachment IN SHARE MODE` wait), then export
   the transaction's snapshot.
2. Run `pg_dump --snapshot` in directory format with parallel jobs, while reading in
   the same snapshot the attachments, modules, identity and row counts.
3. Copy exactly the files that snapshot references (plus unreferenced files found in
   the folder, which are harmless), each checked against its SHA-1 as it is read.
4. Store the dump files, then publish the manifest, last.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from odoo_dr import __version__
from odoo_dr.engine.filestore_backup import FilestoreBackup, FilestoreResult
from odoo_dr.errors import BackupFailed, OdooDrError, RepositoryError
from odoo_dr.odoo import inspect
from odoo_dr.pg import dump
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import server_version
from odoo_dr.repository.local import LocalBackend
from odoo_dr.repository.manifest import (
    BackupStats,
    DatabaseInfo,
    DumpFile,
    FilestoreEntry,
    FilestoreSummary,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
)
from odoo_dr.repository.objects import split_bytes
from odoo_dr.repository.store import Repository, WriteStats, dump_json, new_id

log = logging.getLogger(__name__)

# How long the backup waits for a running garbage collection to finish.
GC_LOCK_TIMEOUT = "60s"


@dataclass(frozen=True)
class BackupOptions:
    tenant: str
    filestore_root: Path
    jobs: int = 2
    strict: bool = False
    read_all: bool = False
    temp_dir: Path | None = None


@dataclass(frozen=True)
class _SnapshotFacts:
    snapshot_time: datetime
    lsn: str | None
    database: DatabaseInfo
    modules: dict[str, str | None]
    parameters: dict[str, str]
    row_counts: dict[str, int]
    attachments: list[inspect.AttachmentRef]
    attachments_in_database: int


def _work_folder(repository: Repository, options: BackupOptions) -> Path:
    if options.temp_dir is not None:
        return Path(tempfile.mkdtemp(prefix="odoo-dr-dump-", dir=options.temp_dir))
    if isinstance(repository.backend, LocalBackend):
        # The repository's own disk, so a dump never fills /tmp while the repository
        # has room; the next run removes it if this process dies.
        return repository.backend.temporary_folder("dump")
    return Path(tempfile.mkdtemp(prefix="odoo-dr-dump-"))


def _begin_snapshot(connection: psycopg.Connection, warnings: list[str]) -> str:
    """Open the snapshot transaction, hold off the garbage collector, export it."""
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    # The transaction stays idle while files are copied; a server-wide idle timeout
    # must not end it, since it holds the lock against the garbage collector.
    connection.execute("SET idle_in_transaction_session_timeout = 0")
    connection.execute("SET statement_timeout = 0")
    _lock_against_garbage_collector(connection, warnings)
    return connection.execute("SELECT pg_export_snapshot()").fetchone()[0]


def _lock_against_garbage_collector(
    connection: psycopg.Connection, warnings: list[str]
) -> None:
    connection.execute("SAVEPOINT odoo_dr_gc_lock")
    try:
        connection.execute(f"SET LOCAL lock_timeout = '{GC_LOCK_TIMEOUT}'")
        connection.execute("LOCK TABLE ir_attachment IN SHARE UPDATE EXCLUSIVE MODE")
        connection.execute("RELEASE SAVEPOINT odoo_dr_gc_lock")
    except psycopg.Error as exc:
        connection.execute("ROLLBACK TO SAVEPOINT odoo_dr_gc_lock")
        message = str(exc).strip().splitlines()[0]
        warnings.append(
            "could not hold Odoo's filestore garbage collector during the backup "
            f"({message}); a file it deletes meanwhile is reported as missing"
        )


def _read_facts(connection: psycopg.Connection, tenant: str) -> _SnapshotFacts:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        snapshot_time = cursor.fetchone()[0]
        cursor.execute(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
            " ELSE pg_current_wal_lsn() END::text"
        )
        lsn = cursor.fetchone()[0]
        cursor.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype,"
            " pg_database_size(oid) FROM pg_database WHERE datname = current_database()"
        )
        encoding, collate, ctype, size = cursor.fetchone()
        modules = inspect.read_modules(cursor)
        parameters = inspect.read_parameters(cursor, inspect.IDENTITY_PARAMETERS)
        row_counts = inspect.count_rows(cursor)
    attachments, in_database = inspect.read_attachments(connection)
    return _SnapshotFacts(
        snapshot_time=snapshot_time,
        lsn=lsn,
        database=DatabaseInfo(
            name=tenant,
            encoding=encoding,
            collate=collate,
            ctype=ctype,
            size_bytes=size,
        ),
        modules=modules,
        parameters=parameters,
        row_counts=row_counts,
        attachments=attachments,
        attachments_in_database=in_database,
    )


def _previous_entries(repository: Repository, tenant: str) -> dict[str, FilestoreEntry]:
    previous = repository.latest_snapshot(tenant)
    if previous is None:
        return {}
    try:
        raw = repository.read_blob(previous.filestore.index)
    except OdooDrError as exc:
        log.warning("cannot read the file index of snapshot %s: %s", previous.id, exc)
        return {}
    entries = [FilestoreEntry.model_validate(item) for item in json.loads(raw)]
    return {entry.path: entry for entry in entries}


def _store_dump(
    repository: Repository, folder: Path, jobs: int
) -> tuple[list[DumpFile], int, WriteStats]:
    paths = sorted(path for path in folder.iterdir() if path.is_file())

    def store(path: Path) -> tuple[DumpFile, WriteStats]:
        blob, _sha1, stats = repository.store_file(path)
        return DumpFile(name=path.name, size=blob.size, chunks=blob.chunks), stats

    files: list[DumpFile] = []
    total = WriteStats()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dump") as pool:
        for dump_file, stats in pool.map(store, paths):
            files.append(dump_file)
            total.add(stats)
    return files, sum(item.size for item in files), total


def run_backup(
    repository: Repository, settings: PgSettings, options: BackupOptions
) -> SnapshotManifest:
    """Back up one tenant and return the published snapshot's manifest."""
    tenant = validate_database_name(options.tenant)
    started = time.monotonic()
    started_at = datetime.now(UTC)

    # Pre-checks: nothing is written before these pass.
    with settings.connect(tenant) as probe:
        version_text, major = server_version(probe)
        with probe.cursor() as cursor:
            inspect.require_odoo_database(cursor, tenant)
    tools = find_tools(major, f"backing up PostgreSQL {version_text}")
    folder = options.filestore_root / tenant

    with repository.lock_tenant(tenant, "backup"):
        repository.cleanup()
        try:
            return _backup_locked(
                repository,
                settings,
                options,
                tools,
                (version_text, major),
                started,
                started_at,
                folder,
            )
        except RepositoryError as exc:
            raise BackupFailed(
                f"backup of {tenant!r} failed: {exc.message}", exc.hint
            ) from None


def _backup_locked(
    repository: Repository,
    settings: PgSettings,
    options: BackupOptions,
    tools: PgTools,
    server: tuple[str, int],
    started: float,
    started_at: datetime,
    folder: Path,
) -> SnapshotManifest:
    tenant = options.tenant
    warnings: list[str] = []
    work = _work_folder(repository, options)
    dump_folder = work / "dump"
    stderr_path = work / "pg_dump.stderr"
    process = None
    try:
        with settings.connect(tenant) as connection:
            snapshot = _begin_snapshot(connection, warnings)
            process = dump.start_dump(
                tools,
                settings,
                tenant,
                snapshot,
                dump_folder,
                options.jobs,
                stderr_path,
            )
            facts = _read_facts(connection, tenant)
            if facts.attachments and not folder.is_dir():
                log.warning("filestore folder %s not found", folder)
            log.info(
                "snapshot taken tenant=%s lsn=%s attachments=%d",
                tenant,
                facts.lsn,
                len(facts.attachments),
            )
            files = FilestoreBackup(
                repository,
                folder,
                _previous_entries(repository, tenant),
                options.jobs,
                options.read_all,
            ).run(facts.attachments)
            returncode = process.wait()
            connection.rollback()
        if returncode != 0:
            raise BackupFailed(
                f"pg_dump of {tenant!r} failed with exit code {returncode}:\n"
                f"{dump.error_text(stderr_path)}",
                hint=_dump_hint(dump.error_text(stderr_path), dump_folder),
            )
        dump_files, dump_bytes, dump_stats = _store_dump(
            repository, dump_folder, options.jobs
        )
        manifest = _build_manifest(
            repository,
            options,
            tools,
            server,
            started,
            started_at,
            facts,
            files,
            dump_files,
            dump_bytes,
            dump_stats,
            warnings,
        )
        if options.strict and manifest.filestore.problems:
            raise BackupFailed(
                f"backup of {tenant!r} found "
                f"{len(manifest.filestore.problems)} missing "
                "or damaged filestore files and --strict is set; no snapshot published",
                hint="run without --strict to publish with warnings, or restore the "
                "files first",
            )
        repository.save_snapshot(manifest)
        return manifest
    except psycopg.Error as exc:
        raise BackupFailed(
            f"backup of {tenant!r} failed: {str(exc).strip().splitlines()[0]}"
        ) from None
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


def _dump_hint(stderr: str, folder: Path) -> str:
    if "No space left" in stderr:
        return f"free space on the disk of {folder} or pass --temp-dir"
    return "read pg_dump's message above; the previous snapshots are unchanged"


def _build_manifest(
    repository: Repository,
    options: BackupOptions,
    tools: PgTools,
    server: tuple[str, int],
    started: float,
    started_at: datetime,
    facts: _SnapshotFacts,
    files: FilestoreResult,
    dump_files: list[DumpFile],
    dump_bytes: int,
    dump_stats: WriteStats,
    warnings: list[str],
) -> SnapshotManifest:
    index_data = dump_json([entry.model_dump() for entry in files.entries])
    index_blob, index_stats = repository.store_chunks(split_bytes(index_data))
    stats = WriteStats()
    for part in (files.stats, dump_stats, index_stats):
        stats.add(part)

    referenced = [entry for entry in files.entries if entry.referenced]
    extra = [entry for entry in files.entries if not entry.referenced]
    for problem in files.problems:
        warnings.append(
            f"filestore file {problem.store_fname} {problem.reason} "
            f"({'; '.join(problem.attachments[:3])})"
        )
    return SnapshotManifest(
        id=new_id(facts.snapshot_time),
        tenant=options.tenant,
        started_at=started_at,
        snapshot_time=facts.snapshot_time,
        finished_at=datetime.now(UTC),
        lsn=facts.lsn,
        database=facts.database,
        postgres=PostgresInfo(
            server_version=server[0],
            server_major=server[1],
            pg_dump_version=tools.version,
            pg_dump_major=tools.major,
        ),
        odoo=OdooInfo(
            version=facts.modules.get("base"),
            uuid=facts.parameters.get("database.uuid"),
            modules=facts.modules,
        ),
        row_counts=facts.row_counts,
        dump=dump_files,
        filestore=FilestoreSummary(
            index=index_blob,
            referenced_files=len(referenced),
            referenced_bytes=sum(entry.size for entry in referenced),
            extra_files=len(extra),
            extra_bytes=sum(entry.size for entry in extra),
            attachments_in_database=facts.attachments_in_database,
            checklist_markers=files.checklist_markers,
            problems=files.problems,
        ),
        stats=BackupStats(
            seconds=round(time.monotonic() - started, 3),
            dump_bytes=dump_bytes,
            files_read=files.files_read,
            files_reused=files.files_reused,
            bytes_read=files.bytes_read,
            new_objects=stats.new_objects,
            new_bytes=stats.new_bytes,
        ),
        warnings=warnings,
        tool_version=__version__,
    )
