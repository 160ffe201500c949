"""Faults a new user meets with `backup --all`, `drill --all` and `verify --all`.

The tenants are copies of one small demo database with copies of its filestore,
built once per module and xdist worker.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SMALL, admin_connection, drop_leftovers, run_cli
from mounts import odoo_dr, read_only, run_in_namespace
from odoo_dr.demo import builder
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.lock import TAKEOVER_PREFIX
from odoo_dr.repository.store import Repository

TENANTS = ("a", "b")


@dataclass(frozen=True)
class Fleet:
    prefix: str
    filestore_root: Path

    def name(self, letter: str) -> str:
        return f"{self.prefix}_{letter}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    prefix = f"odoo_dr_fleetbreak_{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("fleet-filestore")
    template = f"{prefix}_template"
    names = [template, *(f"{prefix}_{letter}" for letter in TENANTS)]
    builder.build(PgSettings.from_options(), template, root, SMALL, replace=True)
    try:
        with admin_connection() as connection:
            for letter in TENANTS:
                name = f"{prefix}_{letter}"
                connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                shutil.copytree(root / template, root / name)
        yield Fleet(prefix, root)
    finally:
        drop_leftovers(names)


@pytest.fixture(scope="module")
def backed_up(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with two snapshots of each tenant."""
    repo = tmp_path_factory.mktemp("fleet-break") / "repo"
    Repository.init(str(repo))
    for _round in range(2):
        for letter in TENANTS:
            result = run_cli(
                "backup",
                fleet.name(letter),
                "--repo",
                str(repo),
                "--filestore-root",
                str(fleet.filestore_root),
            )
            assert result.returncode == 0, result.stderr
    return repo


def test_drill_all_damaged_newest_manifest(fleet, backed_up, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(backed_up, repo)
    newest = Repository.open(str(repo)).list_snapshots(fleet.name("a"))[-1]
    manifest = repo / "snapshots" / f"{newest.id}.json"
    manifest.write_bytes(manifest.read_bytes()[:100])

    result = run_cli(
        "drill", "--all", "--json", "--repo", str(repo), "--exclude", "*_b"
    )

    # The older snapshot drills fine, but the newest backup cannot be restored:
    # the exit code must show it, not only a log line.
    rows = json.loads(result.stdout)
    assert [row["tenant"] for row in rows] == [fleet.name("a")]
    assert rows[0]["snapshot_id"] != newest.id
    assert result.returncode == 5, result.stderr
    assert f"snapshot manifest {repo}/snapshots/{newest.id}.json is unreadable" in (
        result.stderr
    )


def test_stale_takeover_markers_recovered(tmp_path):
    """Runs killed while taking over a stale lock leave their markers: a later
    run still takes the lock and removes them."""
    repository = Repository.init(str(tmp_path / "repo"))
    lock = repository.lock_tenant("t", "backup")
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    holder = {
        "host": "a-host-that-died",
        "pid": 1,
        "created_at": old,
        "refreshed_at": old,
    }
    repository.backend.write(lock.key, json.dumps({**holder, "token": "t1"}).encode())
    lock_digest = hashlib.sha256(lock.key.encode()).hexdigest()[:32]
    token_digest = hashlib.sha256(b"t1").hexdigest()[:16]
    for number in range(5):
        marker = f"{TAKEOVER_PREFIX}{lock_digest}-{token_digest}-{number}.json"
        repository.backend.write(marker, json.dumps(holder).encode())

    with repository.lock_tenant("t", "backup") as taken:
        assert json.loads(repository.backend.read(lock.key))["token"] == taken.token

    left = [key for key in repository.backend.list("locks/")]
    assert left == []


def test_verify_all_read_only_repository(fleet, backed_up, tmp_path):
    """With an inventory, verify --all records each verify for `odoo-dr run`. In
    a read-only repository the snapshots still verify: a warning, not a failure."""
    repo = tmp_path / "repo"
    shutil.copytree(backed_up, repo)
    inventory = tmp_path / "inventory.yaml"
    lines = ["environments:", "  - name: prod", "    evidence: {repository: repo}"]
    lines.append("    tenants:")
    lines += [f"      - {{name: {fleet.name(letter)}}}" for letter in TENANTS]
    inventory.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = odoo_dr("verify", "--all", "--json", "--inventory", str(inventory))

    result = run_in_namespace(f"{read_only(repo)}\n{command}")

    rows = {row["tenant"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == [fleet.name(letter) for letter in TENANTS]
    for row in rows.values():
        assert row["result"] == "warnings", row
        assert "not recorded for odoo-dr run" in row["error"]
        assert row["snapshot_id"]
    assert result.returncode == 1, result.stderr
