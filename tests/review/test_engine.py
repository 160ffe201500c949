"""The review engine on small inputs: inventories, folders, suppressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.inventory import (
    InventoryError,
    format_duration,
    load_inventory,
    parse_duration,
)
from odoo_dr.review.reports import common

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


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90min", 5400), ("1h30m", 5400), ("1h30min", 5400), ("1d 12h", 129600)],
)
def test_durations_with_several_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "1x", "h", "1h30"])
def test_invalid_durations_rejected(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0, "0s"),
        (45.4, "45s"),
        (59.6, "1min"),
        (900, "15min"),
        (5400, "1h30min"),
        (72 * 3600, "3d"),
        (72 * 3600 + 0.4, "3d"),
        (259199.7, "3d"),
        (95400, "1d2h30min"),
        (1.5 * 86400, "1d12h"),
        (604800, "1w"),
        (30 * 86400, "30d"),
        (3725, "1h2min"),
        (125, "2min5s"),
        (-120, "-2min"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    if seconds is not None and seconds >= 0:
        # What is printed reads back as the same duration, to the unit shown.
        assert abs(parse_duration(text) - seconds) <= 30


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


def test_absolute_folder_targets_and_locations(cli, tmp_path):
    write(tmp_path / "platform" / "odoo.conf", "[options]\ndb_name = acme\n")
    result = cli("review", str(tmp_path / "platform"), "--no-live", "-f", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["base_dir"] == str((tmp_path / "platform").resolve())
    targets = [item["target"] for item in report["findings"]]
    assert all("//" not in target for target in targets), targets
    [manager] = [item for item in report["findings"] if item["rule"] == "SEC-001"]
    assert manager["target"] == "production/odoo.conf"
    assert (manager["file"], manager["line"]) == ("odoo.conf", 1)
    terminal = cli("review", str(tmp_path / "platform"), "--no-live").stdout
    assert "production/odoo.conf: list_db is not set" in terminal
    assert "at odoo.conf:1" in terminal
    assert "//" not in terminal


def test_file_outside_inventory_folder_absolute(tmp_path):
    shared = write(tmp_path / "shared" / "odoo.conf", "[options]\nlist_db = True\n")
    inventory = write(
        tmp_path / "platform" / "inventory.yaml",
        "environments:\n  - name: production\n"
        "    evidence: {odoo_conf: [../shared/odoo.conf]}\n"
        "    tenants: [{name: acme}]\n",
    )
    result = run_review(inventory, OFFLINE)
    [finding] = [item for item in result.findings if item.rule.id == "SEC-001"]
    assert finding.target == "production" + str(shared.resolve())
    assert common.location_text(finding, result.base_dir) == f"{shared.resolve()}:2"
