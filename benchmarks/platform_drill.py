"""Measure a platform drill of 20 tenants in four tiers at several `--jobs` values.

One run measures every parallelism on the same data, backup, machine and cache
state:

1. Build 20 tenants with `odoo_dr.demo.builder`, named `pbench_<tier>_<n>`: 4
   critical, 5 high, 6 standard and 5 low. Each has about 13 MB to 500 MB of
   database plus filestore (about 2.4 GB in all). Its `DemoScale` is the one of
   benchmarks/backup_restore.py, scaled to its size.
2. Fill db `--redis-db` of the machine's Redis on 127.0.0.1:6379 with 10,000
   session keys, declared in the inventory as the environment's `sessions` Redis.
3. Take one `odoo-dr platform backup`.
4. Run `odoo-dr platform drill ENV --inventory ... --jobs N` for each N of `--jobs`
   (default 1, 2 and 4), `--repeat` times, with the order rotating. Before each
   drill the page cache is dropped (as root) and the CPU share that other
   workloads use is sampled for two seconds.

From each drill's JSON record the script takes the critical tier's
`done_after_seconds` (time to critical recovery) and the last tier's (time to full
recovery). It fits each tenant's drill time against its size: the intercept is
the per-tenant overhead and the slope the time per GB.

Run from the repository root:

    .venv/bin/python benchmarks/platform_drill.py          # 20 tenants, 2.4 GB
    .venv/bin/python benchmarks/platform_drill.py --small  # 3 tiny tenants

Results go to stdout and to benchmarks/results/platform.json. Every database the
script creates starts with `pbench_` (`pbench_small_` with `--small`) and is dropped
at the end, also after a failure, and the Redis db is
flushed before and after the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from backup_restore import FULL_SCALE, human_bytes
from benchlib.machine import RunConditions, describe_machine, source_fingerprint
from benchlib.odoo_dr_cli import odoo_dr_command, run_odoo_dr
from benchlib.runner import run_benchmark
from benchlib.sizes import database_size, filestore_size, folder_size

from odoo_dr.demo import builder
from odoo_dr.engine.drill import SCRATCH_PREFIX
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database
from odoo_dr.repository.store import Repository

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "platform"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "platform.json"

PREFIX = "pbench_"
ENVIRONMENT = "bench"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379

# Target size of each tenant in MB (database plus filestore), by tier.
FULL_TENANTS: dict[str, tuple[int, ...]] = {
    "critical": (300, 150, 60, 20),
    "high": (500, 200, 100, 40, 10),
    "standard": (250, 120, 60, 30, 15, 10),
    "low": (300, 100, 50, 25, 10),
}
SMALL_TENANTS: dict[str, tuple[int, ...]] = {
    "critical": (12,),
    "standard": (16,),
    "low": (14,),
}

# backup_restore.py's scale 1 measured 307.9 MB of database and 998.6 MB of files.
# A database with the demo schema and almost no rows takes about 11 MB on
# PostgreSQL 15, so the scale factor applies to the size above that, and no tenant
# is smaller than about 13 MB.
FULL_SCALE_BYTES = 307_862_887 + 998_565_428
EMPTY_DATABASE_BYTES = 11_000_000
MIN_FACTOR = 0.001


def scale_for(target_mb: int) -> tuple[float, builder.DemoScale]:
    """Return the factor and `DemoScale` that give about `target_mb` MB in all."""
    factor = max(
        MIN_FACTOR,
        (target_mb * 1e6 - EMPTY_DATABASE_BYTES)
        / (FULL_SCALE_BYTES - EMPTY_DATABASE_BYTES),
    )

    def times(value: int) -> int:
        return max(1, round(value * factor))

    return factor, builder.DemoScale(
        partners=times(FULL_SCALE.partners),
        products=times(FULL_SCALE.products),
        sale_orders=times(FULL_SCALE.sale_orders),
        purchase_orders=times(FULL_SCALE.purchase_orders),
        lines_per_order=FULL_SCALE.lines_per_order,
        messages=times(FULL_SCALE.messages),
        generated_files=times(FULL_SCALE.generated_files),
        generated_file_bytes=FULL_SCALE.generated_file_bytes,
    )


def tenant_names(small: bool) -> list[tuple[str, str, int]]:
    """Return (name, tier, target MB) of every tenant, in inventory order."""
    prefix, tenants = (
        (f"{PREFIX}small_", SMALL_TENANTS) if small else (PREFIX, FULL_TENANTS)
    )
    return [
        (f"{prefix}{tier}_{number:02d}", tier, size)
        for tier, sizes in tenants.items()
        for number, size in enumerate(sizes, start=1)
    ]


# -- preparation


def build_tenants(
    settings: PgSettings, filestore_root: Path, tenants: list[tuple[str, str, int]]
) -> list[dict]:
    built = []
    for name, tier, target_mb in tenants:
        factor, scale = scale_for(target_mb)
        started = time.perf_counter()
        builder.build(settings, name, filestore_root, scale, replace=True)
        with settings.connect(name, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        files = filestore_size(filestore_root / name)
        item = {
            "tenant": name,
            "tier": tier,
            "target_mb": target_mb,
            "scale": round(factor, 4),
            "build_seconds": round(time.perf_counter() - started, 1),
            "database_bytes": database_size(settings, name),
            "filestore_files": files.files,
            "filestore_bytes": files.bytes,
        }
        item["total_bytes"] = item["database_bytes"] + item["filestore_bytes"]
        log.info(
            "built %s: database %.0f MB, %d files of %.0f MB",
            name,
            item["database_bytes"] / 1e6,
            files.files,
            files.bytes / 1e6,
        )
        built.append(item)
    return built


def fill_sessions(client: redis.Redis, count: int) -> dict:
    """Write `count` session keys shaped like Odoo's, each with a one-week TTL."""
    client.flushdb()
    pipeline = client.pipeline(transaction=False)
    for number in range(count):
        session = {
            "uid": number % 500 + 2,
            "login": f"user{number % 500}@example.test",
            "db": "odoo",
            "context": {"lang": "en_US", "tz": "Europe/Brussels"},
            "session_token": secrets.token_hex(32),
        }
        pipeline.set(
            f"session:{secrets.token_hex(20)}", json.dumps(session), ex=7 * 86400
        )
        if number % 1000 == 999:
            pipeline.execute()
    pipeline.execute()
    return {
        "db": client.connection_pool.connection_kwargs["db"],
        "keys": client.dbsize(),
        "server_used_memory_bytes": client.info("memory")["used_memory"],
    }


def write_inventory(
    folder: Path, tenants: list[tuple[str, str, int]], redis_db: int
) -> Path:
    """Write the inventory, with one manifest so the configuration is captured.

    The folder becomes its own Git work tree, so the configuration state records
    a clean commit instead of the state of odoo-dr's checkout.
    """
    manifests = folder / "k8s"
    manifests.mkdir(parents=True)
    (manifests / "odoo.yaml").write_text(
        "apiVersion: v1\nkind: Service\n"
        "metadata: {name: odoo, namespace: bench}\n"
        "spec:\n  ports: [{port: 8069}]\n"
    )
    lines = [
        "version: 1",
        "platform: odoo-dr platform benchmark",
        "environments:",
        f"  - name: {ENVIRONMENT}",
        "    evidence:",
        "      manifests: [k8s]",
        f"      redis_url: redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
        "    services:",
        "      - {name: redis-sessions, kind: redis, role: sessions}",
        "    tenants:",
    ]
    for name, tier, _size in tenants:
        lines += [f"      - name: {name}", f"        tier: {tier}"]
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        [
            "git", "-c", "user.name=bench", "-c", "user.email=bench@example.test",
            "commit", "-q", "-m", "platform benchmark",
        ],
    ):  # fmt: skip
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
    return path


# -- the drills


def run_drill(
    inventory: Path, repo: Path, jobs: int, tenant_jobs: int, log_path: Path
) -> dict:
    """Run one platform drill through the command line and return its figures.

    A drill whose tenants or Redis failed still returns its record (exit 5 or 1),
    so the report shows the failure. Any other exit code raises RuntimeError.
    """
    command = [
        odoo_dr_command(), "platform", "drill", ENVIRONMENT,
        "--inventory", str(inventory), "--repo", str(repo),
        "--jobs", str(jobs), "--tenant-jobs", str(tenant_jobs), "--json",
    ]  # fmt: skip
    load_before = Path("/proc/loadavg").read_text().split()[0]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    with open(log_path, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n{result.stderr}\n")
    if result.returncode not in (0, 1, 5):
        raise RuntimeError(
            f"odoo-dr platform drill --jobs {jobs} exited with {result.returncode}:\n"
            f"{result.stderr[-3000:]}"
        )
    record = json.loads(result.stdout)
    steps = drill_steps(repo, record["tenants"])
    tiers = record["tiers"]
    critical = next((item for item in tiers if item["tier"] == "critical"), None)
    return {
        "jobs": jobs,
        "exit_code": result.returncode,
        "wall_seconds": round(seconds, 3),
        "record_seconds": round(
            (
                datetime.fromisoformat(record["finished_at"])
                - datetime.fromisoformat(record["started_at"])
            ).total_seconds(),
            3,
        ),
        "critical_seconds": critical["done_after_seconds"] if critical else None,
        "full_seconds": tiers[-1]["done_after_seconds"] if tiers else None,
        "load_average_1m_before": float(load_before),
        "tiers": tiers,
        "tenants": [tenant_figures(item, steps) for item in record["tenants"]],
        "redis": record["redis"],
        "warnings": record["warnings"],
    }


TENANT_FIELDS = (
    "tenant", "tier", "status", "error", "started_after", "finished_after", "seconds",
)  # fmt: skip


def tenant_figures(outcome: dict, steps: dict[str, dict[str, float]]) -> dict:
    """Return a tenant's outcome in a drill record, with its drill's step times."""
    figures = {key: outcome[key] for key in TENANT_FIELDS}
    figures["steps"] = steps.get(outcome["drill_id"], {})
    return figures


def drill_steps(repo: Path, tenants: list[dict]) -> dict[str, dict[str, float]]:
    """Return the seconds per step of each tenant's drill record, by drill id."""
    repository = Repository.open(str(repo))
    drill_ids = {item["drill_id"] for item in tenants if item["drill_id"]}
    return {
        record.id: record.steps
        for record in repository.list_drills()
        if record.id in drill_ids
    }


def drill_order(jobs_values: list[int], repetition: int) -> list[int]:
    """Return the `--jobs` values of one repetition, rotated by its number."""
    shift = repetition % len(jobs_values)
    return jobs_values[shift:] + jobs_values[:shift]


def fit_overhead(drill: dict, sizes: dict[str, int]) -> dict:
    """Fit tenant seconds = overhead + slope * GB by least squares over one drill."""
    done = [item for item in drill["tenants"] if item["status"] == "ok"]
    gigabytes = [sizes[item["tenant"]] / 1e9 for item in done]
    seconds = [item["seconds"] for item in done]
    if len(done) < 2 or len(set(gigabytes)) < 2:
        return {"per_tenant_overhead_seconds": None, "seconds_per_gb": None}
    slope, intercept = statistics.linear_regression(gigabytes, seconds)
    return {
        "per_tenant_overhead_seconds": round(intercept, 2),
        "seconds_per_gb": round(slope, 2),
    }


def median_or_none(values: list[float | None], digits: int = 2) -> float | None:
    """Return the rounded median, or None when a value is missing (a tier not back)."""
    if not values or any(value is None for value in values):
        return None
    return round(statistics.median(values), digits)


def summed_steps(runs: list[dict]) -> dict[str, float]:
    """Return each drill step's seconds summed over the tenants, median over runs.

    `outside the drill's steps` is the rest of the tenants' time: opening the
    repository, loading the snapshot, planning, the clean-up and saving the record.
    """
    per_step: dict[str, list[float]] = {}
    for run in runs:
        totals: dict[str, float] = {}
        for item in run["tenants"]:
            for step, seconds in item["steps"].items():
                totals[step] = totals.get(step, 0) + seconds
            outside = item["seconds"] - sum(item["steps"].values())
            totals["outside the drill's steps"] = (
                totals.get("outside the drill's steps", 0) + outside
            )
        for step, seconds in totals.items():
            per_step.setdefault(step, []).append(seconds)
    return {
        step: round(statistics.median(values), 2) for step, values in per_step.items()
    }


def summarize_jobs(runs: list[dict], sizes: dict[str, int], baseline: dict) -> dict:
    """Return the medians over the runs of one `--jobs` value, with the speed-up."""
    jobs = runs[0]["jobs"]
    critical = median_or_none([run["critical_seconds"] for run in runs])
    full = median_or_none([run["full_seconds"] for run in runs])

    fits = [fit_overhead(run, sizes) for run in runs]
    overheads = [fit["per_tenant_overhead_seconds"] for fit in fits]
    slopes = [fit["seconds_per_gb"] for fit in fits]

    # The share of the job slots busy with a tenant until the last tier was back.
    tenant_seconds = [sum(item["seconds"] for item in run["tenants"]) for run in runs]
    busy = [
        total / (jobs * run["full_seconds"]) if run["full_seconds"] else None
        for total, run in zip(tenant_seconds, runs, strict=True)
    ]
    failed = {
        item["tenant"]
        for run in runs
        for item in run["tenants"]
        if item["status"] != "ok"
    }
    return {
        "runs": len(runs),
        "critical_seconds": critical,
        "full_seconds": full,
        "record_seconds": median_or_none([run["record_seconds"] for run in runs]),
        "mean_tenant_seconds": median_or_none(
            [
                total / len(run["tenants"])
                for total, run in zip(tenant_seconds, runs, strict=True)
            ]
        ),
        "per_tenant_overhead_seconds": median_or_none(overheads),
        "seconds_per_gb": median_or_none(slopes),
        "job_slot_busy_share": median_or_none(busy, digits=3),
        "step_seconds_summed_over_tenants": summed_steps(runs),
        "speed_up_critical": (
            round(baseline["critical"] / critical, 2)
            if critical and baseline["critical"]
            else None
        ),
        "speed_up_full": (
            round(baseline["full"] / full, 2) if full and baseline["full"] else None
        ),
        "failed_tenants": sorted(failed),
        "redis": [item["detail"] for run in runs for item in run["redis"]],
    }


# -- the run


def drop_benchmark_data(settings: PgSettings, names: list[str], redis_db: int) -> None:
    """Drop the tenants' databases and the drills' leftover scratch databases.

    A drill drops its own scratch database; the ones left here come from a drill
    that was killed. They are found by the snapshot ids of this run's backup.
    """
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        scratch = [
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                (SCRATCH_PREFIX,),
            )
        ]
        for name in names:
            drop_database(connection, name)
        for name in scratch:
            if any(snapshot in name for snapshot in SNAPSHOT_IDS):
                drop_database(connection, name)
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db).flushdb()


# Snapshot ids of this run's platform backup, for the clean-up of scratch databases.
SNAPSHOT_IDS: set[str] = set()


def run(arguments: argparse.Namespace) -> dict:
    settings = PgSettings.from_options()
    work = arguments.work_dir
    if work.exists():
        shutil.rmtree(work)
    filestore_root = work / "filestore"
    repo = work / "repo"
    log_path = work / "odoo-dr.log"
    filestore_root.mkdir(parents=True)
    conditions = RunConditions()
    if arguments.small:
        # A shorter CPU sample keeps the smoke test short. It is less precise.
        conditions.SAMPLE_SECONDS = 0.5
    machine = describe_machine(work, settings)
    log.info("machine: %s", json.dumps(machine))

    tenants = tenant_names(arguments.small)
    started = time.perf_counter()
    built = build_tenants(settings, filestore_root, tenants)
    build_seconds = round(time.perf_counter() - started, 1)
    sessions = fill_sessions(
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=arguments.redis_db),
        arguments.session_keys,
    )
    inventory = write_inventory(work / "inventory", tenants, arguments.redis_db)

    run_odoo_dr(["init", "--repo", str(repo)], log_path)
    conditions.prepare("platform backup")
    log.info("platform backup of %d tenants", len(tenants))
    backup_seconds, stdout = run_odoo_dr(
        [
            "platform", "backup", ENVIRONMENT,
            "--inventory", str(inventory), "--repo", str(repo),
            "--filestore-root", str(filestore_root), "--json",
        ],
        log_path,
    )  # fmt: skip
    backup = json.loads(stdout)
    SNAPSHOT_IDS.update(item["snapshot_id"] for item in backup["tenants"])
    repository = folder_size(repo, skip=("tmp", "locks"))

    drills: dict[int, list[dict]] = {jobs: [] for jobs in arguments.jobs}
    for repetition in range(arguments.repeat):
        for jobs in drill_order(arguments.jobs, repetition):
            label = f"drill {repetition + 1} --jobs {jobs}"
            conditions.prepare(label)
            log.info("%s", label)
            drill = run_drill(inventory, repo, jobs, arguments.tenant_jobs, log_path)
            log.info(
                "%s: critical after %s s, all after %s s, exit %d",
                label,
                drill["critical_seconds"],
                drill["full_seconds"],
                drill["exit_code"],
            )
            drills[jobs].append(drill)

    if source_fingerprint() != machine["odoo_dr_source_sha256"]:
        log.warning("odoo-dr's sources changed during the run; rerun to measure one")
        machine["odoo_dr_source_changed_during_run"] = True
    sizes = {item["tenant"]: item["total_bytes"] for item in built}
    first = drills[arguments.jobs[0]]
    baseline = {
        "critical": median_or_none([run["critical_seconds"] for run in first]),
        "full": median_or_none([run["full_seconds"] for run in first]),
    }
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "mode": "small" if arguments.small else "full",
        "repeat": arguments.repeat,
        "tenant_jobs": arguments.tenant_jobs,
        "machine": machine,
        "page_cache_dropped_before_each_run": conditions.cache_dropped_every_time,
        "background_cpu_before_each_run": conditions.background_cpu,
        "data": {
            "tenants": built,
            "tenant_count": len(built),
            "total_bytes": sum(sizes.values()),
            "database_bytes": sum(item["database_bytes"] for item in built),
            "filestore_bytes": sum(item["filestore_bytes"] for item in built),
            "filestore_files": sum(item["filestore_files"] for item in built),
            "build_seconds": build_seconds,
            "redis_sessions": sessions,
            "repository_bytes": repository.bytes,
        },
        "backup": {
            "wall_seconds": backup_seconds,
            "jobs": backup["jobs"],
            "tiers": backup["tiers"],
            "redis": backup["redis"],
        },
        "summary": {
            str(jobs): summarize_jobs(runs, sizes, baseline)
            for jobs, runs in drills.items()
        },
        "drills": {str(jobs): runs for jobs, runs in drills.items()},
    }


# -- output


def print_report(results: dict) -> None:
    machine = results["machine"]
    data = results["data"]
    print(
        f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
        f"{human_bytes(machine['memory_bytes'])} RAM, PostgreSQL "
        f"{machine['postgresql']}, odoo-dr "
        f"{machine['odoo_dr_commit'] or machine['odoo_dr']}"
    )
    background = list(results["background_cpu_before_each_run"].values())
    print(
        f"CPU used by other workloads before each run: mean "
        f"{statistics.mean(background):.0%}, max {max(background):.0%}; page cache "
        f"dropped: {results['page_cache_dropped_before_each_run']}"
    )
    if machine.get("odoo_dr_source_changed_during_run"):
        print("warning: odoo-dr's sources changed during the run")
    print(
        f"{data['tenant_count']} tenants: {human_bytes(data['total_bytes'])} "
        f"(databases {human_bytes(data['database_bytes'])}, "
        f"{data['filestore_files']:,} files of "
        f"{human_bytes(data['filestore_bytes'])}), "
        f"Redis db {data['redis_sessions']['db']} with "
        f"{data['redis_sessions']['keys']:,} session keys"
    )
    for tier in results["backup"]["tiers"]:
        tenants = [item for item in data["tenants"] if item["tier"] == tier["tier"]]
        sizes = ", ".join(human_bytes(item["total_bytes"]) for item in tenants)
        print(f"  {tier['tier']}: {sizes}")
    print(
        f"platform backup (--jobs {results['backup']['jobs']}): "
        f"{results['backup']['wall_seconds']:.1f} s"
    )
    print()
    print(
        f"{'jobs':>4}{'critical':>10}{'full':>9}{'record':>9}{'overhead':>10}"
        f"{'s/GB':>7}{'busy':>6}{'speed-up crit':>15}{'full':>6}"
    )
    for jobs, item in results["summary"].items():
        cells = [
            _number(item["critical_seconds"], "s"),
            _number(item["full_seconds"], "s"),
            _number(item["record_seconds"], "s"),
            _number(item["per_tenant_overhead_seconds"], "s"),
            _number(item["seconds_per_gb"], ""),
            "-" if item["job_slot_busy_share"] is None
            else f"{item['job_slot_busy_share']:.0%}",
            _number(item["speed_up_critical"], "x", 2),
            _number(item["speed_up_full"], "x", 2),
        ]  # fmt: skip
        widths = (10, 9, 9, 10, 7, 6, 15, 6)
        print(
            f"{jobs:>4}"
            + "".join(
                f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True)
            )
        )
        if item["failed_tenants"]:
            print(f"     failed tenants: {', '.join(item['failed_tenants'])}")
        print(f"     redis: {'; '.join(item['redis'])}")


def _number(value: float | None, unit: str, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help="Three tenants of about 13 MB, 500 session keys, jobs 1 and 2 unless "
        "--jobs is given: a check that the script works.",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        nargs="+",
        default=None,
        help="Values of the drill's --jobs to measure; the first is the baseline of "
        "the speed-up (default 1 2 4, with --small 1 2).",
    )
    parser.add_argument(
        "--tenant-jobs",
        type=int,
        default=2,
        help="The drill's --tenant-jobs: pg_restore jobs and file workers per "
        "tenant (default 2, the command's default).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Drills per --jobs value, the order rotating; the report uses the "
        "median (default 1).",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=15,
        help="Db of the Redis on 127.0.0.1:6379 to fill with sessions; it is "
        "flushed before and after the run (default 15).",
    )
    parser.add_argument(
        "--session-keys",
        type=int,
        default=None,
        help="Session keys to write (default 10,000, with --small 500).",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK,
        help="Folder for filestores, inventory and repository, emptied first "
        f"(default {DEFAULT_WORK.relative_to(PROJECT_ROOT)}).",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="JSON file to write "
        f"(default {DEFAULT_RESULTS.relative_to(PROJECT_ROOT)}).",
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="Keep the work folder, the pbench_ databases and the Redis keys.",
    )
    arguments = parser.parse_args(argv)
    if arguments.jobs is None:
        arguments.jobs = [1, 2] if arguments.small else [1, 2, 4]
    if any(jobs < 1 for jobs in arguments.jobs) or len(set(arguments.jobs)) != len(
        arguments.jobs
    ):
        parser.error("--jobs takes distinct values of at least 1")
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not 0 <= arguments.redis_db <= 15:
        parser.error("--redis-db must be between 0 and 15")
    if arguments.session_keys is None:
        arguments.session_keys = 500 if arguments.small else 10_000
    arguments.work_dir = arguments.work_dir.absolute()
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    return run_benchmark(
        arguments,
        run,
        print_report,
        lambda settings: drop_benchmark_data(
            settings,
            [name for name, _tier, _size in tenant_names(arguments.small)],
            arguments.redis_db,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
