"""The snapshot catalog: listings read a few segments, not every manifest.

Reads are counted by a wrapper around the real local and S3 backends. Manifests
are synthetic (no PostgreSQL), with real blobs where prune reads them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import VERSIONED_BUCKET, run_cli
from odoo_dr import __version__
from odoo_dr.engine.prune import prune
from odoo_dr.engine.retention import RetentionPolicy
from odoo_dr.errors import RepositoryError, SnapshotDamaged
from odoo_dr.repository import catalog
from odoo_dr.repository.backend import Backend, DeleteDenied
from odoo_dr.repository.manifest import (
    BackupStats,
    DatabaseInfo,
    DumpFile,
    FilestoreSummary,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
    StoredBlob,
)
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.status.collect import RepositoryCache

TESTS = Path(__file__).resolve().parent
START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
SEGMENT_NAME = re.compile(r"^catalog/\d{8}-\d{6}-[0-9a-f]{32}(-[0-9a-f]{16})?\.json$")


class CountingBackend:
    """The real backend, with a count of reads by top folder (`snapshots`, ...)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()

    def read(self, key: str) -> bytes:
        self.reads[key.split("/", 1)[0]] += 1
        return self.inner.read(key)

    def write(self, key: str, data: bytes, **options) -> None:
        self.writes[key.split("/", 1)[0]] += 1
        self.inner.write(key, data, **options)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def counted(repository: Repository) -> tuple[Repository, CountingBackend]:
    """Return a fresh Repository on `repository`'s storage that counts its reads."""
    backend = CountingBackend(repository.backend)
    return Repository(backend, repository.config, repository.keys), backend


def synthetic_manifest(
    tenant: str, moment: datetime, blob: StoredBlob, labels: dict | None = None
) -> SnapshotManifest:
    return SnapshotManifest(
        id=new_id(moment),
        tenant=tenant,
        started_at=moment,
        snapshot_time=moment,
        finished_at=moment + timedelta(seconds=30),
        lsn=None,
        database=DatabaseInfo(
            name=f"db-{tenant}",
            encoding="UTF8",
            collate="C.UTF-8",
            ctype="C.UTF-8",
            size_bytes=1000,
        ),
        postgres=PostgresInfo(
            server_version="15.10",
            server_major=15,
            pg_dump_version="15.10",
            pg_dump_major=15,
        ),
        odoo=OdooInfo(version="17.0", uuid=None, modules={"base": "17.0.1.3"}),
        row_counts={"res_partner": 10},
        dump=[DumpFile(name="toc.dat", size=blob.size, chunks=blob.chunks)],
        filestore=FilestoreSummary(index=blob, referenced_files=3, extra_files=1),
        stats=BackupStats(
            seconds=30.0,
            dump_bytes=4096,
            files_read=4,
            files_reused=0,
            bytes_read=100,
            new_objects=1,
            new_bytes=2048,
        ),
        tool_version=__version__,
        labels=labels or {"environment": "production"},
        residency="eu",
    )


def empty_index_blob(repository: Repository) -> StoredBlob:
    """Store `[]` (an empty filestore index, also read as a toc.dat) as a blob."""
    blob, _ = repository.blobs.put_chunks([b"[]"], meta=True)
    repository.blobs.flush()
    return blob


def write_manifests(
    repository: Repository, tenants: list[str], per_tenant: int
) -> list[SnapshotManifest]:
    """Write manifests as a version without a catalog did: documents only."""
    blob = empty_index_blob(repository)
    manifests = []
    for position in range(per_tenant):
        for tenant in tenants:
            moment = START + timedelta(days=position, minutes=len(manifests))
            manifest = synthetic_manifest(tenant, moment, blob)
            repository.write_document(
                f"snapshots/{manifest.id}.json",
                manifest.model_dump_json(indent=1).encode("utf-8"),
                sync=False,
            )
            manifests.append(manifest)
    return manifests


def segment_keys(repository: Repository) -> list[str]:
    return sorted(repository.backend.list("catalog/"))


def test_listing_reads_catalog_not_manifests(repository):
    manifests = write_manifests(repository, ["alpha", "beta"], 25)

    first, first_backend = counted(repository)
    summaries = first.snapshot_summaries()
    assert first_backend.reads["snapshots"] == 50
    assert first_backend.writes["catalog"] == 1

    second, second_backend = counted(repository)
    again = second.snapshot_summaries()
    assert second_backend.reads["snapshots"] == 0
    assert second_backend.reads["catalog"] == 1
    assert sum(second_backend.writes.values()) == 0
    assert again == summaries
    assert [item.id for item in again] == [item.id for item in manifests]
    first_summary, first_manifest = again[0], manifests[0]
    assert first_summary.tenant == "alpha"
    assert first_summary.database == "db-alpha"
    assert first_summary.files == 4
    assert first_summary.dump_bytes == 4096
    assert first_summary.labels == {"environment": "production"}
    assert first_summary.residency == "eu"
    assert first_summary.odoo_version == "17.0"
    assert first_summary.snapshot_time == first_manifest.snapshot_time

    of_beta = second.snapshot_summaries("beta")
    assert len(of_beta) == 25
    assert {item.tenant for item in of_beta} == {"beta"}


def test_latest_and_resolve_read_one_manifest(repository):
    manifests = write_manifests(repository, ["alpha", "beta"], 10)
    repository.snapshot_summaries()

    reader, backend = counted(repository)
    latest = reader.latest_snapshot("alpha")
    assert latest == manifests[-2]
    assert backend.reads["snapshots"] == 1

    backend.reads.clear()
    assert reader.resolve_snapshot("beta") == manifests[-1]
    assert reader.resolve_snapshot(manifests[3].id) == manifests[3]
    assert backend.reads["snapshots"] == 2

    backend.reads.clear()
    of_beta, damaged = reader.scan_snapshots("beta")
    assert damaged == {}
    assert of_beta == [item for item in manifests if item.tenant == "beta"]
    assert backend.reads["snapshots"] == 10


def test_saved_snapshot_enters_catalog(repository):
    blob = empty_index_blob(repository)
    for day in range(3):
        repository.save_snapshot(
            synthetic_manifest("alpha", START + timedelta(days=day), blob)
        )
    assert len(segment_keys(repository)) == 3

    reader, backend = counted(repository)
    assert len(reader.snapshot_summaries()) == 3
    assert backend.reads["snapshots"] == 0


def test_deleted_manifest_reported_missing(repository):
    manifests = write_manifests(repository, ["alpha"], 5)
    repository.snapshot_summaries()
    deleted = manifests[2]
    (Path(repository.location) / f"snapshots/{deleted.id}.json").unlink()

    reader, backend = counted(repository)
    summaries, damaged = reader.scan_summaries()
    assert [item.id for item in summaries] == [
        item.id for item in manifests if item != deleted
    ]
    assert list(damaged) == [deleted.id]
    assert (
        f"snapshot manifest {deleted.id} of tenant 'alpha' is missing"
        in (damaged[deleted.id])
    )
    assert "no prune removed it" in damaged[deleted.id]
    assert backend.reads["snapshots"] == 0
    assert reader.latest_snapshot("alpha") == manifests[-1]
    assert list(reader.scan_summaries("beta")[1]) == []


def test_missing_manifest_survives_merges(repository):
    manifests = write_manifests(repository, ["alpha"], 3)
    repository.snapshot_summaries()
    deleted = manifests[0]
    (Path(repository.location) / f"snapshots/{deleted.id}.json").unlink()

    for _ in range(2):
        repository.compact_catalog()
        assert list(repository.scan_summaries()[1]) == [deleted.id]

    count, unreadable = repository.rebuild_catalog()
    assert count == 2
    assert unreadable == {}
    assert repository.scan_summaries()[1] == {}


def test_missing_manifest_stops_restore_and_prune(repository, tmp_path):
    manifests = write_manifests(repository, ["alpha"], 3)
    repository.snapshot_summaries()
    deleted = manifests[0].id
    (Path(repository.location) / f"snapshots/{deleted}.json").unlink()

    restore = run_cli(
        "restore", deleted, "--target", "odoo_dr_never", "--copy",
        "--filestore-root", str(tmp_path / "fs"), "--repo", repository.location,
        env={"PGHOST": str(tmp_path / "no-server"), "PGPORT": "1"},
    )  # fmt: skip
    assert restore.returncode == 2, restore.stderr
    assert f"snapshot manifest {deleted} of tenant 'alpha' is missing" in restore.stderr
    assert "put back this manifest" in restore.stderr
    assert not (tmp_path / "fs").exists()

    verify = run_cli("verify", "--repo", repository.location)
    assert verify.returncode == 5, verify.stderr
    assert "hint: put the manifests back from a copy" in verify.stderr

    prune = run_cli("prune", "--keep-last", "1", "--repo", repository.location)
    assert prune.returncode == 2, prune.stderr
    assert "is missing" in prune.stderr
    assert len(list((Path(repository.location) / "snapshots").iterdir())) == 2


class LateListingBackend(CountingBackend):
    """The real backend, listing `snapshots/` without one manifest, as a listing
    taken just before a backup published it."""

    def __init__(self, inner: Backend, hidden: str) -> None:
        super().__init__(inner)
        self.hidden = hidden

    def list(self, prefix: str):
        return (key for key in self.inner.list(prefix) if key != self.hidden)

    def list_stamps(self, prefix: str):
        stamps = self.inner.list_stamps(prefix)
        return {key: stamp for key, stamp in stamps.items() if key != self.hidden}


def test_manifest_published_after_listing_not_missing(repository):
    blob = empty_index_blob(repository)
    manifest = synthetic_manifest("alpha", START, blob)
    repository.save_snapshot(manifest)
    late = LateListingBackend(repository.backend, f"snapshots/{manifest.id}.json")
    reader = Repository(late, repository.config, repository.keys)

    summaries, damaged = reader.scan_summaries()
    assert summaries == []
    assert damaged == {}


class HeldReads:
    """The real backend. Reading `key` (or, with `key` None, any catalog segment
    not in `known`) sets `reached` and waits for `release`, as a slow S3 GET
    would: `key` is held after its bytes arrived, a segment before."""

    def __init__(self, inner, reached, release, key=None, known=()):
        self.inner = inner
        self.reached = reached
        self.release = release
        self.key = key
        self.known = set(known)

    def _held(self, key: str) -> bool:
        if self.key is not None:
            return key == self.key
        return key.startswith("catalog/") and key not in self.known

    def read(self, key: str) -> bytes:
        if not self._held(key):
            return self.inner.read(key)
        data = self.inner.read(key) if self.key is not None else None
        self.reached.set()
        self.release.wait(30)
        return self.inner.read(key) if data is None else data

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_listing_during_prune_merge_clean(repository):
    # The reader reads the old segment, then prune's compaction deletes the
    # segment listing the removed ids before the reader gets to it.
    write_manifests(repository, ["alpha"], 5)
    repository.snapshot_summaries()
    time.sleep(1.1)  # the prune's segment sorts after the backups' one
    known = set(repository.backend.list("catalog/"))
    deleted, reached, compacted = (threading.Event() for _ in range(3))
    found = {}

    def listing():
        deleted.wait(30)
        backend = HeldReads(
            Repository.open(repository.location).backend, reached, compacted,
            known=known,
        )  # fmt: skip
        found["scan"] = Repository(backend, repository.config).scan_snapshots()

    pruner = Repository.open(repository.location)
    compact = pruner.compact_catalog

    def held_compaction():
        deleted.set()
        reached.wait(30)
        compact()
        compacted.set()

    pruner.compact_catalog = held_compaction
    reader = threading.Thread(target=listing)
    reader.start()
    prune(pruner, [RetentionPolicy(keep_last=1)])
    reader.join()
    assert found["scan"][1] == {}


def test_late_listing_entry_not_missing(repository):
    # A listing reads a manifest the catalog lacks. Meanwhile prune removes it
    # and a merge runs, and then the listing writes its entry.
    manifests = write_manifests(repository, ["alpha"], 3)
    oldest = f"snapshots/{manifests[0].id}.json"
    reached, pruned = threading.Event(), threading.Event()

    def listing():
        backend = HeldReads(
            Repository.open(repository.location).backend, reached, pruned,
            key=oldest,
        )  # fmt: skip
        Repository(backend, repository.config).snapshot_summaries()

    reader = threading.Thread(target=listing)
    reader.start()
    reached.wait(30)
    result = prune(Repository.open(repository.location), [RetentionPolicy(keep_last=2)])
    assert result.snapshots_removed == [manifests[0].id]
    other = Repository.open(repository.location)
    for _ in range(17):  # backups of another tenant; the next listing merges
        write_manifests(other, ["beta"], 1)
        other.snapshot_summaries()
    Repository.open(repository.location).snapshot_summaries()
    pruned.set()
    reader.join()

    assert Repository.open(repository.location).scan_summaries()[1] == {}
    again = run_cli("prune", "--keep-last", "2", "--repo", repository.location)
    assert again.returncode == 0, again.stderr


def test_stale_removal_hides_no_deletion(repository):
    # A prune killed after listing a snapshot as removed, before deleting it.
    # The next prune keeps the snapshot, so a later deletion by hand is damage.
    manifests = write_manifests(repository, ["alpha"], 4)
    repository.snapshot_summaries()
    pid = os.fork()
    if pid == 0:
        pruner = Repository.open(repository.location)
        delete = pruner.backend.delete

        def killed_delete(key, *args, **options):
            if key.startswith("snapshots/"):
                os._exit(9)
            return delete(key, *args, **options)

        pruner.backend.delete = killed_delete
        prune(pruner, [RetentionPolicy(keep_last=1)])
        os._exit(0)
    os.waitpid(pid, 0)
    second_prune = run_cli("prune", "--keep-last", "10", "--repo", repository.location)
    assert second_prune.returncode == 0, second_prune.stderr
    deleted = manifests[0].id
    (Path(repository.location) / f"snapshots/{deleted}.json").unlink()

    damaged = Repository.open(repository.location).scan_summaries()[1]
    assert list(damaged) == [deleted]


def test_tenant_merge_keeps_other_evidence(repository):
    # Every backup looks up its tenant's previous snapshot with a listing of
    # that tenant, and that listing merges the catalog past 16 segments.
    manifests = write_manifests(repository, ["alpha", "beta"], 3)
    repository.snapshot_summaries()
    deleted = next(item for item in manifests if item.tenant == "beta")
    (Path(repository.location) / f"snapshots/{deleted.id}.json").unlink()
    for _ in range(17):
        write_manifests(repository, ["alpha"], 1)
        Repository.open(repository.location).snapshot_summaries("alpha")

    damaged = Repository.open(repository.location).scan_summaries()[1]
    assert list(damaged) == [deleted.id]


def test_serve_counts_damaged_manifests(repository):
    manifests = write_manifests(repository, ["alpha"], 3)
    repository.snapshot_summaries()
    folder = Path(repository.location) / "snapshots"
    (folder / f"{manifests[0].id}.json").unlink()
    changed = folder / f"{manifests[1].id}.json"
    changed.write_text(
        changed.read_text().replace('"res_partner": 10', '"res_partner": 11')
    )

    cache = RepositoryCache(repository.location)
    cache.refresh(Repository.open)
    assert len(cache.damaged) == 2


def test_changed_manifest_reported_damaged(repository):
    manifests = write_manifests(repository, ["alpha"], 3)
    repository.snapshot_summaries()
    changed = manifests[1].model_copy(update={"labels": {"tier": "gold-plus"}})
    repository.write_document(
        f"snapshots/{changed.id}.json",
        changed.model_dump_json(indent=1).encode("utf-8"),
    )

    reader, backend = counted(repository)
    summaries, damaged = reader.scan_summaries()
    assert [item.id for item in summaries] == [manifests[0].id, manifests[2].id]
    assert list(damaged) == [changed.id]
    assert "its SHA-256 differs from" in damaged[changed.id]
    assert backend.reads["snapshots"] == 1
    with pytest.raises(SnapshotDamaged, match="its SHA-256 differs"):
        reader.resolve_snapshot(changed.id)
    with pytest.raises(SnapshotDamaged, match="its SHA-256 differs"):
        reader.find_snapshot(changed.id)

    # The evidence stays through merges, until a rebuild accepts the manifest.
    repository.compact_catalog()
    assert list(repository.scan_snapshots()[1]) == [changed.id]
    repository.rebuild_catalog()
    by_id = {item.id: item for item in repository.snapshot_summaries()}
    assert by_id[changed.id].labels == {"tier": "gold-plus"}


def test_changed_manifest_with_same_stamp_refused(repository):
    """A change that keeps size and mtime is found when the manifest is read."""
    manifests = write_manifests(repository, ["alpha"], 2)
    repository.snapshot_summaries()
    path = Path(repository.location) / f"snapshots/{manifests[1].id}.json"
    before = path.stat()
    data = path.read_bytes()
    assert b'"res_partner": 10' in data
    path.write_bytes(data.replace(b'"res_partner": 10', b'"res_partner": 99'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    manifests_read, damaged = repository.scan_snapshots()
    assert [item.id for item in manifests_read] == [manifests[0].id]
    assert list(damaged) == [manifests[1].id]
    # A restore of the tenant takes the older snapshot and names the newer one.
    assert repository.resolve_snapshot("alpha") == manifests[0]
    assert repository.newer_unreadable == [manifests[1].id]
    with pytest.raises(SnapshotDamaged, match="its SHA-256 differs"):
        repository.resolve_snapshot(manifests[1].id)


def test_manifest_copied_over_another(repository):
    manifests = write_manifests(repository, ["alpha"], 3)
    repository.snapshot_summaries()
    root = Path(repository.location) / "snapshots"
    hidden, shown = manifests[0].id, manifests[1].id
    content = (root / f"{shown}.json").read_bytes()
    assert len(content) == (root / f"{hidden}.json").stat().st_size
    # File times tick in steps of a few milliseconds: let the copy get its own.
    time.sleep(0.05)
    (root / f"{hidden}.json").write_bytes(content)

    reader, backend = counted(repository)
    summaries, damaged = reader.scan_summaries()
    assert [item.id for item in summaries] == [shown, manifests[2].id]
    assert list(damaged) == [hidden]
    assert f"contains the manifest of snapshot {shown}" in damaged[hidden]
    assert backend.reads["snapshots"] == 1


def test_damaged_segment_rebuilt(repository, caplog):
    write_manifests(repository, ["alpha", "beta"], 5)
    repository.snapshot_summaries()
    [damaged_key] = segment_keys(repository)
    (Path(repository.location) / damaged_key).write_bytes(b'{"format": "odoo-dr-')

    reader, backend = counted(repository)
    with caplog.at_level(logging.WARNING):
        assert len(reader.snapshot_summaries()) == 10
    assert "ignoring damaged catalog segment" in caplog.text
    assert damaged_key in caplog.text
    assert backend.reads["snapshots"] == 10
    keys = segment_keys(repository)
    assert damaged_key not in keys
    assert len(keys) == 1

    rebuilt, rebuilt_backend = counted(repository)
    assert len(rebuilt.snapshot_summaries()) == 10
    assert rebuilt_backend.reads["snapshots"] == 0


def test_damaged_manifest_reported_not_cataloged(repository):
    manifests = write_manifests(repository, ["alpha"], 3)
    broken = manifests[1]
    (Path(repository.location) / f"snapshots/{broken.id}.json").write_text("{")

    summaries, damaged = repository.scan_summaries()
    assert [item.id for item in summaries] == [manifests[0].id, manifests[2].id]
    assert list(damaged) == [broken.id]

    reader, backend = counted(repository)
    _summaries, damaged_again = reader.scan_summaries()
    assert list(damaged_again) == [broken.id]
    assert backend.reads["snapshots"] == 1


def test_many_segments_compacted(repository):
    blob = empty_index_blob(repository)
    count = catalog.MAX_SEGMENTS + 2
    for day in range(count):
        repository.save_snapshot(
            synthetic_manifest("alpha", START + timedelta(days=day), blob)
        )
    assert len(segment_keys(repository)) == count

    assert len(repository.snapshot_summaries()) == count
    assert len(segment_keys(repository)) == 1
    reader, backend = counted(repository)
    assert len(reader.snapshot_summaries()) == count
    assert backend.reads["catalog"] == 1
    assert backend.reads["snapshots"] == 0


class AppendOnlyBackend(CountingBackend):
    """The real backend, rejecting deletes as an append-only S3 credential does."""

    def delete(self, key: str) -> None:
        raise DeleteDenied(f"AccessDenied deleting {key}")


def test_append_only_credential_adds_segments(repository):
    blob = empty_index_blob(repository)
    count = catalog.MAX_SEGMENTS + 3
    for day in range(count):
        repository.save_snapshot(
            synthetic_manifest("alpha", START + timedelta(days=day), blob)
        )
    writer = Repository(
        AppendOnlyBackend(repository.backend), repository.config, repository.keys
    )

    for _ in range(3):
        assert len(writer.snapshot_summaries()) == count
    assert len(segment_keys(repository)) == count

    repository.snapshot_summaries()
    assert len(segment_keys(repository)) == 1


def test_prune_drops_removed_entries(repository):
    manifests = write_manifests(repository, ["alpha", "beta"], 5)
    repository.snapshot_summaries()
    now = START + timedelta(days=30)
    policy = RetentionPolicy(keep_last=2)

    planned = prune(repository, [policy], dry_run=True, now=now)
    assert len(planned.snapshots_removed) == 6
    assert len(segment_keys(repository)) == 1

    result = prune(repository, [policy], now=now)
    removed = set(result.snapshots_removed)
    assert len(removed) == 6
    kept = [item.id for item in manifests if item.id not in removed]
    [key] = segment_keys(repository)
    entries = json.loads((Path(repository.location) / key).read_text())["snapshots"]
    assert sorted(entry["id"] for entry in entries) == sorted(kept)

    reader, backend = counted(repository)
    assert [item.id for item in reader.snapshot_summaries()] == kept
    assert backend.reads["snapshots"] == 0


def test_encrypted_catalog_sealed(tmp_path):
    repository = Repository.init(str(tmp_path / "repo"), secret=b"catalog secret")
    tenant = "tenant-with-a-telling-name"
    blob = empty_index_blob(repository)
    for day in range(3):
        repository.save_snapshot(
            synthetic_manifest(tenant, START + timedelta(days=day), blob)
        )
    assert len(repository.snapshot_summaries()) == 3

    keys = segment_keys(repository)
    assert keys
    for key in keys:
        assert SEGMENT_NAME.match(key)
        stored = (tmp_path / "repo" / key).read_bytes()
        assert tenant.encode() not in stored
        assert b"odoo-dr-catalog" not in stored
        assert b"manifest_sha256" not in stored

    reader, backend = counted(repository)
    summaries = reader.snapshot_summaries()
    assert [item.tenant for item in summaries] == [tenant] * 3
    assert backend.reads["snapshots"] == 0

    # A segment moved to another name no longer opens, and is rebuilt.
    moved = tmp_path / "repo" / "catalog/20990101-000000-{}.json".format("0" * 32)
    (tmp_path / "repo" / keys[0]).rename(moved)
    assert len(repository.snapshot_summaries()) == 3
    assert not moved.exists()


WRITER = """
import sys
from datetime import timedelta
sys.path.insert(0, {tests!r})
from test_catalog import START, empty_index_blob, synthetic_manifest
from odoo_dr.repository.store import Repository

repository = Repository.open(sys.argv[1])
blob = empty_index_blob(repository)
for day in range(int(sys.argv[3])):
    repository.save_snapshot(
        synthetic_manifest(sys.argv[2], START + timedelta(days=day), blob)
    )
    repository.snapshot_summaries()
"""


def test_concurrent_writers_lose_nothing(repository):
    script = WRITER.format(tests=str(TESTS))
    count = catalog.MAX_SEGMENTS + 4
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, repository.location, tenant, str(count)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for tenant in ("alpha", "beta")
    ]
    for writer in writers:
        _out, error = writer.communicate(timeout=120)
        assert writer.returncode == 0, error

    reader, backend = counted(repository)
    summaries = reader.snapshot_summaries()
    assert Counter(item.tenant for item in summaries) == {
        "alpha": count,
        "beta": count,
    }
    assert backend.reads["snapshots"] == 0
    assert len(segment_keys(repository)) <= catalog.MAX_SEGMENTS + 1


def test_rebuild_catalog_command(repository):
    write_manifests(repository, ["alpha"], 4)
    repository.snapshot_summaries()
    old_keys = segment_keys(repository)

    result = run_cli("repository", "rebuild-catalog", "--repo", repository.location)
    assert result.returncode == 0, result.stderr
    assert "cataloged 4 snapshots" in result.stdout
    new_keys = segment_keys(repository)
    assert len(new_keys) == 1
    assert new_keys != old_keys

    listing = run_cli("snapshots", "--repo", repository.location)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count(" db-alpha ") == 4


@pytest.fixture
def s3_environment(s3_endpoint, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_catalog_on_s3(s3_environment, unique):
    location = f"s3://{VERSIONED_BUCKET}/catalog-{unique}"
    repository = Repository.init(location)
    manifests = write_manifests(repository, ["alpha", "beta"], 4)
    assert len(repository.snapshot_summaries()) == 8

    reader, backend = counted(Repository.open(location))
    assert [item.id for item in reader.snapshot_summaries()] == [
        item.id for item in manifests
    ]
    assert backend.reads["snapshots"] == 0
    assert backend.reads["catalog"] == 1

    # S3 lists object times to the second: the view's time needs a second of
    # its own, so it excludes what follows.
    wait_for_next_second()
    moment = datetime.now(UTC).replace(microsecond=0)
    wait_for_next_second()
    blob = empty_index_blob(repository)
    repository.save_snapshot(
        synthetic_manifest("alpha", START + timedelta(days=9), blob)
    )

    view, view_backend = counted(
        Repository.open(f"{location}?as-of={moment.isoformat()}")
    )
    assert len(view.snapshot_summaries()) == 8
    assert view.latest_snapshot("alpha") == manifests[-2]
    assert sum(view_backend.writes.values()) == 0
    assert len(Repository.open(location).snapshot_summaries()) == 9


def wait_for_next_second() -> None:
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)


def test_damaged_same_second_snapshot_named(repository):
    """Of two snapshots in one second, the newer may have the lower id."""
    blob = empty_index_blob(repository)
    older = synthetic_manifest("alpha", START, blob).model_copy(
        update={"id": "20260101-020000-ffffffff"}
    )
    newer = synthetic_manifest("alpha", START + timedelta(milliseconds=500), blob)
    newer = newer.model_copy(update={"id": "20260101-020000-00000000"})
    repository.save_snapshot(older)
    repository.save_snapshot(newer)
    path = Path(repository.location) / f"snapshots/{newer.id}.json"
    path.write_bytes(
        path.read_bytes().replace(b'"res_partner": 10', b'"res_partner": 11')
    )

    assert repository.resolve_snapshot("alpha") == older
    assert repository.newer_unreadable == [newer.id]


def write_raw_segment(repository: Repository, document: dict) -> None:
    data = json.dumps(document).encode("utf-8")
    repository.write_document(catalog.new_segment_key(data=data), data)


def test_removed_list_segment_read(repository):
    """A segment whose `removed` is a list of ids reads with the segment's time:
    read as damaged, it would lose every entry and removed id in it."""
    manifests = write_manifests(repository, ["alpha"], 4)
    repository.snapshot_summaries()
    [key] = segment_keys(repository)
    path = Path(repository.location) / key
    document = json.loads(path.read_text())
    document["removed"] = []
    write_raw_segment(repository, document)
    path.unlink()
    pruned, changed = manifests[0].id, manifests[1].id
    write_raw_segment(
        repository,
        {
            "version": 1,
            "written_at": "2026-12-01T00:00:00Z",
            "snapshots": [],
            "removed": [pruned],
        },
    )
    (Path(repository.location) / f"snapshots/{pruned}.json").unlink()
    manifest = Path(repository.location) / f"snapshots/{changed}.json"
    manifest.write_text(
        manifest.read_text().replace('"res_partner": 10', '"res_partner": 11')
    )

    _summaries, damaged = repository.scan_summaries()
    assert set(damaged) == {changed}
    _summaries, damaged = repository.scan_summaries()
    assert set(damaged) == {changed}


def test_copied_back_deletion_reported(repository):
    """Prune removes a snapshot, `odoo-dr copy` publishes the same id again
    (save_snapshot, as copy does), then its manifest is deleted by hand."""
    manifests = write_manifests(repository, ["alpha"], 3)
    repository.snapshot_summaries()
    now = START + timedelta(days=30)
    result = prune(repository, [RetentionPolicy(keep_last=1)], now=now)
    assert manifests[0].id in result.snapshots_removed
    repository.save_snapshot(manifests[0])
    assert repository.scan_summaries()[1] == {}

    (Path(repository.location) / f"snapshots/{manifests[0].id}.json").unlink()
    assert manifests[0].id in repository.scan_summaries()[1]
    # Also after a prune, which drops only the removed ids of listed manifests.
    with pytest.raises(RepositoryError, match=manifests[0].id):
        prune(repository, [RetentionPolicy(keep_last=10)], now=now)
