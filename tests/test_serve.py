"""`odoo-dr serve` over real HTTP, on real backups and drills of a demo database."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from conftest import SMALL, drop_leftovers, free_port, run_cli
from odoo_dr.cli.serve import is_loopback, parse_bind
from odoo_dr.demo import builder
from odoo_dr.errors import RejectedError
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.serve.app import create_app
from odoo_dr.status.collect import StatusCollector

STRAY_TENANT = "stray_tenant"
UNPROTECTED_TENANT = "never_backed_up"
MISSING_STANZA = "no-such-stanza"
TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass
class Fleet:
    root: Path
    repository: Path
    inventory: Path
    tenant: str
    manifests: list[SnapshotManifest]
    drill: DrillRecord


def _backup(repository: Path, database: str, root: Path, *extra: str) -> None:
    result = run_cli(
        "backup", database, "--repo", str(repository), "--filestore-root", str(root),
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two backups and a drill of one tenant, one backup filed under another name."""
    root = tmp_path_factory.mktemp("serve")
    filestore = root / "filestore"
    filestore.mkdir()
    database = f"odoo_dr_serve_{uuid.uuid4().hex[:6]}"
    repository = root / "repo"
    Repository.init(str(repository))
    try:
        builder.build(PgSettings.from_options(), database, filestore, SMALL)
        _backup(repository, database, filestore)
        _backup(repository, database, filestore)
        _backup(repository, database, filestore, "--tenant", STRAY_TENANT)
        result = run_cli("drill", database, "--json", "--repo", str(repository))
        assert result.returncode == 0, result.stdout + result.stderr
        shutil.copytree(repository, root / "offsite")
        inventory = root / "inventory.yaml"
        inventory.write_text(
            "platform: serve test\n"
            "environments:\n"
            "  - name: prod\n"
            "    evidence:\n"
            "      repository: repo\n"
            "    offsite:\n"
            "      region: eu-west-1\n"
            "      repository: offsite\n"
            "    tenants:\n"
            f"      - name: {database}\n"
            "        tier: standard\n"
            f"      - name: {UNPROTECTED_TENANT}\n"
            "        tier: low\n"
            "  - name: staging\n"
            "    evidence:\n"
            "      repository: repo\n"
            f"      pgbackrest_stanza: {MISSING_STANZA}\n"
            "      pgbackrest_config_path: pgbackrest\n"
        )
        (root / "pgbackrest").mkdir()
        opened = Repository.open(str(repository))
        yield Fleet(
            root=root,
            repository=repository,
            inventory=inventory,
            tenant=database,
            manifests=opened.list_snapshots(),
            drill=opened.list_drills(database)[0],
        )
    finally:
        drop_leftovers([database])


class Server:
    """uvicorn serving an application in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> object:
    status, _headers, body = request(url)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def collector(fleet: Fleet) -> StatusCollector:
    missing = str(fleet.root / "no-such-repository")
    collector = StatusCollector(
        inventory_path=fleet.inventory,
        repositories=[str(fleet.repository), missing],
    )
    collector.refresh()
    return collector


@pytest.fixture(scope="module")
def server(collector: StatusCollector) -> Iterator[Server]:
    with Server(create_app(collector)) as running:
        yield running


def scrape(server: Server) -> dict[str, dict[tuple, float]]:
    """Return every sample of /metrics by name, then by sorted label items."""
    status, headers, body = request(f"{server.url}/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def tenant_key(environment: str, tenant: str, tier: str, **extra: str) -> tuple:
    labels = {"environment": environment, "tenant": tenant, "tier": tier, **extra}
    return tuple(sorted(labels.items()))


def snapshot_size(manifest: SnapshotManifest) -> int:
    dump = sum(item.size for item in manifest.dump)
    return dump + manifest.filestore.referenced_bytes


def test_metrics_match_manifests(fleet, server):
    before = datetime.now(UTC).timestamp()
    samples = scrape(server)
    after = datetime.now(UTC).timestamp()
    ours = [item for item in fleet.manifests if item.tenant == fleet.tenant]
    latest = ours[-1]
    key = tenant_key("prod", fleet.tenant, "standard")

    assert samples["odoo_dr_snapshots"][key] == 2
    taken = latest.snapshot_time.timestamp()
    assert samples["odoo_dr_last_snapshot_timestamp_seconds"][key] == taken
    age = samples["odoo_dr_last_snapshot_age_seconds"][key]
    assert before - taken <= age <= after - taken
    assert samples["odoo_dr_last_snapshot_size_bytes"][key] == snapshot_size(latest)
    assert samples["odoo_dr_last_snapshot_new_bytes"][key] == latest.stats.new_bytes
    assert samples["odoo_dr_last_snapshot_missing_files"][key] == len(
        latest.filestore.problems
    )
    assert samples["odoo_dr_backup_interval_seconds"][key] == 86400
    assert samples["odoo_dr_drill_interval_seconds"][key] == 180 * 86400
    assert samples["odoo_dr_objective_rto_seconds"][key] == 86400
    assert samples["odoo_dr_objective_rpo_seconds"][key] == 86400

    drill = fleet.drill
    finished = drill.finished_at.timestamp()
    assert samples["odoo_dr_last_drill_timestamp_seconds"][key] == finished
    assert before - finished <= samples["odoo_dr_last_drill_age_seconds"][key]
    assert samples["odoo_dr_last_drill_success"][key] == 1
    assert samples["odoo_dr_last_drill_rto_seconds"][key] == drill.rto_seconds
    assert samples["odoo_dr_last_drill_rpo_seconds"][key] == drill.rpo_seconds

    info = tenant_key(
        "prod", fleet.tenant, "standard", repository=str(fleet.repository)
    )
    assert samples["odoo_dr_tenant_info"][info] == 1
    met = samples["odoo_dr_objective_met"]
    for objective in ("backup_fresh", "rpo", "rto", "drill"):
        objective_key = tenant_key(
            "prod", fleet.tenant, "standard", objective=objective
        )
        assert met[objective_key] == 1, objective


def test_metrics_of_tenants_without_backups(fleet, server):
    samples = scrape(server)
    met = samples["odoo_dr_objective_met"]
    unprotected = tenant_key("prod", UNPROTECTED_TENANT, "low")
    assert samples["odoo_dr_snapshots"][unprotected] == 0
    assert unprotected not in samples["odoo_dr_last_snapshot_timestamp_seconds"]
    for objective in ("backup_fresh", "rpo", "drill"):
        objective_key = tenant_key(
            "prod", UNPROTECTED_TENANT, "low", objective=objective
        )
        assert met[objective_key] == 0, objective
    # Nothing measures the RTO of a tenant that was never drilled.
    assert tenant_key("prod", UNPROTECTED_TENANT, "low", objective="rto") not in met

    stray = tenant_key("", STRAY_TENANT, "")
    assert samples["odoo_dr_snapshots"][stray] == 1
    assert not any(dict(key)["tenant"] == STRAY_TENANT for key in met)


def test_repository_metrics(fleet, server):
    samples = scrape(server)
    location = (("repository", str(fleet.repository)),)
    missing = (("repository", str(fleet.root / "no-such-repository")),)
    pack_bytes = sum(
        path.stat().st_size
        for path in (fleet.repository / "packs").rglob("*")
        if path.is_file()
    )
    logical = sum(snapshot_size(item) for item in fleet.manifests)
    assert samples["odoo_dr_repository_up"][location] == 1
    assert samples["odoo_dr_repository_up"][missing] == 0
    assert samples["odoo_dr_repository_stored_bytes"][location] == pack_bytes
    assert samples["odoo_dr_repository_logical_bytes"][location] == logical
    assert samples["odoo_dr_repository_dedup_ratio"][location] == pytest.approx(
        logical / pack_bytes
    )
    assert samples["odoo_dr_repository_snapshots"][location] == 3
    assert missing not in samples["odoo_dr_repository_stored_bytes"]
    assert samples["odoo_dr_status_refresh_errors_total"][()] >= 1
    assert samples["odoo_dr_status_refresh_timestamp_seconds"][()] > 0
    assert samples["odoo_dr_status_refresh_duration_seconds"][()] > 0


def test_review_metrics(server):
    samples = scrape(server)
    line = (("environment", "prod"), ("tier", "standard"))
    assert 0 <= samples["odoo_dr_review_score"][line] <= 100
    assert samples["odoo_dr_review_objectives_met"][line] == 1
    assert (("environment", "prod"), ("tier", "low")) in samples[
        "odoo_dr_review_objectives_met"
    ]
    assert samples["odoo_dr_review_timestamp_seconds"][()] > 0


def test_met_since_is_passing_drill(fleet, server):
    tenants = get_json(f"{server.url}/api/tenants?environment=prod&state=met")
    assert [item["tenant"] for item in tenants] == [fleet.tenant]
    # Before the drill the tenant had no passing drill, so every objective has
    # been met since the drill ended.
    met_since = datetime.fromisoformat(tenants[0]["met_since"])
    assert met_since == fleet.drill.finished_at


def test_tenant_list_filters(fleet, server):
    base = f"{server.url}/api/tenants"
    everyone = get_json(base)
    assert {item["tenant"] for item in everyone} == {
        fleet.tenant,
        UNPROTECTED_TENANT,
        STRAY_TENANT,
    }
    assert all("history" not in item for item in everyone)
    not_met = get_json(f"{base}?state=not_met")
    assert [item["tenant"] for item in not_met] == [UNPROTECTED_TENANT]
    stray = get_json(f"{base}?environment=-")
    assert [item["tenant"] for item in stray] == [STRAY_TENANT]
    assert stray[0]["environment"] is None
    low = get_json(f"{base}?tier=low")
    assert [item["tenant"] for item in low] == [UNPROTECTED_TENANT]
    names = [item["tenant"] for item in get_json(f"{base}?sort=tenant&descending=1")]
    assert names == sorted(names, reverse=True)
    status, _headers, _body = request(f"{base}?sort=nonsense")
    assert status == 422


def test_tenant_detail_has_history(fleet, server):
    detail = get_json(f"{server.url}/api/tenants/prod/{fleet.tenant}")
    ours = [item.id for item in fleet.manifests if item.tenant == fleet.tenant]
    assert [point["id"] for point in detail["history"]] == ours
    assert [point["id"] for point in detail["drills"]] == [fleet.drill.id]
    stray = get_json(f"{server.url}/api/tenants/-/{STRAY_TENANT}")
    assert stray["snapshots"] == 1
    status, _headers, _body = request(f"{server.url}/api/tenants/prod/nobody")
    assert status == 404


def test_status_and_repositories(fleet, server):
    status = get_json(f"{server.url}/api/status")
    assert status["platform"] == "serve test"
    assert len(status["tenants"]) == 3
    assert all("history" not in item for item in status["tenants"])
    assert any("no-such-repository" in message for message in status["errors"])
    repositories = get_json(f"{server.url}/api/repositories")
    by_location = {item["location"]: item for item in repositories}
    ours = by_location[str(fleet.repository)]
    assert ours["error"] is None
    assert ours["tenants"] == 2
    assert len(ours["growth"]) == 3
    # The offsite copy is listed, but its tenants are those of the repository.
    offsite = by_location[str(fleet.root / "offsite")]
    assert offsite["snapshots"] == 3
    assert offsite["error"] is None
    missing = by_location[str(fleet.root / "no-such-repository")]
    assert "no odoo-dr repository" in missing["error"]
    scorecard = get_json(f"{server.url}/api/scorecard")
    lines = {
        line["tier"] for line in scorecard["lines"] if line["environment"] == "prod"
    }
    assert lines == {"standard", "low"}
    health = get_json(f"{server.url}/healthz")
    assert health["status"] == "ok"


def test_read_only_routes(server):
    status, headers, _body = request(f"{server.url}/api/status", method="POST")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    status, _headers, _body = request(f"{server.url}/metrics", method="DELETE")
    assert status == 405
    status, _headers, body = request(f"{server.url}/metrics", method="HEAD")
    assert status == 200
    assert body == b""
    openapi = get_json(f"{server.url}/openapi.json")
    assert "/api/tenants/{environment}/{tenant}" in openapi["paths"]
    for page in ("/docs", "/redoc"):
        status, _headers, _body = request(f"{server.url}{page}")
        assert status == 404, page


class CountingBackend:
    """A real backend that counts the reads of each key."""

    def __init__(self, backend: object) -> None:
        self.backend = backend
        self.reads: dict[str, int] = {}

    def read(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return self.backend.read(key)

    def __getattr__(self, name: str) -> object:
        return getattr(self.backend, name)


def test_refresh_reads_only_new_documents(fleet, tmp_path):
    location = tmp_path / "repo"
    shutil.copytree(fleet.repository, location)
    backends: list[CountingBackend] = []

    def open_counting(where: str) -> Repository:
        repository = Repository.open(where)
        repository.backend = CountingBackend(repository.backend)
        backends.append(repository.backend)
        return repository

    collector = StatusCollector(
        repositories=[str(location)], open_repository=open_counting
    )
    collector.refresh()
    (counting,) = backends
    documents = {
        key for key in counting.reads if key.startswith(("snapshots/", "drills/"))
    }
    assert len(documents) == len(fleet.manifests) + 1
    assert all(counting.reads[key] == 1 for key in documents)

    collector.refresh()
    assert all(counting.reads[key] == 1 for key in documents)

    # A new snapshot is read once; a removed one leaves the status.
    repository = Repository.open(str(location))
    copy = fleet.manifests[-1].model_copy(update={"id": "20990101-000000-00000000"})
    repository.save_snapshot(copy)
    (location / "snapshots" / f"{fleet.manifests[0].id}.json").unlink()
    status = collector.refresh()
    assert counting.reads["snapshots/20990101-000000-00000000.json"] == 1
    assert all(counting.reads[key] == 1 for key in documents)
    ids = {point.id for item in status.tenants for point in item.history}
    assert "20990101-000000-00000000" in ids
    assert fleet.manifests[0].id not in ids
    assert len(backends) == 1


def test_token_required_with_token(collector):
    with Server(create_app(collector, token=TOKEN)) as running:
        status, headers, _body = request(f"{running.url}/metrics")
        assert status == 401
        assert headers["www-authenticate"].startswith("Bearer")
        wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
        status, _headers, _body = request(f"{running.url}/metrics", headers=wrong)
        assert status == 401
        # The token as the password of Basic credentials: what a browser sends.
        for credentials, expected in (
            (TOKEN, 401),
            (f"viewer:{'x' * len(TOKEN)}", 401),
            (f"viewer:{TOKEN}", 200),
            (f":{TOKEN}", 200),
        ):
            encoded = base64.b64encode(credentials.encode()).decode()
            basic = {"Authorization": f"Basic {encoded}"}
            status, _headers, _body = request(f"{running.url}/healthz", headers=basic)
            assert status == expected, credentials
        status, _headers, _body = request(
            f"{running.url}/healthz", headers={"Authorization": f"Basic {TOKEN}"}
        )
        assert status == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        status, _headers, body = request(f"{running.url}/metrics", headers=right)
        assert status == 200
        assert b"odoo_dr_repository_up" in body


def test_serve_rejects_open_bind_without_token(fleet):
    environment = {key: value for key, value in os.environ.items()}
    environment.pop("ODOO_DR_SERVE_TOKEN", None)
    result = subprocess.run(
        [
            sys.executable, "-m", "odoo_dr", "serve",
            "--bind", f"0.0.0.0:{free_port()}", "--repository", str(fleet.repository),
        ],
        capture_output=True, text=True, env=environment, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "requires a token" in result.stderr
    assert "ODOO_DR_SERVE_TOKEN" in result.stderr


def _non_loopback_address() -> str | None:
    """Return an IPv4 address of this machine outside 127.0.0.0/8, if any."""
    try:
        addresses = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    for *_rest, address in addresses:
        if not address[0].startswith("127."):
            return address[0]
    return None


def test_serve_with_token_file(fleet, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    host = _non_loopback_address() or "127.0.0.1"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "odoo_dr", "serve",
            "--bind", f"{host}:{port}", "--token-file", str(token_file),
            "--repository", str(fleet.repository),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://{host}:{port}/healthz"
        right = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _headers, _body = request(url, headers=right)
                break
            except urllib.error.URLError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "serve did not start listening"
                time.sleep(0.1)
        assert status == 200
        status, _headers, _body = request(url)
        assert status == 401
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert TOKEN not in err


def test_serve_rejects_short_token(fleet, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("tiny-secret\n")
    result = run_cli(
        "serve", "--bind", f"127.0.0.1:{free_port()}", "--token-file",
        str(token_file), "--repository", str(fleet.repository),
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid token" in result.stderr
    assert "tiny-secret" not in result.stderr


def test_unreadable_stanza_is_an_error_entry(server):
    status = get_json(f"{server.url}/api/status")
    (pitr,) = status["pitr"]
    assert pitr["environment"] == "staging"
    assert pitr["stanza"] == MISSING_STANZA
    assert pitr["error"]
    assert any(MISSING_STANZA in message for message in status["errors"])
    samples = scrape(server)
    assert "odoo_dr_pitr_wal_gap" not in samples


def test_unreadable_inventory_keeps_last(fleet, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    text = fleet.inventory.read_text()
    text = text.replace("repository: repo", f"repository: {fleet.repository}")
    text = text.replace("repository: offsite", f"repository: {fleet.root}/offsite")
    inventory.write_text(text)
    collector = StatusCollector(inventory_path=inventory)
    first = collector.refresh()
    # Only the pgBackRest stanza of the staging environment is unreadable.
    assert len(first.errors) == 1
    assert MISSING_STANZA in first.errors[0]

    inventory.write_text("environments: [unclosed\n")
    second = collector.refresh()
    assert any(str(inventory) in message for message in second.errors)
    assert [item.tenant for item in second.tenants] == [
        item.tenant for item in first.tenants
    ]
    assert second.tenants[0].environment == "prod"


@pytest.mark.parametrize(
    ("bind", "host", "port", "loopback"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("127.0.0.2:80", "127.0.0.2", 80, True),
        ("[::1]:9000", "::1", 9000, True),
        ("localhost:8080", "localhost", 8080, True),
        ("0.0.0.0:8080", "0.0.0.0", 8080, False),
        ("[::]:8080", "::", 8080, False),
        ("10.1.2.3:8080", "10.1.2.3", 8080, False),
        ("odoo-dr.example:8080", "odoo-dr.example", 8080, False),
    ],
)
def test_bind_parsed(bind, host, port, loopback):
    assert parse_bind(bind) == (host, port)
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("bind", ["8080", ":8080", "127.0.0.1:", "127.0.0.1:0", "h:x"])
def test_bind_invalid(bind):
    with pytest.raises(RejectedError, match="invalid --bind"):
        parse_bind(bind)
