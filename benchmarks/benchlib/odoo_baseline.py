"""The baseline: backup and restore the way Odoo 17's database manager does them.

This re-implements the zip format of `dump_db` and `restore_db` in Odoo 17's
`odoo/service/db.py`, without the steps that need a running Odoo (the HTTP transfer,
loading the registry).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr.demo import builder
from odoo_dr.pg.binaries import PgTools
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings

log = logging.getLogger("benchmark")


def zip_folder(folder: Path, stream, first: str) -> None:
    """Zip `folder` the way `odoo.tools.osutil.zip_dir` does with include_dir=False.

    Member names are relative to `folder`, every file is compressed with
    ZIP_DEFLATED at zlib's default level, and in each folder the file `first`
    comes before the others (Odoo puts dump.sql first).
    """
    root = os.path.normpath(folder)
    skipped = {".pyc", ".pyo", ".swp", ".DS_Store"}
    with zipfile.ZipFile(
        stream, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
    ) as archive:
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in sorted(filenames, key=lambda item: item != first):
                stem, extension = os.path.splitext(name)
                if (extension or stem) in skipped:
                    continue
                path = os.path.normpath(os.path.join(dirpath, name))
                if os.path.isfile(path):
                    archive.write(path, os.path.relpath(path, root))


def odoo_manifest(settings: PgSettings, dbname: str) -> dict:
    """Return the manifest.json content that Odoo 17's dump_db_manifest writes."""
    with settings.connect(dbname) as connection:
        number = connection.info.server_version
        modules = dict(
            connection.execute(
                "SELECT name, latest_version FROM ir_module_module"
                " WHERE state = 'installed'"
            ).fetchall()
        )
    return {
        "odoo_dump": "1",
        "db_name": dbname,
        "version": builder.ODOO_VERSION,
        "version_info": [17, 0, 0, "final", 0, ""],
        "major_version": builder.ODOO_VERSION,
        "pg_version": "{}.{}".format(*divmod(int(number / 100), 100)),
        "modules": modules,
    }


class Steps:
    """Wall times of the named steps of one run, in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, action: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = action()
        self.seconds[name] = round(time.perf_counter() - started, 3)
        return result


def baseline_backup(
    settings: PgSettings,
    tools: PgTools,
    dbname: str,
    filestore_root: Path,
    zip_path: Path,
) -> dict:
    """Back up like Odoo's database manager: copy, manifest, pg_dump, zip."""
    steps = Steps()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-odoo-dump-") as dump_dir:
        work = Path(dump_dir)
        filestore = filestore_root / dbname
        if filestore.exists():
            steps.run(
                "copy filestore",
                lambda: shutil.copytree(filestore, work / "filestore"),
            )
        manifest = odoo_manifest(settings, dbname)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=4))
        steps.run(
            "pg_dump",
            lambda: subprocess.run(
                [tools.pg_dump, "--no-owner", f"--file={work / 'dump.sql'}", dbname],
                env=settings.subprocess_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                check=True,
            ),
        )
        dump_bytes = (work / "dump.sql").stat().st_size
        with open(zip_path, "wb") as stream:
            steps.run("zip", lambda: zip_folder(work, stream, "dump.sql"))
        cleanup_started = time.perf_counter()
    steps.seconds["remove temporary folder"] = round(
        time.perf_counter() - cleanup_started, 3
    )
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "steps": steps.seconds,
        "dump_sql_bytes": dump_bytes,
        "zip_bytes": zip_path.stat().st_size,
    }


def _create_empty_database(settings: PgSettings, dbname: str) -> None:
    """Create a database the way Odoo 17's `_create_empty_database` does."""
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'unicode' LC_COLLATE 'C'"
                " TEMPLATE template0"
            ).format(sql.Identifier(dbname))
        )
    with settings.connect(dbname, autocommit=True) as connection:
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except psycopg.Error as exc:
            log.warning("baseline restore: cannot create extension pg_trgm: %s", exc)
        connection.execute("GRANT CREATE ON SCHEMA PUBLIC TO PUBLIC")


def _new_copy_identity(settings: PgSettings, dbname: str) -> None:
    """Give the restored copy a new uuid and secret, as Odoo does for a copy."""
    with settings.connect(dbname) as connection:
        connection.execute(
            "UPDATE ir_config_parameter SET value = gen_random_uuid()::text"
            " WHERE key IN ('database.uuid', 'database.secret')"
        )
        connection.execute(
            "UPDATE ir_config_parameter SET value = now()::timestamp(0)::text"
            " WHERE key = 'database.create_date'"
        )
        connection.commit()


def baseline_restore(
    settings: PgSettings,
    tools: PgTools,
    zip_path: Path,
    dbname: str,
    filestore_root: Path,
) -> dict:
    """Restore like Odoo's database manager: createdb, unzip, psql, move files."""
    steps = Steps()
    started = time.perf_counter()
    steps.run("create database", lambda: _create_empty_database(settings, dbname))
    with tempfile.TemporaryDirectory(prefix="bench-odoo-restore-") as dump_dir:
        work = Path(dump_dir)

        def unzip() -> None:
            with zipfile.ZipFile(zip_path) as archive:
                members = [
                    name for name in archive.namelist() if name.startswith("filestore/")
                ]
                archive.extractall(work, ["dump.sql", *members])

        steps.run("unzip", unzip)
        result = steps.run(
            "psql",
            lambda: subprocess.run(
                [tools.psql, f"--dbname={dbname}", "-q", "-f", str(work / "dump.sql")],
                env=settings.subprocess_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
            ),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"psql -f dump.sql into {dbname} failed with exit code "
                f"{result.returncode}: {result.stderr[-2000:]}"
            )
        steps.run("new identity", lambda: _new_copy_identity(settings, dbname))
        steps.run(
            "move filestore",
            lambda: shutil.move(work / "filestore", filestore_root / dbname),
        )
        cleanup_started = time.perf_counter()
    steps.seconds["remove temporary folder"] = round(
        time.perf_counter() - cleanup_started, 3
    )
    return {"seconds": round(time.perf_counter() - started, 3), "steps": steps.seconds}
