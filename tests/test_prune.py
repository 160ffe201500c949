"""`odoo-dr prune` on real repositories filled by real backups of the local server."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import query
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.retention import RetentionPolicy
from odoo_dr.engine.verify import verify
from odoo_dr.repository.index import pack_key
from odoo_dr.repository.local import LocalBackend
from odoo_dr.repository.manifest import DrillRecord
from odoo_dr.repository.store import Repository, new_id

# Packs this small make every backup write several packs of its own, so removing
# a snapshot frees whole packs.
SMALL_PACKS = 16 * 1024


def small_pack_repository(location: Path) -> Repository:
    Repository.init(str(location))
    config = json.loads((location / "config.json").read_text())
    config["pack_size"] = SMALL_PACKS
    (location / "config.json").write_text(json.dumps(config))
    return Repository.open(str(location))


def take_backup(
    settings,
    location: Path,
    database: str,
    filestore_root: Path,
    moment: datetime | None = None,
    tenant: str | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Change the database and filestore, back up, and date the snapshot `moment`.

    Each backup adds rows and an unreferenced file of its own, so it stores blobs
    that no other snapshot shares.
    """
    query(
        database,
        "INSERT INTO res_partner (name) SELECT md5(random()::text)"
        " FROM generate_series(1, 300)",
    )
    extra = filestore_root / database / "zz" / f"extra-{os.urandom(4).hex()}"
    extra.parent.mkdir(exist_ok=True)
    extra.write_bytes(os.urandom(20_000))
    repository = Repository.open(str(location))
    manifest = run_backup(
        repository,
        settings,
        BackupOptions(database, filestore_root, tenant=tenant, labels=labels or {}),
    )
    if moment is not None:
        manifest.snapshot_time = moment
        repository.write_document(
            f"snapshots/{manifest.id}.json",
            manifest.model_dump_json(indent=1).encode("utf-8"),
        )
        repository.rebuild_catalog()
    return manifest.id


def pack_files(location: Path) -> set[str]:
    return {path.name for path in (location / "packs").rglob("*") if path.is_file()}


def snapshot_ids(location: Path) -> set[str]:
    return {path.stem for path in (location / "snapshots").glob("*.json")}


def assert_all_verify(location: Path) -> None:
    report = verify(Repository.open(str(location)), read_data=True)
    problems = [
        (item.snapshot_id, item.problems) for item in report.snapshots if not item.ok
    ]
    assert problems == []
    assert report.unreadable == {}
    assert report.damaged_packs == {}


def day(month: int, day_of_month: int, hour: int = 3) -> datetime:
    return datetime(2025, month, day_of_month, hour, tzinfo=UTC)


POLICY_FILE = """\
policies:
  - match: {environment: production, tier: gold}
    keep_last: 2
    keep_monthly: 2
  - match: {}
    keep_last: 1
"""


def test_prune_applies_policy_file(
    cli, settings, odoo_database, filestore_root, tmp_path, database_names
):
    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    gold = {"environment": "production", "tier": "gold"}
    times = [day(1, 10), day(2, 10), day(2, 20), day(3, 5), day(3, 6), day(3, 7)]
    ids = [
        take_backup(settings, location, summary.database, filestore_root, t, None, gold)
        for t in times
    ]
    dev = [
        take_backup(settings, location, summary.database, filestore_root, t, "dev", {})
        for t in (day(3, 1), day(3, 2))
    ]
    repository = Repository.open(str(location))
    drill_time = datetime.now(UTC)
    repository.save_drill(
        DrillRecord(
            id=new_id(drill_time),
            snapshot_id=ids[0],
            tenant=summary.database,
            started_at=drill_time,
            finished_at=drill_time,
            scratch_database="scratch",
            scratch_filestore="/nowhere",
            kept=False,
            passed=True,
            rto_seconds=1.0,
            rpo_seconds=1.0,
            steps={},
            checks=[],
            tool_version="test",
        )
    )
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY_FILE)
    packs_before = pack_files(location)

    args = ("prune", "--repo", str(location), "--policy", str(policy))
    dry = cli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert snapshot_ids(location) == {*ids, *dev}
    assert pack_files(location) == packs_before
    assert f"would remove {ids[3]}" in dry.stdout
    assert "would remove 3 snapshot(s)" in dry.stdout

    result = cli(*args)
    assert result.returncode == 0, result.stderr
    lines = {
        line.split()[1]: line for line in result.stdout.splitlines()[1:] if "  " in line
    }
    assert "newest snapshot; last 1 of 2; monthly 2025-03" in lines[ids[5]]
    assert lines[ids[4]].rstrip().endswith("last 2 of 2")
    assert lines[ids[2]].rstrip().endswith("monthly 2025-02")
    assert "newest snapshot with a passing drill" in lines[ids[0]]
    assert lines[ids[3]].split()[0] == "remove"
    assert lines[dev[0]].split()[0] == "remove"
    assert "policy 1 (environment=production, tier=gold)" in result.stdout
    assert "tenant 'dev': policy 2 (any labels): keep_last 1" in result.stdout

    assert snapshot_ids(location) == {ids[0], ids[2], ids[4], ids[5], dev[1]}
    packs_after = pack_files(location)
    assert packs_after < packs_before
    assert len(list((location / "index").iterdir())) == 1
    assert list((location / "locks").iterdir()) == []
    assert_all_verify(location)

    # The oldest snapshot kept shares its files with removed ones: restore it.
    target = summary.database + "_pruned"
    database_names.append(target)
    restored = cli(
        "restore",
        ids[0],
        "--target",
        target,
        "--copy",
        "--repo",
        str(location),
        "--filestore-root",
        str(tmp_path / "restored"),
    )
    assert restored.returncode == 0, restored.stderr

    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "removed 0 snapshot(s), deleted 0 pack(s)" in again.stdout
    assert pack_files(location) == packs_after


def test_labels_recorded_and_checked(cli, odoo_database, filestore_root, repository):
    summary = odoo_database()
    base = (
        "backup",
        summary.database,
        "--repo",
        repository.location,
        "--filestore-root",
        str(filestore_root),
    )
    result = cli(
        *base,
        "--label",
        "environment=production",
        "--label",
        "tier=gold",
        "--residency",
        "eu",
    )
    assert result.returncode == 0, result.stderr
    manifest = repository.find_snapshot(result.stdout.strip())
    assert manifest.labels == {"environment": "production", "tier": "gold"}
    assert manifest.residency == "eu"
    for bad in (
        ("--label", "tier"),
        ("--label", "a=1", "--label", "a=2"),
        ("--residency", "EU West"),
    ):
        rejected = cli(*base, *bad)
        assert rejected.returncode == 2, bad
        assert (
            "odoo-dr: error: invalid" in rejected.stderr or "twice" in rejected.stderr
        )


def test_prune_rejects_damaged_manifest(
    cli, settings, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    ids = [
        take_backup(settings, location, summary.database, filestore_root, day(1, n))
        for n in (1, 2, 3)
    ]
    (location / "snapshots" / "20250101-000000-deadbeef.json").write_text("{not json")
    packs = pack_files(location)
    args = ("prune", "--repo", str(location), "--keep-last", "1")
    result = cli(*args)
    assert result.returncode == 2
    assert "20250101-000000-deadbeef.json" in result.stderr
    assert "--ignore-damaged" in result.stderr
    assert snapshot_ids(location) == {*ids, "20250101-000000-deadbeef"}
    assert pack_files(location) == packs

    ignored = cli(*args, "--ignore-damaged")
    assert ignored.returncode == 1, ignored.stderr
    assert snapshot_ids(location) == {ids[2], "20250101-000000-deadbeef"}
    assert "20250101-000000-deadbeef is damaged and stays" in ignored.stderr
    report = verify(Repository.open(str(location)), read_data=True)
    assert [item.ok for item in report.snapshots] == [True]


def test_prune_without_policy_rejected(cli, repository):
    result = cli("prune", "--repo", repository.location)
    assert result.returncode == 2
    assert "no retention policy given" in result.stderr
    both = cli(
        "prune", "--repo", repository.location, "--keep-last", "1", "--policy", "x.yaml"
    )
    assert both.returncode == 2


def test_prune_unknown_tenant_rejected(
    cli, settings, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    take_backup(settings, location, summary.database, filestore_root)
    result = cli(
        "prune", "--repo", str(location), "--keep-last", "1", "--tenant", "nobody"
    )
    assert result.returncode == 2
    assert "'nobody'" in result.stderr


def test_tenant_option_limits_removal(
    settings, odoo_database, filestore_root, tmp_path
):
    from odoo_dr.engine.prune import prune

    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    first = [
        take_backup(settings, location, summary.database, filestore_root, day(1, n))
        for n in (1, 2)
    ]
    other = [
        take_backup(
            settings, location, summary.database, filestore_root, day(1, n), "other"
        )
        for n in (1, 2)
    ]
    result = prune(
        Repository.open(str(location)),
        [RetentionPolicy(keep_last=1)],
        tenant="other",
    )
    assert result.snapshots_removed == [other[0]]
    assert snapshot_ids(location) == {*first, other[1]}
    assert_all_verify(location)


@pytest.fixture
def copy_repository(tmp_path):
    def copy(source: Path, name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(source, target)
        return target

    return copy


def test_repack_rewrites_wasteful_pack(
    cli, settings, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    location = tmp_path / "repo"
    Repository.init(str(location))
    # The first backup's only data pack contains the files that both snapshots share,
    # and a large file that only the first snapshot has.
    large = filestore_root / summary.database / "zz" / "large"
    large.parent.mkdir(exist_ok=True)
    large.write_bytes(os.urandom(600_000))
    take_backup(settings, location, summary.database, filestore_root, day(1, 1))
    large.unlink()
    second = take_backup(
        settings, location, summary.database, filestore_root, day(1, 2)
    )
    before = pack_files(location)

    args = ("prune", "--repo", str(location), "--keep-last", "1")
    dry = cli(*args, "--repack", "30%", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would repack 1 pack(s)" in dry.stdout
    assert pack_files(location) == before

    without = tmp_path / "without"
    shutil.copytree(location, without)
    plain = cli("prune", "--repo", str(without), "--keep-last", "1")
    assert plain.returncode == 0, plain.stderr

    result = cli(*args, "--repack", "30%")
    assert result.returncode == 0, result.stderr
    assert "repacked 1 pack(s) into 1 new pack(s)" in result.stdout
    assert snapshot_ids(location) == {second}
    assert_all_verify(location)
    size_with = sum(p.stat().st_size for p in (location / "packs").rglob("*"))
    size_without = sum(p.stat().st_size for p in (without / "packs").rglob("*"))
    assert size_with < size_without - 500_000
    assert len(pack_files(location) - before) == 1

    invalid = cli(*args, "--repack", "half")
    assert invalid.returncode == 2
    assert "invalid --repack 'half'" in invalid.stderr


class LockingBackend(LocalBackend):
    """A local folder whose chosen keys report a retention lock, as S3 Object
    Lock would. Deleting a key whose lock has not ended fails the test."""

    def __init__(self, root: Path, locked: dict[str, datetime]) -> None:
        super().__init__(root)
        self.locked = locked

    def retained_until(self, key: str) -> datetime | None:
        return self.locked.get(key)

    def delete(self, key: str) -> None:
        until = self.locked.get(key)
        assert until is None or until <= datetime.now(UTC), f"deleted locked {key}"
        super().delete(key)


def test_locked_objects_stay(settings, odoo_database, filestore_root, tmp_path):
    from odoo_dr.engine.prune import prune

    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    ids = [
        take_backup(settings, location, summary.database, filestore_root, day(1, n))
        for n in (1, 2, 3, 4)
    ]
    config = Repository.open(str(location)).config
    until = datetime.now(UTC) + timedelta(days=30)
    locked = {
        f"snapshots/{ids[1]}.json": until,
        f"snapshots/{ids[0]}.json": datetime.now(UTC) - timedelta(days=1),
    }
    backend = LockingBackend(location, locked)
    # Lock one of the packs that only removed snapshots need.
    planned = prune(
        Repository(backend, config), [RetentionPolicy(keep_last=1)], dry_run=True
    )
    locked_pack = planned.packs_to_delete[0]
    locked[pack_key(locked_pack)] = until
    repository = Repository(backend, config)

    result = prune(repository, [RetentionPolicy(keep_last=1)])
    assert snapshot_ids(location) == {ids[1], ids[3]}
    reasons = {item.snapshot.id: item.reasons for item in result.tenants[0].decisions}
    assert reasons[ids[1]] == [f"locked until {until.isoformat()}"]
    assert reasons[ids[0]] == []
    assert result.locked_packs == {locked_pack: until}
    assert locked_pack in pack_files(location)
    assert_all_verify(location)
