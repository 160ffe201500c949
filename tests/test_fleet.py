"""`backup --all`, `drill --all` and `verify --all` on the machine's PostgreSQL.

The tenants are copies of one demo database (CREATE DATABASE ... TEMPLATE) with
copies of its filestore, built once per module and xdist worker.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SMALL, admin_connection, drop_leftovers, run_cli
from odoo_dr.demo import builder
from odoo_dr.engine.fleet import (
    FleetTenant,
    WorkResult,
    fair_order,
    run_fleet,
    server_databases,
)
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.lock import TAKEOVER_PREFIX
from odoo_dr.repository.store import Repository

TENANTS = ("a", "b", "c", "d", "e")


@dataclass(frozen=True)
class Fleet:
    prefix: str
    filestore_root: Path
    template: str
    plain: str

    def name(self, letter: str) -> str:
        return f"{self.prefix}_{letter}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Five Odoo tenants, the template they were copied from (marked as a
    template), and a database without Odoo's tables."""
    prefix = f"odoo_dr_fleet_{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("fleet-filestore")
    template = f"{prefix}_template"
    plain = f"{prefix}_plain"
    names = [template, plain, *(f"{prefix}_{letter}" for letter in TENANTS)]
    builder.build(PgSettings.from_options(), template, root, SMALL, replace=True)
    try:
        with admin_connection() as connection:
            for letter in TENANTS:
                name = f"{prefix}_{letter}"
                connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                shutil.copytree(root / template, root / name)
            connection.execute(f'CREATE DATABASE "{plain}"')
            connection.execute(f'ALTER DATABASE "{template}" IS_TEMPLATE true')
        yield Fleet(prefix, root, template, plain)
    finally:
        with admin_connection() as connection:
            connection.execute(f'ALTER DATABASE "{template}" IS_TEMPLATE false')
        drop_leftovers(names)


def write_inventory(folder: Path, tenants: list[str]) -> Path:
    """Write an inventory of environment `prod` whose repository is `repo`."""
    lines = [
        "version: 1",
        "environments:",
        "  - name: prod",
        "    evidence: {repository: repo}",
        "    tenants:",
    ]
    for name in tenants:
        lines += [f"      - name: {name}", "        tier: standard"]
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    if not (folder / "repo").exists():
        Repository.init(str(folder / "repo"))
    return path


def fleet_cli(command: str, inventory: Path, fleet: Fleet, *extra: str):
    """Run `odoo-dr COMMAND --all --json` and return the result and its rows."""
    if command == "backup":
        extra = ("--filestore-root", str(fleet.filestore_root), *extra)
    result = run_cli(command, "--all", "--json", "--inventory", str(inventory), *extra)
    rows = json.loads(result.stdout) if result.stdout.strip() else []
    return result, {row["tenant"]: row for row in rows}


def pack_files(repository: Path) -> set[Path]:
    return set((repository / "packs").rglob("*"))


def test_fair_order_overdue_then_critical():
    tenants = [
        FleetTenant("recent", overdue_seconds=-60, rpo_seconds=60),
        FleetTenant("late_standard", overdue_seconds=3600, rpo_seconds=86400),
        FleetTenant("late_critical_b", overdue_seconds=3600, rpo_seconds=900),
        FleetTenant("late_critical_a", overdue_seconds=3600, rpo_seconds=900),
        FleetTenant("never", overdue_seconds=math.inf),
        FleetTenant("late_no_objective", overdue_seconds=3600),
    ]

    ordered = [item.name for item in fair_order(tenants)]

    assert ordered == [
        "never",
        "late_critical_a",
        "late_critical_b",
        "late_standard",
        "late_no_objective",
        "recent",
    ]


def test_interruption_starts_no_other_tenant():
    """SIGINT while two tenants run: both finish, the others never start."""
    stop = threading.Event()
    both_running = threading.Barrier(2)
    started = []

    def work(tenant: FleetTenant) -> WorkResult:
        started.append(tenant.name)
        both_running.wait(60)
        if tenant.name == "a":
            os.kill(os.getpid(), signal.SIGINT)
        # Both running tenants wait until the run has seen the interruption.
        assert stop.wait(60)
        return WorkResult(snapshot_id=f"snapshot-{tenant.name}")

    tenants = [FleetTenant(name) for name in ("a", "b", "c", "d")]
    # Python's own handler turns SIGINT into KeyboardInterrupt, as in a command; a
    # handler another test left in this worker process must not decide the result.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        report = run_fleet(tenants, 2, work, failure_code=3, stop=stop)
    finally:
        signal.signal(signal.SIGINT, previous)

    assert report.interrupted is True
    assert sorted(started) == ["a", "b"]
    results = {item.tenant: item.result for item in report.outcomes}
    assert results == {"a": "ok", "b": "ok", "c": "not started", "d": "not started"}
    assert report.exit_code == 0


def test_server_discovery_finds_odoo_databases(fleet):
    found = server_databases(PgSettings.from_options())

    for letter in TENANTS:
        assert fleet.name(letter) in found
    assert fleet.template not in found
    assert fleet.plain not in found
    assert "postgres" not in found
    assert not [name for name in found if name.startswith("odoo-dr-")]


def test_backup_verify_drill_all(fleet, tmp_path):
    dropped = f"{fleet.prefix}_gone"
    names = [fleet.name(letter) for letter in TENANTS] + [dropped]
    inventory = write_inventory(tmp_path, names)
    repo = tmp_path / "repo"

    result, rows = fleet_cli(
        "backup", inventory, fleet, "--jobs", "2", "--exclude", "*_e"
    )

    # The dropped database fails with its own code (2, not found), the rest go on.
    assert result.returncode == 2, result.stderr
    assert fleet.name("e") not in rows
    assert rows[dropped]["result"] == "failed"
    assert "not found" in rows[dropped]["error"]
    for letter in ("a", "b", "c", "d"):
        assert rows[fleet.name(letter)]["result"] == "ok", rows[fleet.name(letter)]
        assert rows[fleet.name(letter)]["snapshot_id"]
    assert "5 tenant(s)" in result.stderr

    # A second snapshot of d whose new packs are then deleted: its objects are
    # missing, while the other tenants' snapshots stay whole.
    unique = fleet.filestore_root / fleet.name("d") / "zz" / "unique"
    unique.parent.mkdir(exist_ok=True)
    unique.write_bytes(uuid.uuid4().bytes * 8192)
    before = pack_files(repo)
    backup = run_cli(
        "backup",
        fleet.name("d"),
        "--repo",
        str(repo),
        "--filestore-root",
        str(fleet.filestore_root),
    )
    assert backup.returncode == 0, backup.stderr
    new_packs = [path for path in pack_files(repo) - before if path.is_file()]
    assert new_packs
    for path in new_packs:
        path.unlink()

    verified, rows = fleet_cli("verify", inventory, fleet, "--exclude", "*_gone")

    assert verified.returncode == 5, verified.stderr
    assert rows[fleet.name("d")]["result"] == "failed"
    assert "missing" in rows[fleet.name("d")]["error"]
    for letter in ("a", "b", "c"):
        assert rows[fleet.name(letter)]["result"] == "ok", rows[fleet.name(letter)]
    # e has no snapshot: rejected, reported, and the others still verified.
    assert rows[fleet.name("e")]["result"] == "failed"

    drilled, rows = fleet_cli(
        "drill",
        inventory,
        fleet,
        "--jobs",
        "2",
        "--exclude",
        "*_c",
        "--exclude",
        "*_e",
        "--exclude",
        "*_gone",
    )

    assert drilled.returncode in (4, 5), drilled.stderr
    assert set(rows) == {fleet.name("a"), fleet.name("b"), fleet.name("d")}
    assert rows[fleet.name("d")]["result"] == "failed"
    for letter in ("a", "b"):
        row = rows[fleet.name(letter)]
        assert row["result"] == "ok", row
        assert row["drill_id"]


def test_summary_table_names_failure(fleet, tmp_path):
    dropped = f"{fleet.prefix}_gone"
    inventory = write_inventory(tmp_path, [fleet.name("a"), dropped])

    result = run_cli(
        "backup",
        "--all",
        "--inventory",
        str(inventory),
        "--filestore-root",
        str(fleet.filestore_root),
    )

    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["tenant", "environment", "result", "time", "id"]
    failed = [line for line in lines if line.startswith(dropped)]
    assert len(failed) == 1
    assert "failed" in failed[0]
    assert "not found" in failed[0]
    ok = [line for line in lines if line.startswith(fleet.name("a"))]
    assert " ok " in ok[0]


# Takes the backup lock of tenant argv[2] in repository argv[1], prints "locked"
# and holds it until its stdin closes.
HOLDER = """
import sys
import threading
from odoo_dr.repository.store import Repository

lock = Repository.open(sys.argv[1]).lock_tenant(sys.argv[2], "backup")
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def test_locked_tenant_skipped(fleet, tmp_path):
    inventory = write_inventory(tmp_path, [fleet.name("a"), fleet.name("b")])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "repo"), fleet.name("a")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"

        result, rows = fleet_cli("backup", inventory, fleet)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    assert result.returncode == 0, result.stderr
    assert rows[fleet.name("a")]["result"] == "skipped"
    assert "locked" in rows[fleet.name("a")]["error"]
    assert rows[fleet.name("b")]["result"] == "ok"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["backup", "--all", "somedb"], "takes no DATABASE"),
        (["backup", "somedb", "--exclude", "x*"], "--exclude apply only with --all"),
        (["verify", "--all", "--read-data"], "--read-data"),
        (["drill", "--all", "--keep"], "--keep"),
        (["backup", "--all", "--environment", "prod"], "needs an inventory"),
    ],
)
def test_fleet_options_rejected(tmp_path, arguments, message):
    Repository.init(str(tmp_path / "repo"))

    result = run_cli(*arguments, "--repo", str(tmp_path / "repo"))

    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_drill_without_inventory_uses_repository_tenants(fleet, tmp_path):
    """Without an inventory, drill and verify take the tenants with snapshots."""
    repo = tmp_path / "repo"
    Repository.init(str(repo))
    backup = run_cli(
        "backup",
        fleet.name("c"),
        "--repo",
        str(repo),
        "--filestore-root",
        str(fleet.filestore_root),
    )
    assert backup.returncode == 0, backup.stderr

    result = run_cli("verify", "--all", "--json", "--repo", str(repo))

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["tenant"] for row in rows] == [fleet.name("c")]
    assert rows[0]["result"] == "ok"


# Waits for the file argv[3], then tries to take the stale lock of tenant "t" in
# repository argv[1]; reading a lock sleeps 0.3 s first, so that every process
# finds the lock stale before any deletes it. Prints "acquired" or "held", then
# holds a taken lock until its stdin closes.
RACER = """
import os, sys, time
from odoo_dr.errors import LockHeld
from odoo_dr.repository.store import Repository

repository = Repository.open(sys.argv[1])
backend = repository.backend
read = backend.read

def slow_read(key):
    data = read(key)
    if key.startswith("locks/tenant-"):
        time.sleep(0.3)
    return data

backend.read = slow_read
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
lock = repository.lock_tenant("t", "backup")
try:
    lock.acquire()
except LockHeld:
    print("held", flush=True)
    sys.exit(0)
print("acquired", flush=True)
sys.stdin.read()
lock.release()
"""


@pytest.fixture
def s3_location(s3_endpoint, monkeypatch) -> str:
    from conftest import VERSIONED_BUCKET

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{VERSIONED_BUCKET}/fleet-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_stale_lock_race_one_winner(backend, tmp_path, request):
    location = (
        str(tmp_path / "repo")
        if backend == "local"
        else request.getfixturevalue("s3_location")
    )
    repository = Repository.init(location)
    stale = repository.lock_tenant("t", "backup")
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    holder = {
        "tenant": "t",
        "operation": "backup",
        "host": "a-host-that-died",
        "pid": 1,
        "created_at": old,
        "refreshed_at": old,
        "token": "stale",
    }
    repository.backend.write(stale.key, json.dumps(holder).encode())
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, location, "t", str(go)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    try:
        go.touch()
        outputs = [racer.stdout.readline().strip() for racer in racers]
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=60)

    assert sorted(outputs) == ["acquired", "held", "held", "held", "held"]
    assert all(racer.returncode == 0 for racer in racers)
    leftovers = [
        key
        for key in repository.backend.list("locks/")
        if key.startswith(TAKEOVER_PREFIX)
    ]
    assert leftovers == []
