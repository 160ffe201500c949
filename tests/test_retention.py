"""Retention rules as pure functions, and the policy file format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from odoo_dr.engine.retention import (
    RetentionPolicy,
    SnapshotFacts,
    choose_policy,
    load_policies,
    select,
)
from odoo_dr.errors import RejectedError

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def daily_series(days: int, per_day: int = 2) -> list[SnapshotFacts]:
    """Return `per_day` snapshots a day for `days` days before NOW, at 01:00 on."""
    series = []
    for day in range(days):
        for hour in range(per_day):
            moment = NOW.replace(hour=1 + hour) - timedelta(days=day)
            series.append(SnapshotFacts(id=moment.strftime("%Y%m%d-%H"), time=moment))
    return series


def kept(decisions) -> list[str]:
    return [item.snapshot.id for item in decisions if item.keep]


def test_keep_last_keeps_newest():
    decisions = select(daily_series(3), RetentionPolicy(keep_last=3), NOW)
    assert kept(decisions) == ["20261204-02", "20261204-01", "20261203-02"]
    assert decisions[0].reasons == ["newest snapshot", "last 1 of 3"]


def test_keep_daily_keeps_newest_of_each_day():
    decisions = select(daily_series(5), RetentionPolicy(keep_daily=3), NOW)
    assert kept(decisions) == ["20261204-02", "20261203-02", "20261202-02"]
    reasons = {item.snapshot.id: item.reasons for item in decisions}
    assert reasons["20261203-02"] == ["daily 2026-12-03"]


def test_keep_weekly_uses_iso_weeks():
    # 2026-12-04 is a Friday of ISO week 49; 40 days reach back into week 44.
    decisions = select(daily_series(40, 1), RetentionPolicy(keep_weekly=3), NOW)
    assert kept(decisions) == ["20261204-01", "20261129-01", "20261122-01"]
    reasons = {item.snapshot.id: item.reasons for item in decisions}
    assert reasons["20261129-01"] == ["weekly 2026-W48"]


def test_keep_monthly_and_yearly():
    series = daily_series(800, 1)
    decisions = select(series, RetentionPolicy(keep_monthly=3, keep_yearly=3), NOW)
    assert kept(decisions) == [
        "20261204-01",
        "20261130-01",
        "20261031-01",
        "20251231-01",
        "20241231-01",
    ]
    reasons = {item.snapshot.id: item.reasons for item in decisions}
    assert reasons["20261204-01"] == [
        "newest snapshot",
        "monthly 2026-12",
        "yearly 2026",
    ]
    assert reasons["20241231-01"] == ["yearly 2024"]


def test_generation_skips_periods_without_snapshots():
    series = [
        SnapshotFacts("a", NOW - timedelta(days=1)),
        SnapshotFacts("b", NOW - timedelta(days=10)),
        SnapshotFacts("c", NOW - timedelta(days=20)),
        SnapshotFacts("d", NOW - timedelta(days=30)),
    ]
    decisions = select(series, RetentionPolicy(keep_daily=3), NOW)
    assert kept(decisions) == ["a", "b", "c"]


def test_min_age_keeps_young_snapshots():
    decisions = select(daily_series(10, 1), RetentionPolicy(min_age="3d"), NOW)
    assert kept(decisions) == ["20261204-01", "20261203-01", "20261202-01"]
    assert decisions[1].reasons == ["younger than min_age 3d"]


def test_newest_and_drilled_always_stay():
    series = daily_series(6, 1)
    series[4] = SnapshotFacts(series[4].id, series[4].time, drill_passed=True)
    series[5] = SnapshotFacts(series[5].id, series[5].time, drill_passed=True)
    decisions = select(series, RetentionPolicy(), NOW)
    assert kept(decisions) == ["20261204-01", "20261130-01"]
    assert decisions[1].keep is False
    assert decisions[4].reasons == ["newest snapshot with a passing drill"]


def test_locked_snapshot_stays_with_date():
    until = NOW + timedelta(days=30)
    past = NOW - timedelta(days=1)
    series = [
        SnapshotFacts("new", NOW - timedelta(hours=1)),
        SnapshotFacts("locked", NOW - timedelta(days=2), locked_until=until),
        SnapshotFacts("expired", NOW - timedelta(days=3), locked_until=past),
    ]
    decisions = select(series, RetentionPolicy(keep_last=1), NOW)
    assert kept(decisions) == ["new", "locked"]
    assert decisions[1].reasons == [f"locked until {until.isoformat()}"]


def test_no_policy_keeps_everything():
    decisions = select(daily_series(3, 1), None, NOW)
    assert all(item.keep for item in decisions)
    assert decisions[2].reasons == ["no policy matches its tenant"]


def test_first_matching_policy_wins():
    policies = [
        RetentionPolicy(match={"environment": "production", "tier": "gold"}),
        RetentionPolicy(match={"environment": "production"}, keep_last=5),
        RetentionPolicy(keep_last=1),
    ]
    gold = {"environment": "production", "tier": "gold"}
    assert choose_policy(policies, gold)[0] == 0
    assert choose_policy(policies, {"environment": "production"})[0] == 1
    assert choose_policy(policies, {"tier": "gold"})[0] == 2
    assert choose_policy(policies[:2], {}) is None


def test_policy_file_loads(tmp_path: Path):
    path = tmp_path / "retention.yaml"
    path.write_text(
        "policies:\n"
        "  - match: {environment: production, tier: gold}\n"
        "    keep_last: 7\n"
        "    keep_daily: 14\n"
        "    keep_weekly: 8\n"
        "    keep_monthly: 12\n"
        "    keep_yearly: 3\n"
        "    min_age: 7d\n"
        "  - match: {tier: 1}\n"
        "    keep_last: 2\n"
        "  - match: {}\n"
        "    keep_last: 3\n"
    )
    policies = load_policies(path)
    assert len(policies) == 3
    assert policies[0].keep_yearly == 3
    assert policies[0].min_age == timedelta(days=7)
    assert policies[1].match == {"tier": "1"}
    assert policies[2].match == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policies:\n  - keep_last: 3\n    keep_hourly: 2\n", ":3: policies.0"),
        ("policies:\n  - keep_last: [1\n", ":3"),
        ("policies:\n  - keep_last: -1\n", ":2: policies.0.keep_last"),
        ("policies:\n  - keep_last: 1\n    min_age: soon\n", ":3: policies.0.min_age"),
        ("policies: []\n", ":1: policies"),
        ("- keep_last: 1\n", "one YAML mapping"),
        ("policy:\n  - keep_last: 1\n", ":1: policy: unknown key 'policy'"),
    ],
)
def test_policy_file_errors_name_line(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "retention.yaml"
    path.write_text(text)
    with pytest.raises(RejectedError) as caught:
        load_policies(path)
    assert str(path) in caught.value.message
    assert expected in caught.value.message


def test_unknown_key_is_named(tmp_path: Path):
    path = tmp_path / "retention.yaml"
    path.write_text("policies:\n  - keep_last: 3\n    keep_hourly: 2\n")
    with pytest.raises(RejectedError) as caught:
        load_policies(path)
    assert "unknown key 'keep_hourly'" in caught.value.message
