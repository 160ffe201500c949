"""Leftover temporary databases of killed runs, found by their marks and dealt with."""

from __future__ import annotations

from psycopg import sql

from conftest import admin_connection, database_exists, query
from odoo_dr.pg import temporary
from odoo_dr.processes import HOST

DEAD_PID = 999_999_999


def create_marked(name: str, comment: str, template: bool = False) -> None:
    with admin_connection() as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} IS_TEMPLATE {}").format(
                sql.Identifier(name), sql.Literal(template)
            )
        )
        connection.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(comment)
            )
        )


def clean() -> list[str]:
    # Restores in other test workers clean up the same leftovers, so the tests check
    # the state that results, not which run did the work.
    with admin_connection() as connection:
        return temporary.clean_stale(connection)


def comment_of(name: str) -> list[tuple]:
    return query(
        "postgres",
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
        " WHERE datname = %s",
        (name,),
    )


def test_dead_restore_database_dropped(database_names, unique):
    name = f"odoo-dr-restore-{unique}"
    database_names.append(name)
    create_marked(
        name, f"odoo-dr temporary database of pid {DEAD_PID} on host {HOST}", True
    )
    clean()
    assert not database_exists(name)


def test_live_or_foreign_marks_kept(database_names, unique):
    import os

    live = f"odoo-dr-restore-{unique}a"
    foreign = f"odoo-dr-restore-{unique}b"
    database_names.extend([live, foreign])
    create_marked(
        live, f"odoo-dr temporary database of pid {os.getpid()} on host {HOST}"
    )
    create_marked(
        foreign, f"odoo-dr temporary database of pid {DEAD_PID} on host other"
    )
    clean()
    assert database_exists(live)
    assert database_exists(foreign)


def test_replaced_database_put_back(database_names, unique):
    """Killed after the target was renamed aside, before the new one took its name."""
    aside = f"odoo-dr-replaced-{unique}"
    target = f"production_{unique}"
    database_names.extend([aside, target])
    create_marked(
        aside,
        f"odoo-dr replaced database of pid {DEAD_PID} on host {HOST} for {target}",
    )
    query(aside, "CREATE TABLE orders (id int)")
    clean()
    assert not database_exists(aside)
    assert query(target, "SELECT to_regclass('orders') IS NOT NULL") == [(True,)]
    assert comment_of(target) == [(None,)]


def test_replaced_database_dropped_when_target_back(database_names, unique):
    aside = f"odoo-dr-replaced-{unique}"
    target = f"production_{unique}"
    database_names.extend([aside, target])
    create_marked(target, "restored database")
    create_marked(
        aside,
        f"odoo-dr replaced database of pid {DEAD_PID} on host {HOST} for {target}",
    )
    clean()
    assert not database_exists(aside)
    assert database_exists(target)


def test_unfinished_swap_finished(database_names, unique):
    """Killed after the rename into place, before the mark was cleared."""
    target = f"restored_{unique}"
    database_names.append(target)
    create_marked(
        target, f"odoo-dr temporary database of pid {DEAD_PID} on host {HOST}", True
    )
    clean()
    assert comment_of(target) == [(None,)]
    assert query(
        "postgres",
        "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
        (target,),
    ) == [(False, True)]
