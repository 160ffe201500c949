"""Drills: restore a neutralized copy, check it, record RTO and RPO."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from conftest import accept_manifests, admin_connection, database_exists, query
from mounts import odoo_dr, read_only, run_in_namespace
from odoo_dr.engine.business_checks import DEFAULT_CHECKS
from odoo_dr.pg import temporary


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
        *(check.name for check in DEFAULT_CHECKS),
        "stock totals",
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


def test_unknown_allowed_cron_warned(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    query(
        summary.database,
        "DELETE FROM ir_model_data WHERE model = 'ir.cron' AND module = 'base'"
        " AND name = 'autovacuum_job'",
    )
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    result = cli(
        "drill", snapshot, "--allow-cron", "sale.no_such_job", "--json",
        "--repo", repository.location,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert warnings == [
        "--allow-cron sale.no_such_job: no scheduled action with this XML id"
    ]


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
    # A damaged manifest claims a module version the dump does not contain. The
    # catalog finds the change first; once the catalog accepts it, the check must.
    manifest.odoo.modules["stock"] = "17.0.9.9"
    repository.backend.write(
        f"snapshots/{manifest.id}.json", manifest.model_dump_json().encode()
    )
    rejected = cli("drill", snapshot, "--repo", repository.location)
    assert rejected.returncode == 2
    assert "its SHA-256 differs" in rejected.stderr
    accept_manifests(repository.location)
    result = cli("drill", snapshot, "--repo", repository.location)
    assert result.returncode == 5
    assert "modules: stock: version 17.0.1.1, snapshot had 17.0.9.9" in result.stdout


def test_read_only_repository_rejected_first(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    temp = tmp_path / "temp"
    temp.mkdir()
    script = f"""
{read_only(Path(repository.location))}
{odoo_dr("drill", snapshot, "--temp-dir", str(temp), "--repo", repository.location)}
"""
    result = run_in_namespace(script)
    assert result.returncode == 2, result.stderr
    assert f"repository {repository.location} is not writable" in result.stderr
    assert "a drill saves its record under drills/" in result.stderr
    assert f"{repository.location}/" in result.stderr
    assert "Read-only file system" in result.stderr
    # Nothing was restored: no scratch database, no scratch folder.
    assert not query(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE %s",
        (f"odoo-dr-drill-{snapshot}-%",),
    )
    assert list(temp.iterdir()) == []
    assert repository.list_drills() == []


# Runs the command line, and kills itself (SIGKILL) right after the Nth SQL statement
# that names a drill's scratch database, counting from 1.
KILL_AFTER_STATEMENT = """
import os, signal, sys
import psycopg
from psycopg import sql
from odoo_dr.cli.app import main

kill_after = int(sys.argv.pop(1))
seen = 0
execute = psycopg.Connection.execute

def execute_then_kill(self, query, *args, **kwargs):
    global seen
    text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
    cursor = execute(self, query, *args, **kwargs)
    if "odoo-dr-drill-" in text:
        seen += 1
        if seen == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return cursor

psycopg.Connection.execute = execute_then_kill
sys.argv[0] = "odoo-dr"
main()
"""


def test_killed_drill_leaves_no_unmarked_database(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    """A drill killed at any statement on its scratch database leaves it marked.

    Every leftover is then dropped by the next run's cleanup, whichever statement the
    kill followed: the swap into place, the mark, the checks or the drop.
    """
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    temp = tmp_path / "temp"
    temp.mkdir()
    kills = 0
    # The statements run in order: the swapping mark on the restored database, its
    # rename, the drill mark, two ALTER DATABASE, the drill's own mark, the drop.
    for kill_after in range(1, 30):
        process = subprocess.Popen(
            [sys.executable, "-c", KILL_AFTER_STATEMENT, str(kill_after), "drill",
             snapshot, "--temp-dir", str(temp), "--repo", repository.location],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _out, err = process.communicate(timeout=300)
        if process.returncode != -signal.SIGKILL:
            # The drill ran past its last such statement and finished.
            assert process.returncode == 0, err
            break
        kills += 1
        left = query(
            "postgres",
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname LIKE %s OR shobj_description(oid, 'pg_database') LIKE %s",
            (f"odoo-dr-drill-{snapshot}-%", f"odoo-dr % of pid {process.pid} %"),
        )
        database_names.extend(name for name, _comment in left)
        for name, comment in left:
            mark = temporary.parse_mark(comment)
            assert mark is not None, f"{name} unmarked after kill {kill_after}"
            assert temporary.abandoned(mark), f"{name}: {comment}"
        with admin_connection() as connection:
            temporary.clean_stale(connection)
        for name, _comment in left:
            assert not database_exists(name), f"{name} kept after kill {kill_after}"
    assert kills >= 5, "the drill issued fewer statements than expected"
    # The drill that finished removed the scratch folders of the killed ones.
    assert list(temp.iterdir()) == []
