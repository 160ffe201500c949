"""Suppressions: accepted findings, each with a reason and an expiry date.

A suppression file is YAML: a list of `{rule, target, reason, expires}`. `target` is
a glob over `environment/tenant/resource` (`*` matches everything). Suppressed
findings are counted in every report, never hidden; an expired suppression no longer
applies and is reported.
"""

from __future__ import annotations

from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path

from odoo_dr.review.model import Finding, Suppression
from odoo_dr.review.yamlio import Location, YamlError, line_at, load_documents


class SuppressionError(ValueError):
    pass


def load_suppressions(path: Path) -> list[Suppression]:
    try:
        documents = load_documents(path)
    except YamlError as exc:
        raise SuppressionError(str(exc)) from None
    entries = documents[0] if documents else []
    if not isinstance(entries, list):
        raise SuppressionError(f"{path}: a suppression file is a YAML list")
    suppressions = []
    for index, entry in enumerate(entries):
        where = Location(str(path), line_at(entries, (index,)))
        if not isinstance(entry, dict):
            raise SuppressionError(f"{where}: each suppression is a mapping")
        missing = [key for key in ("rule", "reason", "expires") if not entry.get(key)]
        if missing:
            raise SuppressionError(
                f"{where}: suppression needs {', '.join(missing)}: a rule id, why the "
                "finding is accepted, and the date the acceptance ends"
            )
        expires = entry["expires"]
        if isinstance(expires, str):
            try:
                expires = date.fromisoformat(expires)
            except ValueError:
                raise SuppressionError(
                    f"{where}: invalid expires {expires!r}: write a date as YYYY-MM-DD"
                ) from None
        if not isinstance(expires, date):
            raise SuppressionError(f"{where}: invalid expires: write YYYY-MM-DD")
        suppressions.append(
            Suppression(
                rule=str(entry["rule"]),
                target=str(entry.get("target", "*")),
                reason=str(entry["reason"]),
                expires=expires,
            )
        )
    return suppressions


def apply_suppressions(
    findings: list[Finding], suppressions: list[Suppression], today: date
) -> list[str]:
    """Mark suppressed findings; return notes on expired and unused suppressions."""
    notes = []
    used: set[int] = set()
    for index, suppression in enumerate(suppressions):
        if suppression.expires < today:
            notes.append(
                f"suppression of {suppression.rule} for {suppression.target} expired "
                f"on {suppression.expires}: its findings count again"
            )
            continue
        for finding in findings:
            if finding.passed or finding.rule.id != suppression.rule:
                continue
            if fnmatchcase(finding.target, suppression.target):
                finding.suppressed_by = suppression
                used.add(index)
    for index, suppression in enumerate(suppressions):
        if index not in used and suppression.expires >= today:
            notes.append(
                f"suppression of {suppression.rule} for {suppression.target} matched "
                "no finding"
            )
    return notes
