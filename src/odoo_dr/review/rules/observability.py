"""Observability rules: backup freshness alerts, WAL archive alerts, exporters up."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence.manifests import AlertRule
from odoo_dr.review.inventory import format_duration
from odoo_dr.review.mechanisms import Mechanism
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule
from odoo_dr.review.rules.postgres import pitr_tenants, strictest_rpo


@dataclass(frozen=True)
class MetricFamily:
    """Metrics that carry a backup's last success, and the labels that name the
    object a series is about."""

    patterns: tuple[re.Pattern[str], ...]
    identity: frozenset[str]

    def matches(self, metrics: set[str]) -> bool:
        return any(item.match(metric) for item in self.patterns for metric in metrics)


def _family(labels: str, *patterns: str) -> MetricFamily:
    return MetricFamily(
        tuple(re.compile(item) for item in patterns), frozenset(labels.split())
    )


# By mechanism kind (its first word). An alert on one of these metrics watches
# every mechanism of the kind that its label matchers select.
FRESHNESS_METRICS = {
    "cloudnative-pg": _family(
        "pod cluster", r"^cnpg_collector_last_available_backup_timestamp$"
    ),
    "velero": _family("schedule", r"^velero_backup_last_successful_timestamp$"),
    "k8up": _family("name", r"^k8up_jobs_successful_counter$", r"^k8up_schedules_"),
    "pgbackrest": _family(
        "stanza",
        r"^pgbackrest_backup_since_last_completion_seconds$",
        # pgbackrest_exporter's other `_last_` metrics are sizes, durations and
        # statuses, not times.
        r"^pgbackrest_backup_last_(?!\w*(?:bytes|status|databases|annotations"
        r"|duration))\w+$",
    ),
    "wal-g": _family("instance", r"^walg_last_upload$", r"^walg_backup_timestamp$"),
}
# kube-state-metrics' metrics of a CronJob's last run, for backups run by CronJobs;
# their `job` label is the scrape job, not the backup.
CRONJOB_METRICS = _family(
    "cronjob job_name",
    r"^kube_cronjob_status_last_successful_time$",
    r"^kube_cronjob_status_last_schedule_time$",
    r"^kube_job_status_completion_time$",
)
# Metrics any backup job may publish: the Pushgateway's push time (its `job` label
# is the pushing job), a textfile collector's last-success time. An alert on one
# of them counts only when it names the mechanism.
GENERIC_METRICS = _family(
    "job exported_job name cronjob job_name service container deployment app",
    r"^push_time_seconds$",
    r"^\w*(last_success|last_successful|last_completion)\w*$",
    r"^\w*backup\w*_(timestamp|time)(_seconds)?$",
)
NAMESPACE_LABELS = {"namespace", "exported_namespace"}
ARCHIVE_AGE_METRICS = (
    "pg_stat_archiver_last_archive_age",
    "cnpg_pg_stat_archiver_seconds_since_last_archival",
    "pg_stat_archiver_last_archived_time",
    "pgbackrest_wal_archive",
)
ARCHIVE_FAILURE_METRICS = (
    "pg_stat_archiver_failed_count",
    "cnpg_pg_stat_archiver_failed_count",
)

_PROM_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_PROM_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}
_COMPARISON = re.compile(r"(?:>=|>)\s*(?P<value>[0-9.eE+*/() -]+?)\s*$")
_LABEL = re.compile(r"""(\w+)\s*(!~|=~|!=|=)\s*(?:"([^"]*)"|'([^']*)'|`([^`]*)`)""")
_METRIC = re.compile(r"[A-Za-z_:][\w:]*")
# The names of pods or Jobs an object creates: a StatefulSet's or CloudNativePG's
# `NAME-1`, and a CronJob's Job `NAME-29000000` (the scheduled minute).
_CREATED_SUFFIXES = ("", "-1", "-29000000")
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def prometheus_duration(text: str | None) -> float:
    """Return the seconds of a Prometheus duration such as `1h30m`; 0 if absent."""
    if not text:
        return 0.0
    return sum(int(n) * _PROM_UNITS[unit] for n, unit in _PROM_DURATION.findall(text))


def _arithmetic(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _arithmetic(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](
            _arithmetic(node.left), _arithmetic(node.right)
        )
    raise ValueError("not arithmetic")


def alert_threshold(alert: AlertRule) -> float | None:
    """Return the number an alert's expression compares with `>` at its end, such as
    `90000` in `time() - x > 25 * 3600`; None when it has no such comparison."""
    match = _COMPARISON.search(alert.expr.strip())
    if match is None:
        return None
    try:
        return _arithmetic(ast.parse(match.group("value").strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def alert_delay(alert: AlertRule) -> float | None:
    """Return how long after the last success a freshness alert fires: its
    threshold plus its `for` duration."""
    threshold = alert_threshold(alert)
    if threshold is None:
        return None
    return threshold + prometheus_duration(alert.duration)


def _matchers(alert: AlertRule) -> list[tuple[str, str, str]]:
    """Return the label matchers of an alert's expression: (label, operator,
    value)."""
    found = []
    for label, op, *values in _LABEL.findall(alert.expr):
        value = next((item for item in values if item), "")
        found.append((label, op, value))
    return found


def _selects(op: str, value: str, names: set[str]) -> bool:
    """Return whether a matcher `op value` selects one of `names`, or a pod or Job
    that one of them creates."""
    candidates = {name + suffix for name in names for suffix in _CREATED_SUFFIXES}
    if op in ("=", "!="):
        hit = value in candidates
    else:
        try:
            hit = any(re.fullmatch(value, item) for item in candidates)
        except re.error:
            return False
    return hit if op in ("=", "=~") else not hit


def names_mechanism(
    alert: AlertRule, mechanism: Mechanism, identity_labels: frozenset[str]
) -> bool | None:
    """Return whether the alert selects the mechanism.

    True when a matcher on one of `identity_labels` in its expression (or, without
    one, one of the alert's own labels) names it. False when they name only other
    objects, or when a namespace matcher excludes the mechanism's namespace. None
    when nothing names any object, so the alert watches them all.
    """
    names = mechanism.alert_names
    matchers = _matchers(alert)
    for label, op, value in matchers:
        if label in NAMESPACE_LABELS and mechanism.namespace is not None:
            if not _selects(op, value, {mechanism.namespace}):
                return False
    identity = [item for item in matchers if item[0] in identity_labels]
    if not identity:
        identity = [
            (label, "=", value)
            for label, value in alert.labels.items()
            if label in identity_labels
        ]
    if not identity:
        return None
    excluding = [item for item in identity if item[1] in ("!=", "!~")]
    if any(not _selects(op, value, names) for _, op, value in excluding):
        return False
    selecting = [item for item in identity if item[1] in ("=", "=~")]
    if not selecting:
        return True
    return any(_selects(op, value, names) for _, op, value in selecting)


def freshness_alerts(view: EnvironmentView, mechanism: Mechanism) -> list[AlertRule]:
    """Return the alerts about this mechanism's last successful run: on a metric of
    its kind (or of its CronJob) that no label matcher points elsewhere, or on a
    generic last-success metric whose labels name it."""
    families = [FRESHNESS_METRICS.get(mechanism.kind.split()[0])]
    if mechanism.workload is not None and mechanism.workload.kind == "CronJob":
        families.append(CRONJOB_METRICS)
    found = []
    for alert in view.manifests.alerts:
        metrics = set(_METRIC.findall(alert.expr))
        for family in families:
            if family is None or not family.matches(metrics):
                continue
            if names_mechanism(alert, mechanism, family.identity) is not False:
                found.append(alert)
                break
        else:
            if GENERIC_METRICS.matches(metrics) and names_mechanism(
                alert, mechanism, GENERIC_METRICS.identity
            ):
                found.append(alert)
    return found


@rule(
    "OBS-001",
    Area.OBSERVABILITY,
    Severity.MEDIUM,
    "Each scheduled backup has a freshness alert sized to its schedule",
    "A backup that silently stops running is found only at restore time; an alert "
    "sized for a daily job stays quiet for a day of missed hourly backups.",
    "Alert when the time since the last success exceeds the schedule's interval "
    "plus the job's run time, and less than two intervals.",
    snippet="- alert: OdooBackupStale\n"
    "  expr: time() - kube_cronjob_status_last_successful_time"
    '{cronjob="odoo-backup"} > 3600 * 1.5\n'
    "  for: 10m",
)
def freshness_alerted(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for mechanism in view.mechanisms:
            interval = mechanism.interval
            if interval is None:
                continue
            alerts = freshness_alerts(view, mechanism)
            base = {"environment": view.name, "resource": mechanism.detail}
            sized = [(alert_delay(alert), alert) for alert in alerts]
            sized = [(delay, alert) for delay, alert in sized if delay is not None]
            evidence = [Evidence(mechanism.label, mechanism.location)]
            evidence += [Evidence(f"alert {a.name}", a.location) for a in alerts]
            if not sized:
                yield Outcome(
                    False,
                    f"no freshness alert for {mechanism.kind} "
                    f"(runs every {format_duration(interval)})"
                    + (
                        "; alerts found have no `> threshold`: "
                        + ", ".join(a.name for a in alerts)
                        if alerts
                        else ""
                    ),
                    evidence=tuple(evidence),
                    **base,
                )
                continue
            delay, alert = min(sized, key=lambda item: item[0])
            if delay <= interval:
                passed, verdict = False, "fires between two normal runs"
            elif delay > 2 * interval:
                passed = False
                verdict = f"stays quiet for {delay / interval:.0f} missed runs"
            else:
                passed, verdict = True, "sized to the schedule"
            yield Outcome(
                passed,
                f"alert {alert.name} fires {format_duration(delay)} after the last "
                f"success; {mechanism.kind} runs every {format_duration(interval)}: "
                + verdict,
                evidence=tuple(evidence),
                **base,
            )


@rule(
    "OBS-002",
    Area.OBSERVABILITY,
    Severity.MEDIUM,
    "WAL archive age is alerted on",
    "A hung or failing archive_command stops point-in-time recovery silently until "
    "the disk fills or a restore is needed.",
    "Alert on the age of the last archived WAL segment (postgres_exporter's "
    "pg_stat_archiver metrics or CloudNativePG's) with a threshold below the RPO.",
    snippet="- alert: WalArchiveStale\n"
    "  expr: pg_stat_archiver_last_archive_age > 600\n"
    "  for: 5m",
)
def archive_age_alerted(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        wal = view.covering("wal")
        if not wal:
            continue
        base = {"environment": view.name, "resource": "wal-archiver"}
        age_alerts = [
            a
            for a in view.manifests.alerts
            if any(m in a.expr for m in ARCHIVE_AGE_METRICS)
        ]
        failure_alerts = [
            a
            for a in view.manifests.alerts
            if any(m in a.expr for m in ARCHIVE_FAILURE_METRICS)
        ]
        if not age_alerts:
            yield Outcome(
                False,
                "no alert on the WAL archive's age"
                + (
                    " (only on failures: "
                    + ", ".join(a.name for a in failure_alerts)
                    + "; a hung archive_command does not count as a failure)"
                    if failure_alerts
                    else ""
                ),
                evidence=tuple(Evidence(m.label, m.location) for m in wal),
                **base,
            )
            continue
        rpo = strictest_rpo(
            context, pitr_tenants(context, view) or view.environment.tenants
        )
        alert = age_alerts[0]
        delay = alert_delay(alert)
        if delay is not None and rpo is not None and delay > rpo:
            yield Outcome(
                False,
                f"alert {alert.name} fires {format_duration(delay)} after the last "
                f"archived segment, later than the RPO of {format_duration(rpo)}",
                evidence=(Evidence(f"alert {alert.name}", alert.location),),
                **base,
            )
            continue
        yield Outcome(
            True,
            f"alert {alert.name} watches the WAL archive's age"
            + (f" (fires after {format_duration(delay)})" if delay is not None else ""),
            evidence=(Evidence(f"alert {alert.name}", alert.location),),
            **base,
        )


_UP_PATTERNS = {
    "postgresql": (
        re.compile(r"\bpg_up\b"),
        re.compile(r"\bcnpg_collector_up\b"),
        re.compile(r"\bup\s*\{[^}]*(postgres|pg|cnpg)[^}]*\}"),
    ),
    "redis": (
        re.compile(r"\bredis_up\b"),
        re.compile(r"\bup\s*\{[^}]*redis[^}]*\}"),
    ),
}


def _components(view: EnvironmentView) -> list[str]:
    """Return the components whose exporters should be alerted on: those the
    evidence shows, directly or by an exporter that watches one (a managed
    database outside the manifests, say)."""
    exported = {item for workload in view.workloads for item in workload.exporters}
    found = []
    if (
        view.live.postgres is not None
        or view.postgres
        or view.manifests.of_kind("Cluster", group="postgresql.cnpg.io")
        or "postgresql" in exported
    ):
        found.append("postgresql")
    if view.live.redis is not None or view.redis or "redis" in exported:
        found.append("redis")
    return found


@rule(
    "OBS-003",
    Area.OBSERVABILITY,
    Severity.LOW,
    "PostgreSQL and Redis exporters are alerted on when down",
    "When an exporter is down, every alert built on its metrics goes quiet, "
    "including the backup and archive alerts.",
    "Alert on `up == 0` (or `pg_up == 0`, `redis_up == 0`) for each exporter job.",
    snippet='- alert: ExporterDown\n  expr: up{job=~"postgres-exporter|redis-exporter"}'
    " == 0\n  for: 5m",
)
def exporters_alerted(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for component in _components(view):
            alerts = [
                alert
                for alert in view.manifests.alerts
                if any(p.search(alert.expr) for p in _UP_PATTERNS[component])
            ]
            yield Outcome(
                bool(alerts),
                f"{component} exporter alerted on by "
                + ", ".join(a.name for a in alerts)
                if alerts
                else f"no alert fires when the {component} exporter is down",
                environment=view.name,
                resource=f"{component}-exporter",
                evidence=tuple(Evidence(f"alert {a.name}", a.location) for a in alerts),
            )
