"""Import a backup archive of Odoo's own tools as a snapshot of a tenant.

The archive is checked (and a zip extracted) before odoo-dr connects to
PostgreSQL. Its dump is then loaded into a hidden temporary database, marked like a
restore's (`pg.temporary`), so a killed import's database is dropped by the next
run. The backup engine backs that database up with the archive's filestore, under
the tenant's name, the archive's database name and the archive's own time, and the
temporary database is dropped.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from odoo_dr import tempfiles
from odoo_dr.engine.backup import (
    BackupOptions,
    check_temp_dir,
    run_backup,
    validate_tenant_name,
)
from odoo_dr.engine.restore import clean_leftovers
from odoo_dr.errors import BackupFailed, OdooDrError, RejectedError
from odoo_dr.odoo import archives
from odoo_dr.pg import restore as pg_restore
from odoo_dr.pg import temporary
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import server_version
from odoo_dr.processes import dying_with_parent
from odoo_dr.repository.local import LocalBackend
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

# Odoo creates its databases so (odoo/service/db.py, _create_empty_database).
DATABASE_OPTIONS = sql.SQL("TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'")
STDERR_LINES = 40
# The maximum length of a label value that `--label` admits.
LABEL_MAX = 200


@dataclass(frozen=True)
class ImportOptions:
    source: Path
    tenant: str
    filestore: Path | None = None
    jobs: int = 2
    temp_dir: Path | None = None


def _work_folder(repository: Repository, temp_dir: Path | None) -> Path:
    """Return a private folder for the extracted archive, removed by a later run."""
    if temp_dir is not None:
        check_temp_dir(repository, temp_dir)
        tempfiles.remove_stale(temp_dir)
        return tempfiles.make_folder(temp_dir, "import")
    # An encrypted repository must never hold the archive in clear, not even in tmp/.
    if isinstance(repository.backend, LocalBackend) and not repository.encrypted:
        return repository.backend.temporary_folder("import")
    return tempfiles.make_folder(Path(tempfile.gettempdir()), "import")


def _recorded_name(checked: archives.CheckedArchive, tenant: str) -> str:
    """Return the database name to record: the archive's own, else the tenant's."""
    candidates = [
        checked.odoo_manifest.get("db_name"),
        checked.dump_database,
        tenant,
        "imported",
    ]
    for candidate in candidates:
        if not isinstance(candidate, str):
            continue
        try:
            return validate_database_name(candidate)
        except RejectedError:
            continue
    return "imported"


def _label_value(text: str) -> str:
    """Return `text` as a label value: control characters as '?', cut to 200."""
    cleaned = "".join(
        "?" if ord(char) < 32 or ord(char) == 127 else char for char in text
    )
    return cleaned[:LABEL_MAX]


def _labels(checked: archives.CheckedArchive) -> dict[str, str]:
    """Return the labels of an imported snapshot, within `--label`'s rules.

    The file name is cleaned, since a label shows on one line. An Odoo version that
    breaks the rules is left out rather than recorded altered.
    """
    labels = {
        "imported-from": _label_value(checked.source.label),
        "imported-format": checked.source.kind,
    }
    if checked.created_from:
        labels["imported-time-from"] = checked.created_from
    version = checked.odoo_manifest.get("version")
    if isinstance(version, str) and _label_value(version) == version:
        labels["imported-odoo-version"] = version
    elif version is not None:
        log.warning(
            "version %r of %s in %s is not recorded: a label is up to %d "
            "printable characters",
            version[:80] if isinstance(version, str) else version,
            archives.MANIFEST,
            checked.source.label,
            LABEL_MAX,
        )
    return labels


def run_import(
    repository: Repository, settings: PgSettings, options: ImportOptions
) -> SnapshotManifest:
    """Check, load and back up one archive; return the published snapshot."""
    validate_tenant_name(options.tenant)
    source = archives.identify(options.source, options.filestore)
    repository.check_writable("tmp", "an import stores a snapshot")
    work = _work_folder(repository, options.temp_dir)
    try:
        try:
            checked = archives.check(source, work)
        except OSError as exc:
            raise RejectedError(
                f"cannot read {exc.filename or source.path}: {exc.strerror or exc}",
                hint="check that the user running odoo-dr may read the archive",
            ) from None
        log.info(
            "checked %s (%s, %s dump), archive time %s (%s)",
            source.label,
            source.kind,
            checked.dump_format,
            checked.created_at,
            checked.created_from or "unknown",
        )
        now = datetime.now(UTC)
        if checked.created_at is None or checked.created_at > now:
            # A time in the future (a zip written in a zone east of this host's)
            # would give drills a negative RPO.
            checked.created_at = now
            checked.created_from = "import time (archive time unknown or later)"
        # PostgreSQL is touched only from here on.
        clean_leftovers(settings, None)
        return _load_and_back_up(repository, settings, options, checked, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load_and_back_up(
    repository: Repository,
    settings: PgSettings,
    options: ImportOptions,
    checked: archives.CheckedArchive,
    work: Path,
) -> SnapshotManifest:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version_text, major = server_version(connection)
    # pg_restore must read the dump and write to the server: the newer of both.
    tools = find_tools(
        max(major, checked.dump_major), f"importing into PostgreSQL {version_text}"
    )
    if checked.dump_format == "plain" and not archives.psql_restricts(tools.version):
        raise RejectedError(
            f"psql {tools.version} in {tools.bindir} cannot load "
            f"{checked.source.label} safely: it lacks \\restrict, which keeps a "
            "dump's psql meta-commands from running",
            hint="install a postgresql-client of 17.6, 16.10, 15.14 or a later "
            "release of its series",
        )
    dbname = temporary.new_temporary_name()
    created = False
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            created = True
            temporary.create_temporary(connection, dbname, DATABASE_OPTIONS)
        with temporary.kept_marked(settings, dbname, "temporary"):
            _load(tools, settings, dbname, checked, options.jobs)
            filestore = checked.filestore
            if filestore is None:
                filestore = work / "empty-filestore"
                filestore.mkdir()
            return run_backup(
                repository,
                settings,
                BackupOptions(
                    database=dbname,
                    filestore_root=filestore.parent,
                    filestore_folder=filestore,
                    tenant=options.tenant,
                    jobs=options.jobs,
                    temp_dir=options.temp_dir,
                    recorded_name=_recorded_name(checked, options.tenant),
                    snapshot_time=checked.created_at,
                    labels=_labels(checked),
                ),
            )
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise BackupFailed(
            f"import of {checked.source.label} failed: {first_line}"
        ) from None
    finally:
        if created:
            _drop(settings, dbname)


def _drop(settings: PgSettings, dbname: str) -> None:
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            temporary.drop(connection, dbname)
    except (OdooDrError, psycopg.Error) as exc:
        log.error("could not drop temporary database %r: %s", dbname, exc)


def _load(
    tools: PgTools,
    settings: PgSettings,
    dbname: str,
    checked: archives.CheckedArchive,
    jobs: int,
) -> None:
    label = checked.source.label
    if checked.dump_format == "custom":
        returncode, stderr = pg_restore.run_restore(
            tools, settings, dbname, checked.dump, jobs, dump_format="custom"
        )
        for error in pg_restore.parse_errors(stderr):
            reason = error.harmless_reason()
            if reason is None:
                detail = "".join(
                    f"\n{text}" for text in (error.hint, error.command) if text
                )
                raise BackupFailed(
                    f"pg_restore of {label} failed: {error.message}{detail}",
                    hint="nothing was published; fix the cause (a missing extension, "
                    "for example) and import again",
                )
            log.info("tolerated pg_restore error: %s (%s)", error.message, reason)
        if returncode != 0 and not pg_restore.parse_errors(stderr):
            raise BackupFailed(
                f"pg_restore of {label} failed with exit code {returncode}: "
                f"{stderr.strip()[-2000:]}"
            )
        return
    _run_psql(tools, settings, dbname, checked.dump, label)


def _run_psql(
    tools: PgTools, settings: PgSettings, dbname: str, dump: Path, label: str
) -> None:
    """Load a plain dump with psql as Odoo's database manager does, stopping at errors.

    psql reads the dump from a pipe behind its `\\restrict` line
    (`archives.restricted_script`), so it runs none of the dump's meta-commands.
    `--single-transaction` leaves the database empty after a failed statement,
    and `-X` keeps the user's ~/.psqlrc out.
    """
    command = [
        tools.psql,
        "-X",
        "--quiet",
        "--no-psqlrc",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        f"--dbname={settings.conninfo(dbname)}",
        "--file=-",
    ]
    process = subprocess.Popen(
        dying_with_parent(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=settings.subprocess_env(),
    )
    assert process.stdin is not None and process.stderr is not None
    feeder = threading.Thread(
        target=_feed, args=(process.stdin, dump), name="psql-input", daemon=True
    )
    feeder.start()
    lines: deque[str] = deque(maxlen=STDERR_LINES)
    for raw in process.stderr:
        lines.append(raw.decode("utf-8", errors="replace").rstrip())
    returncode = process.wait()
    feeder.join()
    if returncode != 0:
        text = "\n".join(lines)
        raise BackupFailed(
            f"psql could not load the dump of {label} "
            f"(exit code {returncode}):\n{text}",
            hint="nothing was published; fix the cause PostgreSQL names (a missing "
            "role or extension, for example) and import again",
        )


def _feed(stdin: IO[bytes], dump: Path) -> None:
    """Write the restricted dump to psql; psql stopping at an error ends it early."""
    try:
        with stdin:
            for line in archives.restricted_script(dump, secrets.token_hex(16)):
                stdin.write(line)
    except OSError as exc:
        log.debug("psql stopped reading the dump: %s", exc)
