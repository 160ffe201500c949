"""The module migrations a release brings, and the tables they touch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import query
from odoo_dr.engine import migration
from odoo_dr.errors import RejectedError


def write_module(folder: Path, name: str, manifest: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "__manifest__.py").write_text(manifest)


def test_addons_path_versions_adapted(tmp_path):
    addons = tmp_path / "addons"
    write_module(addons, "stock", "{'name': 'Stock', 'version': '1.2'}")
    write_module(addons, "sale", "{'name': 'Sale', 'version': '17.0.1.3'}")
    write_module(addons, "draft", "{'name': 'Draft', 'installable': False}")
    write_module(addons, "bare", "{'name': 'No version'}")
    (addons / "not_a_module").mkdir()
    modules = migration.modules_from_addons_path([addons], "17.0")
    assert modules == {"bare": "17.0.1.0", "sale": "17.0.1.3", "stock": "17.0.1.2"}


def test_first_addons_folder_wins(tmp_path):
    write_module(tmp_path / "custom", "sale", "{'version': '2.0'}")
    write_module(tmp_path / "core", "sale", "{'version': '1.0'}")
    modules = migration.modules_from_addons_path(
        [tmp_path / "custom", tmp_path / "core"], "17.0"
    )
    assert modules == {"sale": "17.0.2.0"}


def test_manifest_code_is_not_run(tmp_path):
    marker = tmp_path / "ran"
    write_module(
        tmp_path / "addons",
        "evil",
        f"__import__('pathlib').Path({str(marker)!r}).touch() or {{'version': '1'}}",
    )
    with pytest.raises(RejectedError, match="cannot read module manifest"):
        migration.modules_from_addons_path([tmp_path / "addons"], "17.0")
    assert not marker.exists()


def test_modules_file_lines_and_json(tmp_path):
    lines = tmp_path / "modules.txt"
    lines.write_text("# release 4.2\nstock 17.0.1.2\nsale 1.3\n\nnew_module\n")
    assert migration.modules_from_file(lines, "17.0") == {
        "stock": "17.0.1.2",
        "sale": "17.0.1.3",
        "new_module": "17.0.1.0",
    }
    as_json = tmp_path / "modules.json"
    as_json.write_text(json.dumps({"stock": "17.0.1.2", "sale": "1.3"}))
    assert migration.modules_from_file(as_json, "17.0") == {
        "stock": "17.0.1.2",
        "sale": "17.0.1.3",
    }
    bad = tmp_path / "bad.txt"
    bad.write_text("stock 1.0 extra\n")
    with pytest.raises(RejectedError, match="invalid line 1"):
        migration.modules_from_file(bad, "17.0")


def test_versions_compare_by_number():
    assert migration.version_key("17.0.1.10") > migration.version_key("17.0.1.9")
    assert migration.version_key("17.0.2.0") > migration.version_key("17.0.1.15")


def test_plan_lists_changes_and_large_tables():
    before = {"base": "17.0.1.3", "stock": "17.0.1.1", "sale": "17.0.1.2",
              "mail": "17.0.1.15", "web": "17.0.1.0"}  # fmt: skip
    after = {"base": "17.0.1.3", "stock": "17.0.1.2", "sale": "17.0.1.1",
             "mail": "17.0.1.15", "mrp": "17.0.2.0"}  # fmt: skip
    rows = {"stock_move": 5_000_000, "stock_quant": 10, "sale_order": 3,
            "mrp_production": 0, "res_partner": 9}  # fmt: skip
    tables = migration.tables_by_prefix(set(before) | set(after), set(rows))
    plan = migration.plan_migration(before, after, "list", rows, tables, 1_000_000)
    changes = {item.name: item for item in plan.changes}
    assert {name: item.change for name, item in changes.items()} == {
        "stock": "upgrade",
        "sale": "downgrade",
        "web": "removed",
        "mrp": "new",
    }
    assert changes["stock"].tables == {"stock_move": 5_000_000, "stock_quant": 10}
    assert "base" not in changes
    assert any("stock_move (5,000,000 rows)" in text for text in plan.warnings)
    assert any("sale goes down" in text for text in plan.warnings)
    assert any("web 17.0.1.0" in text for text in plan.warnings)
    assert "prefix" in plan.table_method


def test_addons_path_upgrades_installed_only():
    before = {"stock": "17.0.1.1", "web": "17.0.1.0"}
    available = {"stock": "17.0.1.2", "mrp": "17.0.2.0", "hr": "17.0.1.0"}
    after = migration.release_modules(before, available, ["mrp"], addons_only=True)
    assert after == {"stock": "17.0.1.2", "mrp": "17.0.2.0"}
    with pytest.raises(RejectedError, match="not in the addons path"):
        migration.release_modules(before, available, ["missing"], addons_only=True)


def test_tables_from_ir_model(odoo_database, settings):
    summary = odoo_database()
    query(
        summary.database,
        "CREATE TABLE ir_model (id serial PRIMARY KEY, model varchar NOT NULL);"
        "INSERT INTO ir_model (model) VALUES ('stock.move'), ('sale.order');"
        "INSERT INTO ir_model_data (name, module, model, res_id) SELECT"
        " 'model_' || replace(m.model, '.', '_'), x.module, 'ir.model', m.id"
        " FROM ir_model m, (VALUES ('stock'), ('sale_stock')) x(module)"
        " WHERE m.model = 'stock.move' OR x.module = 'stock';",
    )
    with settings.connect(summary.database) as connection:
        found = migration.tables_from_database(
            connection, {"stock_move", "sale_order", "res_partner"}
        )
    assert found is not None
    assert found.tables == {
        "stock": {"stock_move", "sale_order"},
        "sale_stock": {"stock_move"},
    }
    assert "ir_model_data" in found.method


def test_release_examples_are_valid_yaml():
    from ruamel.yaml import YAML

    text = (Path(__file__).parent.parent / "docs" / "releases.md").read_text()
    blocks = []
    inside = None
    for line in text.splitlines():
        if inside is None and line.startswith("```yaml"):
            inside = []
        elif inside is not None and line.startswith("```"):
            blocks.append("\n".join(inside))
            inside = None
        elif inside is not None:
            inside.append(line)
    assert len(blocks) >= 4
    kinds = []
    for block in blocks:
        documents = [doc for doc in YAML(typ="safe").load_all(block) if doc]
        assert documents, block[:80]
        for document in documents:
            assert isinstance(document, dict)
            kinds.append(document.get("kind"))
        assert "pre-deploy" in block
    assert "Job" in kinds
    assert "Kustomization" in kinds


def test_guard_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "odoo_dr", "guard", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "pre-deploy" in result.stdout
    assert "post-deploy" in result.stdout
