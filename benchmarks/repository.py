"""Measure S3, encryption, verify and prune of odoo-dr on one generated tenant.

One run measures every side on the same data, machine and cache state:

1. Build the tenant `bench_tenant` with `odoo_dr.demo.builder`, as
   benchmarks/backup_restore.py does (at `--scale 1`: about 300 MB of database and
   1 GB of incompressible filestore in 20,000 files).
2. Back it up `--repeat` times into an empty repository of each kind: a local
   folder, a local folder encrypted with a passphrase, and an S3 bucket served by
   moto's standalone server on 127.0.0.1. moto runs as a separate process, so its
   CPU use competes with odoo-dr's as a local S3-compatible store would. The order
   of the kinds rotates.
3. Restore each kind's last snapshot `--repeat` times into a new database and
   filestore folder, checking every copy against the original.
4. `odoo-dr verify --read-data` on the local folder repository, against `sha1sum`
   over the same pack files. Both start with a dropped page cache when the script
   runs as root.
5. Take `--snapshots` snapshots in all (one day of business at 0.1 % between
   them), then time `odoo-dr prune --keep-last 5` on them.

Run from the repository root:

    .venv/bin/python benchmarks/repository.py                  # full size
    .venv/bin/python benchmarks/repository.py --scale 0.1 --repeat 1

Results go to stdout and to benchmarks/results/repository.json. Every database the
script creates starts with `bench_` and is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from backup_restore import (
    RESTORED_ODOO_DR,
    TENANT,
    Workspace,
    build_tenant,
    check_restored,
    drop_benchmark_databases,
    scaled,
)
from benchlib.business_day import apply_business_day, day_size
from benchlib.machine import RunConditions, describe_machine, drop_caches
from benchlib.odoo_dr_cli import odoo_dr_backup, odoo_dr_restore, run_odoo_dr
from benchlib.runner import run_benchmark
from benchlib.sizes import filestore_size, folder_size

from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "repository"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "repository.json"

KINDS = ("local", "local-encrypted", "s3")
BUCKET = "bench-odoo-dr"
# Only for the benchmark's own throwaway repository; never a real secret.
PASSPHRASE = "benchmark passphrase, not a secret"
PRUNE_KEEP_LAST = 5
PRUNE_DAILY_FRACTION = 0.001

# S3 has no target, because its speed depends on the store. The encryption target
# is a maximum ratio, and the verify target a minimum throughput relative to sha1sum.
TARGETS = {"encrypted_vs_plain_backup": 1.15, "verify_vs_sha1sum_throughput": 0.7}


class MotoServer:
    """moto's S3 server in its own process, on a free port of 127.0.0.1."""

    def __init__(self, work: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(work / "moto.log", "w")  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not start; see {self._log.name}")

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "benchmark",
            "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="benchmark",
            aws_secret_access_key="benchmark",
        )
        client.create_bucket(Bucket=name)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)
        self._log.close()


def repository_location(workspace: Workspace, kind: str, attempt: int) -> str:
    if kind == "s3":
        return f"s3://{BUCKET}/run-{attempt}"
    return str(workspace.root / f"repo-{kind}-{attempt}")


def measure_kinds(
    settings: PgSettings,
    workspace: Workspace,
    conditions: RunConditions,
    repeat: int,
    expected: tuple[dict[str, int], object],
) -> dict[str, dict]:
    """Back up into, and restore from, an empty repository of every kind."""
    results: dict[str, dict] = {
        kind: {"backups": [], "restores": [], "location": None} for kind in KINDS
    }
    for attempt in range(repeat):
        order = KINDS[attempt % len(KINDS) :] + KINDS[: attempt % len(KINDS)]
        for kind in order:
            location = repository_location(workspace, kind, attempt)
            init = ["init", "--repo", location]
            if kind == "local-encrypted":
                init.append("--encrypt")
            run_odoo_dr(init, workspace.odoo_dr_log)
            conditions.prepare(f"backup {attempt + 1} {kind}")
            log.info("backup %d: %s", attempt + 1, kind)
            backup = odoo_dr_backup(
                TENANT, location, workspace.source_root, workspace.odoo_dr_log
            )
            results[kind]["backups"].append(backup)
            results[kind]["location"] = location
    for attempt in range(repeat):
        order = KINDS[attempt % len(KINDS) :] + KINDS[: attempt % len(KINDS)]
        for kind in order:
            conditions.prepare(f"restore {attempt + 1} {kind}")
            log.info("restore %d: %s", attempt + 1, kind)
            restore = odoo_dr_restore(
                results[kind]["location"],
                results[kind]["backups"][-1]["snapshot"],
                RESTORED_ODOO_DR,
                workspace.restore_root,
                workspace.odoo_dr_log,
            )
            results[kind]["restores"].append(restore)
            check_restored(
                settings,
                RESTORED_ODOO_DR,
                workspace.restore_root / RESTORED_ODOO_DR,
                *expected,
            )
            with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
                drop_database(connection, RESTORED_ODOO_DR)
            shutil.rmtree(workspace.restore_root / RESTORED_ODOO_DR)
    return results


def pack_files(repository: Path) -> list[Path]:
    return sorted(path for path in (repository / "packs").rglob("*") if path.is_file())


def measure_verify(workspace: Workspace, repository: Path, repeat: int) -> dict:
    """Time `verify --read-data` and `sha1sum` over the same pack files."""
    packs = pack_files(repository)
    pack_bytes = sum(path.stat().st_size for path in packs)
    verify_runs: list[float] = []
    sha1_runs: list[float] = []
    for attempt in range(repeat):
        drop_caches()
        seconds, _output = run_odoo_dr(
            ["verify", "--read-data", "--repo", str(repository)],
            workspace.odoo_dr_log,
        )
        verify_runs.append(seconds)
        drop_caches()
        started = time.perf_counter()
        subprocess.run(
            ["sha1sum", *map(str, packs)], check=True, stdout=subprocess.DEVNULL
        )
        sha1_runs.append(round(time.perf_counter() - started, 3))
        log.info(
            "verify %d: odoo-dr %.1f s, sha1sum %.1f s over %.0f MB",
            attempt + 1,
            verify_runs[-1],
            sha1_runs[-1],
            pack_bytes / 1e6,
        )
    return {
        "pack_files": len(packs),
        "pack_bytes": pack_bytes,
        "verify_seconds": verify_runs,
        "sha1sum_seconds": sha1_runs,
    }


def measure_prune(
    settings: PgSettings,
    workspace: Workspace,
    repository: Path,
    snapshots: int,
    scale_file_bytes: int,
    lines_per_order: int,
) -> dict:
    """Grow the repository to `snapshots` snapshots, then time one prune."""
    existing = len(list((repository / "snapshots").glob("*.json")))
    files = filestore_size(workspace.source_root / TENANT).files
    size = day_size(settings, TENANT, files, PRUNE_DAILY_FRACTION)
    for day in range(existing + 1, snapshots + 1):
        apply_business_day(
            settings,
            TENANT,
            workspace.source_root / TENANT,
            size,
            day,
            scale_file_bytes,
            lines_per_order,
        )
        odoo_dr_backup(
            TENANT, str(repository), workspace.source_root, workspace.odoo_dr_log
        )
    before = folder_size(repository, skip=("tmp", "locks"))
    drop_caches()
    seconds, output = run_odoo_dr(
        [
            "prune",
            "--keep-last",
            str(PRUNE_KEEP_LAST),
            "--repo",
            str(repository),
            "--json",
        ],
        workspace.odoo_dr_log,
    )
    after = folder_size(repository, skip=("tmp", "locks"))
    log.info(
        "prune of %d snapshots: %.1f s, %.0f MB to %.0f MB",
        snapshots,
        seconds,
        before.bytes / 1e6,
        after.bytes / 1e6,
    )
    return {
        "snapshots_before": snapshots,
        "keep_last": PRUNE_KEEP_LAST,
        "seconds": seconds,
        "repository_bytes_before": before.bytes,
        "repository_bytes_after": after.bytes,
        "report": json.loads(output),
    }


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarize(
    arguments: argparse.Namespace,
    machine: dict,
    data: dict,
    kinds: dict,
    verify: dict,
    prune: dict,
) -> dict:
    backup = {
        kind: median([run["seconds"] for run in kinds[kind]["backups"]])
        for kind in KINDS
    }
    restore = {
        kind: median([run["seconds"] for run in kinds[kind]["restores"]])
        for kind in KINDS
    }
    verify_seconds = median(verify["verify_seconds"])
    sha1_seconds = median(verify["sha1sum_seconds"])
    ratios = {
        "s3_vs_local_backup": round(backup["s3"] / backup["local"], 3),
        "s3_vs_local_restore": round(restore["s3"] / restore["local"], 3),
        "encrypted_vs_plain_backup": round(
            backup["local-encrypted"] / backup["local"], 3
        ),
        "encrypted_vs_plain_restore": round(
            restore["local-encrypted"] / restore["local"], 3
        ),
        "verify_vs_sha1sum_throughput": round(sha1_seconds / verify_seconds, 3),
    }
    met = {
        "encrypted_vs_plain_backup": ratios["encrypted_vs_plain_backup"]
        <= TARGETS["encrypted_vs_plain_backup"],
        "verify_vs_sha1sum_throughput": ratios["verify_vs_sha1sum_throughput"]
        >= TARGETS["verify_vs_sha1sum_throughput"],
    }
    return {
        "arguments": {
            "scale": arguments.scale,
            "repeat": arguments.repeat,
            "snapshots": arguments.snapshots,
        },
        "machine": machine,
        "tenant": data,
        "median_seconds": {"backup": backup, "restore": restore},
        "verify": {
            **verify,
            "verify_mb_per_second": round(
                verify["pack_bytes"] / 1e6 / verify_seconds, 1
            ),
            "sha1sum_mb_per_second": round(
                verify["pack_bytes"] / 1e6 / sha1_seconds, 1
            ),
        },
        "prune": prune,
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": met,
        "runs": kinds,
    }


def print_report(results: dict) -> None:
    machine = results["machine"]
    tenant = results["tenant"]
    print(
        f"machine: {machine['cpu']}, {machine['logical_cores']} cores, "
        f"PostgreSQL {machine['postgresql']}"
    )
    print(
        f"tenant: database {tenant['database_bytes'] / 1e6:.0f} MB, "
        f"{tenant['filestore_files']} files of {tenant['filestore_bytes'] / 1e6:.0f} MB"
    )

    seconds = results["median_seconds"]
    print(f"{'kind':<18}{'backup s':>10}{'restore s':>11}")
    for kind in KINDS:
        print(
            f"{kind:<18}{seconds['backup'][kind]:>10.1f}{seconds['restore'][kind]:>11.1f}"
        )

    verify = results["verify"]
    print(
        f"verify --read-data: {verify['verify_mb_per_second']} MB/s, sha1sum "
        f"{verify['sha1sum_mb_per_second']} MB/s over "
        f"{verify['pack_bytes'] / 1e6:.0f} MB"
    )

    prune = results["prune"]
    print(
        f"prune of {prune['snapshots_before']} snapshots to the last "
        f"{prune['keep_last']}: {prune['seconds']:.1f} s, repository "
        f"{prune['repository_bytes_before'] / 1e6:.0f} MB to "
        f"{prune['repository_bytes_after'] / 1e6:.0f} MB"
    )

    for name, value in results["ratios"].items():
        target = results["targets"].get(name)
        suffix = ""
        if target:
            suffix = f" (target {target}, met {results['targets_met'][name]})"
        print(f"{name}: {value}{suffix}")


def run(arguments: argparse.Namespace) -> dict:
    settings = PgSettings.from_options()
    workspace = Workspace(arguments.work_dir)
    workspace.create()
    conditions = RunConditions()
    machine = describe_machine(workspace.root, settings)
    scale = scaled(arguments.scale)
    summary, data = build_tenant(settings, workspace, scale)
    expected = (data["rows"], filestore_size(summary.filestore))

    moto = MotoServer(workspace.root)
    try:
        os.environ.update(moto.environment())
        os.environ["ODOO_DR_PASSPHRASE"] = PASSPHRASE
        moto.create_bucket(BUCKET)
        kinds = measure_kinds(
            settings, workspace, conditions, arguments.repeat, expected
        )
    finally:
        moto.stop()
    local = Path(kinds["local"]["location"])
    verify = measure_verify(workspace, local, arguments.repeat)
    prune = measure_prune(
        settings,
        workspace,
        local,
        arguments.snapshots,
        scale.generated_file_bytes,
        scale.lines_per_order,
    )
    return summarize(arguments, machine, data, kinds, verify, prune)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="Size factor of the tenant; 1 gives about 300 MB of database and 1 GB "
        "of files (default 1).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="Backups and restores per repository kind, and verify runs; the report "
        "uses their median (default 3).",
    )
    parser.add_argument(
        "--snapshots",
        type=int,
        default=30,
        help="Snapshots in the repository when prune runs (default 30).",
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="Keep the work folder and the bench_ databases for inspection.",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.snapshots <= PRUNE_KEEP_LAST:
        parser.error(f"--snapshots must be more than {PRUNE_KEEP_LAST}")
    if arguments.scale <= 0:
        parser.error("--scale must be positive")
    arguments.work_dir = arguments.work_dir.absolute()
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    return run_benchmark(arguments, run, print_report, drop_benchmark_databases)


if __name__ == "__main__":
    sys.exit(main())
