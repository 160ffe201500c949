"""Checks of a live tenant after a release: modules, pending upgrades, business data.

They reuse the drill's checks that hold on a live database: filestore and
sequences. A release adds its own: the expected module versions are installed, no
module waits in a `to upgrade`, `to install` or `to remove` state, and the queries
of `--check-sql` files return no rows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from odoo_dr.engine.checks import MAX_PROBLEMS, check_filestore, check_sequences
from odoo_dr.errors import RejectedError
from odoo_dr.odoo import inspect
from odoo_dr.repository.manifest import CheckResult

PENDING_STATES = ("to upgrade", "to install", "to remove")

# A query of a --check-sql file ends with a semicolon at the end of a line.
_STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|$)")


@dataclass
class LiveCheckOptions:
    filestore_folder: Path | None
    expected_modules: dict[str, str | None] | None = None
    # Whether modules installed but not expected fail the check (a restore point's
    # exact module list), or are only listed.
    exact_modules: bool = False
    check_sql: list[Path] = field(default_factory=list)
    jobs: int = 2


def _result(name: str, problems: list[str], passed: str, failed: str) -> CheckResult:
    return CheckResult(
        name=name,
        passed=not problems,
        summary=failed if problems else passed,
        problems=problems[:MAX_PROBLEMS],
    )


def check_expected_modules(
    connection: psycopg.Connection, expected: dict[str, str | None], exact: bool
) -> CheckResult:
    """Check that each expected module is installed with the expected version."""
    with connection.cursor() as cursor:
        installed = inspect.read_modules(cursor)
    problems = []
    for name, version in sorted(expected.items()):
        if name not in installed:
            problems.append(f"{name}: not installed, expected {version}")
        elif installed[name] != version:
            problems.append(f"{name}: version {installed[name]}, expected {version}")
    if exact:
        problems.extend(
            f"{name}: installed ({installed[name]}), not expected"
            for name in sorted(set(installed) - set(expected))
        )
    return _result(
        "module versions",
        problems,
        f"{len(expected)} expected modules installed with their versions",
        f"{len(problems)} modules differ from the expected versions",
    )


def check_pending_modules(connection: psycopg.Connection) -> CheckResult:
    """Check that no module is left to upgrade, install or remove."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, state FROM ir_module_module WHERE state = ANY(%s)"
            " ORDER BY name",
            (list(PENDING_STATES),),
        )
        pending = cursor.fetchall()
    return _result(
        "pending modules",
        [f"{name}: state {state!r}" for name, state in pending],
        "no module left to upgrade, install or remove",
        f"{len(pending)} modules left in a pending state: the upgrade did not finish",
    )


def read_check_queries(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RejectedError(
            f"cannot read --check-sql file {path}: {exc.strerror or exc}"
        ) from None
    queries = [part.strip() for part in _STATEMENT_END.split(text)]
    queries = [query for query in queries if _without_comments(query)]
    if not queries:
        raise RejectedError(
            f"--check-sql file {path} contains no query",
            hint="write queries that return the rows in error, each ending with ';'",
        )
    return queries


def _without_comments(query: str) -> str:
    return "\n".join(
        line for line in query.splitlines() if not line.lstrip().startswith("--")
    ).strip()


def check_queries(connection: psycopg.Connection, path: Path) -> CheckResult:
    """Run each query of `path` read-only; each row it returns is a problem."""
    problems = []
    queries = read_check_queries(path)
    for number, query in enumerate(queries, start=1):
        label = _without_comments(query).splitlines()[0][:80]
        try:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute(query)
                rows = cursor.fetchmany(MAX_PROBLEMS) if cursor.description else []
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            problems.append(f"query {number} ({label}) failed: {first_line}")
            continue
        problems.extend(f"query {number} ({label}) returned {row}" for row in rows)
    return _result(
        f"queries of {path.name}",
        problems,
        f"{len(queries)} queries returned no rows",
        f"{len(problems)} rows or errors from {len(queries)} queries",
    )


def run_live_checks(
    connection: psycopg.Connection, options: LiveCheckOptions
) -> list[CheckResult]:
    """Run the checks of a live tenant, each timed, in a fixed order."""
    checks: list[Callable[[], CheckResult]] = [
        lambda: check_pending_modules(connection),
    ]
    if options.expected_modules is not None:
        expected = options.expected_modules
        checks.append(
            lambda: check_expected_modules(connection, expected, options.exact_modules)
        )
    checks.append(lambda: check_sequences(connection))
    if options.filestore_folder is not None:
        folder = options.filestore_folder
        checks.append(lambda: check_filestore(connection, folder, options.jobs))
    for path in options.check_sql:
        checks.append(lambda path=path: check_queries(connection, path))
    results = []
    for check in checks:
        started = time.monotonic()
        result = check()
        result.seconds = round(time.monotonic() - started, 3)
        results.append(result)
        connection.rollback()
    return results
