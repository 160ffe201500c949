"""Compare odoo-dr with Odoo's own database-manager backup on one generated tenant.

One run measures both sides on the same data, machine and cache state:

1. Build the tenant `bench_tenant` with `odoo_dr.demo.builder` (at `--scale 1`:
   about 300 MB of database and 1 GB of incompressible filestore in 20,000 files).
2. Take `--repeat` full backups per side (Odoo's zip, `odoo-dr backup` into an empty
   repository), with the side that goes first alternating.
3. Restore each side's full backup `--repeat` times into a new database and
   filestore folder, check each copy against the original, and drop it.
4. Days 1 to N: apply one day of business (1% new attachments with their files, 1%
   new orders, invoices and messages, updates of recent orders and some partners)
   and VACUUM ANALYZE, then back up with each side again.

The baseline re-implements the zip format of `dump_db` and `restore_db` in Odoo 17's
`odoo/service/db.py`. Its backup copies the filestore into a temporary folder, runs
`pg_dump --no-owner` as plain SQL, writes `manifest.json` and zips the folder with
`zipfile.ZIP_DEFLATED`, as `odoo.tools.osutil.zip_dir` does. Its restore unzips,
creates the database, runs `psql -q -f dump.sql` and moves the filestore into place.
The steps that need a running Odoo (the HTTP transfer, loading the registry) are
left out.

odoo-dr runs as its command line, `odoo-dr backup` and `odoo-dr restore --copy`,
with its default `--jobs`. Before each timed run, the page cache is dropped when the
script may write `/proc/sys/vm/drop_caches` (root), and the CPU share that other
workloads use is sampled for two seconds and recorded. PostgreSQL's shared buffers
are not emptied.

Run from the repository root:

    .venv/bin/python benchmarks/backup_restore.py            # full size
    .venv/bin/python benchmarks/backup_restore.py --scale 0.1 --days 2 --repeat 1

Results go to stdout and to benchmarks/results/backup_restore.json. Every database
the script creates starts with `bench_` and is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchlib.business_day import DaySize, apply_business_day, day_size
from benchlib.machine import RunConditions, describe_machine, source_fingerprint
from benchlib.odoo_baseline import baseline_backup, baseline_restore
from benchlib.odoo_dr_cli import odoo_dr_backup, odoo_dr_restore, run_odoo_dr
from benchlib.runner import run_benchmark
from benchlib.sizes import FolderSize, database_size, filestore_size, folder_size

from odoo_dr.demo import builder
from odoo_dr.odoo.inspect import MAIN_TABLES, count_rows
from odoo_dr.pg.binaries import PgTools, find_tools
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database, server_version

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "backup_restore"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "backup_restore.json"

TENANT = "bench_tenant"
RESTORED_BASELINE = "bench_restored_baseline"
RESTORED_ODOO_DR = "bench_restored_odoo_dr"
DATABASES = (TENANT, RESTORED_BASELINE, RESTORED_ODOO_DR)

# Scale 1: 47 times the demo's default business data gives a database of about
# 300 MB on PostgreSQL 15, and 20,000 files of 50 kB on average give about 1 GB.
FULL_SCALE = builder.DemoScale(
    partners=23_500,
    products=9_400,
    sale_orders=94_000,
    purchase_orders=23_500,
    lines_per_order=3,
    messages=235_000,
    generated_files=20_000,
    generated_file_bytes=50_000,
)

# Share of the tenant that one day of business adds or changes.
DAILY_FRACTION = 0.01

# Maximum ratio to the baseline (storage: to one full odoo-dr backup).
TARGETS = {
    "full_backup": 0.4,
    "second_backup": 0.15,
    "restore": 0.6,
    "storage_7_days_vs_full": 1.3,
}


# -- checks of the restored copies


def check_restored(
    settings: PgSettings,
    dbname: str,
    folder: Path,
    expected_rows: dict[str, int],
    expected_files: FolderSize,
) -> None:
    """Raise if a restored copy lacks rows or files of the original."""
    with settings.connect(dbname) as connection:
        with connection.cursor() as cursor:
            rows = count_rows(cursor, tuple(expected_rows))
    if rows != expected_rows:
        different = {
            table: (expected_rows[table], rows.get(table))
            for table in expected_rows
            if rows.get(table) != expected_rows[table]
        }
        raise RuntimeError(
            f"{dbname}: row counts differ (expected, found): {different}"
        )
    files = filestore_size(folder)
    if (files.files, files.bytes) != (expected_files.files, expected_files.bytes):
        raise RuntimeError(
            f"{dbname}: filestore has {files.files} files and {files.bytes} bytes, "
            f"expected {expected_files.files} and {expected_files.bytes}"
        )


# -- the run


def drop_benchmark_databases(settings: PgSettings) -> None:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        for name in DATABASES:
            drop_database(connection, name)


def scaled(factor: float) -> builder.DemoScale:
    def times(value: int) -> int:
        return max(1, round(value * factor))

    return builder.DemoScale(
        partners=times(FULL_SCALE.partners),
        products=times(FULL_SCALE.products),
        sale_orders=times(FULL_SCALE.sale_orders),
        purchase_orders=times(FULL_SCALE.purchase_orders),
        lines_per_order=FULL_SCALE.lines_per_order,
        messages=times(FULL_SCALE.messages),
        generated_files=times(FULL_SCALE.generated_files),
        generated_file_bytes=FULL_SCALE.generated_file_bytes,
    )


@dataclass
class Workspace:
    """Folders of one benchmark run, all below the work folder."""

    root: Path

    @property
    def source_root(self) -> Path:
        return self.root / "filestore"

    @property
    def restore_root(self) -> Path:
        return self.root / "restored-filestore"

    @property
    def repo(self) -> Path:
        return self.root / "odoo-dr-repo"

    @property
    def zips(self) -> Path:
        return self.root / "baseline-zips"

    @property
    def odoo_dr_log(self) -> Path:
        return self.root / "odoo-dr.log"

    def create(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        for folder in (self.source_root, self.restore_root, self.zips):
            folder.mkdir(parents=True)


def alternating(repetition: int) -> tuple[str, str]:
    """Return the order of the two sides: the baseline first on every other turn."""
    if repetition % 2 == 0:
        return ("baseline", "odoo-dr")
    return ("odoo-dr", "baseline")


def build_tenant(
    settings: PgSettings,
    workspace: Workspace,
    scale: builder.DemoScale,
    name: str = TENANT,
) -> tuple[builder.DemoSummary, dict]:
    log.info("building %s with %s", name, scale)
    started = time.perf_counter()
    summary = builder.build(settings, name, workspace.source_root, scale, replace=True)
    build_seconds = time.perf_counter() - started
    with settings.connect(name, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    files = filestore_size(summary.filestore)
    with settings.connect(name) as connection:
        with connection.cursor() as cursor:
            rows = count_rows(cursor, MAIN_TABLES)
    data = {
        "demo_scale": scale.__dict__,
        "build_seconds": round(build_seconds, 1),
        "database_bytes": database_size(settings, name),
        "attachments": summary.attachments,
        "filestore_files": files.files,
        "filestore_bytes": files.bytes,
        "rows": rows,
    }
    log.info(
        "tenant: database %.0f MB, %d files, %.0f MB of files",
        data["database_bytes"] / 1e6,
        files.files,
        files.bytes / 1e6,
    )
    return summary, data


def measure_full_backups(
    settings: PgSettings,
    tools: PgTools,
    workspace: Workspace,
    conditions: RunConditions,
    repeat: int,
) -> tuple[list[dict], list[dict]]:
    """Take `repeat` full backups per side, each odoo-dr one into an empty repository.

    The last baseline zip and the last odoo-dr repository stay for the restores and
    the daily backups.
    """
    baseline: list[dict] = []
    odoo_dr: list[dict] = []
    for repetition in range(repeat):
        for side in alternating(repetition):
            if side == "odoo-dr":
                shutil.rmtree(workspace.repo, ignore_errors=True)
                run_odoo_dr(
                    ["init", "--repo", str(workspace.repo)], workspace.odoo_dr_log
                )
            conditions.prepare(f"full backup {repetition + 1} {side}")
            log.info("full backup %d: %s", repetition + 1, side)
            if side == "baseline":
                zip_path = workspace.zips / "day0.zip"
                baseline.append(
                    baseline_backup(
                        settings, tools, TENANT, workspace.source_root, zip_path
                    )
                )
            else:
                odoo_dr.append(
                    odoo_dr_backup(
                        TENANT,
                        workspace.repo,
                        workspace.source_root,
                        workspace.odoo_dr_log,
                    )
                )
    return baseline, odoo_dr


def measure_restores(
    settings: PgSettings,
    tools: PgTools,
    workspace: Workspace,
    conditions: RunConditions,
    repeat: int,
    snapshot: str,
    expected: tuple[dict[str, int], FolderSize],
) -> tuple[list[dict], list[dict]]:
    """Restore each side's full backup `repeat` times, checking every copy."""
    baseline: list[dict] = []
    odoo_dr: list[dict] = []
    for repetition in range(repeat):
        for side in alternating(repetition):
            conditions.prepare(f"restore {repetition + 1} {side}")
            log.info("restore %d: %s", repetition + 1, side)
            if side == "baseline":
                name = RESTORED_BASELINE
                baseline.append(
                    baseline_restore(
                        settings,
                        tools,
                        workspace.zips / "day0.zip",
                        name,
                        workspace.restore_root,
                    )
                )
            else:
                name = RESTORED_ODOO_DR
                odoo_dr.append(
                    odoo_dr_restore(
                        workspace.repo,
                        snapshot,
                        name,
                        workspace.restore_root,
                        workspace.odoo_dr_log,
                    )
                )
            check_restored(settings, name, workspace.restore_root / name, *expected)
            with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
                drop_database(connection, name)
            shutil.rmtree(workspace.restore_root / name)
    log.info("every restored copy had the original's row counts and files")
    return baseline, odoo_dr


def measure_days(
    settings: PgSettings,
    tools: PgTools,
    workspace: Workspace,
    conditions: RunConditions,
    days: int,
    size: DaySize,
    scale: builder.DemoScale,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Apply `days` days of business, each followed by one backup per side."""
    baseline: list[dict] = []
    odoo_dr: list[dict] = []
    changes: list[dict] = []
    for day in range(1, days + 1):
        log.info("day %d: applying one day of business", day)
        changes.append(
            apply_business_day(
                settings,
                TENANT,
                workspace.source_root / TENANT,
                size,
                day,
                scale.generated_file_bytes,
                scale.lines_per_order,
            )
        )
        # A nightly VACUUM, so autovacuum does not start during one side's run.
        with settings.connect(TENANT, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        for side in alternating(day - 1):
            conditions.prepare(f"day {day} {side}")
            if side == "baseline":
                zip_path = workspace.zips / f"day{day}.zip"
                baseline.append(
                    baseline_backup(
                        settings, tools, TENANT, workspace.source_root, zip_path
                    )
                )
                zip_path.unlink()
            else:
                odoo_dr.append(
                    odoo_dr_backup(
                        TENANT,
                        workspace.repo,
                        workspace.source_root,
                        workspace.odoo_dr_log,
                    )
                )
        log.info(
            "day %d: baseline %.1f s, odoo-dr %.1f s",
            day,
            baseline[-1]["seconds"],
            odoo_dr[-1]["seconds"],
        )
    return baseline, odoo_dr, changes


def run(arguments: argparse.Namespace) -> dict:
    settings = PgSettings.from_options()
    workspace = Workspace(arguments.work_dir)
    workspace.create()
    conditions = RunConditions()

    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        _version, major = server_version(connection)
    tools = find_tools(major, "the benchmark's baseline")
    machine = describe_machine(workspace.root, settings)
    log.info("machine: %s", json.dumps(machine))

    scale = scaled(arguments.scale)
    summary, data = build_tenant(settings, workspace, scale)
    data["scale"] = arguments.scale
    files_day0 = filestore_size(summary.filestore)
    rows_day0 = data["rows"]

    baseline: dict = {}
    odoo_dr: dict = {}
    baseline["full_backups"], odoo_dr["full_backups"] = measure_full_backups(
        settings, tools, workspace, conditions, arguments.repeat
    )
    odoo_dr["repository_after_first"] = folder_size(
        workspace.repo, skip=("tmp", "locks")
    ).__dict__
    data["dump_sql_bytes"] = baseline["full_backups"][-1]["dump_sql_bytes"]
    data["odoo_dr_dump_bytes"] = odoo_dr["full_backups"][-1]["stats"]["dump_bytes"]

    # The restores run while the tenant is still as the full backups saw it.
    baseline["restores"], odoo_dr["restores"] = measure_restores(
        settings,
        tools,
        workspace,
        conditions,
        arguments.repeat,
        odoo_dr["full_backups"][-1]["snapshot"],
        (rows_day0, files_day0),
    )
    (workspace.zips / "day0.zip").unlink()

    size = day_size(settings, TENANT, files_day0.files, DAILY_FRACTION)
    baseline["daily_backups"], odoo_dr["daily_backups"], changes = measure_days(
        settings, tools, workspace, conditions, arguments.days, size, scale
    )
    odoo_dr["repository_after_days"] = folder_size(
        workspace.repo, skip=("tmp", "locks")
    ).__dict__
    if source_fingerprint() != machine["odoo_dr_source_sha256"]:
        log.warning("odoo-dr's sources changed during the run; rerun to measure one")
        machine["odoo_dr_source_changed_during_run"] = True
    data["database_bytes_last_day"] = database_size(settings, TENANT)
    data["filestore_last_day"] = filestore_size(summary.filestore).__dict__

    return summarize(
        arguments, machine, conditions, data, size, changes, baseline, odoo_dr
    )


def _seconds(runs: list[dict]) -> list[float]:
    return [item["seconds"] for item in runs]


def summarize(
    arguments: argparse.Namespace,
    machine: dict,
    conditions: RunConditions,
    data: dict,
    size: DaySize,
    changes: list[dict],
    baseline: dict,
    odoo_dr: dict,
) -> dict:
    """Compute the medians, ratios and storage figures that the report shows."""
    days = arguments.days
    baseline_days = _seconds(baseline["daily_backups"])
    odoo_dr_days = _seconds(odoo_dr["daily_backups"])
    measured = {
        "full_backup": (
            _seconds(baseline["full_backups"]),
            _seconds(odoo_dr["full_backups"]),
        ),
        "second_backup": ([baseline_days[0]], [odoo_dr_days[0]]),
        "restore": (_seconds(baseline["restores"]), _seconds(odoo_dr["restores"])),
    }
    times = {
        name: {
            "baseline_s": statistics.median(baseline_runs),
            "odoo_dr_s": statistics.median(odoo_dr_runs),
            "baseline_runs_s": baseline_runs,
            "odoo_dr_runs_s": odoo_dr_runs,
        }
        for name, (baseline_runs, odoo_dr_runs) in measured.items()
    }
    ratios = {
        name: round(values["odoo_dr_s"] / values["baseline_s"], 3)
        for name, values in times.items()
    }
    daily_ratios = [
        round(mine / theirs, 3)
        for mine, theirs in zip(odoo_dr_days, baseline_days, strict=True)
    ]
    ratios["daily_backup_median"] = round(statistics.median(daily_ratios), 3)

    baseline_zips = [item["zip_bytes"] for item in baseline["daily_backups"]]
    repo_first = odoo_dr["repository_after_first"]["bytes"]
    repo_days = odoo_dr["repository_after_days"]["bytes"]
    ratios["storage_7_days_vs_full"] = round(repo_days / repo_first, 3)
    ratios["storage_7_days_vs_baseline_zips"] = round(repo_days / sum(baseline_zips), 3)
    met = {name: ratios[name] <= target for name, target in TARGETS.items()}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "repeat": arguments.repeat,
        "machine": machine,
        "page_cache_dropped_before_each_run": conditions.cache_dropped_every_time,
        "background_cpu_before_each_run": conditions.background_cpu,
        "data": data,
        "daily_change": {
            "fraction": DAILY_FRACTION,
            "per_day": size.__dict__,
            "days": changes,
        },
        "times": times,
        "daily_backups": {
            "baseline_s": baseline_days,
            "odoo_dr_s": odoo_dr_days,
            "ratios": daily_ratios,
        },
        "storage": {
            "days": days,
            "odoo_dr_repository_after_first_bytes": repo_first,
            "odoo_dr_repository_after_days_bytes": repo_days,
            "odoo_dr_repository_after_days_disk_bytes": odoo_dr[
                "repository_after_days"
            ]["disk_bytes"],
            "odoo_dr_snapshots": days + 1,
            "baseline_full_zip_bytes": baseline["full_backups"][-1]["zip_bytes"],
            "baseline_daily_zip_bytes": baseline_zips,
            "baseline_daily_zips_total_bytes": sum(baseline_zips),
        },
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": met,
        "baseline": baseline,
        "odoo_dr": odoo_dr,
    }


# -- output


def human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} GB"


def print_report(results: dict) -> None:
    machine = results["machine"]
    disk = machine["disk"]
    data = results["data"]
    print(
        f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
        f"{human_bytes(machine['memory_bytes'])} RAM"
    )
    print(
        f"disk: {disk.get('device')} {disk.get('filesystem')}, "
        f"{human_bytes(disk['size_bytes'])}, rotational={disk.get('rotational')}"
    )
    print(
        f"PostgreSQL {machine['postgresql']} (shared_buffers "
        f"{machine['postgresql_shared_buffers']}), Python {machine['python']}, "
        f"odoo-dr {machine['odoo_dr']} "
        f"({machine['odoo_dr_commit'] or machine['odoo_dr_package']})"
    )
    print(
        f"page cache dropped before each run: "
        f"{results['page_cache_dropped_before_each_run']}"
    )
    background = list(results["background_cpu_before_each_run"].values())
    print(
        f"CPU used by other workloads before each run: mean "
        f"{statistics.mean(background):.0%}, max {max(background):.0%}"
    )
    if machine.get("odoo_dr_source_changed_during_run"):
        print("warning: odoo-dr's sources changed during the run")
    print(
        f"tenant (scale {data['scale']}): "
        f"database {human_bytes(data['database_bytes'])}, "
        f"{data['filestore_files']:,} files of {human_bytes(data['filestore_bytes'])}, "
        f"dump.sql {human_bytes(data['dump_sql_bytes'])}"
    )
    per_day = results["daily_change"]["per_day"]
    print(
        f"one day: {per_day['files']} new files, {per_day['sales']} sale orders, "
        f"{per_day['purchases']} purchase orders, {per_day['messages']} messages, "
        f"{per_day['deliveries']} deliveries, {per_day['partner_updates']} "
        "partners updated"
    )
    print()
    repeat = results["repeat"]
    print(
        f"times: median of {repeat} runs per side for the full backup and the "
        "restore, day 1 for the second backup"
    )
    print(f"{'':<16}{'baseline':>10}{'odoo-dr':>10}{'ratio':>8}{'target':>8}  met")
    for name, values in results["times"].items():
        ratio = results["ratios"][name]
        target = results["targets"][name]
        print(
            f"{name:<16}{values['baseline_s']:>9.1f}s{values['odoo_dr_s']:>9.1f}s"
            f"{ratio:>8.3f}{target:>8.2f}  {results['targets_met'][name]}"
        )
    for name, values in results["times"].items():
        print(
            f"  {name} runs: baseline {values['baseline_runs_s']}, "
            f"odoo-dr {values['odoo_dr_runs_s']}"
        )
    daily = results["daily_backups"]
    print(
        f"daily backups, days 1-{len(daily['ratios'])}: baseline "
        f"{daily['baseline_s']}, odoo-dr {daily['odoo_dr_s']}, ratios "
        f"{daily['ratios']}, median ratio {results['ratios']['daily_backup_median']}"
    )

    storage = results["storage"]
    print()
    print(
        f"odoo-dr repository after the first backup: "
        f"{human_bytes(storage['odoo_dr_repository_after_first_bytes'])} "
        f"(baseline zip {human_bytes(storage['baseline_full_zip_bytes'])})"
    )
    print(
        f"odoo-dr repository after {storage['days']} more days: "
        f"{human_bytes(storage['odoo_dr_repository_after_days_bytes'])} "
        f"({storage['odoo_dr_snapshots']} snapshots), ratio "
        f"{results['ratios']['storage_7_days_vs_full']:.3f} (target "
        f"{results['targets']['storage_7_days_vs_full']}, met "
        f"{results['targets_met']['storage_7_days_vs_full']})"
    )
    print(
        f"baseline zips of those {storage['days']} days: "
        f"{human_bytes(storage['baseline_daily_zips_total_bytes'])}, ratio "
        f"{results['ratios']['storage_7_days_vs_baseline_zips']:.3f}"
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
        "--days",
        type=int,
        default=7,
        help="Days of business, each followed by a backup (default 7, at least 1).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="Full backups and restores per side; the report uses their median "
        "(default 3).",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK,
        help=f"Folder for filestores, repository and zips, emptied first "
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
        help="Keep the work folder and the bench_ databases for inspection.",
    )

    arguments = parser.parse_args(argv)
    if arguments.days < 1:
        parser.error("--days must be at least 1")
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.scale <= 0:
        parser.error("--scale must be positive")
    arguments.work_dir = arguments.work_dir.absolute()
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    return run_benchmark(arguments, run, print_report, drop_benchmark_databases)


if __name__ == "__main__":
    sys.exit(main())
