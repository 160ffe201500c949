"""Helpers that every report format shares: statuses, order, counts, templates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from odoo_dr.review.inventory import format_duration
from odoo_dr.review.model import Finding, ReviewResult, Severity
from odoo_dr.review.scorecard import PART_LABELS, WEIGHTS, TenantObjectives
from odoo_dr.review.suppressions import (
    SuppressionState,
    SuppressionStatus,
    expired_for,
)
from odoo_dr.review.yamlio import Location, display_path

PASS = "pass"
FAIL = "fail"
SUPPRESSED = "suppressed"
# A check that was not evaluated because the evidence it needs was not read.
UNKNOWN = "not-evaluated"
SEVERITIES = list(reversed(Severity))


def status(finding: Finding) -> str:
    """Return `pass`, `fail`, `suppressed` for a failed finding accepted by a
    suppression, or `not-evaluated`."""
    if not finding.evaluated:
        return UNKNOWN
    if finding.passed:
        return PASS
    return SUPPRESSED if finding.suppressed_by is not None else FAIL


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Sort findings most severe first, then by rule id and target."""
    return sorted(
        findings, key=lambda item: (-item.severity, item.rule.id, item.target)
    )


def failed(result: ReviewResult) -> list[Finding]:
    return ordered(item for item in result.findings if status(item) == FAIL)


def suppressed(result: ReviewResult) -> list[Finding]:
    return ordered(item for item in result.findings if status(item) == SUPPRESSED)


def passed(result: ReviewResult) -> list[Finding]:
    return ordered(item for item in result.findings if item.passed)


def not_evaluated(result: ReviewResult) -> list[Finding]:
    return ordered(result.not_evaluated())


def summary(result: ReviewResult) -> dict:
    """Count checks by status, and failed unsuppressed findings by severity."""
    failures = result.failed()
    return {
        "rules": len({item.rule.id for item in result.findings}),
        "checks": len(result.findings),
        "passed": sum(1 for item in result.findings if item.passed),
        "failed": len(failures),
        "suppressed": sum(1 for item in result.findings if status(item) == SUPPRESSED),
        "not_evaluated": len(result.not_evaluated()),
        "failed_by_severity": {
            level.label: sum(1 for item in failures if item.severity == level)
            for level in SEVERITIES
        },
        "expired_suppressions": len(expired(result)),
    }


def by_severity(result: ReviewResult) -> list[dict]:
    """Count findings of each severity by status, most severe first."""
    rows = []
    for level in SEVERITIES:
        findings = [item for item in result.findings if item.severity == level]
        rows.append(
            {
                "severity": level.label,
                PASS: sum(1 for item in findings if status(item) == PASS),
                FAIL: sum(1 for item in findings if status(item) == FAIL),
                SUPPRESSED: sum(1 for item in findings if status(item) == SUPPRESSED),
                UNKNOWN: sum(1 for item in findings if status(item) == UNKNOWN),
            }
        )
    return rows


def statuses(result: ReviewResult) -> list[SuppressionStatus]:
    return list(result.suppressions)


def expired(result: ReviewResult) -> list[SuppressionStatus]:
    return [item for item in statuses(result) if item.state is SuppressionState.EXPIRED]


def unused(result: ReviewResult) -> list[SuppressionStatus]:
    return [item for item in statuses(result) if item.state is SuppressionState.UNUSED]


def expiry_note(result: ReviewResult, finding: Finding) -> str | None:
    """Return a note for a failed finding that an expired suppression matched."""
    dates = expired_for(statuses(result), finding)
    if not dates:
        return None
    return f"its suppression expired on {max(dates)}"


def suppression_note(finding: Finding) -> str:
    item = finding.suppressed_by
    if item is None:
        return ""
    where = f" ({item.location})" if item.location else ""
    return f"accepted through {item.expires}{where}: {item.reason}"


def display_location(location: Location | None, base: Path | None) -> str | None:
    """Return `file:line`, the file relative to the review's base when it lies
    below it, else absolute."""
    if location is None:
        return None
    file = display_path(location.file, base)
    return f"{file}:{location.line}" if location.line else file


def location_text(finding: Finding, base: Path | None = None) -> str | None:
    return display_location(finding.location, base)


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def objective_state(objective: TenantObjectives, part: str) -> str:
    """Return `met`, `missed` or `unknown` for the `rto` or `rpo` of a tenant."""
    met = objective.rto_met if part == "rto" else objective.rpo_met
    if met is None:
        return "unknown"
    return "met" if met else "missed"


def drill_text(objective: TenantObjectives) -> str:
    if objective.last_drill is None:
        return "never"
    day = f"{objective.last_drill:%Y-%m-%d}"
    if not objective.last_drill_passed:
        return f"{day} (failed)"
    if not objective.drill_in_window:
        return f"{day} (passed, older than {format_duration(objective.drill_window)})"
    return f"{day} (passed)"


@dataclass(frozen=True)
class Part:
    key: str
    label: str
    weight: int


PARTS = [Part(key, PART_LABELS[key], weight) for key, weight in WEIGHTS.items()]


def base_relative(path: str, base: Path | None) -> str:
    """Return `path` relative to `base` when it lies below it, else absolute."""
    return display_path(path, base)


@cache
def templates(autoescape: bool) -> Environment:
    """Return the Jinja2 environment over the package's templates.

    HTML templates escape every value (`autoescape`); Markdown templates escape
    with their own filters.
    """
    environment = Environment(
        loader=PackageLoader("odoo_dr.review", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals.update(
        status=status,
        duration=duration,
        objective_state=objective_state,
        drill_text=drill_text,
        suppression_note=suppression_note,
        location_text=location_text,
        PARTS=PARTS,
    )
    return environment
