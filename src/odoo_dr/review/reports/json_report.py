"""The JSON report: everything the review found, for other tools.

The top level carries `format: "odoo-dr-review"` and a `version`, raised whenever a
key changes meaning or goes away. Durations are in seconds, times in ISO 8601 UTC.
"""

from __future__ import annotations

import json

from odoo_dr import __version__
from odoo_dr.review.model import RULES, Finding, ReviewResult, Rule
from odoo_dr.review.reports import common
from odoo_dr.review.scorecard import WEIGHTS, ScoreLine
from odoo_dr.review.suppressions import SuppressionStatus
from odoo_dr.review.yamlio import Location, display_path

FORMAT_VERSION = 1


def rule_dict(rule: Rule) -> dict:
    return {
        "id": rule.id,
        "area": rule.area.value,
        "severity": rule.severity.label,
        "title": rule.title,
        "why": rule.why,
        "remediation": rule.remediation,
        "snippet": rule.snippet,
    }


def _file(location: Location | None, result: ReviewResult) -> str | None:
    """Return the location's file relative to `base_dir` when it lies below it,
    else absolute."""
    return display_path(location.file, result.base_dir) if location else None


def finding_dict(result: ReviewResult, finding: Finding) -> dict:
    outcome = finding.outcome
    suppression = finding.suppressed_by
    location = finding.location
    return {
        "rule": finding.rule.id,
        "area": finding.rule.area.value,
        "severity": finding.severity.label,
        "title": finding.rule.title,
        "status": common.status(finding),
        "target": finding.target,
        "environment": outcome.environment,
        "tenant": outcome.tenant,
        "resource": outcome.resource,
        "message": outcome.message,
        "file": _file(location, result),
        "line": location.line if location else None,
        "evidence": [
            {
                "text": item.text,
                "file": _file(item.location, result),
                "line": item.location.line if item.location else None,
            }
            for item in outcome.evidence
        ],
        "why": finding.rule.why,
        "remediation": finding.rule.remediation,
        "snippet": finding.rule.snippet,
        "suppression": None
        if suppression is None
        else {
            "reason": suppression.reason,
            "expires": suppression.expires.isoformat(),
            "target": suppression.target,
            "file": suppression.location.file if suppression.location else None,
            "line": suppression.location.line if suppression.location else None,
        },
        "expired_suppression": common.expiry_note(result, finding),
    }


def score_dict(line: ScoreLine) -> dict:
    return {
        "environment": line.environment,
        "tier": line.tier,
        "score": line.score,
        "grade": line.grade,
        "parts": {
            key: {
                "weight": weight,
                "percent": line.parts[key],
                "points": round(line.points(key), 1),
                "measured": key not in line.unmeasured,
            }
            for key, weight in WEIGHTS.items()
        },
        "passed": line.passed,
        "outstanding": line.outstanding,
        "outstanding_by_severity": line.outstanding_by_severity,
        "excluded": line.excluded,
        "not_evaluated": line.not_evaluated,
        "tenants": [
            {
                "tenant": item.tenant,
                "tier": item.tier,
                "declared_rto": item.declared_rto,
                "measured_rto": item.measured_rto,
                "rto_met": item.rto_met,
                "declared_rpo": item.declared_rpo,
                "measured_rpo": item.measured_rpo,
                "rpo_source": item.rpo_source,
                "rpo_met": item.rpo_met,
                "last_drill": item.last_drill.isoformat() if item.last_drill else None,
                "last_drill_passed": item.last_drill_passed,
                "drill_in_window": item.drill_in_window,
            }
            for item in line.tenants
        ],
    }


def suppression_dict(item: SuppressionStatus) -> dict:
    suppression = item.suppression
    return {
        "rule": suppression.rule,
        "target": suppression.target,
        "reason": suppression.reason,
        "expires": suppression.expires.isoformat(),
        "state": item.state.value,
        "findings": [finding.target for finding in item.findings],
        "file": suppression.location.file if suppression.location else None,
        "line": suppression.location.line if suppression.location else None,
    }


def as_dict(result: ReviewResult) -> dict:
    return {
        "format": "odoo-dr-review",
        "version": FORMAT_VERSION,
        "platform": result.platform,
        "generated_at": result.reviewed_at.isoformat(timespec="seconds"),
        "tool": {"name": "odoo-dr", "version": __version__},
        "source": str(result.source) if result.source else None,
        "base_dir": str(result.base_dir) if result.base_dir else None,
        "assumptions": result.assumptions,
        "evidence_problems": result.evidence_problems,
        "summary": common.summary(result),
        "by_severity": common.by_severity(result),
        "scorecard": [score_dict(line) for line in result.scorecard],
        "suppressions": [suppression_dict(item) for item in result.suppressions],
        "findings": [finding_dict(result, item) for item in result.findings],
        "rules": [
            rule_dict(item) for item in sorted(RULES.values(), key=lambda r: r.id)
        ],
    }


def render(result: ReviewResult) -> str:
    return json.dumps(as_dict(result), indent=2, default=str) + "\n"
