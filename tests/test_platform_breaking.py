"""Whole-platform recovery used as a new user would, on inputs that broke it.

One tenant with a space and capitals in its name lives on the machine's PostgreSQL.
Its sessions are in db 21 of a private redis-server with 32 databases and a
password. The inventory's URL leaves the password out, so it comes from
`$REDISCLI_AUTH`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from conftest import clone_demo, drop_leftovers, free_port, run_cli
from odoo_dr import tempfiles
from odoo_dr.engine import platform as engine
from odoo_dr.engine.runbook import RunbookOptions, render_runbook
from odoo_dr.engine.sql_guard import validate_select
from odoo_dr.errors import RejectedError
from odoo_dr.pg.connection import PgSettings
from odoo_dr.platform.configuration import capture_configuration
from odoo_dr.platform.redaction import find_unknown_secret
from odoo_dr.processes import HOST
from odoo_dr.review.inventory import load_inventory

SESSIONS_DB = 21
RESTORE_DB = 22


@dataclass
class Setup:
    folder: Path
    inventory: Path
    repo: Path
    filestore_root: Path
    tenant: str
    redis_port: int
    password: str

    def client(self, db: int) -> redis.Redis:
        return redis.Redis(port=self.redis_port, db=db, password=self.password)

    def env(self) -> dict[str, str]:
        return {"REDISCLI_AUTH": self.password}


def _start_redis(folder: Path, password: str) -> tuple[subprocess.Popen, int]:
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "-",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            "32",
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str(folder / "server.log"),
        ],  # fmt: skip
        stdin=subprocess.PIPE,
    )
    process.stdin.write(f"requirepass {password}\n".encode())
    process.stdin.close()
    client = redis.Redis(port=port, password=password)
    for _ in range(200):
        try:
            if client.ping():
                return process, port
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"redis-server on port {port} did not start")


def _write_inventory(folder: Path, tenant: str, port: int) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        "platform: Breaking Logistics\n"
        "environments:\n"
        "  - name: production\n"
        "    evidence:\n"
        f"      redis_url: redis://127.0.0.1:{port}/{SESSIONS_DB}\n"
        "    tenants:\n"
        f"      - name: {json.dumps(tenant)}\n"
        "        tier: critical\n"
        "        redis_role: [sessions]\n"
        "  - name: empty\n"
        "    tenants: []\n"
    )
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, small_template) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("breaking")
    tenant = f"Acme-Prod {os.getpid()}"
    root = folder / "filestore"
    clone_demo(PgSettings(), small_template, tenant, root)
    password = f"pw-{uuid.uuid4().hex}"
    process, port = _start_redis(folder / "redis", password)
    repo = folder / "repo"
    assert run_cli("init", "--repo", str(repo)).returncode == 0
    result = Setup(
        folder,
        _write_inventory(folder, tenant, port),
        repo,
        root,
        tenant,
        port,
        password,
    )
    sessions = result.client(SESSIONS_DB)
    for number in range(20):
        sessions.set(f"session:{number}", f"user {number}", ex=3600)
    try:
        yield result
    finally:
        process.kill()
        process.wait()
        drop_leftovers([tenant])


def _cli(setup: Setup, *args: str, env: dict[str, str] | None = None):
    return run_cli(
        *args, "--inventory", str(setup.inventory), "--repo", str(setup.repo),
        env=setup.env() | (env or {}),
    )  # fmt: skip


def _records(setup: Setup) -> list[str]:
    return sorted(path.name for path in (setup.repo / "platform/records").glob("*"))


@pytest.fixture(scope="module")
def backed_up(setup) -> dict:
    result = _cli(
        setup, "platform", "backup", "production",
        "--filestore-root", str(setup.filestore_root), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_backup_takes_password_from_environment(setup, backed_up):
    (sessions,) = backed_up["redis"]
    assert sessions["status"] == "captured", sessions["detail"]
    assert sessions["snapshot"]["keys"][str(SESSIONS_DB)] == 20
    record = (setup.repo / "platform/records" / f"{backed_up['id']}.json").read_text()
    assert setup.password not in record


def test_drill_loads_redis_with_many_databases(setup, backed_up):
    result = _cli(setup, "platform", "drill", "production", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    (sessions,) = json.loads(result.stdout)["redis"]
    assert sessions["status"] == "restored", sessions["detail"]
    assert sessions["detail"] == "20 keys restored"
    assert setup.password not in result.stdout + result.stderr


def test_drill_without_redis_server_keeps_record(setup, backed_up, tmp_path):
    missing = tmp_path / "no-redis-server"
    missing.write_text("")
    before = _records(setup)
    result = _cli(
        setup, "platform", "drill", "production", "--json",
        env={"ODOO_DR_REDIS_SERVER": str(missing)},
    )  # fmt: skip
    assert result.returncode == 5, result.stdout + result.stderr
    record = json.loads(result.stdout)
    assert record["tenants"][0]["status"] == "ok"
    (sessions,) = record["redis"]
    assert sessions["status"] == "failed"
    assert "ODOO_DR_REDIS_SERVER" in sessions["detail"]
    assert len(_records(setup)) == len(before) + 1


def test_restore_over_existing_needs_force(setup, backed_up, tmp_path):
    target_url = f"redis://127.0.0.1:{setup.redis_port}/{RESTORE_DB}"
    target = setup.client(RESTORE_DB)
    target.flushdb()
    arguments = [
        "platform", "restore", "production", "--to", "host=127.0.0.1 user=postgres",
        "--target-filestore-root", str(tmp_path / "filestore"),
        "--redis-url", target_url, "--json",
    ]  # fmt: skip
    try:
        refused = _cli(setup, *arguments)
        assert refused.returncode == 4, refused.stdout + refused.stderr
        (tenant,) = json.loads(refused.stdout)["tenants"]
        assert tenant["status"] == "failed"
        assert "already exists" in tenant["error"]
        assert "--force" in tenant["hint"]
        assert "--target" not in tenant["hint"]
        assert target.dbsize() == 20

        target.set("session:0", "stale")
        replaced = _cli(setup, *arguments, "--force")
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
        record = json.loads(replaced.stdout)
        assert record["tenants"][0]["status"] == "ok"
        assert record["redis"][0]["status"] == "restored"
        assert target.get("session:0") == b"user 0"
    finally:
        target.flushdb()


def test_environment_without_tenants_rejected(setup, backed_up, tmp_path):
    before = _records(setup)
    result = _cli(
        setup, "platform", "backup", "empty",
        "--filestore-root", str(setup.filestore_root),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "has no tenants" in result.stderr

    inventory, _folder = load_inventory(setup.inventory)
    options = engine.PlatformOptions(
        location=str(setup.repo), settings=PgSettings(), filestore_root=tmp_path
    )
    with pytest.raises(RejectedError, match="has no tenants"):
        engine.platform_drill(inventory, "empty", options)
    target = engine.RestoreTarget(settings=PgSettings(), filestore_root=tmp_path)
    with pytest.raises(RejectedError, match="has no tenants"):
        engine.platform_restore(inventory, "empty", options, target)
    assert _records(setup) == before


def test_unreachable_redis_warns(setup, backed_up):
    result = _cli(
        setup, "platform", "backup", "production", "--json",
        "--filestore-root", str(setup.filestore_root),
        "--redis-url", f"redis://127.0.0.1:{free_port()}/{SESSIONS_DB}",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    record = json.loads(result.stdout)
    assert record["tenants"][0]["status"] == "ok"
    assert record["redis"][0]["status"] == "failed"
    assert "not captured" in result.stderr


def test_runbook_escapes_names(tmp_path, repository):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        "platform: 'Evil <b>Corp</b> & Co'\n"
        "environments:\n"
        "  - name: 'prod <i>'\n"
        "    tenants:\n"
        "      - name: '<script>alert(1)</script>'\n"
        "        tier: critical\n"
        "      - name: 'Lager | Nord'\n"
        "        tier: low\n"
    )
    inventory, _folder = load_inventory(path)
    pages = {
        output_format: render_runbook(
            inventory,
            "prod <i>",
            RunbookOptions(location=repository.location, output_format=output_format),
        )
        for output_format in ("md", "html")
    }
    for output_format, page in pages.items():
        assert "<script>alert" not in page.replace("'<script>", ""), output_format
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, output_format
        assert "durations are unknown" in page, output_format
    assert "| Lager \\| Nord |" in pages["md"]
    assert "drill 'prod &lt;i&gt;' and" in pages["md"]
    assert "--tenant '<script>alert(1)</script>'" in pages["md"]


@pytest.mark.parametrize(
    ("sql", "function"),
    [
        (
            "SELECT count(*) FROM query_to_xml("
            "'SELECT pg_terminate_backend(pid) FROM pg_stat_activity', "
            "true, false, '')",
            "query_to_xml",
        ),
        ("SELECT * FROM ts_stat('SELECT pg_reload_conf()::text::tsvector')", "ts_stat"),
        ("SELECT pg_catalog.pg_backup_start('drill')", "pg_backup_start"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT \"pg_ls_dir\"('.')", "pg_ls_dir"),
    ],
)
def test_check_sql_hiding_writes_rejected(sql, function):
    with pytest.raises(ValueError) as raised:
        validate_select(sql)
    assert f"calls {function}()" in str(raised.value)


def test_default_backup_skips_partial_ones(repository):
    def record(number: int, tenants: list[str]) -> engine.PlatformRecord:
        moment = datetime(2026, 1, number, tzinfo=UTC)
        outcomes = [
            engine.TenantOutcome(
                tenant=name,
                tier="critical",
                status="ok",
                snapshot_id=f"s{number}",
                started_after=0,
                finished_after=1,
                seconds=1,
            )  # fmt: skip
            for name in tenants
        ]
        return engine.PlatformRecord(
            id=f"backup-{number}", kind="backup", platform="p",
            environment="production", started_at=moment, finished_at=moment,
            jobs=1, tenants=outcomes,
        )  # fmt: skip

    for item in (record(1, ["a", "b"]), record(2, ["a"])):
        repository.write_document(
            f"{engine.RECORDS}{item.id}.json", item.model_dump_json().encode()
        )
    chosen = engine.find_backup(repository, "production", None, {"a", "b"})
    assert chosen.id == "backup-1"
    assert engine.find_backup(repository, "production", None, {"a"}).id == "backup-2"
    assert engine.find_backup(repository, "production", "backup-2").id == "backup-2"


def test_prune_drops_backup_without_snapshots(repository):
    def record(number: int, snapshot: str | None) -> engine.PlatformRecord:
        moment = datetime(2026, 1, number, tzinfo=UTC)
        outcome = engine.TenantOutcome(
            tenant="a", tier="critical", status="ok" if snapshot else "failed",
            snapshot_id=snapshot, error=None if snapshot else "failed",
            started_after=0, finished_after=1, seconds=1,
        )  # fmt: skip
        return engine.PlatformRecord(
            id=f"backup-{number}", kind="backup", platform="p",
            environment="production", started_at=moment, finished_at=moment,
            jobs=1, tenants=[outcome],
        )  # fmt: skip

    for item in (record(1, None), record(2, "s2"), record(3, None)):
        repository.write_document(
            f"{engine.RECORDS}{item.id}.json", item.model_dump_json().encode()
        )
    damaged: dict[str, str] = {}
    _needed, doomed = engine.plan_platform_records(repository, {"s2"}, damaged)
    assert doomed == [f"{engine.RECORDS}backup-1.json"]
    assert damaged == {}
    _needed, doomed = engine.plan_platform_records(repository, set(), damaged)
    assert doomed == [f"{engine.RECORDS}backup-2.json"]


def test_killed_scratch_redis_folder_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"odoo-dr-{HOST}-{dead.pid}-scratch-redis{uuid.uuid4().hex}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "redis-server.log").write_text("started\n")
    assert tempfiles.is_stale(name)
    assert tempfiles.remove_stale(tmp_path) == 1
    assert not (tmp_path / name).exists()


def test_damaged_record_does_not_block_recovery(repository):
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    backup = engine.PlatformRecord(
        id="backup-1", kind="backup", platform="p", environment="production",
        started_at=moment, finished_at=moment, jobs=1, tenants=[],
    )  # fmt: skip
    repository.write_document(
        f"{engine.RECORDS}backup-1.json", backup.model_dump_json().encode()
    )
    repository.write_document(f"{engine.RECORDS}drill-2.json", b'{"broken')
    damaged: dict[str, str] = {}
    records = engine.list_records(repository, "production", damaged=damaged)
    assert [record.id for record in records] == ["backup-1"]
    assert list(damaged) == [f"{engine.RECORDS}drill-2.json"]
    assert engine.find_backup(repository, "production", None).id == "backup-1"


def test_configuration_keeps_no_unknown_secret(tmp_path):
    compose = tmp_path / "compose"
    compose.mkdir()
    (compose / "docker-compose.yml").write_text(
        "services:\n"
        "  redis:\n"
        "    image: redis:7\n"
        "    command: [redis-server, --requirepass, CommandSecret1]\n"
        "  worker:\n"
        "    image: worker\n"
        "    entrypoint: [worker, --api-token=CommandSecret2]\n"
    )
    (compose / "redis.conf").write_text("bind 0.0.0.0\nrequirepass ConfSecret3\n")
    (compose / "settings.json").write_text('{"db": {"db_password": "JsonSecret4"}}')
    (compose / "plain.conf").write_text("bind 0.0.0.0\nport 6379\n")
    (tmp_path / "inventory.yaml").write_text(
        "version: 1\n"
        "environments:\n"
        "  - name: production\n"
        "    evidence: {compose: [compose]}\n"
        "    tenants: [{name: acme, tier: low}]\n"
    )
    inventory, folder = load_inventory(tmp_path / "inventory.yaml")
    state = capture_configuration(folder, inventory.environments[0])
    text = state.model_dump_json()
    for secret in ("CommandSecret1", "CommandSecret2", "ConfSecret3", "JsonSecret4"):
        assert secret not in text, secret
    captured = {item.path for item in state.manifests + state.odoo_confs}
    assert "compose/docker-compose.yml" in captured
    assert "compose/plain.conf" in captured
    assert "compose/redis.conf" not in captured
    assert any("compose/redis.conf" in problem for problem in state.problems)
    assert any("db.db_password" in problem for problem in state.problems)


@pytest.mark.parametrize(
    "rule",
    [
        "user backup on >AclSecret5 ~* +@all",
        "user backup >AclSecret5",
        "USER backup on #" + "ab" * 32 + " ~* +@all",
        "user default on nopass sanitize-payload >AclSecret5 ~*",
    ],
)
def test_redis_acl_password_found(rule):
    assert find_unknown_secret(f"bind 0.0.0.0\n{rule}\n") == "user"


def test_redis_acl_without_password_kept():
    text = "user default on nopass ~* &* +@all\nuser reader off resetpass ~cache:*\n"
    assert find_unknown_secret(text) is None


def test_config_out_with_files_rejected(tmp_path):
    (tmp_path / "inventory.yaml").write_text(
        "version: 1\n"
        "environments:\n"
        "  - name: production\n"
        "    tenants: [{name: acme, tier: low}]\n"
    )
    config_out = tmp_path / "config"
    config_out.mkdir()
    (config_out / "odoo.conf").write_text("[options]\n")
    result = run_cli(
        "platform", "restore", "production",
        "--inventory", str(tmp_path / "inventory.yaml"),
        "--repo", str(tmp_path / "repo"),
        "--to", "host=127.0.0.1 dbname=postgres",
        "--target-filestore-root", str(tmp_path / "fs"),
        "--config-out", str(config_out),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is not an empty folder" in result.stderr
    assert "--force" in result.stderr
    assert (config_out / "odoo.conf").read_text() == "[options]\n"
