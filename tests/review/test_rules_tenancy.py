"""Tenancy rules on their fixtures, on inventories written by the tests, and the
hosting recommendation on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.review.rule_cases import check_case, fixture_cases, rule_findings

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.inventory import Hosting, Tenant
from odoo_dr.review.model import Finding, Severity
from odoo_dr.review.rules.tenancy import recommend_hosting

CASES = fixture_cases("TEN-")
OFFLINE = ReviewOptions(live=False)


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


def review(folder: Path, inventory: str, conf: str, rule_id: str) -> list[Finding]:
    (folder / "inventory.yaml").write_text(inventory)
    (folder / "odoo.conf").write_text(conf)
    return rule_findings(run_review(folder, OFFLINE), rule_id)


TWO_TENANTS = """\
environments:
  - name: production
    evidence: {odoo_conf: [odoo.conf]}
    tenants: [{name: alpha}, {name: beta}]
"""
ONE_TENANT = """\
environments:
  - name: production
    evidence: {odoo_conf: [odoo.conf]}
    tenants: [{name: alpha}]
"""


def test_dbfilter_missing_names_any_database(tmp_path):
    findings = review(tmp_path, TWO_TENANTS, "[options]\nlist_db = False\n", "TEN-001")
    assert [item.passed for item in findings] == [False]
    assert "dbfilter is not set" in findings[0].outcome.message
    assert "any database on the server" in findings[0].outcome.message
    assert findings[0].location.line == 1


def test_single_db_name_passes(tmp_path):
    findings = review(tmp_path, TWO_TENANTS, "[options]\ndb_name = alpha\n", "TEN-001")
    assert [item.passed for item in findings] == [True]
    assert findings[0].location.line == 2


def test_dedicated_single_tenant_not_checked(tmp_path):
    conf = "[options]\nlist_db = True\n"
    assert review(tmp_path, ONE_TENANT, conf, "TEN-001") == []
    assert rule_findings(run_review(tmp_path, OFFLINE), "TEN-002") == []


def test_tenant_hosted_multi_tenant_counts(tmp_path):
    inventory = ONE_TENANT.replace(
        "{name: alpha}", "{name: alpha, hosting: multi-tenant}"
    )
    findings = review(tmp_path, inventory, "[options]\nproxy_mode = True\n", "TEN-002")
    assert [item.passed for item in findings] == [False]
    assert "tenants hosted multi-tenant: alpha" in findings[0].outcome.message


def test_undeclared_profile_gets_no_advice(tmp_path):
    assert review(tmp_path, ONE_TENANT, "[options]\n", "TEN-003") == []


def test_advice_is_info(tmp_path):
    inventory = ONE_TENANT.replace("{name: alpha}", "{name: alpha, tier: low}")
    findings = review(tmp_path, inventory, "[options]\n", "TEN-003")
    assert [item.passed for item in findings] == [False]
    assert findings[0].severity == Severity.INFO
    assert "hosted dedicated; the profile suggests multi-tenant" in (
        findings[0].outcome.message
    )


@pytest.mark.parametrize(
    ("profile", "hosting", "reason"),
    [
        ({"tier": "low"}, Hosting.MULTI_TENANT, "nothing calls for isolation"),
        ({"tier": "standard", "customization": "medium"}, Hosting.MULTI_TENANT, ""),
        (
            {"tier": "high", "integration_load": "medium"},
            Hosting.HYBRID,
            "tier high, integration load medium",
        ),
        (
            {"tier": "standard", "sla": "99.9% in office hours"},
            Hosting.MULTI_TENANT,
            "",
        ),
        ({"tier": "critical"}, Hosting.DEDICATED, "tier critical"),
        ({"tier": "low", "regulated": True}, Hosting.DEDICATED, "regulated"),
        ({"tier": "low", "sla": "99.95%"}, Hosting.DEDICATED, "SLA 99.95%"),
        ({"tier": "low", "customization": "high"}, Hosting.DEDICATED, ""),
        (
            {
                "tier": "low",
                "integrations": [{"kind": "edi", "name": str(n)} for n in range(3)],
                "integration_load": "medium",
            },
            Hosting.HYBRID,
            "integration load medium, 3 integrations",
        ),
        (
            {
                "tier": "low",
                "integrations": [{"kind": "api", "name": str(n)} for n in range(5)],
            },
            Hosting.DEDICATED,
            "5 integrations",
        ),
    ],
)
def test_recommend_hosting(profile, hosting, reason):
    recommended, text = recommend_hosting(Tenant(name="t", **profile))
    assert recommended == hosting
    assert reason in text
