"""`odoo-dr run`: the scheduled pass that performs whatever is due."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.copy import open_target
from odoo_dr.cli.platform import InventoryOption, read_inventory
from odoo_dr.engine import scheduled_run
from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.repository.store import resolve_location


def _repository_location(
    environment: str, configured: str | None, repo: str | None, folder
) -> str:
    """Return the environment's repository: evidence.repository, else --repo."""
    if configured is None:
        return resolve_location(repo)
    location = scheduled_run.resolve_location(configured, folder)
    if repo is not None and resolve_location(repo) != location:
        raise RejectedError(
            f"--repo {repo} differs from evidence.repository {configured!r} of "
            f"environment {environment!r}",
            hint="leave out --repo, or correct evidence.repository in the inventory",
        )
    return location


def _print_line(line: scheduled_run.ActionLine) -> None:
    # sys.stdout, not the Rich console: while a progress bar is shown on the same
    # terminal, sys.stdout prints above it.
    # ASCII with \u escapes, because cron may give stdout a locale's encoding,
    # such as ASCII or Latin-1, that cannot write a tenant's name.
    fields = line.model_dump(mode="json", exclude_none=True)
    text = json.dumps(fields, ensure_ascii=True, separators=(",", ":"))
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(
    environments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ENV",
            help="Environments of the inventory to run. Default: every environment "
            "with tenants.",
            show_default=False,
        ),
    ] = None,
    inventory: InventoryOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what is due, and when the rest is; do nothing."
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, max=64, help="Tenants worked on at once."),
    ] = 1,
    tenant_jobs: Annotated[
        int,
        typer.Option(
            "--tenant-jobs",
            min=1,
            max=64,
            help="pg_dump/pg_restore jobs and file workers per tenant.",
        ),
    ] = 2,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    odoo_config: opt.OdooConfigOption = None,
    filestore_root: opt.FilestoreRootOption = None,
    temp_dir: opt.TempDirOption = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Back up, drill, verify, prune and copy whatever is due, then exit.

    Meant for cron or a Kubernetes CronJob every few minutes: what is due comes
    from the repository, so a second run right after does nothing, and a run that
    finds another holding the environment's lock exits 0. Prints one JSON line per
    action. The exit code is the highest of all actions. It is 0 when every due task
    was done or skipped, and 1 when a backup had warnings or a prune failed. A
    failed backup or copy gives 3, a failed drill restore 4, and failed drill
    checks or verify 5. It is 2 when the inventory, an environment or a repository
    is unusable.
    """
    opt.apply_verbosity(verbose, quiet)
    loaded, folder = read_inventory(inventory)
    names = scheduled_run.check_environments(loaded, environments or [])
    config = opt.load_odoo_config(odoo_config)
    root, _source = opt.filestore_root(filestore_root, config)
    options = scheduled_run.RunOptions(
        settings=opt.pg_settings(dsn, config),
        filestore_root=root,
        jobs=jobs,
        tenant_jobs=tenant_jobs,
        temp_dir=temp_dir,
        dry_run=dry_run,
        open_target=open_target,
    )
    writer = scheduled_run.LineWriter(_print_line)
    for name in names:
        environment = next(item for item in loaded.environments if item.name == name)
        try:
            location = _repository_location(
                name, environment.evidence.repository, repo, folder
            )
            scheduled_run.run_environment(
                loaded, folder, name, location, options, writer, verbose
            )
        except OdooDrError as exc:
            writer.add(
                scheduled_run.ActionLine(
                    time=scheduled_run.utc_now(),
                    environment=name,
                    action="run",
                    result="failed",
                    error=exc.message,
                    hint=exc.hint,
                    exit_code=exc.exit_code,
                )
            )
    if writer.exit_code:
        raise typer.Exit(writer.exit_code)
