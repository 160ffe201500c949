"""The SARIF 2.1.0 report, for code scanning in CI (GitHub, GitLab, Azure DevOps).

One run. `tool.driver.rules` lists every registered rule: its title as the short
description, why it matters as the full description, and its remediation as help.
Each finding is a result: a failed one has kind `fail` and a level from its
severity (critical and high: error, medium: warning, low and info: note), a passed
one has kind `pass` and level `none`, and one that was not evaluated (its evidence
was not read) has kind `open` and level `none`. A suppressed finding carries a
`suppressions` entry of kind `external` with the reason as its justification.

File locations are URIs relative to the review's base (the inventory's folder, or
the reviewed folder when it has no inventory), named by the
`REVIEWROOT` base id that `originalUriBaseIds` resolves. Files outside the base
get absolute `file:` URIs. A finding without a file points at the inventory file
when there is one, and always carries a logical location named by its target.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from pathlib import Path
from urllib.parse import quote

from odoo_dr import __version__
from odoo_dr.review.model import RULES, Finding, ReviewResult, Rule, Severity
from odoo_dr.review.reports import common
from odoo_dr.review.suppressions import SuppressionState

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
    "sarif-schema-2.1.0.json"
)
BASE_ID = "REVIEWROOT"
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning ranks security results by this CVSS-like score.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _help(rule: Rule) -> dict:
    text = rule.remediation
    markdown = rule.remediation
    if rule.snippet:
        text += "\n\n" + rule.snippet
        markdown += "\n\n```\n" + rule.snippet.rstrip() + "\n```"
    return {"text": text, "markdown": markdown}


def rule_descriptor(rule: Rule) -> dict:
    properties: dict = {
        "area": rule.area.value,
        "severity": rule.severity.label,
        "tags": ["resilience", rule.area.value],
    }
    if rule.area.value == "security":
        properties["security-severity"] = SECURITY_SEVERITY[rule.severity]
    return {
        "id": rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": _help(rule),
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": properties,
    }


def artifact_location(file: str, base: Path | None) -> dict:
    """Return a SARIF artifactLocation for `file`, relative to `base` when below
    it."""
    relative = common.base_relative(file, base)
    path = Path(relative)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    location: dict = {"uri": quote(path.as_posix())}
    if base is not None:
        location["uriBaseId"] = BASE_ID
    return location


def _locations(result: ReviewResult, finding: Finding) -> list[dict]:
    logical = [{"fullyQualifiedName": finding.target, "kind": "resource"}]
    location = finding.location
    physical = None
    if location is not None:
        physical = {
            "artifactLocation": artifact_location(location.file, result.base_dir)
        }
        if location.line:
            physical["region"] = {"startLine": location.line}
    elif result.source is not None:
        physical = {
            "artifactLocation": artifact_location(str(result.source), result.base_dir)
        }
    entry: dict = {"logicalLocations": logical}
    if physical is not None:
        entry["physicalLocation"] = physical
    return [entry]


def _fingerprint(finding: Finding) -> str:
    """Identify a finding across runs by rule and target, not by line, so editing a
    manifest above it does not open a new alert."""
    key = f"{finding.rule.id}\0{finding.target}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _kind(finding: Finding) -> str:
    """Return the SARIF result kind: `pass`, `fail`, or `open` (undecided) for a
    check that was not evaluated."""
    if not finding.evaluated:
        return "open"
    return "pass" if finding.passed else "fail"


def result_dict(result: ReviewResult, finding: Finding, rule_index: int) -> dict:
    message = finding.outcome.message
    note = common.expiry_note(result, finding)
    if note:
        message += f" ({note})"
    entry: dict = {
        "ruleId": finding.rule.id,
        "ruleIndex": rule_index,
        "kind": _kind(finding),
        "level": LEVELS[finding.severity] if finding.failed else "none",
        "message": {"text": f"{finding.target}: {message}"},
        "locations": _locations(result, finding),
        "partialFingerprints": {"odooDrFinding/v1": _fingerprint(finding)},
        "properties": {
            "severity": finding.severity.label,
            "target": finding.target,
            "status": common.status(finding),
        },
    }
    suppression = finding.suppressed_by
    if suppression is not None:
        properties: dict = {"expires": suppression.expires.isoformat()}
        if suppression.location is not None:
            properties["file"] = str(suppression.location)
        entry["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": suppression.reason,
                "properties": properties,
            }
        ]
    return entry


def _notification(text: str, level: str) -> dict:
    return {"message": {"text": text}, "level": level}


def _notifications(result: ReviewResult) -> list[dict]:
    notes = [_notification(item, "warning") for item in result.evidence_problems]
    for status in result.suppressions:
        if status.state is SuppressionState.EXPIRED:
            notes.append(_notification(status.describe(), "warning"))
        elif status.state is SuppressionState.UNUSED:
            notes.append(_notification(status.describe(), "note"))
    notes += [_notification(f"assumed: {item}", "note") for item in result.assumptions]
    return notes


def as_dict(result: ReviewResult) -> dict:
    rules = sorted(RULES.values(), key=lambda item: item.id)
    # Findings of rules that are not registered (a caller's own) still need one.
    extra = {item.rule.id: item.rule for item in result.findings}
    rules += [extra[key] for key in sorted(extra) if key not in RULES]
    index = {rule.id: position for position, rule in enumerate(rules)}
    reviewed = result.reviewed_at.astimezone(UTC)
    run: dict = {
        "tool": {
            "driver": {
                "name": "odoo-dr",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [rule_descriptor(rule) for rule in rules],
            }
        },
        "automationDetails": {"id": f"odoo-dr-review/{result.platform}/"},
        "invocations": [
            {
                "executionSuccessful": True,
                "endTimeUtc": f"{reviewed:%Y-%m-%dT%H:%M:%SZ}",
                "toolExecutionNotifications": _notifications(result),
            }
        ],
        "results": [
            result_dict(result, finding, index[finding.rule.id])
            for finding in common.ordered(result.findings)
        ],
        "columnKind": "unicodeCodePoints",
        "properties": {"platform": result.platform},
    }
    if result.base_dir is not None:
        run["originalUriBaseIds"] = {
            BASE_ID: {"uri": result.base_dir.as_uri().rstrip("/") + "/"}
        }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def render(result: ReviewResult) -> str:
    return json.dumps(as_dict(result), indent=2) + "\n"
