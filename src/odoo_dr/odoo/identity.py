"""A restored database's identity: `database.uuid`, `.secret` and `.create_date`.

A *copy* gets a new identity, as Odoo's database manager gives a duplicated database,
so it never passes for the original (sessions, licences, integrations that key on the
uuid). A *move* keeps it, for failover.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from odoo_dr.odoo.inspect import IDENTITY_PARAMETERS, existing_tables


@dataclass(frozen=True)
class IdentityChange:
    before: dict[str, str]
    after: dict[str, str]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def read_identity(cursor: psycopg.Cursor) -> dict[str, str]:
    if "ir_config_parameter" not in existing_tables(cursor):
        return {}
    cursor.execute(
        "SELECT key, value FROM ir_config_parameter WHERE key = ANY(%s)",
        (list(IDENTITY_PARAMETERS),),
    )
    return dict(cursor.fetchall())


def set_parameter(cursor: psycopg.Cursor, key: str, value: str) -> None:
    """Set an `ir_config_parameter` value, inserting the row if it is absent.

    Works without the table's unique constraint on `key`, which damaged or partly
    loaded databases may lack.
    """
    cursor.execute(
        "UPDATE ir_config_parameter"
        " SET value = %s, write_date = now() AT TIME ZONE 'UTC' WHERE key = %s",
        (value, key),
    )
    if cursor.rowcount == 0:
        cursor.execute(
            "INSERT INTO ir_config_parameter (key, value, create_date, write_date)"
            " VALUES (%s, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
            (key, value),
        )


def apply_copy_identity(cursor: psycopg.Cursor) -> IdentityChange:
    """Give the database a new uuid, secret and creation date."""
    before = read_identity(cursor)
    if "ir_config_parameter" not in existing_tables(cursor):
        return IdentityChange(before, before)
    after = {
        "database.uuid": str(uuid.uuid1()),
        "database.secret": str(uuid.uuid4()),
        "database.create_date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    for key, value in after.items():
        set_parameter(cursor, key, value)
    return IdentityChange(before, after)
