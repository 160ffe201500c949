"""`odoo-dr drill`: restore a snapshot as a neutralized copy, check it, time it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import fleet as fleet_options
from odoo_dr.cli import options as opt
from odoo_dr.cli import pitr as pitr_options
from odoo_dr.cli.output import console, duration, errors, local_time, print_json
from odoo_dr.engine import fleet
from odoo_dr.engine.business_checks import BusinessCheck, load_checks_file
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.engine.pitr import StatusOptions, read_status
from odoo_dr.engine.pitr_drill import (
    PitrOptions,
    choose_backup,
    parse_target_time,
    run_pitr_drill,
)
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST
from odoo_dr.pg.connection import PgSettings
from odoo_dr.pg.pgbackrest import PgBackRest
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository


def resolve_target(repository: Repository, reference: str) -> SnapshotManifest:
    """Return the snapshot named by `reference`: an id, an id prefix, or a tenant."""
    return repository.resolve_snapshot(reference)


def drill(
    snapshot: Annotated[
        str | None,
        typer.Argument(
            metavar="SNAPSHOT|DATABASE",
            help="Snapshot id (or prefix), or a database name for its latest snapshot.",
            show_default=False,
        ),
    ] = None,
    all_tenants: fleet_options.AllOption = False,
    exclude: fleet_options.ExcludeOption = None,
    inventory: fleet_options.InventoryOption = None,
    environment: fleet_options.EnvironmentOption = None,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the scratch database and folder afterwards."),
    ] = False,
    allow_cron: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-cron",
            help="XML id of a scheduled action that may stay active, besides "
            "base.autovacuum_job (repeatable).",
            show_default=False,
        ),
    ] = None,
    checks_file: Annotated[
        Path | None,
        typer.Option(
            "--checks",
            metavar="FILE",
            help="YAML file with a list of business checks (name, sql, expect) to "
            "run on the restored copy, after the default ones.",
            show_default=False,
        ),
    ] = None,
    default_checks: Annotated[
        bool,
        typer.Option(
            "--default-checks/--no-default-checks",
            help="Run the default stock, sale and purchase checks and compare the "
            "stock totals with the snapshot's.",
        ),
    ] = True,
    pitr: Annotated[
        bool,
        typer.Option(
            "--pitr",
            help="Recover the cluster with pgBackRest to --target-time and drill "
            "its tenants, in place of a snapshot.",
        ),
    ] = False,
    target_time: pitr_options.TargetTimeOption = None,
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            help="With --pitr: database to drill (repeatable). Default: every Odoo "
            "database of the recovered cluster.",
            show_default=False,
        ),
    ] = None,
    stanza: pitr_options.StanzaOption = None,
    pgbackrest_config_path: pitr_options.ConfigPathOption = None,
    os_user: pitr_options.OsUserOption = None,
    recovery_user: pitr_options.RecoveryUserOption = "postgres",
    recovery_timeout: pitr_options.RecoveryTimeoutOption = 24 * 3600,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    odoo_config: opt.OdooConfigOption = None,
    jobs: fleet_options.FleetJobsOption = opt.default_jobs(),
    tenant_jobs: fleet_options.TenantJobsOption = None,
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Restore a snapshot as a neutralized scratch copy and check it.

    With --all, drill the newest snapshot of every tenant, --jobs at a time, with
    the business checks the inventory lists for each, and print a summary.

    Business checks (defaults for stock, sales and purchase, and those of --checks)
    run after the built-in ones. With --pitr, recover the cluster with pgBackRest to
    --target-time in a private temporary folder and drill each tenant there. Exit 0
    when every check passed, 5 when one did not or the data is damaged, 4 when the
    restore failed for another reason, 2 when a point-in-time target is outside the
    window or a checks file is invalid.
    """
    opt.apply_verbosity(verbose, quiet)
    allowed = (*DEFAULT_CRON_ALLOW_LIST, *(allow_cron or ()))
    checks = tuple(load_checks_file(checks_file)) if checks_file else ()
    if all_tenants:
        if pitr or keep or snapshot is not None or target_time is not None or tenant:
            raise RejectedError(
                "--all drills the newest snapshot of every tenant: it takes no "
                "SNAPSHOT, --keep, --pitr, --target-time or --tenant",
                hint="leave them out, or choose tenants with --exclude and "
                "--environment",
            )
        config = opt.load_odoo_config(odoo_config)
        options = DrillOptions(
            jobs=tenant_jobs or fleet_options.DEFAULT_TENANT_JOBS,
            temp_dir=temp_dir,
            cron_allow_list=allowed,
            checks=checks,
            default_checks=default_checks,
        )
        selection = fleet_options.select_tenants(
            "drill", repo, inventory, environment, exclude
        )
        _drill_all(opt.pg_settings(dsn, config), options, selection, jobs, as_json)
        return
    fleet_options.reject_fleet_options(exclude, inventory, environment, tenant_jobs)
    if pitr:
        if snapshot is not None:
            raise RejectedError(
                f"--pitr recovers to a time, not snapshot {snapshot!r}",
                hint="leave out the snapshot and name databases with --tenant",
            )
        if keep:
            raise RejectedError(
                "--keep does not apply to --pitr: the recovered cluster is removed "
                "after the drill",
                hint="to keep a tenant as it was at that time, use odoo-dr restore "
                "--pitr --target-time T --tenant DB --target NAME --copy",
            )
        records = pitr_drill(
            repo,
            PitrOptions(
                target_time=parse_target_time(_required_time(target_time)),
                tenants=tuple(tenant or ()),
                jobs=jobs,
                temp_dir=temp_dir,
                database_user=recovery_user,
                recovery_timeout=recovery_timeout,
                cron_allow_list=allowed,
                checks=checks,
                default_checks=default_checks,
            ),
            pitr_options.backrest_from_options(stanza, pgbackrest_config_path, os_user),
        )
        if as_json:
            print_json([record.model_dump(mode="json") for record in records])
        else:
            for record in records:
                print_record(record)
        if not all(record.passed for record in records):
            raise typer.Exit(ExitCode.VERIFICATION_FAILED)
        return
    if snapshot is None:
        raise RejectedError(
            "name the snapshot to drill, or pass --pitr --target-time",
            hint="odoo-dr drill SNAPSHOT|DATABASE; odoo-dr snapshots lists them",
        )
    if target_time is not None or tenant:
        raise RejectedError(
            "--target-time and --tenant belong to a point-in-time drill",
            hint="add --pitr, or leave them out to drill a snapshot",
        )
    config = opt.load_odoo_config(odoo_config)
    repository = opt.open_repository(repo)
    manifest = resolve_target(repository, snapshot)
    record = run_drill(
        repository,
        opt.pg_settings(dsn, config),
        manifest,
        DrillOptions(
            keep=keep,
            jobs=jobs,
            temp_dir=temp_dir,
            cron_allow_list=allowed,
            checks=checks,
            default_checks=default_checks,
        ),
    )
    if as_json:
        print_json(record)
    else:
        print_record(record)
    if not record.passed:
        raise typer.Exit(ExitCode.VERIFICATION_FAILED)
    if repository.newer_unreadable:
        # The drill proved an older snapshot: a passed drill must not hide that
        # the tenant's newest one cannot be read.
        errors.print(
            f"warning: drilled {manifest.id}, not the newer snapshot manifest(s) "
            f"{', '.join(repository.newer_unreadable)}, which cannot be read; run "
            "odoo-dr verify"
        )
        raise typer.Exit(ExitCode.WARNINGS)


def _drill_all(
    settings: PgSettings,
    base: DrillOptions,
    selection: fleet_options.FleetSelection,
    jobs: int,
    as_json: bool,
) -> None:
    # A damaged manifest may be a tenant's newest snapshot, which the drill
    # below then passes over for an older one: the run must not end with 0.
    unreadable = fleet_options.unreadable_manifests(selection)

    def drill_one(tenant: fleet.FleetTenant) -> fleet.WorkResult:
        repository = selection.repository(tenant)
        snapshots = repository.list_snapshots(tenant.name)
        if not snapshots:
            raise RejectedError(
                f"no snapshot of tenant {tenant.name!r} in repository "
                f"{repository.location}",
                hint="back it up first: odoo-dr backup --all",
            )
        manifest = snapshots[-1]
        options = base
        if tenant.inventory_tenant is not None:
            options = replace(
                base,
                checks=_merged_checks(tenant.inventory_tenant.checks, base.checks),
                default_checks=base.default_checks
                and tenant.inventory_tenant.default_checks,
            )
        record = run_drill(repository, settings, manifest, options)
        if record.passed:
            return fleet.WorkResult(snapshot_id=manifest.id, drill_id=record.id)
        failed = [check.name for check in record.checks if not check.passed]
        return fleet.WorkResult(
            snapshot_id=manifest.id,
            drill_id=record.id,
            error=record.error or "failed checks: " + (", ".join(failed) or "none ran"),
            hint=f"see the record in drills/{record.id}.json of the repository",
            exit_code=ExitCode.VERIFICATION_FAILED,
        )

    report = fleet.run_fleet(
        selection.tenants, jobs, drill_one, failure_code=ExitCode.RESTORE_FAILED
    )
    fleet_options.print_summary(report, "drill", as_json)
    fleet_options.print_unreadable(unreadable)
    fleet_options.finish(
        report, ExitCode.VERIFICATION_FAILED if unreadable else ExitCode.OK
    )


def _merged_checks(
    own: list[BusinessCheck], extra: tuple[BusinessCheck, ...]
) -> tuple[BusinessCheck, ...]:
    """Return the inventory's checks of a tenant, then those of --checks not named
    the same."""
    names = {check.name for check in own}
    return (*own, *(check for check in extra if check.name not in names))


def _required_time(value: str | None) -> str:
    if value is None:
        raise RejectedError(
            "--pitr needs --target-time",
            hint="give the time to recover to, such as 2026-12-05T10:42:00Z; "
            "odoo-dr pitr status shows the recoverable window",
        )
    return value


def pitr_drill(
    repo: str | None, options: PitrOptions, backrest: PgBackRest
) -> list[DrillRecord]:
    """Check the target against the stanza, then recover and drill each tenant."""
    repository = opt.open_repository(repo)
    status = read_status(backrest, None, StatusOptions(temp_dir=options.temp_dir))
    choose_backup(status, options.target_time)
    return run_pitr_drill(repository, backrest, status, options)


def print_record(record: DrillRecord) -> None:
    verdict = "PASSED" if record.passed else "FAILED"
    if record.kind == "pitr":
        recovered = (
            local_time(record.recovered_to) if record.recovered_to else "nothing"
        )
        console.out(
            f"point-in-time drill {record.id} of {record.tenant!r} from base backup "
            f"{record.base_backup}: {verdict}"
        )
        if record.target_time is not None:
            console.out(
                f"  target {local_time(record.target_time)}, last transaction "
                f"recovered {recovered}"
            )
    else:
        console.out(
            f"drill {record.id} of snapshot {record.snapshot_id} "
            f"({record.tenant!r}): {verdict}"
        )
    table = Table(box=None, pad_edge=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("summary")
    for check in record.checks:
        table.add_row(
            check.name,
            "ok" if check.passed else "FAILED",
            duration(check.seconds),
            check.summary,
        )
    if record.checks:
        console.print(table)
    if record.error:
        console.out(f"  error: {record.error}")
    for warning in record.warnings:
        console.out(f"  warning: {warning}")
    for check in record.checks:
        for problem in check.problems:
            console.out(f"  {check.name}: {problem}")
    steps = ", ".join(
        f"{name} {duration(seconds)}" for name, seconds in record.steps.items()
    )
    console.out(f"RTO {duration(record.rto_seconds)} ({steps})")
    if record.kind == "pitr":
        console.out(
            f"RPO {duration(record.rpo_seconds)} (target time minus the last "
            "transaction recovered)"
        )
    else:
        console.out(
            f"RPO {duration(record.rpo_seconds)} (age of the snapshot when the drill "
            "began)"
        )
    if record.kept:
        console.out(
            f"kept scratch database {record.scratch_database!r} and filestore "
            f"{record.scratch_filestore}"
        )
