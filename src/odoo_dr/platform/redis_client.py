"""Redis servers named by URL: parsing without leaking the password, and INFO."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote

from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.imports import lazy_module
from odoo_dr.platform.redis_server import no_retry

redis = lazy_module("redis")

_CONNECT_TIMEOUT = 10.0
# redis-cli's variable for the password, so that it stays out of process arguments.
PASSWORD_VARIABLE = "REDISCLI_AUTH"


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
        """Return `host:port` and the db, without the password."""
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
    and `/`. A URL without a password takes it from `$REDISCLI_AUTH`, as redis-cli
    does. Messages never quote the URL, which may contain the password.
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
    if password is None:
        password = os.environ.get(PASSWORD_VARIABLE) or None
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
