"""SQL for a backup role that only reads and a restore role that only creates.

The backup role reads every table and sequence (`pg_read_all_data` from PostgreSQL
14 on, per-schema grants before) and may write nothing. The restore role may create
databases, and owns only those it creates: drills and copies. PostgreSQL gives
every role CONNECT and TEMPORARY on every database through PUBLIC, and has no way
to deny a privilege to one role. So the script revokes both from PUBLIC on the
production databases, and grants CONNECT back to their owners, the backup role and
the roles that had sessions there. Without CONNECT the restore role cannot open
a session in a production database, and without ownership or membership in the
owner's role it cannot drop, rename or alter one.

The script is meant for `psql` run by a superuser (it uses `\\connect` and
`\\gexec`). It sets no password: a password belongs in `\\password`, `~/.pgpass`
or `PGPASSWORD`, not in a file that is kept and passed around.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from odoo_dr.errors import RejectedError
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.names import MAX_NAME_BYTES
from odoo_dr.pg.server import server_version
from odoo_dr.pg.temporary import DRILL_PREFIX, REPLACED_PREFIX, RESTORE_PREFIX

DEFAULT_BACKUP_ROLE = "odoo_dr_backup"
DEFAULT_RESTORE_ROLE = "odoo_dr_restore"
# Predefined roles whose members could read or write production data, or end the
# sessions of Odoo's workers.
FORBIDDEN_TO_RESTORE = ("pg_read_all_data", "pg_write_all_data", "pg_signal_backend")


@dataclass(frozen=True)
class ProductionDatabase:
    name: str
    owner: str
    # Schemas that hold tables or sequences, for servers older than PostgreSQL 14.
    schemas: tuple[str, ...] = ()
    # Roles other than the owner that had sessions when the script was made.
    connected_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerFacts:
    version: str
    major: int
    databases: tuple[ProductionDatabase, ...]


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    # standard_conforming_strings is on by default since PostgreSQL 9.1, so only
    # quotes need doubling.
    return "'" + text.replace("'", "''") + "'"


def validate_role_name(name: str, option: str) -> str:
    problem = None
    if not name:
        problem = "it is empty"
    elif len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problem = f"it is longer than the {MAX_NAME_BYTES} bytes PostgreSQL keeps"
    elif any(ord(char) < 32 for char in name):
        problem = "it contains a control character"
    elif name.startswith("pg_"):
        problem = "names starting with pg_ are reserved by PostgreSQL"
    if problem:
        raise RejectedError(
            f"invalid {option} {name!r}: {problem}",
            hint=f"choose another name, such as the default {DEFAULT_BACKUP_ROLE!r} "
            f"or {DEFAULT_RESTORE_ROLE!r}",
        )
    return name


def _is_odoo_dr_database(name: str) -> bool:
    return name.startswith((RESTORE_PREFIX, REPLACED_PREFIX, DRILL_PREFIX))


def read_server(
    settings: PgSettings, databases: list[str], roles: tuple[str, str]
) -> ServerFacts:
    """Read the server version, the production databases and their owners.

    Without `databases`, every database that accepts connections is production,
    except templates, `postgres` (where odoo-dr connects to create databases) and
    odoo-dr's own temporary and drill databases.
    """
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version, major = server_version(connection)
        _check_existing_roles(connection, roles)
        rows = connection.execute(
            "SELECT datname, pg_get_userbyid(datdba), datallowconn, datistemplate"
            " FROM pg_database ORDER BY datname"
        ).fetchall()
        sessions = connection.execute(
            "SELECT DISTINCT datname, usename FROM pg_stat_activity"
            " WHERE datname IS NOT NULL AND usename IS NOT NULL"
        ).fetchall()
    found = {name: (owner, allow, template) for name, owner, allow, template in rows}
    if databases:
        unknown = [name for name in databases if name not in found]
        if unknown:
            raise RejectedError(
                f"database(s) not found: {', '.join(map(repr, unknown))}",
                hint="check the names, including their case; list databases with: "
                "psql -l",
            )
        if MAINTENANCE_DATABASE in databases:
            raise RejectedError(
                f"--database {MAINTENANCE_DATABASE} is not a production database: "
                "odoo-dr connects there to create and drop databases",
                hint=f"leave {MAINTENANCE_DATABASE} out of --database",
            )
        chosen = sorted(set(databases))
    else:
        chosen = [
            name
            for name, (_owner, allow, template) in found.items()
            if allow
            and not template
            and name != MAINTENANCE_DATABASE
            and not _is_odoo_dr_database(name)
        ]
    result = []
    for name in chosen:
        owner = found[name][0]
        connected = sorted(
            {
                user
                for dbname, user in sessions
                if dbname == name and user not in {owner, *roles}
            }
        )
        schemas: tuple[str, ...] = ()
        if major < 14:
            schemas = _schemas_with_data(settings, name)
        result.append(ProductionDatabase(name, owner, schemas, tuple(connected)))
    return ServerFacts(version, major, tuple(result))


def _check_existing_roles(
    connection: psycopg.Connection, roles: tuple[str, str]
) -> None:
    """Reject role names that belong to a superuser or a database owner.

    The script would strip such a role of SUPERUSER or give it CREATEDB, which
    changes what an existing deployment relies on.
    """
    for role in roles:
        row = connection.execute(
            "SELECT r.rolsuper, EXISTS (SELECT 1 FROM pg_database d"
            " WHERE d.datdba = r.oid) FROM pg_roles r WHERE r.rolname = %s",
            (role,),
        ).fetchone()
        if row is not None and (row[0] or row[1]):
            what = "a superuser" if row[0] else "the owner of a database"
            raise RejectedError(
                f"role {role!r} already exists and is {what}",
                hint="choose role names of their own with --backup-role and "
                "--restore-role",
            )


def _schemas_with_data(settings: PgSettings, dbname: str) -> tuple[str, ...]:
    with settings.connect(dbname) as connection:
        rows = connection.execute(
            "SELECT DISTINCT n.nspname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'S')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1"
        ).fetchall()
    return tuple(name for (name,) in rows)


def _create_role(name: str, attributes: str) -> list[str]:
    ident = quote_identifier(name)
    return [
        f"SELECT format('CREATE ROLE %I', {quote_literal(name)})",
        f" WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
        f"{quote_literal(name)})",
        "\\gexec",
        f"ALTER ROLE {ident} {attributes};",
    ]


def _backup_lines(facts: ServerFacts, role: str) -> list[str]:
    ident = quote_identifier(role)
    lines = [
        "-- Backup role: reads every table and sequence, writes nothing.",
        *_create_role(
            role,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            "INHERIT",
        ),
    ]
    if facts.major >= 14:
        lines.append(f"GRANT pg_read_all_data TO {ident};")
    for database in facts.databases:
        lines.append(
            f"GRANT CONNECT ON DATABASE {quote_identifier(database.name)} TO {ident};"
        )
    if facts.major < 14:
        lines += [
            f"-- PostgreSQL {facts.version} has no pg_read_all_data (it came with",
            "-- PostgreSQL 14): SELECT is granted per schema in each database, and",
            "-- default privileges cover the tables the owner creates later (a",
            "-- module installed or upgraded). Objects created by another role",
            "-- need a GRANT of their own; the backup names any it cannot read.",
        ]
        for database in facts.databases:
            lines.append(f"\\connect {quote_identifier(database.name)}")
            owner = quote_identifier(database.owner)
            for schema in database.schemas:
                name = quote_identifier(schema)
                lines += [
                    f"GRANT USAGE ON SCHEMA {name} TO {ident};",
                    f"GRANT SELECT ON ALL TABLES IN SCHEMA {name} TO {ident};",
                    f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {name} TO {ident};",
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {name}"
                    f" GRANT SELECT ON TABLES TO {ident};",
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {name}"
                    f" GRANT SELECT ON SEQUENCES TO {ident};",
                ]
        lines.append(f"\\connect {MAINTENANCE_DATABASE}")
    if facts.major < 15:
        lines += [
            f"-- PostgreSQL {facts.version} lets PUBLIC create objects in schema",
            "-- public (until PostgreSQL 15). Keep that to each database's owner, so",
            "-- neither role can write there.",
        ]
        for database in facts.databases:
            owner = quote_literal(database.owner)
            lines += [
                f"\\connect {quote_identifier(database.name)}",
                "SELECT format('GRANT CREATE ON SCHEMA public TO %I', "
                f"{owner}), 'REVOKE CREATE ON SCHEMA public FROM PUBLIC'",
                " WHERE to_regnamespace('public') IS NOT NULL",
                "\\gexec",
            ]
        lines.append(f"\\connect {MAINTENANCE_DATABASE}")
    if facts.major >= 17:
        lines += [
            "-- MAINTAIN (PostgreSQL 17) lets the backup lock ir_attachment against",
            "-- Odoo's filestore garbage collector without any write privilege.",
        ]
        for database in facts.databases:
            lines += [
                f"\\connect {quote_identifier(database.name)}",
                "SELECT format('GRANT MAINTAIN ON TABLE %s TO %I', "
                f"'ir_attachment'::regclass, {quote_literal(role)})",
                " WHERE to_regclass('ir_attachment') IS NOT NULL",
                "\\gexec",
            ]
        lines.append(f"\\connect {MAINTENANCE_DATABASE}")
    else:
        lines += [
            "-- Locking ir_attachment against Odoo's filestore garbage collector",
            f"-- needs UPDATE, DELETE or TRUNCATE on PostgreSQL {facts.version}, so",
            "-- this role's backups go without the lock and warn (exit 1); see",
            "-- docs/security.md.",
        ]
    return lines


def _restore_lines(facts: ServerFacts, role: str, backup_role: str) -> list[str]:
    ident = quote_identifier(role)
    lines = [
        "-- Restore role: creates drill and copy databases and owns only those.",
        *_create_role(
            role,
            "LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS",
        ),
        "-- PUBLIC may connect to every database by default. Take that away from",
        "-- the production databases, and give it back to their owners, the backup",
        "-- role and the roles that had sessions there when this script was made.",
        "-- Any other role that connects to them needs a GRANT CONNECT of its own.",
    ]
    for database in facts.databases:
        name = quote_identifier(database.name)
        grantees = [
            quote_identifier(item)
            for item in (database.owner, backup_role, *database.connected_roles)
        ]
        lines += [
            f"REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC;",
            f"GRANT CONNECT, TEMPORARY ON DATABASE {name} TO "
            f"{quote_identifier(database.owner)};",
            f"GRANT CONNECT ON DATABASE {name} TO {', '.join(grantees[1:])};",
            f"REVOKE ALL ON DATABASE {name} FROM {ident};",
        ]
    owners = sorted({database.owner for database in facts.databases})
    forbidden = ", ".join(
        quote_literal(item) for item in (*owners, *FORBIDDEN_TO_RESTORE)
    )
    lines += [
        "-- Stop here if the restore role could act as a production owner, or read,",
        "-- write or signal what it does not own.",
        "DO $check$",
        "DECLARE",
        "    granted text;",
        "BEGIN",
        "    SELECT string_agg(r.rolname, ', ') INTO granted FROM pg_roles r",
        f"    WHERE r.rolname IN ({forbidden})",
        f"      AND pg_has_role({quote_literal(role)}, r.oid, 'MEMBER');",
        "    IF granted IS NOT NULL THEN",
        "        RAISE EXCEPTION 'role % is a member of %; revoke that first',",
        f"            {quote_literal(role)}, granted;",
        "    END IF;",
        "END",
        "$check$;",
    ]
    return lines


def roles_script(facts: ServerFacts, backup_role: str, restore_role: str) -> str:
    """Return the psql script that creates (or updates) both roles."""
    if backup_role == restore_role:
        raise RejectedError(
            f"--backup-role and --restore-role are both {backup_role!r}",
            hint="give the two roles different names: the point is that neither "
            "can do what the other does",
        )
    if "$check$" in restore_role:
        raise RejectedError(
            f"invalid --restore-role {restore_role!r}: it contains '$check$'"
        )
    for database in facts.databases:
        # psql ends a meta-command such as \connect at a line break even inside
        # quotes, so the rest of such a name would run as a command of its own.
        if any(ord(char) < 32 or ord(char) == 127 for char in database.name):
            raise RejectedError(
                f"database {database.name!r} cannot be named in a psql script: it "
                "contains a control character",
                hint="rename it with ALTER DATABASE ... RENAME TO, or list the other "
                "databases with --database",
            )
    names = ", ".join(repr(database.name) for database in facts.databases) or "none"
    lines = [
        f"-- odoo-dr roles for PostgreSQL {facts.version}.",
        f"-- Production databases: {names}.",
        "-- Run as a superuser: psql -v ON_ERROR_STOP=1 -d postgres -f roles.sql",
        "-- Running it again updates the roles and grants; it drops nothing.",
        "-- No password is set here. Set one interactively in psql with",
        f"--   \\password {quote_identifier(backup_role)}",
        f"--   \\password {quote_identifier(restore_role)}",
        "-- and give it to odoo-dr through ~/.pgpass, PGPASSWORD or a service file,",
        "-- or use certificate or peer authentication in pg_hba.conf.",
        "\\set ON_ERROR_STOP on",
        "",
        *_backup_lines(facts, backup_role),
        "",
        *_restore_lines(facts, restore_role, backup_role),
    ]
    return "\n".join(lines) + "\n"
