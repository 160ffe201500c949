"""`odoo-dr roles`: the printed SQL run on the real server, then used for real.

The backup runs as the backup role and the drill as the restore role, with the
roles created by psql from the script exactly as printed. Both roles are then shown
unable to change the production database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from conftest import admin_connection, query
from odoo_dr.pg import roles as pg_roles
from odoo_dr.pg import temporary

PSQL = shutil.which("psql")


def quoted(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def connect_as(role: str, dbname: str) -> psycopg.Connection:
    return psycopg.connect(dbname=dbname, user=role, autocommit=True)


def rejected(role: str, dbname: str, statement: str) -> str:
    """Run `statement` as `role` and return the error, failing if it succeeds."""
    with connect_as(role, dbname) as connection:
        with pytest.raises(psycopg.Error) as caught:
            connection.execute(statement)
    return str(caught.value)


@pytest.fixture
def role_names(unique: str) -> Iterator[dict[str, str]]:
    """Odd role names (spaces, capitals, a quote); the roles are dropped afterwards."""
    names = {
        "backup": f'odoo-dr Backup "{unique}"',
        "restore": f"odoo-dr Restore {unique}",
        "owner": f"Odoo Owner {unique}",
    }
    yield names
    with admin_connection() as connection:
        for name in names.values():
            exists = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)
            ).fetchone()
            if exists:
                # Databases and their privileges are shared objects, which
                # REASSIGN OWNED and DROP OWNED cover from any database.
                connection.execute(f"REASSIGN OWNED BY {quoted(name)} TO CURRENT_USER")
                connection.execute(f"DROP OWNED BY {quoted(name)}")
                connection.execute(f"DROP ROLE {quoted(name)}")


@pytest.mark.skipif(PSQL is None, reason="psql is not installed")
def test_roles_back_up_and_drill(
    cli,
    repository,
    odoo_database,
    filestore_root,
    database_names,
    role_names,
    unique,
    tmp_path,
):
    production = f"Odoo Prod {unique}"
    odoo_database(production)
    owner = role_names["owner"]
    with admin_connection() as connection:
        connection.execute(f"CREATE ROLE {quoted(owner)} LOGIN CREATEDB")
        connection.execute(
            f"ALTER DATABASE {quoted(production)} OWNER TO {quoted(owner)}"
        )

    printed = cli("roles", "--backup-role", role_names["backup"], "--restore-role",
                  role_names["restore"], "--database", production)  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    script = tmp_path / "roles.sql"
    script.write_text(printed.stdout)
    statements = [
        line for line in printed.stdout.splitlines() if not line.startswith("--")
    ]
    assert not [line for line in statements if "PASSWORD" in line.upper()]
    for _ in range(2):  # the script can be run again
        applied = subprocess.run(
            [PSQL, "-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", str(script)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr

    backup_role = role_names["backup"]
    restore_role = role_names["restore"]
    as_backup = {"PGUSER": backup_role}
    as_restore = {"PGUSER": restore_role}

    backup = cli("backup", production, "--repo", repository.location, "--json",
                 "--filestore-root", str(filestore_root), env=as_backup)  # fmt: skip
    with admin_connection() as connection:
        major = connection.info.server_version // 10000
    if major >= 17:
        assert backup.returncode == 0, backup.stderr
    else:
        assert backup.returncode == 1, backup.stderr
        manifest = json.loads(backup.stdout)
        assert len(manifest["warnings"]) == 1, manifest["warnings"]
        assert "garbage collector" in manifest["warnings"][0]
    snapshot_id = json.loads(backup.stdout)["id"]

    drill = cli("drill", snapshot_id, "--repo", repository.location, "--json",
                env=as_restore)  # fmt: skip
    assert drill.returncode == 0, drill.stdout + drill.stderr
    record = json.loads(drill.stdout)
    assert record["passed"]
    assert {check["name"] for check in record["checks"] if not check["passed"]} == set()

    verify = cli("verify", "--read-data", "--repo", repository.location)
    assert verify.returncode == 0, verify.stdout

    # The restore role cannot open a session in production, nor drop, rename,
    # alter, comment on or copy it from the maintenance database.
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect_as(restore_role, production)
    name = quoted(production)
    for statement in (
        f"DROP DATABASE {name}",
        f"DROP DATABASE {name} WITH (FORCE)",
        f"ALTER DATABASE {name} RENAME TO {quoted(production + ' old')}",
        f"ALTER DATABASE {name} ALLOW_CONNECTIONS false",
        f"ALTER DATABASE {name} OWNER TO {quoted(restore_role)}",
        f"COMMENT ON DATABASE {name} IS 'odoo-dr drill database of pid 1'",
        f"CREATE DATABASE {quoted('copy ' + unique)} TEMPLATE {name}",
        f"GRANT CONNECT ON DATABASE {name} TO {quoted(restore_role)}",
    ):
        error = rejected(restore_role, "postgres", statement)
        assert "must be owner" in error or "permission denied" in error, statement

    # Nor can it end the sessions of the production owner (Odoo's workers).
    with connect_as(owner, production) as odoo_session:
        pid = odoo_session.info.backend_pid
        error = rejected(
            restore_role, "postgres", f"SELECT pg_terminate_backend({pid})"
        )
        assert "permission denied" in error or "must be a member" in error
        assert odoo_session.execute("SELECT 1").fetchone() == (1,)

    # The backup role reads production and cannot write anything in it.
    with connect_as(backup_role, production) as connection:
        count = connection.execute("SELECT count(*) FROM res_partner").fetchone()[0]
    assert count > 0
    for statement in (
        "INSERT INTO res_partner (name) VALUES ('intruder')",
        "UPDATE res_partner SET name = 'intruder'",
        "DELETE FROM res_partner",
        "TRUNCATE res_partner",
        "CREATE TABLE public.intruder (id int)",
        "CREATE TEMPORARY TABLE intruder (id int)",
        "SELECT setval('res_partner_id_seq', 1)",
        "BEGIN; LOCK TABLE res_partner IN ACCESS EXCLUSIVE MODE; COMMIT",
        "BEGIN; LOCK TABLE ir_attachment IN SHARE UPDATE EXCLUSIVE MODE; COMMIT",
        f"COMMENT ON DATABASE {name} IS 'x'",
        f"CREATE DATABASE {quoted('copy ' + unique)}",
    ):
        error = rejected(backup_role, production, statement)
        assert "permission denied" in error or "must be owner" in error, statement
    for statement in (f"DROP DATABASE {name}", "CREATE SCHEMA intruder"):
        error = rejected(backup_role, "postgres", statement)
        assert "permission denied" in error or "must be owner" in error, statement

    assert query(production, "SELECT count(*) FROM res_partner")[0][0] == count
    rows = query("postgres", "SELECT datname FROM pg_database WHERE datname = %s",
                 (production,))  # fmt: skip
    assert rows == [(production,)]


def test_roles_rejects_same_names(cli):
    result = cli("roles", "--backup-role", "same", "--restore-role", "same")
    assert result.returncode == 2
    assert "different names" in result.stderr


def test_roles_rejects_superuser_name(cli):
    result = cli("roles", "--backup-role", os.environ.get("PGUSER", "postgres"),
                 "--database", "template1")  # fmt: skip
    assert result.returncode == 2
    assert "superuser" in result.stderr


def test_roles_script_before_14():
    """Servers without pg_read_all_data get grants per schema and default ones."""
    facts = pg_roles.ServerFacts(
        "13.16",
        13,
        (pg_roles.ProductionDatabase("Acme Prod", "odoo", ("public", "Sales")),),
    )
    script = pg_roles.roles_script(facts, "odoo_dr_backup", "odoo_dr_restore")
    assert "pg_read_all_data TO" not in script
    assert '\\connect "Acme Prod"' in script
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "Sales" TO "odoo_dr_backup";' in script
    assert (
        'ALTER DEFAULT PRIVILEGES FOR ROLE "odoo" IN SCHEMA "public" GRANT SELECT ON '
        'TABLES TO "odoo_dr_backup";'
    ) in script
    assert "'REVOKE CREATE ON SCHEMA public FROM PUBLIC'" in script


def test_roles_script_from_17():
    """PostgreSQL 17's MAINTAIN lets the backup role take the garbage-collector lock."""
    facts = pg_roles.ServerFacts(
        "17.2", 17, (pg_roles.ProductionDatabase("prod", "odoo"),)
    )
    script = pg_roles.roles_script(facts, "backup", "restore")
    assert "GRANT MAINTAIN ON TABLE" in script
    assert 'GRANT pg_read_all_data TO "backup";' in script


def test_restore_role_leaves_others_leftovers(role_names, database_names, unique):
    """A drill database that a killed run of another role left: only its owner may
    drop it, so the restore role's cleanup names it and goes on."""
    restore_role = role_names["restore"]
    leftover = f"odoo-dr-drill-{unique}-left"
    database_names.append(leftover)
    with admin_connection() as connection:
        connection.execute(f"CREATE ROLE {quoted(restore_role)} LOGIN CREATEDB")
        connection.execute(f"CREATE DATABASE {quoted(leftover)}")
    with connect_as(restore_role, "postgres") as connection:
        # Marked only now, so that the cleanup of other odoo-dr runs on this
        # server (as a superuser) has no time to drop it first.
        with admin_connection() as admin:
            admin.execute(
                f"COMMENT ON DATABASE {quoted(leftover)} IS 'odoo-dr drill database "
                "of pid 1 on host elsewhere refreshed 2000-01-01T00:00:00+00:00'"
            )
        actions = temporary.clean_stale(connection)
    assert any(
        action.startswith(f"{leftover!r} was left by a killed odoo-dr of role")
        for action in actions
    ), actions
    rows = query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s",
                 (leftover,))  # fmt: skip
    assert rows == [(1,)]


@pytest.mark.skipif(PSQL is None, reason="psql is not installed")
def test_roles_script_before_14_runs(role_names, database_names, unique, tmp_path):
    """The script for older servers is valid psql, and its grants work here too."""
    production = f"Old Prod {unique}"
    database_names.append(production)
    with admin_connection() as connection:
        connection.execute(f"CREATE DATABASE {quoted(production)}")
    query(production, 'CREATE SCHEMA "Sales"; CREATE TABLE "Sales".orders (id serial)')
    query(production, "GRANT CREATE ON SCHEMA public TO PUBLIC")
    facts = pg_roles.ServerFacts(
        "13.16",
        13,
        (pg_roles.ProductionDatabase(production, "postgres", ("Sales", "public")),),
    )
    script = tmp_path / "roles.sql"
    script.write_text(
        pg_roles.roles_script(facts, role_names["backup"], role_names["restore"])
    )
    for _ in range(2):
        applied = subprocess.run(
            [PSQL, "-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", str(script)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr

    backup_role = role_names["backup"]
    with connect_as(backup_role, production) as connection:
        assert connection.execute('SELECT count(*) FROM "Sales".orders').fetchone() == (
            0,
        )
    query(production, 'CREATE TABLE "Sales".later (id int)')
    with connect_as(backup_role, production) as connection:
        assert connection.execute('SELECT count(*) FROM "Sales".later').fetchone() == (
            0,
        )
    for statement in ("CREATE TABLE public.intruder (id int)",
                      'INSERT INTO "Sales".orders DEFAULT VALUES'):  # fmt: skip
        error = rejected(backup_role, production, statement)
        assert "permission denied" in error, statement
