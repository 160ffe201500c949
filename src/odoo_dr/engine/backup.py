"""Take a consistent snapshot of one Odoo database and its filestore.

Odoo's own backup copies the filestore before it dumps the database, so files added
in between are missing from the archive. odoo-dr works the other way round:

1. Take a database snapshot, holding off Odoo's filestore garbage collector (see
   `engine.snapshot`).
2. Run `pg_dump --snapshot` in directory format with parallel jobs, while reading in
   the same snapshot the attachments, modules, identity and row counts.
3. Copy exactly the files that snapshot references (plus unreferenced files found in
   the folder, which are harmless), each checked against its SHA-1 as it is read.
4. Store the dump files, then publish the manifest, last.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from odoo_dr import __version__, progress, tempfiles
from odoo_dr.engine.filestore_backup import FilestoreBackup, FilestoreResult
from odoo_dr.engine.snapshot import (
    SnapshotFacts,
    begin_snapshot,
    count_rows_in_snapshot,
    read_facts,
)
from odoo_dr.errors import BackupFailed, OdooDrError, RejectedError, RepositoryError
from odoo_dr.odoo import inspect
from odoo_dr.pg import privileges
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import PgSettings
from odoo_dr.pg.dump import DumpProcess
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import server_version
from odoo_dr.repository import residency
from odoo_dr.repository.blobs import WriteStats
from odoo_dr.repository.local import LocalBackend
from odoo_dr.repository.manifest import (
    BackupStats,
    DumpFile,
    FilestoreEntry,
    FilestoreSummary,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
)
from odoo_dr.repository.objects import split_bytes
from odoo_dr.repository.store import Repository, dump_json, new_id

log = logging.getLogger(__name__)

# The number of problem files a failed --strict backup names.
LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class BackupOptions:
    database: str
    filestore_root: Path
    tenant: str | None = None
    jobs: int = 2
    strict: bool = False
    read_all: bool = False
    temp_dir: Path | None = None
    # Where `filestore_root` came from, such as "--filestore-root", for messages.
    filestore_root_source: str | None = None
    # Recorded in the manifest: retention policies choose by them, a release
    # restore point carries release=<name>, and an import names its origin.
    labels: dict[str, str] = field(default_factory=dict)
    # Where the snapshot may be stored, as `repository.residency` reads it.
    residency: str | None = None
    # An import backs up a temporary database: these record the archive's database
    # name, its own time and its filestore folder (in place of
    # filestore_root/database).
    recorded_name: str | None = None
    snapshot_time: datetime | None = None
    filestore_folder: Path | None = None

    @property
    def tenant_name(self) -> str:
        """The name snapshots are filed under: `tenant`, else the database name."""
        # An empty --tenant is checked, and rejected, rather than taken as absent.
        return self.database_name if self.tenant is None else self.tenant

    @property
    def database_name(self) -> str:
        """The database name the manifest records."""
        return self.recorded_name or self.database


def validate_tenant_name(name: str) -> str:
    control = any(ord(char) < 32 or ord(char) == 127 for char in name)
    if not name.strip() or len(name) > 200 or control:
        raise RejectedError(
            f"invalid tenant name {name!r}",
            hint="use up to 200 printable characters, not only blanks, such as "
            "'eu-prod/odoo'",
        )
    return name


_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def parse_labels(items: list[str]) -> dict[str, str]:
    """Return the labels given as `KEY=VALUE` texts, checking each once."""
    labels: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not _LABEL_KEY.match(key):
            raise RejectedError(
                f"invalid label {item!r}",
                hint="write KEY=VALUE, such as environment=production; a key is "
                "letters, digits, '_', '.' and '-'",
            )
        if len(value) > 200 or any(ord(char) < 32 for char in value):
            raise RejectedError(
                f"invalid value of label {key!r}: {value!r}",
                hint="use up to 200 printable characters",
            )
        if key in labels:
            raise RejectedError(
                f"label {key!r} is given twice", hint="give each label once"
            )
        labels[key] = value
    return labels


def _previous_entries(
    repository: Repository, previous: SnapshotManifest | None
) -> dict[str, FilestoreEntry]:
    """Return the file entries of the tenant's latest snapshot, by path.

    They are built without pydantic's validation, which costs half a second for
    20,000 files: the backup only compares sizes and times with them, and reuses an
    entry only for a path that it found on disk itself.
    """
    if previous is None:
        return {}
    try:
        raw = repository.blobs.read_blob(previous.filestore.index)
        items = json.loads(raw)
        entries = {
            item["path"]: FilestoreEntry.model_construct(**item) for item in items
        }
    except (OdooDrError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the file index of snapshot %s: %s", previous.id, exc)
        return {}
    return entries


def _check_database(settings: PgSettings, database: str) -> tuple[str, int, int]:
    """Check that the role may dump `database`, an Odoo database.

    Returns the server version text, its major number and how many attachments are
    stored in the filestore. A privilege the role lacks is a `RejectedError` naming
    it, before anything is written.
    """
    with settings.connect(database) as connection, connection.cursor() as cursor:
        version_text, major = server_version(connection)
        try:
            role = privileges.current_role(cursor)
            unreadable = privileges.unreadable_objects(cursor)
            if unreadable:
                raise _unreadable_error(role, database, unreadable)
            inspect.require_odoo_database(cursor, database)
            cursor.execute(
                "SELECT count(*) FROM ir_attachment"
                " WHERE store_fname IS NOT NULL AND store_fname <> ''"
            )
            referenced = cursor.fetchone()[0]
        except psycopg.errors.InsufficientPrivilege as exc:
            raise RejectedError(
                f"role {settings.describe()} lacks a privilege in database "
                f"{database!r}: {_first_line(exc)}",
                hint="grant the backup role SELECT on the database's tables and "
                "sequences (or pg_read_all_data), or back up as the database owner",
            ) from None
        except psycopg.Error as exc:
            raise RejectedError(
                f"cannot check database {database!r} before the backup: "
                f"{_first_line(exc)}",
            ) from None
    return version_text, major, referenced


def _unreadable_error(role: str, database: str, unreadable: list[str]) -> RejectedError:
    listed = ", ".join(unreadable[:LISTED_PROBLEMS])
    more = len(unreadable) - LISTED_PROBLEMS
    if more > 0:
        listed += f" and {more:,} more"
    quoted = '"' + role.replace('"', '""') + '"'
    return RejectedError(
        f"role {role!r} may not read {len(unreadable):,} table(s) or sequence(s) of "
        f"database {database!r} that pg_dump must read: {listed}",
        hint=f"grant what is missing, for example GRANT USAGE ON SCHEMA public, "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public and GRANT SELECT ON ALL "
        f"SEQUENCES IN SCHEMA public TO {quoted}, or GRANT pg_read_all_data TO "
        f"{quoted}; or back up as the database owner",
    )


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_temp_dir(repository: Repository, temp_dir: Path | None) -> None:
    """Reject a --temp-dir that is not a folder or is inside an encrypted repository.

    Dumps and extracted archives are written there in clear, which an encrypted
    repository must never contain.
    """
    if temp_dir is None:
        return
    if not temp_dir.is_dir():
        raise RejectedError(f"--temp-dir {temp_dir} is not a folder")
    if not repository.encrypted or not isinstance(repository.backend, LocalBackend):
        return
    root = repository.backend.root.resolve()
    folder = temp_dir.resolve()
    if folder == root or root in folder.parents:
        raise RejectedError(
            f"--temp-dir {temp_dir} is inside the encrypted repository {root}",
            hint="pass a --temp-dir outside the repository folder, or leave it out",
        )


def run_backup(
    repository: Repository, settings: PgSettings, options: BackupOptions
) -> SnapshotManifest:
    """Back up one database and return the published snapshot's manifest."""
    database = validate_database_name(options.database)
    tenant = validate_tenant_name(options.tenant_name)
    if options.residency is not None:
        options = replace(
            options, residency=residency.normalize_residency(options.residency)
        )

    # Pre-checks: nothing is written before these pass.
    check_temp_dir(repository, options.temp_dir)
    version_text, major, referenced = _check_database(settings, database)
    tools = find_tools(major, f"backing up PostgreSQL {version_text}")
    folder = options.filestore_folder or options.filestore_root / database
    if options.filestore_root_source is not None:
        log.info(
            "filestore root %s (from %s)",
            options.filestore_root,
            options.filestore_root_source,
        )
    if referenced and not folder.is_dir():
        source = (
            f" (the root comes from {options.filestore_root_source})"
            if options.filestore_root_source
            else ""
        )
        raise RejectedError(
            f"filestore folder {folder} not found, but {referenced:,} attachments of "
            f"{database!r} are stored in the filestore{source}",
            hint="pass --filestore-root (the folder holding one folder per database, "
            "Odoo's <data_dir>/filestore) or --odoo-config with the right data_dir",
        )
    # A repository that fails while the lock is taken or the leftovers of killed
    # runs are removed fails the backup too (exit 3), as it does later on.
    try:
        with repository.lock_tenant(tenant, "backup"):
            repository.cleanup()
            repository.blobs.prepare_to_write()
            run = _Backup(repository, settings, options, tools, (version_text, major))
            return run.execute(folder)
    except RepositoryError as exc:
        raise BackupFailed(
            f"backup of {tenant!r} failed: {exc.message}", exc.hint
        ) from None
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise BackupFailed(
            f"backup of {tenant!r} failed: {first_line}",
            hint=f"nothing was published; check that PostgreSQL at "
            f"{settings.describe()} is running and reachable, then run the backup "
            "again",
        ) from None
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise BackupFailed(
            f"backup of {tenant!r} failed: {first_line}",
            hint="nothing was published; look for the cause in the PostgreSQL "
            "server's log, then run the backup again",
        ) from None
    except OSError as exc:
        where = f" on {exc.filename}" if exc.filename else ""
        raise BackupFailed(
            f"backup of {tenant!r} failed{where}: {exc.strerror or exc}",
            hint="nothing was published; the previous snapshots are unchanged",
        ) from None


class _Backup:
    """One backup run, from the snapshot transaction to the published manifest."""

    def __init__(
        self,
        repository: Repository,
        settings: PgSettings,
        options: BackupOptions,
        tools: PgTools,
        server: tuple[str, int],
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.options = options
        self.tools = tools
        self.server = server
        self.tenant = options.tenant_name
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.warnings: list[str] = []

    def _work_folder(self) -> Path:
        if self.options.temp_dir is not None:
            tempfiles.remove_stale(self.options.temp_dir)
            return tempfiles.make_folder(self.options.temp_dir, "dump")
        # An encrypted repository must never hold the dump in clear, not even in tmp/
        # while a backup runs, so its dump goes to the system's temporary folder.
        if (
            isinstance(self.repository.backend, LocalBackend)
            and not self.repository.encrypted
        ):
            # The repository's own disk, so a dump never fills /tmp while the
            # repository has room; the next run removes it if this process dies.
            return self.repository.backend.temporary_folder("dump")
        return tempfiles.make_folder(Path(tempfile.gettempdir()), "dump")

    def execute(self, folder: Path) -> SnapshotManifest:
        work = self._work_folder()
        dump = None
        counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="counts")
        try:
            with self.settings.connect(self.options.database) as connection:
                snapshot = begin_snapshot(connection, self.warnings)
                dump = DumpProcess(
                    self.tools,
                    self.settings,
                    self.options.database,
                    snapshot,
                    work / "dump",
                    self.options.jobs,
                )
                counts = counter.submit(
                    count_rows_in_snapshot,
                    self.settings,
                    self.options.database,
                    snapshot,
                )
                facts = read_facts(connection, self.options.database)
                log.info(
                    "snapshot taken tenant=%s lsn=%s attachments=%d",
                    self.tenant,
                    facts.lsn,
                    len(facts.attachments),
                )
                files = FilestoreBackup(
                    self.repository,
                    folder,
                    _previous_entries(self.repository, self._previous_snapshot()),
                    self.options.jobs,
                    self.options.read_all,
                ).run(facts.attachments)
                row_counts, stock_totals = counts.result()
                facts = replace(facts, row_counts=row_counts, stock_totals=stock_totals)
                returncode = dump.wait()
                connection.rollback()
            if returncode != 0:
                raise BackupFailed(
                    f"pg_dump of {self.options.database!r} failed with exit code "
                    f"{returncode}:\n{dump.error_text}",
                    hint=_dump_hint(dump.error_text, work),
                )
            manifest = self._build_manifest(facts, files, work / "dump")
            self._check_strict(manifest)
            self.repository.save_snapshot(manifest)
            return manifest
        finally:
            counter.shutdown(wait=True)
            if dump is not None:
                dump.stop()
            shutil.rmtree(work, ignore_errors=True)

    def _previous_snapshot(self) -> SnapshotManifest | None:
        """Return the tenant's latest snapshot, if it is of the same database.

        A tenant whose database name changed gets a warning: two databases filed
        under one tenant make `restore TENANT` pick whichever was backed up last.
        Its files are then all read again, not reused from the other database.
        """
        previous = self.repository.latest_snapshot(self.tenant)
        if previous is None or previous.database.name == self.options.database_name:
            return previous
        self.warnings.append(
            f"tenant {self.tenant!r} was backed up from database "
            f"{previous.database.name!r} until snapshot {previous.id}, and now from "
            f"database {self.options.database_name!r}; if these are two different "
            "databases, give each its own --tenant"
        )
        return None

    def _check_strict(self, manifest: SnapshotManifest) -> None:
        problems = manifest.filestore.problems
        if not (self.options.strict and problems):
            return
        listed = "\n".join(
            f"  {problem.store_fname}: {problem.reason} "
            f"({'; '.join(problem.attachments[:3])})"
            for problem in problems[:LISTED_PROBLEMS]
        )
        more = len(problems) - LISTED_PROBLEMS
        if more > 0:
            listed += f"\n  and {more:,} more"
        raise BackupFailed(
            f"backup of {self.tenant!r} found {len(problems):,} missing or damaged "
            f"filestore files and --strict is set, so no snapshot was published:\n"
            f"{listed}",
            hint="run without --strict to publish with warnings, or restore the "
            "files first",
        )

    def _store_dump(self, folder: Path) -> tuple[list[DumpFile], WriteStats]:
        paths = sorted(path for path in folder.iterdir() if path.is_file())

        def store(path: Path) -> tuple[DumpFile, WriteStats]:
            blob, _sha1, stats = self.repository.blobs.put_file(path)
            return DumpFile(name=path.name, size=blob.size, chunks=blob.chunks), stats

        files: list[DumpFile] = []
        total = WriteStats()
        size = sum(path.stat().st_size for path in paths)
        with (
            ThreadPoolExecutor(
                max_workers=self.options.jobs, thread_name_prefix="dump"
            ) as pool,
            progress.track(f"store dump of {self.tenant}", size) as done,
        ):
            for dump_file, stats in pool.map(store, paths):
                files.append(dump_file)
                total.add(stats)
                done(dump_file.size)
        return files, total

    def _build_manifest(
        self, facts: SnapshotFacts, files: FilestoreResult, dump_folder: Path
    ) -> SnapshotManifest:
        dump_files, dump_stats = self._store_dump(dump_folder)
        index_data = dump_json([entry.model_dump() for entry in files.entries])
        index_blob, index_stats = self.repository.blobs.put_chunks(
            split_bytes(index_data), meta=True
        )
        stats = WriteStats()
        for part in (files.stats, dump_stats, index_stats):
            stats.add(part)

        referenced = [entry for entry in files.entries if entry.referenced]
        extra = [entry for entry in files.entries if not entry.referenced]
        for problem in files.problems:
            self.warnings.append(
                f"filestore file {problem.store_fname} {problem.reason} "
                f"({'; '.join(problem.attachments[:3])})"
            )
        snapshot_time = self.options.snapshot_time or facts.snapshot_time
        return SnapshotManifest(
            id=new_id(snapshot_time),
            tenant=self.tenant,
            started_at=self.started_at,
            snapshot_time=snapshot_time,
            finished_at=datetime.now(UTC),
            # An imported archive's WAL position is unknown, and the temporary
            # database's position is unrelated to it.
            lsn=None if self.options.snapshot_time else facts.lsn,
            database=facts.database.model_copy(
                update={"name": self.options.database_name}
            ),
            postgres=PostgresInfo(
                server_version=self.server[0],
                server_major=self.server[1],
                pg_dump_version=self.tools.version,
                pg_dump_major=self.tools.major,
            ),
            odoo=OdooInfo(
                version=facts.modules.get("base"),
                uuid=facts.parameters.get("database.uuid"),
                modules=facts.modules,
            ),
            row_counts=facts.row_counts,
            stock_totals=facts.stock_totals,
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
                seconds=round(time.monotonic() - self.started, 3),
                dump_bytes=sum(item.size for item in dump_files),
                files_read=files.files_read,
                files_reused=files.files_reused,
                bytes_read=files.bytes_read,
                new_objects=stats.new_objects,
                new_bytes=stats.new_bytes,
            ),
            warnings=self.warnings,
            tool_version=__version__,
            labels=dict(self.options.labels),
            residency=self.options.residency,
        )


def _dump_hint(stderr: str, folder: Path) -> str:
    if "No space left" in stderr:
        return f"free space on the disk of {folder} or pass --temp-dir"
    return "read pg_dump's message above; the previous snapshots are unchanged"
