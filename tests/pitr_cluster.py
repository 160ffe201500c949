"""A PostgreSQL cluster of a test's own, made with initdb and archived by pgBackRest.

PostgreSQL refuses to run as root, so when the tests run as root the cluster and
pgBackRest run as the `postgres` OS user, in a folder under /var/tmp that it owns
(pytest's own temporary folders are closed to other users).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
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
CIPHER_PASS = "test-cipher-passphrase-0123456789abcdef"


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(OS_USER)
    return entry.pw_uid, entry.pw_gid


def run_as_owner(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    owner = _owner()
    if owner is not None:
        kwargs.update(user=owner[0], group=owner[1], extra_groups=[])
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


@dataclass
class Cluster:
    """One initdb cluster listening on 127.0.0.1:`port` and on its own socket."""

    root: Path
    port: int
    stanza: str = "test"

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
        return [
            "--stanza",
            self.stanza,
            "--pgbackrest-config-path",
            str(self.config_path),
        ]

    def setup_options(self) -> list[str]:
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
    def create(cls, port: int) -> Cluster:
        root = Path(tempfile.mkdtemp(prefix="odoo-dr-pitr-", dir="/var/tmp"))
        root.chmod(0o755)
        cluster = cls(root, port)
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
                "--no-sync",
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
                f"-p {self.port} -k {self.socket} -c listen_addresses=127.0.0.1 "
                "-c fsync=off",
            ]
        )

    def stop(self) -> None:
        subprocess.run(
            [find_program("pg_ctl", MAJOR), "stop", "-D", str(self.data), "-m", "fast"],
            capture_output=True,
            check=False,
            **({"user": _owner()[0]} if _owner() else {}),  # type: ignore[index]
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, dbname: str, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(
            self.settings.conninfo(dbname), autocommit=True
        ) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def archive_now(self) -> None:
        """Switch to a new WAL segment and wait until the full one is archived."""
        switched = self.execute("postgres", "SELECT pg_walfile_name(pg_switch_wal())")
        wanted = switched[0][0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = self.execute(
                "postgres", "SELECT last_archived_wal FROM pg_stat_archiver"
            )
            if row and row[0][0] and row[0][0] >= wanted:
                return
            time.sleep(0.2)
        raise AssertionError(f"WAL segment {wanted} was not archived within 60 s")

    def archive_files(self) -> dict[str, str]:
        """Return every file of the pgBackRest repository with its SHA-256."""
        found = {}
        for path in sorted(self.archive_repo.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(self.archive_repo))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
        return found
