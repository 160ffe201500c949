"""`odoo-dr demo`: build a sample logistics database, back it up and drill it."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.drill import print_record
from odoo_dr.cli.output import console, size
from odoo_dr.demo import builder
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.repository.store import Repository, resolve_location

log = logging.getLogger(__name__)

DEMO_DATABASE = "odoo_dr_demo"
DEMO_FILESTORE = Path("odoo-dr-demo/filestore")


def _open_or_create(location: str) -> Repository:
    if (Path(location) / "config.json").exists():
        return Repository.open(location)
    return Repository.init(location)


def demo(
    database: Annotated[
        str, typer.Option("--database", help="Name of the sample database to create.")
    ] = DEMO_DATABASE,
    filestore_root: Annotated[
        Path,
        typer.Option(
            "--filestore-root", help="Folder for the sample database's filestore."
        ),
    ] = DEMO_FILESTORE,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Create a sample logistics database, back it up and drill it.

    The database has stock, sales, purchases, invoices, attachments made of real
    files, an active mail server and scheduled actions due now. Running the demo again
    replaces the sample database, never one it did not create.
    """
    opt.apply_verbosity(verbose, quiet)
    settings = opt.pg_settings(dsn, None)
    root = filestore_root.expanduser().absolute()
    existing = builder.is_demo_database(settings, database)
    if existing is False:
        raise RejectedError(
            f"database {database!r} exists and was not created by odoo-dr demo",
            hint="pass --database with another name",
        )
    repository = _open_or_create(resolve_location(repo))

    console.out(
        f"1/3 creating sample database {database!r} with its filestore in {root}"
    )
    summary = builder.build(settings, database, root, replace=existing is True)
    console.out(
        f"    {summary.attachments} attachments, {summary.files} files "
        f"({size(summary.file_bytes)}), an active mail server and scheduled actions"
    )

    console.out(f"2/3 backing it up into repository {repository.location}")
    manifest = run_backup(
        repository,
        settings,
        BackupOptions(database=database, filestore_root=root, jobs=jobs),
    )
    console.out(
        f"    snapshot {manifest.id}: dump {size(manifest.stats.dump_bytes)}, "
        f"{manifest.filestore.referenced_files} files, "
        f"{size(manifest.stats.new_bytes)} added in {manifest.stats.seconds:.1f}s"
    )

    console.out(
        "3/3 drilling the snapshot: restore as a neutralized copy, then check it"
    )
    record = run_drill(repository, settings, manifest, DrillOptions(jobs=jobs))
    print_record(record)
    repo_arg = shlex.quote(repository.location)
    console.out(
        f"\nnext: odoo-dr snapshots --repo {repo_arg}\n"
        f"      odoo-dr restore {manifest.id} --target "
        f"{shlex.quote(database + '_copy')} --copy "
        f"--filestore-root {shlex.quote(str(root))} --repo {repo_arg}"
    )
    if not record.passed:
        raise typer.Exit(ExitCode.VERIFICATION_FAILED)
