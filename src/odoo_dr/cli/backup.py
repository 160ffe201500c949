"""`odoo-dr backup`: take a snapshot of one Odoo database and its filestore."""

from __future__ import annotations

from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, print_json, size
from odoo_dr.engine.backup import (
    BackupOptions,
    parse_labels,
    run_backup,
)
from odoo_dr.errors import ExitCode


def backup(
    database: Annotated[str, typer.Argument(help="Name of the Odoo database.")],
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
    jobs: opt.JobsOption = opt.default_jobs(),
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
    """Back up DATABASE and its filestore; print the new snapshot id."""
    opt.apply_verbosity(verbose, quiet)
    parsed_labels = parse_labels(labels or [])
    config = opt.load_odoo_config(odoo_config)
    root, root_source = opt.filestore_root(filestore_root, config)
    repository = opt.open_repository(repo)
    manifest = run_backup(
        repository,
        opt.pg_settings(dsn, config),
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
