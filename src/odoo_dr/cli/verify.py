"""`odoo-dr verify`: check that every snapshot can be restored."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, print_json, size
from odoo_dr.engine.subset import parse_subset
from odoo_dr.engine.verify import VerifyReport, verify
from odoo_dr.errors import ExitCode, RejectedError

# Problems listed per snapshot in the human output; --json lists all.
LISTED_PROBLEMS = 20


def verify_command(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only snapshots of this tenant.")
    ] = None,
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
    jobs: opt.JobsOption = opt.default_jobs(),
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Check that every object each snapshot needs is present (and intact).

    Exit 0 when every snapshot can be restored and nothing read is damaged, 5 when
    a snapshot cannot be restored or damage was found.
    """
    opt.apply_verbosity(verbose, quiet)
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
