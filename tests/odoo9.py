"""Load the complete part of the truncated Odoo 9 dump in `data/` into PostgreSQL.

The dump (see `data/README.md`) ends inside a `COPY` block. `complete_part` keeps the
text before that block and removes two kinds of statements (three on request, see
`keep_setval`), always outside `COPY` data:

- `SET default_with_oids = false;`. PostgreSQL 12 removed tables with OIDs, but
  PostgreSQL 15 still accepts this setting with the value `false` and rejects only
  `true`. The line is dropped so the load does not depend on that leniency.
- `ALTER ... OWNER TO odoouser;`, because the role `odoouser` does not exist here.
  Creating it would leave a cluster-wide role behind, shared by parallel tests, so
  the objects stay owned by the loading role instead.

`load` runs the result through `psql` with `ON_ERROR_STOP` in a single transaction, so
any error stops the load and leaves the database empty.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from conftest import admin_connection
from odoo_dr.pg.binaries import find_tools

DUMP = Path(__file__).parent / "data" / "odoo9-truncated-dump.sql"
ROLE = "odoouser"

_OWNER = re.compile(rf"^ALTER \S+( \S+)* OWNER TO {ROLE};$")
_OIDS = "SET default_with_oids = false;"
_SETVAL = "SELECT pg_catalog.setval("
_COPY = re.compile(r"^COPY (\S+) \(.*\) FROM stdin;$")
_END_OF_COPY = "\\."


@dataclass
class CompletePart:
    """The loadable text of the dump and what was removed to get it."""

    text: str
    copied_tables: list[str] = field(default_factory=list)
    incomplete_table: str | None = None
    removed: dict[str, int] = field(default_factory=dict)


def complete_part(path: Path = DUMP, keep_setval: bool = True) -> CompletePart:
    """Return the statements of `path` that a complete load can run.

    A `COPY` block runs from its `COPY ... FROM stdin;` line to a line `\\.`, and a
    block that the file cuts off is left out with its header. `keep_setval=False`
    also removes the `setval` calls, which leaves every sequence at its start value.
    """
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    loadable: list[str] = []
    part = CompletePart(text="")
    removed = {"default_with_oids": 0, "owner": 0, "setval": 0}
    block_start: int | None = None
    block_table: str | None = None
    for line in lines:
        statement = line.rstrip("\n")
        if block_start is not None:
            loadable.append(line)
            if statement == _END_OF_COPY:
                part.copied_tables.append(block_table)
                block_start = None
            continue
        match = _COPY.match(statement)
        if match:
            block_start = len(loadable)
            block_table = match.group(1)
            loadable.append(line)
        elif statement == _OIDS:
            removed["default_with_oids"] += 1
        elif _OWNER.match(statement):
            removed["owner"] += 1
        elif not keep_setval and statement.startswith(_SETVAL):
            removed["setval"] += 1
        else:
            loadable.append(line)
    if block_start is not None:
        del loadable[block_start:]
        part.incomplete_table = block_table
    part.text = "".join(loadable)
    part.removed = removed
    return part


def create_database(name: str) -> None:
    """Create an empty UTF-8 database from template0, as Odoo does."""
    with admin_connection() as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )


def load(name: str, part: CompletePart) -> None:
    """Create database `name` and run `part` in it with psql, stopping at any error."""
    create_database(name)
    with admin_connection() as connection:
        major = connection.info.server_version // 10000
    psql = find_tools(major, "loading the Odoo 9 dump").psql
    result = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"],
        input=part.text,
        capture_output=True,
        text=True,
        env={**os.environ, "PGDATABASE": name},
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"psql failed to load {DUMP.name} into {name!r} "
            f"(exit code {result.returncode}):\n{result.stderr}"
        )
