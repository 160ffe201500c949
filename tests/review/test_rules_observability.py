"""Observability rules on their pass and fail fixtures."""

from __future__ import annotations

import pytest
from tests.review.rule_cases import check_case, fixture_cases

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.evidence.manifests import AlertRule
from odoo_dr.review.mechanisms import schedule_interval
from odoo_dr.review.rules.observability import FRESHNESS_METRICS, alert_delay
from odoo_dr.review.yamlio import Location

CASES = fixture_cases("OBS-")


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


@pytest.mark.parametrize(
    ("expr", "for_", "delay"),
    [
        ("time() - x > 25 * 3600", "10m", 90600),
        ('(time() - x{cronjob="a"}) > (3600*1.5)', None, 5400),
        ("time() - x >= 90000", "1h30m", 95400),
        ('kube_job_status_failed{job_name=~"backup.*"} > 0', "5m", 300),
        ("absent(x)", "5m", None),
        ("time() - x > y", None, None),
    ],
)
def test_alert_delay(expr, for_, delay):
    alert = AlertRule("a", expr, for_, {}, Location("rules.yaml", 1))
    assert alert_delay(alert) == delay


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("0 * * * *", 3600),
        ("*/15 * * * *", 900),
        ("0 2 * * *", 86400),
        ("@daily", 86400),
        ("@daily-random", 86400),
        ("0 0 2 * * *", 86400),
        ("0 3 * * 0", 604800),
        ("0 1,13 * * 1-5", 216000),
        ("0 0 1 * *", 31 * 86400),
        ("0 0 1 jan *", 366 * 86400),
        ("0 0 29 2 *", None),
        ("every day", None),
        ("61 * * * *", None),
    ],
)
def test_schedule_interval(schedule, seconds):
    assert schedule_interval(schedule) == seconds


def test_exporter_alone_asks_for_down_alert(tmp_path):
    (tmp_path / "exporter.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: pg-exporter}\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - name: exporter\n"
        "          image: prometheuscommunity/postgres-exporter:v0.15.0\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = [f for f in result.findings if f.rule.id == "OBS-003"]
    assert finding.target == "production/postgresql-exporter"
    assert not finding.passed
    # An exporter is not the database it watches.
    assert [f for f in result.findings if f.rule.id == "K8S-003"] == []


@pytest.mark.parametrize(
    ("metric", "freshness"),
    [
        ("pgbackrest_backup_since_last_completion_seconds", True),
        ("pgbackrest_backup_last_completion_time", True),
        ("pgbackrest_backup_last_size_bytes", False),
        ("pgbackrest_backup_last_error_status", False),
        ("pgbackrest_backup_last_duration_seconds", False),
    ],
)
def test_pgbackrest_freshness_metrics(metric, freshness):
    assert FRESHNESS_METRICS["pgbackrest"].matches({metric}) is freshness
