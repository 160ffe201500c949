"""The machine a benchmark runs on, and the conditions of each timed run."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import odoo_dr
from odoo_dr import __version__ as odoo_dr_version
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import server_version

log = logging.getLogger("benchmark")


def _first_match(path: str, prefix: str) -> str | None:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def describe_disk(path: Path) -> dict:
    """Return the device, file system, size and rotational flag of `path`'s disk."""
    info: dict = {"path": str(path)}
    try:
        output = subprocess.run(
            ["findmnt", "--noheadings", "--output", "SOURCE,FSTYPE", "--target", path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        info["device"], info["filesystem"] = output[0], output[1]
        device = Path(info["device"]).name
        rotational = Path(f"/sys/block/{device}/queue/rotational")
        if rotational.exists():
            info["rotational"] = rotational.read_text().strip() == "1"
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    usage = shutil.disk_usage(path)
    info["size_bytes"] = usage.total
    info["free_bytes"] = usage.free
    return info


def describe_machine(work: Path, settings: PgSettings) -> dict:
    memory_kib = _first_match("/proc/meminfo", "MemTotal")
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        version_text, _major = server_version(connection)
        shared_buffers = connection.execute("SHOW shared_buffers").fetchone()[0]
    package = Path(odoo_dr.__file__).parent
    # The commit is known when odoo-dr runs from a git checkout (an editable install).
    commit = subprocess.run(
        ["git", "-C", str(package), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": _first_match("/proc/cpuinfo", "model name") or platform.processor(),
        "logical_cores": os.cpu_count(),
        "memory_bytes": int(memory_kib.split()[0]) * 1024 if memory_kib else None,
        "disk": describe_disk(work),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": version_text,
        "postgresql_shared_buffers": shared_buffers,
        "odoo_dr": odoo_dr_version,
        "odoo_dr_package": str(package),
        "odoo_dr_commit": commit or None,
        "odoo_dr_source_sha256": source_fingerprint(),
    }


def source_fingerprint() -> str:
    """Return a SHA-256 over odoo-dr's Python sources, to detect edits during a run."""
    digest = hashlib.sha256()
    package = Path(odoo_dr.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache. Return False when not permitted."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
    except OSError:
        return False
    return True


def _cpu_counters() -> tuple[int, int]:
    """Return the machine's total and idle CPU time in clock ticks, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:9]]
    # The fields are user, nice, system, idle, iowait, irq, softirq and steal.
    # Idle and iowait count as not busy.
    return sum(values), values[3] + values[4]


class RunConditions:
    """Preparation of each timed run, and a record of the conditions it started in.

    Before a run, the page cache is dropped and the machine's CPU use is sampled for
    two seconds while this script sleeps. The CPU busy then is used by other
    workloads, or by PostgreSQL's background work such as a checkpoint, and it is
    likely to take CPU from the run that follows as well.
    """

    SAMPLE_SECONDS = 2.0

    def __init__(self) -> None:
        self.cache_dropped_every_time = True
        self.background_cpu: dict[str, float] = {}

    def prepare(self, label: str) -> None:
        if not drop_caches():
            if self.cache_dropped_every_time:
                log.warning(
                    "cannot write /proc/sys/vm/drop_caches (it needs root), so runs "
                    "start with a warm page cache"
                )
            self.cache_dropped_every_time = False
        total_before, idle_before = _cpu_counters()
        time.sleep(self.SAMPLE_SECONDS)
        total_after, idle_after = _cpu_counters()
        elapsed = max(1, total_after - total_before)
        busy = 1 - (idle_after - idle_before) / elapsed
        self.background_cpu[label] = round(busy, 3)
        log.info("%s: other workloads use %.0f%% of the CPU", label, busy * 100)
