"""The status `odoo-dr serve` shows: per tenant, repository and environment, the
state of backups, drills and objectives at one moment.

Times are UTC; durations and ages are seconds; sizes are bytes. An age is measured
at `FleetStatus.generated_at`; the metrics recompute ages at scrape time from the
timestamps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SnapshotPoint(BaseModel):
    """One snapshot of a tenant, for the charts of backup age and growth."""

    id: str
    snapshot_time: datetime
    size_bytes: int = Field(description="dump bytes plus referenced filestore bytes")
    new_bytes: int = Field(description="compressed bytes this backup added")
    missing_files: int


class DrillPoint(BaseModel):
    """One drill of a tenant, for the chart of measured RTO over time."""

    id: str
    finished_at: datetime
    passed: bool
    kind: Literal["snapshot", "pitr"] = "snapshot"
    rto_seconds: float
    rpo_seconds: float


class TenantStatus(BaseModel):
    environment: str | None = Field(
        description="None for a tenant found in a repository but not in the inventory"
    )
    tenant: str
    tier: str | None
    repository: str = Field(description="repository location, without credentials")
    # Intervals of the tenant's schedule, seconds (see review.inventory.Schedule).
    backup_interval_seconds: int | None = None
    drill_interval_seconds: int | None = None
    # Logical-corruption objectives, seconds.
    objective_rto_seconds: int | None = None
    objective_rpo_seconds: int | None = None
    snapshots: int = 0
    last_snapshot: SnapshotPoint | None = None
    last_drill: DrillPoint | None = None
    last_passing_drill: DrillPoint | None = None
    history: list[SnapshotPoint] = Field(
        default_factory=list, description="snapshots, oldest first"
    )
    drills: list[DrillPoint] = Field(
        default_factory=list, description="drills, oldest first"
    )
    # Each None when nothing measures it yet.
    backup_fresh: bool | None = Field(
        default=None, description="last snapshot younger than the backup interval"
    )
    rpo_met: bool | None = Field(
        default=None, description="last snapshot (or WAL archive) younger than the RPO"
    )
    rto_met: bool | None = Field(
        default=None, description="last passing drill's RTO inside the objective"
    )
    drill_current: bool | None = Field(
        default=None, description="a passing drill inside the tier's drill_every"
    )
    met_since: datetime | None = Field(
        default=None,
        description="since when every objective above has been met (or, when one "
        "is not, since when it has not)",
    )


class DamagedDocument(BaseModel):
    key: str = Field(description="the key in the repository, such as snapshots/ID.json")
    error: str = Field(description="why it could not be read")


class RepositoryStatus(BaseModel):
    location: str = Field(description="without credentials")
    snapshots: int
    tenants: int
    stored_bytes: int = Field(description="bytes of packs in the repository")
    logical_bytes: int = Field(description="sum of the snapshots' sizes")
    dedup_ratio: float | None = Field(description="logical bytes / stored bytes")
    growth: list[tuple[datetime, int]] = Field(
        default_factory=list,
        description="(snapshot time, cumulative new bytes) for the growth chart",
    )
    error: str | None = Field(
        default=None, description="why the repository could not be read"
    )
    damaged: list[DamagedDocument] = Field(
        default_factory=list,
        description="snapshot manifests and drill records that could not be read, "
        "so their snapshots and drills are left out of the status",
    )


class PitrStatus(BaseModel):
    environment: str | None = Field(
        default=None, description="the environment whose inventory names the stanza"
    )
    stanza: str
    window_start: datetime | None
    window_end: datetime | None
    archive_age_seconds: float | None
    last_archived_at: datetime | None = Field(
        default=None,
        description="when PostgreSQL last archived a WAL segment (pg_stat_archiver)",
    )
    gap: bool
    error: str | None = None


class ScoreStatus(BaseModel):
    """One line of the review's scorecard."""

    environment: str
    tier: str
    score: float
    grade: str
    objectives_met: bool | None = Field(
        description="every tenant of the line meets RTO, RPO and drill window"
    )
    met_since: datetime | None = None


class FleetStatus(BaseModel):
    platform: str
    generated_at: datetime
    refresh_seconds: float = Field(description="time the last refresh took")
    tenants: list[TenantStatus]
    repositories: list[RepositoryStatus]
    pitr: list[PitrStatus] = Field(default_factory=list)
    scorecard: list[ScoreStatus] = Field(default_factory=list)
    reviewed_at: datetime | None = None
    errors: list[str] = Field(default_factory=list)
