"""Inputs that broke `odoo-dr serve`, `odoo-dr run` and `odoo-dr alerts render`."""

from __future__ import annotations

import json
import logging
import os
import pty
import shutil
import socket
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SMALL, drop_leftovers, run_cli
from odoo_dr.demo import builder
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.lock import RunLock
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import InventoryError, load_inventory
from odoo_dr.serve.app import create_app
from odoo_dr.status.collect import StatusCollector
from test_run import read_terminal
from test_serve import Server, request


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


# Tenant names that a URL must escape, under an environment whose name does too.
ODD_TENANTS = [
    "eu-prod/odoo",
    "../x",
    "Acme Prod 2024",
    "q\"uo'te",
    "<script>alert(1)</script>",
    "ünï😀",
]
ODD_ENVIRONMENT = "eu/prod"


@dataclass
class OddFleet:
    root: Path
    repository: Path
    inventory: Path
    database: str
    filestore: Path


@pytest.fixture(scope="module")
def odd_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OddFleet]:
    """Backups of one demo database filed under tenant names that need escaping."""
    root = tmp_path_factory.mktemp("odd-fleet")
    filestore = root / "filestore"
    filestore.mkdir()
    database = f"odoo_dr_odd_{uuid.uuid4().hex[:6]}"
    repository = root / "repo"
    Repository.init(str(repository))
    try:
        builder.build(PgSettings.from_options(), database, filestore, SMALL)
        for name in ODD_TENANTS:
            result = run_cli(
                "backup", database, "--tenant", name, "--repo", str(repository),
                "--filestore-root", str(filestore),
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        tenants = ""
        for name in ODD_TENANTS:
            quoted = json.dumps(name, ensure_ascii=False)
            tenants += f"      - name: {quoted}\n        tier: standard\n"
        inventory = root / "inventory.yaml"
        inventory.write_text(
            "version: 1\n"
            "environments:\n"
            f"  - name: {ODD_ENVIRONMENT}\n"
            "    evidence: {repository: repo}\n"
            "    tenants:\n" + tenants
        )
        yield OddFleet(
            root=root,
            repository=repository,
            inventory=inventory,
            database=database,
            filestore=filestore,
        )
    finally:
        drop_leftovers([database])


@pytest.fixture(scope="module")
def odd_server(odd_fleet: OddFleet) -> Iterator[Server]:
    collector = StatusCollector(inventory_path=odd_fleet.inventory)
    collector.refresh()
    assert collector.status.errors == []
    with Server(create_app(collector)) as running:
        yield running


def tenant_url(environment: str, tenant: str) -> str:
    return f"{quote(environment)}/{quote(tenant)}"


def quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


@pytest.mark.parametrize("tenant", ODD_TENANTS)
def test_api_tenant_with_odd_name(odd_server: Server, tenant: str):
    url = f"{odd_server.url}/api/tenants/{tenant_url(ODD_ENVIRONMENT, tenant)}"

    status, _headers, body = request(url)

    assert status == 200, body
    found = json.loads(body)
    assert found["tenant"] == tenant
    assert found["environment"] == ODD_ENVIRONMENT
    assert len(found["history"]) == 1


@pytest.mark.parametrize("tenant", ODD_TENANTS)
def test_dashboard_tenant_with_odd_name(odd_server: Server, tenant: str):
    url = f"{odd_server.url}/tenants/{tenant_url(ODD_ENVIRONMENT, tenant)}"

    status, _headers, body = request(url)

    assert status == 200, body
    assert b"Tenant not found" not in body


def test_api_tenant_slash_unescaped(odd_server: Server):
    url = f"{odd_server.url}/api/tenants/{quote(ODD_ENVIRONMENT)}/eu-prod/odoo"

    status, _headers, body = request(url)

    assert status == 200, body
    assert json.loads(body)["tenant"] == "eu-prod/odoo"


def test_api_tenant_unknown_is_404(odd_server: Server):
    url = f"{odd_server.url}/api/tenants/{quote(ODD_ENVIRONMENT)}/eu-prod%2Fnone"

    status, _headers, _body = request(url)

    assert status == 404


SECRET = "SuperSecretPw123"
SECRET_LOCATIONS = [
    f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix",
    f"s3://bucket/prefix?X-Amz-Credential={SECRET}",
    f"s3://bucket/prefix?as-of=nonsense&token={SECRET}",
]


@pytest.mark.parametrize("location", SECRET_LOCATIONS)
def test_repository_secret_not_in_error(location: str):
    result = run_cli("snapshots", "--repo", location)

    assert result.returncode == 2, result.stderr
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


def test_serve_status_hides_location_secrets(tmp_path: Path):
    repositories = "".join(
        f"  - name: env{number}\n"
        f"    evidence: {{repository: {json.dumps(location)}}}\n"
        "    tenants: [{name: shop}]\n"
        for number, location in enumerate(SECRET_LOCATIONS)
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("version: 1\nenvironments:\n" + repositories)
    collector = StatusCollector(inventory_path=inventory)
    collector.refresh()

    with Server(create_app(collector)) as server:
        for route in ("/metrics", "/api/status", "/api/repositories", "/"):
            status, _headers, body = request(server.url + route)
            assert status == 200, route
            assert SECRET.encode() not in body, route
    assert len(collector.status.errors) == len(SECRET_LOCATIONS)


def test_damaged_documents_in_status(odd_fleet: OddFleet, tmp_path: Path):
    repository = tmp_path / "repo"
    shutil.copytree(odd_fleet.repository, repository)
    (repository / "snapshots" / "20261205-050000-deadbeef.json").write_text('{"x": ')
    (repository / "drills" / "20261205-050000-deadbeef.json").write_text(
        '{"id": "x", "snapshot_id": 5}'
    )
    collector = StatusCollector(repositories=[str(repository)])
    collector.refresh()

    with Server(create_app(collector)) as server:
        listed = json.loads(request(server.url + "/api/repositories")[2])
        _status, _headers, metrics = request(server.url + "/metrics")
        _status, _headers, page = request(server.url + "/")

    damaged = listed[0]["damaged"]
    assert [item["key"] for item in damaged] == [
        "drills/20261205-050000-deadbeef.json",
        "snapshots/20261205-050000-deadbeef.json",
    ]
    assert all(item["error"] for item in damaged)
    assert listed[0]["snapshots"] == len(ODD_TENANTS)
    sample = f'odoo_dr_repository_damaged_documents{{repository="{repository}"}} 2.0'
    assert sample.encode() in metrics
    assert b"snapshots/20261205-050000-deadbeef.json" in page


def test_long_query_value_cut_in_log(
    odd_server: Server, caplog: pytest.LogCaptureFixture
):
    long_value = "A" * 100_000
    caplog.set_level(logging.INFO, logger="odoo_dr.serve.dashboard")

    for path in (f"/?sort={long_value}", f"/tenants/prod/{long_value}"):
        status, _headers, body = request(odd_server.url + path)
        assert status in (400, 404), path
        assert len(body) < 20_000, path

    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 2
    assert all(len(message) < 1000 for message in logged)


def test_run_lines_ascii_stdout(tmp_path: Path):
    tenant = "ünï😀 shop"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\n"
        "environments:\n"
        "  - name: prod\n"
        "    evidence: {repository: repo}\n"
        f"    tenants: [{{name: {json.dumps(tenant, ensure_ascii=False)}}}]\n"
    )
    Repository.init(str(tmp_path / "repo"))

    result = run_cli(
        "run", "--inventory", str(inventory), env={"PYTHONIOENCODING": "ascii"}
    )

    # The database does not exist, so the backup fails and nothing else stops.
    assert result.returncode == 3, result.stderr
    lines = [json.loads(text) for text in result.stdout.splitlines()]
    assert {line["tenant"] for line in lines} == {tenant}
    assert {line["action"] for line in lines} >= {"backup", "drill", "verify"}
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize(
    "option", [["--refresh", "inf"], ["--refresh", "1e12"], ["--review-every", "inf"]]
)
def test_serve_rejects_unbounded_interval(tmp_path: Path, option: list[str]):
    Repository.init(str(tmp_path / "repo"))
    # A port in use, so that a serve that accepted the option stops at once.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_cli(
            "serve", "--repository", str(tmp_path / "repo"),
            "--bind", f"127.0.0.1:{port}", *option, timeout=60,
        )  # fmt: skip

    assert result.returncode == 2, result.stderr
    assert "Invalid value" in result.stderr


def test_damaged_run_lock_log(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    repository = Repository.init(str(tmp_path / "repo"))
    lock = RunLock(repository.backend, "prod")
    (tmp_path / "repo" / lock.key).parent.mkdir(exist_ok=True)
    (tmp_path / "repo" / lock.key).write_text("garbage")
    caplog.set_level(logging.WARNING, logger="odoo_dr.repository.lock")

    with lock:
        pass

    messages = [
        record.getMessage()
        for record in caplog.records
        if record.name == "odoo_dr.repository.lock"
    ]
    assert len(messages) == 1
    assert "removing damaged lock" in messages[0]
    assert "None" not in messages[0]


@pytest.mark.parametrize("tenant", ["[/]", "shop [/bold]"])
def test_progress_markup_tenant_name(odd_fleet: OddFleet, tmp_path: Path, tenant):
    repository = tmp_path / "repo"
    Repository.init(str(repository))
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120")
    env.pop("ODOO_DR_PROGRESS", None)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "odoo_dr", "backup", odd_fleet.database,
            "--tenant", tenant, "--repo", str(repository),
            "--filestore-root", str(odd_fleet.filestore),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )  # fmt: skip
    os.close(slave)
    try:
        terminal = read_terminal(master, process).decode("utf-8", "replace")
    finally:
        os.close(master)
    process.wait(timeout=60)

    assert process.returncode == 0, terminal
    assert "MarkupError" not in terminal
    assert "\x1b[" in terminal
    assert [item.tenant for item in Repository.open(str(repository)).list_snapshots()]


@pytest.mark.parametrize(
    ("environment", "tenant"),
    [("prod", '""'), ("prod", '"   "'), ("prod", '"a\\nb"'), ('""', "shop")],
)
def test_blank_names_rejected(tmp_path: Path, environment: str, tenant: str):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\n"
        "environments:\n"
        f"  - name: {environment}\n"
        f"    tenants: [{{name: {tenant}}}]\n"
    )

    result = run_cli("alerts", "render", "--inventory", str(inventory))

    assert result.returncode == 2, result.stdout
    assert "invalid name" in result.stderr
    assert result.stdout == ""


def test_inventory_folder_message(tmp_path: Path):
    folder = tmp_path / "inventory.yaml"
    folder.mkdir()

    result = run_cli("run", "--inventory", str(folder), "--dry-run")

    assert result.returncode == 2, result.stderr
    assert "it is a folder" in result.stderr
    assert "not found" not in result.stderr
