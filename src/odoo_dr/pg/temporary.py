"""Databases that odoo-dr creates under a temporary name, and their swap into place.

A restore loads its data into `odoo-dr-restore-<hex>`, created as a template so that
Odoo's database list (which leaves out templates) never offers it to a cron worker or
a user. A comment names the creating process. Once the copy is ready it is renamed to
the target; a target being replaced is first renamed aside, and renamed back if the
swap fails, so a failed swap never loses it. A later run finds the leftovers of a
killed process by their comment and either drops them or finishes what was left.
"""

from __future__ import annotations

import logging
import os
import re
import uuid

import psycopg
from psycopg import sql

from odoo_dr.pg.server import drop_database
from odoo_dr.processes import HOST, process_alive

log = logging.getLogger(__name__)

RESTORE_PREFIX = "odoo-dr-restore-"
REPLACED_PREFIX = "odoo-dr-replaced-"

_MARK = re.compile(
    r"^odoo-dr (?P<kind>temporary|drill|replaced) database of pid (?P<pid>\d+)"
    r" on host (?P<host>.+?)(?: for (?P<target>.+))?$"
)


def _comment(kind: str, target: str | None = None) -> str:
    text = f"odoo-dr {kind} database of pid {os.getpid()} on host {HOST}"
    return f"{text} for {target}" if target else text


def _set_comment(connection: psycopg.Connection, dbname: str, text: str | None) -> None:
    connection.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(dbname), sql.Literal(text)
        )
    )


def _alter(connection: psycopg.Connection, dbname: str, clause: str) -> None:
    connection.execute(
        sql.SQL("ALTER DATABASE {} " + clause).format(sql.Identifier(dbname))
    )


def new_temporary_name() -> str:
    return RESTORE_PREFIX + uuid.uuid4().hex[:12]


def create_temporary(
    connection: psycopg.Connection, dbname: str, options: sql.Composable
) -> None:
    """Create `dbname` hidden from Odoo's database list, marked as this process's."""
    connection.execute(
        sql.SQL("CREATE DATABASE {} {} IS_TEMPLATE true").format(
            sql.Identifier(dbname), options
        )
    )
    _set_comment(connection, dbname, _comment("temporary"))


def mark_drill(connection: psycopg.Connection, dbname: str) -> None:
    """Mark a drill's scratch database, so a later run drops it if this one dies."""
    _set_comment(connection, dbname, _comment("drill"))


def clear_mark(connection: psycopg.Connection, dbname: str) -> None:
    _set_comment(connection, dbname, None)


def drop(connection: psycopg.Connection, dbname: str) -> None:
    """Drop a database odoo-dr created, template or not."""
    exists = connection.execute(
        "SELECT datistemplate FROM pg_database WHERE datname = %s", (dbname,)
    ).fetchone()
    if exists is None:
        return
    if exists[0]:
        # Odoo lists databases that allow connections and are not templates; the
        # first change keeps this one out of its list until it is gone.
        _alter(connection, dbname, "ALLOW_CONNECTIONS false")
        _alter(connection, dbname, "IS_TEMPLATE false")
    drop_database(connection, dbname)


def _end_other_sessions(connection: psycopg.Connection, dbname: str) -> None:
    _alter(connection, dbname, "ALLOW_CONNECTIONS false")
    connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )


def _rename(connection: psycopg.Connection, old: str, new: str) -> None:
    connection.execute(
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(old), sql.Identifier(new)
        )
    )


def swap_into_place(
    connection: psycopg.Connection, temporary: str, target: str, replace: bool
) -> None:
    """Rename `temporary` to `target`, replacing an existing `target` when `replace`.

    Sessions on the databases being renamed are ended first: PostgreSQL refuses to
    rename a database that has sessions.
    """
    _end_other_sessions(connection, temporary)
    aside = None
    if replace:
        aside = REPLACED_PREFIX + uuid.uuid4().hex[:12]
        log.warning("replacing existing database %r (--force)", target)
        _end_other_sessions(connection, target)
        _rename(connection, target, aside)
        _set_comment(connection, aside, _comment("replaced", target))
        log.info("renamed the replaced database %r to %r", target, aside)
    try:
        _rename(connection, temporary, target)
    except psycopg.Error:
        if aside is not None:
            _rename(connection, aside, target)
            _alter(connection, target, "ALLOW_CONNECTIONS true")
            clear_mark(connection, target)
            log.warning("put the replaced database %r back", target)
        raise
    _finish(connection, target)
    if aside is not None:
        log.warning("dropping the replaced database %r, formerly %r", aside, target)
        drop(connection, aside)


def _finish(connection: psycopg.Connection, dbname: str) -> None:
    _alter(connection, dbname, "IS_TEMPLATE false")
    _alter(connection, dbname, "ALLOW_CONNECTIONS true")
    clear_mark(connection, dbname)


def in_use(comment: str | None) -> bool:
    """Return whether a database with this comment belongs to a live odoo-dr."""
    mark = _MARK.match(comment or "")
    if mark is None:
        return False
    return mark["host"] != HOST or process_alive(int(mark["pid"]))


def clean_stale(connection: psycopg.Connection) -> list[str]:
    """Deal with the databases left by odoo-dr processes killed on this host.

    Temporary and drill databases are dropped. A replaced database whose target is
    missing (the swap was cut short) is renamed back; otherwise it is dropped. A
    database marked temporary under a final name (killed between the rename and
    clearing the mark) is finished. Returns a line per action, for the log.
    """
    rows = connection.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
        " WHERE shobj_description(oid, 'pg_database') LIKE 'odoo-dr %'"
    ).fetchall()
    names = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
    actions = []
    for name, comment in rows:
        mark = _MARK.match(comment or "")
        if mark is None or mark["host"] != HOST or process_alive(int(mark["pid"])):
            continue
        kind = mark["kind"]
        if kind == "replaced" and mark["target"] and mark["target"] not in names:
            _rename(connection, name, mark["target"])
            _alter(connection, mark["target"], "ALLOW_CONNECTIONS true")
            clear_mark(connection, mark["target"])
            actions.append(f"renamed {name!r} back to {mark['target']!r}")
        elif kind == "temporary" and not name.startswith(RESTORE_PREFIX):
            _finish(connection, name)
            actions.append(f"finished the swap of {name!r}")
        else:
            drop(connection, name)
            actions.append(f"dropped {name!r}")
    return actions
