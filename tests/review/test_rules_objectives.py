"""Objective rules on their pass and fail fixtures."""

from __future__ import annotations

import pytest
from tests.review.rule_cases import (
    build_repositories,
    check_case,
    fixture_cases,
    rule_findings,
)

from odoo_dr.review.engine import ReviewOptions, run_review

CASES = fixture_cases("OBJ-")


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


def test_drill_outside_window_fails(tmp_path):
    build_repositories(
        tmp_path,
        {
            "repo": {
                "snapshots": [{"tenant": "acme"}],
                "drills": [{"tenant": "acme", "age": "40d"}],
            }
        },
    )
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    evidence: {repository: repo}\n"
        "    tenants: [{name: acme, tier: critical}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=True))
    [finding] = rule_findings(result, "OBJ-004")
    assert not finding.passed
    assert "outside the critical window of 30d" in finding.outcome.message


def test_tier_assumed_without_inventory(tmp_path):
    (tmp_path / "odoo.conf").write_text("[options]\ndb_name = acme\n")
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-001")
    assert not finding.passed
    assert finding.outcome.message.startswith("no tier declared; assumed critical")


def test_drill_evidence_missing_offline(tmp_path):
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    evidence: {repository: repo}\n"
        "    tenants: [{name: acme, tier: low}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-004")
    assert not finding.evaluated
    assert not finding.failed
    assert "the repository repo was not read" in finding.outcome.message
    assert result.failed() == [
        item for item in result.findings if item.failed and item.rule.id != "OBJ-004"
    ]
    [line] = result.scorecard
    assert line.not_evaluated >= 1
    assert finding not in result.failed()


def test_drill_without_repository_fails(tmp_path):
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    tenants: [{name: acme, tier: low}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-004")
    assert finding.failed
    assert "no odoo-dr repository in the evidence" in finding.outcome.message


def test_rpo_from_manifest_archive_timeout(tmp_path):
    (tmp_path / "cluster.yaml").write_text(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: db}\n"
        "spec:\n  instances: 2\n  postgresql:\n    parameters:\n"
        "      archive_timeout: 5min\n  backup:\n    barmanObjectStore:\n"
        "      destinationPath: s3://bucket/db\n"
    )
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    evidence: {manifests: [cluster.yaml]}\n"
        "    tenants: [{name: acme, tier: critical}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-002")
    assert finding.passed
    assert "achieved RPO 5min" in finding.outcome.message
    assert "declared in the manifests, not measured" in finding.outcome.message
    assert "at least every 5min (archive_timeout)" in finding.outcome.message
    assert finding.location.line == 8


def test_rpo_cloudnative_pg_default_timeout(tmp_path):
    (tmp_path / "cluster.yaml").write_text(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: db}\n"
        "spec:\n  backup:\n    barmanObjectStore:\n"
        "      destinationPath: s3://bucket/db\n---\n"
        "apiVersion: postgresql.cnpg.io/v1\nkind: ScheduledBackup\n"
        "metadata: {name: daily}\nspec:\n  schedule: '0 0 2 * * *'\n"
    )
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    evidence: {manifests: [cluster.yaml]}\n"
        "    tenants: [{name: acme, tier: critical}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-002")
    assert finding.passed
    assert "CloudNativePG's default archive_timeout" in finding.outcome.message
    assert "achieved RPO 5min" in finding.outcome.message


def test_rpo_archiving_without_timeout_is_low(tmp_path):
    (tmp_path / "postgres.yaml").write_text(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - name: postgres\n          image: postgres:16\n"
        "          args: [-c, archive_mode=on,\n"
        "                 -c, 'archive_command=wal-g wal-push %p']\n"
        "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: base}\n"
        "spec:\n  schedule: '0 2 * * *'\n  jobTemplate:\n    spec:\n      template:\n"
        "        spec:\n          containers:\n            - name: walg\n"
        "              image: wal-g:3\n              command: [wal-g, backup-push]\n"
    )
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    evidence: {manifests: [postgres.yaml]}\n"
        "    tenants: [{name: acme, tier: critical}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-002")
    assert finding.failed
    assert finding.severity.label == "low"
    message = finding.outcome.message
    assert "backups alone give an RPO of 1d" in message
    assert "wal-g wal archiving is declared in the manifests" in message
    assert "without archive_timeout" in message


def test_rpo_not_evaluated_without_live(tmp_path):
    (tmp_path / "inventory.yaml").write_text(
        "environments:\n  - name: p\n    evidence: {repository: repo}\n"
        "    tenants: [{name: acme, tier: low}]\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [finding] = rule_findings(result, "OBJ-002")
    assert not finding.evaluated
    assert "the repository repo was not read" in finding.outcome.message
