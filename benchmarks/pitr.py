"""Compare a point-in-time drill with a drill of the latest snapshot, and time syncs.

One run measures, on this machine:

1. Recovery time of one tenant two ways. `odoo_dr.demo.builder` builds the tenant
   `bench_pitr` with the scale of benchmarks/backup_restore.py (at `--scale 1`:
   about 300 MB of database and 1 GB of incompressible filestore in 20,000 files).
   It goes into a PostgreSQL cluster of the benchmark's own, made by initdb on a
   free port as the `postgres` OS user, under /var/tmp. The script then runs,
   through the command line:

   - `odoo-dr pitr setup --restart`, which turns on WAL archiving into a pgBackRest
     folder repository and takes the first full base backup;
   - `odoo-dr backup --dsn CLUSTER` into an odoo-dr folder repository, and
     `odoo-dr filestore sync`;
   - a small day of business (0.1 % of the tenant), a sync, then the target time
     T, then another such day and sync, and a WAL switch that it waits to see
     archived.

   Each of `--repeat` rounds then times `odoo-dr drill --pitr --target-time T
   --tenant bench_pitr` (the whole cluster recovered with pgBackRest into
   /var/tmp) and `odoo-dr drill SNAPSHOT` of the logical snapshot, which restores
   into the machine's main PostgreSQL (the libpq defaults, 127.0.0.1:5432). The
   order alternates between rounds.
2. `filestore sync` of a folder of `--sync-files` unchanged files, and with 1 %
   new files per run, with `benchlib.filestore_sync.measure_sync`.

Before each timed drill, the page cache is dropped when the script may write
`/proc/sys/vm/drop_caches` (root), and the CPU share that other workloads use is
sampled for two seconds and recorded. The sync runs start with a warm cache, as
a `--watch` loop meets them.

Run from the repository root, as root, with pgBackRest installed:

    .venv/bin/python benchmarks/pitr.py                          # full size
    .venv/bin/python benchmarks/pitr.py --scale 0.1 --repeat 1   # a quick run

Results go to stdout and to benchmarks/results/pitr.json. The cluster, its
pgBackRest repository and the work folder are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from backup_restore import scaled
from benchlib.business_day import apply_business_day, day_size
from benchlib.filestore_sync import measure_sync
from benchlib.machine import RunConditions, describe_machine, source_fingerprint
from benchlib.odoo_dr_cli import run_odoo_dr
from benchlib.pitr_cluster import BenchCluster, free_port
from benchlib.runner import run_benchmark
from benchlib.sizes import filestore_size, folder_size

from odoo_dr.demo import builder
from odoo_dr.pg.connection import PgSettings

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "pitr"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "pitr.json"

TENANT = "bench_pitr"
# Share of the tenant that each of the two days of business around T adds.
DAY_FRACTION = 0.001
SYNC_NEW_FRACTION = 0.01


def _sync(workspace: Path, filestore_root: Path) -> dict:
    seconds, stdout = run_odoo_dr(
        [
            "filestore", "sync", TENANT,
            "--repo", str(workspace / "repo"),
            "--filestore-root", str(filestore_root),
            "--json",
        ],
        workspace / "odoo-dr.log",
    )  # fmt: skip
    return {"seconds": seconds, **json.loads(stdout)}


def _business_day(
    cluster: BenchCluster, filestore_root: Path, scale: builder.DemoScale, day: int
) -> dict:
    files = filestore_size(filestore_root / TENANT).files
    size = day_size(cluster.settings, TENANT, files, DAY_FRACTION)
    return apply_business_day(
        cluster.settings,
        TENANT,
        filestore_root / TENANT,
        size,
        day,
        scale.generated_file_bytes,
        scale.lines_per_order,
    )


def prepare_history(
    cluster: BenchCluster, workspace: Path, scale: builder.DemoScale
) -> dict:
    """Build the tenant, set up archiving, back up and sync; write around T.

    Return the data sizes, the time T and the timings of the preparation.
    """
    filestore_root = workspace / "filestore"
    log_path = workspace / "odoo-dr.log"
    log.info("building %s with %s", TENANT, scale)
    started = time.perf_counter()
    builder.build(cluster.settings, TENANT, filestore_root, scale, replace=True)
    cluster.execute(TENANT, "VACUUM ANALYZE")
    prepared: dict = {"build_seconds": round(time.perf_counter() - started, 1)}
    files = filestore_size(filestore_root / TENANT)
    prepared["database_bytes"] = cluster.execute(
        TENANT, "SELECT pg_database_size(current_database())"
    )[0][0]
    prepared["cluster_bytes"] = cluster.execute(
        "postgres", "SELECT sum(pg_database_size(datname))::bigint FROM pg_database"
    )[0][0]
    prepared["filestore_files"] = files.files
    prepared["filestore_bytes"] = files.bytes
    log.info(
        "tenant: database %.0f MB, %d files, %.0f MB of files",
        prepared["database_bytes"] / 1e6,
        files.files,
        files.bytes / 1e6,
    )

    log.info("pitr setup: archiving and the first full base backup")
    prepared["pitr_setup_seconds"], _ = run_odoo_dr(
        ["pitr", "setup", *cluster.setup_options(), "--restart"], log_path
    )
    lsn_after_base_backup = cluster.execute("postgres", "SELECT pg_current_wal_lsn()")

    run_odoo_dr(["init", "--repo", str(workspace / "repo")], log_path)
    seconds, stdout = run_odoo_dr(
        [
            "backup", TENANT,
            "--dsn", cluster.dsn,
            "--repo", str(workspace / "repo"),
            "--filestore-root", str(filestore_root),
            "--json",
        ],
        log_path,
    )  # fmt: skip
    manifest = json.loads(stdout)
    prepared["snapshot"] = manifest["id"]
    prepared["backup_seconds"] = seconds
    prepared["backup_stats"] = manifest["stats"]
    prepared["syncs"] = [_sync(workspace, filestore_root)]

    # Some work after the snapshot, then T, then some work after T.
    prepared["days"] = [_business_day(cluster, filestore_root, scale, 1)]
    prepared["syncs"].append(_sync(workspace, filestore_root))
    time.sleep(1.2)
    target = cluster.execute("postgres", "SELECT clock_timestamp()")[0][0]
    time.sleep(1.2)
    prepared["days"].append(_business_day(cluster, filestore_root, scale, 2))
    prepared["syncs"].append(_sync(workspace, filestore_root))
    prepared["wal_bytes_after_base_backup"] = int(
        cluster.execute(
            "postgres",
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)",
            (lsn_after_base_backup[0][0],),
        )[0][0]
    )
    prepared["last_segment_archived"] = cluster.archive_now()
    prepared["target_time"] = target.astimezone(UTC).isoformat()

    _seconds, stdout = run_odoo_dr(
        ["pitr", "status", *cluster.pitr_options(), "--dsn", cluster.dsn, "--json"],
        log_path,
    )
    status = json.loads(stdout)
    base_backup = status["backups"][-1]
    prepared["base_backup"] = {
        "label": base_backup["label"],
        "size_bytes": base_backup["size_bytes"],
        "repository_bytes": base_backup["repository_bytes"],
    }
    prepared["pgbackrest_repository"] = folder_size(cluster.archive_repo).__dict__
    prepared["window"] = status["window"]
    return prepared


def drill_temp_dir(cluster: BenchCluster) -> Path:
    """Return the folder for the drills' scratch data, one the OS user that runs
    the recovered server can reach: inside the cluster's folder under /var/tmp."""
    folder = cluster.root / "drills"
    folder.mkdir(mode=0o755, exist_ok=True)
    return folder


def pitr_drill(cluster: BenchCluster, workspace: Path, target: str) -> dict:
    seconds, stdout = run_odoo_dr(
        [
            "drill", "--pitr",
            "--target-time", target,
            "--tenant", TENANT,
            "--repo", str(workspace / "repo"),
            *cluster.pitr_options(),
            "--temp-dir", str(drill_temp_dir(cluster)),
            "--json",
        ],
        workspace / "odoo-dr.log",
    )  # fmt: skip
    (record,) = json.loads(stdout)
    return _drill_result(seconds, record)


def snapshot_drill(cluster: BenchCluster, workspace: Path, snapshot: str) -> dict:
    seconds, stdout = run_odoo_dr(
        [
            "drill", snapshot,
            "--repo", str(workspace / "repo"),
            "--temp-dir", str(drill_temp_dir(cluster)),
            "--json",
        ],
        workspace / "odoo-dr.log",
    )  # fmt: skip
    return _drill_result(seconds, json.loads(stdout))


def _drill_result(seconds: float, record: dict) -> dict:
    if not record["passed"]:
        raise RuntimeError(f"drill {record['id']} failed: {json.dumps(record)}")
    return {
        "seconds": seconds,
        "rto_seconds": record["rto_seconds"],
        "rpo_seconds": record["rpo_seconds"],
        "steps": record["steps"],
        "checks": {check["name"]: check["seconds"] for check in record["checks"]},
        "recovered_to": record.get("recovered_to"),
    }


def measure_drills(
    cluster: BenchCluster,
    workspace: Path,
    conditions: RunConditions,
    prepared: dict,
    repeat: int,
) -> dict[str, list[dict]]:
    """Time `repeat` drills of each kind, the kind that goes first alternating."""
    drills: dict[str, list[dict]] = {"pitr": [], "snapshot": []}
    for repetition in range(repeat):
        order = ("pitr", "snapshot") if repetition % 2 == 0 else ("snapshot", "pitr")
        for kind in order:
            conditions.prepare(f"drill {repetition + 1} {kind}")
            if kind == "pitr":
                result = pitr_drill(cluster, workspace, prepared["target_time"])
            else:
                result = snapshot_drill(cluster, workspace, prepared["snapshot"])
            log.info(
                "drill %d %s: %.1f s (RTO %.1f s)",
                repetition + 1,
                kind,
                result["seconds"],
                result["rto_seconds"],
            )
            drills[kind].append(result)
    return drills


def _median_steps(runs: list[dict]) -> dict[str, float]:
    names = list(runs[0]["steps"])
    return {
        name: round(statistics.median(run["steps"].get(name, 0.0) for run in runs), 3)
        for name in names
    }


def summarize_drills(drills: dict[str, list[dict]]) -> dict:
    summary = {}
    for kind, runs in drills.items():
        summary[kind] = {
            "seconds_median": statistics.median(run["seconds"] for run in runs),
            "seconds": [run["seconds"] for run in runs],
            "rto_seconds_median": statistics.median(run["rto_seconds"] for run in runs),
            "steps_median": _median_steps(runs),
        }
    summary["ratio_pitr_vs_snapshot"] = round(
        summary["pitr"]["seconds_median"] / summary["snapshot"]["seconds_median"], 3
    )
    summary["ratio_pitr_vs_snapshot_rto"] = round(
        summary["pitr"]["rto_seconds_median"]
        / summary["snapshot"]["rto_seconds_median"],
        3,
    )
    return summary


def run(arguments: argparse.Namespace) -> dict:
    settings = PgSettings.from_options()
    workspace = arguments.work_dir
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    conditions = RunConditions()
    machine = describe_machine(workspace, settings)
    log.info("machine: %s", json.dumps(machine))
    scale = scaled(arguments.scale)

    cluster = BenchCluster.create(free_port())
    log.info("benchmark cluster in %s on port %d", cluster.root, cluster.port)
    try:
        prepared = prepare_history(cluster, workspace, scale)
        drills = measure_drills(
            cluster, workspace, conditions, prepared, arguments.repeat
        )
    finally:
        if arguments.keep_work:
            cluster.stop()
            log.info("kept the stopped cluster in %s", cluster.root)
        else:
            cluster.remove()

    log.info("filestore sync: %d files", arguments.sync_files)
    sync = measure_sync(
        str(workspace / "sync-repo"),
        workspace / "sync-filestore",
        arguments.sync_files,
        SYNC_NEW_FRACTION,
        arguments.sync_runs,
    )
    sync.pop("machine")
    if source_fingerprint() != machine["odoo_dr_source_sha256"]:
        log.warning("odoo-dr's sources changed during the run; rerun to measure one")
        machine["odoo_dr_source_changed_during_run"] = True
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "repeat": arguments.repeat,
        "machine": machine,
        "page_cache_dropped_before_each_run": conditions.cache_dropped_every_time,
        "background_cpu_before_each_run": conditions.background_cpu,
        "scale": arguments.scale,
        "demo_scale": scale.__dict__,
        "prepared": prepared,
        "drills": drills,
        "summary": summarize_drills(drills),
        "filestore_sync": sync,
    }


def print_report(results: dict) -> None:
    prepared = results["prepared"]
    summary = results["summary"]
    print(f"machine: {json.dumps(results['machine'])}")
    print(
        f"tenant: database {prepared['database_bytes'] / 1e6:.1f} MB, "
        f"{prepared['filestore_files']} files of "
        f"{prepared['filestore_bytes'] / 1e6:.1f} MB; base backup "
        f"{prepared['base_backup']['size_bytes'] / 1e6:.1f} MB "
        f"({prepared['base_backup']['repository_bytes'] / 1e6:.1f} MB stored); "
        f"WAL after it {prepared['wal_bytes_after_base_backup'] / 1e6:.1f} MB"
    )
    for kind in ("pitr", "snapshot"):
        values = summary[kind]
        steps = ", ".join(
            f"{name} {seconds:.1f} s"
            for name, seconds in values["steps_median"].items()
        )
        print(
            f"{kind} drill: median {values['seconds_median']:.1f} s "
            f"(runs {values['seconds']}), RTO {values['rto_seconds_median']:.1f} s: "
            f"{steps}"
        )
    print(
        f"point-in-time drill / snapshot drill: {summary['ratio_pitr_vs_snapshot']} "
        f"(RTO {summary['ratio_pitr_vs_snapshot_rto']})"
    )
    sync = results["filestore_sync"]
    print(
        f"filestore sync of {sync['files']} files: unchanged "
        f"{sync['unchanged_seconds_median']} s (runs {sync['unchanged_seconds']}), "
        f"{sync['new_files_per_run']} new {sync['with_new_seconds_median']} s "
        f"(runs {sync['with_new_seconds']})"
    )
    print(
        f"background CPU before each run: {results['background_cpu_before_each_run']}"
    )


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
        help="Drills of each kind; the report uses their median (default 3).",
    )
    parser.add_argument(
        "--sync-files",
        type=int,
        default=20_000,
        help="Files of the folder the filestore sync runs on (default 20,000).",
    )
    parser.add_argument(
        "--sync-runs",
        type=int,
        default=5,
        help="Timed syncs with nothing new, and with 1 %% new files (default 5).",
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="Keep the work folder and the stopped cluster for inspection.",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.scale <= 0:
        parser.error("--scale must be positive")
    if arguments.sync_files < 1 or arguments.sync_runs < 1:
        parser.error("--sync-files and --sync-runs must be at least 1")
    arguments.work_dir = arguments.work_dir.absolute()
    return arguments


def _nothing_to_drop(_settings: PgSettings) -> None:
    """Drop nothing: the benchmark's databases live in its own cluster, and the
    drills drop their scratch databases on the main server themselves."""


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    return run_benchmark(arguments, run, print_report, _nothing_to_drop)


if __name__ == "__main__":
    sys.exit(main())
