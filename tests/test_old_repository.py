"""Repositories written by an earlier odoo-dr stay readable by this one.

tests/data/old-repository contains two small repositories, one plain and one
encrypted, written by odoo-dr before stored documents were parsed strictly and
before catalog segments carried a hash in their name (see its README.md). Every
command that reads or rewrites a repository must take them as they are, without
counting any of their documents as damaged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import (
    accept_manifests,
    database_exists,
    drop_leftovers,
    query,
    run_cli,
)
from odoo_dr.repository import catalog
from odoo_dr.repository.journal import JournalReader
from odoo_dr.repository.store import Repository
from secret_scan import secret

OLD = Path(__file__).parent / "data" / "old-repository"
PASSPHRASE = "old-repository-passphrase"
TENANT = "brk_tiny"
SNAPSHOTS = {
    "plain": ["20261205-082721-53d8aeec", "20261205-082723-b347ea18"],
    "encrypted": ["20261205-082722-67aeaa6e", "20261205-082728-29c03b1d"],
}
DRILLS = {"plain": "20261205-082724-402bb67d", "encrypted": "20261205-082729-7a284852"}
KINDS = sorted(SNAPSHOTS)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The passphrase of the encrypted repository, for commands and for `open`."""
    value = secret(PASSPHRASE, "old repository passphrase")
    monkeypatch.setenv("ODOO_DR_PASSPHRASE", value)
    return {"ODOO_DR_PASSPHRASE": value}


@pytest.fixture
def old_repo(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A copy of one old repository, which the test may change."""
    target = tmp_path / request.param
    shutil.copytree(OLD / request.param, target)
    return str(target)


def assert_nothing_damaged(stderr: str) -> None:
    """A document the new code rejected is logged as damaged or skipped."""
    assert "damaged" not in stderr.lower(), stderr
    assert "skipping" not in stderr.lower(), stderr


def snapshot_ids(repo: str, env: dict[str, str]) -> list[str]:
    result = run_cli("snapshots", "--repo", repo, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert_nothing_damaged(result.stderr)
    return sorted(item["id"] for item in json.loads(result.stdout))


@pytest.mark.parametrize("old_repo", KINDS, indirect=True)
def test_old_documents_parse_strictly(old_repo: str, env: dict[str, str]) -> None:
    kind = Path(old_repo).name
    repository = Repository.open(old_repo)
    contents = catalog.read_catalog(repository)
    assert contents.damaged == {}
    assert sorted(contents.entries) == SNAPSHOTS[kind]
    for snapshot_id in SNAPSHOTS[kind]:
        assert repository.load_snapshot(snapshot_id).tenant == TENANT
    assert [record.id for record in repository.list_drills()] == [DRILLS[kind]]
    assert repository.blobs.index.damaged_files == {}
    assert len(JournalReader(repository, TENANT).load().present()) == 3


@pytest.mark.parametrize("old_repo", KINDS, indirect=True)
def test_old_repository_lists_and_verifies(old_repo: str, env: dict[str, str]) -> None:
    kind = Path(old_repo).name
    assert snapshot_ids(old_repo, env) == SNAPSHOTS[kind]
    result = run_cli("verify", "--repo", old_repo, "--read-data", env=env)
    assert result.returncode == 0, result.stderr
    assert_nothing_damaged(result.stderr)
    history = run_cli("filestore", "history", TENANT, "--repo", old_repo, env=env)
    assert history.returncode == 0, history.stderr
    assert "3 present" in history.stdout


@pytest.mark.parametrize("old_repo", KINDS, indirect=True)
def test_old_snapshot_restores_and_drills(
    old_repo: str, env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    target = f"odoo_dr_old_{unique}"
    root = tmp_path / "restored"
    try:
        result = run_cli(
            "restore", TENANT, "--repo", old_repo, "--target", target, "--copy",
            "--filestore-root", str(root), env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert_nothing_damaged(result.stderr)
        names = query(target, "SELECT store_fname FROM ir_attachment")
        files = [name for (name,) in names if name]
        assert len(files) == 3
        for name in files:
            data = (root / target / name).read_bytes()
            assert hashlib.sha1(data).hexdigest() == name.split("/")[-1], name
    finally:
        drop_leftovers([target])
    assert not database_exists(target)
    drill = run_cli("drill", TENANT, "--repo", old_repo, env=env)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert_nothing_damaged(drill.stderr)
    guard = run_cli(
        "guard", "pre-deploy", TENANT, "--repo", old_repo, "--release", "r1", env=env
    )
    assert guard.returncode == 0, guard.stderr
    assert "already has its restore point" in guard.stderr


@pytest.mark.parametrize("old_repo", KINDS, indirect=True)
def test_old_repository_prunes_and_copies(
    old_repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    kind = Path(old_repo).name
    second = str(tmp_path / "second")
    assert run_cli("init", "--repo", second, env=env).returncode == 0
    copy = run_cli(
        "copy", "--repo", old_repo, "--to", second, "--allow-unencrypted", env=env
    )
    assert copy.returncode == 0, copy.stderr
    assert_nothing_damaged(copy.stderr)
    assert snapshot_ids(second, env) == SNAPSHOTS[kind]
    prune = run_cli("prune", "--repo", old_repo, "--keep-last", "1", env=env)
    assert prune.returncode == 0, prune.stderr
    assert_nothing_damaged(prune.stderr)
    assert snapshot_ids(old_repo, env) == SNAPSHOTS[kind][1:]
    for repo in (old_repo, second):
        result = run_cli("verify", "--repo", repo, "--read-data", env=env)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("old_repo", ["plain"], indirect=True)
def test_time_without_zone_read_as_utc(old_repo: str, env: dict[str, str]) -> None:
    """A manifest time written without zone used to stop every listing with a
    TypeError, because it cannot be compared with the times of other snapshots."""
    path = Path(old_repo) / "snapshots" / f"{SNAPSHOTS['plain'][0]}.json"
    document = json.loads(path.read_bytes())
    document["snapshot_time"] = document["snapshot_time"].removesuffix("Z")
    path.write_text(json.dumps(document))
    accept_manifests(old_repo)
    result = run_cli("snapshots", "--repo", old_repo, "--json", env=env)
    assert result.returncode == 0, result.stderr
    listed = {item["id"]: item for item in json.loads(result.stdout)}
    assert listed[SNAPSHOTS["plain"][0]]["snapshot_time"].endswith("Z")
    prune = run_cli(
        "prune", "--repo", old_repo, "--keep-daily", "1", "--dry-run", env=env
    )
    assert prune.returncode == 0, prune.stderr
