"""A PostgreSQL cluster of the benchmark's own, made with initdb, for pgBackRest.

PostgreSQL refuses to run as root, so when the benchmark runs as root the cluster
and pgBackRest run as the `postgres` OS user, in a folder under /var/tmp that it
owns. Unlike the test suite's cluster, this one keeps PostgreSQL's default
durability settings (fsync on), so that the writes the benchmark times cost what
they cost on a production server.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from odoo_dr.pg.binaries import find_program
from odoo_dr.pg.connection import PgSettings

MAJOR = 15
OS_USER = "postgres"
STANZA = "bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(OS_USER)
    return entry.pw_uid, entry.pw_gid


def run_as_owner(args: list[str]) -> subprocess.CompletedProcess:
    """Run `args` as the cluster's OS user (when root); raise on a non-zero exit."""
    owner = _owner()
    extra = {}
    if owner is not None:
        extra = {"user": owner[0], "group": owner[1], "extra_groups": []}
    result = subprocess.run(args, capture_output=True, text=True, check=False, **extra)
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} exited with {result.returncode}:\n"
            f"{result.stderr[-2000:]}"
        )
    return result


@dataclass
class BenchCluster:
    """One initdb cluster listening on 127.0.0.1:`port` and on its own socket."""

    root: Path
    port: int
    stanza: str = STANZA
    # The test suite turns fsync off: its clusters are thrown away.
    fsync: bool = True
    prefix: str = "odoo-dr-bench-pitr-"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "socket"

    @property
    def config_path(self) -> Path:
        return self.root / "pgbackrest"

    @property
    def archive_repo(self) -> Path:
        return self.root / "archive-repo"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres"

    @property
    def settings(self) -> PgSettings:
        return PgSettings(
            params={"host": "127.0.0.1", "port": str(self.port), "user": "postgres"}
        )

    def pitr_options(self) -> list[str]:
        """Return the options that name this cluster's stanza to odoo-dr."""
        return [
            "--stanza",
            self.stanza,
            "--pgbackrest-config-path",
            str(self.config_path),
        ]

    def setup_options(self) -> list[str]:
        """Return the options of `odoo-dr pitr setup` for this cluster."""
        return [
            *self.pitr_options(),
            "--pitr-repo",
            str(self.archive_repo),
            "--log-path",
            str(self.root / "log"),
            "--lock-path",
            str(self.root / "lock"),
            "--dsn",
            self.dsn,
        ]

    @classmethod
    def create(cls, port: int, **settings: object) -> BenchCluster:
        """Run initdb in a new folder under /var/tmp and start the server."""
        prefix = str(settings.get("prefix", cls.prefix))
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
        root.chmod(0o755)
        cluster = cls(root, port, **settings)  # type: ignore[arg-type]
        for folder in ("socket", "log", "lock", "archive-repo", "pgbackrest"):
            (root / folder).mkdir()
        owner = _owner()
        if owner is not None:
            for path in [root, *root.iterdir()]:
                os.chown(path, *owner)
        run_as_owner(
            [
                find_program("initdb", MAJOR),
                "-D",
                str(cluster.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                *([] if cluster.fsync else ["--no-sync"]),
            ]
        )
        cluster.start()
        return cluster

    def start(self) -> None:
        run_as_owner(
            [
                find_program("pg_ctl", MAJOR),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log" / "server.log"),
                "-w",
                "-o",
                f"-p {self.port} -k {self.socket} -c listen_addresses=127.0.0.1"
                + ("" if self.fsync else " -c fsync=off"),
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it runs; a server already stopped is no error."""
        args = [find_program("pg_ctl", MAJOR), "stop", "-D", str(self.data)]
        owner = _owner()
        subprocess.run(
            [*args, "-m", mode],
            capture_output=True,
            check=False,
            **({"user": owner[0], "group": owner[1]} if owner else {}),
        )

    def remove(self) -> None:
        # Immediate: a fast shutdown waits for the archiver, which may be trying
        # to reach an archive that is already gone.
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, dbname: str, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(
            self.settings.conninfo(dbname), autocommit=True
        ) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def archive_now(self, timeout: float = 120) -> str:
        """Switch to a new WAL segment, wait until it is archived; return its name."""
        switched = self.execute("postgres", "SELECT pg_walfile_name(pg_switch_wal())")
        segment = switched[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.execute(
                "postgres", "SELECT last_archived_wal FROM pg_stat_archiver"
            )
            if row and row[0][0] and row[0][0] >= segment:
                return segment
            time.sleep(0.2)
        raise RuntimeError(f"WAL segment {segment} was not archived within {timeout} s")

    def archive_files(self) -> dict[str, str]:
        """Return every file of the pgBackRest repository with its SHA-256."""
        found = {}
        for path in sorted(self.archive_repo.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(self.archive_repo))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
        return found
