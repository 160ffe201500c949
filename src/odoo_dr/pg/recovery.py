"""A recovered copy of a cluster, running where nothing else can reach it.

The server runs from a private folder: no TCP listener, a Unix socket in that folder,
and its own minimal configuration and pg_hba.conf. The settings that matter are given
on the command line, so neither the restored postgresql.conf nor its
postgresql.auto.conf can override them. archive_mode is off and archive_command is
empty, so the copy, which starts a new timeline when it is promoted, can never push
a file into the production archive.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from odoo_dr import tempfiles
from odoo_dr.errors import RejectedError, RestoreFailed
from odoo_dr.pg.binaries import find_program
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.pgbackrest import OsUser
from odoo_dr.processes import dying_with_parent

log = logging.getLogger(__name__)

# The socket's port number only names the socket file: nothing listens on TCP.
SOCKET_PORT = "5432"
# Longest socket path PostgreSQL can bind on Linux: sun_path has room for 108 bytes with
# the final NUL. A longer one fails with "could not create any Unix-domain sockets".
SOCKET_PATH_MAX = 107
_POLL_SECONDS = 0.2
# FATAL messages of a failed recovery, with what the user can change.
_EXPLAINED = {
    "recovery ended before configured recovery target was reached": (
        "the archive ends before the target time; choose a time inside the "
        "recoverable window that odoo-dr pitr status shows"
    ),
    "requested recovery stop point is before consistent recovery point": (
        "the target is before the base backup became consistent; choose a later time"
    ),
}


@dataclass
class RecoveryServer:
    """A server recovering `folder/data`; `start` it, `wait_until_promoted`, `stop`."""

    folder: Path
    major: int
    os_user: OsUser | None
    database_user: str
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # A folder of its own under the system's temporary folder, made when the
    # socket path inside `folder` would be too long; removed by `stop`.
    _short_socket_folder: Path | None = field(default=None, init=False, repr=False)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_folder(self) -> Path:
        if self._short_socket_folder is not None:
            return self._short_socket_folder
        return self.folder / "socket"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    def settings(self) -> PgSettings:
        return PgSettings(
            params={
                "host": str(self.socket_folder),
                "port": SOCKET_PORT,
                "user": self.database_user,
            }
        )

    def prepare(self) -> None:
        """Write the private configuration files and the socket folder."""
        if _socket_path_length(self.socket_folder) > SOCKET_PATH_MAX:
            self._short_socket_folder = _make_short_socket_folder(self.folder)
        self.socket_folder.mkdir(mode=0o700, exist_ok=True)
        (self.folder / "postgresql.conf").write_text(
            "# Written by odoo-dr for a recovered copy; the command line sets the "
            "rest.\n"
        )
        (self.folder / "pg_hba.conf").write_text("local all all trust\n")
        (self.folder / "pg_ident.conf").write_text("")
        if self.os_user is not None:
            for path in (
                self.socket_folder,
                self.folder / "postgresql.conf",
                self.folder / "pg_hba.conf",
                self.folder / "pg_ident.conf",
            ):
                self.os_user.give(path)

    def command(self) -> list[str]:
        settings = {
            "config_file": self.folder / "postgresql.conf",
            "hba_file": self.folder / "pg_hba.conf",
            "ident_file": self.folder / "pg_ident.conf",
            "listen_addresses": "",
            "port": SOCKET_PORT,
            "unix_socket_directories": self.socket_folder,
            "unix_socket_permissions": "0700",
            "archive_mode": "off",
            "archive_command": "",
            "archive_library": "",
            "hot_standby": "off",
            "logging_collector": "off",
            "log_destination": "stderr",
            "cluster_name": "odoo-dr-recovery",
            "shared_preload_libraries": "",
            "primary_conninfo": "",
            "synchronous_standby_names": "",
        }
        if self.major < 15:
            del settings["archive_library"]
        args = [find_program("postgres", self.major), "-D", str(self.data)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def start(self) -> None:
        self.prepare()
        user = self.os_user
        with self.log_file.open("ab") as log_output:
            self.process = subprocess.Popen(
                dying_with_parent(self.command()),
                stdin=subprocess.DEVNULL,
                stdout=log_output,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,
            )

    def wait_until_promoted(self, timeout: float) -> None:
        """Wait until recovery reached its target and the server accepts writes."""
        deadline = time.monotonic() + timeout
        settings = self.settings()
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise self._failure()
            if (self.socket_folder / f".s.PGSQL.{SOCKET_PORT}").exists():
                try:
                    with psycopg.connect(
                        settings.conninfo(MAINTENANCE_DATABASE),
                        autocommit=True,
                        connect_timeout=5,
                    ) as connection:
                        row = connection.execute(
                            "SELECT pg_is_in_recovery()"
                        ).fetchone()
                        if row is not None and not row[0]:
                            return
                except psycopg.OperationalError as exc:
                    # Refused while recovery runs; anything else is reported.
                    if "starting up" not in str(exc) and "recovery" not in str(exc):
                        log.debug("waiting for the recovered server: %s", exc)
            if time.monotonic() > deadline:
                raise RestoreFailed(
                    f"the recovered server did not finish recovery within "
                    f"{timeout:.0f} s",
                    hint=f"see its log {self.log_file}; raise --recovery-timeout "
                    "for a long WAL replay",
                )
            time.sleep(_POLL_SECONDS)

    def last_replayed(self) -> datetime | None:
        """Return the commit time of the last transaction recovery replayed."""
        with psycopg.connect(
            self.settings().conninfo(MAINTENANCE_DATABASE), autocommit=True
        ) as connection:
            row = connection.execute(
                "SELECT pg_last_xact_replay_timestamp()"
            ).fetchone()
        return row[0] if row else None

    def _failure(self) -> RestoreFailed:
        lines = self.log_file.read_text(errors="replace").splitlines()
        fatal = [line for line in lines if "FATAL:" in line or "PANIC:" in line]
        reason = fatal[-1].split(":", 3)[-1].strip() if fatal else "no FATAL message"
        hint = next(
            (text for key, text in _EXPLAINED.items() if key in reason),
            f"see the server log {self.log_file}",
        )
        return RestoreFailed(f"point-in-time recovery failed: {reason}", hint=hint)

    def stop(self) -> None:
        """Stop the server (fast shutdown, then a kill) and wait for it."""
        try:
            self._stop_process()
        finally:
            if self._short_socket_folder is not None:
                shutil.rmtree(self._short_socket_folder, ignore_errors=True)

    def _stop_process(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass


def _socket_path_length(folder: Path) -> int:
    return len(os.fsencode(folder / f".s.PGSQL.{SOCKET_PORT}"))


def _make_short_socket_folder(folder: Path) -> Path:
    """Create a private folder for the socket in the system's temporary folder."""
    short = tempfiles.make_folder(None, "socket")
    if _socket_path_length(short) > SOCKET_PATH_MAX:
        short.rmdir()
        raise RejectedError(
            f"the socket path of the server recovered in {folder} would be longer "
            f"than {SOCKET_PATH_MAX} bytes, and so would one in the temporary folder "
            f"{short.parent}",
            hint="pass a shorter --temp-dir, or set TMPDIR to a short path such as "
            "/tmp",
        )
    log.info(
        "the recovered server's socket is in %s: %s is too long a path", short, folder
    )
    return short
