"""Drills: restore a neutralized copy, check it, record RTO and RPO."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import database_exists, query


def take_backup(cli, repository, name: str, root: Path) -> str:
    result = cli(
        "backup", name, "--repo", repository.location, "--filestore-root", str(root)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_drill_passes_and_is_recorded(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    result = cli("drill", snapshot, "--json", "--repo", repository.location)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(result.stdout)
    assert record["passed"] is True
    assert [check["name"] for check in record["checks"]] == [
        "row counts",
        "filestore",
        "sequences",
        "modules",
        "neutralized",
        "copy identity",
    ]
    assert all(check["passed"] for check in record["checks"])
    assert record["rto_seconds"] > 0
    assert record["rpo_seconds"] >= 0
    assert "restore database and files" in record["steps"]
    assert "checks" in record["steps"]
    assert record["rto_seconds"] == round(sum(record["steps"].values()), 3)
    stored = repository.list_drills(summary.database)
    assert [drill.id for drill in stored] == [record["id"]]
    assert not database_exists(record["scratch_database"])
    assert not Path(record["scratch_filestore"]).exists()


def test_drill_by_tenant_uses_latest(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    take_backup(cli, repository, summary.database, filestore_root)
    latest = take_backup(cli, repository, summary.database, filestore_root)
    result = cli("drill", summary.database, "--json", "--repo", repository.location)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["snapshot_id"] == latest


def test_drill_keep_leaves_scratch_copy(
    cli, repository, odoo_database, filestore_root, database_names
):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    result = cli("drill", snapshot, "--keep", "--json", "--repo", repository.location)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    database_names.append(record["scratch_database"])
    assert record["kept"] is True
    assert database_exists(record["scratch_database"])
    assert len(list(Path(record["scratch_filestore"]).rglob("*"))) > summary.files


def test_drill_reports_sequence_behind(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    query(summary.database, "SELECT setval('stock_move_id_seq', 5)")
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    result = cli("drill", snapshot, "--repo", repository.location)
    assert result.returncode == 5
    assert (
        "sequences: stock_move.id: sequence stock_move_id_seq would return 6"
        in result.stdout
    )


def test_drill_reports_active_cron_outside_allow_list(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    allowed = cli(
        "drill", snapshot, "--repo", repository.location,
        "--allow-cron", "base.autovacuum_job",
        "--allow-cron", "mail.ir_cron_mail_scheduler_action",
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout


def test_drill_unknown_reference_rejected(cli, repository):
    result = cli("drill", "no-such-thing", "--repo", repository.location)
    assert result.returncode == 2
    assert "no snapshot or tenant named 'no-such-thing'" in result.stderr


def test_drill_of_changed_modules_fails(
    cli, repository, odoo_database, filestore_root, settings
):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    manifest = repository.find_snapshot(snapshot)
    # A damaged manifest claims a module version the dump does not contain: the check
    # must notice.
    manifest.odoo.modules["stock"] = "17.0.9.9"
    repository.backend.write(
        f"snapshots/{manifest.id}.json", manifest.model_dump_json().encode()
    )
    result = cli("drill", snapshot, "--repo", repository.location)
    assert result.returncode == 5
    assert "modules: stock: version 17.0.1.1, snapshot had 17.0.9.9" in result.stdout
