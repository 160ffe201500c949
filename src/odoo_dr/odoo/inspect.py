"""Queries of an Odoo database: attachments, modules, parameters, row counts."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from odoo_dr.errors import RejectedError

# Tables whose exact row counts a snapshot records and a drill compares. Tables of
# modules that are not installed are skipped.
MAIN_TABLES = (
    "res_company",
    "res_partner",
    "res_users",
    "ir_attachment",
    "ir_config_parameter",
    "ir_module_module",
    "ir_model_data",
    "mail_message",
    "product_template",
    "product_product",
    "stock_warehouse",
    "stock_location",
    "stock_picking",
    "stock_move",
    "stock_move_line",
    "stock_quant",
    "sale_order",
    "sale_order_line",
    "purchase_order",
    "purchase_order_line",
    "account_move",
    "account_move_line",
    "account_account",
    "account_journal",
)

IDENTITY_PARAMETERS = ("database.uuid", "database.secret", "database.create_date")


@dataclass(frozen=True)
class AttachmentRef:
    """An `ir_attachment` row whose content lives in the filestore."""

    id: int
    store_fname: str
    checksum: str | None
    file_size: int | None
    res_model: str | None
    res_id: int | None

    def describe(self) -> str:
        target = f"{self.res_model},{self.res_id}" if self.res_model else "no record"
        return f"ir.attachment,{self.id} {target}"


def table_columns(cursor: psycopg.Cursor, table: str) -> set[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute"
        " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (f"public.{table}",),
    )
    return {row[0] for row in cursor.fetchall()}


def existing_tables(cursor: psycopg.Cursor) -> set[str]:
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
    )
    return {row[0] for row in cursor.fetchall()}


def require_odoo_database(cursor: psycopg.Cursor, dbname: str) -> None:
    tables = existing_tables(cursor)
    missing = [
        name for name in ("ir_module_module", "ir_attachment") if name not in tables
    ]
    if missing:
        raise RejectedError(
            f"database {dbname!r} is not an Odoo database: table "
            f"{', '.join(missing)} not found in schema public",
            hint="give the name of an Odoo database; list them with: psql -l",
        )


def read_modules(cursor: psycopg.Cursor) -> dict[str, str | None]:
    """Return installed modules and their versions."""
    cursor.execute(
        "SELECT name, latest_version FROM ir_module_module"
        " WHERE state = 'installed' ORDER BY name"
    )
    return {name: version for name, version in cursor.fetchall()}


def read_parameters(cursor: psycopg.Cursor, keys: tuple[str, ...]) -> dict[str, str]:
    if "ir_config_parameter" not in existing_tables(cursor):
        return {}
    cursor.execute(
        "SELECT key, value FROM ir_config_parameter WHERE key = ANY(%s)", (list(keys),)
    )
    return {key: value for key, value in cursor.fetchall()}


def count_rows(
    cursor: psycopg.Cursor, tables: tuple[str, ...] = MAIN_TABLES
) -> dict[str, int]:
    present = existing_tables(cursor)
    counts: dict[str, int] = {}
    for table in tables:
        if table not in present:
            continue
        cursor.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))
        )
        counts[table] = cursor.fetchone()[0]
    return counts


def read_attachments(connection: psycopg.Connection) -> tuple[list[AttachmentRef], int]:
    """Return the attachments kept in the filestore, and how many are in the database.

    Runs in the caller's transaction, so inside the backup's snapshot when called
    there. A server-side cursor keeps memory flat for millions of rows.
    """
    with connection.cursor() as cursor:
        columns = table_columns(cursor, "ir_attachment")

    def column(name: str) -> sql.Composable:
        if name in columns:
            return sql.Identifier(name)
        return sql.SQL("NULL")

    stored_in_db = 0
    if "db_datas" in columns:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM ir_attachment WHERE db_datas IS NOT NULL"
            )
            stored_in_db = cursor.fetchone()[0]

    condition = sql.SQL("store_fname IS NOT NULL AND store_fname <> ''")
    if "type" in columns:
        condition = sql.SQL("{} AND type = 'binary'").format(condition)
    query = sql.SQL(
        "SELECT id, store_fname, {checksum}, {file_size}, {res_model}, {res_id}"
        " FROM ir_attachment WHERE {condition} ORDER BY id"
    ).format(
        checksum=column("checksum"),
        file_size=column("file_size"),
        res_model=column("res_model"),
        res_id=column("res_id"),
        condition=condition,
    )
    refs: list[AttachmentRef] = []
    with connection.cursor(name="odoo_dr_attachments") as cursor:
        cursor.itersize = 10_000
        cursor.execute(query)
        for row in cursor:
            refs.append(AttachmentRef(*row))
    return refs, stored_in_db
