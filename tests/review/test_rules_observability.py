"""Observability rules on their pass and fail fixtures."""

from __future__ import annotations

import pytest
from tests.review.rule_cases import check_case, fixture_cases

from odoo_dr.review.evidence.manifests import AlertRule
from odoo_dr.review.mechanisms import schedule_interval
from odoo_dr.review.rules.observability import alert_delay
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
