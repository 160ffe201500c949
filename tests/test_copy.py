"""odoo-dr copy between two local-folder repositories, over the real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import damage_blob, query
from odoo_dr.engine import copy as copy_engine
from odoo_dr.engine.copy import CopyOptions, run_copy
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.repository import residency
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository, new_id


def take_backup(cli, repository, name: str, root: Path, *extra: str) -> str:
    result = cli(
        "backup", name, "--repo", repository.location, "--filestore-root", str(root),
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def run_copy_cli(cli, source, target, *extra: str):
    return cli("copy", "--repo", source.location, "--to", target.location, *extra)


def copy_json(cli, source, target, *extra: str) -> dict:
    result = run_copy_cli(cli, source, target, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def target(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "target"), region="eu-west-3")


def file_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


# -- a copy, then a restore and a drill from the target


def test_copy_restores_and_drills_from_target(
    cli, repository, target, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    drilled = cli("drill", snapshot, "--repo", repository.location)
    assert drilled.returncode == 0, drilled.stderr
    (source_drill,) = repository.list_drills()

    result = run_copy_cli(cli, repository, target)
    assert result.returncode == 0, result.stderr
    assert "copied 1 snapshot(s)" in result.stdout
    assert f"snapshot {snapshot} of {summary.database!r}: copied" in result.stderr

    assert target.snapshot_ids() == [snapshot]
    (copied_drill,) = target.list_drills()
    assert copied_drill.id == source_drill.id
    assert copied_drill.copied_from == repository.config.id
    assert copied_drill.passed

    verified = cli("verify", "--read-data", "--repo", target.location)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    restored_name = summary.database + "_copy"
    database_names.append(restored_name)
    restored = cli(
        "restore", snapshot, "--target", restored_name, "--copy",
        "--filestore-root", str(tmp_path / "restored"), "--repo", target.location,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    count = "SELECT count(*) FROM ir_attachment"
    assert query(restored_name, count) == query(summary.database, count)
    assert file_names(tmp_path / "restored" / restored_name) == file_names(
        filestore_root / summary.database
    )

    drill = cli("drill", snapshot, "--repo", target.location)
    assert drill.returncode == 0, drill.stderr
    assert len(target.list_drills()) == 2


# -- incremental copies


def test_second_copy_sends_almost_nothing(
    cli, repository, target, odoo_database, filestore_root
):
    summary = odoo_database()
    first_id = take_backup(cli, repository, summary.database, filestore_root)
    first = copy_json(cli, repository, target)
    assert first["copied"] == 1
    assert first["blobs_sent"] > 0

    second_id = take_backup(cli, repository, summary.database, filestore_root)
    second = copy_json(cli, repository, target)
    assert second["copied"] == 1
    assert second["present"] == 1
    assert [item["id"] for item in second["snapshots"]] == [first_id, second_id]
    # Only what the second backup itself added (its dump's changed files) is sent.
    added = repository.find_snapshot(second_id).stats.new_bytes
    assert second["bytes_sent"] <= added + 64 * 1024
    assert second["bytes_sent"] < first["bytes_sent"] / 4
    assert second["blobs_reused"] > 0

    third = copy_json(cli, repository, target)
    assert third["copied"] == 0
    assert third["present"] == 2
    assert third["blobs_sent"] == 0
    assert third["bytes_sent"] == 0
    assert sorted(target.snapshot_ids()) == sorted([first_id, second_id])


def test_copy_with_distinct_ids_rewrites_and_pairs(
    cli, repository, target, odoo_database, filestore_root, monkeypatch
):
    """The path for repositories that name blobs differently, taken on purpose.

    Both repositories use SHA-256 here, so the rewritten file index must come out
    with the source's own ids, and a second copy reads only the blobs that the
    snapshot it already contains does not pair.
    """
    monkeypatch.setattr(copy_engine, "same_blob_ids", lambda source, target: False)
    summary = odoo_database()
    first_id = take_backup(cli, repository, summary.database, filestore_root)
    first = run_copy(repository, target, CopyOptions())
    assert first.count("copied") == 1
    source_manifest = repository.find_snapshot(first_id)
    copied = Repository.open(target.location).find_snapshot(first_id)
    assert copied.filestore.index == source_manifest.filestore.index
    assert copied.dump == source_manifest.dump

    second_id = take_backup(cli, repository, summary.database, filestore_root)
    # Both were written by other processes since they were opened.
    repository = Repository.open(repository.location)
    target = Repository.open(target.location)
    second = run_copy(repository, target, CopyOptions())
    assert second.count("copied") == 1
    # Files are unchanged, so their blobs pair with the first snapshot's and are
    # not read: only the second dump's changed files are.
    second_manifest = repository.find_snapshot(second_id)
    assert second.stats.bytes_read <= second_manifest.stats.dump_bytes
    assert second.stats.bytes_read < second_manifest.filestore.referenced_bytes
    assert second.stats.bytes_read < first.stats.bytes_read


def test_copy_tenant_filter(
    cli, repository, target, odoo_database, filestore_root, unique
):
    first = odoo_database()
    second = odoo_database(name=f"odoo_dr_test_{unique}_b")
    kept = take_backup(cli, repository, first.database, filestore_root)
    take_backup(cli, repository, second.database, filestore_root)

    report = copy_json(cli, repository, target, "--tenant", first.database)
    assert [item["id"] for item in report["snapshots"]] == [kept]
    assert target.snapshot_ids() == [kept]


def test_copy_single_snapshot(cli, repository, target, odoo_database, filestore_root):
    summary = odoo_database()
    older = take_backup(cli, repository, summary.database, filestore_root)
    take_backup(cli, repository, summary.database, filestore_root)
    report = copy_json(cli, repository, target, "--snapshot", older[:17])
    assert report["copied"] == 1
    assert target.snapshot_ids() == [older]

    # A backup of the tenant running in the target stops the copy of the other.
    with target.lock_tenant(summary.database, "backup"):
        locked = run_copy_cli(cli, repository, target)
    assert locked.returncode == ExitCode.REJECTED, locked.stderr
    assert "lock" in locked.stderr
    assert Repository.open(target.location).snapshot_ids() == [older]


# -- data residency


def test_residency_rejected_before_sending(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = take_backup(
        cli, repository, summary.database, filestore_root, "--residency", "EU"
    )
    assert repository.find_snapshot(snapshot).residency == "eu"

    for region in (None, "us-east-1", "eu-west-2"):
        folder = tmp_path / f"target-{region}"
        Repository.init(str(folder), region=region)
        result = cli("copy", "--repo", repository.location, "--to", str(folder))
        assert result.returncode == ExitCode.REJECTED, result.stderr
        assert snapshot in result.stderr
        assert "residency 'eu'" in result.stderr
        if region is None:
            assert "declares no region" in result.stderr
        else:
            assert f"region {region!r}" in result.stderr
        assert file_names(folder / "packs") == []
        assert file_names(folder / "snapshots") == []

    admitted = tmp_path / "target-fr-par"
    Repository.init(str(admitted), region="fr-par")
    result = cli("copy", "--repo", repository.location, "--to", str(admitted))
    assert result.returncode == 0, result.stderr
    assert Repository.open(str(admitted)).snapshot_ids() == [snapshot]


@pytest.mark.parametrize(
    ("snapshot_residency", "region", "admitted"),
    [
        ("eu", "eu-west-1", True),
        ("eu", "eu-central-1", True),
        ("eu", "eu-west-2", False),
        ("eu", "eu-central-2", False),
        ("eu", "fr-par", True),
        ("eu", "FSN1", True),
        ("eu", "gra", True),
        ("eu", "europe-west1", True),
        ("eu", "europe-west2", False),
        ("eu", "us-east-1", False),
        ("eu", None, False),
        ("fr-par", "fr-par", True),
        ("fr-par", "nl-ams", False),
        ("eu,us-east-1", "us-east-1", True),
    ],
)
def test_residency_rule(snapshot_residency, region, admitted):
    assert residency.admits(snapshot_residency, region) is admitted


@pytest.mark.parametrize("value", ["", "eu,", "e u", "eu;us", "-eu"])
def test_residency_invalid_rejected(value):
    with pytest.raises(RejectedError):
        residency.normalize_residency(value)


def test_copy_to_itself_rejected(cli, repository):
    result = run_copy_cli(cli, repository, repository)
    assert result.returncode == ExitCode.REJECTED
    assert "is the source repository itself" in result.stderr


# -- a copy killed with SIGKILL, then run again


# Runs the command line, and kills itself (SIGKILL) right after it stored its Nth
# pack in any repository.
KILL_AFTER_PACK = """
import os, signal, sys
from odoo_dr.cli.app import main
from odoo_dr.repository.local import LocalBackend

kill_after = int(sys.argv.pop(1))
stored = 0
write = LocalBackend.write

def write_then_kill(self, key, data, **kwargs):
    global stored
    write(self, key, data, **kwargs)
    if key.startswith("packs/"):
        stored += 1
        if stored == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

LocalBackend.write = write_then_kill
sys.argv[0] = "odoo-dr"
main()
"""


def test_killed_copy_publishes_nothing(
    cli, repository, target, odoo_database, filestore_root
):
    summary = odoo_database()
    snapshot = take_backup(cli, repository, summary.database, filestore_root)
    # Small packs make the copy store several, so the kill lands between two.
    config_path = Path(target.location) / "config.json"
    config = json.loads(config_path.read_text())
    config["pack_size"] = 256 * 1024
    config_path.write_text(json.dumps(config))

    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_PACK, "2", "copy",
         "--repo", repository.location, "--to", target.location],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert len(file_names(Path(target.location) / "packs")) >= 2
    assert file_names(Path(target.location) / "snapshots") == []

    again = run_copy_cli(cli, repository, target, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["copied"] == 1
    # The blobs in the two packs the killed run stored are reused, not sent again.
    assert report["blobs_reused"] > 0
    assert "packs that no index file listed" in again.stderr
    assert Repository.open(target.location).snapshot_ids() == [snapshot]
    verified = cli("verify", "--read-data", "--repo", target.location)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- damaged source data


def test_damaged_source_snapshot_fails_alone(
    cli, repository, target, odoo_database, filestore_root
):
    summary = odoo_database()
    good = take_backup(cli, repository, summary.database, filestore_root)
    # toc.dat records its creation time to the second, so two backups within one
    # second share it. A new table makes the second backup's toc.dat differ.
    query(summary.database, "CREATE TABLE x_copy_test_marker (id integer)")
    bad = take_backup(cli, repository, summary.database, filestore_root)
    source = Repository.open(repository.location)
    good_toc = {item.name: item for item in source.find_snapshot(good).dump}["toc.dat"]
    bad_toc = {item.name: item for item in source.find_snapshot(bad).dump}["toc.dat"]
    assert bad_toc.chunks != good_toc.chunks
    damage_blob(source, bad_toc.chunks[0])

    result = run_copy_cli(cli, repository, target)
    assert result.returncode == ExitCode.BACKUP_FAILED, result.stderr
    assert f"snapshot {bad} of {summary.database!r}: failed" in result.stderr
    assert "1 snapshot(s) could not be copied" in result.stderr
    assert Repository.open(target.location).snapshot_ids() == [good]


# -- drill records


def drill_record(snapshot: SnapshotManifest, passed: bool) -> DrillRecord:
    now = datetime.now(UTC)
    return DrillRecord(
        id=new_id(now), snapshot_id=snapshot.id, tenant=snapshot.tenant,
        started_at=now, finished_at=now, scratch_database="odoo-dr-drill-x",
        scratch_filestore="/tmp/odoo-dr-drill-x", kept=False, passed=passed,
        rto_seconds=1.0, rpo_seconds=1.0, steps={}, checks=[], tool_version="test",
    )  # fmt: skip


def test_drill_records_follow_snapshots(
    cli, repository, target, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = repository.find_snapshot(
        take_backup(cli, repository, summary.database, filestore_root)
    )
    first = drill_record(snapshot, passed=True)
    repository.save_drill(first)

    report = copy_json(cli, repository, target)
    assert report["drills"] == 1
    # A drill recorded after the snapshot was copied follows on the next run.
    later = drill_record(snapshot, passed=False)
    repository.save_drill(later)
    report = copy_json(cli, repository, target)
    assert report["present"] == 1
    assert report["drills"] == 1
    records = {record.id: record for record in target.list_drills()}
    assert sorted(records) == sorted([first.id, later.id])
    assert records[later.id].passed is False

    # A record copied on keeps the repository the drill ran on.
    third = Repository.init(str(tmp_path / "third"), region="nl-ams")
    report = copy_json(cli, target, third)
    assert report["drills"] == 2
    origins = {record.copied_from for record in third.list_drills()}
    assert origins == {repository.config.id}


def test_init_region_stored_and_checked(cli, tmp_path):
    folder = tmp_path / "regional"
    created = cli("init", "--repo", str(folder), "--region", "FR-PAR")
    assert created.returncode == 0, created.stderr
    assert json.loads((folder / "config.json").read_text())["region"] == "fr-par"

    invalid = cli("init", "--repo", str(tmp_path / "other"), "--region", "eu west")
    assert invalid.returncode == ExitCode.REJECTED
    assert "invalid region 'eu west'" in invalid.stderr
    assert not (tmp_path / "other").exists()


def test_backup_invalid_residency_rejected(cli, repository, filestore_root):
    result = cli(
        "backup", "any_database", "--residency", "eu;us", "--repo",
        repository.location, "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert result.returncode == ExitCode.REJECTED
    assert "invalid residency 'eu;us'" in result.stderr
