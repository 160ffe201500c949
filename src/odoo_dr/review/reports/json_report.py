"""The JSON report: everything the review found, for other tools."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

from odoo_dr import __version__
from odoo_dr.review.model import RULES, Finding, ReviewResult, Severity


def status(finding: Finding) -> str:
    if finding.passed:
        return "pass"
    return "suppressed" if finding.suppressed_by is not None else "fail"


def finding_dict(finding: Finding) -> dict:
    outcome = finding.outcome
    suppression = finding.suppressed_by
    return {
        "rule": finding.rule.id,
        "area": finding.rule.area.value,
        "severity": finding.severity.label,
        "title": finding.rule.title,
        "status": status(finding),
        "target": finding.target,
        "environment": outcome.environment,
        "tenant": outcome.tenant,
        "resource": outcome.resource,
        "message": outcome.message,
        "evidence": [
            {
                "text": item.text,
                "file": item.location.file if item.location else None,
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
        },
    }


def summary(result: ReviewResult) -> dict:
    failed = result.failed()
    return {
        "rules": len({item.rule.id for item in result.findings}),
        "checks": len(result.findings),
        "passed": sum(1 for item in result.findings if item.passed),
        "failed": len(failed),
        "suppressed": sum(1 for item in result.findings if item.suppressed_by),
        "failed_by_severity": {
            level.label: sum(1 for item in failed if item.severity == level)
            for level in reversed(Severity)
        },
    }


def as_dict(result: ReviewResult) -> dict:
    return {
        "platform": result.platform,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool": {"name": "odoo-dr", "version": __version__},
        "assumptions": result.assumptions,
        "evidence_problems": result.evidence_problems,
        "summary": summary(result),
        "scorecard": [
            {**asdict(line), "grade": line.grade} for line in result.scorecard
        ],
        "findings": [finding_dict(item) for item in result.findings],
        "rules": [
            {
                "id": item.id,
                "area": item.area.value,
                "severity": item.severity.label,
                "title": item.title,
                "why": item.why,
                "remediation": item.remediation,
            }
            for item in sorted(RULES.values(), key=lambda rule: rule.id)
        ],
    }


def render(result: ReviewResult) -> str:
    return json.dumps(as_dict(result), indent=2, default=str)
