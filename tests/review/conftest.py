"""Real servers for the live-evidence rules, and rule fixtures bound to them.

Each server starts on a free port on 127.0.0.1 the first time a test needs it, and
stops when the session ends:

- S3: moto's standalone server over real HTTP (started by `s3_endpoint` in
  tests/conftest.py), with buckets that have versioning, Object Lock, lifecycle
  rules, default encryption and replication, or none of it.
- PostgreSQL: clusters made with initdb in temporary folders. `pg_archiving`
  archives WAL with `cp` and has a streaming standby; `pg_broken_archiver` has an
  archive_command that always fails; `pg_plain` does not archive but has a
  restore_command and a recovery target set, a superuser role for Odoo, and a
  database that no backup includes.
- Redis: `redis_persistent` (AOF and RDB), `redis_volatile` (no persistence) and
  `redis_broken` (RDB whose folder was removed, so saves fail).

`materialize` copies a rule fixture (see rule_cases.py) and replaces `${NAME}` in
its files by the address of the server NAME (see PLACEHOLDERS).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from tests.review.live_servers import (
    PgCluster,
    RedisServer,
    archiver_counts,
    bgsave_status,
    create_buckets,
    free_port,
    make_cluster,
    new_root,
    refresh_archive,
    run_as_postgres,
    start_redis,
    switch_wal,
    wait_until,
)
from tests.review.rule_cases import FIXTURES, build_repositories

# -- S3 (moto)


@pytest.fixture(scope="session")
def s3_endpoint(s3_endpoint: str) -> str:
    """Add the review's buckets to the moto server of tests/conftest.py."""
    import boto3

    create_buckets(boto3, s3_endpoint)
    return s3_endpoint


# -- PostgreSQL clusters


@pytest.fixture(scope="session")
def pg_archiving() -> Iterator[PgCluster]:
    """A primary that archives WAL with cp, with one streaming standby."""
    primary = make_cluster(
        "archiving",
        {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": "'cp %p {root}/archive/%f'",
            "restore_command": "'cp {root}/archive/%f %p'",
            "archive_timeout": "60",
            "max_wal_senders": "5",
        },
    )
    standby = None
    try:
        (primary.root / "archive").mkdir()
        if os.geteuid() == 0:
            shutil.chown(primary.root / "archive", "postgres", "postgres")
        with primary.connect() as connection:
            connection.execute("CREATE DATABASE acme")
            connection.execute("CREATE ROLE odoo LOGIN CREATEDB")
            connection.execute("CREATE ROLE backup LOGIN")
            connection.execute("GRANT pg_read_all_data TO backup")
            connection.execute("CREATE ROLE reviewer LOGIN")
        refresh_archive(primary)
        standby = PgCluster(new_root("standby"), free_port(), primary.bindir)
        subprocess.run(
            run_as_postgres(
                [str(primary.bindir / "pg_basebackup"), "-h", "127.0.0.1"]
                + ["-p", str(primary.port), "-U", "postgres", "-D", str(standby.data)]
                + ["-R", "-X", "stream", "-c", "fast"]
            ),
            check=True,
            capture_output=True,
        )
        with (standby.data / "postgresql.conf").open("a") as conf:
            conf.write(f"unix_socket_directories = '{standby.root}'\n")
            # Report replay progress every second, not every 10 s, so the primary
            # receives the standby's replay_lsn soon (see `streaming`).
            conf.write("wal_receiver_status_interval = 1\n")
        standby.start()

        def streaming() -> bool:
            # replay_lsn stays NULL until the standby reports its first replay,
            # and the replica's lag in bytes is read from it.
            with primary.connect() as connection:
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_replication"
                    " WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
                ).fetchone()
            return row[0] == 1

        wait_until(streaming, "the standby to stream")
        yield primary
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


@pytest.fixture(scope="session")
def pg_broken_archiver() -> Iterator[PgCluster]:
    """A primary whose archive_command always fails."""
    cluster = make_cluster(
        "broken",
        {"archive_mode": "on", "archive_command": "'/bin/false'"},
    )
    try:
        with cluster.connect() as connection:
            connection.execute("CREATE DATABASE acme")
        switch_wal(cluster)
        wait_until(lambda: archiver_counts(cluster)[1] > 0, "an archive failure")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_plain() -> Iterator[PgCluster]:
    """A primary without archiving, with recovery settings that need it."""
    cluster = make_cluster(
        "plain",
        {
            "archive_mode": "off",
            "restore_command": "'cp /nonexistent/%f %p'",
            "recovery_target_time": "'2024-01-01 00:00:00+00'",
        },
    )
    try:
        with cluster.connect() as connection:
            connection.execute("CREATE DATABASE acme")
            connection.execute("CREATE DATABASE forgotten_copy")
            connection.execute("CREATE ROLE odoo_admin LOGIN SUPERUSER")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_persistent() -> Iterator[RedisServer]:
    server = start_redis(
        "persistent",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "900 1 60 100",
    )
    try:
        client = server.client()
        client.set("session:abc", "user 7")
        client.bgsave()
        wait_until(lambda: bgsave_status(server) == "ok", "an RDB save")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_volatile() -> Iterator[RedisServer]:
    server = start_redis("volatile", "--save", "", "--appendonly", "no")
    try:
        # A user that may not run CONFIG, as on managed services.
        server.client().execute_command(
            "ACL",
            "SETUSER",
            "reviewer",
            "on",
            ">review-secret",
            "~*",
            "+@all",
            "-config",
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_broken() -> Iterator[RedisServer]:
    """RDB persistence whose folder was removed after start, so saves fail."""
    server = start_redis("broken", "--save", "3600 1", "--appendonly", "no")
    try:
        client = server.client()
        client.set("queue:job", "send invoice")
        shutil.rmtree(server.folder / "data")
        client.bgsave()
        wait_until(lambda: bgsave_status(server) == "err", "a failed RDB save")
        yield server
    finally:
        server.stop()


# -- rule fixtures

# Placeholder name: (fixture name, attribute giving the text).
PLACEHOLDERS = {
    "PG_ARCHIVING": ("pg_archiving", "dsn"),
    "PG_BROKEN": ("pg_broken_archiver", "dsn"),
    "PG_PLAIN": ("pg_plain", "dsn"),
    "REDIS_PERSISTENT": ("redis_persistent", "url"),
    "REDIS_VOLATILE": ("redis_volatile", "url"),
    "REDIS_BROKEN": ("redis_broken", "url"),
    "S3_ENDPOINT": ("s3_endpoint", None),
}
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
_TEXT_SUFFIXES = {".yaml", ".yml", ".json", ".conf"}


@pytest.fixture
def materialize(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Path]:
    """Copy a rule fixture into tmp_path with servers started and placeholders
    filled; return the copy's folder."""

    def build(rule_id: str, case: str) -> Path:
        target = tmp_path / rule_id / case
        shutil.copytree(FIXTURES / rule_id / case, target)
        values: dict[str, str] = {}
        for path in sorted(target.rglob("*")):
            if not path.is_file() or path.suffix not in _TEXT_SUFFIXES:
                continue
            text = path.read_text()
            for name in set(_PLACEHOLDER.findall(text)):
                if name not in values:
                    values[name] = _placeholder_value(request, name)
            path.write_text(_PLACEHOLDER.sub(lambda m: values[m.group(1)], text))
        spec = target / "repository.yaml"
        if spec.is_file():
            build_repositories(target, YAML(typ="safe").load(spec.read_text()))
        return target

    return build


def _placeholder_value(request: pytest.FixtureRequest, name: str) -> str:
    fixture_name, attribute = PLACEHOLDERS[name]
    server = request.getfixturevalue(fixture_name)
    if fixture_name == "pg_archiving":
        refresh_archive(server)
    return getattr(server, attribute) if attribute else server
