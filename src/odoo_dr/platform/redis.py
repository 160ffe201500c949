"""Redis by role: capture an RDB snapshot, store it, restore it into a target.

A Redis `cache` is rebuilt by its users and never backed up. `sessions` and `queue`
are captured with `redis-cli --rdb`, which requests an RDB file from the server over the
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

from pydantic import Field

from odoo_dr import tempfiles
from odoo_dr.errors import (
    BackupFailed,
    DamagedDataFound,
    RejectedError,
    RestoreFailed,
    SnapshotDamaged,
)
from odoo_dr.platform.redis_client import RedisAddress, parse_url, read_info
from odoo_dr.platform.redis_copy import check_target_empty, copy_db, plan_copy
from odoo_dr.platform.redis_server import TemporaryRedis, find_binary
from odoo_dr.processes import dying_with_parent
from odoo_dr.repository import objects
from odoo_dr.repository.manifest import StoredBlob
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import RedisRole

log = logging.getLogger(__name__)

CLI_VARIABLE = "ODOO_DR_REDIS_CLI"
SERVER_VARIABLE = "ODOO_DR_REDIS_SERVER"
CAPTURED_ROLES = (RedisRole.SESSIONS, RedisRole.QUEUE)
RDB_MAGIC = b"REDIS"


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
    it is complete and starts with the RDB magic. The RDB file contains every db
    of the server, whatever db the URL names. Raises `BackupFailed`.
    """
    address = parse_url(url)
    cli = find_binary("redis-cli", CLI_VARIABLE, BackupFailed)
    info = read_info(address, BackupFailed, timeout=min(timeout, 30))

    partial = destination.parent / tempfiles.temporary_name("rdb", prefix="odoo-dr-")
    command = [cli, "-h", address.host, "-p", str(address.port)]
    if address.username:
        command += ["--user", address.username]
    if address.tls:
        # NOTE: no test covers TLS, and no client certificate or CA is passed.
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

    A snapshot of one db goes into the target URL's db, or the same db number when
    the URL names none. A snapshot of every db goes into the same-numbered dbs. A
    target db that has keys is rejected unless `replace`, which overwrites keys of
    the same name and leaves the others. Keys keep their remaining time to live.
    Raises `RejectedError` before changing anything, `DamagedDataFound` for a
    damaged stored file, and `RestoreFailed`.
    """
    started = time.monotonic()
    target = parse_url(target_url)
    if snapshot.db is None and target.db is not None:
        raise RejectedError(
            f"the Redis snapshot of role {snapshot.role.value!r} contains every db, "
            f"but the target URL names db {target.db}",
            hint="give the target URL without a db",
        )
    server_binary = find_binary("redis-server", SERVER_VARIABLE, RestoreFailed)
    read_info(target, RejectedError)

    work.mkdir(parents=True, exist_ok=True)
    folder = tempfiles.make_folder(work, "redis")
    result = RedisRestoreResult(target=target.describe())
    try:
        _write_rdb(repository, snapshot, folder / "dump.rdb")
        with TemporaryRedis(
            server_binary, folder, "dump.rdb", databases_needed(snapshot)
        ) as source:
            plan = plan_copy(source, snapshot.db, target)
            check_target_empty(target, plan, replace)
            for source_db, target_db in plan.items():
                copied, expired = copy_db(source, source_db, target, target_db, replace)
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


def databases_needed(snapshot: RedisSnapshot) -> int:
    """Return how many databases a redis-server needs to load the snapshot.

    NOTE: the db numbers come from INFO read just before the capture, so a db
    first written between INFO and the server's fork is not counted, and its
    RDB file then fails to load with redis-server's message.
    """
    numbers = [*snapshot.keys, snapshot.db or 0]
    return max(numbers) + 1


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
