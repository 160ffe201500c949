"""`odoo-dr import` and `odoo-dr export`: archives of Odoo's own backup tools."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, local_time, print_json, size
from odoo_dr.engine.exporter import ExportOptions, run_export
from odoo_dr.engine.importer import ImportOptions, run_import
from odoo_dr.errors import ExitCode


class ExportFormat(StrEnum):
    zip = "zip"
    folder = "folder"
    dump = "dump"


def import_archive(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="FILE|FOLDER",
            help="An Odoo backup zip, a click-odoo-backupdb folder, a pg_dump "
            "custom-format file or a plain pg_dump file.",
        ),
    ],
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant to file the snapshot under.")
    ],
    filestore: Annotated[
        Path | None,
        typer.Option(
            "--filestore",
            help="The database's filestore folder (holding the two-letter folders), "
            "for a dump file or a folder without filestore/.",
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
    """Import a backup archive as a snapshot of TENANT; print the snapshot id."""
    opt.apply_verbosity(verbose, quiet)
    config = opt.load_odoo_config(odoo_config)
    repository = opt.open_repository(repo)
    manifest = run_import(
        repository,
        opt.pg_settings(dsn, config),
        ImportOptions(
            source=source,
            tenant=tenant,
            filestore=filestore,
            jobs=jobs,
            temp_dir=temp_dir,
        ),
    )
    if as_json:
        print_json(manifest.model_dump(mode="json", exclude={"dump"}))
    else:
        files = manifest.filestore
        errors.print(
            f"snapshot {manifest.id} of {manifest.tenant!r} imported from "
            f"{manifest.labels.get('imported-from')}: database "
            f"{manifest.database.name!r} of {local_time(manifest.snapshot_time)}, "
            f"dump {size(manifest.stats.dump_bytes)}, "
            f"{files.referenced_files + files.extra_files:,} files "
            f"({size(files.referenced_bytes + files.extra_bytes)})"
        )
        console.out(manifest.id)
    for warning in manifest.warnings:
        errors.print(f"warning: {warning}")
    if manifest.warnings:
        raise typer.Exit(ExitCode.WARNINGS)


def export_snapshot(
    snapshot: Annotated[
        str,
        typer.Argument(
            metavar="SNAPSHOT|TENANT",
            help="Snapshot id (or a unique prefix), or a tenant for its latest "
            "snapshot.",
        ),
    ],
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="zip: Odoo's database manager; folder: click-odoo-backupdb's "
            "folder; dump: one pg_dump custom-format file, without the filestore.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Path to write. Default: <database>-<snapshot id>[.zip|.dump] in "
            "the current folder.",
            show_default=False,
        ),
    ] = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    odoo_config: opt.OdooConfigOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Export a snapshot as an archive Odoo's tools restore; print its path."""
    opt.apply_verbosity(verbose, quiet)
    config = opt.load_odoo_config(odoo_config)
    repository = opt.open_repository(repo)
    manifest = repository.resolve_snapshot(snapshot)
    path = run_export(
        repository,
        opt.pg_settings(dsn, config),
        manifest,
        ExportOptions(format=export_format.value, output=output, jobs=jobs),
    )
    errors.print(
        f"snapshot {manifest.id} of {manifest.tenant!r} exported as "
        f"{export_format.value} to {path}"
    )
    console.out(str(path))
