"""Databases that odoo-dr creates under a temporary name, and their marks.

A restore loads its data into `odoo-dr-restore-<hex>`, created as a template so that
Odoo's database list (which leaves out templates) never offers it to a cron worker or
a user. A comment marks it with its kind, the creating process and host, and the time
the process last refreshed the mark (every minute). A later run treats a mark as left
behind when its process is gone from this host, or when it was not refreshed for ten
minutes: the second test covers other hosts, containers where every process is pid 1,
and Kubernetes pods that never come back.

Kinds: `temporary` (being restored), `drill` (a drill's scratch copy, marked from
the rename into its `odoo-dr-drill-` name until the drill drops it), and, during a
restore's final renames, `swapping` (the new database) and `replaced` (a target
renamed aside by --force): only the restore's swap journal may finish those (see
`engine.swap`). A database named `odoo-dr-drill-…` is never left without a mark,
unless `drill --keep` kept it on purpose.

CREATE DATABASE cannot run in a transaction, so a process killed between it and
the COMMENT that marks the database leaves an unmarked `odoo-dr-restore-…`
template. The creator holds an advisory lock named after the database from before
CREATE DATABASE until the mark is set, and the server releases it when that
session ends, so an unmarked temporary database whose lock is free is a leftover.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database
from odoo_dr.processes import HOST, process_alive

log = logging.getLogger(__name__)

RESTORE_PREFIX = "odoo-dr-restore-"
REPLACED_PREFIX = "odoo-dr-replaced-"
# A drill's scratch database; its interrupted swaps are dropped, never finished.
DRILL_PREFIX = "odoo-dr-drill-"
REFRESH_SECONDS = 60
STALE_AFTER = timedelta(minutes=10)

# A name `new_temporary_name` returns; only these are dropped when unmarked.
_TEMPORARY_NAME = re.compile(r"^odoo-dr-restore-[0-9a-f]{12}$")

_MARK = re.compile(
    r"^odoo-dr (?P<kind>temporary|drill|replaced|swapping) database of pid"
    r" (?P<pid>\d+) on host (?P<host>\S+) refreshed (?P<refreshed>\S+)"
    r"(?: for (?P<target>.+))?$"
)


def mark_text(kind: str, target: str | None = None) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    text = (
        f"odoo-dr {kind} database of pid {os.getpid()} on host {HOST} refreshed {now}"
    )
    return f"{text} for {target}" if target else text


def set_comment(connection: psycopg.Connection, dbname: str, text: str | None) -> None:
    connection.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(dbname), sql.Literal(text)
        )
    )


def alter(connection: psycopg.Connection, dbname: str, clause: sql.Composable) -> None:
    connection.execute(
        sql.SQL("ALTER DATABASE {} {}").format(sql.Identifier(dbname), clause)
    )


def rename(connection: psycopg.Connection, old: str, new: str) -> None:
    connection.execute(
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(old), sql.Identifier(new)
        )
    )


def exists(connection: psycopg.Connection, dbname: str) -> bool:
    row = connection.execute(
        "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
    ).fetchone()
    return row is not None


def new_temporary_name() -> str:
    return RESTORE_PREFIX + uuid.uuid4().hex[:12]


def new_aside_name() -> str:
    return REPLACED_PREFIX + uuid.uuid4().hex[:12]


def creation_lock_key(dbname: str) -> int:
    """Return the advisory lock key held while `dbname` is created and marked."""
    digest = hashlib.sha256(f"odoo-dr create {dbname}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def create_temporary(
    connection: psycopg.Connection, dbname: str, options: sql.Composable
) -> None:
    """Create `dbname` hidden from Odoo's database list, marked as this process's.

    `connection` must be in autocommit mode on the maintenance database, where
    `clean_stale` looks for the advisory lock.
    """
    key = creation_lock_key(dbname)
    connection.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        connection.execute(
            sql.SQL("CREATE DATABASE {} {} IS_TEMPLATE true").format(
                sql.Identifier(dbname), options
            )
        )
        set_comment(connection, dbname, mark_text("temporary"))
    finally:
        # After an error the session may be unusable; closing it releases the lock.
        with contextlib.suppress(psycopg.Error):
            connection.execute("SELECT pg_advisory_unlock(%s)", (key,))


def clear_mark(connection: psycopg.Connection, dbname: str) -> None:
    set_comment(connection, dbname, None)


def drop(connection: psycopg.Connection, dbname: str) -> None:
    """Drop a database odoo-dr created, template or not."""
    row = connection.execute(
        "SELECT datistemplate FROM pg_database WHERE datname = %s", (dbname,)
    ).fetchone()
    if row is None:
        return
    if row[0]:
        # Odoo lists databases that allow connections and are not templates; the
        # first change keeps this one out of its list until it is gone.
        alter(connection, dbname, sql.SQL("ALLOW_CONNECTIONS false"))
        alter(connection, dbname, sql.SQL("IS_TEMPLATE false"))
    drop_database(connection, dbname)


def finish(
    connection: psycopg.Connection, dbname: str, kind: str | None = None
) -> None:
    """Make a database in its final place visible and open.

    Its mark is removed, unless `kind` names the mark it keeps (`drill` for a
    drill's scratch copy). That mark is set first, so the database is never
    unmarked under a name that only odoo-dr uses.
    """
    if kind is not None:
        set_comment(connection, dbname, mark_text(kind))
    alter(connection, dbname, sql.SQL("IS_TEMPLATE false"))
    alter(connection, dbname, sql.SQL("ALLOW_CONNECTIONS true"))
    if kind is None:
        clear_mark(connection, dbname)


def end_other_sessions(connection: psycopg.Connection, dbname: str) -> None:
    alter(connection, dbname, sql.SQL("ALLOW_CONNECTIONS false"))
    connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )


@contextmanager
def kept_marked(
    settings: PgSettings,
    dbname: str,
    kind: str,
    target: str | None = None,
    on_refresh: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Mark `dbname` and refresh its mark every minute while the block runs."""

    def refresh() -> None:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            if exists(connection, dbname):
                set_comment(connection, dbname, mark_text(kind, target))
        if on_refresh is not None:
            on_refresh()

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(REFRESH_SECONDS):
            try:
                refresh()
            except (psycopg.Error, OSError) as exc:
                log.warning("could not refresh the mark of %r: %s", dbname, exc)

    refresh()
    thread = threading.Thread(target=loop, name="odoo-dr-mark", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def parse_mark(comment: str | None) -> dict[str, str] | None:
    match = _MARK.match(comment or "")
    return match.groupdict() if match else None


def abandoned(mark: dict[str, str]) -> bool:
    """Return whether the process behind a mark is gone (see the module's text)."""
    try:
        refreshed = datetime.fromisoformat(mark["refreshed"])
    except ValueError:
        return True
    if datetime.now(UTC) - refreshed > STALE_AFTER:
        return True
    return mark["host"] == HOST and not process_alive(int(mark["pid"]))


def in_use(comment: str | None) -> bool:
    """Return whether a database with this comment belongs to a live odoo-dr."""
    mark = parse_mark(comment)
    return mark is not None and not abandoned(mark)


# Whether the connected role may drop a database: its owner, a member of the
# owner's role, or a superuser.
_MAY_DROP = (
    "(pg_has_role(datdba, 'MEMBER')"
    " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))"
)


def _not_owner(name: str, owner: str) -> str:
    return (
        f"{name!r} was left by a killed odoo-dr of role {owner!r}, which alone may "
        "drop it; its next restore or drill does"
    )


def clean_stale(connection: psycopg.Connection) -> list[str]:
    """Drop the temporary and drill databases that odoo-dr processes left behind.

    Databases in an interrupted swap are left to their swap journal, which a restore
    into the same filestore root finishes. Only the owner of a database (or a
    superuser) may drop it, so a restore role leaves those of other roles to them.
    Returns a line per database, for the log.
    """
    actions = _drop_unmarked(connection)
    rows = connection.execute(
        "SELECT datname, shobj_description(oid, 'pg_database'), "
        + _MAY_DROP
        + ", pg_get_userbyid(datdba) FROM pg_database"
        " WHERE shobj_description(oid, 'pg_database') LIKE 'odoo-dr %'"
    ).fetchall()
    for name, comment, may_drop, owner in rows:
        mark = parse_mark(comment)
        if mark is None or not abandoned(mark):
            continue
        if not may_drop:
            actions.append(_not_owner(name, owner))
            continue
        drill_swap = (mark["target"] or "").startswith(DRILL_PREFIX)
        if mark["kind"] in {"swapping", "replaced"} and not drill_swap:
            actions.append(
                f"{name!r} belongs to an interrupted restore into "
                f"{mark['target']!r}; a restore into the same filestore root "
                "finishes it"
            )
            continue
        actions.append(_drop_stale(connection, name, f"dropped {name!r}"))
    return actions


def _drop_stale(connection: psycopg.Connection, name: str, done: str) -> str:
    """Drop the stale database `name` and return `done`.

    When another session changes it at the same moment (another run cleaning up
    too), leave it and return a line that gives the reason, so the restore that called
    the clean-up does not fail for it.
    """
    try:
        drop(connection, name)
    except psycopg.errors.DatabaseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"left {name!r} for now, another session changed it: {first}"
    return done


def _drop_unmarked(connection: psycopg.Connection) -> list[str]:
    """Drop temporary databases whose creator died before it could mark them."""
    rows = connection.execute(
        "SELECT datname, "
        + _MAY_DROP
        + ", pg_get_userbyid(datdba) FROM pg_database WHERE datistemplate"
        " AND datname LIKE 'odoo-dr-restore-%'"
        " AND shobj_description(oid, 'pg_database') IS NULL"
    ).fetchall()
    actions = []
    for name, may_drop, owner in rows:
        if not _TEMPORARY_NAME.match(name):
            continue
        if not may_drop:
            actions.append(_not_owner(name, owner))
            continue
        key = creation_lock_key(name)
        locked = connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (key,)
        ).fetchone()[0]
        if not locked:
            continue  # its creator is still between CREATE DATABASE and the mark
        try:
            comment = connection.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                " WHERE datname = %s",
                (name,),
            ).fetchone()
            if comment is not None and comment[0] is None:
                actions.append(
                    _drop_stale(
                        connection, name, f"dropped {name!r}, created but never marked"
                    )
                )
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return actions
