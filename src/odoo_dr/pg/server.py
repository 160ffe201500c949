"""Facts about the server and its databases, read over a connection."""

from __future__ import annotations

import os
import re
import socket

import psycopg
from psycopg import sql

from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.repository.backend import process_alive


def server_version(connection: psycopg.Connection) -> tuple[str, int]:
    """Return the server's version text (`15.20`) and major number (15)."""
    number = connection.info.server_version
    major = number // 10000
    minor = number % 10000
    return f"{major}.{minor}", major


def database_exists(settings: PgSettings, dbname: str) -> bool:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        row = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
        ).fetchone()
    return row is not None


def drop_database(connection: psycopg.Connection, dbname: str) -> None:
    """Drop `dbname`, ending its sessions first (PostgreSQL 13 and later)."""
    connection.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(dbname)
        )
    )


# A database that odoo-dr creates under a temporary name carries this comment until it
# is renamed into place, so a later run can tell the leftovers of a killed process.
_TEMPORARY_COMMENT = "odoo-dr temporary database of pid {pid} on host {host}"
_TEMPORARY_PATTERN = re.compile(
    r"^odoo-dr temporary database of pid (?P<pid>\d+) on host (?P<host>.+)$"
)


def mark_temporary(connection: psycopg.Connection, dbname: str) -> None:
    comment = _TEMPORARY_COMMENT.format(pid=os.getpid(), host=socket.gethostname())
    connection.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(dbname), sql.Literal(comment)
        )
    )


def clear_temporary_mark(connection: psycopg.Connection, dbname: str) -> None:
    connection.execute(
        sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(dbname))
    )


def stale_temporary_databases(connection: psycopg.Connection) -> list[str]:
    """Return temporary databases whose creating process is gone from this host."""
    rows = connection.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
        " WHERE shobj_description(oid, 'pg_database') LIKE 'odoo-dr temporary %'"
    ).fetchall()
    stale = []
    for name, comment in rows:
        match = _TEMPORARY_PATTERN.match(comment or "")
        if match is None or match["host"] != socket.gethostname():
            continue
        if not process_alive(int(match["pid"])):
            stale.append(name)
    return stale
