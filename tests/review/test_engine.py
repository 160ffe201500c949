"""The review engine on small inputs: inventories, folders, suppressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.inventory import InventoryError, load_inventory

OFFLINE = ReviewOptions(live=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_without_inventory_states_assumptions(tmp_path):
    write(tmp_path / "odoo.conf", "[options]\ndb_name = acme\nlist_db = False\n")
    result = run_review(tmp_path, OFFLINE)
    assert any("one production environment" in note for note in result.assumptions)
    assert any("strictest tier (critical)" in note for note in result.assumptions)
    tenants = {item.outcome.tenant for item in result.findings if item.outcome.tenant}
    assert tenants == {"acme"}


def test_inventory_error_names_file_line_field(tmp_path):
    path = write(
        tmp_path / "inventory.yaml",
        "environments:\n"
        "  - name: production\n"
        "    tenants:\n"
        "      - name: acme\n"
        "        tier: golden\n"
        "      - name: beta\n"
        "        objectives:\n"
        "          zone_loss: {rto: soon, rpo: 5m}\n",
    )
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    problems = raised.value.problems
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:8: environments[0].tenants[1].objectives")
    assert "invalid duration 'soon'" in problems[0]


def test_unknown_tier_named(tmp_path):
    path = write(
        tmp_path / "inventory.yaml",
        "environments:\n  - name: p\n    tenants:\n"
        "      - name: a\n        tier: gold\n",
    )
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert raised.value.problems == [
        f"{path}:5: environments[0].tenants[0].tier: unknown tier 'gold'; "
        "known tiers: critical, high, low, standard"
    ]


def test_unknown_field_rejected(tmp_path):
    path = write(tmp_path / "inventory.yaml", "environments: []\nenvironmets: []\n")
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert raised.value.problems == [
        f"{path}:2: environmets: Extra inputs are not permitted"
    ]


def test_durations_parsed(tmp_path):
    path = write(
        tmp_path / "inventory.yaml",
        "tiers:\n  gold:\n    drill_every: 2w\n    objectives:\n"
        "      region_loss: {rto: 90m, rpo: 30}\n"
        "environments:\n  - name: p\n    tenants: [{name: a, tier: gold}]\n",
    )
    inventory, _base = load_inventory(path)
    gold = inventory.tier("gold")
    assert gold.drill_every == 14 * 86400
    assert gold.objectives["region_loss"].rto == 5400
    assert gold.objectives["region_loss"].rpo == 30


def test_review_cli_json_and_fail_on(cli, tmp_path):
    write(tmp_path / "odoo.conf", "[options]\ndb_name = acme\nadmin_passwd = admin\n")
    result = cli("review", str(tmp_path), "--format", "json", "--no-live")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    failed = {item["rule"] for item in report["findings"] if item["status"] == "fail"}
    assert {"SEC-001", "SEC-002", "COV-001"} <= failed
    gated = cli("review", str(tmp_path), "--no-live", "--fail-on", "critical")
    assert gated.returncode == 5
    assert "at or above critical" in gated.stderr


def test_review_schema_is_json_schema(cli):
    result = cli("review", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Inventory"
    assert "environments" in schema["required"]
