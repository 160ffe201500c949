"""Stock on hand per internal location: read in the backup's snapshot, compared by
the drill."""

from __future__ import annotations

import math

import psycopg

from odoo_dr.odoo import inspect
from odoo_dr.repository.manifest import (
    CheckResult,
    LocationStock,
    SnapshotManifest,
    StockTotals,
)

# Quantities are numeric in PostgreSQL and floats in the manifest's JSON.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-6
MAX_PROBLEMS = 20


def read_stock_totals(cursor: psycopg.Cursor) -> StockTotals | None:
    """Sum the quants of each internal location, in the caller's transaction.

    Returns None when the database has no stock_quant or stock_location table with
    Odoo's columns (the stock module is not installed).
    """
    quant_columns = inspect.table_columns(cursor, "stock_quant")
    location_columns = inspect.table_columns(cursor, "stock_location")
    if (
        not {"quantity", "location_id"} <= quant_columns
        or not {
            "usage",
            "complete_name",
        }
        <= location_columns
    ):
        return None
    cursor.execute(
        "SELECT l.id, l.complete_name, count(q.id), coalesce(sum(q.quantity), 0)"
        " FROM stock_quant q JOIN stock_location l ON l.id = q.location_id"
        " WHERE l.usage = 'internal' GROUP BY l.id, l.complete_name ORDER BY l.id"
    )
    locations = [
        LocationStock(id=id_, name=name, quants=quants, quantity=float(quantity))
        for id_, name, quants, quantity in cursor.fetchall()
    ]
    return StockTotals(
        quants=sum(location.quants for location in locations),
        quantity=math.fsum(location.quantity for location in locations),
        locations=locations,
    )


def _close(found: float, expected: float) -> bool:
    return math.isclose(
        found, expected, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE
    )


def _describe(location: LocationStock | None) -> str:
    if location is None:
        return "no quants"
    return f"{location.quants:,} quants totalling {location.quantity:,g}"


def compare_stock_totals(found: StockTotals | None, expected: StockTotals) -> list[str]:
    """Return a problem per location whose quant count or total quantity differs."""
    if found is None:
        return ["the restored database has no stock_quant or stock_location table"]
    problems = []
    now = {location.id: location for location in found.locations}
    then = {location.id: location for location in expected.locations}
    for location_id in sorted(now.keys() | then.keys()):
        current, recorded = now.get(location_id), then.get(location_id)
        if (
            current is not None
            and recorded is not None
            and current.quants == recorded.quants
            and _close(current.quantity, recorded.quantity)
        ):
            continue
        name = (current or recorded).name
        problems.append(
            f"location {location_id} ({name}): {_describe(current)}, snapshot had "
            f"{_describe(recorded)}"
        )
    return problems


def check_stock_totals(
    connection: psycopg.Connection, manifest: SnapshotManifest
) -> CheckResult:
    """Compare stock on hand per internal location with the snapshot's totals."""
    name = "stock totals"
    expected = manifest.stock_totals
    if expected is None:
        return CheckResult(
            name=name,
            passed=True,
            summary="skipped: the snapshot recorded no stock totals",
        )
    with connection.cursor() as cursor:
        found = read_stock_totals(cursor)
    problems = compare_stock_totals(found, expected)
    if problems:
        summary = (
            f"{len(problems)} internal locations differ from the snapshot's "
            f"{expected.quants:,} quants totalling {expected.quantity:,g}"
        )
    else:
        summary = (
            f"{expected.quants:,} quants in {len(expected.locations)} internal "
            f"locations totalling {expected.quantity:,g}, as in the snapshot"
        )
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more locations")
    return CheckResult(name=name, passed=not problems, summary=summary, problems=shown)
