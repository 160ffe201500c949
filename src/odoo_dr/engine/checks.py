"""Checks of a restored copy, made the way Odoo would use it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr.odoo import filestore, inspect
from odoo_dr.odoo.identity import read_identity
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST
from odoo_dr.repository.manifest import CheckResult, SnapshotManifest

# A check lists at most this many problems; the summary gives the full count.
MAX_PROBLEMS = 200


def _result(
    name: str, problems: list[str], passed_summary: str, failed_summary: str
) -> CheckResult:
    return CheckResult(
        name=name,
        passed=not problems,
        summary=failed_summary if problems else passed_summary,
        problems=problems[:MAX_PROBLEMS],
    )


def check_row_counts(actual: dict[str, int], manifest: SnapshotManifest) -> CheckResult:
    """Compare the row counts taken right after pg_restore with the snapshot's.

    They are counted before neutralization, which adds a row to ir_config_parameter.
    """
    problems = []
    for table, expected in sorted(manifest.row_counts.items()):
        found = actual.get(table)
        if found != expected:
            shown = "table missing" if found is None else f"{found:,} rows"
            problems.append(f"{table}: {shown}, snapshot had {expected:,}")
    return _result(
        "row counts",
        problems,
        f"{len(manifest.row_counts)} tables match the snapshot",
        f"{len(problems)} of {len(manifest.row_counts)} tables differ from the "
        "snapshot",
    )


def _file_problem(folder: Path, ref: inspect.AttachmentRef) -> str | None:
    relative = filestore.normalize_store_fname(ref.store_fname)
    if relative is None:
        return f"{ref.store_fname!r}: invalid path ({ref.describe()})"
    path = folder / relative
    sha1 = hashlib.sha1()
    size = 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1024 * 1024):
                sha1.update(block)
                size += len(block)
    except FileNotFoundError:
        return f"{relative}: missing ({ref.describe()})"
    if ref.checksum and sha1.hexdigest() != ref.checksum:
        return (
            f"{relative}: sha1 {sha1.hexdigest()}, expected {ref.checksum} "
            f"({ref.describe()})"
        )
    if ref.file_size is not None and size != ref.file_size:
        return f"{relative}: {size} bytes, expected {ref.file_size} ({ref.describe()})"
    return None


def check_filestore(
    connection: psycopg.Connection, folder: Path, jobs: int
) -> CheckResult:
    """Check that every attachment of the restored database finds its file intact."""
    refs, _in_database = inspect.read_attachments(connection)
    by_path: dict[str, inspect.AttachmentRef] = {}
    for ref in refs:
        by_path.setdefault(ref.store_fname, ref)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="check") as pool:
        outcomes = pool.map(lambda ref: _file_problem(folder, ref), by_path.values())
        problems = [outcome for outcome in outcomes if outcome]
    return _result(
        "filestore",
        problems,
        f"{len(by_path):,} referenced files present with the right SHA-1 and size",
        f"{len(problems):,} of {len(by_path):,} referenced files missing or damaged",
    )


def check_sequences(connection: psycopg.Connection) -> CheckResult:
    """Check that each owned sequence would return a value above its column's max."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq.relnamespace::regnamespace::text, seq.relname,"
            " tbl.relnamespace::regnamespace::text, tbl.relname, att.attname"
            " FROM pg_class seq"
            " JOIN pg_depend dep ON dep.objid = seq.oid"
            "  AND dep.classid = 'pg_class'::regclass"
            "  AND dep.deptype IN ('a', 'i')"
            " JOIN pg_class tbl ON tbl.oid = dep.refobjid"
            " JOIN pg_attribute att ON att.attrelid = tbl.oid"
            "  AND att.attnum = dep.refobjsubid"
            " WHERE seq.relkind = 'S' AND tbl.relkind IN ('r', 'p')"
            " ORDER BY tbl.relname, att.attname"
        )
        owned = cursor.fetchall()
        problems = []
        for seq_schema, seq_name, schema, table, column in owned:
            cursor.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(
                    sql.Identifier(seq_schema, seq_name)
                )
            )
            last_value, is_called = cursor.fetchone()
            cursor.execute(
                sql.SQL("SELECT max({}) FROM {}").format(
                    sql.Identifier(column), sql.Identifier(schema, table)
                )
            )
            maximum = cursor.fetchone()[0]
            next_value = last_value + 1 if is_called else last_value
            if maximum is not None and next_value <= maximum:
                problems.append(
                    f"{table}.{column}: sequence {seq_name} would return {next_value}, "
                    f"column max is {maximum}"
                )
    return _result(
        "sequences",
        problems,
        f"{len(owned)} sequences above their column's maximum",
        f"{len(problems)} of {len(owned)} sequences would reuse existing ids",
    )


def check_modules(
    connection: psycopg.Connection, manifest: SnapshotManifest
) -> CheckResult:
    with connection.cursor() as cursor:
        installed = inspect.read_modules(cursor)
    expected = manifest.odoo.modules
    problems = []
    for name in sorted(set(expected) | set(installed)):
        if name not in installed:
            problems.append(f"{name}: not installed, snapshot had {expected[name]}")
        elif name not in expected:
            problems.append(
                f"{name}: installed ({installed[name]}), not in the snapshot"
            )
        elif installed[name] != expected[name]:
            problems.append(
                f"{name}: version {installed[name]}, snapshot had {expected[name]}"
            )
    return _result(
        "modules",
        problems,
        f"{len(installed)} installed modules match the snapshot",
        f"{len(problems)} modules differ from the snapshot",
    )


# Rows that would let a copy act on the outside world, by table and column, with a
# description. A table or column that does not exist is skipped.
_LIVE_ROWS = (
    ("payment_provider", "state", "state = 'enabled'", "payment provider"),
    ("payment_provider", "is_live", "is_live", "live payment provider"),
    ("payment_acquirer", "state", "state = 'enabled'", "payment acquirer"),
    (
        "payment_acquirer",
        "environment",
        "environment = 'prod'",
        "live payment acquirer",
    ),
    (
        "delivery_carrier",
        "prod_environment",
        "prod_environment",
        "carrier in production",
    ),
    (
        "iap_account",
        "account_token",
        "account_token NOT LIKE '%+disabled'",
        "in-app purchase account",
    ),
)


def _live_rows(cursor: psycopg.Cursor) -> list[str]:
    problems = []
    for table, column, condition, label in _LIVE_ROWS:
        if column not in inspect.table_columns(cursor, table):
            continue
        cursor.execute(
            sql.SQL("SELECT id FROM {} WHERE {} ORDER BY id").format(
                sql.Identifier(table), sql.SQL(condition)
            )
        )
        problems.extend(f"{label} {table},{row[0]} is active" for row in cursor)
    return problems


def check_neutralized(
    connection: psycopg.Connection,
    cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST,
) -> CheckResult:
    """Check that nothing in the copy can send mail, run jobs, charge or ship."""
    problems = []
    with connection.cursor() as cursor:
        for table, label in (
            ("ir_mail_server", "outgoing"),
            ("fetchmail_server", "incoming"),
        ):
            if "active" not in inspect.table_columns(cursor, table):
                continue
            cursor.execute(
                sql.SQL("SELECT name FROM {} WHERE active ORDER BY id").format(
                    sql.Identifier(table)
                )
            )
            problems.extend(
                f"{label} mail server {row[0]!r} is active" for row in cursor
            )
        if "active" in inspect.table_columns(cursor, "ir_cron"):
            cursor.execute(
                "SELECT c.id, coalesce(d.module || '.' || d.name, '') FROM ir_cron c"
                " LEFT JOIN ir_model_data d ON d.model = 'ir.cron' AND d.res_id = c.id"
                " WHERE c.active ORDER BY c.id"
            )
            for cron_id, xml_id in cursor.fetchall():
                if xml_id not in cron_allow_list:
                    label = xml_id or f"ir.cron,{cron_id}"
                    problems.append(f"scheduled action {label} is active")
        problems.extend(_live_rows(cursor))
        parameters = inspect.read_parameters(cursor, ("database.is_neutralized",))
        if inspect.table_columns(cursor, "ir_config_parameter") and (
            parameters.get("database.is_neutralized", "").lower() not in {"true", "1"}
        ):
            problems.append("database.is_neutralized is not set")
    return _result(
        "neutralized",
        problems,
        "no active mail server, scheduled action outside the allow-list, live payment "
        "or carrier",
        f"{len(problems)} ways the copy could still act on the outside world",
    )


def check_copy_identity(
    connection: psycopg.Connection, manifest: SnapshotManifest
) -> CheckResult:
    with connection.cursor() as cursor:
        current = read_identity(cursor)
    problems = []
    if manifest.odoo.uuid and current.get("database.uuid") == manifest.odoo.uuid:
        problems.append(f"database.uuid is still the original {manifest.odoo.uuid}")
    return _result(
        "copy identity",
        problems,
        "the copy has its own database.uuid",
        "the copy passes for the original database",
    )


def run_checks(
    connection: psycopg.Connection,
    manifest: SnapshotManifest,
    restored_row_counts: dict[str, int],
    folder: Path,
    jobs: int,
    cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST,
) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("row counts", lambda: check_row_counts(restored_row_counts, manifest)),
        ("filestore", lambda: check_filestore(connection, folder, jobs)),
        ("sequences", lambda: check_sequences(connection)),
        ("modules", lambda: check_modules(connection, manifest)),
        ("neutralized", lambda: check_neutralized(connection, cron_allow_list)),
        ("copy identity", lambda: check_copy_identity(connection, manifest)),
    ]
    return [timed(check) for _name, check in checks]


def timed(check: Callable[[], CheckResult]) -> CheckResult:
    """Run `check` and record its wall time in the result's `seconds`."""
    started = time.monotonic()
    result = check()
    result.seconds = round(time.monotonic() - started, 3)
    return result
