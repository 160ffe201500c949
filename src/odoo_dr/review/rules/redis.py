"""Redis rules: persistence where Redis holds sessions or a queue, and save health."""

from __future__ import annotations

import re
from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence.manifests import Workload
from odoo_dr.review.inventory import Disruption, RedisRole, Tenant, format_duration
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule

STATEFUL_ROLES = {RedisRole.SESSIONS, RedisRole.QUEUE}
# Volumes that outlive the pod or container.
PERSISTENT_VOLUMES = {"persistentVolumeClaim", "hostPath", "namedVolume"}


def stateful_tenants(view: EnvironmentView) -> list[Tenant]:
    """Return the tenants whose Redis holds sessions or a queue."""
    return [
        tenant
        for tenant in view.environment.tenants
        if STATEFUL_ROLES & set(tenant.redis_role)
    ]


def manifest_persistence(workload: Workload) -> tuple[bool, str]:
    """Decide from a Redis workload's command line and volumes whether its data
    survives a restart; return the result and the reason."""
    text = " ".join(container.command_text for container in workload.containers)
    aof = re.search(r"--appendonly\s+yes\b", text) is not None
    rdb_off = re.search(r"--save\s+(''|\"\"|$|--)", text) is not None
    # Redis without a configuration file saves RDB snapshots by default.
    rdb = not rdb_off
    claimed = bool(workload.claim_templates) or any(
        volume.kind in PERSISTENT_VOLUMES for volume in workload.volumes.values()
    )
    modes = [name for name, on in (("AOF", aof), ("RDB", rdb)) if on]
    if not modes:
        return False, f"{workload.ref} runs with --save '' and no --appendonly yes"
    if not claimed:
        return False, (
            f"{workload.ref} writes {' and '.join(modes)} files to a volume that "
            "is lost with the pod"
        )
    return True, f"{workload.ref} writes {' and '.join(modes)} to a persistent volume"


@rule(
    "RDS-001",
    Area.REDIS,
    Severity.HIGH,
    "Redis that holds sessions or a queue persists its data",
    "Without RDB or AOF on a lasting volume, a Redis restart logs every user out "
    "and drops every queued job.",
    "Turn on AOF (appendonly yes, appendfsync everysec) or RDB save points, on a "
    "persistent volume.",
    snippet="appendonly yes\nappendfsync everysec\nsave 900 1 300 10",
)
def redis_persistent(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        tenants = stateful_tenants(view)
        if not tenants:
            continue
        live = view.live.redis
        results: list[tuple[bool, str, Evidence]] = []
        if live is not None:
            rdb = live.rdb_enabled
            modes = []
            if live.aof_enabled:
                modes.append(
                    f"AOF (appendfsync {live.config.get('appendfsync', 'unknown')})"
                )
            if rdb:
                modes.append(f"RDB (save {live.config['save']})")
            if modes:
                results.append(
                    (True, "live Redis persists with " + " and ".join(modes), None)
                )
            elif rdb is None:
                results.append(
                    (
                        False,
                        "live Redis has AOF off, and RDB save points are unknown "
                        "because CONFIG GET was denied",
                        None,
                    )
                )
            else:
                results.append(
                    (False, "live Redis has no RDB save points and AOF off", None)
                )
        for workload in view.redis:
            passed, reason = manifest_persistence(workload)
            results.append((passed, reason, Evidence(workload.ref, workload.location)))
        if not results:
            continue
        passed = all(item[0] for item in results)
        message = "; ".join(item[1] for item in results)
        evidence = tuple(item[2] or Evidence(item[1]) for item in results)
        for tenant in tenants:
            roles = ", ".join(sorted(STATEFUL_ROLES & set(tenant.redis_role)))
            yield Outcome(
                passed,
                f"Redis holds {roles}: {message}",
                environment=view.name,
                tenant=tenant.name,
                evidence=evidence,
            )


def _longest_save_point(save: str) -> int | None:
    """Return the longest interval in seconds of a `save` setting such as
    `3600 1 300 100`: with at least one change, a save happens within it."""
    numbers = [int(item) for item in save.split() if item.isdigit()]
    seconds = numbers[0::2]
    return max(seconds) if seconds else None


@rule(
    "RDS-002",
    Area.REDIS,
    Severity.MEDIUM,
    "Redis's last save succeeded and is recent",
    "A failing background save (a full disk, no permission, fork refused for "
    "memory) leaves Redis running on data that a restart would lose.",
    "Read the Redis log for the save error; free disk space or memory for the fork "
    "(vm.overcommit_memory = 1), and watch rdb_last_bgsave_status.",
)
def redis_save_healthy(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        live = view.live.redis
        if live is None:
            continue
        rdb = live.rdb_enabled
        aof = live.aof_enabled
        info = live.persistence
        if not (rdb or aof or (rdb is None and int(info.get("rdb_saves", 0) or 0))):
            continue
        problems = []
        status = info.get("rdb_last_bgsave_status")
        if status not in (None, "ok"):
            problems.append(
                f"the last RDB save failed (rdb_last_bgsave_status:{status})"
            )
        if aof:
            for key in ("aof_last_write_status", "aof_last_bgrewrite_status"):
                if info.get(key) not in (None, "ok"):
                    problems.append(f"{key}:{info.get(key)}")
        changes = int(info.get("rdb_changes_since_last_save", 0) or 0)
        last_save = info.get("rdb_last_save_time")
        longest = _longest_save_point(live.config.get("save", "")) if rdb else None
        age = None
        if isinstance(last_save, int) and last_save > 0:
            age = context.now.timestamp() - last_save
        if rdb and not aof and changes and age is not None and longest is not None:
            if age > 2 * longest:
                problems.append(
                    f"{changes} changes unsaved for {format_duration(age)}, though "
                    f"save points ask for a save within {format_duration(longest)}"
                )
        rpos = [
            objective.rpo
            for tenant in stateful_tenants(view)
            if (
                objective := context.inventory.objective(
                    tenant, Disruption.COMPONENT_FAILURE
                )
            )
        ]
        detail = (
            f"rdb_last_bgsave_status:{status}, {changes} changes since the last save"
        )
        if age is not None:
            detail += f" {format_duration(age)} ago"
        if rpos and not aof and changes and age is not None and age > min(rpos):
            problems.append(
                f"unsaved changes are {format_duration(age)} old, above the "
                f"component_failure RPO of {format_duration(min(rpos))}"
            )
        yield Outcome(
            not problems,
            "; ".join(problems) or f"saves succeed ({detail})",
            environment=view.name,
            resource="redis",
            evidence=(Evidence(detail),),
        )
