"""A private, temporary redis-server that loads an RDB file for a restore.

The server listens on a free port of 127.0.0.1 only, requires a random password
(given on its standard input, never in its arguments), never saves, and stops with
the restore.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from odoo_dr.errors import OdooDrError, RestoreFailed
from odoo_dr.imports import lazy_module
from odoo_dr.processes import dying_with_parent

redis = lazy_module("redis")

log = logging.getLogger(__name__)

# Loading a large RDB file may take minutes; the server replies LOADING meanwhile.
LOAD_TIMEOUT = 1800.0
_PORT_ATTEMPTS = 3
# redis-server's default number of databases; it rejects an RDB file with more.
DEFAULT_DATABASES = 16
_UNSUPPORTED_RDB = re.compile(r"Can't handle RDB format version (\d+)")


def find_binary(name: str, variable: str, error: type[OdooDrError]) -> str:
    """Return the path of a Redis program from `$variable`, else from PATH.

    Raises `error` (the failure of the calling operation) when there is none.
    """
    configured = os.environ.get(variable)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise error(
                f"${variable} is {configured!r}, which is not an executable file",
                hint=f"set ${variable} to the path of {name}, or unset it",
            )
        return configured
    found = shutil.which(name)
    if found is None:
        package = "redis-tools" if name == "redis-cli" else "redis-server"
        raise error(
            f"{name} not found on PATH",
            hint=f"install it with 'apt install {package}', or set ${variable} "
            "to its path",
        )
    return found


def no_retry() -> redis.retry.Retry:
    """Return the retry policy of odoo-dr's Redis clients: fail at once.

    redis-py 8 retries a failed command three times with backoff of up to 10 s by
    default, which turns a refused connection or a timeout into a long wait.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TemporaryRedis:
    """A redis-server over `folder/dbfilename`; use it as a context manager.

    `databases` must exceed the highest db number of the RDB file, which the
    server would otherwise reject.
    """

    def __init__(
        self,
        binary: str,
        folder: Path,
        dbfilename: str,
        databases: int = DEFAULT_DATABASES,
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.dbfilename = dbfilename
        self.databases = max(databases, DEFAULT_DATABASES)
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "redis-server.log"

    def __enter__(self) -> TemporaryRedis:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            password=self.password,
            retry=no_retry(),
        )

    def start(self) -> None:
        """Start the server and wait until it has loaded the RDB file.

        Another process may take the free port between the probe and the server's
        bind, so a server that cannot bind is started again on another port.
        """
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._launch()
            if self._wait_loaded():
                log.info(
                    "temporary redis-server pid=%d port=%d loaded %s",
                    self.process.pid,
                    self.port,
                    self.dbfilename,
                )
                return
            text = self._log_text()
            if "Address already in use" in text and attempt < _PORT_ATTEMPTS:
                log.debug("port %d was taken, starting on another one", self.port)
                continue
            self._raise_start_failure(text)

    def _launch(self) -> None:
        self.port = _free_port()
        command = [
            self.binary,
            "-",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--dbfilename", self.dbfilename,
            "--save", "",
            "--appendonly", "no",
            "--databases", str(self.databases),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            dying_with_parent(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # redis-server reads the configuration file "-" from standard input before
        # it applies the options of its command line.
        self.process.stdin.write(f"requirepass {self.password}\n".encode())
        self.process.stdin.close()

    def _wait_loaded(self) -> bool:
        """Return True once the server replies to PING, False if it exited."""
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            client = self.client()
            try:
                if client.ping():
                    return True
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            finally:
                client.close()
            time.sleep(0.05)
        self.stop()
        raise RestoreFailed(
            f"the temporary redis-server did not load {self.dbfilename} within "
            f"{LOAD_TIMEOUT:.0f} s",
            hint="check free memory: the server holds the whole data set in memory",
        )

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _raise_start_failure(self, text: str) -> None:
        version = _UNSUPPORTED_RDB.search(text)
        if version is not None:
            raise RestoreFailed(
                f"{self.binary} cannot load RDB format version {version[1]} of the "
                "snapshot: the snapshot comes from a newer Redis",
                hint="install a redis-server at least as new as the snapshot's Redis "
                "and point $ODOO_DR_REDIS_SERVER at it",
            )
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {self.process.returncode}"
        raise RestoreFailed(
            f"the temporary redis-server failed to load {self.dbfilename}: {last}",
            hint="an RDB file the server rejects after its checksum matched is "
            "written by another Redis; see the server's message",
        )

    def stop(self) -> None:
        """Stop the server without saving (it has no save points)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
