"""`odoo-dr init`, `odoo-dr snapshots` and `odoo-dr repository`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import age, console, errors, local_time, print_json, size
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.repository import crypto
from odoo_dr.repository.catalog import SnapshotSummary
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.repository.store import MAX_LOCK_DAYS, Repository, resolve_location


class LockMode(StrEnum):
    governance = "governance"
    compliance = "compliance"


def init(
    repo: opt.RepoOption = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt the repository with AES-256-GCM. The key comes from the "
            "file named by $ODOO_DR_KEY_FILE, from $ODOO_DR_PASSPHRASE, or from a "
            "prompt.",
        ),
    ] = False,
    lock_days: Annotated[
        int | None,
        typer.Option(
            "--lock-days",
            min=1,
            max=MAX_LOCK_DAYS,
            help="Lock every object written with S3 Object Lock for this many days "
            f"(S3 buckets with Object Lock enabled only; at most {MAX_LOCK_DAYS}).",
            show_default=False,
        ),
    ] = None,
    lock_mode: Annotated[
        LockMode | None,
        typer.Option(
            "--lock-mode",
            help="Object Lock mode with --lock-days: governance (the default, "
            "removable with s3:BypassGovernanceRetention) or compliance (no one can "
            "remove it).",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="Region the repository is stored in, as its provider names it "
            "(eu-west-1, fr-par, fsn1). Copies check snapshots' residency against it.",
            show_default=False,
        ),
    ] = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Create an empty repository."""
    opt.apply_verbosity(verbose, quiet)
    location = resolve_location(repo)
    if lock_mode is not None and lock_days is None:
        raise RejectedError(
            f"--lock-mode {lock_mode.value} needs --lock-days: without it no object "
            "is locked",
            hint=f"add --lock-days N (1 to {MAX_LOCK_DAYS}), or leave out --lock-mode",
        )
    secret = None
    if encrypt:
        secret = crypto.secret_from_environment(
            confirm=True, prompt="Passphrase for the new repository: "
        )
        if secret is None:
            raise RejectedError(
                f"--encrypt needs a key for repository {location}",
                hint="set $ODOO_DR_KEY_FILE to the path of a key file or "
                "$ODOO_DR_PASSPHRASE to a passphrase, or run the command in a "
                "terminal to be prompted",
            )
    repository = Repository.init(
        location,
        secret=secret,
        lock_days=lock_days,
        lock_mode=(lock_mode or LockMode.governance).value,
        region=region,
    )
    details = [f"id {repository.config.id}"]
    if repository.encrypted:
        details.append("encrypted")
    if repository.config.region:
        details.append(f"region {repository.config.region}")
    console.out(f"created repository {repository.location} ({', '.join(details)})")
    lock = repository.config.object_lock
    if lock is not None:
        console.out(f"objects are locked in {lock.mode} mode for {lock.days} days")


def snapshots(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only snapshots of this tenant.")
    ] = None,
    repo: opt.RepoOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """List snapshots: tenant, database, time, sizes, files and what each added."""
    opt.apply_verbosity(verbose, quiet)
    repository = opt.open_repository(repo)
    if as_json:
        # The JSON output has every manifest field but the dump's file list and
        # the modules, so it reads each manifest; the table needs only summaries.
        manifests, damaged = repository.scan_snapshots(tenant)
    else:
        summaries, damaged = repository.scan_summaries(tenant)
    for snapshot_id, message in damaged.items():
        errors.print(f"warning: snapshot {snapshot_id} is unreadable: {message}")
    if as_json:
        _print_json(manifests)
    else:
        _print_snapshots(repository, summaries, tenant)
    if damaged:
        raise typer.Exit(ExitCode.WARNINGS)


def _print_json(manifests: list[SnapshotManifest]) -> None:
    excluded = {"dump": True, "odoo": {"modules"}}
    print_json(
        [manifest.model_dump(mode="json", exclude=excluded) for manifest in manifests]
    )


def _print_snapshots(
    repository: Repository,
    summaries: list[SnapshotSummary],
    tenant: str | None = None,
) -> None:
    if not summaries:
        of_tenant = f" of tenant {tenant!r}" if tenant is not None else ""
        console.out(f"no snapshots{of_tenant} in {repository.location}")
        return
    table = Table(box=None, pad_edge=False)
    for column in (
        "id",
        "tenant",
        "database",
        "taken",
        "age",
        "dump",
        "files",
        "file bytes",
        "new",
        "problems",
    ):
        justify = (
            "right"
            if column in {"dump", "files", "file bytes", "new", "problems"}
            else "left"
        )
        table.add_column(column, justify=justify)
    for summary in summaries:
        table.add_row(
            summary.id,
            summary.tenant,
            summary.database,
            local_time(summary.snapshot_time),
            age(summary.snapshot_time),
            size(summary.dump_bytes),
            f"{summary.files:,}",
            size(summary.file_bytes),
            size(summary.new_bytes),
            str(summary.problems),
        )
    console.print(table)


repository_app = typer.Typer(
    help="Maintain the repository's own files.", no_args_is_help=True
)


@repository_app.command("rebuild-catalog")
def rebuild_catalog(
    repo: opt.RepoOption = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Write the snapshot catalog again from every manifest.

    Listings rebuild a damaged catalog segment by themselves; this replaces
    the whole catalog, for instance after manifests were restored by hand.
    """
    opt.apply_verbosity(verbose, quiet)
    repository = opt.open_repository(repo)
    count, damaged = repository.rebuild_catalog()
    for snapshot_id, message in damaged.items():
        errors.print(f"warning: snapshot {snapshot_id} is unreadable: {message}")
    console.out(f"cataloged {count} snapshots in {repository.location}")
    if damaged:
        raise typer.Exit(ExitCode.WARNINGS)
