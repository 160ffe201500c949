"""The Prometheus metrics of `odoo-dr serve`, made from the collector's FleetStatus.

Alert rules and Grafana dashboards use these names; docs/serve.md lists them.
Every age is recomputed at scrape time from its timestamp, so it keeps growing
between refreshes. A gauge with nothing to measure is left out rather than set
to 0.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from odoo_dr.status.collect import StatusCollector
from odoo_dr.status.model import FleetStatus, TenantStatus

TENANT_LABELS = ["environment", "tenant", "tier"]
REPOSITORY_LABELS = ["repository"]
PITR_LABELS = ["environment", "stanza"]
SCORE_LABELS = ["environment", "tier"]
OBJECTIVES = ("backup_fresh", "rpo", "rto", "drill")


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def _tenant_labels(tenant: TenantStatus) -> list[str]:
    return [tenant.environment or "", tenant.tenant, tenant.tier or ""]


def _tenant_metrics(status: FleetStatus) -> Iterator[Metric]:
    info = _gauge(
        "odoo_dr_tenant_info",
        "A tenant and the repository holding its snapshots (always 1).",
        [*TENANT_LABELS, "repository"],
    )
    family = {
        name: _gauge(name, documentation, TENANT_LABELS)
        for name, documentation in (
            (
                "odoo_dr_last_snapshot_timestamp_seconds",
                "Time of the database snapshot of the tenant's latest backup.",
            ),
            (
                "odoo_dr_last_snapshot_size_bytes",
                "Dump bytes plus referenced filestore bytes of the latest snapshot.",
            ),
            (
                "odoo_dr_last_snapshot_new_bytes",
                "Compressed bytes the latest backup added to the repository.",
            ),
            (
                "odoo_dr_last_snapshot_missing_files",
                "Attachments whose file was missing or damaged in the latest backup.",
            ),
            ("odoo_dr_snapshots", "Snapshots of the tenant in its repository."),
            (
                "odoo_dr_backup_interval_seconds",
                "Time between backups in the tenant's schedule.",
            ),
            (
                "odoo_dr_drill_interval_seconds",
                "How long a passing drill counts as tested recovery (drill_every).",
            ),
            (
                "odoo_dr_objective_rto_seconds",
                "Recovery time objective for logical corruption.",
            ),
            (
                "odoo_dr_objective_rpo_seconds",
                "Recovery point objective for logical corruption.",
            ),
            (
                "odoo_dr_last_drill_timestamp_seconds",
                "End time of the tenant's latest drill.",
            ),
            (
                "odoo_dr_last_drill_success",
                "1 when the tenant's latest drill passed, 0 when it failed.",
            ),
            ("odoo_dr_last_drill_rto_seconds", "RTO measured by the latest drill."),
            ("odoo_dr_last_drill_rpo_seconds", "RPO measured by the latest drill."),
        )
    }
    met = _gauge(
        "odoo_dr_objective_met",
        "1 when the tenant meets the objective, 0 when not; absent when nothing "
        "measures it.",
        [*TENANT_LABELS, "objective"],
    )

    def add(name: str, labels: list[str], value: float | None) -> None:
        if value is not None:
            family[name].add_metric(labels, float(value))

    for tenant in status.tenants:
        labels = _tenant_labels(tenant)
        info.add_metric([*labels, tenant.repository], 1.0)
        snapshot = tenant.last_snapshot
        if snapshot is not None:
            taken = _timestamp(snapshot.snapshot_time)
            add("odoo_dr_last_snapshot_timestamp_seconds", labels, taken)
            add("odoo_dr_last_snapshot_size_bytes", labels, snapshot.size_bytes)
            add("odoo_dr_last_snapshot_new_bytes", labels, snapshot.new_bytes)
            add("odoo_dr_last_snapshot_missing_files", labels, snapshot.missing_files)
        add("odoo_dr_snapshots", labels, tenant.snapshots)
        add("odoo_dr_backup_interval_seconds", labels, tenant.backup_interval_seconds)
        add("odoo_dr_drill_interval_seconds", labels, tenant.drill_interval_seconds)
        add("odoo_dr_objective_rto_seconds", labels, tenant.objective_rto_seconds)
        add("odoo_dr_objective_rpo_seconds", labels, tenant.objective_rpo_seconds)
        drill = tenant.last_drill
        if drill is not None:
            finished = _timestamp(drill.finished_at)
            add("odoo_dr_last_drill_timestamp_seconds", labels, finished)
            add("odoo_dr_last_drill_success", labels, 1.0 if drill.passed else 0.0)
            add("odoo_dr_last_drill_rto_seconds", labels, drill.rto_seconds)
            add("odoo_dr_last_drill_rpo_seconds", labels, drill.rpo_seconds)
        for objective, value in zip(
            OBJECTIVES,
            (tenant.backup_fresh, tenant.rpo_met, tenant.rto_met, tenant.drill_current),
            strict=True,
        ):
            if value is not None:
                met.add_metric([*labels, objective], 1.0 if value else 0.0)
    yield info
    yield from family.values()
    yield met


def _tenant_age_metrics(status: FleetStatus, now: float) -> Iterator[Metric]:
    snapshot_age = _gauge(
        "odoo_dr_last_snapshot_age_seconds",
        "Seconds since the tenant's latest snapshot, at scrape time.",
        TENANT_LABELS,
    )
    drill_age = _gauge(
        "odoo_dr_last_drill_age_seconds",
        "Seconds since the tenant's latest drill ended, at scrape time.",
        TENANT_LABELS,
    )
    for tenant in status.tenants:
        labels = _tenant_labels(tenant)
        if tenant.last_snapshot is not None:
            taken = _timestamp(tenant.last_snapshot.snapshot_time)
            snapshot_age.add_metric(labels, max(now - taken, 0.0))
        if tenant.last_drill is not None:
            finished = _timestamp(tenant.last_drill.finished_at)
            drill_age.add_metric(labels, max(now - finished, 0.0))
    yield snapshot_age
    yield drill_age


def _repository_metrics(status: FleetStatus) -> Iterator[Metric]:
    up = _gauge(
        "odoo_dr_repository_up",
        "1 when the last refresh read the repository, 0 when it failed.",
        REPOSITORY_LABELS,
    )
    stored = _gauge(
        "odoo_dr_repository_stored_bytes",
        "Bytes of the repository's pack files.",
        REPOSITORY_LABELS,
    )
    logical = _gauge(
        "odoo_dr_repository_logical_bytes",
        "Sum of the sizes of the repository's snapshots.",
        REPOSITORY_LABELS,
    )
    ratio = _gauge(
        "odoo_dr_repository_dedup_ratio",
        "Logical bytes divided by stored bytes.",
        REPOSITORY_LABELS,
    )
    snapshots = _gauge(
        "odoo_dr_repository_snapshots",
        "Snapshots in the repository.",
        REPOSITORY_LABELS,
    )
    damaged = _gauge(
        "odoo_dr_repository_damaged_documents",
        "Snapshot manifests and drill records that could not be read.",
        REPOSITORY_LABELS,
    )
    for repository in status.repositories:
        labels = [repository.location]
        up.add_metric(labels, 0.0 if repository.error else 1.0)
        if repository.error:
            continue
        damaged.add_metric(labels, float(len(repository.damaged)))
        stored.add_metric(labels, float(repository.stored_bytes))
        logical.add_metric(labels, float(repository.logical_bytes))
        if repository.dedup_ratio is not None:
            ratio.add_metric(labels, repository.dedup_ratio)
        snapshots.add_metric(labels, float(repository.snapshots))
    yield from (up, stored, logical, ratio, snapshots, damaged)


def _pitr_metrics(status: FleetStatus) -> Iterator[Metric]:
    start = _gauge(
        "odoo_dr_pitr_window_start_timestamp_seconds",
        "Earliest time the stanza can recover to.",
        PITR_LABELS,
    )
    end = _gauge(
        "odoo_dr_pitr_window_end_timestamp_seconds",
        "Latest time the stanza can recover to.",
        PITR_LABELS,
    )
    gap = _gauge(
        "odoo_dr_pitr_wal_gap",
        "1 when the WAL chain after the newest base backup has a gap.",
        PITR_LABELS,
    )
    for item in status.pitr:
        if item.error:
            continue
        labels = [item.environment or "", item.stanza]
        if item.window_start is not None:
            start.add_metric(labels, _timestamp(item.window_start))
        if item.window_end is not None:
            end.add_metric(labels, _timestamp(item.window_end))
        gap.add_metric(labels, 1.0 if item.gap else 0.0)
    yield from (start, end, gap)


def _pitr_age_metrics(status: FleetStatus, now: float) -> Iterator[Metric]:
    age = _gauge(
        "odoo_dr_pitr_archive_age_seconds",
        "Seconds since PostgreSQL last archived a WAL segment, at scrape time.",
        PITR_LABELS,
    )
    generated = _timestamp(status.generated_at)
    for item in status.pitr:
        if item.error:
            continue
        labels = [item.environment or "", item.stanza]
        if item.last_archived_at is not None:
            age.add_metric(labels, max(now - _timestamp(item.last_archived_at), 0.0))
        elif item.archive_age_seconds is not None:
            age.add_metric(labels, item.archive_age_seconds + max(now - generated, 0))
    yield age


def _review_metrics(status: FleetStatus) -> Iterator[Metric]:
    score = _gauge(
        "odoo_dr_review_score",
        "Resilience score (0 to 100) of the review's scorecard line.",
        SCORE_LABELS,
    )
    met = _gauge(
        "odoo_dr_review_objectives_met",
        "1 when every tenant of the line meets RTO, RPO and drill window, else 0.",
        SCORE_LABELS,
    )
    for line in status.scorecard:
        labels = [line.environment, line.tier]
        score.add_metric(labels, line.score)
        if line.objectives_met is not None:
            met.add_metric(labels, 1.0 if line.objectives_met else 0.0)
    yield score
    yield met
    if status.reviewed_at is not None:
        reviewed = _gauge(
            "odoo_dr_review_timestamp_seconds", "Time of the last review.", []
        )
        reviewed.add_metric([], _timestamp(status.reviewed_at))
        yield reviewed


def _server_metrics(
    collector: StatusCollector, status: FleetStatus
) -> Iterator[Metric]:
    refreshed = _gauge(
        "odoo_dr_status_refresh_timestamp_seconds",
        "Time of the last status refresh.",
        [],
    )
    refreshed.add_metric([], _timestamp(status.generated_at))
    yield refreshed
    duration = _gauge(
        "odoo_dr_status_refresh_duration_seconds",
        "Seconds the last status refresh took.",
        [],
    )
    duration.add_metric([], status.refresh_seconds)
    yield duration
    errors = CounterMetricFamily(
        "odoo_dr_status_refresh_errors",
        "Errors met by status refreshes since the server started.",
    )
    errors.add_metric([], float(collector.refresh_errors_total))
    yield errors


class _Families:
    """The `collect()` that prometheus-client's `generate_latest` calls."""

    def __init__(self, families: Iterator[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return self.families


class MetricsRenderer:
    """Render the fleet's metrics in the Prometheus text exposition format.

    The families that only change with a refresh are rendered once per status,
    and the ages and the server's own figures at every scrape, because rendering
    every family of a large fleet costs far more than a scrape should.
    """

    def __init__(self, collector: StatusCollector) -> None:
        self.collector = collector
        self._lock = threading.Lock()
        self._cached: tuple[FleetStatus, bytes] | None = None

    def _static(self, status: FleetStatus) -> bytes:
        with self._lock:
            if self._cached is None or self._cached[0] is not status:
                families = _Families(
                    itertools.chain(
                        _tenant_metrics(status),
                        _repository_metrics(status),
                        _pitr_metrics(status),
                        _review_metrics(status),
                    )
                )
                self._cached = (status, generate_latest(families))
            return self._cached[1]

    def render(self) -> bytes:
        status = self.collector.status
        now = datetime.now(UTC).timestamp()
        scraped = _Families(
            itertools.chain(
                _tenant_age_metrics(status, now),
                _pitr_age_metrics(status, now),
                _server_metrics(self.collector, status),
            )
        )
        return self._static(status) + generate_latest(scraped)
