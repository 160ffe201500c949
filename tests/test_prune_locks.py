"""Prune and backups exclude each other, checked with real processes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_prune import (
    assert_all_verify,
    day,
    pack_files,
    small_pack_repository,
    snapshot_ids,
    take_backup,
)

# Takes a lock of the repository in argv[1] and holds it until killed.
HOLDER = """
import sys, time
from odoo_dr.repository.lock import PruneLock
from odoo_dr.repository.store import Repository

repository = Repository.open(sys.argv[1])
if sys.argv[2] == "prune":
    lock = PruneLock(repository.backend)
else:
    lock = repository.lock_tenant(sys.argv[2], "backup")
lock.acquire()
print("locked", flush=True)
time.sleep(300)
"""


@pytest.fixture
def lock_holder():
    processes: list[subprocess.Popen] = []

    def start(location: Path, what: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(location), what],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_prune_rejected_while_tenant_locked(
    cli, settings, odoo_database, filestore_root, tmp_path, lock_holder
):
    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    for number in (1, 2):
        take_backup(
            settings, location, summary.database, filestore_root, day(1, number)
        )
    snapshots = snapshot_ids(location)
    packs = pack_files(location)
    holder = lock_holder(location, "busy-tenant")

    args = ("prune", "--repo", str(location), "--keep-last", "1")
    result = cli(*args)
    assert result.returncode == 2
    assert "cannot prune while tenants are locked" in result.stderr
    assert "'busy-tenant'" in result.stderr
    assert snapshot_ids(location) == snapshots
    assert pack_files(location) == packs
    assert not (location / "locks" / "prune.json").exists()

    # A lock whose process is gone does not hold prune back.
    kill(holder)
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert len(snapshot_ids(location)) == 1


def test_backup_rejected_while_pruning(
    cli, odoo_database, filestore_root, tmp_path, lock_holder
):
    summary = odoo_database()
    location = tmp_path / "repo"
    small_pack_repository(location)
    holder = lock_holder(location, "prune")
    args = (
        "backup",
        summary.database,
        "--repo",
        str(location),
        "--filestore-root",
        str(filestore_root),
    )
    result = cli(*args)
    assert result.returncode == 2
    assert "while the repository is being pruned" in result.stderr
    assert snapshot_ids(location) == set()
    assert [path.name for path in (location / "locks").iterdir()] == ["prune.json"]

    kill(holder)
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert len(snapshot_ids(location)) == 1


def test_backup_and_prune_race(settings, odoo_database, filestore_root, tmp_path):
    """Start a backup and a prune together; whichever wins, nothing breaks.

    The prune removes the only snapshot that contains a file which the backup finds
    again in the filestore, so a backup that reused its blob while prune deleted
    the pack would publish a snapshot with a missing object.
    """
    summary = odoo_database()
    base = tmp_path / "base"
    small_pack_repository(base)
    returning = filestore_root / summary.database / "zz" / "returning"
    returning.parent.mkdir(exist_ok=True)
    returning.write_bytes(bytes(range(256)) * 400)
    take_backup(settings, base, summary.database, filestore_root, day(1, 1))
    saved = returning.read_bytes()
    returning.unlink()
    take_backup(settings, base, summary.database, filestore_root, day(1, 2))
    returning.write_bytes(saved)

    for round_number in range(4):
        location = tmp_path / f"round-{round_number}"
        shutil.copytree(base, location)
        command = [sys.executable, "-m", "odoo_dr"]
        prune = subprocess.Popen(
            [*command, "prune", "--repo", str(location), "--keep-last", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        backup = subprocess.Popen(
            [
                *command,
                "backup",
                summary.database,
                "--repo",
                str(location),
                "--filestore-root",
                str(filestore_root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for process in (prune, backup):
            _out, error = process.communicate(timeout=120)
            assert process.returncode in (0, 2), error
            if process.returncode == 2:
                assert "lock" in error or "pruned" in error, error
        assert_all_verify(location)
        shutil.rmtree(location)
