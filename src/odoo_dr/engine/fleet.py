"""Backups, drills and verifies of many tenants in one run (`--all`).

The tenants come from an inventory, from the Odoo databases of a server, or from
the tenants with snapshots in a repository. They go in a fair order: the longest
overdue first, then the most critical (the shortest logical-corruption RPO), then
by name. At most `jobs` tenants run at once. One tenant's failure is that tenant's
outcome and the others go on. A tenant locked by another run is skipped, not
failed. An interruption (SIGINT or SIGTERM) starts no other tenant.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import psycopg
from pydantic import BaseModel

from odoo_dr.engine.schedule import plan_tenant, read_last_done
from odoo_dr.errors import ExitCode, LockHeld, OdooDrError
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import (
    Disruption,
    Environment,
    Inventory,
    Tenant,
)

log = logging.getLogger(__name__)

# Tables every Odoo database has: a database without them is not a tenant.
ODOO_TABLES = ("ir_attachment", "ir_module_module")
# odoo-dr's own temporary, drill and replaced databases (pg/temporary.py).
TEMPORARY_PREFIX = "odoo-dr-"
Task = Literal["backup", "drill", "verify"]
Result = Literal["ok", "warnings", "failed", "skipped", "not started"]
# How often the main thread wakes while tenants run, to handle a signal.
WAKE_SECONDS = 0.5


@dataclass(frozen=True)
class FleetTenant:
    """One tenant of a fleet run and what its place in the order depends on."""

    name: str
    # Seconds since the task became due; negative when not yet due, inf when the
    # task was never done.
    overdue_seconds: float = math.inf
    # The logical-corruption RPO; None (no inventory, or no objective) sorts last.
    rpo_seconds: float | None = None
    environment: str | None = None
    tier: str | None = None
    inventory_tenant: Tenant | None = None
    # The location of the repository the tenant is stored in.
    repository: str | None = None


class FleetOutcome(BaseModel):
    """The summary row of one tenant."""

    tenant: str
    environment: str | None = None
    result: Result
    seconds: float
    snapshot_id: str | None = None
    drill_id: str | None = None
    error: str | None = None
    hint: str | None = None
    exit_code: int = 0


@dataclass
class WorkResult:
    """The result of a task on one tenant. An `error` makes the outcome failed."""

    snapshot_id: str | None = None
    drill_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    exit_code: int = ExitCode.OK


@dataclass
class FleetReport:
    outcomes: list[FleetOutcome]
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """Return the highest exit code of all tenants, as `odoo-dr run` does."""
        return max((item.exit_code for item in self.outcomes), default=0)


Work = Callable[[FleetTenant], WorkResult]


def fair_order(tenants: Iterable[FleetTenant]) -> list[FleetTenant]:
    """Sort tenants: the longest overdue first, then the shortest RPO, then name."""
    return sorted(
        tenants,
        key=lambda item: (
            -item.overdue_seconds,
            math.inf if item.rpo_seconds is None else item.rpo_seconds,
            item.name,
            item.environment or "",
        ),
    )


def excluded(name: str, patterns: Iterable[str]) -> bool:
    """Return whether `name` matches one of the shell-style `patterns`."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def server_databases(settings: PgSettings) -> list[str]:
    """Return the Odoo databases of the server that the role may connect to.

    Templates, `postgres`, databases that do not allow connections and odoo-dr's
    own temporary databases are left out. A database counts as Odoo's when it has
    the tables `ODOO_TABLES`; one that cannot be opened is logged and left out.
    """
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database"
            " WHERE datallowconn AND NOT datistemplate AND datname <> %s"
            " AND has_database_privilege(datname, 'CONNECT')"
            " ORDER BY datname",
            (MAINTENANCE_DATABASE,),
        ).fetchall()
    names = []
    for (name,) in rows:
        if name.startswith(TEMPORARY_PREFIX):
            continue
        try:
            with settings.connect(name, autocommit=True) as connection:
                found = connection.execute(
                    "SELECT count(*) FROM pg_catalog.pg_tables"
                    " WHERE tablename = ANY(%s)"
                    " AND schemaname = ANY(pg_catalog.current_schemas(false))",
                    (list(ODOO_TABLES),),
                ).fetchone()
        except OdooDrError as exc:
            log.warning("leaving out database %r: %s", name, exc.message)
            continue
        except psycopg.Error as exc:
            log.warning("leaving out database %r: %s", name, exc)
            continue
        if found is not None and found[0] >= len(ODOO_TABLES):
            names.append(name)
    return names


def repository_tenants(repository: Repository) -> list[str]:
    """Return the tenants with at least one readable snapshot in `repository`."""
    return sorted({manifest.tenant for manifest in repository.list_snapshots()})


def _age_overdue(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return math.inf
    return (now - moment).total_seconds()


def plain_tenants(
    names: Iterable[str],
    task: Task,
    snapshots: list[SnapshotManifest],
    drills: list[DrillRecord],
    now: datetime,
    location: str,
) -> list[FleetTenant]:
    """Return tenants without an inventory, with the age of their last run.

    For a backup or verify, that age is the newest snapshot's. For a drill, it is
    the newest drill's. A tenant without one counts as overdue forever.
    """
    newest: dict[str, datetime] = {}
    if task == "drill":
        for record in drills:
            if record.tenant not in newest or record.started_at > newest[record.tenant]:
                newest[record.tenant] = record.started_at
    else:
        for manifest in snapshots:
            moment = manifest.snapshot_time
            if manifest.tenant not in newest or moment > newest[manifest.tenant]:
                newest[manifest.tenant] = moment
    return [
        FleetTenant(
            name=name,
            overdue_seconds=_age_overdue(newest.get(name), now),
            repository=location,
        )
        for name in names
    ]


def inventory_tenant(
    inventory: Inventory,
    environment: Environment,
    tenant: Tenant,
    task: Task,
    repository: Repository,
    location: str,
    now: datetime,
) -> FleetTenant:
    """Return an inventory tenant with how long its `task` is overdue.

    The due time comes from the tenant's effective schedule, as for `odoo-dr run`.
    """
    snapshots = repository.list_snapshots(tenant.name)
    drills = sorted(
        repository.list_drills(tenant.name), key=lambda record: record.started_at
    )
    last_done = (
        read_last_done(repository, environment.name, tenant.name)
        if task == "verify"
        else {}
    )
    plan = plan_tenant(
        inventory, environment, tenant, snapshots, drills, last_done, now
    )
    state = plan.tasks[task]
    overdue = math.inf if state.due_at is None else (now - state.due_at).total_seconds()
    objective = inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
    return FleetTenant(
        name=tenant.name,
        overdue_seconds=overdue,
        rpo_seconds=objective.rpo if objective is not None else None,
        environment=environment.name,
        tier=tenant.tier,
        inventory_tenant=tenant,
        repository=location,
    )


class _Run:
    """The clock, the stop flag and the outcomes of one fleet run."""

    def __init__(
        self, work: Work, failure_code: int, stop: threading.Event | None
    ) -> None:
        self.work = work
        self.failure_code = failure_code
        self.stop = stop or threading.Event()
        self.started = time.monotonic()

    def not_started(self, tenant: FleetTenant) -> FleetOutcome:
        return FleetOutcome(
            tenant=tenant.name,
            environment=tenant.environment,
            result="not started",
            seconds=0.0,
            error="the run was interrupted before this tenant started",
        )

    def one(self, tenant: FleetTenant) -> FleetOutcome:
        """Run the task on one tenant and turn whatever it raises into an outcome."""
        if self.stop.is_set():
            return self.not_started(tenant)
        started = time.monotonic()
        outcome = FleetOutcome(
            tenant=tenant.name, environment=tenant.environment, result="ok", seconds=0
        )
        try:
            result = self.work(tenant)
        except LockHeld as exc:
            outcome.result = "skipped"
            outcome.error = exc.message
            log.info("tenant %r skipped: %s", tenant.name, exc.message)
        except OdooDrError as exc:
            outcome.result = "failed"
            outcome.error = exc.message
            outcome.hint = exc.hint
            outcome.exit_code = exc.exit_code
        except Exception as exc:  # noqa: BLE001 - one tenant must not stop the rest
            log.exception("tenant %r failed", tenant.name)
            outcome.result = "failed"
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.exit_code = self.failure_code
        else:
            outcome.snapshot_id = result.snapshot_id
            outcome.drill_id = result.drill_id
            outcome.hint = result.hint
            if result.error is not None:
                outcome.result = "failed"
                outcome.error = result.error
                outcome.exit_code = result.exit_code or self.failure_code
            elif result.warnings:
                outcome.result = "warnings"
                outcome.error = "; ".join(result.warnings)
                outcome.exit_code = result.exit_code or ExitCode.WARNINGS
        outcome.seconds = round(time.monotonic() - started, 3)
        if outcome.result == "failed":
            log.error("tenant %r failed: %s", tenant.name, outcome.error)
        return outcome


def run_fleet(
    tenants: Iterable[FleetTenant],
    jobs: int,
    work: Work,
    failure_code: int,
    stop: threading.Event | None = None,
) -> FleetReport:
    """Run `work` on every tenant in fair order, `jobs` tenants at a time.

    `failure_code` is the exit code of an unexpected exception in `work`. On
    KeyboardInterrupt (which the command line raises for SIGTERM too), `stop` is
    set, no other tenant starts, the running ones finish, and the report is marked
    interrupted. Setting `stop` from elsewhere also starts no other tenant.
    """
    ordered = fair_order(tenants)
    run = _Run(work, failure_code, stop)
    if jobs == 1:
        return _run_in_main_thread(run, ordered)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fleet")
    futures: list[Future[FleetOutcome]] = []
    # Outcomes by position, stored by the pool's threads. An interruption inside
    # `submit` (below) loses the future of a tenant that was queued and may run,
    # so the outcomes are read from here, not from the futures.
    outcomes_at: dict[int, FleetOutcome] = {}

    def one_at(position: int, tenant: FleetTenant) -> FleetOutcome:
        outcome = run.one(tenant)
        outcomes_at[position] = outcome
        return outcome

    interrupted = False
    try:
        # Submitting starts the pool's threads and waits for each to start, so an
        # interruption may arrive here too.
        for position, tenant in enumerate(ordered):
            futures.append(pool.submit(one_at, position, tenant))
        pending = set(futures)
        while pending:
            # The kernel may deliver SIGINT or SIGTERM to a pool thread, and then
            # Python runs the handler only when the main thread wakes up.
            _done, pending = wait(pending, timeout=WAKE_SECONDS)
    except KeyboardInterrupt:
        interrupted = True
        run.stop.set()
        log.warning(
            "interrupted: starting no other tenant, waiting for the running ones"
        )
        # NOTE: a signal reaches only the main thread, so tenants already running
        # in the pool finish their work (and clean up) before the run stops.
        pool.shutdown(wait=True, cancel_futures=True)
    pool.shutdown(wait=True)
    # shutdown() has cancelled every queued tenant and waited for the running
    # ones, so a position without an outcome never started.
    outcomes = [
        outcomes_at.get(position) or run.not_started(tenant)
        for position, tenant in enumerate(ordered)
    ]
    return FleetReport(outcomes, interrupted)


def _run_in_main_thread(run: _Run, ordered: list[FleetTenant]) -> FleetReport:
    """Run one tenant at a time in this thread, so a signal reaches its cleanup."""
    outcomes: list[FleetOutcome] = []
    for tenant in ordered:
        started = time.monotonic()
        try:
            outcomes.append(run.one(tenant))
        except KeyboardInterrupt:
            outcomes.append(
                FleetOutcome(
                    tenant=tenant.name,
                    environment=tenant.environment,
                    result="failed",
                    seconds=round(time.monotonic() - started, 3),
                    error="interrupted",
                    exit_code=run.failure_code,
                )
            )
            rest = ordered[len(outcomes) :]
            outcomes.extend(run.not_started(item) for item in rest)
            return FleetReport(outcomes, interrupted=True)
    return FleetReport(outcomes)
