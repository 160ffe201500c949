"""The terminal report: scorecard, then what failed, most severe first."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from odoo_dr.review.inventory import format_duration
from odoo_dr.review.model import ReviewResult
from odoo_dr.review.reports.json_report import summary


def render(result: ReviewResult, width: int = 120) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        highlight=False,
        markup=False,
        emoji=False,
        color_system=None,
    )
    counts = summary(result)
    console.print(f"Resilience review of {result.platform}")
    console.print(
        f"{counts['checks']} checks of {counts['rules']} rules: "
        f"{counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['suppressed']} suppressed"
    )
    for note in result.assumptions:
        console.print(f"assumed: {note}")
    for problem in result.evidence_problems:
        console.print(f"evidence not read: {problem}")

    table = Table(title="Scorecard", box=None, pad_edge=False)
    for column in ("environment", "tier", "score", "grade", "compliance", "tested",
                   "alarms", "runbooks", "outstanding", "excluded"):  # fmt: skip
        table.add_column(column)
    for line in result.scorecard:
        table.add_row(
            line.environment,
            line.tier,
            f"{line.score:.0f}",
            line.grade,
            *(
                f"{line.parts[name]:.0f}%"
                for name in ("compliance", "tested_recovery", "alarms", "runbooks")
            ),  # fmt: skip
            str(line.outstanding),
            str(line.excluded),
        )
    console.print(table)

    objectives = Table(
        title="Objectives: declared and measured", box=None, pad_edge=False
    )
    for column in ("environment", "tenant", "RTO", "measured", "RPO", "measured",
                   "last drill"):  # fmt: skip
        objectives.add_column(column)
    for line in result.scorecard:
        for tenant in line.tenants:
            objectives.add_row(
                line.environment,
                tenant.tenant,
                format_duration(tenant.declared_rto),
                format_duration(tenant.measured_rto),
                format_duration(tenant.declared_rpo),
                format_duration(tenant.measured_rpo),
                tenant.last_drill.strftime("%Y-%m-%d")
                if tenant.last_drill
                else "never",
            )
    console.print(objectives)

    failed = sorted(result.failed(), key=lambda item: (-item.severity, item.rule.id))
    for finding in failed:
        where = f" [{finding.location}]" if finding.location else ""
        console.print(
            f"{finding.severity.label.upper():8} {finding.rule.id} {finding.target}: "
            f"{finding.outcome.message}{where}"
        )
        console.print(f"         fix: {finding.rule.remediation}")
    suppressed = [item for item in result.findings if item.suppressed_by]
    for finding in suppressed:
        console.print(
            f"suppressed {finding.rule.id} {finding.target} until "
            f"{finding.suppressed_by.expires}: {finding.suppressed_by.reason}"
        )
    return buffer.getvalue()
