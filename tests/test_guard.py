"""Release guards and rollback, on the real server with an Odoo-shaped tenant."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import query
from odoo_dr.engine.release import load_restore_point, restore_point_key
from odoo_dr.repository.store import Repository

RELEASE_VARIABLES = (
    "ODOO_DR_RELEASE",
    "CI_COMMIT_TAG",
    "GITHUB_REF_NAME",
    "GITHUB_REF_TYPE",
    "CI_COMMIT_SHA",
    "GITHUB_SHA",
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `odoo-dr` without a terminal on stdin, as a CI job does."""
    full_env = {
        key: value for key, value in os.environ.items() if key not in RELEASE_VARIABLES
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "odoo_dr", *args],
        capture_output=True,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def table_checksums(dbname: str) -> dict[str, tuple[int, str]]:
    """Return, per table of schema public, its row count and an MD5 of its rows."""
    tables = [
        row[0]
        for row in query(
            dbname,
            "SELECT relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " AND c.relkind = 'r' ORDER BY relname",
        )
    ]
    result = {}
    for table in tables:
        count, digest = query(
            dbname,
            f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM public.\"{table}\" t",  # noqa: E501
        )[0]
        result[table] = (count, digest)
    return result


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def identity(dbname: str) -> dict[str, str]:
    return dict(
        query(
            dbname,
            "SELECT key, value FROM ir_config_parameter"
            " WHERE key IN ('database.uuid', 'database.secret')",
        )
    )


def common(repository: Repository, root: Path) -> list[str]:
    return ["--repo", repository.location, "--filestore-root", str(root)]


def break_tenant(dbname: str, folder: Path) -> None:
    """Act as a failed release: delete rows, leave a module to upgrade, touch files."""
    query(dbname, "DELETE FROM stock_move_line WHERE id % 2 = 0")
    query(
        dbname, "UPDATE ir_module_module SET state = 'to upgrade' WHERE name = 'sale'"
    )
    query(
        dbname,
        "UPDATE ir_module_module SET latest_version = '17.0.2.0' WHERE name = 'stock'",
    )
    query(dbname, "INSERT INTO res_partner (name) VALUES ('Order after the release')")
    victim = sorted(path for path in folder.rglob("*") if path.is_file())[0]
    victim.unlink()
    (folder / "zz").mkdir(exist_ok=True)
    (folder / "zz" / "written-by-the-release").write_bytes(b"new file")


def take_release_point(
    repository: Repository, database: str, filestore_root: Path
) -> list[str]:
    """Take the restore point of release 4f2a9c1 and return the common options."""
    options = common(repository, filestore_root)
    pre = run("guard", "pre-deploy", database, "--take", *options,
              env={"CI_COMMIT_SHA": "4f2a9c1"})  # fmt: skip
    assert pre.returncode == 0, pre.stderr
    return options


def test_failed_release_blocked_and_rolled_back(
    repository, odoo_database, filestore_root
):
    summary = odoo_database()
    database = summary.database
    options = take_release_point(repository, database, filestore_root)
    point = load_restore_point(repository, database, "4f2a9c1")
    assert point is not None
    assert point.release_source == "$CI_COMMIT_SHA"
    checksums = table_checksums(database)
    files = file_hashes(filestore_root / database)
    identity_before = identity(database)

    break_tenant(database, filestore_root / database)
    post = run("guard", "post-deploy", database, "--release", "4f2a9c1", *options)
    assert post.returncode == 5, post.stderr
    assert "sale: state 'to upgrade'" in post.stdout
    assert "filestore" in post.stderr

    rejected = run("rollback", database, "--to-release", "4f2a9c1", *options)
    assert rejected.returncode == 2, rejected.stderr
    assert "--yes" in rejected.stderr
    assert query(
        database, "SELECT state FROM ir_module_module WHERE name = 'sale'"
    ) == [("to upgrade",)]

    rolled = run("rollback", database, "--to-release", "4f2a9c1", "--yes", "--json",
                 *options)  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr
    report = json.loads(rolled.stdout)
    assert report["passed"] is True
    assert report["restored_snapshot"] == point.snapshot_id
    assert report["discarded_rows"]["res_partner"]["difference"] == 1
    assert report["discarded_rows"]["stock_move_line"]["difference"] < 0
    assert table_checksums(database) == checksums
    assert file_hashes(filestore_root / database) == files
    assert identity(database) == identity_before
    safety = repository.find_snapshot(report["safety_snapshot"])
    assert safety.labels == {"release": "4f2a9c1", "purpose": "before-rollback"}
    assert safety.row_counts["res_partner"] == point_rows(repository, point) + 1

    after = run("guard", "post-deploy", database, "--release", "4f2a9c1", *options)
    assert after.returncode == 0, after.stdout + after.stderr


def point_rows(repository: Repository, point) -> int:
    return repository.find_snapshot(point.snapshot_id).row_counts["res_partner"]


def test_pre_deploy_rejects_undrilled_snapshot(
    repository, odoo_database, filestore_root
):
    summary = odoo_database()
    backup = run("backup", summary.database, *common(repository, filestore_root))
    assert backup.returncode == 0, backup.stderr
    result = run("guard", "pre-deploy", summary.database, "--release", "v1.4",
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "has no passed drill" in result.stderr
    assert load_restore_point(repository, summary.database, "v1.4") is None


def test_pre_deploy_rejects_stale_snapshot(repository, odoo_database, filestore_root):
    summary = odoo_database()
    backup = run("backup", summary.database, *common(repository, filestore_root))
    assert backup.returncode == 0, backup.stderr
    drill = run("drill", summary.database, "--repo", repository.location)
    assert drill.returncode == 0, drill.stderr
    manifest = repository.latest_snapshot(summary.database)
    manifest.snapshot_time -= timedelta(hours=1)
    repository.write_document(
        f"snapshots/{manifest.id}.json", manifest.model_dump_json().encode("utf-8")
    )
    repository.rebuild_catalog()
    tag = {"CI_COMMIT_TAG": "v2.0"}
    result = run("guard", "pre-deploy", summary.database, "--max-age", "15m",
                 "--repo", repository.location, env=tag)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "more than --max-age 15m" in result.stderr
    accepted = run("guard", "pre-deploy", summary.database, "--max-age", "2h",
                   "--repo", repository.location, env=tag)  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert load_restore_point(repository, summary.database, "v2.0") is not None


def test_pre_deploy_needs_release_name(repository, odoo_database):
    result = run("guard", "pre-deploy", "acme", "--repo", repository.location)
    assert result.returncode == 2
    assert "no release name" in result.stderr


def test_pre_deploy_keeps_existing_restore_point(
    repository, odoo_database, filestore_root
):
    summary = odoo_database()
    options = common(repository, filestore_root)
    env = {"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v3.1", "GITHUB_SHA": "ab12"}
    first = run("guard", "pre-deploy", summary.database, "--take", *options, env=env)
    assert first.returncode == 0, first.stderr
    key = restore_point_key(summary.database, "v3.1")
    stored = repository.read_document(key)
    second = run("guard", "pre-deploy", summary.database, "--take", *options, env=env)
    assert second.returncode == 0, second.stderr
    assert "already has its restore point" in second.stderr
    assert repository.read_document(key) == stored


def test_post_deploy_check_sql_rows_fail(
    repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    checks = tmp_path / "checks.sql"
    checks.write_text(
        "-- every confirmed order has lines\n"
        "SELECT id FROM sale_order o WHERE NOT EXISTS\n"
        "  (SELECT 1 FROM sale_order_line l WHERE l.order_id = o.id);\n"
        "SELECT 1 WHERE 'a;b' = 'a;b' AND false;\n"
    )
    options = common(repository, filestore_root)
    passed = run("guard", "post-deploy", summary.database, "--check-sql", str(checks),
                 *options)  # fmt: skip
    assert passed.returncode == 0, passed.stdout + passed.stderr
    query(summary.database, "DELETE FROM sale_order_line WHERE order_id = 1")
    failed = run("guard", "post-deploy", summary.database, "--check-sql", str(checks),
                 *options)  # fmt: skip
    assert failed.returncode == 5
    assert "query 1 (SELECT id FROM sale_order o WHERE NOT EXISTS) returned (1,)" in (
        failed.stdout
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"CI_COMMIT_TAG": "v1", "CI_COMMIT_SHA": "abc"}, "v1"),
        ({"GITHUB_REF_NAME": "main", "GITHUB_SHA": "def"}, "def"),
        ({"GITHUB_REF_NAME": "v2", "GITHUB_REF_TYPE": "tag", "GITHUB_SHA": "d"}, "v2"),
    ],
)
def test_release_name_from_environment(monkeypatch, variables, expected):
    from odoo_dr.engine.release import resolve_release

    for name in RELEASE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert resolve_release(None)[0] == expected
    assert resolve_release("explicit") == ("explicit", "--release")


def test_post_deploy_checks_planned_versions(
    repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    database = summary.database
    options = common(repository, filestore_root)
    modules = tmp_path / "modules.json"
    rows = query(
        database,
        "SELECT name, latest_version FROM ir_module_module WHERE state = 'installed'",
    )
    installed = dict(rows)
    modules.write_text(json.dumps({**installed, "stock": "1.2"}))
    plan = ["--modules-file", str(modules), "--large-rows", "100"]
    pre = run("guard", "pre-deploy", database, "--take", "--release", "v5", *plan,
              *options)  # fmt: skip
    assert pre.returncode == 0, pre.stderr
    assert "the upgrade of stock touches large tables: stock_move" in pre.stderr
    point = load_restore_point(repository, database, "v5")
    assert point.migration.expected["stock"] == "17.0.1.2"
    assert [item.name for item in point.migration.changes] == ["stock"]

    not_upgraded = run("guard", "post-deploy", database, "--release", "v5", *options)
    assert not_upgraded.returncode == 5
    assert "stock: version 17.0.1.1, expected 17.0.1.2" in not_upgraded.stdout
    query(
        database,
        "UPDATE ir_module_module SET latest_version = '17.0.1.2' WHERE name = 'stock'",
    )
    upgraded = run("guard", "post-deploy", database, "--release", "v5", *options)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr


def test_rollback_rejects_changed_manifest(repository, odoo_database, filestore_root):
    summary = odoo_database()
    database = summary.database
    options = take_release_point(repository, database, filestore_root)
    (path,) = (Path(repository.location) / "snapshots").iterdir()
    text = path.read_text()
    assert '"res_company": 1,' in text
    path.write_text(text.replace('"res_company": 1,', '"res_company": 2,'))
    assert run("verify", "--repo", repository.location).returncode == 5

    rolled = run("rollback", database, "--to-release", "4f2a9c1", "--yes",
                 "--no-safety-snapshot", *options)  # fmt: skip
    assert rolled.returncode == 2, rolled.stderr
    assert "its SHA-256 differs" in rolled.stderr
