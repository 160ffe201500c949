"""Run pg_dump in directory format inside an exported snapshot."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections import deque
from pathlib import Path

from odoo_dr.pg.binaries import PgTools
from odoo_dr.pg.connection import PgSettings
from odoo_dr.processes import dying_with_parent

log = logging.getLogger(__name__)

# Lines of pg_dump's error output kept for the error message.
STDERR_LINES = 40


class DumpProcess:
    """A running pg_dump whose error output is collected in memory.

    The output goes through a pipe rather than a file, so a full disk cannot hide
    pg_dump's own message about it.
    """

    def __init__(
        self,
        tools: PgTools,
        settings: PgSettings,
        dbname: str,
        snapshot: str,
        folder: Path,
        jobs: int,
    ) -> None:
        # Uncompressed output lets unchanged tables produce identical files, which the
        # repository stores once; the repository compresses each chunk with zstd.
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
        self.folder = folder
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.process = subprocess.Popen(
            dying_with_parent(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=settings.subprocess_env(),
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self._stderr.append(raw.decode("utf-8", errors="replace").rstrip())

    def wait(self) -> int:
        returncode = self.process.wait()
        self._reader.join()
        return returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()

    @property
    def error_text(self) -> str:
        return "\n".join(self._stderr)
