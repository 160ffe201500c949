"""`odoo-dr roles`: print the SQL for a least-privilege backup and restore role."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import errors
from odoo_dr.pg import roles as pg_roles


def roles(
    backup_role: Annotated[
        str,
        typer.Option("--backup-role", help="Name of the role that runs backups."),
    ] = pg_roles.DEFAULT_BACKUP_ROLE,
    restore_role: Annotated[
        str,
        typer.Option(
            "--restore-role", help="Name of the role that runs drills and copies."
        ),
    ] = pg_roles.DEFAULT_RESTORE_ROLE,
    database: Annotated[
        list[str] | None,
        typer.Option(
            "--database",
            help="A production database (repeatable). Default: every database "
            "that accepts connections, except templates, postgres and odoo-dr's own.",
            show_default=False,
        ),
    ] = None,
    dsn: opt.DsnOption = None,
    odoo_config: opt.OdooConfigOption = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Print a psql script that creates a backup role and a restore role.

    It reads the server's version, databases and owners; it changes nothing. Run the
    script as a superuser: psql -v ON_ERROR_STOP=1 -d postgres -f roles.sql
    """
    opt.apply_verbosity(verbose, quiet)
    backup_role = pg_roles.validate_role_name(backup_role, "--backup-role")
    restore_role = pg_roles.validate_role_name(restore_role, "--restore-role")
    settings = opt.pg_settings(dsn, opt.load_odoo_config(odoo_config))
    facts = pg_roles.read_server(
        settings, list(database or []), (backup_role, restore_role)
    )
    script = pg_roles.roles_script(facts, backup_role, restore_role)
    sys.stdout.write(script)
    if not facts.databases:
        errors.print(
            "warning: no production database found; the script only creates the "
            "roles (name databases with --database)"
        )
    if facts.major < 14:
        errors.print(
            f"PostgreSQL {facts.version} has no pg_read_all_data: the script grants "
            "SELECT per schema in each database instead; run it again after adding "
            "a schema or a database"
        )
