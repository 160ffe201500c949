"""Copying the keys of a temporary redis-server into a target, by DUMP and RESTORE."""

from __future__ import annotations

from odoo_dr.errors import OdooDrError, RejectedError, RestoreFailed
from odoo_dr.imports import lazy_module
from odoo_dr.platform.redis_client import RedisAddress
from odoo_dr.platform.redis_server import TemporaryRedis

redis = lazy_module("redis")

# Keys copied per round trip of a restore: one pipeline of PTTL and DUMP on the
# temporary server, then one pipeline of RESTORE on the target.
BATCH_SIZE = 500


def plan_copy(
    source: TemporaryRedis, snapshot_db: int | None, target: RedisAddress
) -> dict[int, int]:
    """Return target db by source db, for the dbs with keys in the loaded file."""
    client = source.client()
    try:
        loaded = {
            int(name[2:]) for name in client.info("keyspace") if name.startswith("db")
        }
    finally:
        client.close()
    if snapshot_db is None:
        return {db: db for db in sorted(loaded)}
    target_db = target.db if target.db is not None else snapshot_db
    return {snapshot_db: target_db} if snapshot_db in loaded else {}


def check_target_empty(
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


def copy_db(
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
                done = _copy_batch(reader, writer, batch, replace, target)
                copied, expired = copied + done[0], expired + done[1]
                batch = []
        if batch:
            done = _copy_batch(reader, writer, batch, replace, target)
            copied, expired = copied + done[0], expired + done[1]
    except redis.ConnectionError as exc:
        raise RestoreFailed(
            f"lost the connection to Redis at {target.describe()} after {copied} "
            f"keys of db {target_db}: {exc}",
            hint="the target db now contains part of the snapshot; restore again "
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
