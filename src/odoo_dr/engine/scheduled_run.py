"""One pass of `odoo-dr run` over an environment: the due tasks, done in order.

Tenants run `jobs` at a time in the order `schedule.order_plans` gives, each with its
backup, drill, verify and copy in that order. Prunes run after every tenant's other
tasks, because prune starts only while no tenant lock is held. One failing task is
reported and the others go on. A per-environment run lock in the repository stops
two runs of one environment from starting the same work, and each action ends in
one `ActionLine`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from odoo_dr import progress
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.copy import CopyOptions, run_copy
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.engine.platform import find_populated_environment
from odoo_dr.engine.prune import prune
from odoo_dr.engine.schedule import (
    Action,
    Result,
    TaskState,
    TenantPlan,
    order_plans,
    plan_tenant,
    read_last_done,
    retention_policy,
    write_last_done,
)
from odoo_dr.engine.verify import verify
from odoo_dr.errors import ExitCode, LockHeld, OdooDrError, RejectedError
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.lock import RunLock
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import Environment, Inventory, Tenant

log = logging.getLogger(__name__)

# The exit code of a failed task, unless its error carries a higher one (a drill's
# restore failure is 4, its failed checks 5). A failed prune only keeps snapshots
# longer than the retention rule and loses nothing, so it is a warning.
FAILURE_CODES: dict[str, ExitCode] = {
    "backup": ExitCode.BACKUP_FAILED,
    "copy": ExitCode.BACKUP_FAILED,
    "drill": ExitCode.RESTORE_FAILED,
    "verify": ExitCode.VERIFICATION_FAILED,
    "prune": ExitCode.WARNINGS,
}


class ActionLine(BaseModel):
    """One line of a run's output: what was done (or not) for one tenant."""

    time: datetime
    environment: str
    tenant: str | None = None
    action: Action
    result: Result
    seconds: float = 0.0
    snapshot_id: str | None = None
    drill_id: str | None = None
    next_due: datetime | None = Field(
        default=None,
        description="when the task is due next (not-due lines), or since when it "
        "is due (due lines)",
    )
    detail: str | None = Field(default=None, description="why, in a few words")
    error: str | None = None
    hint: str | None = None
    exit_code: int = Field(default=0, exclude=True)


@dataclass(frozen=True)
class RunOptions:
    settings: PgSettings
    filestore_root: Path
    jobs: int = 1
    tenant_jobs: int = 2
    temp_dir: Path | None = None
    dry_run: bool = False
    now: datetime | None = None
    # Opens the offsite repository a copy writes to, by its location.
    open_target: Callable[[str], Repository] = Repository.open


class LineWriter:
    """Collects the lines of a run and hands each to `emit` as it is made."""

    def __init__(self, emit: Callable[[ActionLine], None]) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self.lines: list[ActionLine] = []

    def add(self, line: ActionLine) -> None:
        with self._lock:
            self.lines.append(line)
            self._emit(line)

    @property
    def exit_code(self) -> int:
        return max((line.exit_code for line in self.lines), default=0)


def utc_now() -> datetime:
    return datetime.now(UTC)


def resolve_location(value: str, inventory_folder: Path) -> str:
    """Return a repository location of the inventory, a folder relative to it."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (inventory_folder / path).resolve())


def _failure_code(action: str, exc: BaseException) -> int:
    code = FAILURE_CODES[action]
    if action != "prune" and isinstance(exc, OdooDrError):
        return max(code, exc.exit_code)
    return code


class _EnvironmentRun:
    """The tasks of one environment's pass, with the repository location."""

    def __init__(
        self,
        inventory: Inventory,
        environment: Environment,
        location: str,
        offsite: str | None,
        options: RunOptions,
        writer: LineWriter,
        verbose: bool,
    ) -> None:
        self.inventory = inventory
        self.environment = environment
        self.location = location
        self.offsite = offsite
        self.options = options
        self.writer = writer
        self.verbose = verbose
        self.advance: progress.Advance = lambda _amount: None

    def line(
        self,
        tenant: str | None,
        action: Action,
        result: Result,
        *,
        counted: bool = True,
        **extra,
    ) -> ActionLine:
        """Write one line; a done, failed or skipped task advances the progress."""
        item = ActionLine(
            time=datetime.now(UTC),
            environment=self.environment.name,
            tenant=tenant,
            action=action,
            result=result,
            **extra,
        )
        self.writer.add(item)
        if counted and action != "run" and result in ("done", "failed", "skipped"):
            self.advance(1)
        return item

    def report_state(self, tenant: str, state: TaskState) -> None:
        """Write the line of a task that does not run now: not due, or blocked."""
        if state.blocked:
            if self.verbose or self.options.dry_run:
                self.line(
                    tenant, state.action, "skipped", counted=False, detail=state.detail
                )
            return
        if self.verbose or self.options.dry_run:
            self.line(
                tenant,
                state.action,
                "not-due",
                next_due=state.due_at,
                detail=state.detail,
            )

    def attempt(
        self,
        tenant: str,
        action: Action,
        work: Callable[[], dict],
    ) -> bool:
        """Run one task; write its line; return whether it succeeded."""
        started = time.monotonic()
        try:
            ids = work()
        except LockHeld as exc:
            self.line(
                tenant,
                action,
                "skipped",
                seconds=round(time.monotonic() - started, 3),
                detail="another run holds a lock it needs; it is tried again by "
                "the next run",
                error=exc.message,
                hint=exc.hint,
            )
            return False
        except OdooDrError as exc:
            log.error("%s of tenant %r failed: %s", action, tenant, exc.message)
            self.line(
                tenant,
                action,
                "failed",
                seconds=round(time.monotonic() - started, 3),
                error=exc.message,
                hint=exc.hint,
                exit_code=_failure_code(action, exc),
                **getattr(exc, "ids", {}),
            )
            return False
        except Exception as exc:  # noqa: BLE001 - one task must not stop the rest
            log.exception("%s of tenant %r failed", action, tenant)
            self.line(
                tenant,
                action,
                "failed",
                seconds=round(time.monotonic() - started, 3),
                error=f"unexpected {type(exc).__name__}: {exc}",
                hint="run again with -v for the traceback and report it",
                exit_code=_failure_code(action, exc),
            )
            return False
        self.line(
            tenant,
            action,
            "done",
            seconds=round(time.monotonic() - started, 3),
            **ids,
        )
        return True

    # -- the tasks

    def run_tenant(self, plan: TenantPlan) -> None:
        """Back up, drill, verify and copy one tenant, as far as each is due."""
        tenant = plan.tenant
        name = tenant.name
        repository = Repository.open(self.location)
        backup_state = plan.tasks["backup"]
        new_snapshot = False
        if backup_state.due:
            new_snapshot = self.attempt(
                name, "backup", lambda: self._backup(repository, tenant)
            )
            repository.refresh()
        else:
            self.report_state(name, backup_state)
        newest = repository.latest_snapshot(name)

        drill_state = plan.tasks["drill"]
        if drill_state.due and newest is None:
            self.line(name, "drill", "skipped", detail="the tenant has no snapshot")
        elif drill_state.due and (new_snapshot or not drill_state.waits_for_snapshot):
            self.attempt(name, "drill", lambda: self._drill(repository, tenant, newest))
        elif drill_state.due:
            self.line(name, "drill", "skipped", detail=drill_state.detail)
        else:
            self.report_state(name, drill_state)

        for action, work in (
            ("verify", lambda: self._verify(repository, name)),
            ("copy", lambda: self._copy(repository, name)),
        ):
            state = plan.tasks[action]
            if not state.due:
                self.report_state(name, state)
            elif newest is None:
                self.line(name, action, "skipped", detail="the tenant has no snapshot")
            else:
                self.attempt(
                    name, action, self._recorded(repository, name, action, work)
                )

    def _recorded(
        self,
        repository: Repository,
        tenant: str,
        action: str,
        work: Callable[[], dict],
    ) -> Callable[[], dict]:
        """Wrap `work` so that its success is written to the schedule document."""

        def run_and_record() -> dict:
            started_at = datetime.now(UTC)
            ids = work()
            write_last_done(
                repository, self.environment.name, tenant, action, started_at
            )
            return ids

        return run_and_record

    def run_tenant_safely(self, plan: TenantPlan) -> None:
        """Run `run_tenant`, turning an error outside every task into a line."""
        try:
            self.run_tenant(plan)
        except Exception as exc:  # noqa: BLE001 - one tenant must not stop the rest
            self._tenant_failed(plan, exc)

    def _tenant_failed(self, plan: TenantPlan, exc: Exception) -> None:
        message = exc.message if isinstance(exc, OdooDrError) else str(exc)
        log.error("tenant %r stopped: %s", plan.tenant.name, message)
        self.line(
            plan.tenant.name,
            "run",
            "failed",
            error=message,
            hint=exc.hint if isinstance(exc, OdooDrError) else None,
            exit_code=ExitCode.REJECTED,
        )

    def run_prune(self, plan: TenantPlan) -> None:
        name = plan.tenant.name
        state = plan.tasks["prune"]
        if not state.due:
            self.report_state(name, state)
            return
        try:
            repository = Repository.open(self.location)
            newest = repository.latest_snapshot(name)
        except OdooDrError as exc:
            self._tenant_failed(plan, exc)
            return
        if newest is None:
            self.line(name, "prune", "skipped", detail="the tenant has no snapshot")
            return
        work = self._recorded(
            repository, name, "prune", lambda: self._prune(repository, name)
        )
        self.attempt(name, "prune", work)

    def _backup(self, repository: Repository, tenant: Tenant) -> dict:
        manifest = run_backup(
            repository,
            self.options.settings,
            BackupOptions(
                database=tenant.name,
                filestore_root=self.options.filestore_root,
                jobs=self.options.tenant_jobs,
                temp_dir=self.options.temp_dir,
                labels={
                    "environment": self.environment.name,
                    "tier": tenant.tier,
                },
            ),
        )
        if manifest.warnings:
            return {
                "snapshot_id": manifest.id,
                "detail": "; ".join(manifest.warnings),
                "exit_code": ExitCode.WARNINGS,
            }
        return {"snapshot_id": manifest.id}

    def _drill(
        self, repository: Repository, tenant: Tenant, manifest: SnapshotManifest
    ) -> dict:
        record = run_drill(
            repository,
            self.options.settings,
            manifest,
            DrillOptions(
                jobs=self.options.tenant_jobs,
                temp_dir=self.options.temp_dir,
                checks=tuple(tenant.checks),
                default_checks=tenant.default_checks,
            ),
        )
        if not record.passed:
            failed = [check.name for check in record.checks if not check.passed]
            error = _DrillFailed(
                f"drill {record.id} of snapshot {manifest.id} failed: "
                + (record.error or ", ".join(failed) or "no check ran"),
                hint=f"see the record with: odoo-dr drill {manifest.id}, or read "
                f"drills/{record.id}.json",
            )
            error.ids = {"snapshot_id": manifest.id, "drill_id": record.id}
            raise error
        return {"snapshot_id": manifest.id, "drill_id": record.id}

    def _verify(self, repository: Repository, tenant: str) -> dict:
        report = verify(repository, tenant, jobs=self.options.tenant_jobs)
        if not report.ok:
            problems = [
                problem for item in report.snapshots for problem in item.problems
            ]
            problems += [f"{key}: {value}" for key, value in report.unreadable.items()]
            raise _VerifyFailed(
                f"{len(problems)} problem(s) in the snapshots of {tenant!r}: "
                + "; ".join(problems[:3]),
                hint=f"run odoo-dr verify --tenant {tenant} --repo "
                f"{repository.location} for the full list",
            )
        return {}

    def _copy(self, repository: Repository, tenant: str) -> dict:
        assert self.offsite is not None
        target = self.options.open_target(self.offsite)
        report = run_copy(
            repository,
            target,
            CopyOptions(tenant=tenant, jobs=self.options.tenant_jobs),
        )
        failed = report.failed
        if failed:
            listed = "; ".join(f"{item.manifest.id}: {item.error}" for item in failed)
            raise _CopyFailed(
                f"{len(failed)} snapshot(s) could not be copied to {target.location}: "
                f"{listed}",
                hint=f"run odoo-dr verify --tenant {tenant} on the source",
            )
        return {}

    def _prune(self, repository: Repository, tenant: str) -> dict:
        policy = retention_policy(self.environment.retention)
        assert policy is not None
        prune(repository, [policy], tenant=tenant)
        return {}


class _DrillFailed(OdooDrError):
    exit_code = ExitCode.VERIFICATION_FAILED
    ids: dict[str, str]


class _VerifyFailed(OdooDrError):
    exit_code = ExitCode.VERIFICATION_FAILED


class _CopyFailed(OdooDrError):
    exit_code = ExitCode.BACKUP_FAILED


def run_environment(
    inventory: Inventory,
    inventory_folder: Path,
    environment_name: str,
    location: str,
    options: RunOptions,
    writer: LineWriter,
    verbose: bool = False,
) -> None:
    """Perform whatever is due in one environment, under its run lock."""
    environment = find_populated_environment(inventory, environment_name)
    offsite = None
    if environment.offsite is not None and environment.offsite.repository:
        offsite = resolve_location(environment.offsite.repository, inventory_folder)
    run = _EnvironmentRun(
        inventory, environment, location, offsite, options, writer, verbose
    )
    repository = Repository.open(location)
    lock = RunLock(repository.backend, environment.name, repository.keys)
    if not options.dry_run:
        try:
            lock.acquire()
        except LockHeld as exc:
            holder = exc.holder or {}
            if holder:
                detail = (
                    f"another run holds the lock since {holder.get('created_at')}: "
                    f"pid {holder.get('pid')} on host {holder.get('host')}"
                )
            else:
                detail = exc.message
            run.line(None, "run", "skipped", detail=detail)
            return
    try:
        _run_locked(run, inventory, environment, repository, options)
    finally:
        if not options.dry_run:
            lock.release()


def _run_locked(
    run: _EnvironmentRun,
    inventory: Inventory,
    environment: Environment,
    repository: Repository,
    options: RunOptions,
) -> None:
    now = options.now or datetime.now(UTC)
    summaries = repository.snapshot_summaries()
    drills = repository.list_drills()
    plans = []
    for tenant in environment.tenants:
        plans.append(
            plan_tenant(
                inventory,
                environment,
                tenant,
                [item for item in summaries if item.tenant == tenant.name],
                sorted(
                    (item for item in drills if item.tenant == tenant.name),
                    key=lambda record: record.started_at,
                ),
                read_last_done(repository, environment.name, tenant.name),
                now,
            )
        )
    plans = order_plans(inventory, environment, plans, now)
    if options.dry_run:
        for plan in plans:
            for state in plan.tasks.values():
                if state.due:
                    run.line(
                        plan.tenant.name,
                        state.action,
                        "due",
                        next_due=state.due_at,
                        detail=state.detail,
                    )
                else:
                    run.report_state(plan.tenant.name, state)
        return
    due = sum(
        1
        for plan in plans
        for state in plan.tasks.values()
        if state.due and not state.blocked
    )
    label = f"run {environment.name}"
    with progress.track(label, due, "tasks") as run.advance:
        if options.jobs == 1:
            # In the main thread, SIGINT and SIGTERM reach the running task, so
            # its cleanup runs and pg_dump or a query is cancelled.
            for plan in plans:
                run.run_tenant_safely(plan)
        else:
            _run_tenants_in_threads(run, plans, options.jobs)
        for plan in plans:
            run.run_prune(plan)


def _run_tenants_in_threads(
    run: _EnvironmentRun, plans: list[TenantPlan], jobs: int
) -> None:
    """Run the tenants `jobs` at a time; on an interruption, start no other."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="run")
    try:
        list(pool.map(run.run_tenant_safely, plans))
    except BaseException:
        # NOTE: tasks already running in other threads finish before the run
        # stops, since a signal only interrupts the main thread.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def check_environments(inventory: Inventory, names: list[str]) -> list[str]:
    """Return the environments to run: `names`, else every one with tenants."""
    if names:
        for name in names:
            find_populated_environment(inventory, name)
        return names
    chosen = [item.name for item in inventory.environments if item.tenants]
    if not chosen:
        raise RejectedError(
            "no environment of the inventory has tenants",
            hint="list the databases of an environment under tenants:",
        )
    return chosen
