"""`odoo-dr backup`: take a snapshot of one Odoo database and its filestore."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from odoo_dr.cli import fleet as fleet_options
from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, print_json, size
from odoo_dr.engine import fleet
from odoo_dr.engine.backup import (
    BackupOptions,
    parse_labels,
    run_backup,
)
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.pg.connection import PgSettings


def backup(
    database: Annotated[
        str | None,
        typer.Argument(
            metavar="DATABASE",
            help="Name of the Odoo database; leave out with --all.",
            show_default=False,
        ),
    ] = None,
    all_tenants: fleet_options.AllOption = False,
    exclude: fleet_options.ExcludeOption = None,
    inventory: fleet_options.InventoryOption = None,
    environment: fleet_options.EnvironmentOption = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="Name to file the snapshots under, when databases of several servers "
            "share a name. Default: the database name.",
            show_default=False,
        ),
    ] = None,
    filestore_root: opt.FilestoreRootOption = None,
    odoo_config: opt.OdooConfigOption = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    jobs: fleet_options.FleetJobsOption = opt.default_jobs(),
    tenant_jobs: fleet_options.TenantJobsOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Fail when referenced files are missing or damaged."
        ),
    ] = False,
    read_all: Annotated[
        bool,
        typer.Option(
            "--read-all",
            help="Read and check every file, also those unchanged since the last "
            "snapshot.",
        ),
    ] = False,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="Label to record in the snapshot as KEY=VALUE, such as "
            "environment=production or tier=gold; repeatable. Retention policies "
            "choose by labels.",
            show_default=False,
        ),
    ] = None,
    residency: Annotated[
        str | None,
        typer.Option(
            "--residency",
            help="Where the snapshot may be stored: 'eu', a region name, or several "
            "separated by commas. odoo-dr copy rejects other regions.",
            show_default=False,
        ),
    ] = None,
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Back up DATABASE and its filestore; print the new snapshot id.

    With --all, back up every tenant, --jobs at a time, and print a summary. The
    exit code is the highest of all tenants' codes. A tenant locked by another run
    is skipped and counts as 0.
    """
    opt.apply_verbosity(verbose, quiet)
    parsed_labels = parse_labels(labels or [])
    config = opt.load_odoo_config(odoo_config)
    root, root_source = opt.filestore_root(filestore_root, config)
    settings = opt.pg_settings(dsn, config)
    if all_tenants:
        if database is not None or tenant is not None:
            raise RejectedError(
                "--all backs up every tenant under its own name, so it takes no "
                "DATABASE and no --tenant",
                hint="leave them out, or choose tenants with --exclude and "
                "--environment",
            )
        base = BackupOptions(
            database="",
            filestore_root=root,
            filestore_root_source=root_source,
            jobs=tenant_jobs or fleet_options.DEFAULT_TENANT_JOBS,
            strict=strict,
            read_all=read_all,
            temp_dir=temp_dir,
            labels=parsed_labels,
            residency=residency,
        )
        _backup_all(
            settings,
            base,
            fleet_options.select_tenants(
                "backup",
                repo,
                inventory,
                environment,
                exclude,
                discover=lambda: fleet.server_databases(settings),
            ),
            jobs,
            as_json,
        )
        return
    fleet_options.reject_fleet_options(exclude, inventory, environment, tenant_jobs)
    if database is None:
        raise RejectedError(
            "name the database to back up, or pass --all",
            hint="odoo-dr backup DATABASE, or odoo-dr backup --all",
        )
    repository = opt.open_repository(repo)
    manifest = run_backup(
        repository,
        settings,
        BackupOptions(
            database=database,
            tenant=tenant,
            filestore_root=root,
            filestore_root_source=root_source,
            jobs=jobs,
            strict=strict,
            read_all=read_all,
            temp_dir=temp_dir,
            labels=parsed_labels,
            residency=residency,
        ),
    )

    if as_json:
        print_json(manifest.model_dump(mode="json", exclude={"dump"}))
        for warning in manifest.warnings:
            errors.print(f"warning: {warning}")
    else:
        stats = manifest.stats
        files = manifest.filestore
        errors.print(
            f"snapshot {manifest.id} of {manifest.tenant!r}: "
            f"dump {size(stats.dump_bytes)}, {files.referenced_files:,} files "
            f"({size(files.referenced_bytes)}) + {files.extra_files:,} unreferenced, "
            f"{files.attachments_in_database:,} attachment(s) stored in the database "
            "itself; "
            f"added {size(stats.new_bytes)} in {stats.new_objects:,} objects "
            f"in {stats.seconds:.1f}s"
        )
        for warning in manifest.warnings:
            errors.print(f"warning: {warning}")
        console.out(manifest.id)
    if manifest.warnings:
        raise typer.Exit(ExitCode.WARNINGS)


def _backup_all(
    settings: PgSettings,
    base: BackupOptions,
    selection: fleet_options.FleetSelection,
    jobs: int,
    as_json: bool,
) -> None:
    def back_up(tenant: fleet.FleetTenant) -> fleet.WorkResult:
        labels = dict(base.labels)
        if tenant.environment is not None:
            labels.setdefault("environment", tenant.environment)
        if tenant.tier is not None:
            labels.setdefault("tier", tenant.tier)
        manifest = run_backup(
            selection.repository(tenant),
            settings,
            replace(base, database=tenant.name, labels=labels),
        )
        return fleet.WorkResult(snapshot_id=manifest.id, warnings=manifest.warnings)

    report = fleet.run_fleet(
        selection.tenants, jobs, back_up, failure_code=ExitCode.BACKUP_FAILED
    )
    fleet_options.print_summary(report, "backup", as_json)
    fleet_options.finish(report)
