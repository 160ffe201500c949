"""The resilience scorecard, per environment and tier.

Scored in the manner of AWS Resilience Hub: a score out of 100 made of compliance
with the rules (40 points), tested recovery (30: tenants whose last passing drill is
inside their tier's window), alarms (15: the observability rules) and runbooks (15:
tenants with a runbook). Declared objectives are shown beside the measured ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.inventory import Disruption, Tenant
from odoo_dr.review.model import Area, Finding, Severity

WEIGHTS = {"compliance": 40, "tested_recovery": 30, "alarms": 15, "runbooks": 15}
SEVERITY_WEIGHT = {
    Severity.CRITICAL: 10,
    Severity.HIGH: 5,
    Severity.MEDIUM: 3,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


@dataclass
class TenantObjectives:
    tenant: str
    declared_rto: int | None
    declared_rpo: int | None
    measured_rto: float | None
    measured_rpo: float | None
    last_drill: datetime | None
    drill_in_window: bool


@dataclass
class ScoreLine:
    environment: str
    tier: str
    score: float
    parts: dict[str, float]
    outstanding: int
    excluded: int
    passed: int
    tenants: list[TenantObjectives] = field(default_factory=list)

    @property
    def grade(self) -> str:
        for floor, grade in ((90, "A"), (75, "B"), (60, "C"), (40, "D")):
            if self.score >= floor:
                return grade
        return "F"


def _weighted(findings: list[Finding]) -> float | None:
    counted = [item for item in findings if item.suppressed_by is None]
    total = sum(SEVERITY_WEIGHT[item.severity] for item in counted)
    if total == 0:
        return None
    passed = sum(SEVERITY_WEIGHT[item.severity] for item in counted if item.passed)
    return passed / total


def _objectives(
    context: ReviewContext, view: EnvironmentView, tenant: Tenant
) -> TenantObjectives:
    declared = context.inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
    repository = view.live.repository
    drills = []
    snapshots = []
    if repository is not None:
        drills = [item for item in repository.drills if item.tenant == tenant.name]
        snapshots = [
            item for item in repository.snapshots if item.tenant == tenant.name
        ]
    passing = [item for item in drills if item.passed]
    last = max(passing, key=lambda item: item.finished_at, default=None)
    window = context.tier(tenant).drill_every
    in_window = last is not None and (
        (context.now - last.finished_at).total_seconds() <= window
    )
    latest = max(snapshots, key=lambda item: item.snapshot_time, default=None)
    return TenantObjectives(
        tenant=tenant.name,
        declared_rto=declared.rto if declared else None,
        declared_rpo=declared.rpo if declared else None,
        measured_rto=last.rto_seconds if last else None,
        measured_rpo=(context.now - latest.snapshot_time).total_seconds()
        if latest
        else None,
        last_drill=last.finished_at if last else None,
        drill_in_window=in_window,
    )


def build_scorecard(context: ReviewContext, findings: list[Finding]) -> list[ScoreLine]:
    lines = []
    for view in context.environments:
        tiers = sorted({tenant.tier for tenant in view.environment.tenants}) or ["none"]
        for tier in tiers:
            tenants = [t for t in view.environment.tenants if t.tier == tier]
            names = {tenant.name for tenant in tenants}
            relevant = [
                item
                for item in findings
                if item.outcome.environment in (None, view.name)
                and (item.outcome.tenant is None or item.outcome.tenant in names)
            ]
            objectives = [_objectives(context, view, tenant) for tenant in tenants]
            compliance = _weighted(
                [item for item in relevant if item.rule.area != Area.OBSERVABILITY]
            )
            alarms = _weighted(
                [item for item in relevant if item.rule.area == Area.OBSERVABILITY]
            )
            parts = {
                "compliance": compliance if compliance is not None else 0.0,
                "tested_recovery": (
                    sum(item.drill_in_window for item in objectives) / len(objectives)
                    if objectives
                    else 0.0
                ),
                "alarms": alarms if alarms is not None else 0.0,
                "runbooks": (
                    sum(bool(t.runbook or view.environment.runbooks) for t in tenants)
                    / len(tenants)
                    if tenants
                    else 0.0
                ),
            }
            score = sum(WEIGHTS[name] * value for name, value in parts.items())
            lines.append(
                ScoreLine(
                    environment=view.name,
                    tier=tier,
                    score=round(score, 1),
                    parts={
                        name: round(value * 100, 1) for name, value in parts.items()
                    },
                    outstanding=sum(
                        1 for i in relevant if not i.passed and i.suppressed_by is None
                    ),
                    excluded=sum(1 for i in relevant if i.suppressed_by is not None),
                    passed=sum(1 for i in relevant if i.passed),
                    tenants=objectives,
                )
            )
    return lines
