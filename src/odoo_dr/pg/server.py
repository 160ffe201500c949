"""Facts about the server and its databases, read over a connection."""

from __future__ import annotations

import psycopg
from psycopg import sql

from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings


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
