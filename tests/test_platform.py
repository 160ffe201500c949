"""Whole-environment backup, drill, restore and runbook on real servers.

The environment has three tenants in three tiers on the machine's PostgreSQL,
Redis sessions in a database of the machine's Redis, and a manifests folder under
Git. The restore goes to a second PostgreSQL cluster made with initdb, as a
recovery into another region would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from conftest import clone_demo, drop_leftovers, free_port, run_cli
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.store import Repository
from pitr_cluster import Cluster

# Each xdist worker gets Redis databases of its own, since both may run tests of
# this module at once: sessions, restore target, and the example's sessions.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SESSIONS_DB = 2 + 3 * (_WORKER % 2)
TENANTS = {"critical": "plat_dispatch", "standard": "plat_sales", "low": "plat_archive"}


def _inventory(folder: Path, names: dict[str, str], redis_db: int) -> Path:
    manifests = folder / "k8s"
    manifests.mkdir()
    (manifests / "odoo.yaml").write_text(
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\n"
        "metadata: {name: odoo, namespace: prod}\n"
        "spec:\n  routes:\n"
        "    - match: Host(`erp.example.test`)\n      kind: Rule\n"
        "      services: [{name: odoo, port: 8069}]\n"
    )
    lines = [
        "version: 1",
        "platform: Test Logistics",
        "environments:",
        "  - name: production",
        "    evidence:",
        "      manifests: [k8s]",
        f"      redis_url: redis://127.0.0.1:6379/{redis_db}",
        "    services:",
        "      - {name: redis-sessions, kind: redis, role: sessions}",
        "    tenants:",
    ]
    for tier, name in names.items():
        lines += [f"      - name: {name}", f"        tier: {tier}"]
        if tier == "critical":
            lines += [
                "        redis_role: [sessions]",
                "        checks:",
                "          - name: partners present",
                "            sql: SELECT count(*) > 0 FROM res_partner",
                "            expect: {value: true}",
            ]
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        [
            "git", "-c", "user.name=t", "-c", "user.email=t@example.test",
            "commit", "-q", "-m", "platform",
        ],
    ):  # fmt: skip
        subprocess.run(command, cwd=folder, check=True)
    return path


@dataclass
class Platform:
    inventory: Path
    repo: Path
    filestore_root: Path
    names: dict[str, str]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, small_template) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("platform")
    suffix = str(os.getpid())
    names = {tier: f"{name}_{suffix}" for tier, name in TENANTS.items()}
    settings = PgSettings()
    root = folder / "filestore"
    for name in names.values():
        clone_demo(settings, small_template, name, root)
    sessions = redis.Redis(host="127.0.0.1", port=6379, db=SESSIONS_DB)
    sessions.flushdb()
    for number in range(50):
        sessions.set(f"session:{number}", f"user {number}", ex=3600)
    repo = folder / "repo"
    assert run_cli("init", "--repo", str(repo)).returncode == 0
    try:
        yield Platform(_inventory(folder, names, SESSIONS_DB), repo, root, names)
    finally:
        sessions.flushdb()
        drop_leftovers(list(names.values()))


def _cli(platform: Platform, *args: str):
    return run_cli(
        *args, "--inventory", str(platform.inventory), "--repo", str(platform.repo)
    )


@pytest.fixture(scope="module")
def backed_up(platform):
    result = _cli(
        platform, "platform", "backup", "production",
        "--filestore-root", str(platform.filestore_root), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_backup_in_tier_order(platform, backed_up):
    order = [item["tenant"] for item in backed_up["tenants"]]
    assert order == [
        platform.names["critical"],
        platform.names["standard"],
        platform.names["low"],
    ]
    assert all(item["status"] == "ok" for item in backed_up["tenants"])
    assert backed_up["configuration_commit"]
    (sessions,) = [item for item in backed_up["redis"] if item["status"] == "captured"]
    assert sessions["role"] == "sessions"


def test_drill_reports_tier_recovery(platform, backed_up):
    result = _cli(platform, "platform", "drill", "production", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(result.stdout)
    assert record["source"] == backed_up["id"]
    tiers = {item["tier"]: item for item in record["tiers"]}
    assert tiers["critical"]["done_after_seconds"] is not None
    assert (
        tiers["critical"]["done_after_seconds"]
        <= tiers["standard"]["done_after_seconds"]
    )
    assert tiers["critical"]["met"] is True
    assert [item["status"] for item in record["redis"]] == ["restored"]
    assert all(item["drill_id"] for item in record["tenants"])
    (critical,) = Repository.open(str(platform.repo)).list_drills(
        platform.names["critical"]
    )
    checks = {check.name: check.passed for check in critical.checks}
    assert checks["partners present"] is True

    text = run_cli(
        "runbook", "production", "--inventory", str(platform.inventory),
        "--repo", str(platform.repo),
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    critical = text.stdout.index(f"Restore tier critical: {platform.names['critical']}")
    low = text.stdout.index(f"Restore tier low: {platform.names['low']}")
    assert critical < low
    assert "Last platform drill" in text.stdout
    # Each multi-line command continues its lines, so it can be pasted as it is.
    assert ' \\\n    --to "$TARGET_DSN"' in text.stdout
    assert "erp.example.test" in text.stdout
    html = run_cli(
        "runbook", "production", "--format", "html",
        "--inventory", str(platform.inventory), "--repo", str(platform.repo),
    )  # fmt: skip
    assert html.returncode == 0, html.stderr
    assert "<h3>" in html.stdout


def test_restore_to_another_cluster(platform, backed_up, tmp_path):
    target = Cluster.create(free_port())
    target_redis = redis.Redis(host="127.0.0.1", port=6379, db=SESSIONS_DB + 1)
    target_redis.flushdb()
    try:
        result = _cli(
            platform, "platform", "restore", "production",
            "--to", target.dsn, "--target-filestore-root", str(tmp_path / "fs"),
            "--redis-url", f"redis://127.0.0.1:6379/{SESSIONS_DB + 1}",
            "--config-out", str(tmp_path / "config"), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads(result.stdout)
        assert all(item["status"] == "ok" for item in record["tenants"])
        for name in platform.names.values():
            rows = target.execute(name, "SELECT count(*) FROM res_partner")
            assert rows[0][0] > 0
            assert (tmp_path / "fs" / name).is_dir()
        assert target_redis.dbsize() == 50
        assert (tmp_path / "config" / "k8s" / "odoo.yaml").is_file()
    finally:
        target_redis.flushdb()
        target.remove()


def test_one_failing_tenant_does_not_stop_the_rest(platform, small_template, tmp_path):
    missing = platform.names["standard"]
    drop_leftovers([missing])
    try:
        result = _cli(
            platform, "platform", "backup", "production",
            "--filestore-root", str(platform.filestore_root), "--json",
        )  # fmt: skip
        assert result.returncode == 3, result.stdout + result.stderr
        record = json.loads(result.stdout)
        status = {item["tenant"]: item for item in record["tenants"]}
        assert status[missing]["status"] == "failed"
        assert missing in status[missing]["error"]
        others = [name for name in platform.names.values() if name != missing]
        assert all(status[name]["status"] == "ok" for name in others)
    finally:
        clone_demo(PgSettings(), small_template, missing, platform.filestore_root)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "regional-distributor"
EXAMPLE_REDIS_DB = SESSIONS_DB + 2


def test_regional_distributor_example(tmp_path, small_template):
    """Drill the example's production environment: every tenant, sessions, config."""
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE, folder)
    suffix = str(os.getpid())
    inventory = folder / "inventory.yaml"
    text = inventory.read_text()
    names = ["nordwind_de", "nordwind_at", "nordwind_ch"]
    for name in names:
        text = text.replace(f"name: {name}\n", f"name: {name}_{suffix}\n")
    inventory.write_text(text)
    databases = [f"{name}_{suffix}" for name in names]
    root = tmp_path / "filestore"
    for database in databases:
        clone_demo(PgSettings(), small_template, database, root)
    sessions = redis.Redis(host="127.0.0.1", port=6379, db=EXAMPLE_REDIS_DB)
    sessions.flushdb()
    sessions.set("session:3am", "on-call", ex=3600)
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", str(repo)).returncode == 0
    common = ["--inventory", str(inventory), "--repo", str(repo)]
    try:
        backup = run_cli(
            "platform", "backup", "production", *common, "--filestore-root",
            str(root), "--redis-url", f"redis://127.0.0.1:6379/{EXAMPLE_REDIS_DB}",
            "--json",
        )  # fmt: skip
        assert backup.returncode == 0, backup.stdout + backup.stderr
        drill = run_cli("platform", "drill", "production", *common, "--json")
        assert drill.returncode == 0, drill.stdout + drill.stderr
        record = json.loads(drill.stdout)
        order = [item["tier"] for item in record["tiers"]]
        assert order == ["critical", "high", "ch-finance"]
        assert all(item["status"] == "ok" for item in record["tenants"])
        assert [item["status"] for item in record["redis"]] == ["restored"]
        runbook = run_cli("runbook", "production", *common)
        assert runbook.returncode == 0, runbook.stderr
        assert "Restore tier critical" in runbook.stdout
        assert "nordwind.example" in runbook.stdout
        assert "durations are unknown" not in runbook.stdout
    finally:
        sessions.flushdb()
        drop_leftovers(databases)
