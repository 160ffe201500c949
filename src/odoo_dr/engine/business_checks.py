"""Business checks: named SQL queries with an expected result, run on a restored copy.

A check is one read-only SELECT. Three layers keep it from changing data: the text
must be a single SELECT or WITH statement without data-modifying words or functions
with side effects (`validate_select`), it runs through a server-side cursor
(`DECLARE ... CURSOR FOR`, which PostgreSQL refuses for several statements, SELECT
INTO and data-modifying WITH), and it runs in a READ ONLY transaction that is rolled
back, with a statement and a lock timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from odoo_dr.engine.sql_guard import validate_select
from odoo_dr.errors import RejectedError
from odoo_dr.repository.manifest import CheckResult
from odoo_dr.review.yamlio import Location, YamlError, line_at, load_documents

# A check with `rows: 0` shows this many of the rows it returned.
SHOWN_ROWS = 20
DEFAULT_TIMEOUT = 300
LOCK_TIMEOUT_MS = 10_000

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class Expectation(BaseModel):
    """The result a check's query must return: no rows, a value, or bounds."""

    model_config = ConfigDict(extra="forbid")

    rows: Literal[0] | None = Field(
        default=None, description="0: the query returns no rows; each row is a problem"
    )
    value: bool | int | float | str | None = Field(
        default=None,
        description="the single value the query returns (one row, one column)",
    )
    min: float | None = Field(default=None, description="lowest single value allowed")
    max: float | None = Field(default=None, description="highest single value allowed")

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        kinds = [
            name
            for name, present in (
                ("rows", "rows" in self.model_fields_set),
                ("value", "value" in self.model_fields_set),
                ("min/max", bool({"min", "max"} & self.model_fields_set)),
            )
            if present
        ]
        if len(kinds) != 1:
            raise ValueError(
                "expect one of `rows: 0`, `value: V`, or `min` and/or `max`, "
                f"not {' and '.join(kinds) or 'nothing'}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def describe(self) -> str:
        if "rows" in self.model_fields_set:
            return "no rows"
        if "value" in self.model_fields_set:
            return f"value {self.value!r}"
        bounds = []
        if self.min is not None:
            bounds.append(f">= {self.min:g}")
        if self.max is not None:
            bounds.append(f"<= {self.max:g}")
        return "value " + " and ".join(bounds)


class BusinessCheck(BaseModel):
    """A named read-only SQL query and the result it must give."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="shown in the drill's results")
    sql: str = Field(description="one SELECT (or WITH ... SELECT) statement")
    expect: Expectation
    needs_tables: list[str] = Field(
        default_factory=list,
        description="tables the check needs; it is skipped where one is missing",
    )
    timeout: int = Field(
        default=DEFAULT_TIMEOUT, gt=0, description="seconds the query may run"
    )

    @field_validator("sql")
    @classmethod
    def _read_only(cls, value: str) -> str:
        return validate_select(value)

    @field_validator("needs_tables")
    @classmethod
    def _table_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _TABLE_NAME.match(name):
                raise ValueError(f"invalid table name {name!r}")
        return value


def check_names_unique(checks: list[BusinessCheck]) -> list[BusinessCheck]:
    seen: set[str] = set()
    for check in checks:
        if check.name in seen:
            raise ValueError(f"two checks are named {check.name!r}")
        seen.add(check.name)
    return checks


def combine_checks(
    defaults: list[BusinessCheck], own: list[BusinessCheck]
) -> list[BusinessCheck]:
    """Return the default checks followed by `own`; a check of `own` that has the
    name of a default replaces it in place."""
    by_name = {check.name: check for check in own}
    combined = [by_name.pop(check.name, check) for check in defaults]
    return combined + [check for check in own if check.name in by_name]


def checks_to_run(
    own: Sequence[BusinessCheck], default_checks: bool
) -> list[BusinessCheck]:
    """Return the business checks a drill runs: DEFAULT_CHECKS (unless turned off)
    and `own`, where a check named like a default replaces it."""
    return combine_checks(DEFAULT_CHECKS if default_checks else [], list(own))


def load_checks_file(path: Path) -> list[BusinessCheck]:
    """Read a YAML file holding a list of checks; raise RejectedError naming the
    file and line of each fault."""
    hint = "see the business checks section of the README for the format"
    try:
        documents = load_documents(path)
    except YamlError as exc:
        raise RejectedError(f"invalid checks file {exc}", hint=hint) from None
    if len(documents) != 1 or not isinstance(documents[0], list):
        raise RejectedError(
            f"invalid checks file {path}: it must be one YAML list of checks",
            hint=hint,
        )
    document = documents[0]
    checks = []
    problems = []
    for index, item in enumerate(document):
        try:
            checks.append(BusinessCheck.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                loc = (index, *error["loc"])
                where = Location(str(path), line_at(document, loc))
                field = ".".join(str(part) for part in error["loc"]) or "check"
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = f"unknown key {str(error['loc'][-1])!r}"
                problems.append(f"{where}: [{index}].{field}: {message}")
    if not problems:
        try:
            check_names_unique(checks)
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise RejectedError(
            "invalid checks file: " + "; ".join(problems),
            hint="a check has name, sql (one SELECT), expect (rows: 0, value, or "
            "min/max), and optionally needs_tables and timeout; " + hint,
        )
    return checks


def _missing_table(cursor: psycopg.Cursor, tables: list[str]) -> str | None:
    for table in tables:
        cursor.execute("SELECT to_regclass(%s)", (table,))
        if cursor.fetchone()[0] is None:
            return table
    return None


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _compare(expect: Expectation, value: object) -> str | None:
    """Return why `value` does not meet `expect`, or None."""
    if "value" in expect.model_fields_set:
        wanted = expect.value
        if isinstance(wanted, bool) or wanted is None or isinstance(wanted, str):
            equal = value == wanted or (
                isinstance(wanted, str) and value is not None and str(value) == wanted
            )
        else:
            found = _number(value)
            equal = found is not None and found == _number(wanted)
        return None if equal else f"returned {value!r}, expected {wanted!r}"
    found = _number(value)
    if found is None:
        return f"returned {value!r}, expected a number"
    if expect.min is not None and found < _number(expect.min):
        return f"returned {value}, below the minimum {expect.min:g}"
    if expect.max is not None and found > _number(expect.max):
        return f"returned {value}, above the maximum {expect.max:g}"
    return None


def _format_row(names: list[str], row: tuple) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(names, row, strict=True))


def _run_query(
    connection: psycopg.Connection, check: BusinessCheck
) -> tuple[list[str], list[tuple], int]:
    """Run the check's query read-only; return column names, first rows, row count."""
    with connection.transaction(force_rollback=True):
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(check.timeout * 1000)
            )
        )
        connection.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT_MS))
        )
        with connection.cursor(name="odoo_dr_business_check") as cursor:
            cursor.execute(check.sql)
            names = [column.name for column in cursor.description or ()]
            shown = cursor.fetchmany(SHOWN_ROWS)
            total = len(shown)
            while batch := cursor.fetchmany(10_000):
                total += len(batch)
    return names, shown, total


def run_business_check(
    connection: psycopg.Connection, check: BusinessCheck
) -> CheckResult:
    """Run one check in its own READ ONLY transaction, rolled back afterwards.

    NOTE: READ ONLY does not cover a function that opens a connection of its own
    (dblink called inside a user-defined function); the text check only rejects
    direct calls of such functions.
    """
    with connection.cursor() as cursor:
        missing = _missing_table(cursor, check.needs_tables)
    # The query's transaction must be a top-level one, for READ ONLY to cover it.
    connection.rollback()
    if missing is not None:
        return CheckResult(
            name=check.name, passed=True, summary=f"skipped: no table {missing}"
        )
    try:
        names, shown, total = _run_query(connection, check)
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        return CheckResult(
            name=check.name,
            passed=False,
            summary=f"the query failed: {first_line}",
            problems=[f"query failed: {first_line}"],
        )
    if "rows" in check.expect.model_fields_set:
        problems = [_format_row(names, row) for row in shown]
        if total > len(shown):
            problems.append(f"... and {total - len(shown):,} more rows")
        return CheckResult(
            name=check.name,
            passed=total == 0,
            summary="no rows, as expected"
            if total == 0
            else f"{total:,} rows, expected none",
            problems=problems,
        )
    if total != 1 or len(names) != 1:
        reason = (
            f"returned {total} rows of {len(names)} columns, expected one value "
            f"({check.expect.describe()})"
        )
        return CheckResult(
            name=check.name, passed=False, summary=reason, problems=[reason]
        )
    value = shown[0][0]
    reason = _compare(check.expect, value)
    return CheckResult(
        name=check.name,
        passed=reason is None,
        summary=f"returned {value}, as expected" if reason is None else f"{reason}",
        problems=[] if reason is None else [reason],
    )


def run_business_checks(
    connection: psycopg.Connection, checks: list[BusinessCheck]
) -> list[CheckResult]:
    """Run `checks` in order, each timed and in a READ ONLY transaction of its own.

    Ends any transaction open on `connection` with a rollback first, so that each
    check's READ ONLY applies to a whole transaction.
    """
    connection.rollback()
    results = []
    for check in checks:
        started = time.monotonic()
        result = run_business_check(connection, check)
        result.seconds = round(time.monotonic() - started, 3)
        results.append(result)
        connection.rollback()
    return results


# Odoo 16 and 17 column names; the demo database (odoo_dr.demo) uses the same.
_STOCK = ["stock_location", "stock_quant"]
# OCA's stock_no_negative module adds stock_location.allow_negative_stock; reading it
# through to_jsonb works whether the column exists or not.
_NEGATIVE_NOT_ALLOWED = (
    "coalesce((to_jsonb(l) ->> 'allow_negative_stock')::boolean, false) IS FALSE"
)

DEFAULT_CHECKS: list[BusinessCheck] = [
    BusinessCheck(
        name="warehouse locations",
        sql="""
SELECT w.id AS warehouse_id, w.name AS warehouse, ref.kind, ref.location_id,
       CASE WHEN l.id IS NULL THEN 'missing' ELSE 'archived' END AS problem
  FROM stock_warehouse w
 CROSS JOIN LATERAL (VALUES ('view location', w.view_location_id),
                            ('stock location', w.lot_stock_id))
       AS ref (kind, location_id)
  LEFT JOIN stock_location l ON l.id = ref.location_id
 WHERE w.active AND (l.id IS NULL OR l.active IS NOT TRUE)
 ORDER BY w.id, ref.kind
""",
        expect=Expectation(rows=0),
        needs_tables=["stock_warehouse", "stock_location"],
    ),
    BusinessCheck(
        name="open transfer locations",
        sql="""
SELECT p.id AS picking_id, p.name AS picking, p.state, ref.side, ref.location_id,
       CASE WHEN l.id IS NULL THEN 'missing' ELSE 'archived' END AS problem
  FROM stock_picking p
 CROSS JOIN LATERAL (VALUES ('source', p.location_id),
                            ('destination', p.location_dest_id))
       AS ref (side, location_id)
  LEFT JOIN stock_location l ON l.id = ref.location_id
 WHERE coalesce(p.state, 'draft') NOT IN ('done', 'cancel')
   AND (l.id IS NULL OR l.active IS NOT TRUE)
 ORDER BY p.id, ref.side
""",
        expect=Expectation(rows=0),
        needs_tables=["stock_picking", "stock_location"],
    ),
    # Odoo 16 and 17 check barcodes per company, a product without a company
    # sharing its barcode with every company.
    BusinessCheck(
        name="unique barcodes",
        sql="""
SELECT a.barcode, a.id AS product_id, b.id AS other_product_id
  FROM product_product a
  JOIN product_template ta ON ta.id = a.product_tmpl_id
  JOIN product_product b ON b.barcode = a.barcode AND b.id > a.id AND b.active
  JOIN product_template tb ON tb.id = b.product_tmpl_id
 WHERE a.active AND a.barcode <> ''
   AND (ta.company_id IS NULL OR tb.company_id IS NULL
        OR ta.company_id = tb.company_id)
 ORDER BY a.barcode, a.id, b.id
""",
        expect=Expectation(rows=0),
        needs_tables=["product_product", "product_template"],
    ),
    BusinessCheck(
        name="no negative quants",
        sql=f"""
SELECT q.id AS quant_id, q.product_id, l.complete_name AS location, q.quantity
  FROM stock_quant q
  JOIN stock_location l ON l.id = q.location_id
 WHERE l.usage = 'internal' AND q.quantity < 0 AND {_NEGATIVE_NOT_ALLOWED}
 ORDER BY q.id
""",
        expect=Expectation(rows=0),
        needs_tables=_STOCK,
    ),
    BusinessCheck(
        name="stock per product and location",
        sql=f"""
SELECT q.product_id, l.complete_name AS location, sum(q.quantity) AS quantity
  FROM stock_quant q
  JOIN stock_location l ON l.id = q.location_id
 WHERE l.usage = 'internal' AND {_NEGATIVE_NOT_ALLOWED}
 GROUP BY q.product_id, l.id, l.complete_name
HAVING sum(q.quantity) < 0
 ORDER BY q.product_id, l.id
""",
        expect=Expectation(rows=0),
        needs_tables=_STOCK,
    ),
    # Odoo 16 locks a confirmed order as state 'done'; Odoo 17 keeps 'sale'.
    BusinessCheck(
        name="confirmed sale orders have lines",
        sql="""
SELECT o.id AS order_id, o.name AS sale_order, o.state
  FROM sale_order o
 WHERE o.state IN ('sale', 'done')
   AND NOT EXISTS (SELECT 1 FROM sale_order_line s WHERE s.order_id = o.id)
 ORDER BY o.id
""",
        expect=Expectation(rows=0),
        needs_tables=["sale_order", "sale_order_line"],
    ),
    BusinessCheck(
        name="confirmed purchase orders have lines",
        sql="""
SELECT o.id AS order_id, o.name AS purchase_order, o.state
  FROM purchase_order o
 WHERE o.state IN ('purchase', 'done')
   AND NOT EXISTS (SELECT 1 FROM purchase_order_line s WHERE s.order_id = o.id)
 ORDER BY o.id
""",
        expect=Expectation(rows=0),
        needs_tables=["purchase_order", "purchase_order_line"],
    ),
]
