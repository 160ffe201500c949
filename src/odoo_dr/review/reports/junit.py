"""The JUnit XML report, for CI systems that show test results (GitLab, Jenkins,
Azure DevOps).

One `testsuite` per rule area, one `testcase` per finding: `classname` is the rule
id and `name` the finding's target. A failed finding has a `failure` with the
message as its `message` attribute and the severity as its `type`. A suppressed
one is `skipped` with the suppression's reason and expiry, one that was not
evaluated (its evidence was not read) is `skipped` with its message, and a passed
one is a plain testcase. `file` and `line` attributes name the evidence when it
comes from a file, as pytest writes them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC

from odoo_dr.review.model import Area, Finding, ReviewResult
from odoo_dr.review.reports import common

# Characters that XML 1.0 does not allow, even escaped.
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _failure_text(result: ReviewResult, finding: Finding) -> str:
    lines = [
        f"{finding.severity.label.upper()} {finding.rule.id}: {finding.rule.title}",
        f"target: {finding.target}",
        f"result: {finding.outcome.message}",
    ]
    location = common.location_text(finding, result.base_dir)
    if location:
        lines.append(f"location: {location}")
    for item in finding.outcome.evidence:
        shown = common.display_location(item.location, result.base_dir)
        where = f" ({shown})" if shown else ""
        lines.append(f"evidence: {item.text}{where}")
    note = common.expiry_note(result, finding)
    if note:
        lines.append(f"note: {note}")
    lines.append(f"why: {finding.rule.why}")
    lines.append(f"fix: {finding.rule.remediation}")
    if finding.rule.snippet:
        lines.append(finding.rule.snippet)
    return "\n".join(lines)


def _testcase(result: ReviewResult, finding: Finding) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "classname": finding.rule.id,
            "name": _clean(finding.target),
            "time": "0",
        },
    )
    location = finding.location
    if location is not None:
        case.set("file", _clean(common.base_relative(location.file, result.base_dir)))
        if location.line:
            case.set("line", str(location.line))
    state = common.status(finding)
    if state == common.FAIL:
        failure = ET.SubElement(
            case,
            "failure",
            {
                "message": _clean(finding.outcome.message),
                "type": finding.severity.label,
            },
        )
        failure.text = _clean(_failure_text(result, finding))
    elif state == common.SUPPRESSED:
        ET.SubElement(
            case, "skipped", {"message": _clean(common.suppression_note(finding))}
        )
    elif state == common.UNKNOWN:
        message = f"not evaluated: {finding.outcome.message}"
        ET.SubElement(case, "skipped", {"message": _clean(message)})
    return case


def _counts(element: ET.Element, findings: list[Finding]) -> None:
    states = [common.status(item) for item in findings]
    element.set("tests", str(len(findings)))
    element.set("failures", str(states.count(common.FAIL)))
    element.set("errors", "0")
    skipped = states.count(common.SUPPRESSED) + states.count(common.UNKNOWN)
    element.set("skipped", str(skipped))
    element.set("time", "0")


def as_element(result: ReviewResult) -> ET.Element:
    timestamp = f"{result.reviewed_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"
    root = ET.Element(
        "testsuites", {"name": _clean(f"odoo-dr review: {result.platform}")}
    )
    _counts(root, result.findings)
    for area in Area:
        findings = sorted(
            (item for item in result.findings if item.rule.area == area),
            key=lambda item: (item.rule.id, item.target),
        )
        if not findings:
            continue
        suite = ET.SubElement(
            root, "testsuite", {"name": area.value, "timestamp": timestamp}
        )
        _counts(suite, findings)
        for finding in findings:
            suite.append(_testcase(result, finding))
    return root


def render(result: ReviewResult) -> str:
    root = as_element(result)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
