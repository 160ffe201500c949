"""`odoo-dr platform backup|restore|drill|list ENV` and `odoo-dr runbook ENV`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, duration, print_json
from odoo_dr.engine import platform as engine
from odoo_dr.engine.runbook import RunbookOptions, render_runbook
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.repository.store import resolve_location
from odoo_dr.review.inventory import Inventory, InventoryError, load_inventory

platform_app = typer.Typer(
    help="Back up, restore and drill a whole environment of the inventory.",
    no_args_is_help=True,
)

INVENTORY_VARIABLE = "ODOO_DR_INVENTORY"

EnvironmentArgument = Annotated[
    str, typer.Argument(metavar="ENV", help="Environment name in the inventory.")
]
InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        help=f"The platform's inventory.yaml. Default: ${INVENTORY_VARIABLE}.",
        show_default=False,
    ),
]
PlatformJobsOption = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        max=64,
        help="Tenants worked on at once inside a tier.",
    ),
]
TenantJobsOption = Annotated[
    int,
    typer.Option(
        "--tenant-jobs",
        min=1,
        max=64,
        help="pg_dump/pg_restore jobs and file workers per tenant.",
    ),
]
OnlyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tenant",
        help="Work on this tenant only (repeatable). Default: every tenant.",
        show_default=False,
    ),
]
FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Id of the platform backup to use. Default: the newest.",
        show_default=False,
    ),
]
RedisUrlOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Redis to capture (backup) or restore into (restore), such as "
        "redis://host:6379/0; a password is best given in REDISCLI_AUTH.",
        show_default=False,
    ),
]


def read_inventory(path: Path | None) -> tuple[Inventory, Path]:
    chosen = path or (
        Path(os.environ[INVENTORY_VARIABLE])
        if os.environ.get(INVENTORY_VARIABLE)
        else None
    )
    if chosen is None:
        raise RejectedError(
            "no inventory given",
            hint=f"pass --inventory inventory.yaml or set {INVENTORY_VARIABLE}",
        )
    if not chosen.exists():
        raise RejectedError(
            f"inventory {chosen} not found",
            hint="give the path of the platform's inventory.yaml",
        )
    if not chosen.is_file():
        kind = "a folder" if chosen.is_dir() else "not a regular file"
        raise RejectedError(
            f"invalid inventory {chosen}: it is {kind}",
            hint="give the path of the platform's inventory.yaml",
        )
    try:
        return load_inventory(chosen)
    except InventoryError as exc:
        raise RejectedError(
            "invalid inventory:\n  " + "\n  ".join(exc.problems),
            hint="print the inventory's JSON Schema with: odoo-dr review schema",
        ) from None


def _only(items: list[str] | None) -> frozenset[str] | None:
    return frozenset(items) if items else None


def _check_only(inventory: Inventory, environment: str, only: frozenset[str] | None):
    if only is None:
        return
    known = {
        tenant.name
        for tenant in engine.find_environment(inventory, environment).tenants
    }
    unknown = sorted(only - known)
    if unknown:
        raise RejectedError(
            f"tenant {unknown[0]!r} is not in environment {environment!r}",
            hint=f"choose among: {', '.join(sorted(known))}",
        )


def _prepare(
    environment: str,
    inventory: Path | None,
    tenant: list[str] | None,
    verbose: bool,
    quiet: bool,
) -> tuple[Inventory, Path, frozenset[str] | None]:
    """Set the log level, read the inventory and check the --tenant names."""
    opt.apply_verbosity(verbose, quiet)
    loaded, folder = read_inventory(inventory)
    only = _only(tenant)
    _check_only(loaded, environment, only)
    return loaded, folder, only


def backup(
    environment: EnvironmentArgument,
    inventory: InventoryOption = None,
    redis_url: RedisUrlOption = None,
    tenant: OnlyOption = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    odoo_config: opt.OdooConfigOption = None,
    filestore_root: opt.FilestoreRootOption = None,
    jobs: PlatformJobsOption = 2,
    tenant_jobs: TenantJobsOption = 2,
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Back up every tenant of ENV, its Redis sessions or queues, its configuration.

    Exit 0 when everything was backed up, 1 when only Redis or the configuration
    could not be, 3 when a tenant's backup failed (the others are published).
    """
    loaded, folder, only = _prepare(environment, inventory, tenant, verbose, quiet)
    config = opt.load_odoo_config(odoo_config)
    root, _source = opt.filestore_root(filestore_root, config)
    record = engine.platform_backup(
        loaded,
        folder,
        environment,
        engine.PlatformOptions(
            location=resolve_location(repo),
            settings=opt.pg_settings(dsn, config),
            filestore_root=root,
            jobs=jobs,
            tenant_jobs=tenant_jobs,
            temp_dir=temp_dir,
            redis_url=redis_url,
            only=only,
        ),
    )
    _finish(record, as_json, ExitCode.BACKUP_FAILED)


def restore(
    environment: EnvironmentArgument,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="libpq connection string of the target PostgreSQL server, such as "
            "'host=pg.dr.example user=odoo_restore'.",
        ),
    ],
    target_filestore_root: Annotated[
        Path,
        typer.Option(
            "--target-filestore-root",
            help="Filestore root of the target Odoo (its <data_dir>/filestore).",
        ),
    ],
    inventory: InventoryOption = None,
    source: FromOption = None,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy",
            help="Give every restored database a new identity. Default: a move, "
            "which keeps it (a failover).",
        ),
    ] = False,
    neutralize: Annotated[
        bool, typer.Option("--neutralize", help="Neutralize every restored tenant.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace existing databases and folders, Redis keys and "
            "--config-out files of the same name.",
        ),
    ] = False,
    redis_url: RedisUrlOption = None,
    config_out: Annotated[
        Path | None,
        typer.Option(
            "--config-out",
            help="New or empty folder to write the backed-up configuration into "
            "(manifests, odoo.conf with secret references, routes).",
            show_default=False,
        ),
    ] = None,
    tenant: OnlyOption = None,
    repo: opt.RepoOption = None,
    jobs: PlatformJobsOption = 2,
    tenant_jobs: TenantJobsOption = 2,
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Restore a platform backup of ENV into a target server, tier by tier.

    Exit 0 when every tenant and the Redis data are back, 4 when one is not
    (the summary gives the reason).
    """
    loaded, _folder, only = _prepare(environment, inventory, tenant, verbose, quiet)
    record = engine.platform_restore(
        loaded,
        environment,
        engine.PlatformOptions(
            location=resolve_location(repo),
            settings=opt.pg_settings(to, None),
            filestore_root=target_filestore_root,
            jobs=jobs,
            tenant_jobs=tenant_jobs,
            temp_dir=temp_dir,
            only=only,
        ),
        engine.RestoreTarget(
            settings=opt.pg_settings(to, None),
            filestore_root=target_filestore_root.expanduser().absolute(),
            mode="copy" if copy else "move",
            neutralize=neutralize,
            force=force,
            redis_url=redis_url,
            config_out=config_out,
        ),
        source,
    )
    _finish(record, as_json, ExitCode.RESTORE_FAILED)


def drill(
    environment: EnvironmentArgument,
    inventory: InventoryOption = None,
    source: FromOption = None,
    tenant: OnlyOption = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    jobs: PlatformJobsOption = 2,
    tenant_jobs: TenantJobsOption = 2,
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Drill a platform backup of ENV: every tenant neutralized into scratch.

    Redis data goes into a scratch redis-server started for the drill. Reports
    the time until each tier was back against its region-loss RTO. Exit 0 when
    every tenant passed, 5 when one did not or the Redis data was not restored.
    """
    loaded, _folder, only = _prepare(environment, inventory, tenant, verbose, quiet)
    record = engine.platform_drill(
        loaded,
        environment,
        engine.PlatformOptions(
            location=resolve_location(repo),
            settings=opt.pg_settings(dsn, None),
            filestore_root=Path("."),
            jobs=jobs,
            tenant_jobs=tenant_jobs,
            temp_dir=temp_dir,
            only=only,
        ),
        source,
        scratch_redis=engine.scratch_redis(temp_dir),
    )
    _finish(record, as_json, ExitCode.VERIFICATION_FAILED)


def list_command(
    environment: Annotated[
        str | None,
        typer.Argument(
            metavar="[ENV]", help="Only this environment.", show_default=False
        ),
    ] = None,
    repo: opt.RepoOption = None,
    as_json: opt.JsonOption = False,
) -> None:
    """List the platform backups, restores and drills of the repository.

    Exit 1 when a record cannot be read (it is left out).
    """
    repository = opt.open_repository(repo)
    damaged: dict[str, str] = {}
    records = engine.list_records(repository, environment, damaged=damaged)
    if as_json:
        print_json([record.model_dump(mode="json") for record in records])
    else:
        _print_records(records)
    if damaged:
        raise typer.Exit(ExitCode.WARNINGS)


def _print_records(records: list[engine.PlatformRecord]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("id", "kind", "environment", "tenants", "failed", "time"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.id,
            record.kind,
            record.environment,
            str(len(record.tenants)),
            str(len(record.failed)),
            duration(record.seconds),
        )
    console.print(table)


def _finish(record: engine.PlatformRecord, as_json: bool, failure: ExitCode) -> None:
    if as_json:
        print_json(record)
    else:
        print_record(record)
    redis_failed = any(item.status == "failed" for item in record.redis)
    if record.failed:
        raise typer.Exit(failure)
    # A backup without Redis data still has every tenant, but a restore or a
    # drill that could not bring the Redis data back did not recover the platform.
    if redis_failed and record.kind != "backup":
        raise typer.Exit(failure)
    if record.warnings or redis_failed:
        raise typer.Exit(ExitCode.WARNINGS)


def print_record(record: engine.PlatformRecord) -> None:
    console.out(
        f"platform {record.kind} {record.id} of {record.environment!r}: "
        f"{len(record.tenants) - len(record.failed)} of {len(record.tenants)} "
        f"tenants done in {duration(record.seconds)} ({record.jobs} at once)"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("tier", "tenant", "result", "done after", "time", "detail"):
        table.add_column(column)
    for item in record.tenants:
        table.add_row(
            item.tier,
            item.tenant,
            "ok" if item.status == "ok" else "FAILED",
            duration(item.finished_after),
            duration(item.seconds),
            item.error or item.drill_id or item.snapshot_id or "",
        )
    console.print(table)
    for tier in record.tiers:
        objective = (
            f" against a region-loss RTO of {duration(tier.objective_rto_seconds)}"
            if tier.objective_rto_seconds is not None
            else ""
        )
        if tier.done_after_seconds is None:
            console.out(
                f"tier {tier.tier}: {tier.recovered} of {len(tier.tenants)} tenants "
                f"back, not recovered{objective}"
            )
        else:
            verdict = {True: "met", False: "MISSED", None: "no objective"}[tier.met]
            console.out(
                f"tier {tier.tier}: all {len(tier.tenants)} back after "
                f"{duration(tier.done_after_seconds)}{objective} ({verdict})"
            )
    for item in record.tenants:
        if item.hint:
            console.out(f"hint for {item.tenant}: {item.hint}")
    for item in record.redis:
        console.out(f"redis {item.role}: {item.status}, {item.detail}")
    if record.configuration_commit:
        console.out(f"configuration: commit {record.configuration_commit}")
    for warning in record.warnings:
        console.out(f"warning: {warning}")


def runbook(
    environment: EnvironmentArgument,
    inventory: InventoryOption = None,
    output_format: Annotated[
        str,
        typer.Option("--format", help="md or html."),
    ] = "md",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file. Default: stdout."),
    ] = None,
    repo: opt.RepoOption = None,
) -> None:
    """Write the recovery runbook of ENV from the inventory and the last drill."""
    if output_format not in ("md", "html"):
        raise RejectedError(
            f"invalid --format {output_format!r}", hint="use md or html"
        )
    loaded, _folder = read_inventory(inventory)
    text = render_runbook(
        loaded,
        environment,
        RunbookOptions(location=resolve_location(repo), output_format=output_format),
    )
    if output is None:
        console.out(text)
    else:
        output.write_text(text)


platform_app.command("backup")(backup)
platform_app.command("restore")(restore)
platform_app.command("drill")(drill)
platform_app.command("list")(list_command)
