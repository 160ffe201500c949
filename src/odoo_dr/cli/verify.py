"""`odoo-dr verify`: check that every snapshot can be restored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import fleet as fleet_options
from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, print_json, size
from odoo_dr.engine import fleet
from odoo_dr.engine.schedule import write_last_done
from odoo_dr.engine.subset import parse_subset
from odoo_dr.engine.verify import VerifyReport, verify
from odoo_dr.errors import ExitCode, OdooDrError, RejectedError

# Problems listed per snapshot in the human output; --json lists all.
LISTED_PROBLEMS = 20


def verify_command(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only snapshots of this tenant.")
    ] = None,
    all_tenants: fleet_options.AllOption = False,
    exclude: fleet_options.ExcludeOption = None,
    inventory: fleet_options.InventoryOption = None,
    environment: fleet_options.EnvironmentOption = None,
    read_data: Annotated[
        bool,
        typer.Option(
            "--read-data",
            help="Also read every pack and check each object in it against its "
            "SHA-256.",
        ),
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset",
            metavar="PERCENT|N/M",
            help="Read and check only some packs: a PERCENT window that moves every "
            "day (5% reads every pack within 20 days), or slice N of M.",
            show_default=False,
        ),
    ] = None,
    subset_seed: Annotated[
        str | None,
        typer.Option(
            "--subset-seed",
            metavar="DAY|DATE",
            help="Day of the PERCENT window, as days since 1970-01-01 or a date "
            "(YYYY-MM-DD). Default: today in UTC.",
            show_default=False,
        ),
    ] = None,
    repo: opt.RepoOption = None,
    jobs: fleet_options.FleetJobsOption = opt.default_jobs(),
    tenant_jobs: fleet_options.TenantJobsOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Check that every object each snapshot needs is present (and intact).

    Exit 0 when every snapshot can be restored and nothing read is damaged, 5 when
    a snapshot cannot be restored or damage was found.

    With --all, check the snapshots of every tenant, --jobs tenants at a time, and
    print one row per tenant.
    """
    opt.apply_verbosity(verbose, quiet)
    if all_tenants:
        if tenant is not None or read_data or read_data_subset or subset_seed:
            raise RejectedError(
                "--all takes no --tenant, --read-data or --read-data-subset",
                hint="reading packs checks the whole repository at once: run "
                "odoo-dr verify --read-data (or --read-data-subset) without --all",
            )
        selection = fleet_options.select_tenants(
            "verify", repo, inventory, environment, exclude
        )
        _verify_all(
            selection, jobs, tenant_jobs or fleet_options.DEFAULT_TENANT_JOBS, as_json
        )
        return
    fleet_options.reject_fleet_options(exclude, inventory, environment, tenant_jobs)
    subset = None
    if read_data_subset is not None:
        if read_data:
            raise RejectedError(
                "--read-data and --read-data-subset exclude each other",
                hint="pass --read-data to read every pack, or --read-data-subset "
                "to read some",
            )
        subset = parse_subset(read_data_subset, subset_seed)
    elif subset_seed is not None:
        raise RejectedError(
            "--subset-seed needs --read-data-subset with a percentage",
            hint="pass for example --read-data-subset 5% --subset-seed 2026-12-04",
        )
    repository = opt.open_repository(repo)
    report = verify(repository, tenant, read_data, jobs, subset)
    if (
        tenant is not None
        and not report.snapshots
        and not report.journals
        and not report.unreadable
    ):
        raise RejectedError(
            f"no snapshots of tenant {tenant!r} in repository {repository.location}",
            hint="list tenants and snapshots with: odoo-dr snapshots",
        )
    if as_json:
        print_json(_as_json(report))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(ExitCode.VERIFICATION_FAILED)


def _verify_all(
    selection: fleet_options.FleetSelection,
    jobs: int,
    tenant_jobs: int,
    as_json: bool,
) -> None:
    unreadable = fleet_options.unreadable_manifests(selection)

    def verify_one(tenant: fleet.FleetTenant) -> fleet.WorkResult:
        repository = selection.repository(tenant)
        started_at = datetime.now(UTC)
        report = verify(repository, tenant.name, jobs=tenant_jobs)
        if not report.snapshots and not report.journals:
            raise RejectedError(
                f"no snapshots of tenant {tenant.name!r} in repository "
                f"{repository.location}",
                hint="back it up first: odoo-dr backup --all",
            )
        problems = [
            f"{item.snapshot_id}: {problem}"
            for item in [*report.snapshots, *report.journals]
            for problem in item.problems
        ]
        newest = report.snapshots[-1].snapshot_id if report.snapshots else None
        if problems:
            return fleet.WorkResult(
                snapshot_id=newest,
                error=f"{len(problems)} problem(s): " + "; ".join(problems[:3]),
                hint=f"list them all with: odoo-dr verify --tenant {tenant.name} "
                f"--repo {repository.location}",
                exit_code=ExitCode.VERIFICATION_FAILED,
            )
        if tenant.environment is not None:
            # Tells `odoo-dr run` that this tenant's verify is done. The snapshots
            # verified all the same, so a read-only repository (a read-only
            # mount or credential, an `?as-of=` view) makes this a warning.
            try:
                write_last_done(
                    repository, tenant.environment, tenant.name, "verify", started_at
                )
            except OdooDrError as exc:
                return fleet.WorkResult(
                    snapshot_id=newest,
                    warnings=[
                        "verified, but not recorded for odoo-dr run: " + exc.message
                    ],
                )
        return fleet.WorkResult(snapshot_id=newest)

    report = fleet.run_fleet(
        selection.tenants,
        jobs,
        verify_one,
        failure_code=ExitCode.VERIFICATION_FAILED,
    )
    fleet_options.print_summary(report, "verify", as_json)
    fleet_options.print_unreadable(unreadable)
    fleet_options.finish(
        report, ExitCode.VERIFICATION_FAILED if unreadable else ExitCode.OK
    )


def _as_json(report: VerifyReport) -> dict:
    return {
        "ok": report.ok,
        "read_data": report.read_data,
        "objects_checked": report.objects_checked,
        "bytes_read": report.bytes_read,
        "unreadable_manifests": report.unreadable,
        "subset": report.subset,
        "packs_read": report.packs_read,
        "packs_total": report.packs_total,
        "damaged_packs": report.damaged_packs,
        "damaged_index_files": report.damaged_index_files,
        "unindexed_packs": report.unindexed_packs,
        "snapshots": [
            {
                "id": item.snapshot_id,
                "tenant": item.tenant,
                "objects": item.objects,
                "ok": item.ok,
                "problems": item.problems,
            }
            for item in report.snapshots
        ],
        "journals": [
            {
                "tenant": item.tenant,
                "objects": item.objects,
                "ok": item.ok,
                "problems": item.problems,
            }
            for item in report.journals
        ],
    }


def _print_report(report: VerifyReport) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("snapshot", "tenant", "objects", "result"):
        table.add_column(column, justify="right" if column == "objects" else "left")
    reports = [*report.snapshots, *report.journals]
    for item in reports:
        count = len(item.problems)
        result = "ok" if item.ok else f"DAMAGED ({count} problem{'s' * (count != 1)})"
        table.add_row(item.snapshot_id, item.tenant, f"{item.objects:,}", result)
    if reports:
        console.print(table)
    for item in reports:
        for problem in item.problems[:LISTED_PROBLEMS]:
            console.out(f"  {item.snapshot_id}: {problem}")
        if len(item.problems) > LISTED_PROBLEMS:
            more = len(item.problems) - LISTED_PROBLEMS
            console.out(f"  {item.snapshot_id}: and {more:,} more")
    for snapshot_id, message in report.unreadable.items():
        errors.print(f"snapshot {snapshot_id} is unreadable: {message}")
    if report.unreadable:
        errors.print(
            "hint: put the manifests back from a copy of the repository, or run "
            "'odoo-dr repository rebuild-catalog' to accept them as they are "
            "(see docs/damage.md)"
        )
    for pack_id, message in report.damaged_packs.items():
        console.out(f"  pack {pack_id} is damaged: {message}")
    for key, message in report.damaged_index_files.items():
        console.out(
            f"  index file {key} is damaged ({message}); its packs were read from "
            "their headers, and the next backup indexes them again"
        )
    if report.unindexed_packs:
        errors.print(
            f"{report.unindexed_packs:,} pack(s) are listed by no index file (a backup "
            "was killed before writing one, or an index file is damaged): their "
            "headers were read instead, and the next backup indexes them again"
        )
    checked = "read and checked" if report.read_data else "looked up"
    packs = ""
    if report.read_data:
        packs = (
            f" in {report.packs_read:,} of {report.packs_total:,} packs "
            f"({size(report.bytes_read)})"
        )
    subset = f", subset {report.subset}" if report.subset else ""
    restorable = "snapshot and journal file" if report.journals else "snapshot"
    console.out(
        f"{report.objects_checked:,} objects {checked}{packs}{subset}"
        + (f"; every {restorable} can be restored" if report.ok else "")
    )
