"""Rules, findings and their severities."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from odoo_dr.review.yamlio import Location

if TYPE_CHECKING:
    from odoo_dr.review.context import ReviewContext


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(item.label for item in cls)
            raise ValueError(f"invalid severity {text!r}: use one of {names}") from None


class Area(StrEnum):
    COVERAGE = "coverage"
    OBJECTIVES = "objectives"
    POSTGRESQL = "postgresql"
    FILESTORE = "filestore"
    REDIS = "redis"
    KUBERNETES = "kubernetes"
    SECURITY = "security"
    OBSERVABILITY = "observability"
    TENANCY = "tenancy"
    COST = "cost"


@dataclass(frozen=True)
class Evidence:
    """What a rule read: a short text, and where it is when it comes from a file."""

    text: str
    location: Location | None = None


@dataclass(frozen=True)
class Outcome:
    """One result of a rule's check on one environment, tenant or resource.

    `passed` is None when the check was not evaluated: the evidence it needs was
    not read (live evidence off, or a source that could not be reached). Such an
    outcome is counted apart, as neither passed nor failed.
    """

    passed: bool | None
    message: str
    environment: str | None = None
    tenant: str | None = None
    resource: str | None = None
    evidence: tuple[Evidence, ...] = ()
    severity: Severity | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    area: Area
    severity: Severity
    title: str
    why: str
    remediation: str
    check: Callable[[ReviewContext], Iterable[Outcome]]
    snippet: str | None = None


@dataclass(frozen=True)
class Suppression:
    """An accepted finding: it applies through the `expires` date."""

    rule: str
    target: str
    reason: str
    expires: date
    location: Location | None = None


@dataclass
class Finding:
    rule: Rule
    outcome: Outcome
    suppressed_by: Suppression | None = None

    @property
    def passed(self) -> bool:
        return self.outcome.passed is True

    @property
    def failed(self) -> bool:
        """Whether the check failed, suppressed or not."""
        return self.outcome.passed is False

    @property
    def evaluated(self) -> bool:
        """Whether the check ran on the evidence it needs (see `Outcome`)."""
        return self.outcome.passed is not None

    @property
    def severity(self) -> Severity:
        return (
            self.outcome.severity
            if self.outcome.severity is not None
            else self.rule.severity
        )

    @property
    def target(self) -> str:
        """`environment/tenant/resource`, the parts that apply. A resource named
        by an absolute path joins without its leading `/`."""
        parts = [self.outcome.environment, self.outcome.tenant, self.outcome.resource]
        return "/".join(part.lstrip("/") for part in parts if part) or "platform"

    @property
    def location(self) -> Location | None:
        for item in self.outcome.evidence:
            if item.location is not None:
                return item.location
        return None


RULES: dict[str, Rule] = {}


def rule(
    id: str,
    area: Area,
    severity: Severity,
    title: str,
    why: str,
    remediation: str,
    snippet: str | None = None,
) -> Callable[[Callable[[ReviewContext], Iterable[Outcome]]], Rule]:
    """Register the decorated check as a rule; ids are unique."""

    def register(check: Callable[[ReviewContext], Iterable[Outcome]]) -> Rule:
        if id in RULES:
            raise ValueError(f"duplicate rule id {id}")
        registered = Rule(id, area, severity, title, why, remediation, check, snippet)
        RULES[id] = registered
        return registered

    return register


@dataclass
class ReviewResult:
    platform: str
    findings: list[Finding]
    assumptions: list[str] = field(default_factory=list)
    evidence_problems: list[str] = field(default_factory=list)
    scorecard: list = field(default_factory=list)
    # SuppressionStatus items, one per suppression given (see suppressions.py).
    suppressions: list = field(default_factory=list)
    # The folder that relative evidence paths start from, and the inventory file
    # (None for a folder reviewed without one).
    base_dir: Path | None = None
    source: Path | None = None
    reviewed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def failed(self, include_suppressed: bool = False) -> list[Finding]:
        return [
            item
            for item in self.findings
            if item.failed and (include_suppressed or item.suppressed_by is None)
        ]

    def not_evaluated(self) -> list[Finding]:
        return [item for item in self.findings if not item.evaluated]
