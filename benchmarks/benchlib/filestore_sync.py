"""Time `filestore sync` runs on a generated tenant folder.

    from benchlib.filestore_sync import measure_sync
    measure_sync("/tmp/bench-repo", Path("/tmp/bench-filestore"), 20_000, 0.01, 5)

The repository at `repo_location` is created if it does not exist. The files are
random bytes (incompressible), 2 to 64 KiB each, named as Odoo names them. Each
timed run is one `sync` call in this process, as the `--watch` loop makes it:
the segments read by the previous run stay parsed, the index is read again.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import statistics
import time
from pathlib import Path

from benchlib.machine import describe_disk
from odoo_dr import __version__ as odoo_dr_version
from odoo_dr.engine.filestore_sync import sync
from odoo_dr.errors import RepositoryError
from odoo_dr.repository.journal import JournalReader
from odoo_dr.repository.store import Repository

TENANT = "bench_sync"
MIN_SIZE = 2 * 1024
MAX_SIZE = 64 * 1024


def _add_files(folder: Path, count: int, generator: random.Random) -> int:
    """Write `count` new files; return their bytes."""
    total = 0
    for _ in range(count):
        data = generator.randbytes(generator.randint(MIN_SIZE, MAX_SIZE))
        sha1 = hashlib.sha1(data).hexdigest()
        path = folder / sha1[:2] / sha1
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return total


def _machine(root: Path) -> dict:
    with open("/proc/cpuinfo") as handle:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in handle if "model name" in line),
            platform.processor(),
        )
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "odoo_dr": odoo_dr_version,
        "disk": describe_disk(root),
    }


def _open_or_init(location: str) -> Repository:
    """Open the repository at `location`, or create it there when none exists."""
    try:
        return Repository.open(location)
    except RepositoryError:
        return Repository.init(location)


def measure_sync(
    repo_location: str, root: Path, files: int, new_fraction: float, runs: int
) -> dict:
    """Build a filestore of `files` files, sync it, then time `runs` syncs each
    with nothing new and with `new_fraction` of `files` new; return medians."""
    generator = random.Random(files)
    folder = root / TENANT
    folder.mkdir(parents=True, exist_ok=True)
    built_bytes = _add_files(folder, files, generator)
    repository = _open_or_init(repo_location)
    reader = JournalReader(repository, TENANT)

    started = time.perf_counter()
    first = sync(repository, TENANT, folder, reader=reader)
    first_seconds = time.perf_counter() - started

    unchanged = []
    for _ in range(runs):
        repository.refresh()
        started = time.perf_counter()
        result = sync(repository, TENANT, folder, reader=reader)
        unchanged.append(time.perf_counter() - started)
        assert result.segment is None, "a run with nothing new wrote a segment"

    new_count = max(1, round(files * new_fraction))
    with_new = []
    new_bytes = []
    for _ in range(runs):
        new_bytes.append(_add_files(folder, new_count, generator))
        repository.refresh()
        started = time.perf_counter()
        result = sync(repository, TENANT, folder, reader=reader)
        with_new.append(time.perf_counter() - started)
        assert result.new_files == new_count, result

    return {
        "files": files,
        "bytes": built_bytes,
        "new_fraction": new_fraction,
        "new_files_per_run": new_count,
        "new_bytes_per_run_median": statistics.median(new_bytes),
        "runs": runs,
        "first_sync_seconds": round(first_seconds, 3),
        "first_sync_files": first.new_files,
        "unchanged_seconds_median": round(statistics.median(unchanged), 4),
        "unchanged_seconds": [round(value, 4) for value in unchanged],
        "with_new_seconds_median": round(statistics.median(with_new), 4),
        "with_new_seconds": [round(value, 4) for value in with_new],
        "repository": repo_location,
        "machine": _machine(root),
    }
