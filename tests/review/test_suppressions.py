"""Suppression files: reading, checking, applying, expiring."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from tests.review.sample import RULES

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.model import Finding, Outcome, Suppression
from odoo_dr.review.suppressions import (
    SuppressionError,
    SuppressionState,
    apply_suppressions,
    load_suppressions,
)
from odoo_dr.review.yamlio import Location

TODAY = date(2026, 3, 1)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_reads_every_field(tmp_path):
    path = write(
        tmp_path / "accepted.yaml",
        "# accepted findings\n"
        "- rule: SEC-001\n"
        "  target: staging/*\n"
        "  reason: reachable only through the VPN\n"
        "  expires: 2026-06-30\n"
        "- rule: COV-006\n"
        "  reason: sessions are rebuilt by a login\n"
        "  expires: '2026-03-31'\n",
    )
    first, second = load_suppressions(path)
    assert first == Suppression(
        "SEC-001",
        "staging/*",
        "reachable only through the VPN",
        date(2026, 6, 30),
        Location(str(path), 2),
    )
    assert second.target == "*"
    assert second.expires == date(2026, 3, 31)
    assert second.location == Location(str(path), 6)


def test_load_empty_file(tmp_path):
    assert load_suppressions(write(tmp_path / "empty.yaml", "# none yet\n")) == []


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "- rule: SEC-001\n  expires: 2026-06-30\n",
            1,
            "suppression needs reason",
        ),
        (
            "- rule: SEC-001\n  reason: ok\n",
            1,
            "suppression needs expires",
        ),
        (
            "- rule: SEC-001\n  reason: '  '\n  expires: 2026-06-30\n",
            1,
            "suppression needs reason",
        ),
        (
            "- {rule: A, reason: ok, expires: 2026-01-01}\n"
            "- rule: SEC-001\n  reason: ok\n  expires: 30/06/2026\n",
            2,
            "invalid expires '30/06/2026': write a date as YYYY-MM-DD",
        ),
        (
            "- rule: SEC-001\n  reason: ok\n  expires: 2026-06-30\n  reson: typo\n",
            1,
            "unknown key 'reson'",
        ),
        ("- just text\n", 1, "each suppression is a mapping"),
        (
            "- rule: SEC-001\n  reason: ok\n  expires: 20260630\n",
            1,
            "invalid expires 20260630",
        ),
    ],
)
def test_load_rejects_with_line(tmp_path, text, line, message):
    path = write(tmp_path / "accepted.yaml", text)
    with pytest.raises(SuppressionError) as raised:
        load_suppressions(path)
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert message in str(raised.value)


def test_load_rejects_mapping(tmp_path):
    path = write(tmp_path / "accepted.yaml", "rule: SEC-001\n")
    with pytest.raises(SuppressionError, match="is a YAML list"):
        load_suppressions(path)


def test_load_rejects_invalid_yaml(tmp_path):
    path = write(tmp_path / "accepted.yaml", "- rule: [unclosed\n")
    with pytest.raises(SuppressionError, match="invalid YAML"):
        load_suppressions(path)


def test_load_rejects_unknown_rule(tmp_path):
    path = write(
        tmp_path / "accepted.yaml",
        "- rule: SEC-001\n  reason: ok\n  expires: 2026-06-30\n"
        "- rule: SEC-999\n  reason: ok\n  expires: 2026-06-30\n",
    )
    with pytest.raises(SuppressionError) as raised:
        load_suppressions(path, known_rules={"SEC-001"})
    assert str(raised.value) == (
        f"{path}:4: unknown rule 'SEC-999': list the rules with 'odoo-dr review rules'"
    )


def findings() -> list[Finding]:
    return [
        Finding(RULES["security"], Outcome(False, "on", "staging", resource="a.conf")),
        Finding(RULES["security"], Outcome(False, "on", "production", resource="b")),
        Finding(RULES["security"], Outcome(True, "off", "staging", resource="c.conf")),
        Finding(RULES["coverage"], Outcome(False, "none", "staging", "acme")),
    ]


def suppression(rule="TST-002", target="staging/*", expires=TODAY) -> Suppression:
    return Suppression(rule, target, "accepted", expires)


def test_apply_marks_failed_matching_findings():
    sample_findings = findings()
    (status,) = apply_suppressions(sample_findings, [suppression()], TODAY)
    assert status.state is SuppressionState.ACTIVE
    assert status.findings == [sample_findings[0]]
    assert sample_findings[0].suppressed_by is not None
    # Other environment, passed finding, other rule: untouched.
    assert [item.suppressed_by for item in sample_findings[1:]] == [None, None, None]


def test_expires_day_still_applies():
    sample_findings = findings()
    (status,) = apply_suppressions(sample_findings, [suppression(expires=TODAY)], TODAY)
    assert status.state is SuppressionState.ACTIVE


def test_expired_counts_again():
    sample_findings = findings()
    old = suppression(expires=date(2026, 2, 28))
    (status,) = apply_suppressions(sample_findings, [old], TODAY)
    assert status.state is SuppressionState.EXPIRED
    assert status.findings == [sample_findings[0]]
    assert sample_findings[0].suppressed_by is None
    assert "expired on 2026-02-28: 1 failed finding counts again" in status.describe()


def test_unused_reported():
    sample_findings = findings()
    (status,) = apply_suppressions(
        sample_findings, [suppression(target="dev/*")], TODAY
    )
    assert status.state is SuppressionState.UNUSED
    assert status.describe() == (
        "suppression of TST-002 for dev/* matched no failed finding"
    )


def test_glob_matches_whole_target():
    sample_findings = findings()
    apply_suppressions(sample_findings, [suppression(target="*.conf")], TODAY)
    assert sample_findings[0].suppressed_by is not None
    assert sample_findings[1].suppressed_by is None
    exact = findings()
    apply_suppressions(exact, [suppression(rule="TST-001", target="staging")], TODAY)
    assert exact[3].suppressed_by is None


def test_first_matching_suppression_recorded():
    sample_findings = findings()
    first = Suppression("TST-002", "*", "first", TODAY)
    second = Suppression("TST-002", "staging/*", "second", TODAY)
    apply_suppressions(sample_findings, [first, second], TODAY)
    assert sample_findings[0].suppressed_by is first


def test_review_applies_suppressions(tmp_path):
    (tmp_path / "odoo.conf").write_text(
        "[options]\ndb_name = acme\nlist_db = True\nadmin_passwd = admin\n"
    )
    options = ReviewOptions(
        live=False,
        suppressions=(
            Suppression("SEC-001", "*", "behind the VPN", date(2999, 1, 1)),
            Suppression("SEC-002", "*", "rotated next week", date(2000, 1, 1)),
        ),
    )
    result = run_review(tmp_path, options)
    accepted = [item for item in result.findings if item.rule.id == "SEC-001"]
    assert accepted
    assert all(item.suppressed_by is not None for item in accepted)
    assert not [item for item in result.failed() if item.rule.id == "SEC-001"]
    assert [item for item in result.failed() if item.rule.id == "SEC-002"]
    states = [item.state for item in result.suppressions]
    assert states == [SuppressionState.ACTIVE, SuppressionState.EXPIRED]
