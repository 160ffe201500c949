"""Read privileges of the connected role, checked before pg_dump needs them."""

from __future__ import annotations

import psycopg

# Tables, partitioned tables and sequences: pg_dump reads each one (a sequence's
# last value), so the role needs SELECT on it and USAGE on its schema. Views and
# materialized views are dumped as definitions, and objects that belong to an
# extension are not dumped, so neither is checked.
_UNREADABLE = """
SELECT format('%I.%I', n.nspname, c.relname),
       CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
       has_schema_privilege(n.oid, 'USAGE')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
  AND NOT (has_schema_privilege(n.oid, 'USAGE')
           AND has_table_privilege(c.oid, 'SELECT'))
ORDER BY 1
"""


def unreadable_objects(cursor: psycopg.Cursor) -> list[str]:
    """Return the tables and sequences pg_dump would fail to read, described.

    Each entry reads like `table public.res_users (no SELECT)` or `sequence
    sales.order_seq (no USAGE on its schema)`.
    """
    cursor.execute(_UNREADABLE)
    described = []
    for name, kind, schema_usage in cursor.fetchall():
        missing = "SELECT" if schema_usage else "USAGE on its schema"
        described.append(f"{kind} {name} (no {missing})")
    return described


def current_role(cursor: psycopg.Cursor) -> str:
    cursor.execute("SELECT current_user")
    return cursor.fetchone()[0]
