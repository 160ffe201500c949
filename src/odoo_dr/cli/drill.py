"""`odoo-dr drill`: restore a snapshot as a neutralized copy, check it, time it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, duration, print_json
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.errors import ExitCode
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository


def resolve_target(repository: Repository, reference: str) -> SnapshotManifest:
    """Return the snapshot named by `reference`: an id, an id prefix, or a tenant."""
    return repository.resolve_snapshot(reference)


def drill(
    snapshot: Annotated[
        str,
        typer.Argument(
            metavar="SNAPSHOT|DATABASE",
            help="Snapshot id (or prefix), or a database name for its latest snapshot.",
        ),
    ],
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
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    odoo_config: opt.OdooConfigOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Restore a snapshot as a neutralized scratch copy and check it.

    Exit 0 when every check passed, 5 when one did not or the snapshot's data is
    damaged, 4 when the restore failed for another reason.
    """
    opt.apply_verbosity(verbose, quiet)
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
            cron_allow_list=(*DEFAULT_CRON_ALLOW_LIST, *(allow_cron or ())),
        ),
    )
    if as_json:
        print_json(record)
    else:
        print_record(record)
    if not record.passed:
        raise typer.Exit(ExitCode.VERIFICATION_FAILED)


def print_record(record: DrillRecord) -> None:
    verdict = "PASSED" if record.passed else "FAILED"
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
    console.out(
        f"RPO {duration(record.rpo_seconds)} (age of the snapshot when the drill began)"
    )
    if record.kept:
        console.out(
            f"kept scratch database {record.scratch_database!r} and filestore "
            f"{record.scratch_filestore}"
        )
