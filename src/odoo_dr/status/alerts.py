"""Prometheus alerting rules sized to each tenant's schedule and objectives.

`odoo-dr alerts render` writes them for the metrics of `odoo-dr serve`
(`status/metric_names.py`). docs/alerts.md lists every rule with its threshold.

Each tenant gets its own rules, with its own thresholds, in one group per
environment. The rules about repositories and the server itself form the group
`odoo-dr`. Environments and tenants are sorted by name, so the output diffs well.

Tenant, environment and stanza names are user data. They reach PromQL only inside
double-quoted label values (`promql_string`), and alert texts only as
`{{ $labels.* }}` or through `template_text`, because Prometheus expands the
annotations and labels of a rule as Go templates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from odoo_dr.errors import RejectedError
from odoo_dr.review.inventory import (
    Disruption,
    Environment,
    Inventory,
    Tenant,
    effective_schedule,
    format_duration,
)
from odoo_dr.status import metric_names as m

# A backup is stale once its age passes the backup interval plus this grace: a
# quarter of the interval, and at least 10 minutes, so that a backup that runs a
# little late or long does not page anyone.
STALE_GRACE_FRACTION = 0.25
STALE_GRACE_MIN = 600

# A tenant whose logical-corruption RPO is at most this long (the default `high`
# tier's) gets `critical` alerts for its objectives, as does one whose tier needs
# point-in-time recovery.
URGENT_RPO = 4 * 3600

# How long a condition must hold before its alert fires. The RPO rule waits for a
# backup due at the RPO itself (the default schedule of a tier without WAL
# archiving) to finish. The others ride over a refresh or scrape that failed once.
RPO_FOR = 600
DRILL_MISSING_FOR = 3600
WAL_GAP_FOR = 600
REPOSITORY_DOWN_FOR = 600
STATUS_ABSENT_FOR = 300

# Default age of the server's last refresh after which its metrics count as stale.
# `odoo-dr serve` refreshes every minute by default.
DEFAULT_STATUS_MAX_AGE = 600

SERVER_GROUP = "odoo-dr"
ENVIRONMENT_GROUP_PREFIX = "odoo-dr environment "

WARNING = "warning"
CRITICAL = "critical"


def stale_after(backup_interval: int) -> int:
    """Return the backup age, in seconds, past which a tenant's backup is stale."""
    grace = max(STALE_GRACE_MIN, math.ceil(backup_interval * STALE_GRACE_FRACTION))
    return backup_interval + grace


def promql_string(value: str) -> str:
    """Quote `value` as a PromQL string literal.

    PromQL reads double-quoted strings with Go's escapes, which JSON's are a subset
    of: backslash, quote and control characters are escaped, and the rest stays.
    """
    return json.dumps(value, ensure_ascii=False)


def selector(metric: str, **labels: str) -> str:
    """Return `metric{label="value",...}` with exact matchers, in argument order."""
    matchers = ",".join(
        f"{name}={promql_string(value)}" for name, value in labels.items()
    )
    return f"{metric}{{{matchers}}}"


def template_text(text: str) -> str:
    """Escape `text` for an annotation or label, which Prometheus expands as a Go
    template: each `{{` is printed by an action instead of starting one."""
    return text.replace("{{", '{{ "{{" }}')


def prometheus_duration(seconds: int) -> str:
    """Write a duration as Prometheus reads it: `10m`, `1d6h`, `45s`."""
    if seconds <= 0:
        return "0s"
    parts = []
    remaining = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class TenantAlerting:
    """The thresholds, in seconds, of one tenant's rules."""

    environment: str
    tenant: str
    backup_interval: int
    stale_after: int
    # The logical-corruption RPO, None when neither the tenant nor its tier sets one.
    rpo: int | None
    # The tier needs point-in-time recovery: WAL archiving, not the snapshots,
    # carries its RPO.
    relies_on_wal: bool
    drill_every: int
    severity: str
    runbook: str | None


def tenant_alerting(
    inventory: Inventory, environment: Environment, tenant: Tenant
) -> TenantAlerting:
    """Compute a tenant's thresholds from its schedule, objectives and tier."""
    tier = inventory.tier(tenant.tier)
    schedule = effective_schedule(inventory, tenant)
    objective = inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
    rpo = objective.rpo if objective is not None else None
    urgent = tier.needs_pitr or (rpo is not None and rpo <= URGENT_RPO)
    runbook = tenant.runbook or next(iter(environment.runbooks), None)
    return TenantAlerting(
        environment=environment.name,
        tenant=tenant.name,
        backup_interval=schedule.backup,
        stale_after=stale_after(schedule.backup),
        rpo=rpo,
        relies_on_wal=tier.needs_pitr,
        drill_every=schedule.drill,
        severity=CRITICAL if urgent else WARNING,
        runbook=runbook,
    )


def _rule(
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    *,
    hold: int = 0,
    runbook: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict:
    rule: dict = {"alert": name, "expr": expr}
    if hold:
        rule["for"] = prometheus_duration(hold)
    # The identifying labels repeat the series' own values. They keep the rules of
    # two tenants apart for `promtool check rules`, whose lint reports rules with
    # the same name and labels as duplicates whatever their expressions.
    rule["labels"] = {
        "severity": severity,
        **{key: template_text(value) for key, value in (labels or {}).items()},
    }
    annotations = {"summary": summary, "description": description}
    if runbook:
        annotations["runbook_url"] = template_text(runbook)
    rule["annotations"] = annotations
    return rule


# The subject of a tenant's alert texts, from the series' own labels.
_TENANT = "{{ $labels.tenant }} in {{ $labels.environment }}"
_AGE = "{{ $value | humanizeDuration }}"


def tenant_rules(alerting: TenantAlerting) -> Iterator[dict]:
    """Yield the rules of one tenant, in a fixed order."""
    labels = {"environment": alerting.environment, "tenant": alerting.tenant}
    info = selector(m.TENANT_INFO, **labels)
    interval = format_duration(alerting.backup_interval)
    stale = format_duration(alerting.stale_after)
    runbook = alerting.runbook

    yield _rule(
        "OdooDrBackupMissing",
        f"{info} unless on(environment, tenant) {m.LAST_SNAPSHOT_TIMESTAMP_SECONDS}",
        alerting.severity,
        f"Tenant {_TENANT} has no backup",
        f"No snapshot of the tenant was found for {stale}; its backups are due "
        f"every {interval}.",
        hold=alerting.stale_after,
        runbook=runbook,
        labels=labels,
    )
    yield _rule(
        "OdooDrBackupStale",
        f"{selector(m.LAST_SNAPSHOT_AGE_SECONDS, **labels)} > {alerting.stale_after}",
        WARNING,
        f"Last backup of {_TENANT} is stale",
        f"The last snapshot is {_AGE} old. Backups are due every {interval}, and "
        f"this alert fires after {stale}, the interval plus a grace.",
        runbook=runbook,
        labels=labels,
    )
    if alerting.rpo is not None and not alerting.relies_on_wal:
        rpo = format_duration(alerting.rpo)
        yield _rule(
            "OdooDrRpoAtRisk",
            f"{selector(m.LAST_SNAPSHOT_AGE_SECONDS, **labels)} > {alerting.rpo}",
            alerting.severity,
            f"RPO of {_TENANT} at risk",
            f"The last snapshot is {_AGE} old, more than the recovery point "
            f"objective of {rpo} for a logical corruption: a restore now would "
            "lose more data than the objective allows.",
            hold=RPO_FOR,
            runbook=runbook,
            labels=labels,
        )
    drill_every = format_duration(alerting.drill_every)
    yield _rule(
        "OdooDrDrillMissing",
        f"{info} unless on(environment, tenant) {m.LAST_DRILL_TIMESTAMP_SECONDS}",
        WARNING,
        f"Tenant {_TENANT} has never been drilled",
        f"No restore drill of the tenant was found; its tier asks for one every "
        f"{drill_every}.",
        hold=DRILL_MISSING_FOR,
        runbook=runbook,
        labels=labels,
    )
    yield _rule(
        "OdooDrDrillOverdue",
        f"{selector(m.LAST_DRILL_AGE_SECONDS, **labels)} > {alerting.drill_every}",
        WARNING,
        f"Restore drill of {_TENANT} overdue",
        f"The last drill is {_AGE} old; the tier asks for one every {drill_every}.",
        runbook=runbook,
        labels=labels,
    )
    yield _rule(
        "OdooDrDrillFailed",
        f"{selector(m.LAST_DRILL_SUCCESS, **labels)} == 0",
        alerting.severity,
        f"Last restore drill of {_TENANT} failed",
        "The last drill of the tenant failed, so its recovery is not proven. "
        "The drill's record, under `drills/` in the repository, names the error "
        "or the failed checks.",
        runbook=runbook,
        labels=labels,
    )
    yield _rule(
        "OdooDrSnapshotMissingFiles",
        f"{selector(m.LAST_SNAPSHOT_MISSING_FILES, **labels)} > 0",
        WARNING,
        f"Last backup of {_TENANT} misses filestore files",
        "The last snapshot lacks {{ $value }} attachment files that the database "
        "refers to; a restore would lack them too.",
        runbook=runbook,
        labels=labels,
    )


def archive_rpo(inventory: Inventory, environment: Environment) -> int | None:
    """Return the RPO, in seconds, that an environment's WAL archive must keep: the
    shortest logical-corruption RPO of its tenants whose tier needs point-in-time
    recovery, else of all its tenants; None when no tenant has one."""
    relying, others = [], []
    for tenant in environment.tenants:
        objective = inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
        if objective is None:
            continue
        needs_pitr = inventory.tier(tenant.tier).needs_pitr
        (relying if needs_pitr else others).append(objective.rpo)
    candidates = relying or others
    return min(candidates) if candidates else None


def pitr_rules(inventory: Inventory, environment: Environment) -> Iterator[dict]:
    """Yield the rules of an environment's pgBackRest stanza, if it names one."""
    stanza = environment.evidence.pgbackrest_stanza
    if stanza is None:
        return
    labels = {"environment": environment.name, "stanza": stanza}
    runbook = next(iter(environment.runbooks), None)
    subject = "stanza {{ $labels.stanza }} of {{ $labels.environment }}"
    rpo = archive_rpo(inventory, environment)
    if rpo is not None:
        yield _rule(
            "OdooDrPitrArchiveStale",
            f"{selector(m.PITR_ARCHIVE_AGE_SECONDS, **labels)} > {rpo}",
            CRITICAL,
            f"WAL archive of {subject} is behind the RPO",
            f"The newest archived WAL is {_AGE} old, more than the shortest "
            f"recovery point objective of the environment's tenants, "
            f"{format_duration(rpo)}.",
            runbook=runbook,
            labels=labels,
        )
    yield _rule(
        "OdooDrPitrWalGap",
        f"{selector(m.PITR_WAL_GAP, **labels)} == 1",
        CRITICAL,
        f"WAL chain of {subject} has a gap",
        "A WAL segment is missing from the archive: point-in-time recovery cannot "
        "pass the gap. Run `odoo-dr pitr status` and take a full backup.",
        hold=WAL_GAP_FOR,
        runbook=runbook,
        labels=labels,
    )


def server_rules(status_max_age: int) -> list[dict]:
    """Return the rules about repositories and the `odoo-dr serve` process."""
    max_age = format_duration(status_max_age)
    return [
        _rule(
            "OdooDrRepositoryUnreadable",
            f"{m.REPOSITORY_UP} == 0",
            CRITICAL,
            "Repository {{ $labels.repository }} is unreadable",
            "odoo-dr serve cannot read the repository, so none of its backups is "
            "known to be restorable. `odoo-dr snapshots --repo "
            "{{ $labels.repository }}` prints the error.",
            hold=REPOSITORY_DOWN_FOR,
        ),
        _rule(
            "OdooDrRepositoryDamagedDocuments",
            f"{m.REPOSITORY_DAMAGED_DOCUMENTS} > 0",
            WARNING,
            "Repository {{ $labels.repository }} has damaged documents",
            "{{ $value }} snapshot manifests or drill records of the repository "
            "cannot be read, so their snapshots and drills are left out of the "
            "status. `/api/repositories` lists them with the error.",
        ),
        _rule(
            "OdooDrStatusStale",
            f"time() - {m.STATUS_REFRESH_TIMESTAMP_SECONDS} > {status_max_age}",
            CRITICAL,
            "odoo-dr serve has not refreshed its status",
            f"The last refresh finished {_AGE} ago, more than {max_age}: the "
            "backup and drill alerts rest on old data. Read the server's log.",
        ),
        _rule(
            "OdooDrStatusAbsent",
            f"absent({m.STATUS_REFRESH_TIMESTAMP_SECONDS})",
            CRITICAL,
            "odoo-dr serve is not scraped",
            "Prometheus has no metrics of odoo-dr serve, so no backup or drill "
            "alert can fire. Check that the server runs and that Prometheus "
            "scrapes it.",
            hold=STATUS_ABSENT_FOR,
        ),
    ]


def _check_unique_names(inventory: Inventory) -> None:
    seen_environments: set[str] = set()
    for environment in inventory.environments:
        if environment.name in seen_environments:
            raise RejectedError(
                f"environment {environment.name!r} appears twice in the inventory",
                hint="give each environment its own name",
            )
        seen_environments.add(environment.name)
        seen_tenants: set[str] = set()
        for tenant in environment.tenants:
            if tenant.name in seen_tenants:
                raise RejectedError(
                    f"tenant {tenant.name!r} appears twice in environment "
                    f"{environment.name!r}",
                    hint="list each tenant once per environment",
                )
            seen_tenants.add(tenant.name)


def build_rules(
    inventory: Inventory, status_max_age: int = DEFAULT_STATUS_MAX_AGE
) -> dict:
    """Return the rule file's document: `{"groups": [...]}`."""
    _check_unique_names(inventory)
    groups = [{"name": SERVER_GROUP, "rules": server_rules(status_max_age)}]
    for environment in sorted(inventory.environments, key=lambda env: env.name):
        rules: list[dict] = []
        for tenant in sorted(environment.tenants, key=lambda tenant: tenant.name):
            rules.extend(tenant_rules(tenant_alerting(inventory, environment, tenant)))
        rules.extend(pitr_rules(inventory, environment))
        if rules:
            groups.append(
                {"name": ENVIRONMENT_GROUP_PREFIX + environment.name, "rules": rules}
            )
    return {"groups": groups}


def tenants_without_rpo_rule(inventory: Inventory) -> list[tuple[str, str]]:
    """Return the (environment, tenant) pairs whose RPO no rule watches: their tier
    needs point-in-time recovery, but their environment names no pgBackRest stanza,
    so the WAL archive's age is not among the metrics."""
    found = []
    for environment in sorted(inventory.environments, key=lambda env: env.name):
        if environment.evidence.pgbackrest_stanza is not None:
            continue
        for tenant in sorted(environment.tenants, key=lambda tenant: tenant.name):
            if inventory.tier(tenant.tier).needs_pitr:
                found.append((environment.name, tenant.name))
    return found


HEADER = """\
# Prometheus alerting rules for the metrics of `odoo-dr serve`, written by
# `odoo-dr alerts render` from the inventory. Render them again after changing
# the inventory's tiers, objectives or schedules, instead of editing this file.
"""


def render_rules(
    inventory: Inventory, status_max_age: int = DEFAULT_STATUS_MAX_AGE
) -> str:
    """Return the rule file as YAML text."""
    body = yaml.safe_dump(
        build_rules(inventory, status_max_age),
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    return HEADER + body
