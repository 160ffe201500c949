"""The repository on a real folder: objects, manifests, locks, leftovers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import blob_path, damage_blob, delete_pack_of
from odoo_dr.errors import (
    CorruptObject,
    LockHeld,
    RejectedError,
    RepositoryError,
    SnapshotDamaged,
)
from odoo_dr.repository import objects
from odoo_dr.repository.lock import TenantLock
from odoo_dr.repository.manifest import StoredBlob
from odoo_dr.repository.store import Repository


def test_init_writes_config_and_readme(tmp_path):
    repository = Repository.init(str(tmp_path / "repo"))
    root = Path(repository.location)
    config = json.loads((root / "config.json").read_text())
    assert config["format"] == "odoo-dr-repository"
    assert config["version"] == 1
    assert config["chunking"]["avg_size"] == objects.CHUNK_AVG
    assert config["pack_size"] == 16 * 1024 * 1024
    assert "zstd -dc" in (root / "README.md").read_text()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "config.json").stat().st_mode) == 0o600


def test_init_twice_rejected(tmp_path):
    Repository.init(str(tmp_path / "repo"))
    with pytest.raises(RejectedError, match="already exists"):
        Repository.init(str(tmp_path / "repo"))


def test_init_in_non_empty_folder_rejected(tmp_path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(RejectedError, match="not empty"):
        Repository.init(str(tmp_path))


def test_open_missing_repository(tmp_path):
    with pytest.raises(RepositoryError, match="no odoo-dr repository") as raised:
        Repository.open(str(tmp_path / "nothing"))
    assert "odoo-dr init" in raised.value.hint


def test_open_newer_format_rejected(repository):
    config = json.loads(repository.backend.read("config.json"))
    config["version"] = 99
    repository.backend.write("config.json", json.dumps(config).encode())
    with pytest.raises(RepositoryError, match="upgrade odoo-dr"):
        Repository.open(repository.location)


def test_open_damaged_config_rejected(repository):
    repository.backend.write("config.json", b"{not json")
    with pytest.raises(RepositoryError, match="invalid repository configuration"):
        Repository.open(repository.location)


def test_blob_stored_once(repository):
    blob_id, first = repository.blobs.put(b"pallet label" * 1000)
    again, second = repository.blobs.put(b"pallet label" * 1000)
    repository.blobs.flush()
    assert blob_id == again
    assert first.new_objects == 1
    assert second.new_objects == 0
    assert repository.blobs.get(blob_id) == b"pallet label" * 1000
    assert Repository.open(repository.location).blobs.get(blob_id) == (
        b"pallet label" * 1000
    )


def test_pack_readable_with_zstd(repository):
    first, _ = repository.blobs.put(b"shipping manifest ")
    second, _ = repository.blobs.put(b"delivery note")
    repository.blobs.flush()
    path, _offset, _length = blob_path(repository, first)
    assert blob_path(repository, second)[0] == path
    # zstd skips the pack's header frame and prints the chunks one after the other.
    printed = subprocess.run(
        ["zstd", "-dc", str(path)], capture_output=True, check=True
    ).stdout
    assert printed == b"shipping manifest delivery note"


def test_pack_named_by_content(repository):
    blob_id, _ = repository.blobs.put(os.urandom(1000))
    repository.blobs.flush()
    path, _offset, _length = blob_path(repository, blob_id)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_flipped_byte_detected(repository):
    blob_id, _stats = repository.blobs.put(os.urandom(4096))
    repository.blobs.flush()
    damage_blob(repository, blob_id, flip=0x01)
    with pytest.raises(CorruptObject, match=blob_id):
        Repository.open(repository.location).blobs.get(blob_id)


def test_truncated_pack_detected(repository):
    blob_id, _stats = repository.blobs.put(os.urandom(4096))
    repository.blobs.flush()
    path, _offset, _length = blob_path(repository, blob_id)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptObject, match="truncated"):
        Repository.open(repository.location).blobs.get(blob_id)


def test_missing_pack_named(repository):
    blob_id, _stats = repository.blobs.put(b"first")
    repository.blobs.flush()
    delete_pack_of(repository, blob_id)
    reopened = Repository.open(repository.location)
    with pytest.raises(SnapshotDamaged, match="is missing"):
        reopened.blobs.get(blob_id)
    assert reopened.blobs.missing([StoredBlob(size=5, chunks=[blob_id])]) == [blob_id]


def test_unindexed_pack_reused(repository):
    """A pack written by a run killed before its index file is found again."""
    blob_id, _stats = repository.blobs.put(b"written before the kill")
    for writer in repository.blobs._writers.values():
        writer.flush()
    reopened = Repository.open(repository.location)
    assert blob_id not in reopened.blobs.index
    reopened.blobs.prepare_to_write()
    assert blob_id in reopened.blobs.index
    _same, stats = reopened.blobs.put(b"written before the kill")
    assert stats.new_objects == 0
    reopened.blobs.flush()
    assert len(list((Path(repository.location) / "index").iterdir())) == 1


def test_damaged_index_file_recovered(repository):
    blob_id, _stats = repository.blobs.put(b"indexed twice over")
    repository.blobs.flush()
    (index_file,) = (Path(repository.location) / "index").iterdir()
    index_file.write_text("{not json")
    reopened = Repository.open(repository.location)
    reopened.blobs.prepare_to_write()
    assert reopened.blobs.get(blob_id) == b"indexed twice over"


def test_chunking_keeps_unchanged_parts(repository, tmp_path):
    base = os.urandom(30 * 1024 * 1024)
    before = tmp_path / "before.dat"
    after = tmp_path / "after.dat"
    before.write_bytes(base)
    after.write_bytes(base[:10_000_000] + b"inserted rows" + base[10_000_000:])
    first, _sha1, _stats = repository.blobs.put_file(before)
    second, _sha1, added = repository.blobs.put_file(after)
    repository.blobs.flush()
    shared = set(first.chunks) & set(second.chunks)
    assert len(first.chunks) > 10
    assert len(shared) >= len(first.chunks) - 3
    assert added.new_objects <= 3
    assert repository.blobs.read_blob(second) == after.read_bytes()


def test_no_temporary_files_after_writes(repository):
    for index in range(20):
        repository.blobs.put(f"object {index}".encode())
    repository.blobs.flush()
    assert list((Path(repository.location) / "tmp").iterdir()) == []


def test_leftovers_of_dead_process_removed(repository):
    tmp = Path(repository.location) / "tmp"
    host = socket.gethostname()
    dead = tmp / f"{host}-999999999-{'a' * 32}"
    dead.write_bytes(b"partial")
    folder = tmp / f"{host}-999999999-dump{'b' * 32}"
    folder.mkdir()
    (folder / "toc.dat").write_bytes(b"partial")
    alive = tmp / f"{host}-{os.getpid()}-{'c' * 32}"
    alive.write_bytes(b"in progress")
    other_host = tmp / f"elsewhere-1-{'d' * 32}"
    other_host.write_bytes(b"maybe in progress")
    repository.cleanup()
    assert sorted(path.name for path in tmp.iterdir()) == sorted(
        [alive.name, other_host.name]
    )


def test_lock_held_by_live_process(repository):
    with repository.lock_tenant("Acme-Prod 2024", "backup"):
        with pytest.raises(LockHeld, match="Acme-Prod 2024") as raised:
            repository.lock_tenant("Acme-Prod 2024", "backup").acquire()
    assert f"pid {os.getpid()}" in str(raised.value)
    assert list((Path(repository.location) / "locks").iterdir()) == []


def write_lock(repository: Repository, tenant: str, **fields) -> None:
    lock = TenantLock(repository.backend, tenant, "backup")
    payload = {
        "tenant": tenant,
        "operation": "backup",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "created_at": datetime.now(UTC).isoformat(),
        "refreshed_at": datetime.now(UTC).isoformat(),
        "token": "other",
    }
    payload.update(fields)
    repository.backend.write(lock.key, json.dumps(payload).encode())


def test_lock_of_dead_process_taken_over(repository):
    write_lock(repository, "ACME_Prod", pid=999999999)
    with repository.lock_tenant("ACME_Prod", "backup"):
        pass


def test_lock_not_refreshed_is_stale(repository):
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    write_lock(repository, "ACME_Prod", host="another-host", pid=1, refreshed_at=old)
    with repository.lock_tenant("ACME_Prod", "backup"):
        pass


def test_lock_on_other_host_respected(repository):
    write_lock(repository, "ACME_Prod", host="another-host", pid=1)
    with pytest.raises(LockHeld, match="another-host"):
        repository.lock_tenant("ACME_Prod", "backup").acquire()


def test_truncated_lock_is_stale(repository):
    lock = TenantLock(repository.backend, "ACME_Prod", "backup")
    repository.backend.write(lock.key, b'{"tenant": "ACME')
    with repository.lock_tenant("ACME_Prod", "backup"):
        pass


class _InterruptOnLog(logging.Handler):
    """Raise KeyboardInterrupt from a log call, as a signal handler would there."""

    def emit(self, record: logging.LogRecord) -> None:
        raise KeyboardInterrupt


def test_interrupted_lock_acquire_removed(repository):
    # acquire() logs "locked tenant" once the lock file exists.
    logger = logging.getLogger("odoo_dr.repository.lock")
    handler = _InterruptOnLog(level=logging.DEBUG)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises(KeyboardInterrupt):
            with repository.lock_tenant("ACME_Prod", "backup"):
                pass
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert list((Path(repository.location) / "locks").iterdir()) == []


def test_damaged_manifest_isolated(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    backup = ["backup", summary.database, "--repo", repository.location,
              "--filestore-root", str(filestore_root)]  # fmt: skip
    damaged = cli(*backup).stdout.strip()
    healthy = cli(*backup, "--tenant", "other tenant").stdout.strip()
    path = Path(repository.location) / "snapshots" / f"{damaged}.json"
    path.write_bytes(path.read_bytes()[:200])

    listed = cli("snapshots", "--repo", repository.location)
    assert listed.returncode == 1
    assert f"snapshot {damaged} is unreadable" in listed.stderr
    assert "damaged" in listed.stderr
    assert healthy in listed.stdout

    # Backups and drills of everything else go on.
    again = cli(*backup)
    assert again.returncode == 0, again.stderr
    drill = cli("drill", healthy, "--repo", repository.location)
    assert drill.returncode == 0, drill.stderr
    restore = cli("drill", damaged, "--repo", repository.location)
    assert restore.returncode == 2
    assert f"snapshot manifest {damaged}" in restore.stderr


def test_missing_object_rejects_restore(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli("backup", summary.database, "--repo", repository.location,
                   "--filestore-root", str(filestore_root)).stdout.strip()  # fmt: skip
    manifest = repository.find_snapshot(snapshot)
    victim = manifest.dump[0].chunks[0]
    delete_pack_of(repository, victim)
    target = summary.database + "_never"
    result = cli("restore", snapshot, "--target", target, "--copy",
                 "--filestore-root", str(tmp_path),
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2
    assert "objects missing" in result.stderr
    assert "odoo-dr verify" in result.stderr


def test_manifest_path_traversal_rejected(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli("backup", summary.database, "--repo", repository.location,
                   "--filestore-root", str(filestore_root)).stdout.strip()  # fmt: skip
    manifest = repository.find_snapshot(snapshot)
    entries = json.loads(repository.blobs.read_blob(manifest.filestore.index))
    entries[0]["path"] = "../../escaped"
    blob, _stats = repository.blobs.put_chunks([json.dumps(entries).encode()])
    repository.blobs.flush()
    manifest.filestore.index = blob
    repository.backend.write(
        f"snapshots/{manifest.id}.json", manifest.model_dump_json().encode()
    )
    repository.rebuild_catalog()
    target = summary.database + "_escape"
    result = cli("restore", snapshot, "--target", target, "--copy",
                 "--filestore-root", str(tmp_path / "root" / "fs"),
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2
    assert "invalid filestore path '../../escaped'" in result.stderr
    assert not (tmp_path / "root" / "escaped").exists()
    assert not (tmp_path / "escaped").exists()


def test_snapshot_references_explained(
    cli, repository, odoo_database, filestore_root, tmp_path, database_names
):
    summary = odoo_database()
    backup = ["backup", summary.database, "--repo", repository.location,
              "--filestore-root", str(filestore_root)]  # fmt: skip
    older = cli(*backup).stdout.strip()
    # Ids order by their second first; two backups in the same second would be
    # ordered by their random tails. The older backup ended in this second at the
    # latest, so the newer one starts in a later second than the older's id.
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)
    newer = cli(*backup).stdout.strip()
    assert newer > older
    other = cli(*backup, "--tenant", "other tenant").stdout.strip()
    restore = ["--target", summary.database + "_never", "--copy",
               "--filestore-root", str(tmp_path / "out"),
               "--repo", repository.location]  # fmt: skip

    # Ids begin with the date: the shared prefix matches all three.
    prefix = os.path.commonprefix([older, newer, other])
    ambiguous = cli("restore", prefix, *restore)
    assert ambiguous.returncode == 2
    assert f"snapshot id prefix {prefix!r} is ambiguous" in ambiguous.stderr
    for snapshot_id in (older, newer, other):
        assert snapshot_id in ambiguous.stderr
    assert "'other tenant'" in ambiguous.stderr

    path = Path(repository.location) / "snapshots" / f"{newer}.json"
    path.write_bytes(path.read_bytes()[:300])
    for command in (["drill", newer, "--repo", repository.location],
                    ["restore", newer, *restore],
                    ["restore", newer[:-2], *restore]):  # fmt: skip
        damaged = cli(*command)
        assert damaged.returncode == 2
        assert f"snapshot manifest {newer} is damaged ({path})" in damaged.stderr
        assert "not found" not in damaged.stderr

    unknown = cli("drill", "no such tenant", "--repo", repository.location)
    assert unknown.returncode == 2
    assert "no snapshot or tenant named 'no such tenant'" in unknown.stderr
    assert "1 snapshot manifest(s) could not be read" in unknown.stderr
    assert str(path) in unknown.stderr

    # The tenant's latest readable snapshot is used, with a word on the newer one.
    # The drill passes but exits 1, so a scheduler detects that the newest snapshot
    # is unreadable.
    by_tenant = cli("drill", summary.database, "--json", "--repo", repository.location)
    assert by_tenant.returncode == 1, by_tenant.stderr
    assert json.loads(by_tenant.stdout)["snapshot_id"] == older
    assert json.loads(by_tenant.stdout)["passed"] is True
    assert f"the newer snapshot manifest(s) {newer} cannot be read" in by_tenant.stderr
    assert f"warning: drilled {older}, not the newer" in by_tenant.stderr

    database_names.append(summary.database + "_older")
    restored = cli(
        "restore", summary.database, "--target", summary.database + "_older",
        "--copy", "--filestore-root", str(tmp_path / "out"),
        "--repo", repository.location,
    )  # fmt: skip
    assert restored.returncode == 1, restored.stderr
    assert f"restored {older}, not the newer snapshot manifest(s) {newer}" in (
        restored.stderr
    )
