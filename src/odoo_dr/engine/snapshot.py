"""The database snapshot a backup is taken in, and what it reads inside it.

A repeatable-read transaction first locks `ir_attachment` against Odoo's filestore
garbage collector: SHARE UPDATE EXCLUSIVE lets Odoo insert and update attachments,
but makes the collector's `LOCK ir_attachment IN SHARE MODE` wait (Odoo gives up
after its own 10 s `lock_timeout` and tries again later). The transaction then
exports its snapshot for `pg_dump --snapshot` and reads, in the same snapshot, the
attachments, modules, identity, row counts and stock on hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from odoo_dr.engine.stock_totals import read_stock_totals
from odoo_dr.odoo import inspect
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.manifest import DatabaseInfo, StockTotals

# How long the backup waits for a running garbage collection to finish.
GC_LOCK_TIMEOUT = "60s"


@dataclass(frozen=True)
class SnapshotFacts:
    snapshot_time: datetime
    lsn: str | None
    database: DatabaseInfo
    modules: dict[str, str | None]
    parameters: dict[str, str]
    row_counts: dict[str, int]
    attachments: list[inspect.AttachmentRef]
    attachments_in_database: int
    stock_totals: StockTotals | None = None


def begin_snapshot(connection: psycopg.Connection, warnings: list[str]) -> str:
    """Open the snapshot transaction, hold off the garbage collector, export it."""
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    # The transaction stays idle while files are copied. A server-wide idle timeout
    # must not end it, since it holds the lock against the garbage collector.
    connection.execute("SET idle_in_transaction_session_timeout = 0")
    connection.execute("SET statement_timeout = 0")
    _lock_against_garbage_collector(connection, warnings)
    return connection.execute("SELECT pg_export_snapshot()").fetchone()[0]


def _lock_against_garbage_collector(
    connection: psycopg.Connection, warnings: list[str]
) -> None:
    # A failed LOCK must not end the transaction, whose snapshot is not taken yet:
    # SAVEPOINT, SET and LOCK take none.
    connection.execute("SAVEPOINT odoo_dr_gc_lock")
    try:
        connection.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(GC_LOCK_TIMEOUT))
        )
        connection.execute("LOCK TABLE ir_attachment IN SHARE UPDATE EXCLUSIVE MODE")
    except psycopg.Error as exc:
        connection.execute("ROLLBACK TO SAVEPOINT odoo_dr_gc_lock")
        message = str(exc).strip().splitlines()[0]
        warnings.append(
            "could not hold off Odoo's filestore garbage collector during the backup "
            f"({message}); a file it deletes meanwhile is reported as missing"
        )
    # pg_export_snapshot() refuses to run inside a subtransaction.
    connection.execute("RELEASE SAVEPOINT odoo_dr_gc_lock")


def count_rows_in_snapshot(
    settings: PgSettings, database: str, snapshot: str
) -> tuple[dict[str, int], StockTotals | None]:
    """Count the main tables' rows and sum the stock on hand in `snapshot`, on a
    connection of their own.

    Counting scans the largest tables, so it runs beside the file copy instead of
    before it; importing the exported snapshot keeps the counts those of the dump.
    """
    with settings.connect(database) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.execute("SET statement_timeout = 0")
        connection.execute(
            sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot))
        )
        with connection.cursor() as cursor:
            counts = inspect.count_rows(cursor)
            stock = read_stock_totals(cursor)
        connection.rollback()
    return counts, stock


def read_facts(connection: psycopg.Connection, database: str) -> SnapshotFacts:
    """Read what the manifest records, in the caller's snapshot, but row counts."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        snapshot_time = cursor.fetchone()[0]
        cursor.execute(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
            " ELSE pg_current_wal_lsn() END::text"
        )
        lsn = cursor.fetchone()[0]
        cursor.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype,"
            " pg_database_size(oid) FROM pg_database WHERE datname = current_database()"
        )
        encoding, collate, ctype, size = cursor.fetchone()
        modules = inspect.read_modules(cursor)
        parameters = inspect.read_parameters(cursor, inspect.IDENTITY_PARAMETERS)
    attachments, in_database = inspect.read_attachments(connection)
    return SnapshotFacts(
        snapshot_time=snapshot_time,
        lsn=lsn,
        database=DatabaseInfo(
            name=database,
            encoding=encoding,
            collate=collate,
            ctype=ctype,
            size_bytes=size,
        ),
        modules=modules,
        parameters=parameters,
        row_counts={},
        attachments=attachments,
        attachments_in_database=in_database,
    )
