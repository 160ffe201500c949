"""The repository on a real folder: objects, manifests, locks, leftovers."""

from __future__ import annotations

import json
import os
import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from odoo_dr.errors import CorruptObject, LockHeld, RejectedError, RepositoryError
from odoo_dr.repository import objects
from odoo_dr.repository.lock import TenantLock
from odoo_dr.repository.store import Repository


def test_init_writes_config_and_readme(tmp_path):
    repository = Repository.init(str(tmp_path / "repo"))
    root = Path(repository.location)
    config = json.loads((root / "config.json").read_text())
    assert config["format"] == "odoo-dr-repository"
    assert config["version"] == 1
    assert config["chunking"]["avg_size"] == objects.CHUNK_AVG
    assert "zstd -d" in (root / "README.md").read_text()
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


def test_object_stored_once(repository):
    oid, first = repository.put_object(b"pallet label" * 1000)
    again, second = repository.put_object(b"pallet label" * 1000)
    assert oid == again
    assert first.new_objects == 1
    assert second.new_objects == 0
    assert repository.get_object(oid) == b"pallet label" * 1000


def test_object_readable_with_zstd(repository):
    oid, _stats = repository.put_object(b"shipping manifest")
    stored = (Path(repository.location) / objects.object_key(oid)).read_bytes()
    assert zstandard.ZstdDecompressor().decompress(stored) == b"shipping manifest"


def test_flipped_byte_detected(repository):
    oid, _stats = repository.put_object(os.urandom(4096))
    path = Path(repository.location) / objects.object_key(oid)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject, match=oid):
        repository.get_object(oid)


def test_swapped_object_detected(repository):
    first, _ = repository.put_object(b"first")
    second, _ = repository.put_object(b"second")
    root = Path(repository.location)
    (root / objects.object_key(first)).write_bytes(
        (root / objects.object_key(second)).read_bytes()
    )
    with pytest.raises(CorruptObject, match="does not match its checksum"):
        repository.get_object(first)


def test_chunking_keeps_unchanged_parts(repository, tmp_path):
    base = os.urandom(30 * 1024 * 1024)
    before = tmp_path / "before.dat"
    after = tmp_path / "after.dat"
    before.write_bytes(base)
    after.write_bytes(base[:10_000_000] + b"inserted rows" + base[10_000_000:])
    first, _sha1, _stats = repository.store_file(before)
    second, _sha1, added = repository.store_file(after)
    shared = set(first.chunks) & set(second.chunks)
    assert len(first.chunks) > 10
    assert len(shared) >= len(first.chunks) - 3
    assert added.new_objects <= 3
    assert repository.read_blob(second) == after.read_bytes()


def test_no_temporary_files_after_writes(repository):
    for index in range(20):
        repository.put_object(f"object {index}".encode())
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
    (Path(repository.location) / objects.object_key(victim)).unlink()
    target = summary.database + "_never"
    result = cli("restore", snapshot, "--target", target, "--copy",
                 "--filestore-root", str(tmp_path),
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2
    assert victim in result.stderr
    assert "odoo-dr verify" in result.stderr


def test_manifest_path_traversal_rejected(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli("backup", summary.database, "--repo", repository.location,
                   "--filestore-root", str(filestore_root)).stdout.strip()  # fmt: skip
    manifest = repository.find_snapshot(snapshot)
    entries = json.loads(repository.read_blob(manifest.filestore.index))
    entries[0]["path"] = "../../escaped"
    blob, _stats = repository.store_chunks([json.dumps(entries).encode()])
    manifest.filestore.index = blob
    repository.backend.write(
        f"snapshots/{manifest.id}.json", manifest.model_dump_json().encode()
    )
    target = summary.database + "_escape"
    result = cli("restore", snapshot, "--target", target, "--copy",
                 "--filestore-root", str(tmp_path / "root" / "fs"),
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2
    assert "invalid filestore path '../../escaped'" in result.stderr
    assert not (tmp_path / "root" / "escaped").exists()
    assert not (tmp_path / "escaped").exists()
