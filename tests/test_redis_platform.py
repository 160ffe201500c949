"""Redis by role: RDB capture, storage in the repository and restore into a target.

The tests use dbs 11 and 12 of the machine's Redis on 127.0.0.1:6379 (flushed here,
and used by no other test) and redis-servers they start on free ports with a
password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import damage_blob, free_port
from odoo_dr.errors import (
    BackupFailed,
    DamagedDataFound,
    ExitCode,
    RejectedError,
    RestoreFailed,
)
from odoo_dr.platform.redis import (
    RedisSnapshot,
    capture_rdb,
    is_captured,
    parse_url,
    restore_rdb,
    roles_to_capture,
    store_rdb,
)
from odoo_dr.repository.crypto import KdfParameters
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import RedisRole

MACHINE_PORT = 6379
# Each xdist worker gets databases of its own on the machine's Redis, since both
# may run tests of this module at once.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SOURCE_DB = 11 + 2 * (_WORKER % 2)
TARGET_DB = SOURCE_DB + 1
WEEK_MS = 7 * 24 * 3600 * 1000
# Restored keys must keep their time to live, minus the seconds the test took.
TTL_TOLERANCE_MS = 120_000
FAST_KDF = KdfParameters(memory_cost=8 * 1024, iterations=1, lanes=1)


@dataclasses.dataclass
class PrivateRedis:
    process: subprocess.Popen
    port: int
    password: str

    def url(self, db: int | None = None, password: str | None = None) -> str:
        secret = self.password if password is None else password
        path = "" if db is None else f"/{db}"
        return f"redis://default:{secret}@127.0.0.1:{self.port}{path}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, password=self.password)


def start_private_redis(folder: Path) -> PrivateRedis:
    """Start a redis-server with a password on a free port, saving nothing."""
    folder.mkdir()
    password = f"pw-{uuid.uuid4().hex}"
    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "-",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            # Serve an RDB capture at once instead of after the default 5 s wait
            # for more replicas.
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str(folder / "server.log"),
        ],  # fmt: skip
        stdin=subprocess.PIPE,
    )
    process.stdin.write(f"requirepass {password}\n".encode())
    process.stdin.close()
    server = PrivateRedis(process, port, password)
    for _ in range(200):
        try:
            if server.client().ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"redis-server on port {port} did not start")


def stop(server: PrivateRedis) -> None:
    server.process.terminate()
    server.process.wait(timeout=30)


@pytest.fixture
def source_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = start_private_redis(tmp_path / "source-redis")
    yield server
    stop(server)


@pytest.fixture
def target_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = start_private_redis(tmp_path / "target-redis")
    yield server
    stop(server)


@pytest.fixture
def machine_dbs() -> Iterator[tuple[redis.Redis, redis.Redis]]:
    source = redis.Redis(port=MACHINE_PORT, db=SOURCE_DB)
    target = redis.Redis(port=MACHINE_PORT, db=TARGET_DB)
    source.flushdb()
    target.flushdb()
    yield source, target
    source.flushdb()
    target.flushdb()
    source.close()
    target.close()


def fill_odoo_like(client: redis.Redis) -> dict[str, int]:
    """Write keys of every type, with and without TTL; return PTTL by key."""
    sid = hashlib.sha1(b"session").hexdigest()
    session = {"db": "acme", "login": "admin", "uid": 2, "context": {"lang": "en_US"}}
    # A session key: one JSON value per session id, expiring after a week (the
    # SESSION_LIFETIME of Odoo 16's odoo/http.py).
    client.set(f"session:{sid}", json.dumps(session), px=WEEK_MS)
    client.set("plain", "value without expiry")
    client.set("binary", bytes(range(256)))
    client.set("short-lived", "x", px=WEEK_MS // 7)
    client.hset("hash", mapping={"a": "1", "b": "2"})
    client.rpush("list", "one", "two", "three")
    client.sadd("set", "x", "y", "z")
    client.zadd("zset", {"low": 1.5, "high": 99})
    client.xadd("stream", {"job": "send_mail", "id": "7"}, id="1-1")
    client.xadd("stream", {"job": "recompute", "id": "8"}, id="1-2")
    # More keys than one batch of the restore.
    client.mset({f"bulk:{number}": number for number in range(1200)})
    keys = client.keys("*")
    ttls = client.pipeline(transaction=False)
    for key in keys:
        ttls.pttl(key)
    return dict(zip(keys, ttls.execute(), strict=True))


def read_all(client: redis.Redis) -> dict[bytes, object]:
    """Return the content of every key of the db, read by its type.

    DUMP payloads are not compared, since the order of a hash table's elements
    differs between servers.
    """
    keys = client.keys("*")
    types = client.pipeline(transaction=False)
    for key in keys:
        types.type(key)
    reads = client.pipeline(transaction=False)
    for key, kind in zip(keys, types.execute(), strict=True):
        if kind == b"string":
            reads.get(key)
        elif kind == b"hash":
            reads.hgetall(key)
        elif kind == b"list":
            reads.lrange(key, 0, -1)
        elif kind == b"set":
            reads.smembers(key)
        elif kind == b"zset":
            reads.zrange(key, 0, -1, withscores=True)
        else:
            assert kind == b"stream", key
            reads.xrange(key)
    return dict(zip(keys, reads.execute(), strict=True))


def assert_empty_folder(folder: Path) -> None:
    assert folder.is_dir()
    assert list(folder.iterdir()) == []


def test_round_trip_every_type(tmp_path, machine_dbs):
    source, target = machine_dbs
    ttls = fill_odoo_like(source)
    expected = read_all(source)
    repository = Repository.init(str(tmp_path / "repo"))

    capture = capture_rdb(
        f"redis://127.0.0.1:{MACHINE_PORT}/{SOURCE_DB}", tmp_path / "sessions.rdb"
    )
    snapshot = store_rdb(repository, "production", "sessions", capture)
    saved = RedisSnapshot.model_validate_json(snapshot.model_dump_json())
    work = tmp_path / "work"
    result = restore_rdb(
        repository,
        saved,
        f"redis://127.0.0.1:{MACHINE_PORT}/{TARGET_DB}",
        work,
    )

    assert capture.path.read_bytes().startswith(b"REDIS")
    assert [p.name for p in tmp_path.iterdir() if "rdb" in p.name] == ["sessions.rdb"]
    assert saved == snapshot
    assert snapshot.role is RedisRole.SESSIONS
    assert snapshot.source == f"127.0.0.1:{MACHINE_PORT}/{SOURCE_DB}"
    assert snapshot.db == SOURCE_DB
    assert snapshot.keys[SOURCE_DB] == len(expected)
    assert snapshot.size == capture.path.stat().st_size
    assert snapshot.sha256 == hashlib.sha256(capture.path.read_bytes()).hexdigest()
    assert snapshot.redis_version == source.info("server")["redis_version"]
    assert result.keys == {TARGET_DB: len(expected)}
    assert result.expired == 0
    restored = read_all(target)
    assert restored.keys() == expected.keys()
    for key, content in expected.items():
        assert restored[key] == content, key
    assert target.xrange("stream")[1][1] == {b"job": b"recompute", b"id": b"8"}
    for key, ttl in ttls.items():
        restored = target.pttl(key)
        if ttl == -1:
            assert restored == -1, key
        else:
            assert ttl - TTL_TOLERANCE_MS <= restored <= ttl, key
    assert_empty_folder(work)


def test_password_never_in_arguments(tmp_path, source_redis, target_redis, monkeypatch):
    # A wrapper around the real redis-cli records its arguments and whether the
    # password variable is set, never its value.
    record = tmp_path / "redis-cli.args"
    wrapper = tmp_path / "redis-cli"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'cat /proc/$$/cmdline | tr "\\0" "\\n" > {record}\n'
        f'[ -n "$REDISCLI_AUTH" ] && echo REDISCLI_AUTH-set >> {record}\n'
        f'exec {shutil.which("redis-cli")} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("ODOO_DR_REDIS_CLI", str(wrapper))
    # Keys in two dbs: a capture of the whole server restores both.
    source_redis.client(3).set("queue:job:1", "payload")
    source_redis.client(5).hset("queue:state", "running", "1")
    repository = Repository.init(str(tmp_path / "repo"))

    capture = capture_rdb(source_redis.url(), tmp_path / "queue.rdb")
    snapshot = store_rdb(repository, "production", "queue", capture)
    result = restore_rdb(repository, snapshot, target_redis.url(), tmp_path / "work")

    arguments = record.read_text().splitlines()
    assert source_redis.password not in record.read_text()
    assert "REDISCLI_AUTH-set" in arguments
    assert arguments[arguments.index("--user") + 1] == "default"
    assert "--rdb" in arguments
    assert source_redis.password not in snapshot.model_dump_json()
    assert snapshot.db is None
    assert snapshot.keys == {3: 1, 5: 1}
    assert result.keys == {3: 1, 5: 1}
    assert target_redis.client(3).get("queue:job:1") == b"payload"
    assert target_redis.client(5).hgetall("queue:state") == {b"running": b"1"}
    assert target_redis.client(0).dbsize() == 0


def test_target_not_empty_rejected(tmp_path, source_redis, target_redis):
    source_redis.client(2).set("session:a", "new")
    target_redis.client(2).set("session:a", "old")
    target_redis.client(2).set("session:b", "kept")
    repository = Repository.init(str(tmp_path / "repo"))
    capture = capture_rdb(source_redis.url(db=2), tmp_path / "s.rdb")
    snapshot = store_rdb(repository, "staging", "sessions", capture)
    work = tmp_path / "work"

    with pytest.raises(RejectedError) as raised:
        restore_rdb(repository, snapshot, target_redis.url(db=2), work)

    assert raised.value.exit_code == ExitCode.REJECTED
    assert f"127.0.0.1:{target_redis.port}/2 already has 2 keys" in str(raised.value)
    assert target_redis.client(2).get("session:a") == b"old"
    assert_empty_folder(work)

    result = restore_rdb(
        repository, snapshot, target_redis.url(db=2), work, replace=True
    )

    assert result.keys == {2: 1}
    assert target_redis.client(2).get("session:a") == b"new"
    assert target_redis.client(2).get("session:b") == b"kept"


def test_wrong_password(tmp_path, source_redis):
    url = source_redis.url(password="not-the-password")

    with pytest.raises(BackupFailed) as raised:
        capture_rdb(url, tmp_path / "s.rdb")

    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.BACKUP_FAILED
    assert f"127.0.0.1:{source_redis.port}" in message
    assert "rejected the user name or password" in message
    assert "not-the-password" not in message
    assert list(tmp_path.glob("*rdb*")) == []


def test_user_without_sync_permission(tmp_path, source_redis):
    # INFO is allowed, so the failure comes from redis-cli's SYNC.
    source_redis.client().acl_setuser(
        "reader", enabled=True, passwords=["+reader-secret"], commands=["+info"]
    )
    url = f"redis://reader:reader-secret@127.0.0.1:{source_redis.port}/0"

    with pytest.raises(BackupFailed) as raised:
        capture_rdb(url, tmp_path / "s.rdb")

    assert "denied the RDB capture" in str(raised.value)
    assert "+sync" in raised.value.hint
    assert "reader-secret" not in str(raised.value)
    assert list(tmp_path.glob("*rdb*")) == []


def test_unreachable_source_and_target(tmp_path, source_redis):
    port = free_port()

    with pytest.raises(BackupFailed) as capture_error:
        capture_rdb(f"redis://:hunter2@127.0.0.1:{port}/0", tmp_path / "s.rdb")

    repository = Repository.init(str(tmp_path / "repo"))
    source_redis.client().set("k", "v")
    capture = capture_rdb(source_redis.url(db=0), tmp_path / "s.rdb")
    snapshot = store_rdb(repository, "production", "sessions", capture)
    with pytest.raises(RejectedError) as restore_error:
        restore_rdb(
            repository, snapshot, f"redis://:hunter2@127.0.0.1:{port}/0", tmp_path / "w"
        )

    for raised in (capture_error, restore_error):
        assert f"cannot connect to Redis at 127.0.0.1:{port}/0" in str(raised.value)
        assert "hunter2" not in str(raised.value)


def test_silent_server_times_out(tmp_path):
    # A socket that accepts connections but never replies.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(BackupFailed) as raised:
            capture_rdb(f"redis://127.0.0.1:{port}/0", tmp_path / "s.rdb", timeout=1)

    assert f"127.0.0.1:{port}/0 timed out after 1 s" in str(raised.value)


def test_encrypted_repository(tmp_path, source_redis, target_redis):
    marker = f"mk{uuid.uuid4().hex[:16]}"
    value = f"secret-session-{uuid.uuid4().hex}"
    source_redis.client(1).set(marker, value)
    capture = capture_rdb(source_redis.url(db=1), tmp_path / "s.rdb")
    rdb = capture.path.read_bytes()
    assert marker.encode() in rdb
    repository = Repository.init(
        str(tmp_path / "repo"), secret=b"passphrase", kdf=FAST_KDF
    )

    snapshot = store_rdb(repository, "production", "sessions", capture)
    result = restore_rdb(repository, snapshot, target_redis.url(db=1), tmp_path / "w")

    stored = [path for path in (tmp_path / "repo").rglob("*") if path.is_file()]
    assert any(path.parent.parent.name == "packs" for path in stored)
    for path in stored:
        content = path.read_bytes()
        assert marker.encode() not in content, path
        assert value.encode() not in content, path
        assert rdb not in content, path
        assert rdb[:64] not in content, path
    assert result.keys == {1: 1}
    assert target_redis.client(1).get(marker) == value.encode()


def test_damaged_chunk_detected(tmp_path, source_redis, target_redis):
    source_redis.client(4).set("session:x", "y" * 5000)
    repository = Repository.init(str(tmp_path / "repo"))
    capture = capture_rdb(source_redis.url(db=4), tmp_path / "s.rdb")
    snapshot = store_rdb(repository, "production", "sessions", capture)
    damage_blob(repository, snapshot.chunks[0])
    work = tmp_path / "work"

    with pytest.raises(DamagedDataFound) as raised:
        restore_rdb(repository, snapshot, target_redis.url(db=4), work)

    assert raised.value.exit_code == ExitCode.RESTORE_FAILED
    assert snapshot.chunks[0] in str(raised.value)
    assert "Redis role 'sessions'" in str(raised.value)
    assert target_redis.client(4).dbsize() == 0
    assert_empty_folder(work)


def test_newer_rdb_version_rejected(tmp_path, source_redis, target_redis):
    source_redis.client(0).set("k", "v")
    capture = capture_rdb(source_redis.url(db=0), tmp_path / "s.rdb")
    # An RDB file of a future Redis: only its format version differs.
    data = bytearray(capture.path.read_bytes())
    data[5:9] = b"0099"
    capture.path.write_bytes(data)
    newer = dataclasses.replace(
        capture, rdb_version=99, sha256=hashlib.sha256(data).hexdigest()
    )
    repository = Repository.init(str(tmp_path / "repo"))
    snapshot = store_rdb(repository, "production", "queue", newer)
    work = tmp_path / "work"

    with pytest.raises(RestoreFailed) as raised:
        restore_rdb(repository, snapshot, target_redis.url(db=0), work)

    assert "cannot load RDB format version 99" in str(raised.value)
    assert "ODOO_DR_REDIS_SERVER" in raised.value.hint
    assert target_redis.client(0).dbsize() == 0
    assert_empty_folder(work)


def test_roles_captured():
    roles = roles_to_capture(["cache", "sessions", "queue", "sessions"])

    assert roles == [RedisRole.SESSIONS, RedisRole.QUEUE]
    assert not is_captured("cache")
    assert is_captured(RedisRole.QUEUE)
    with pytest.raises(RejectedError, match="unknown Redis role 'broker'"):
        roles_to_capture(["broker"])


def test_cache_never_stored(tmp_path, source_redis):
    capture = capture_rdb(source_redis.url(db=0), tmp_path / "c.rdb")
    repository = Repository.init(str(tmp_path / "repo"))

    with pytest.raises(RejectedError, match="a cache is rebuilt"):
        store_rdb(repository, "production", "cache", capture)


@pytest.mark.parametrize(
    ("url", "host", "port", "db", "password", "tls"),
    [
        ("redis://127.0.0.1", "127.0.0.1", 6379, None, None, False),
        ("redis://:hun@ter2@cache.example:6380/3", "cache.example", 6380, 3,
         "hun@ter2", False),
        ("rediss://odoo:hun/ter2@[::1]:6390/0", "::1", 6390, 0, "hun/ter2", True),
        ("redis://u:p%40ss@h:1/2", "h", 1, 2, "p@ss", False),
    ],
)  # fmt: skip
def test_parse_url(url, host, port, db, password, tls):
    address = parse_url(url)

    assert (address.host, address.port, address.db) == (host, port, db)
    assert address.password == password
    assert address.tls is tls
    assert "ter2" not in address.describe()
    assert "ter2" not in repr(address)


@pytest.mark.parametrize(
    "url", ["http://h:1/0", "redis://:secretpw@h:port/0", "redis://:secretpw@/0"]
)
def test_invalid_url_hides_password(url):
    with pytest.raises(RejectedError) as raised:
        parse_url(url)

    assert "secretpw" not in str(raised.value)


def test_missing_redis_cli(tmp_path, monkeypatch):
    monkeypatch.delenv("ODOO_DR_REDIS_CLI", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(BackupFailed) as raised:
        capture_rdb(f"redis://127.0.0.1:{MACHINE_PORT}/0", tmp_path / "s.rdb")

    assert "redis-cli not found on PATH" in str(raised.value)
    assert "apt install redis-tools" in raised.value.hint

    monkeypatch.setenv("ODOO_DR_REDIS_CLI", str(tmp_path / "nowhere"))
    with pytest.raises(BackupFailed, match="not an executable file"):
        capture_rdb(f"redis://127.0.0.1:{MACHINE_PORT}/0", tmp_path / "s.rdb")
