"""A prune killed with SIGKILL at any point leaves every remaining snapshot whole.

The kill points are counted in the test's own child process only: the driver below
wraps the local backend's writes and deletes, and kills its own process right after
the N-th of them. odoo-dr itself has no such hook.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import clone_demo, drop_leftovers
from odoo_dr.engine.prune import prune
from odoo_dr.engine.retention import RetentionPolicy
from odoo_dr.repository import objects
from odoo_dr.repository.index import pack_key
from odoo_dr.repository.packs import seal
from odoo_dr.repository.store import Repository
from test_prune import (
    assert_all_verify,
    day,
    pack_files,
    small_pack_repository,
    snapshot_ids,
    take_backup,
)

KEEP = ("--keep-last", "2")
# Prune alone, and prune that also rewrites every kept pack with an unused blob.
VARIANTS = {"plain": (), "repack": ("--repack", "0")}

# A child process that imports odoo-dr once, then forks one prune per request
# ("<repository> <limit>" on stdin) and writes its exit status to stdout: the negative
# signal number when it was killed. Each prune's stderr goes to <repository>.log.
DRIVER = """
import os, signal, sys
from odoo_dr.repository.local import LocalBackend

limit = 0
count = 0


def counting(original):
    def wrapped(self, key, *args, **kwargs):
        global count
        result = original(self, key, *args, **kwargs)
        count += 1
        print(f"event {count} {original.__name__} {key}", file=sys.stderr, flush=True)
        if count == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped


for name in ("write", "delete", "create_exclusive"):
    setattr(LocalBackend, name, counting(getattr(LocalBackend, name)))

from odoo_dr.cli.app import main

for line in sys.stdin:
    location, limit_text, *options = line.split()
    pid = os.fork()
    if pid == 0:
        limit = int(limit_text)
        log = os.open(location + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["odoo-dr", "prune", "--repo", location, *options]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    answer = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(answer, flush=True)
"""


class Driver:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def prune(
        self, location: Path, limit: int, options: tuple[str, ...]
    ) -> tuple[int, str]:
        """Run prune on `location`, killed after `limit` writes and deletes (0:
        never); return its exit status and its stderr."""
        self.process.stdin.write(f"{location} {limit} {' '.join(KEEP + options)}\n")
        self.process.stdin.flush()
        status = int(self.process.stdout.readline())
        return status, Path(f"{location}.log").read_text()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def second_prune(location: Path, options: tuple[str, ...]) -> None:
    repack = 0.0 if options else None
    prune(Repository.open(str(location)), [RetentionPolicy(keep_last=2)], repack=repack)


def assert_finished(
    location: Path, kept: set[str], packs: set[str], options: tuple[str, ...]
) -> None:
    """Check that the snapshots a killed prune left verify, and that a second
    prune ends where an uninterrupted one ends."""
    present = snapshot_ids(location)
    assert kept <= present
    assert_all_verify(location)
    second_prune(location, options)
    assert snapshot_ids(location) == kept
    assert pack_files(location) == packs
    assert list((location / "locks").iterdir()) == []
    assert_all_verify(location)


@pytest.fixture(scope="module")
def base_repository(settings, small_template, tmp_path_factory) -> tuple[Path, str]:
    """Return a repository of five snapshots and an unindexed pack, and that pack's id.

    It is made once per module, because the tests prune only copies of it.
    """
    folder = tmp_path_factory.mktemp("prune-crash")
    filestore_root = folder / "filestore"
    name = f"odoo_dr_prune_crash_{uuid.uuid4().hex[:6]}"
    base = folder / "base"
    try:
        summary = clone_demo(settings, small_template, name, filestore_root)
        small_pack_repository(base)
        for number in range(1, 6):
            take_backup(
                settings, base, summary.database, filestore_root, day(1, number)
            )
    finally:
        drop_leftovers([name])
    # A backup killed after storing a pack leaves a pack that no index file lists.
    content = os.urandom(30_000)
    leftover = seal([(objects.object_id(content), objects.encode(content), 30_000)])
    Repository.open(str(base)).backend.write(pack_key(leftover.id), leftover.data)
    return base, leftover.id


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prune_killed_anywhere(base_repository, tmp_path, variant):
    options = VARIANTS[variant]
    base, leftover_id = base_repository
    driver = Driver()
    reference = tmp_path / "reference"
    shutil.copytree(base, reference)
    status, output = driver.prune(reference, 0, options)
    assert status == 0, output
    events = [line for line in output.splitlines() if line.startswith("event")]
    kept = snapshot_ids(reference)
    packs = pack_files(reference)
    assert len(kept) == 2
    assert len(packs) < len(pack_files(base))
    assert leftover_id not in packs
    if options:
        assert "repacked" in output
        assert "repacked 0 pack(s)" not in output

    # Every write and delete of a prune, from taking its lock to releasing it.
    for limit in range(1, len(events)):
        location = tmp_path / f"killed-{limit}"
        shutil.copytree(base, location)
        status, output = driver.prune(location, limit, options)
        assert status == -signal.SIGKILL, (limit, output)
        assert_finished(location, kept, packs, options)
        shutil.rmtree(location)
    driver.close()

    # The command as users run it, killed at random moments.
    chance = random.Random()
    for round_number in range(3):
        location = tmp_path / f"random-{round_number}"
        shutil.copytree(base, location)
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "odoo_dr", "prune", "--repo", str(location)),
                *KEEP,
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(chance.uniform(0.2, 1.2))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert_finished(location, kept, packs, options)
        shutil.rmtree(location)
