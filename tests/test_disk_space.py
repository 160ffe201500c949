"""Restores and drills on small file systems: the free-space pre-check and a full disk.

Each test mounts a tmpfs of a chosen size in a private mount namespace (see
`mounts`), so the sizes are exact and nothing outside the test fills up.
"""

from __future__ import annotations

import errno
import shlex
import sys
import uuid

import pytest

from conftest import clone_demo, database_exists, drop_leftovers, query, run_cli
from mounts import odoo_dr, run_in_namespace, tmpfs
from odoo_dr.engine.disk_space import SpaceNeed, disk_full_error
from odoo_dr.engine.restore_plan import load_index
from odoo_dr.repository.store import Repository

BLOCK = 4096


def on_disk(sizes: list[int]) -> int:
    """Return the bytes that files of `sizes` take on tmpfs (folders take none)."""
    return sum(-(-size // BLOCK) * BLOCK for size in sizes)


@pytest.fixture(scope="module")
def backed_up(settings, tmp_path_factory, small_template):
    """Back up one small database for the whole module; drop it at the end."""
    folder = tmp_path_factory.mktemp("backed-up")
    root = folder / "filestore"
    root.mkdir()
    name = f"odoo_dr_space_{uuid.uuid4().hex[:6]}"
    try:
        clone_demo(settings, small_template, name, root)
        repository = Repository.init(str(folder / "repo"))
        result = run_cli("backup", name, "--repo", repository.location,
                         "--filestore-root", str(root))  # fmt: skip
        assert result.returncode == 0, result.stderr
        manifest = repository.find_snapshot(result.stdout.strip())
        yield repository, manifest, load_index(repository, manifest)
    finally:
        drop_leftovers([name])


@pytest.fixture
def repository(backed_up):
    return backed_up[0]


@pytest.fixture
def snapshot(backed_up):
    """The manifest and file index of the module's snapshot."""
    return backed_up[1], backed_up[2]


def shared_size(manifest, index) -> int:
    """Return a tmpfs size that fits the dump or the files, but not both."""
    dump = on_disk([item.size for item in manifest.dump])
    files = on_disk([entry.size for entry in index])
    size = max(dump, files) + 2 * BLOCK
    assert size < dump + files
    return size


def test_restore_needs_dump_and_files_on_shared_disk(
    repository, snapshot, database_names, tmp_path
):
    manifest, index = snapshot
    disk = tmp_path / "disk"
    disk.mkdir()
    target = manifest.tenant + "_shared"
    database_names.append(target)
    script = f"""
{tmpfs(disk, shared_size(manifest, index))}
mkdir {shlex.quote(str(disk / "temp"))}
{odoo_dr("restore", manifest.id, "--target", target, "--copy",
         "--temp-dir", str(disk / "temp"), "--filestore-root", str(disk / "odoo"),
         "--repo", repository.location)}
"""  # fmt: skip
    result = run_in_namespace(script)
    assert result.returncode == 2, result.stderr
    assert f"not enough free space on the file system of {disk}" in result.stderr
    assert "the database dump" in result.stderr
    assert "the filestore" in result.stderr
    assert "--filestore-root or --temp-dir on another disk" in result.stderr
    assert not database_exists(target)


def test_drill_needs_dump_and_files_in_temp_dir(
    repository, snapshot, database_names, tmp_path
):
    manifest, index = snapshot
    temp = tmp_path / "temp"
    temp.mkdir()
    script = f"""
{tmpfs(temp, shared_size(manifest, index))}
{odoo_dr("drill", manifest.id, "--temp-dir", str(temp), "--repo", repository.location)}
"""
    result = run_in_namespace(script)
    assert result.returncode == 2, result.stderr
    assert f"not enough free space on the file system of {temp}" in result.stderr
    assert "pass --temp-dir on a larger disk" in result.stderr
    assert not query(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE %s",
        (f"odoo-dr-drill-{manifest.id}-%",),
    )
    assert repository.list_drills() == []


def test_restore_needs_free_inodes(repository, snapshot, database_names, tmp_path):
    manifest, index = snapshot
    disk = tmp_path / "disk"
    disk.mkdir()
    target = manifest.tenant + "_inodes"
    database_names.append(target)
    script = f"""
{tmpfs(disk, 64 * 2**20, inodes=len(index) // 2)}
{odoo_dr("restore", manifest.id, "--target", target, "--copy",
         "--filestore-root", str(disk), "--temp-dir", str(tmp_path),
         "--repo", repository.location)}
"""  # fmt: skip
    result = run_in_namespace(script)
    assert result.returncode == 2, result.stderr
    assert f"not enough free inodes in {disk} for the filestore" in result.stderr
    assert not database_exists(target)


# Fills the file system of the folder an option names once the pre-checks have
# passed, leaving 16 KiB free, then runs the command line as usual.
FILL_AFTER_PLAN = """
import os, sys
from pathlib import Path
from odoo_dr.cli.app import main
from odoo_dr.engine import restore

folder = Path(sys.argv.pop(1))
plan_restore = restore.plan_restore

def plan_then_fill(*args, **kwargs):
    plan = plan_restore(*args, **kwargs)
    stats = os.statvfs(folder)
    with open(folder / "filler", "wb") as handle:
        handle.write(b"\\0" * (stats.f_bavail * stats.f_frsize - 16384))
    return plan

restore.plan_restore = plan_then_fill
sys.argv[0] = "odoo-dr"
main()
"""


@pytest.mark.parametrize("full", ["filestore", "dump"])
def test_full_disk_during_restore_named(
    repository, snapshot, database_names, tmp_path, full
):
    manifest, _index = snapshot
    disk = tmp_path / "disk"
    disk.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    root, temp = (disk, other) if full == "filestore" else (other, disk)
    target = manifest.tenant + "_full"
    database_names.append(target)
    command = shlex.join([
        sys.executable, "-c", FILL_AFTER_PLAN, str(disk), "restore", manifest.id,
        "--target", target, "--copy", "--filestore-root", str(root),
        "--temp-dir", str(temp), "--repo", repository.location,
    ])  # fmt: skip
    script = f"""
{tmpfs(disk, 16 * 2**20)}
code=0
{command} || code=$?
rm {shlex.quote(str(disk / "filler"))}
ls -A {shlex.quote(str(disk))}
exit $code
"""
    result = run_in_namespace(script)
    assert result.returncode == 4, result.stderr
    assert f"no space left on the device of {disk}/" in result.stderr
    option = "--filestore-root" if full == "filestore" else "--temp-dir"
    assert f"or pass {option} on a larger disk" in result.stderr
    # The restore removed its temporary folders and database.
    assert result.stdout.split() == []
    assert list(other.iterdir()) == []
    assert not database_exists(target)


def test_restore_fits_when_disks_differ(repository, snapshot, database_names, tmp_path):
    """The same sizes pass when the dump and the files are on separate disks."""
    manifest, index = snapshot
    size = shared_size(manifest, index)
    temp = tmp_path / "temp"
    root = tmp_path / "root"
    temp.mkdir()
    root.mkdir()
    target = manifest.tenant + "_apart"
    database_names.append(target)
    script = f"""
{tmpfs(temp, size)}
{tmpfs(root, size)}
{odoo_dr("restore", manifest.id, "--target", target, "--copy",
         "--temp-dir", str(temp), "--filestore-root", str(root),
         "--repo", repository.location)}
"""  # fmt: skip
    result = run_in_namespace(script)
    assert result.returncode == 0, result.stderr
    assert database_exists(target)


def test_full_disk_without_path_names_folders(tmp_path):
    needs = [
        SpaceNeed(tmp_path / "temp", "the database dump", "--temp-dir", (10,), 0),
        SpaceNeed(tmp_path / "files", "the filestore", "--filestore-root", (10,), 1),
    ]
    error = OSError(errno.ENOSPC, "No space left on device")
    message, hint = disk_full_error(error, needs)
    assert f"while writing below {tmp_path}/temp/ or {tmp_path}/files/" in message
    assert hint.startswith(f"free space on the disk of {tmp_path}/temp/ or ")
    assert "pass --temp-dir or --filestore-root on a larger disk" in hint
