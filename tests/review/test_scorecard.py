"""The scorecard: parts, weights, drill windows, declared and measured objectives.

Inventories and odoo-dr repositories are real files; findings are written by hand
so each part's arithmetic can be checked.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from tests.review.sample import RULES, drill, sample_result, snapshot

from odoo_dr.repository.store import Repository
from odoo_dr.review import scorecard
from odoo_dr.review.engine import ReviewOptions, build_context
from odoo_dr.review.model import Finding, Outcome, Severity, Suppression
from odoo_dr.review.scorecard import WEIGHTS, build_scorecard
from odoo_dr.review.suppressions import apply_suppressions

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOCS = Path(__file__).parents[2] / "docs" / "review.md"


def platform(folder: Path, tenants: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inventory.yaml").write_text(
        "environments:\n"
        "  - name: production\n"
        "    evidence:\n"
        "      repository: repo\n"
        f"{extra}"
        "    tenants:\n"
        f"{tenants}"
    )
    Repository.init(str(folder / "repo"))
    return folder / "inventory.yaml"


def context_for(inventory: Path, live: bool = True):
    context = build_context(inventory, ReviewOptions(live=live))
    context.now = NOW
    return context


def repository(folder: Path) -> Repository:
    return Repository.open(str(folder / "repo"))


def line_for(lines, tier):
    matches = [line for line in lines if line.tier == tier]
    assert len(matches) == 1, tier
    return matches[0]


def test_weights_add_up_to_100():
    assert sum(WEIGHTS.values()) == 100


@pytest.mark.parametrize("part", list(WEIGHTS))
def test_weights_documented(part):
    label = scorecard.PART_LABELS[part]
    weight = WEIGHTS[part]
    row = re.compile(rf"\|\s*{label}\s*\|\s*{weight}\s*\|")
    assert row.search(scorecard.__doc__), f"module docstring lacks {label} {weight}"
    assert row.search(DOCS.read_text()), f"docs/review.md lacks {label} {weight}"


def test_drill_inside_window_counts(tmp_path):
    # critical: 30-day window; standard: 180-day window. Both drilled 40 days ago.
    inventory = platform(
        tmp_path,
        "      - {name: acme, tier: critical}\n      - {name: beta, tier: standard}\n",
    )
    repo = repository(tmp_path)
    repo.save_drill(drill("acme", NOW - timedelta(days=40), True, 600))
    repo.save_drill(drill("beta", NOW - timedelta(days=40), True, 600))
    lines = build_scorecard(context_for(inventory), [])
    critical = line_for(lines, "critical")
    standard = line_for(lines, "standard")
    assert critical.parts["tested_recovery"] == 0.0
    assert critical.tenants[0].drill_in_window is False
    assert standard.parts["tested_recovery"] == 100.0
    assert standard.points("tested_recovery") == 30


def test_failed_latest_drill_does_not_count(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    repo = repository(tmp_path)
    repo.save_drill(drill("acme", NOW - timedelta(days=5), True, 600))
    repo.save_drill(drill("acme", NOW - timedelta(days=1), False, 900))
    line = build_scorecard(context_for(inventory), [])[0]
    objectives = line.tenants[0]
    assert line.parts["tested_recovery"] == 0.0
    assert objectives.last_drill_passed is False
    # The measured RTO is still the latest passing drill's.
    assert objectives.measured_rto == 600


def test_tested_recovery_share_of_tenants(tmp_path):
    inventory = platform(
        tmp_path,
        "      - {name: a, tier: high}\n"
        "      - {name: b, tier: high}\n"
        "      - {name: c, tier: high}\n"
        "      - {name: d, tier: high}\n",
    )
    repo = repository(tmp_path)
    repo.save_drill(drill("a", NOW - timedelta(days=1), True, 60))
    repo.save_drill(drill("b", NOW - timedelta(days=89), True, 60))
    repo.save_drill(drill("c", NOW - timedelta(days=91), True, 60))
    line = build_scorecard(context_for(inventory), [])[0]
    assert line.parts["tested_recovery"] == 50.0
    assert line.points("tested_recovery") == 15


def test_no_repository_is_unmeasured(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    line = build_scorecard(context_for(inventory, live=False), [])[0]
    assert "tested_recovery" in line.unmeasured
    assert "alarms" in line.unmeasured
    assert "compliance" in line.unmeasured
    assert line.score == 0


def finding(rule, passed, tenant=None, environment="production", severity=None):
    outcome = Outcome(
        passed, "sample", environment=environment, tenant=tenant, severity=severity
    )
    return Finding(rule, outcome)


def test_compliance_weighted_by_severity(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    findings = [
        finding(RULES["coverage"], True, "acme"),  # critical: 10
        finding(RULES["security"], False),  # high: 5
        finding(RULES["kubernetes"], False),  # low: 1
        finding(RULES["info"], False),  # info: 0
    ]
    line = build_scorecard(context_for(inventory, live=False), findings)[0]
    assert line.parts["compliance"] == round(10 / 16 * 100, 1)
    assert line.points("compliance") == pytest.approx(40 * 10 / 16, abs=0.05)
    assert line.outstanding == 3
    assert line.passed == 1
    assert line.outstanding_by_severity["high"] == 1
    assert line.outstanding_by_severity["info"] == 1


def test_finding_severity_overrides_rule(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    findings = [
        finding(RULES["coverage"], True, "acme"),  # critical: 10
        finding(RULES["kubernetes"], False, severity=Severity.CRITICAL),  # 10
    ]
    line = build_scorecard(context_for(inventory, live=False), findings)[0]
    assert line.parts["compliance"] == 50.0


def test_suppressed_excluded_and_counted(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    findings = [
        finding(RULES["coverage"], True, "acme"),
        finding(RULES["security"], False),
    ]
    accepted = Suppression("TST-002", "*", "accepted", date(2999, 1, 1))
    apply_suppressions(findings, [accepted], NOW.date())
    line = build_scorecard(context_for(inventory, live=False), findings)[0]
    assert line.parts["compliance"] == 100.0
    assert line.excluded == 1
    assert line.outstanding == 0


def test_not_evaluated_counted_apart(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    findings = [
        finding(RULES["coverage"], True, "acme"),  # critical: 10
        finding(RULES["security"], None),  # high, not evaluated
        finding(RULES["kubernetes"], False),  # low: 1
    ]
    line = build_scorecard(context_for(inventory, live=False), findings)[0]
    assert line.parts["compliance"] == round(10 / 11 * 100, 1)
    assert line.not_evaluated == 1
    assert line.outstanding == 1
    assert line.passed == 1
    assert line.outstanding_by_severity["high"] == 0


def test_alarms_from_observability_only(tmp_path):
    inventory = platform(tmp_path, "      - {name: acme, tier: critical}\n")
    findings = [
        finding(RULES["alarms"], True, "acme"),
        finding(RULES["alarms"], False),
        finding(RULES["security"], False),
    ]
    line = build_scorecard(context_for(inventory, live=False), findings)[0]
    assert line.parts["alarms"] == 50.0
    assert line.parts["compliance"] == 0.0
    assert "alarms" not in line.unmeasured


def test_findings_grouped_by_environment_and_tier(tmp_path):
    inventory = platform(
        tmp_path,
        "      - {name: acme, tier: critical}\n      - {name: beta, tier: low}\n",
    )
    findings = [
        finding(RULES["coverage"], False, "acme"),
        finding(RULES["coverage"], True, "beta"),
        finding(RULES["security"], False, environment="elsewhere"),
        finding(RULES["kubernetes"], True, environment=None),
    ]
    lines = build_scorecard(context_for(inventory, live=False), findings)
    assert [line.tier for line in lines] == ["critical", "low"]
    critical, low = lines
    # Each tier counts its tenant's finding and the platform-wide one.
    assert (critical.outstanding, critical.passed) == (1, 1)
    assert (low.outstanding, low.passed) == (0, 2)


def test_runbooks_from_tenant_or_environment(tmp_path):
    inventory = platform(
        tmp_path,
        "      - {name: a, tier: high, runbook: docs/a.md}\n"
        "      - {name: b, tier: high}\n",
    )
    line = build_scorecard(context_for(inventory, live=False), [])[0]
    assert line.parts["runbooks"] == 50.0
    inventory = platform(
        tmp_path / "with-environment",
        "      - {name: b, tier: high}\n",
        extra="    runbooks: [docs/restore.md]\n",
    )
    line = build_scorecard(context_for(inventory, live=False), [])[0]
    assert line.parts["runbooks"] == 100.0


def test_objectives_declared_and_measured(tmp_path):
    inventory = platform(
        tmp_path,
        "      - name: acme\n"
        "        tier: critical\n"
        "        objectives:\n"
        "          logical_corruption: {rto: 30m, rpo: 1h}\n"
        "      - {name: beta, tier: critical}\n",
    )
    repo = repository(tmp_path)
    repo.save_snapshot(snapshot("acme", NOW - timedelta(hours=2)))
    repo.save_snapshot(snapshot("acme", NOW - timedelta(minutes=20)))
    repo.save_drill(drill("acme", NOW - timedelta(days=2), True, 45 * 60))
    line = build_scorecard(context_for(inventory), [])[0]
    acme, beta = line.tenants
    assert (acme.declared_rto, acme.declared_rpo) == (1800, 3600)
    assert acme.measured_rto == 2700
    assert acme.measured_rpo == 1200
    assert acme.rpo_source == "odoo-dr snapshot"
    assert acme.rto_met is False
    assert acme.rpo_met is True
    # beta has the critical tier's logical-corruption objectives and no evidence.
    assert (beta.declared_rto, beta.declared_rpo) == (4 * 3600, 15 * 60)
    assert beta.measured_rto is None
    assert beta.measured_rpo is None
    assert beta.rto_met is None


def test_environment_without_tenants(tmp_path):
    inventory = platform(tmp_path, "      []\n")
    lines = build_scorecard(context_for(inventory, live=False), [])
    assert [line.tier for line in lines] == ["none"]
    assert lines[0].score == 0


@pytest.mark.parametrize(
    ("score", "grade"),
    [(100, "A"), (90, "A"), (89.9, "B"), (75, "B"), (60, "C"), (40, "D"), (39.9, "F")],
)
def test_grades(score, grade):
    line = scorecard.ScoreLine("p", "t", score, dict.fromkeys(WEIGHTS, 0.0), 0, 0, 0)
    assert line.grade == grade


def test_sample_scorecard(tmp_path):
    result = sample_result(tmp_path)
    critical, standard, low = result.scorecard
    assert (critical.environment, critical.tier) == ("production", "critical")
    # compliance 0/16, tested 1/1, alarms 3/6, runbooks 1/1
    assert critical.score == pytest.approx(0 + 30 + 7.5 + 15)
    assert standard.parts["tested_recovery"] == 0.0
    assert (low.environment, low.unmeasured) == (
        "staging",
        ["tested_recovery", "alarms"],
    )
    assert low.excluded == 1
