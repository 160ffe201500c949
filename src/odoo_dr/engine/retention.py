"""Retention policies and the choice of which snapshots a tenant keeps.

A policy keeps the last N snapshots, plus the newest snapshot of each of the last N
days, ISO weeks, months and years that have snapshots (the generations), and every
snapshot younger than `min_age`. Periods are calendar periods in UTC. A policy file
lists policies, each with a label `match`. The first policy whose labels all match a
tenant's newest snapshot applies to all of that tenant's snapshots.

Whatever the policy, a tenant always keeps its newest snapshot and its newest
snapshot with a passing drill, and a snapshot whose manifest is locked is never
removed. `select` is a pure function over `SnapshotFacts`, so the rules can be
tested without a repository.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from odoo_dr.errors import RejectedError
from odoo_dr.review.yamlio import Location, YamlError, line_at, load_documents

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# 100 years: longer than any snapshot can be old, and small enough that subtracting
# it from the current time stays within Python's dates.
MAX_AGE_DAYS = 36_500


def parse_age(value: object) -> timedelta:
    """Return the duration written as `<number><unit>` (s, m, h, d, w), or 0."""
    if isinstance(value, timedelta):
        return value
    if value == 0 or value == "0":
        return timedelta(0)
    match = _AGE.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"invalid age {value!r}: write a whole number and a unit, such as "
            "'12h', '7d' or '2w' (units s, m, h, d, w)"
        )
    seconds = int(match.group(1)) * _AGE_UNITS[match.group(2)]
    if seconds > MAX_AGE_DAYS * 86400:
        raise ValueError(
            f"invalid age {value!r}: at most {MAX_AGE_DAYS} days ({MAX_AGE_DAYS}d)"
        )
    return timedelta(seconds=seconds)


class RetentionPolicy(BaseModel):
    """The retention rules of one group of tenants, counted in snapshots."""

    model_config = ConfigDict(extra="forbid")

    match: dict[str, str] = Field(
        default_factory=dict,
        description="labels a tenant's newest snapshot must carry; {} matches all",
    )
    keep_last: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)
    min_age: timedelta = Field(
        default=timedelta(0),
        description="snapshots younger than this are kept, e.g. '7d'",
    )

    @field_validator("match", mode="before")
    @classmethod
    def _labels_as_text(cls, value: object) -> object:
        # YAML reads `tier: 1` or `critical: true` as a number or a boolean, but
        # labels are text.
        if isinstance(value, dict):
            return {
                str(key): str(item).lower() if isinstance(item, bool) else str(item)
                for key, item in value.items()
            }
        return value

    @field_validator("min_age", mode="before")
    @classmethod
    def _age(cls, value: object) -> timedelta:
        return parse_age(value)

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match.items())

    def describe(self) -> str:
        """Return the policy in the words of its keys, such as 'keep_last 3'."""
        parts = [
            f"{name} {getattr(self, name)}"
            for name in (
                "keep_last",
                "keep_daily",
                "keep_weekly",
                "keep_monthly",
                "keep_yearly",
            )
            if getattr(self, name)
        ]
        if self.min_age:
            parts.append(f"min_age {format_age(self.min_age)}")
        return ", ".join(parts) or "nothing beyond the safety rules"


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policies: list[RetentionPolicy] = Field(min_length=1)


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _AGE_UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_policies(path: Path) -> list[RetentionPolicy]:
    """Read a policy file; raise RejectedError naming the file and line of a fault."""
    try:
        documents = load_documents(path)
    except YamlError as exc:
        raise RejectedError(
            f"invalid retention policy file {exc}",
            hint="fix the YAML; see docs/retention.md for the format",
        ) from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise RejectedError(
            f"invalid retention policy file {path}: it must be one YAML mapping "
            "with a `policies` list",
            hint="see docs/retention.md for the format",
        )
    document = documents[0]
    try:
        return PolicyFile.model_validate(document).policies
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = Location(str(path), line_at(document, loc))
            name = ".".join(str(part) for part in loc) or "policies"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown key {str(loc[-1])!r}"
            problems.append(f"{where}: {name}: {message}")
        raise RejectedError(
            "invalid retention policy file: " + "; ".join(problems),
            hint="known keys are policies, match, keep_last, keep_daily, "
            "keep_weekly, keep_monthly, keep_yearly and min_age; see "
            "docs/retention.md",
        ) from None


def choose_policy(
    policies: list[RetentionPolicy], labels: dict[str, str]
) -> tuple[int, RetentionPolicy] | None:
    """Return the first policy (and its index) that matches `labels`, or None."""
    for number, policy in enumerate(policies):
        if policy.matches(labels):
            return number, policy
    return None


@dataclass(frozen=True)
class SnapshotFacts:
    """The facts of one snapshot that retention reads."""

    id: str
    time: datetime
    labels: dict[str, str] = field(default_factory=dict)
    drill_passed: bool = False
    locked_until: datetime | None = None
    # The release whose latest restore point is this snapshot, if any.
    restore_point_of: str | None = None


@dataclass
class Decision:
    """Whether one snapshot stays, and every rule that keeps it."""

    snapshot: SnapshotFacts
    reasons: list[str] = field(default_factory=list)

    @property
    def keep(self) -> bool:
        return bool(self.reasons)


def _period_keys() -> dict[str, Callable[[datetime], str]]:
    return {
        "daily": lambda moment: moment.strftime("%Y-%m-%d"),
        "weekly": lambda moment: "{}-W{:02d}".format(*moment.isocalendar()[:2]),
        "monthly": lambda moment: moment.strftime("%Y-%m"),
        "yearly": lambda moment: moment.strftime("%Y"),
    }


def select(
    snapshots: Iterable[SnapshotFacts],
    policy: RetentionPolicy | None,
    now: datetime,
) -> list[Decision]:
    """Decide which of one tenant's snapshots stay; return them newest first.

    Without a policy (none matched the tenant) every snapshot stays.
    """
    ordered = sorted(snapshots, key=lambda item: (item.time, item.id), reverse=True)
    decisions = [Decision(item) for item in ordered]
    if not decisions:
        return decisions
    for decision in decisions:
        locked = decision.snapshot.locked_until
        if locked is not None and locked > now:
            decision.reasons.append(f"locked until {locked.isoformat()}")
    decisions[0].reasons.append("newest snapshot")
    drilled = [item for item in decisions if item.snapshot.drill_passed]
    if drilled:
        drilled[0].reasons.append("newest snapshot with a passing drill")
    for decision in decisions:
        release = decision.snapshot.restore_point_of
        if release is not None:
            decision.reasons.append(f"restore point of release {release!r}")
    if policy is None:
        for decision in decisions:
            decision.reasons.append("no policy matches its tenant")
        return decisions

    for position, decision in enumerate(decisions[: policy.keep_last]):
        decision.reasons.append(f"last {position + 1} of {policy.keep_last}")
    counts = {
        "daily": policy.keep_daily,
        "weekly": policy.keep_weekly,
        "monthly": policy.keep_monthly,
        "yearly": policy.keep_yearly,
    }
    for name, period_of in _period_keys().items():
        limit = counts[name]
        seen: set[str] = set()
        for decision in decisions:
            if len(seen) >= limit:
                break
            period = period_of(decision.snapshot.time)
            if period in seen:
                continue
            # The first snapshot met in a period is its newest, as the list runs
            # from newest to oldest.
            seen.add(period)
            decision.reasons.append(f"{name} {period}")
    if policy.min_age:
        for decision in decisions:
            if now - decision.snapshot.time < policy.min_age:
                decision.reasons.append(
                    f"younger than min_age {format_age(policy.min_age)}"
                )
    return decisions
