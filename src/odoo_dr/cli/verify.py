"""`odoo-dr verify`: check that every snapshot can be restored."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, print_json, size
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
            help="Also read every object and check it against its SHA-256.",
        ),
    ] = False,
    repo: opt.RepoOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Check that every object each snapshot needs is present (and intact).

    Exit 0 when every snapshot can be restored, 5 when one cannot.
    """
    opt.apply_verbosity(verbose, quiet)
    repository = opt.open_repository(repo)
    report = verify(repository, tenant, read_data, jobs)
    if tenant is not None and not report.snapshots and not report.unreadable:
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
        "damaged_packs": report.damaged_packs,
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
    }


def _print_report(report: VerifyReport) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("snapshot", "tenant", "objects", "result"):
        table.add_column(column, justify="right" if column == "objects" else "left")
    for item in report.snapshots:
        count = len(item.problems)
        result = "ok" if item.ok else f"DAMAGED ({count} problem{'s' * (count != 1)})"
        table.add_row(item.snapshot_id, item.tenant, f"{item.objects:,}", result)
    if report.snapshots:
        console.print(table)
    for item in report.snapshots:
        for problem in item.problems[:LISTED_PROBLEMS]:
            console.out(f"  {item.snapshot_id}: {problem}")
        if len(item.problems) > LISTED_PROBLEMS:
            more = len(item.problems) - LISTED_PROBLEMS
            console.out(f"  {item.snapshot_id}: and {more:,} more")
    for snapshot_id, message in report.unreadable.items():
        errors.print(f"snapshot {snapshot_id} is unreadable: {message}")
    for pack_id, message in report.damaged_packs.items():
        console.out(f"  pack {pack_id} is damaged: {message}")
    if report.unindexed_packs:
        errors.print(
            f"{report.unindexed_packs:,} pack(s) are listed by no index file (a backup "
            "was killed before writing one, or an index file is damaged): their "
            "headers were read instead, and the next backup indexes them again"
        )
    checked = "read and checked" if report.read_data else "looked up"
    console.out(
        f"{report.objects_checked:,} objects {checked}"
        + (f" ({size(report.bytes_read)})" if report.read_data else "")
        + ("; every snapshot can be restored" if report.ok else "")
    )
