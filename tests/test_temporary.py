"""Leftovers of killed runs: marked databases and interrupted swaps."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from conftest import admin_connection, database_exists, query
from odoo_dr.engine import swap
from odoo_dr.pg import temporary
from odoo_dr.pg.connection import PgSettings
from odoo_dr.processes import HOST

DEAD_PID = 999_999_999


def mark(kind: str, pid: int = DEAD_PID, host: str = HOST, age: int = 0,
         target: str | None = None) -> str:  # fmt: skip
    refreshed = (datetime.now(UTC) - timedelta(seconds=age)).isoformat(
        timespec="seconds"
    )
    text = f"odoo-dr {kind} database of pid {pid} on host {host} refreshed {refreshed}"
    return f"{text} for {target}" if target else text


def create_marked(name: str, comment: str | None, template: bool = False) -> None:
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
    create_marked(name, mark("temporary"), template=True)
    clean()
    assert not database_exists(name)


def test_database_changed_meanwhile_left(database_names, unique):
    # Two runs cleaning up at once: the one that waits for the other's change
    # leaves the database to it instead of failing the restore that called it.
    name = f"odoo-dr-restore-{unique}"
    database_names.append(name)
    create_marked(name, mark("temporary"), template=True)
    with psycopg.connect(dbname="postgres") as other:
        other.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        with admin_connection() as connection:
            connection.execute("SET lock_timeout = '300ms'")
            actions = temporary.clean_stale(connection)
        other.rollback()
    assert any(
        action.startswith(f"left {name!r} for now") and "lock timeout" in action
        for action in actions
    ), actions
    assert database_exists(name)
    clean()
    assert not database_exists(name)


def test_live_marks_kept(database_names, unique):
    live = f"odoo-dr-restore-{unique}a"
    foreign = f"odoo-dr-restore-{unique}b"
    database_names.extend([live, foreign])
    create_marked(live, mark("temporary", pid=os.getpid()))
    create_marked(foreign, mark("temporary", host="other-pod"))
    clean()
    assert database_exists(live)
    assert database_exists(foreign)


def test_unrefreshed_mark_abandoned(database_names, unique):
    """Other hosts and containers (where odoo-dr is pid 1) rely on the refresh time."""
    pod = f"odoo-dr-restore-{unique}a"
    pid_one = f"odoo-dr-restore-{unique}b"
    database_names.extend([pod, pid_one])
    create_marked(pod, mark("temporary", host="other-pod", age=3600))
    create_marked(pid_one, mark("temporary", pid=1, age=3600))
    clean()
    assert not database_exists(pod)
    assert not database_exists(pid_one)


def test_swapping_left_to_journal(database_names, unique):
    name = f"odoo-dr-restore-{unique}"
    database_names.append(name)
    create_marked(name, mark("swapping", target="production"), template=True)
    notes = clean()
    assert database_exists(name)
    assert any("interrupted restore into 'production'" in note for note in notes)


def write_journal(root, target: str, temporary_name: str, aside: str, **flags) -> None:
    journal = swap.SwapJournal(
        target=target,
        temporary=temporary_name,
        aside=aside,
        filestore_root=str(root),
        replace_database=flags.get("replace_database", True),
        replace_folder=flags.get("replace_folder", True),
        pid=DEAD_PID,
        host=HOST,
    )
    journal.path.write_text(json.dumps(journal.__dict__))


def make_swap(tmp_path, database_names, unique):
    root = tmp_path / "filestore"
    target = f"production_{unique}"
    temporary_name = f"odoo-dr-restore-{unique}"
    aside = f"odoo-dr-replaced-{unique}"
    database_names.extend([target, temporary_name, aside])
    (root / target).mkdir(parents=True)
    (root / target / "old-file").write_text("old")
    (root / temporary_name).mkdir()
    (root / temporary_name / "new-file").write_text("new")
    create_marked(temporary_name, mark("swapping", target=target), template=True)
    query(temporary_name, "CREATE TABLE restored (id int)")
    write_journal(root, target, temporary_name, aside)
    return root, target, temporary_name, aside


def test_swap_finished_before_any_rename(tmp_path, database_names, unique):
    root, target, temporary_name, aside = make_swap(tmp_path, database_names, unique)
    create_marked(target, None)
    query(target, "CREATE TABLE old_data (id int)")
    done = swap.finish_interrupted(PgSettings.from_options(), root)
    assert done == [f"finished the interrupted restore into {target!r}"]
    assert query(target, "SELECT to_regclass('restored') IS NOT NULL") == [(True,)]
    assert not database_exists(temporary_name)
    assert not database_exists(aside)
    assert (root / target / "new-file").exists()
    assert not (root / target / "old-file").exists()
    assert sorted(path.name for path in root.iterdir()) == [target]
    assert query("postgres", "SELECT datistemplate, datallowconn FROM pg_database"
                 " WHERE datname = %s", (target,)) == [(False, True)]  # fmt: skip
    assert comment_of(target) == [(None,)]


def test_swap_finished_after_target_moved_aside(tmp_path, database_names, unique):
    """Killed after the old target was moved aside, before the new one took its name."""
    root, target, temporary_name, aside = make_swap(tmp_path, database_names, unique)
    (root / target).rename(root / f"{temporary_name}-replaced")
    (root / temporary_name).rename(root / target)
    create_marked(aside, mark("replaced", target=target))
    swap.finish_interrupted(PgSettings.from_options(), root)
    assert query(target, "SELECT to_regclass('restored') IS NOT NULL") == [(True,)]
    assert not database_exists(aside)
    assert sorted(path.name for path in root.iterdir()) == [target]


def test_live_swap_left_alone(tmp_path, database_names, unique):
    root, target, _temporary_name, _aside = make_swap(tmp_path, database_names, unique)
    journal = json.loads(next(root.glob(".odoo-dr-swap-*")).read_text())
    journal["pid"] = os.getpid()
    next(root.glob(".odoo-dr-swap-*")).write_text(json.dumps(journal))
    assert swap.finish_interrupted(PgSettings.from_options(), root) == []
    assert (root / target / "old-file").exists()


def test_unmarked_temporary_dropped(database_names):
    """A restore killed between CREATE DATABASE and its mark leaves this behind."""
    name = temporary.new_temporary_name()
    database_names.append(name)
    create_marked(name, None, template=True)
    clean()
    assert not database_exists(name)


def test_unmarked_while_creating_kept(database_names):
    name = temporary.new_temporary_name()
    database_names.append(name)
    create_marked(name, None, template=True)
    with admin_connection() as creator:
        creator.execute(
            "SELECT pg_advisory_lock(%s)", (temporary.creation_lock_key(name),)
        )
        clean()
        assert database_exists(name)
    clean()
    assert not database_exists(name)


def test_unmarked_other_names_kept(database_names, unique):
    not_template = temporary.new_temporary_name()
    other = f"odoo-dr-restore-{unique}"
    database_names.extend([not_template, other])
    create_marked(not_template, None)
    create_marked(other, None, template=True)
    clean()
    assert database_exists(not_template)
    assert database_exists(other)
