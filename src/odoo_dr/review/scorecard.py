"""The resilience scorecard, one line per environment and criticality tier.

The method follows the resilience score of AWS Resilience Hub: a score out of 100
made of weighted parts, each a share between 0 and 1.

| part            | weight | share                                                  |
|-----------------|-------:|--------------------------------------------------------|
| compliance      |     40 | severity-weighted share of passed checks, every area   |
|                 |        | except observability                                   |
| tested recovery |     30 | share of the tier's tenants whose latest odoo-dr drill |
|                 |        | passed and finished inside the tier's `drill_every`    |
|                 |        | window before the review                               |
| alarms          |     15 | severity-weighted share of passed observability checks |
| runbooks        |     15 | share of the tier's tenants with a runbook (their own  |
|                 |        | or one of the environment's)                           |

A check is one finding. Severity weights: critical 10, high 5, medium 3, low 1,
info 0. Suppressed findings are left out of the shares and counted as excluded;
failed unsuppressed findings are counted as outstanding. Checks that were not
evaluated, because the evidence they need was not read, are left out of the shares
and counted apart. A part with nothing to
measure (no check applies, no drill record was read) scores 0 and is listed as
unmeasured, because missing evidence earns no points. A line counts the findings of
its environment (and those of no environment) that concern one of its tenants or no
tenant. Grades: A from 90, B from 75, C from 60, D from 40, else F.

Declared objectives are each tenant's logical-corruption RTO and RPO (its own, else
its tier's), because logical corruption is recovered by a restore from backup, which
is what an odoo-dr drill measures. The measured RTO is the latest passing drill's. The
measured RPO is the data at risk at review time: the time since the latest odoo-dr
snapshot of the tenant, or since the last WAL segment the live PostgreSQL archived
when WAL archiving is configured, whichever is shorter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.inventory import DEFAULT_TIERS, Disruption, Tenant
from odoo_dr.review.mechanisms import WAL
from odoo_dr.review.model import Area, Finding, Severity

WEIGHTS = {"compliance": 40, "tested_recovery": 30, "alarms": 15, "runbooks": 15}
PART_LABELS = {
    "compliance": "compliance",
    "tested_recovery": "tested recovery",
    "alarms": "alarms",
    "runbooks": "runbooks",
}
SEVERITY_WEIGHT = {
    Severity.CRITICAL: 10,
    Severity.HIGH: 5,
    Severity.MEDIUM: 3,
    Severity.LOW: 1,
    Severity.INFO: 0,
}
GRADES = ((90, "A"), (75, "B"), (60, "C"), (40, "D"))
# The disruption whose declared objectives are set beside the drills' measurements.
MEASURED_DISRUPTION = Disruption.LOGICAL_CORRUPTION


@dataclass
class TenantObjectives:
    """A tenant's declared objectives beside what the evidence measured (seconds)."""

    tenant: str
    tier: str
    declared_rto: int | None
    declared_rpo: int | None
    measured_rto: float | None
    measured_rpo: float | None
    rpo_source: str | None
    last_drill: datetime | None
    last_drill_passed: bool | None
    drill_in_window: bool
    # The tier's drill_every: how long a passing drill counts as tested recovery.
    drill_window: int

    @property
    def rto_met(self) -> bool | None:
        if self.declared_rto is None or self.measured_rto is None:
            return None
        return self.measured_rto <= self.declared_rto

    @property
    def rpo_met(self) -> bool | None:
        if self.declared_rpo is None or self.measured_rpo is None:
            return None
        return self.measured_rpo <= self.declared_rpo


@dataclass
class ScoreLine:
    environment: str
    tier: str
    score: float
    # Percent (0-100) reached in each part of WEIGHTS.
    parts: dict[str, float]
    outstanding: int
    excluded: int
    passed: int
    # Checks not evaluated because their evidence was not read: neither passed
    # nor failed, and left out of the shares.
    not_evaluated: int = 0
    outstanding_by_severity: dict[str, int] = field(default_factory=dict)
    unmeasured: list[str] = field(default_factory=list)
    tenants: list[TenantObjectives] = field(default_factory=list)

    @property
    def grade(self) -> str:
        for floor, grade in GRADES:
            if self.score >= floor:
                return grade
        return "F"

    def points(self, part: str) -> float:
        """Return the points `part` adds to the score (out of its weight)."""
        return WEIGHTS[part] * self.parts[part] / 100


def weighted_share(findings: list[Finding]) -> float | None:
    """Return the severity-weighted share of passed findings among the evaluated,
    unsuppressed ones, or None when no such finding has weight."""
    counted = [
        item for item in findings if item.suppressed_by is None and item.evaluated
    ]
    total = sum(SEVERITY_WEIGHT[item.severity] for item in counted)
    if total == 0:
        return None
    passed = sum(SEVERITY_WEIGHT[item.severity] for item in counted if item.passed)
    return passed / total


def _measured_rpo(
    context: ReviewContext, view: EnvironmentView, tenant: Tenant
) -> tuple[float | None, str | None]:
    candidates: list[tuple[float, str]] = []
    repository = view.live.repository
    if repository is not None:
        snapshots = [
            item for item in repository.snapshots if item.tenant == tenant.name
        ]
        latest = max(snapshots, key=lambda item: item.snapshot_time, default=None)
        if latest is not None:
            age = (context.now - latest.snapshot_time).total_seconds()
            candidates.append((max(age, 0.0), "odoo-dr snapshot"))
    postgres = view.live.postgres
    if postgres is not None and view.covering(WAL):
        archived = postgres.archiver.get("last_archived_time")
        if archived is not None:
            age = (postgres.collected_at - archived).total_seconds()
            candidates.append((max(age, 0.0), "WAL archive"))
    if not candidates:
        return None, None
    return min(candidates)


def tenant_objectives(
    context: ReviewContext, view: EnvironmentView, tenant: Tenant
) -> TenantObjectives:
    """Set the tenant's declared objectives beside its drills and latest backup."""
    declared = context.inventory.objective(tenant, MEASURED_DISRUPTION)

    repository = view.live.repository
    drills = []
    if repository is not None:
        drills = [item for item in repository.drills if item.tenant == tenant.name]
    latest = max(drills, key=lambda item: item.finished_at, default=None)
    passing = [item for item in drills if item.passed]
    last_passing = max(passing, key=lambda item: item.finished_at, default=None)

    window = context.tier(tenant).drill_every
    # A drill that failed after a passing one means recovery is broken now, so only
    # a passing latest drill inside the window counts as tested recovery.
    in_window = (
        latest is not None
        and latest.passed
        and (context.now - latest.finished_at).total_seconds() <= window
    )

    measured_rpo, rpo_source = _measured_rpo(context, view, tenant)
    return TenantObjectives(
        tenant=tenant.name,
        tier=tenant.tier,
        declared_rto=declared.rto if declared else None,
        declared_rpo=declared.rpo if declared else None,
        measured_rto=last_passing.rto_seconds if last_passing else None,
        measured_rpo=measured_rpo,
        rpo_source=rpo_source,
        last_drill=latest.finished_at if latest else None,
        last_drill_passed=latest.passed if latest else None,
        drill_in_window=in_window,
        drill_window=window,
    )


def _relevant(
    findings: list[Finding], environment: str, tenants: set[str]
) -> list[Finding]:
    return [
        item
        for item in findings
        if item.outcome.environment in (None, environment)
        and (item.outcome.tenant is None or item.outcome.tenant in tenants)
    ]


def score_line(
    context: ReviewContext,
    view: EnvironmentView,
    tier: str,
    tenants: list[Tenant],
    findings: list[Finding],
) -> ScoreLine:
    """Score one environment's tenants of one tier."""
    relevant = _relevant(findings, view.name, {tenant.name for tenant in tenants})
    objectives = [tenant_objectives(context, view, tenant) for tenant in tenants]
    shares: dict[str, float | None] = {
        "compliance": weighted_share(
            [item for item in relevant if item.rule.area != Area.OBSERVABILITY]
        ),
        "tested_recovery": None,
        "alarms": weighted_share(
            [item for item in relevant if item.rule.area == Area.OBSERVABILITY]
        ),
        "runbooks": None,
    }
    # Without a repository there are no drill records to count, which is not the
    # same as tenants that were never drilled.
    if objectives and view.live.repository is not None:
        shares["tested_recovery"] = sum(
            item.drill_in_window for item in objectives
        ) / len(objectives)
    if tenants:
        shares["runbooks"] = sum(
            bool(tenant.runbook or view.environment.runbooks) for tenant in tenants
        ) / len(tenants)

    unmeasured = [name for name, share in shares.items() if share is None]
    parts = {name: round((share or 0.0) * 100, 1) for name, share in shares.items()}
    score = sum(WEIGHTS[name] * (share or 0.0) for name, share in shares.items())
    outstanding = [
        item for item in relevant if item.failed and item.suppressed_by is None
    ]

    return ScoreLine(
        environment=view.name,
        tier=tier,
        score=round(score, 1),
        parts=parts,
        outstanding=len(outstanding),
        excluded=sum(1 for item in relevant if item.suppressed_by is not None),
        passed=sum(1 for item in relevant if item.passed),
        not_evaluated=sum(1 for item in relevant if not item.evaluated),
        outstanding_by_severity={
            level.label: sum(1 for item in outstanding if item.severity == level)
            for level in reversed(Severity)
        },
        unmeasured=unmeasured,
        tenants=objectives,
    )


def build_scorecard(context: ReviewContext, findings: list[Finding]) -> list[ScoreLine]:
    """Score every environment once per tier of its tenants.

    Tiers come in the order the inventory defines them, then the default tiers from
    the strictest. An environment without tenants gets one line, with tier `none`.
    """
    order = list(dict.fromkeys([*context.inventory.tiers, *DEFAULT_TIERS]))
    lines = []
    for view in context.environments:
        tenants = view.environment.tenants
        tiers = sorted({tenant.tier for tenant in tenants}, key=order.index) or ["none"]
        for tier in tiers:
            members = [tenant for tenant in tenants if tenant.tier == tier]
            lines.append(score_line(context, view, tier, members, findings))
    return lines
