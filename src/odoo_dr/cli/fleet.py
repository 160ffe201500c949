"""The `--all` mode of `backup`, `drill` and `verify`: options, tenants, summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, duration, errors, print_json
from odoo_dr.cli.platform import INVENTORY_VARIABLE, read_inventory
from odoo_dr.engine import fleet
from odoo_dr.engine.platform import find_environment
from odoo_dr.engine.scheduled_run import resolve_location as inventory_location
from odoo_dr.errors import RejectedError
from odoo_dr.repository.store import Repository, resolve_location

AllOption = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Work on every tenant: those of --inventory, else every Odoo database "
        "of the server (backup) or every tenant with snapshots (drill, verify).",
    ),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        metavar="PATTERN",
        help="With --all: leave out tenants whose name matches this shell-style "
        "pattern, such as 'test_*' (repeatable).",
        show_default=False,
    ),
]
InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        help="With --all: the platform's inventory.yaml, whose tenants to work on. "
        f"Default: ${INVENTORY_VARIABLE}, else no inventory.",
        show_default=False,
    ),
]
EnvironmentOption = Annotated[
    str | None,
    typer.Option(
        "--environment",
        metavar="ENV",
        help="With --all --inventory: only the tenants of this environment.",
        show_default=False,
    ),
]
FleetJobsOption = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        max=64,
        help="Parallel pg_dump/pg_restore jobs and file workers. With --all: "
        "tenants worked on at once (see --tenant-jobs).",
    ),
]
TenantJobsOption = Annotated[
    int | None,
    typer.Option(
        "--tenant-jobs",
        min=1,
        max=64,
        help="With --all: pg_dump/pg_restore jobs and file workers per tenant. "
        "Default: 2.",
        show_default=False,
    ),
]
DEFAULT_TENANT_JOBS = 2


@dataclass
class FleetSelection:
    """The tenants of a fleet run and the repositories they are stored in."""

    tenants: list[fleet.FleetTenant]
    # By location; a tenant's `repository` is one of these keys.
    repositories: dict[str, Repository] = field(default_factory=dict)

    def repository(self, tenant: fleet.FleetTenant) -> Repository:
        assert tenant.repository is not None
        return self.repositories[tenant.repository]


def reject_fleet_options(
    exclude: list[str] | None,
    inventory: Path | None,
    environment: str | None,
    tenant_jobs: int | None,
) -> None:
    """Reject the options that belong to --all in a single-tenant run."""
    fleet_only = [
        name
        for name, value in (
            ("--exclude", exclude),
            ("--inventory", inventory),
            ("--environment", environment),
            ("--tenant-jobs", tenant_jobs),
        )
        if value
    ]
    if fleet_only:
        raise RejectedError(
            f"{', '.join(fleet_only)} apply only with --all",
            hint="add --all to work on every tenant, or leave them out",
        )


def select_tenants(
    task: fleet.Task,
    repo: str | None,
    inventory: Path | None,
    environment: str | None,
    exclude: list[str] | None,
    discover: Callable[[], list[str]] | None = None,
) -> FleetSelection:
    """Return the tenants of a fleet run in their fair order, with repositories.

    With an inventory, its tenants (of `environment`), each stored in its
    environment's repository (evidence.repository, else --repo). Without one, the
    names `discover` returns (backup) or the tenants with snapshots in --repo.
    """
    patterns = exclude or []
    now = datetime.now(UTC)
    if inventory is not None or os.environ.get(INVENTORY_VARIABLE):
        selection = _inventory_tenants(task, repo, inventory, environment, patterns)
    else:
        if environment is not None:
            raise RejectedError(
                "--environment needs an inventory",
                hint=f"pass --inventory inventory.yaml or set {INVENTORY_VARIABLE}",
            )
        repository = opt.open_repository(repo)
        names = discover() if discover is not None else None
        if names is None:
            names = fleet.repository_tenants(repository)
        chosen = [name for name in names if not fleet.excluded(name, patterns)]
        tenants = fleet.plain_tenants(
            chosen,
            task,
            repository.list_snapshots() if task != "drill" else [],
            repository.list_drills() if task == "drill" else [],
            now,
            repository.location,
        )
        selection = FleetSelection(tenants, {repository.location: repository})
    if not selection.tenants:
        raise RejectedError(
            "no tenant to work on" + (" after --exclude" if patterns else ""),
            hint="check --exclude, the inventory, or where tenants are looked for: "
            "the server's Odoo databases (backup) or the repository's snapshots "
            "(drill, verify)",
        )
    selection.tenants = fleet.fair_order(selection.tenants)
    return selection


def _inventory_tenants(
    task: fleet.Task,
    repo: str | None,
    path: Path | None,
    environment: str | None,
    patterns: list[str],
) -> FleetSelection:
    loaded, folder = read_inventory(path)
    if environment is not None:
        environments = [find_environment(loaded, environment)]
    else:
        environments = list(loaded.environments)
    selection = FleetSelection([])
    seen: dict[str, str] = {}
    now = datetime.now(UTC)
    for item in environments:
        if not item.tenants:
            continue
        if item.evidence.repository is None:
            location = resolve_location(repo)
        else:
            location = inventory_location(item.evidence.repository, folder)
            if repo is not None and resolve_location(repo) != location:
                raise RejectedError(
                    f"--repo {repo} differs from evidence.repository "
                    f"{item.evidence.repository!r} of environment {item.name!r}",
                    hint="leave out --repo, or correct evidence.repository in the "
                    "inventory",
                )
        if location not in selection.repositories:
            selection.repositories[location] = Repository.open(location)
        repository = selection.repositories[location]
        for tenant in item.tenants:
            if fleet.excluded(tenant.name, patterns):
                continue
            if tenant.name in seen:
                raise RejectedError(
                    f"tenant {tenant.name!r} is in environments "
                    f"{seen[tenant.name]!r} and {item.name!r}",
                    hint="pick one with --environment ENV",
                )
            seen[tenant.name] = item.name
            selection.tenants.append(
                fleet.inventory_tenant(
                    loaded, item, tenant, task, repository, location, now
                )
            )
    return selection


def unreadable_manifests(selection: FleetSelection) -> dict[str, str]:
    """Return the damaged snapshot manifests of the selection's repositories.

    A manifest that cannot be read names no tenant, so a fleet run reports it
    once after the summary rather than in a tenant's row.
    """
    unreadable = {}
    for repository in selection.repositories.values():
        _manifests, damaged = repository.scan_snapshots()
        for snapshot_id, message in damaged.items():
            unreadable[f"{repository.location}/snapshots/{snapshot_id}.json"] = message
    return unreadable


def print_unreadable(unreadable: dict[str, str]) -> None:
    for key, message in unreadable.items():
        errors.print(f"snapshot manifest {key} is unreadable: {message}")


def print_summary(report: fleet.FleetReport, task: str, as_json: bool) -> None:
    """Print one row per tenant on stdout (a JSON list with --json), totals on
    stderr."""
    if as_json:
        print_json([item.model_dump(mode="json") for item in report.outcomes])
    else:
        with_environment = any(item.environment for item in report.outcomes)
        table = Table(box=None, pad_edge=False)
        columns = ["tenant", "result", "time", "id", "error"]
        if with_environment:
            columns.insert(1, "environment")
        for column in columns:
            table.add_column(column, justify="right" if column == "time" else "left")
        for item in report.outcomes:
            row = [
                item.tenant,
                item.result,
                duration(item.seconds),
                item.drill_id or item.snapshot_id or "",
                item.error or "",
            ]
            if with_environment:
                row.insert(1, item.environment or "")
            table.add_row(*row)
        console.print(table)
    counts: dict[str, int] = {}
    for item in report.outcomes:
        counts[item.result] = counts.get(item.result, 0) + 1
    totals = ", ".join(f"{count} {result}" for result, count in counts.items())
    errors.print(f"{task} --all: {len(report.outcomes)} tenant(s): {totals}")


def finish(report: fleet.FleetReport, extra_code: int = 0) -> None:
    """End the command with the run's exit code; re-raise an interruption."""
    if report.interrupted:
        raise KeyboardInterrupt
    code = max(report.exit_code, extra_code)
    if code:
        raise typer.Exit(code)
