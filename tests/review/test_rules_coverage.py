"""Coverage rules COV-003 onward on their pass and fail fixtures."""

from __future__ import annotations

import pytest
from tests.review.rule_cases import check_case, fixture_cases, rule_findings

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.rules.coverage import schedule_offset

CASES = fixture_cases("COV-003", "COV-004", "COV-005", "COV-006", "COV-007")


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


@pytest.mark.parametrize(
    ("database", "files", "offset"),
    [
        ("0 2 * * *", "0 2 * * *", 0),
        ("0 2 * * *", "10 2 * * *", 600),
        ("0 2 * * *", "30 5 * * *", 12600),
        ("0 * * * *", "30 5 * * *", 1800),
        ("0 2 * * *", "0 2 * * 0", 0),
        ("0 2 * * *", "nonsense", None),
    ],
)
def test_schedule_offset(database, files, offset):
    assert schedule_offset(database, files) == offset


def test_cluster_wide_backup_covers_every_database(pg_plain, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "backup.yaml").write_text(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: full}\n"
        "spec:\n  schedule: '0 1 * * *'\n  jobTemplate:\n    spec:\n      template:\n"
        "        spec:\n          containers:\n            - name: b\n"
        "              image: pgbackrest\n"
        "              command: [pgbackrest, --stanza=main, backup]\n"
    )
    inventory.write_text(
        "environments:\n  - name: p\n    evidence:\n"
        f"      postgres_dsn: '{pg_plain.dsn}'\n      manifests: [manifests]\n"
        "    tenants: [{name: acme}]\n"
    )
    result = run_review(inventory, ReviewOptions(live=True))
    findings = rule_findings(result, "COV-003")
    assert {f.outcome.resource for f in findings} == {
        "database/acme",
        "database/forgotten_copy",
    }
    assert all(f.passed for f in findings)
    assert all("pgbackrest CronJob" in f.outcome.message for f in findings)
