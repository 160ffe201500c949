"""Redis by role: capture an RDB snapshot, store it, restore it into a target.

A Redis `cache` is rebuilt by its users and never backed up. `sessions` and `queue`
are captured with `redis-cli --rdb`, which asks the server for an RDB file over the
replication protocol, so odoo-dr needs no access to the Redis host's disk. The file
is stored in the repository like any other (so encrypted when the repository is).
A restore loads it into a private, temporary redis-server and copies the keys to
the target with DUMP and RESTORE, so the target keeps running and keeps its other
databases.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import redis
from pydantic import Field

from odoo_dr import tempfiles
from odoo_dr.errors import (
    BackupFailed,
    DamagedDataFound,
    OdooDrError,
    RejectedError,
    RestoreFailed,
    SnapshotDamaged,
)
from odoo_dr.platform.redis_server import TemporaryRedis, find_binary, no_retry
from odoo_dr.processes import dying_with_parent
from odoo_dr.repository import objects
from odoo_dr.repository.manifest import StoredBlob
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import RedisRole

log = logging.getLogger(__name__)

CLI_VARIABLE = "ODOO_DR_REDIS_CLI"
SERVER_VARIABLE = "ODOO_DR_REDIS_SERVER"
CAPTURED_ROLES = (RedisRole.SESSIONS, RedisRole.QUEUE)
# Keys copied per round trip of a restore: one pipeline of PTTL and DUMP on the
# temporary server, then one pipeline of RESTORE on the target.
BATCH_SIZE = 500
RDB_MAGIC = b"REDIS"
_CONNECT_TIMEOUT = 10.0


# -- roles


def is_captured(role: str | RedisRole) -> bool:
    """Return whether a Redis of `role` is captured (a cache is rebuilt instead)."""
    return _role(role) in CAPTURED_ROLES


def roles_to_capture(roles: list[str]) -> list[RedisRole]:
    """Return the roles among `roles` whose Redis is captured, in order, once each.

    Raises `RejectedError` for a name that is not a Redis role.
    """
    captured: list[RedisRole] = []
    for name in roles:
        role = _role(name)
        if role in CAPTURED_ROLES and role not in captured:
            captured.append(role)
    return captured


def _role(name: str | RedisRole) -> RedisRole:
    try:
        return RedisRole(name)
    except ValueError:
        known = ", ".join(role.value for role in RedisRole)
        raise RejectedError(
            f"unknown Redis role {name!r}", hint=f"use one of: {known}"
        ) from None


# -- addresses


@dataclass(frozen=True)
class RedisAddress:
    """A Redis server named by a `redis://` or `rediss://` URL."""

    host: str
    port: int
    db: int | None
    username: str | None
    password: str | None = field(repr=False)
    tls: bool

    def describe(self) -> str:
        """Return `host:port` (and the db), which never holds the password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        where = f"{host}:{self.port}"
        return where if self.db is None else f"{where}/{self.db}"

    def client(self, db: int | None = None, timeout: float = 30) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=db if db is not None else (self.db or 0),
            username=self.username,
            password=self.password,
            ssl=self.tls,
            socket_connect_timeout=min(timeout, _CONNECT_TIMEOUT),
            socket_timeout=timeout,
            retry=no_retry(),
        )


def parse_url(url: str) -> RedisAddress:
    """Parse `redis[s]://[user:password@]host[:port][/db]`.

    The user information is split at its last `@`, so a password may contain `@`
    and `/`. Messages never quote the URL, which may hold the password.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("redis", "rediss"):
        raise RejectedError(
            "invalid Redis URL: it must start with redis:// or rediss://",
            hint="give redis://[user:password@]host:port/db",
        )
    rest = rest.partition("?")[0].partition("#")[0]
    username = password = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hostport, _, path = rest.partition("/")
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise RejectedError("invalid Redis URL: no host", hint="give host:port")
    try:
        port = int(port_text) if port_text else 6379
        db = int(path) if path else None
    except ValueError:
        raise RejectedError(
            f"invalid Redis URL for host {host}: the port and the db must be numbers",
            hint="give redis://[user:password@]host:port/db",
        ) from None
    if not 0 < port < 65536 or (db is not None and db < 0):
        raise RejectedError(
            f"invalid Redis URL for host {host}: port {port} or db {db} out of range"
        )
    return RedisAddress(host, port, db, username, password, scheme == "rediss")


# -- reading INFO


@dataclass
class ServerInfo:
    redis_version: str
    keys: dict[int, int]
    used_memory: int


def read_info(
    address: RedisAddress, error: type[OdooDrError], timeout: float = 30
) -> ServerInfo:
    """Read the server version, the keys per db and `used_memory` from INFO.

    Raises `error` when the server cannot be reached or rejects the credentials,
    and `RejectedError` for a Redis in cluster mode.
    """
    client = address.client(timeout=timeout)
    try:
        info = client.info()
    except redis.AuthenticationError:
        raise error(
            f"Redis at {address.describe()} rejected the user name or password",
            hint="check the credentials of the Redis URL",
        ) from None
    except redis.TimeoutError:
        raise error(
            f"Redis at {address.describe()} timed out after {timeout:.0f} s",
            hint="check that the host and port are those of a Redis server",
        ) from None
    except redis.ConnectionError as exc:
        raise error(
            f"cannot connect to Redis at {address.describe()}: {exc}",
            hint="check the host and port, and that Redis accepts connections "
            "from this host",
        ) from None
    except redis.ResponseError as exc:
        raise error(
            f"INFO failed on Redis at {address.describe()}: {exc}",
            hint="give the Redis user the +info permission",
        ) from None
    finally:
        client.close()
    if info.get("cluster_enabled"):
        raise RejectedError(
            f"Redis at {address.describe()} runs in cluster mode, which odoo-dr "
            "does not support",
            hint="back up each shard with Redis's own tools",
        )
    keys = {
        int(name.removeprefix("db")): int(value["keys"])
        for name, value in info.items()
        if name.startswith("db") and name[2:].isdigit() and isinstance(value, dict)
    }
    return ServerInfo(
        redis_version=str(info.get("redis_version", "unknown")),
        keys=keys,
        used_memory=int(info.get("used_memory", 0)),
    )


# -- capture


@dataclass
class RdbCapture:
    """An RDB file written by `capture_rdb`, with what INFO showed before it."""

    path: Path
    source: str
    db: int | None
    redis_version: str
    rdb_version: int
    keys: dict[int, int]
    used_memory: int
    size: int
    sha256: str
    captured_at: datetime


def capture_rdb(url: str, destination: Path, timeout: float = 600) -> RdbCapture:
    """Write an RDB snapshot of the Redis at `url` to `destination`.

    The file is written under a temporary name in the same folder and renamed when
    it is complete and starts with the RDB magic. The RDB file holds every db of
    the server, whatever db the URL names. Raises `BackupFailed`.
    """
    address = parse_url(url)
    cli = find_binary("redis-cli", CLI_VARIABLE, BackupFailed)
    info = read_info(address, BackupFailed, timeout=min(timeout, 30))

    partial = destination.parent / tempfiles.temporary_name("rdb", prefix="odoo-dr-")
    command = [cli, "-h", address.host, "-p", str(address.port)]
    if address.username:
        command += ["--user", address.username]
    if address.tls:
        command.append("--tls")
    command += ["--rdb", str(partial)]
    # The password goes through the environment, since any user of the host can
    # read a process's arguments.
    env = {key: value for key, value in os.environ.items() if key != "REDISCLI_AUTH"}
    if address.password is not None:
        env["REDISCLI_AUTH"] = address.password

    captured_at = datetime.now(UTC)
    started = time.monotonic()
    try:
        try:
            completed = subprocess.run(
                dying_with_parent(command),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BackupFailed(
                f"RDB capture from Redis at {address.describe()} timed out after "
                f"{timeout:.0f} s",
                hint="raise the timeout, or check the network and the server's "
                "fork time (INFO stats, latest_fork_usec)",
            ) from None
        if completed.returncode != 0:
            raise _capture_error(address, completed.stdout + completed.stderr)
        size, sha256, rdb_version = _check_rdb(partial, address)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)

    log.info(
        "captured RDB from Redis %s version=%s bytes=%d seconds=%.1f",
        address.describe(),
        info.redis_version,
        size,
        time.monotonic() - started,
    )
    return RdbCapture(
        path=destination,
        source=address.describe(),
        db=address.db,
        redis_version=info.redis_version,
        rdb_version=rdb_version,
        keys=info.keys,
        used_memory=info.used_memory,
        size=size,
        sha256=sha256,
        captured_at=captured_at,
    )


def _capture_error(address: RedisAddress, output: str) -> BackupFailed:
    where = f"Redis at {address.describe()}"
    if "WRONGPASS" in output or "NOAUTH" in output or "invalid password" in output:
        return BackupFailed(
            f"{where} rejected the user name or password of the RDB capture",
            hint="check the credentials of the Redis URL",
        )
    if "NOPERM" in output:
        return BackupFailed(
            f"{where} denied the RDB capture to this user",
            hint="allow the user +sync and +replconf in its ACL",
        )
    if "Could not connect" in output or "Connection refused" in output:
        return BackupFailed(
            f"cannot connect to {where} for the RDB capture",
            hint="check the host and port, and that Redis accepts connections "
            "from this host",
        )
    lines = [line for line in output.splitlines() if line.strip()]
    return BackupFailed(
        f"RDB capture from {where} failed: {lines[-1] if lines else 'no output'}",
        hint="check the server's log; the capture needs a fork and free memory "
        "on the Redis host",
    )


def _check_rdb(path: Path, address: RedisAddress) -> tuple[int, str, int]:
    """Return the size, SHA-256 and RDB format version of a captured file."""
    digest = hashlib.sha256()
    size = 0
    header = b""
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            if not header:
                header = block[:9]
            digest.update(block)
            size += len(block)
    if size == 0 or not header.startswith(RDB_MAGIC) or not header[5:9].isdigit():
        raise BackupFailed(
            f"the RDB capture from Redis at {address.describe()} is not an RDB file "
            f"({size} bytes, starting with {header[:9]!r})",
            hint="check that the address is a Redis server and not a proxy",
        )
    return size, digest.hexdigest(), int(header[5:9])


# -- storing


class RedisSnapshot(StoredBlob):
    """An RDB file of one Redis role, stored in the repository as `chunks`."""

    environment: str
    role: RedisRole
    source: str = Field(description="host:port/db of the captured Redis")
    db: int | None = Field(description="db the role uses; None for every db")
    redis_version: str
    rdb_version: int
    keys: dict[int, int] = Field(description="keys per db, read by INFO before")
    used_memory: int
    sha256: str
    captured_at: datetime


def store_rdb(
    repository: Repository, environment: str, role: str, capture: RdbCapture
) -> RedisSnapshot:
    """Store the captured RDB file in the repository and make it durable.

    Raises `RejectedError` for the `cache` role, which is never backed up, and
    `BackupFailed` when the file changed since its capture.
    """
    redis_role = _role(role)
    if redis_role not in CAPTURED_ROLES:
        raise RejectedError(
            f"the Redis of role {redis_role.value!r} in environment {environment!r} "
            "is not backed up: a cache is rebuilt, never restored",
            hint="capture only the sessions and queue roles",
        )
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        for chunk in objects.split_file(capture.path):
            digest.update(chunk)
            yield chunk

    repository.blobs.prepare_to_write()
    blob, stats = repository.blobs.put_chunks(chunks())
    if digest.hexdigest() != capture.sha256 or blob.size != capture.size:
        raise BackupFailed(
            f"RDB file {capture.path} changed after its capture",
            hint="capture it again; nothing else may write to the capture's folder",
        )
    repository.blobs.flush()
    repository.extend_locks(set(blob.chunks))
    log.info(
        "stored RDB environment=%s role=%s bytes=%d chunks=%d added_bytes=%d",
        environment,
        redis_role.value,
        blob.size,
        len(blob.chunks),
        stats.new_bytes,
    )
    return RedisSnapshot(
        size=blob.size,
        chunks=blob.chunks,
        environment=environment,
        role=redis_role,
        source=capture.source,
        db=capture.db,
        redis_version=capture.redis_version,
        rdb_version=capture.rdb_version,
        keys=capture.keys,
        used_memory=capture.used_memory,
        sha256=capture.sha256,
        captured_at=capture.captured_at,
    )


# -- restore


@dataclass
class RedisRestoreResult:
    target: str
    keys: dict[int, int] = field(default_factory=dict)
    expired: int = 0
    seconds: float = 0.0


def restore_rdb(
    repository: Repository,
    snapshot: RedisSnapshot,
    target_url: str,
    work: Path,
    *,
    replace: bool = False,
) -> RedisRestoreResult:
    """Copy the keys of a stored RDB file into the Redis at `target_url`.

    A snapshot of one db goes into the target URL's db (the same number when the
    URL names none); a snapshot of every db goes into the same-numbered dbs. A
    target db that has keys is rejected unless `replace`, which overwrites keys of
    the same name and leaves the others. Keys keep their remaining time to live.
    Raises `RejectedError` before changing anything, `DamagedDataFound` for a
    damaged stored file, and `RestoreFailed`.
    """
    started = time.monotonic()
    target = parse_url(target_url)
    if snapshot.db is None and target.db is not None:
        raise RejectedError(
            f"the Redis snapshot of role {snapshot.role.value!r} holds every db, but "
            f"the target URL names db {target.db}",
            hint="give the target URL without a db",
        )
    server_binary = find_binary("redis-server", SERVER_VARIABLE, RestoreFailed)
    read_info(target, RejectedError)

    work.mkdir(parents=True, exist_ok=True)
    folder = tempfiles.make_folder(work, "redis")
    result = RedisRestoreResult(target=target.describe())
    try:
        _write_rdb(repository, snapshot, folder / "dump.rdb")
        with TemporaryRedis(server_binary, folder, "dump.rdb") as source:
            plan = _plan(source, snapshot, target)
            _check_target_empty(target, plan, replace)
            for source_db, target_db in plan.items():
                copied, expired = _copy_db(
                    source, source_db, target, target_db, replace
                )
                result.keys[target_db] = copied
                result.expired += expired
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.monotonic() - started
    log.info(
        "restored Redis role=%s into %s keys=%d expired=%d seconds=%.1f",
        snapshot.role.value,
        result.target,
        sum(result.keys.values()),
        result.expired,
        result.seconds,
    )
    return result


def _write_rdb(repository: Repository, snapshot: RedisSnapshot, path: Path) -> None:
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as handle:
            for data in repository.blobs.iter_blob(snapshot):
                digest.update(data)
                size += len(data)
                handle.write(data)
    except SnapshotDamaged as exc:
        raise DamagedDataFound(
            f"{exc.message} (in the RDB file of Redis role {snapshot.role.value!r})",
            exc.hint,
        ) from None
    if digest.hexdigest() != snapshot.sha256 or size != snapshot.size:
        raise DamagedDataFound(
            f"the RDB file of Redis role {snapshot.role.value!r} read from "
            f"repository {repository.location} does not match its record (sha256 "
            f"{digest.hexdigest()}, size {size}, expected sha256 {snapshot.sha256}, "
            f"size {snapshot.size})",
            hint="run 'odoo-dr verify --read-data' to find what else is damaged",
        )


def _plan(
    source: TemporaryRedis, snapshot: RedisSnapshot, target: RedisAddress
) -> dict[int, int]:
    """Return target db by source db, for the dbs the loaded file holds keys in."""
    client = source.client()
    try:
        loaded = {
            int(name[2:]) for name in client.info("keyspace") if name.startswith("db")
        }
    finally:
        client.close()
    if snapshot.db is None:
        return {db: db for db in sorted(loaded)}
    target_db = target.db if target.db is not None else snapshot.db
    return {snapshot.db: target_db} if snapshot.db in loaded else {}


def _check_target_empty(
    target: RedisAddress, plan: dict[int, int], replace: bool
) -> None:
    if replace:
        return
    for target_db in plan.values():
        client = target.client(db=target_db)
        try:
            count = client.dbsize()
        except redis.RedisError as exc:
            raise RestoreFailed(
                f"DBSIZE failed on Redis at {target.describe()} db {target_db}: {exc}"
            ) from None
        finally:
            client.close()
        if count:
            raise RejectedError(
                f"Redis at {target.describe()} already has {count} keys in db "
                f"{target_db}",
                hint="restore into an empty db, or pass replace to overwrite keys "
                "of the same name",
            )


def _copy_db(
    source: TemporaryRedis,
    source_db: int,
    target: RedisAddress,
    target_db: int,
    replace: bool,
) -> tuple[int, int]:
    """Copy every key of one db; return the keys copied and those that expired."""
    reader = source.client(db=source_db)
    writer = target.client(db=target_db)
    copied = expired = 0
    try:
        batch: list[bytes] = []
        for key in reader.scan_iter(count=BATCH_SIZE):
            batch.append(key)
            if len(batch) == BATCH_SIZE:
                done, gone = _copy_batch(reader, writer, batch, replace, target)
                copied, expired = copied + done, expired + gone
                batch = []
        if batch:
            done, gone = _copy_batch(reader, writer, batch, replace, target)
            copied, expired = copied + done, expired + gone
    except redis.ConnectionError as exc:
        raise RestoreFailed(
            f"lost the connection to Redis at {target.describe()} after {copied} "
            f"keys of db {target_db}: {exc}",
            hint="the target db now holds part of the snapshot; restore again "
            "with replace",
        ) from None
    finally:
        reader.close()
        writer.close()
    return copied, expired


def _copy_batch(
    reader: redis.Redis,
    writer: redis.Redis,
    keys: list[bytes],
    replace: bool,
    target: RedisAddress,
) -> tuple[int, int]:
    read = reader.pipeline(transaction=False)
    for key in keys:
        read.pttl(key)
        read.dump(key)
    replies = read.execute()

    write = writer.pipeline(transaction=False)
    copied = expired = 0
    for key, ttl, payload in zip(keys, replies[::2], replies[1::2], strict=True):
        # PTTL is -1 for a key without expiry, -2 (or 0, with no payload) for a key
        # that expired since the scan. RESTORE reads a ttl of 0 as "no expiry".
        if payload is None or ttl == -2 or ttl == 0:
            expired += 1
            continue
        write.restore(key, max(ttl, 0), payload, replace=replace)
        copied += 1
    for reply in write.execute(raise_on_error=False):
        if isinstance(reply, Exception):
            raise _restore_error(reply, target)
    return copied, expired


def _restore_error(error: Exception, target: RedisAddress) -> OdooDrError:
    text = str(error)
    if "payload version" in text:
        return RestoreFailed(
            f"Redis at {target.describe()} rejected a key's DUMP payload: it is "
            "older than the temporary redis-server",
            hint="restore into a Redis at least as new as the redis-server that "
            "odoo-dr runs, or point $ODOO_DR_REDIS_SERVER at an older one",
        )
    if "BUSYKEY" in text:
        return RestoreFailed(
            f"a key appeared in Redis at {target.describe()} during the restore",
            hint="stop the applications that write to the target, then restore "
            "again with replace",
        )
    return RestoreFailed(f"RESTORE failed on Redis at {target.describe()}: {text}")
