"""Inputs that broke `odoo-dr serve`, `odoo-dr run` and `odoo-dr alerts render`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import InventoryError, load_inventory


def write_schedule_inventory(folder: Path, schedule: str) -> Path:
    """Write an inventory of one tenant with `schedule`, whose repository is `repo`."""
    path = folder / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        "environments:\n"
        "  - name: prod\n"
        "    evidence: {repository: repo}\n"
        "    tenants:\n"
        "      - name: shop\n"
        "        tier: standard\n"
        f"        schedule: {schedule}\n"
    )
    if not (folder / "repo").exists():
        Repository.init(str(folder / "repo"))
    return path


@pytest.mark.parametrize(
    "schedule",
    ["{backup: 99999999d}", "{verify: 1000000w}", "{backup: 99999999999}"],
)
def test_huge_schedule_rejected(tmp_path: Path, schedule: str):
    inventory = write_schedule_inventory(tmp_path, schedule)

    with pytest.raises(InventoryError) as error:
        load_inventory(inventory)

    assert "the maximum is 36500d" in str(error.value)


@pytest.mark.parametrize("value", ["true", "false"])
def test_boolean_schedule_rejected(tmp_path: Path, value: str):
    inventory = write_schedule_inventory(tmp_path, f"{{backup: {value}}}")

    with pytest.raises(InventoryError) as error:
        load_inventory(inventory)

    assert "invalid duration" in str(error.value)


def test_huge_interval_run_exits_2(tmp_path: Path):
    inventory = write_schedule_inventory(tmp_path, "{backup: 99999999d}")

    result = run_cli("run", "--inventory", str(inventory), "--dry-run")

    assert result.returncode == 2, result.stderr
    assert "unexpected" not in result.stderr
    assert "the maximum is 36500d" in result.stderr


def test_hundred_years_accepted(tmp_path: Path):
    inventory = write_schedule_inventory(tmp_path, "{backup: 36500d}")

    loaded, _base = load_inventory(inventory)

    schedule = loaded.environments[0].tenants[0].schedule
    assert schedule.backup == 36500 * 86400
