"""`odoo-dr restore`: restore a snapshot as a copy or a move."""

from __future__ import annotations

import hashlib
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli import pitr as pitr_options
from odoo_dr.cli.drill import resolve_target
from odoo_dr.cli.output import console, duration, errors, local_time, print_json, size
from odoo_dr.engine.pitr import StatusOptions, read_status
from odoo_dr.engine.pitr_drill import (
    PitrOptions,
    choose_backup,
    parse_target_time,
    run_pitr_restore,
)
from odoo_dr.engine.restore import RestoreOptions, RestoreResult, run_restore
from odoo_dr.errors import ExitCode, RejectedError


def fingerprint(secret: str | None) -> str:
    """Return a short fingerprint that distinguishes secrets without showing them."""
    if not secret:
        return "(none)"
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def restore(
    target: Annotated[
        str, typer.Option("--target", help="Name of the database to create.")
    ],
    snapshot: Annotated[
        str | None,
        typer.Argument(
            metavar="SNAPSHOT|TENANT",
            help="Snapshot id (or a unique prefix), or a tenant for its latest "
            "snapshot.",
            show_default=False,
        ),
    ] = None,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy", help="A copy: new database.uuid, secret and creation date."
        ),
    ] = False,
    move: Annotated[
        bool,
        typer.Option("--move", help="A move (failover): keep the original identity."),
    ] = False,
    filestore_root: opt.FilestoreRootOption = None,
    odoo_config: opt.OdooConfigOption = None,
    neutralize: Annotated[
        bool,
        typer.Option(
            "--neutralize",
            help="Deactivate mail servers, scheduled actions, payments and carriers.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing target database and folder."),
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="USER[:GROUP] to own the restored filestore files, by name or "
            "number, such as odoo or 101:101 (the user the Odoo server runs as). "
            "Default: the user running odoo-dr.",
            show_default=False,
        ),
    ] = None,
    pitr: Annotated[
        bool,
        typer.Option(
            "--pitr",
            help="Recover the cluster with pgBackRest to --target-time and restore "
            "--tenant from it, in place of a snapshot.",
        ),
    ] = False,
    target_time: pitr_options.TargetTimeOption = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="With --pitr: the database to take from the recovered cluster.",
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
    jobs: opt.JobsOption = opt.default_jobs(),
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Restore SNAPSHOT into a new database and filestore folder.

    With --pitr, recover the cluster with pgBackRest to --target-time in a private
    temporary folder, take --tenant from it and restore that into the server; the
    other tenants of the server are not touched.
    """
    opt.apply_verbosity(verbose, quiet)
    if copy == move:
        raise RejectedError(
            "choose --copy or --move" + (", not both" if copy else ""),
            hint="--copy gives the restored database a new identity (a second "
            "instance); --move keeps it (failover, the original is gone)",
        )
    config = opt.load_odoo_config(odoo_config)
    root = opt.restore_filestore_root(filestore_root, config)
    restore_options = RestoreOptions(
        target=target,
        filestore_root=root,
        mode="copy" if copy else "move",
        neutralize=neutralize,
        force=force,
        jobs=jobs,
        temp_dir=temp_dir,
        owner=owner,
    )
    repository = opt.open_repository(repo)
    settings = opt.pg_settings(dsn, config)
    if pitr:
        if snapshot is not None or tenant is None or target_time is None:
            raise RejectedError(
                "--pitr needs --target-time and --tenant, and no snapshot",
                hint="odoo-dr restore --pitr --target-time 2026-12-05T10:42:00Z "
                "--tenant DATABASE --target NAME --copy",
            )
        options = PitrOptions(
            target_time=parse_target_time(target_time),
            jobs=jobs,
            temp_dir=temp_dir,
            database_user=recovery_user,
            recovery_timeout=recovery_timeout,
        )
        backrest = pitr_options.backrest_from_options(
            stanza, pgbackrest_config_path, os_user
        )
        status = read_status(backrest, None, StatusOptions(temp_dir=temp_dir))
        choose_backup(status, options.target_time)
        recovered = run_pitr_restore(
            repository, backrest, status, settings, tenant, options, restore_options
        )
        console.out(
            f"recovered stanza {backrest.stanza} from base backup "
            f"{recovered.base_backup} to {local_time(recovered.target_time)}; "
            f"stored {tenant!r} as snapshot {recovered.snapshot_id}"
        )
        result = recovered.restore
        result.steps = recovered.steps
    else:
        if snapshot is None or tenant is not None or target_time is not None:
            raise RejectedError(
                "name the snapshot to restore; --tenant and --target-time need --pitr",
                hint="odoo-dr restore SNAPSHOT|TENANT --target NAME --copy",
            )
        manifest = resolve_target(repository, snapshot)
        result = run_restore(repository, settings, manifest, restore_options)
        if repository.newer_unreadable:
            result.warnings.append(
                f"restored {manifest.id}, not the newer snapshot manifest(s) "
                f"{', '.join(repository.newer_unreadable)}, which cannot be read; "
                "run odoo-dr verify"
            )
    if as_json:
        print_json(result_json(result))
    else:
        print_result(result)
        for warning in result.warnings:
            errors.print(f"warning: {warning}")
    if result.warnings:
        raise typer.Exit(ExitCode.WARNINGS)


def _identity_rows(result: RestoreResult) -> list[tuple[str, str, str]]:
    before, after = result.identity.before, result.identity.after
    rows = []
    for key in ("database.uuid", "database.secret", "database.create_date"):
        old, new = before.get(key), after.get(key)
        if key == "database.secret":
            old, new = fingerprint(old), fingerprint(new)
        rows.append((key, old or "(none)", new or "(none)"))
    return rows


def result_json(result: RestoreResult) -> dict:
    return {
        "snapshot": result.snapshot_id,
        "tenant": result.tenant,
        "target": result.target,
        "filestore": str(result.filestore),
        "mode": result.mode,
        "identity": {
            key: {"before": old, "after": new}
            for key, old, new in _identity_rows(result)
        },
        "neutralized": result.neutralized,
        "tolerated_errors": result.tolerated_errors,
        "files": result.files,
        "file_bytes": result.file_bytes,
        "replaced_existing": result.replaced_existing,
        "warnings": result.warnings,
        "steps": result.steps,
    }


def print_result(result: RestoreResult) -> None:
    console.out(
        f"restored snapshot {result.snapshot_id} of {result.tenant!r} "
        f"as {result.target!r} "
        f"({result.mode}) with {result.files:,} files ({size(result.file_bytes)}) "
        f"in {result.filestore}"
    )
    verb = "new" if result.mode == "copy" else "kept"
    for key, old, new in _identity_rows(result):
        if result.mode == "copy":
            console.out(f"  {key}: {old} -> {new} ({verb})")
        else:
            console.out(f"  {key}: {new} ({verb})")
    for line in result.neutralized:
        console.out(f"  neutralized: {line}")
    for line in result.tolerated_errors:
        console.out(f"  tolerated: {line}")
    steps = ", ".join(
        f"{name} {duration(seconds)}" for name, seconds in result.steps.items()
    )
    console.out(f"  steps: {steps}")
