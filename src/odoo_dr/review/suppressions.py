"""Suppressions: accepted findings, each with a reason and an expiry date.

A suppression file is a YAML list of mappings:

    - rule: SEC-001                 # the rule id, required
      target: "staging/*"           # glob over environment/tenant/resource; default *
      reason: database manager reached only through the VPN   # required
      expires: 2026-06-30           # last day it applies, YYYY-MM-DD; required

A suppression marks the failed findings of its rule whose target matches the glob
(`fnmatch` rules, case-sensitive; `*` also matches `/`). Suppressed findings stay in
every report, counted as excluded from the score and from `--fail-on`. From the day
after `expires`, the suppression no longer applies: its findings count again and
every report lists it as expired. A suppression that matches no failed finding is
listed as unused, so stale entries can be removed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path

from odoo_dr.review.model import Finding, Suppression
from odoo_dr.review.yamlio import Location, YamlError, line_at, load_documents

KEYS = ("rule", "target", "reason", "expires")


class SuppressionError(ValueError):
    pass


class SuppressionState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    UNUSED = "unused"


@dataclass
class SuppressionStatus:
    """What one suppression did in a review.

    `findings` contains the failed findings it suppressed when active, or the ones it
    would have suppressed when expired.
    """

    suppression: Suppression
    state: SuppressionState
    findings: list[Finding] = field(default_factory=list)

    def describe(self) -> str:
        """Return one line for reports: where the suppression is, and what it did."""
        item = self.suppression
        where = f"{item.location}: " if item.location else ""
        subject = f"suppression of {item.rule} for {item.target}"
        if self.state is SuppressionState.EXPIRED:
            count = len(self.findings)
            return (
                f"{where}{subject} expired on {item.expires}: {count} failed "
                f"{'finding counts' if count == 1 else 'findings count'} again"
            )
        if self.state is SuppressionState.UNUSED:
            return f"{where}{subject} matched no failed finding"
        count = len(self.findings)
        return (
            f"{where}{subject} accepts {count} failed "
            f"{'finding' if count == 1 else 'findings'} through {item.expires}"
        )


def _parse_expires(value: object, where: Location) -> date:
    # YAML reads an unquoted 2026-06-30 as a date, a quoted one as text.
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise SuppressionError(
                f"{where}: invalid expires {value!r}: write a date as YYYY-MM-DD"
            ) from None
    if isinstance(value, datetime):
        raise SuppressionError(
            f"{where}: invalid expires {value.isoformat(sep=' ')!r}: write a date "
            "as YYYY-MM-DD, without a time"
        )
    if isinstance(value, date):
        return value
    raise SuppressionError(f"{where}: invalid expires {value!r}: write YYYY-MM-DD")


def load_suppressions(
    path: Path, known_rules: Collection[str] | None = None
) -> list[Suppression]:
    """Read and check a suppression file; every error names the file and line.

    With `known_rules`, a suppression of any other rule id is rejected, because a
    misspelt id would suppress nothing.
    """
    try:
        documents = load_documents(path)
    except YamlError as exc:
        raise SuppressionError(str(exc)) from None
    if len(documents) > 1:
        raise SuppressionError(f"{path}: a suppression file is one YAML document")
    entries = documents[0] if documents else []
    if not isinstance(entries, list):
        raise SuppressionError(
            f"{path}: a suppression file is a YAML list of "
            "{rule, target, reason, expires}"
        )
    suppressions = []
    for index, entry in enumerate(entries):
        where = Location(str(path), line_at(entries, (index,)))
        if not isinstance(entry, dict):
            raise SuppressionError(f"{where}: each suppression is a mapping")
        unknown = sorted(str(key) for key in entry if key not in KEYS)
        if unknown:
            raise SuppressionError(
                f"{where}: unknown key {unknown[0]!r}: a suppression takes the keys "
                f"{', '.join(KEYS)}"
            )
        missing = [
            key
            for key in ("rule", "reason", "expires")
            if entry.get(key) is None or not str(entry[key]).strip()
        ]
        if missing:
            raise SuppressionError(
                f"{where}: suppression needs {', '.join(missing)}: a rule id, why the "
                "finding is accepted, and the last day the acceptance applies"
            )
        rule_id = str(entry["rule"]).strip()
        if known_rules is not None and rule_id not in known_rules:
            raise SuppressionError(
                f"{where}: unknown rule {rule_id!r}: list the rules with "
                "'odoo-dr review rules'"
            )
        target = str(entry.get("target") or "*").strip()
        suppressions.append(
            Suppression(
                rule=rule_id,
                target=target,
                reason=str(entry["reason"]).strip(),
                expires=_parse_expires(entry["expires"], where),
                location=where,
            )
        )
    return suppressions


def _matches(suppression: Suppression, finding: Finding) -> bool:
    return (
        finding.failed
        and finding.rule.id == suppression.rule
        and fnmatchcase(finding.target, suppression.target)
    )


def apply_suppressions(
    findings: list[Finding], suppressions: list[Suppression], today: date
) -> list[SuppressionStatus]:
    """Mark the failed findings that an unexpired suppression accepts.

    Returns one status per suppression, in file order. When several active
    suppressions match a finding, the first one in the file is recorded.
    """
    statuses = []
    for suppression in suppressions:
        matched = [item for item in findings if _matches(suppression, item)]
        if suppression.expires < today:
            statuses.append(
                SuppressionStatus(suppression, SuppressionState.EXPIRED, matched)
            )
            continue
        for finding in matched:
            if finding.suppressed_by is None:
                finding.suppressed_by = suppression
        state = SuppressionState.ACTIVE if matched else SuppressionState.UNUSED
        statuses.append(SuppressionStatus(suppression, state, matched))
    return statuses


def expired_for(statuses: list[SuppressionStatus], finding: Finding) -> list[date]:
    """Return the expiry dates of expired suppressions that matched `finding`."""
    return [
        status.suppression.expires
        for status in statuses
        if status.state is SuppressionState.EXPIRED
        and any(item is finding for item in status.findings)
    ]
