"""Run pg_dump in directory format inside an exported snapshot."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from odoo_dr.pg.binaries import PgTools
from odoo_dr.pg.connection import PgSettings

log = logging.getLogger(__name__)


def start_dump(
    tools: PgTools,
    settings: PgSettings,
    dbname: str,
    snapshot: str,
    folder: Path,
    jobs: int,
    stderr_path: Path,
) -> subprocess.Popen:
    """Start pg_dump writing uncompressed table files to `folder`.

    Uncompressed output lets unchanged tables produce identical files, which the
    repository stores once; the repository compresses each chunk with zstd.
    """
    command = [
        tools.pg_dump,
        "--format=directory",
        f"--jobs={jobs}",
        "--compress=0",
        "--no-sync",
        f"--snapshot={snapshot}",
        f"--file={folder}",
        f"--dbname={settings.conninfo(dbname)}",
    ]
    log.debug("starting %s", " ".join(command[:-1]))
    with open(stderr_path, "wb") as stderr:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=settings.subprocess_env(),
        )


def error_text(stderr_path: Path, limit: int = 20) -> str:
    try:
        lines = stderr_path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-limit:])
