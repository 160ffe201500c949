"""Connection settings for the PostgreSQL server that holds the Odoo databases.

Settings come from libpq itself (`PG*` variables, `~/.pgpass`, service files), from a
libpq connection string or URI given as `--dsn`, or from an Odoo configuration file.
The password is kept apart from every other setting: it reaches psycopg as a keyword
argument and the client binaries through `PGPASSWORD`, never a command line or a log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from odoo_dr.errors import RejectedError
from odoo_dr.odoo.config import OdooConfig

# The database odoo-dr connects to when it must not be connected to the one it
# creates, renames or drops.
MAINTENANCE_DATABASE = "postgres"

# Seconds to wait for a connection unless the settings give connect_timeout; libpq
# itself waits forever.
CONNECT_TIMEOUT = "10"


@dataclass(frozen=True)
class PgSettings:
    """libpq connection keywords without `dbname`, plus a password kept apart."""

    params: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_options(
        cls, dsn: str | None = None, odoo_config: OdooConfig | None = None
    ) -> PgSettings:
        """Build settings from `--dsn`, else `--odoo-config`, else libpq's defaults."""
        params: dict[str, str] = {}
        password: str | None = None
        if odoo_config is not None:
            if odoo_config.db_host:
                params["host"] = odoo_config.db_host
            if odoo_config.db_port:
                params["port"] = str(odoo_config.db_port)
            if odoo_config.db_user:
                params["user"] = odoo_config.db_user
            if odoo_config.db_sslmode:
                params["sslmode"] = odoo_config.db_sslmode
            password = odoo_config.db_password
        if dsn:
            try:
                parsed = conninfo_to_dict(dsn)
            except psycopg.ProgrammingError as exc:
                # psycopg's message quotes the string, which may hold a password.
                raise RejectedError(
                    "invalid --dsn: not a libpq connection string or URI",
                    hint="use 'host=... port=... user=...' or "
                    "'postgresql://user@host:port/'",
                ) from exc
            parsed.pop("dbname", None)
            if "sslpassword" in parsed:
                raise RejectedError(
                    "--dsn must not contain sslpassword: pg_dump and pg_restore would "
                    "show it in the process list",
                    hint="put the connection settings in a libpq service file "
                    "(~/.pg_service.conf) and pass --dsn 'service=NAME'",
                )
            dsn_password = parsed.pop("password", None)
            params.update({key: str(value) for key, value in parsed.items()})
            if dsn_password is not None:
                password = str(dsn_password)
        return cls(params=params, password=password)

    def conninfo(self, dbname: str) -> str:
        """Return a libpq connection string for `dbname`, without the password."""
        return make_conninfo("", dbname=dbname, **self.params)

    def connect(self, dbname: str, *, autocommit: bool = False) -> psycopg.Connection:
        """Open a psycopg connection to `dbname`, turning failures into clear errors."""
        extra: dict[str, str] = {"password": self.password} if self.password else {}
        if (
            "connect_timeout" not in self.params
            and "PGCONNECT_TIMEOUT" not in os.environ
        ):
            extra["connect_timeout"] = CONNECT_TIMEOUT
        try:
            return psycopg.connect(
                self.conninfo(dbname),
                autocommit=autocommit,
                application_name="odoo-dr",
                **extra,
            )
        except psycopg.ProgrammingError as exc:
            raise RejectedError(
                f"invalid connection settings for {self.describe()}: "
                f"{_first_line(str(exc))}",
                hint="check the keywords of --dsn against libpq's documentation",
            ) from None
        except psycopg.OperationalError as exc:
            message = _first_line(str(exc))
            if "does not exist" in message and "database" in message:
                raise RejectedError(
                    f"database {dbname!r} not found on {self.describe()}",
                    hint="check the name, including its case; list databases "
                    "with: psql -l",
                ) from None
            if "permission denied for database" in message:
                raise RejectedError(
                    f"{self.describe()} may not connect to database {dbname!r}: the "
                    "role lacks the CONNECT privilege on it",
                    hint=f"grant it: GRANT CONNECT ON DATABASE {_quoted(dbname)} TO "
                    "<role>; or connect as another role (--dsn user=..., PGUSER or "
                    "db_user in odoo.conf)",
                ) from None
            raise RejectedError(
                f"cannot connect to PostgreSQL at {self.describe()} "
                f"(database {dbname!r}): {message}",
                hint="set PGHOST, PGPORT and PGUSER, pass --dsn, or pass "
                "--odoo-config with the odoo.conf of the Odoo server",
            ) from None

    def subprocess_env(self) -> dict[str, str]:
        """Return the environment for pg_dump, pg_restore and psql."""
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def describe(self) -> str:
        """Return `user@host:port` for messages, from these settings or libpq's."""
        host = self.params.get("host") or os.environ.get("PGHOST") or "local socket"
        port = self.params.get("port") or os.environ.get("PGPORT") or "5432"
        user = self.params.get("user") or os.environ.get("PGUSER")
        where = f"{host}:{port}"
        return f"{user}@{where}" if user else where


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text
