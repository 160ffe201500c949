"""Export a snapshot as an archive that Odoo's own tools restore.

- `zip`: Odoo's database-manager layout, `dump.sql` (plain SQL, which
  `pg_restore --file` writes from the snapshot's directory dump without a
  database), `filestore/` and `manifest.json`.
- `folder`: click-odoo-contrib's folder layout, `db.dump` (custom format),
  `filestore/` and `manifest.json`.
- `dump`: one `pg_dump --format=c` file, without the filestore.

pg_restore cannot turn a directory dump into a custom-format one, so `folder` and
`dump` restore the snapshot into a hidden temporary database (marked like a
restore's, see `pg.temporary`) and run `pg_dump --format=c --no-owner` on it.
Everything is written under a temporary name beside the output and renamed to it
only when complete.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr import tempfiles
from odoo_dr.engine.filestore_restore import restore_files
from odoo_dr.engine.restore import _write_dump, clean_leftovers
from odoo_dr.engine.restore_plan import load_index
from odoo_dr.errors import OdooDrError, RejectedError, RestoreFailed
from odoo_dr.odoo import archives
from odoo_dr.pg import restore as pg_restore
from odoo_dr.pg import temporary
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import server_version
from odoo_dr.processes import dying_with_parent
from odoo_dr.repository.local import LocalBackend
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

FORMATS = ("zip", "folder", "dump")
SUFFIXES = {"zip": ".zip", "folder": "", "dump": ".dump"}
STDERR_LINES = 40
# The errors of a file system that has no hard links.
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP}
# Modes of the published archive and of everything in a folder archive.
FILE_MODE = 0o600
FOLDER_MODE = 0o700


@dataclass(frozen=True)
class ExportOptions:
    format: str
    output: Path | None = None
    jobs: int = 2


def default_output(manifest: SnapshotManifest, export_format: str) -> Path:
    """Return `<database>-<snapshot id>` with the format's suffix, in this folder."""
    name = manifest.database.name.replace(os.sep, "_")
    return Path.cwd() / f"{name}-{manifest.id}{SUFFIXES[export_format]}"


def odoo_manifest(manifest: SnapshotManifest) -> dict:
    """Return manifest.json as Odoo's `dump_db_manifest` writes it.

    Odoo records its release (`16.0`) where odoo-dr stores the `base` module's
    version (`16.0.1.3`), whose first two numbers are that release. Odoo's
    `pg_version` is `"%d.%d" % divmod(server_version_num / 100, 100)`, which is
    `15.0` for every PostgreSQL 15 and `9.5` for 9.5.x.
    """
    base = manifest.odoo.version or ""
    numbers = [part for part in base.split(".")[:2] if part.isdigit()]
    release = ".".join(numbers) if len(numbers) == 2 else base
    version_info: list = [int(part) for part in numbers] + [0, "final", 0, ""]
    major = manifest.postgres.server_major
    if major >= 10:
        pg_version = f"{major}.0"
    else:
        minor = manifest.postgres.server_version.split(".")[1:2] or ["0"]
        pg_version = f"{major}.{minor[0]}"
    return {
        "odoo_dump": "1",
        "db_name": manifest.database.name,
        "version": release,
        "version_info": version_info,
        "major_version": release,
        "pg_version": pg_version,
        "modules": dict(manifest.odoo.modules),
    }


def _reject_inside_repository(repository: Repository, output: Path) -> None:
    """Reject an output inside a local repository, where it would be written in clear.

    The archive and its work folder are written beside the output, so they would
    put the snapshot's data unencrypted among the repository's objects.
    """
    if not isinstance(repository.backend, LocalBackend):
        return
    root = repository.backend.root.resolve()
    folder = output.parent.resolve()
    if folder == root or root in folder.parents:
        raise RejectedError(
            f"{output} is inside the repository {repository.backend.root}",
            hint="pass an --output outside the repository folder",
        )


def run_export(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: ExportOptions,
) -> Path:
    """Write the archive and return its path."""
    if options.format not in FORMATS:
        raise RejectedError(
            f"unknown export format {options.format!r}",
            hint="use zip, folder or dump",
        )

    output = (options.output or default_output(manifest, options.format)).absolute()
    if output.exists() or output.is_symlink():
        raise RejectedError(
            f"{output} already exists",
            hint="remove it or pass another --output",
        )
    if not output.parent.is_dir():
        raise RejectedError(
            f"folder {output.parent} of --output not found",
            hint="create the folder first, or pass an --output in an existing one",
        )
    _reject_inside_repository(repository, output)
    problem = manifest.dump_problem()
    if problem is not None:
        raise RejectedError(f"snapshot {manifest.id} cannot be exported: {problem}")

    tools = find_tools(
        manifest.postgres.pg_dump_major, f"exporting snapshot {manifest.id}"
    )

    tempfiles.remove_stale(output.parent)
    partial = output.parent / tempfiles.temporary_name("export", prefix="odoo-dr-")
    work = tempfiles.make_folder(output.parent, "exportwork")
    try:
        _write(repository, settings, manifest, options, tools, work, partial)
        _restrict_modes(partial)
        _publish(partial, output)
    except FileExistsError:
        raise RejectedError(
            f"{output} already exists: another run wrote it during this export",
            hint="remove it or pass another --output",
        ) from None
    except OSError as exc:
        where = f" on {exc.filename}" if exc.filename else ""
        raise RestoreFailed(
            f"export of snapshot {manifest.id} failed{where}: {exc.strerror or exc}",
            hint=f"nothing was written to {output}; free space or pass another "
            "--output",
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    return output


def _publish(partial: Path, output: Path) -> None:
    """Give the finished archive its name, never replacing an output made meanwhile.

    A file is hard-linked, which fails when the name exists, and its temporary
    name is removed by the caller. A folder is renamed onto an empty folder made
    here first, since rename would replace someone else's empty folder.
    """
    if partial.is_dir():
        output.mkdir(mode=FOLDER_MODE)
        os.rename(partial, output)
        return
    try:
        os.link(partial, output)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        # NOTE: without hard links (FAT, some network mounts) an output made
        # between this check and the rename is still replaced.
        if output.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(output)) from None
        os.rename(partial, output)


def _restrict_modes(partial: Path) -> None:
    """Give the archive, and each file and folder in it, modes only its owner may
    read, whatever the umask: an export contains the whole database."""
    if not partial.is_dir():
        os.chmod(partial, FILE_MODE)
        return
    os.chmod(partial, FOLDER_MODE)
    for folder, folders, files in os.walk(partial):
        for name in folders:
            os.chmod(os.path.join(folder, name), FOLDER_MODE)
        for name in files:
            os.chmod(os.path.join(folder, name), FILE_MODE)


def _write(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: ExportOptions,
    tools: PgTools,
    work: Path,
    partial: Path,
) -> None:
    if options.format != "folder":
        # Created empty first, so that the writers keep its mode while they fill it.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    dump_folder = work / "dump"
    _write_dump(repository, manifest, dump_folder, options.jobs)
    manifest_json = json.dumps(odoo_manifest(manifest), indent=4).encode()
    if options.format == "dump":
        _custom_dump(settings, manifest, tools, dump_folder, partial, options.jobs)
        return
    filestore = work / "filestore"
    restore_files(repository, load_index(repository, manifest), filestore, options.jobs)
    if options.format == "folder":
        partial.mkdir(mode=FOLDER_MODE)
        _custom_dump(
            settings,
            manifest,
            tools,
            dump_folder,
            partial / archives.CUSTOM_DUMP,
            options.jobs,
        )
        (partial / archives.MANIFEST).write_bytes(manifest_json)
        filestore.rename(partial / archives.FILESTORE)
        return
    plain = work / archives.PLAIN_DUMP
    _run(
        [tools.pg_restore, "--no-owner", f"--file={plain}", str(dump_folder)],
        "pg_restore",
        manifest,
    )
    shutil.rmtree(dump_folder)
    _write_zip(partial, plain, manifest_json, filestore)


def _write_zip(path: Path, plain: Path, manifest_json: bytes, filestore: Path) -> None:
    """Write the zip as Odoo's `zip_dir` does: deflated, zip64 where needed."""
    with zipfile.ZipFile(
        path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
    ) as archive:
        archive.write(plain, archives.PLAIN_DUMP)
        archive.writestr(archives.MANIFEST, manifest_json)
        for file in sorted(filestore.rglob("*")):
            if file.is_file():
                name = f"{archives.FILESTORE}/{file.relative_to(filestore).as_posix()}"
                archive.write(file, name)


def _run(command: list[str], program: str, manifest: SnapshotManifest) -> None:
    process = subprocess.Popen(
        dying_with_parent(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: deque[str] = deque(maxlen=STDERR_LINES)
    for raw in process.stderr:
        lines.append(raw.decode("utf-8", errors="replace").rstrip())
    if process.wait() != 0:
        text = "\n".join(lines)
        raise RestoreFailed(
            f"{program} failed while exporting snapshot {manifest.id}:\n{text}",
            hint="nothing was written to the output",
        )


def _database_options(manifest: SnapshotManifest) -> sql.Composable:
    info = manifest.database
    return sql.SQL(
        "TEMPLATE template0 ENCODING {encoding} LC_COLLATE {collate} LC_CTYPE {ctype}"
    ).format(
        encoding=sql.Literal(info.encoding),
        collate=sql.Literal(info.collate),
        ctype=sql.Literal(info.ctype),
    )


def _custom_dump(
    settings: PgSettings,
    manifest: SnapshotManifest,
    tools: PgTools,
    dump_folder: Path,
    target: Path,
    jobs: int,
) -> None:
    """Write a custom-format dump of the snapshot through a temporary database."""
    clean_leftovers(settings, None)
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version_text, major = server_version(connection)
    server_tools = find_tools(
        max(major, tools.major), f"exporting into PostgreSQL {version_text}"
    )
    dbname = temporary.new_temporary_name()
    created = False
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            created = True
            temporary.create_temporary(connection, dbname, _database_options(manifest))
        with temporary.kept_marked(settings, dbname, "temporary"):
            _restore_into(server_tools, settings, dbname, dump_folder, jobs, manifest)
            command = [
                server_tools.pg_dump,
                "--format=custom",
                "--no-owner",
                f"--file={target}",
                f"--dbname={settings.conninfo(dbname)}",
            ]
            process = subprocess.run(
                dying_with_parent(command),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                env=settings.subprocess_env(),
                check=False,
            )
            if process.returncode != 0:
                raise RestoreFailed(
                    f"pg_dump failed while exporting snapshot {manifest.id}:\n"
                    f"{process.stderr.strip()[-2000:]}",
                    hint="nothing was written to the output",
                )
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise RestoreFailed(
            f"export of snapshot {manifest.id} failed: {first_line}"
        ) from None
    finally:
        if created:
            try:
                with settings.connect(
                    MAINTENANCE_DATABASE, autocommit=True
                ) as connection:
                    temporary.drop(connection, dbname)
            except (OdooDrError, psycopg.Error) as exc:
                log.error("could not drop temporary database %r: %s", dbname, exc)


def _restore_into(
    tools: PgTools,
    settings: PgSettings,
    dbname: str,
    dump_folder: Path,
    jobs: int,
    manifest: SnapshotManifest,
) -> None:
    returncode, stderr = pg_restore.run_restore(
        tools, settings, dbname, dump_folder, jobs
    )
    errors = pg_restore.parse_errors(stderr)
    for error in errors:
        if error.harmless_reason() is None:
            raise RestoreFailed(
                f"pg_restore failed while exporting snapshot {manifest.id}: "
                f"{error.message}"
            )
    if returncode != 0 and not errors:
        raise RestoreFailed(
            f"pg_restore failed with exit code {returncode} while exporting "
            f"snapshot {manifest.id}: {stderr.strip()[-2000:]}"
        )
