"""The due tasks of a tenant for `odoo-dr run`, read from the repository.

What is due comes from the repository, so a pass can be started by cron or a
Kubernetes CronJob every few minutes and a second pass right after does nothing:

- backup: the tenant's newest snapshot is older than its backup interval, or it
  has none;
- drill: its newest passing drill is older than the tier's `drill_every`, or it has
  none. A drill runs on the newest snapshot, after that pass's backup. A drill that
  failed is tried again once a newer snapshot exists, not on the same snapshot;
- verify, prune and copy: the last-done document of the tenant
  (`schedule/<hash>.json`) is older than the interval, or absent. The document is
  written only after the task succeeded.

Tenants with due tasks go first, then by tier (the shortest region-loss RTO first),
then the longest overdue. `engine/scheduled_run.py` performs the tasks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from odoo_dr.engine.platform import tier_order
from odoo_dr.engine.retention import RetentionPolicy
from odoo_dr.errors import OdooDrError
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.catalog import SnapshotSummary
from odoo_dr.repository.manifest import DrillRecord
from odoo_dr.repository.store import Repository, dump_json
from odoo_dr.review.inventory import (
    EffectiveSchedule,
    Environment,
    Inventory,
    Retention,
    Tenant,
    effective_schedule,
)

log = logging.getLogger(__name__)

Action = Literal["run", "backup", "drill", "verify", "prune", "copy"]
Result = Literal["done", "failed", "skipped", "not-due", "due"]
SCHEDULE_PREFIX = "schedule/"
# The tasks whose last success the schedule document records.
RECORDED_TASKS = ("verify", "prune", "copy")


@dataclass
class TaskState:
    """Whether one task of a tenant is due, and since or until when."""

    action: Action
    due: bool
    # When the task became due (due) or becomes due (not due); None: never done.
    due_at: datetime | None
    detail: str
    # Set when the task cannot run at all (no retention, no offsite repository);
    # printed only with verbose or dry-run.
    blocked: bool = False
    # Set for a drill whose last attempt failed on the newest snapshot: it runs
    # again only on a newer one.
    waits_for_snapshot: bool = False


@dataclass
class TenantPlan:
    tenant: Tenant
    schedule: EffectiveSchedule
    tasks: dict[str, TaskState] = field(default_factory=dict)

    def overdue(self, now: datetime) -> float:
        """Return the seconds since the earliest due task became due (inf: never)."""
        due = [task for task in self.tasks.values() if task.due and not task.blocked]
        if not due:
            return -1.0
        if any(task.due_at is None for task in due):
            return float("inf")
        return max((now - task.due_at).total_seconds() for task in due if task.due_at)


def schedule_key(repository: Repository, environment: str, tenant: str) -> str:
    """Return the key of a tenant's schedule document, its name hashed (keyed when
    the repository is encrypted), so that the key shows no tenant name."""
    text = f"{environment}\n{tenant}"
    if repository.keys is not None:
        digest = repository.keys.name("schedule", text)[:32]
    else:
        digest = hashlib.sha256(f"schedule\n{text}".encode()).hexdigest()[:32]
    return f"{SCHEDULE_PREFIX}{digest}.json"


def read_last_done(
    repository: Repository, environment: str, tenant: str
) -> dict[str, datetime]:
    """Return the time each recorded task last succeeded, by task name."""
    key = schedule_key(repository, environment, tenant)
    try:
        document = json.loads(repository.read_document(key))
    except ObjectNotFound:
        return {}
    except (OdooDrError, ValueError) as exc:
        # A damaged document makes its tasks due, which is the safe side.
        message = exc.message if isinstance(exc, OdooDrError) else str(exc)
        log.warning("schedule document %s cannot be read: %s", key, message)
        return {}
    done = {}
    for task in RECORDED_TASKS:
        value = document.get("last_done", {}).get(task)
        if isinstance(value, str):
            try:
                done[task] = datetime.fromisoformat(value)
            except ValueError:
                continue
    return done


def write_last_done(
    repository: Repository,
    environment: str,
    tenant: str,
    task: str,
    moment: datetime,
) -> None:
    """Record that `task` of the tenant succeeded at `moment`."""
    done = read_last_done(repository, environment, tenant)
    done[task] = moment
    document = {
        "format": "odoo-dr-schedule",
        "environment": environment,
        "tenant": tenant,
        "last_done": {name: value.isoformat() for name, value in done.items()},
    }
    repository.write_document(
        schedule_key(repository, environment, tenant), dump_json(document)
    )


def retention_policy(retention: Retention | None) -> RetentionPolicy | None:
    """Return the environment's retention as a prune policy; None without a rule.

    `legal_min` becomes `min_age`: every snapshot younger than it stays. A
    retention without any rule would keep only the safety rules' snapshots (the
    newest, the newest drilled), so it is treated as no retention.
    """
    if retention is None:
        return None
    rules = (
        retention.keep_last,
        retention.daily,
        retention.weekly,
        retention.monthly,
        retention.yearly,
        retention.legal_min,
    )
    if not any(rules):
        return None
    return RetentionPolicy(
        keep_last=retention.keep_last or 0,
        keep_daily=retention.daily or 0,
        keep_weekly=retention.weekly or 0,
        keep_monthly=retention.monthly or 0,
        keep_yearly=retention.yearly or 0,
        min_age=timedelta(seconds=retention.legal_min or 0),
    )


def _interval_state(
    action: Action, last: datetime | None, interval: int, now: datetime, what: str
) -> TaskState:
    if last is None:
        return TaskState(action, True, None, f"no {what} yet")
    due_at = last + timedelta(seconds=interval)
    return TaskState(action, now >= due_at, due_at, f"last {what} {last.isoformat()}")


def plan_tenant(
    inventory: Inventory,
    environment: Environment,
    tenant: Tenant,
    snapshots: list[SnapshotSummary],
    drills: list[DrillRecord],
    last_done: dict[str, datetime],
    now: datetime,
) -> TenantPlan:
    """Decide which of the tenant's tasks are due at `now`.

    `snapshots` and `drills` are the tenant's, oldest first.
    """
    schedule = effective_schedule(inventory, tenant)
    plan = TenantPlan(tenant, schedule)
    newest = snapshots[-1] if snapshots else None
    plan.tasks["backup"] = _interval_state(
        "backup",
        newest.snapshot_time if newest else None,
        schedule.backup,
        now,
        "snapshot",
    )
    plan.tasks["drill"] = _drill_state(schedule, snapshots, drills, now)
    for action in RECORDED_TASKS:
        interval = getattr(schedule, action)
        state = _interval_state(
            action, last_done.get(action), interval, now, f"{action}"
        )
        plan.tasks[action] = state
    prune_state = plan.tasks["prune"]
    if retention_policy(environment.retention) is None:
        prune_state.due, prune_state.blocked = False, True
        prune_state.detail = "the environment sets no retention rule"
    copy_state = plan.tasks["copy"]
    if environment.offsite is None or not environment.offsite.repository:
        copy_state.due, copy_state.blocked = False, True
        copy_state.detail = "the environment names no offsite.repository"
    return plan


def _drill_state(
    schedule: EffectiveSchedule,
    snapshots: list[SnapshotSummary],
    drills: list[DrillRecord],
    now: datetime,
) -> TaskState:
    passed = [record for record in drills if record.passed]
    last_passed = passed[-1].started_at if passed else None
    state = _interval_state("drill", last_passed, schedule.drill, now, "passing drill")
    if not state.due or not drills or drills[-1].passed or not snapshots:
        return state
    failed = drills[-1]
    if failed.snapshot_id == snapshots[-1].id:
        state.detail = (
            f"drill {failed.id} of the newest snapshot {failed.snapshot_id} failed; "
            "the next drill runs on a newer snapshot"
        )
        state.waits_for_snapshot = True
    return state


def order_plans(
    inventory: Inventory,
    environment: Environment,
    plans: list[TenantPlan],
    now: datetime,
) -> list[TenantPlan]:
    """Sort tenants: those with due tasks first, then by tier, then most overdue."""
    rank = {
        tier: position
        for position, (tier, _tenants) in enumerate(tier_order(inventory, environment))
    }
    return sorted(
        plans,
        key=lambda plan: (
            plan.overdue(now) < 0,
            rank.get(plan.tenant.tier, len(rank)),
            -plan.overdue(now),
        ),
    )
