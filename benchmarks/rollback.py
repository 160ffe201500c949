"""Time `odoo-dr rollback` of a release on the 1 GB benchmark tenant.

1. Build the tenant `bench_rollback` with the building code of
   `benchmarks/backup_restore.py` (at `--scale 1`: about 300 MB of database and
   1 GB of incompressible filestore in 20,000 files).
2. `odoo-dr backup`, `odoo-dr drill`, then `odoo-dr guard pre-deploy`, which records
   the snapshot as the restore point of release `bench-v2`.
3. One day of business after the restore point (1% new orders, invoices, messages
   and files, as the backup benchmark's days), then a release that breaks the
   tenant: it deletes a tenth of `stock_move_line` and leaves `sale` in state
   `to upgrade`. `odoo-dr guard post-deploy` must fail (exit 5).
4. `odoo-dr rollback --yes`, timed as a whole and per step (safety snapshot,
   restore, checks) from its JSON output. Then the tenant's row counts and
   filestore are compared with the restore point's.

Before the timed rollback, the page cache is dropped when the script may write
`/proc/sys/vm/drop_caches` (root), and the CPU share of other workloads is sampled.

Run from the repository root:

    .venv/bin/python benchmarks/rollback.py              # full size
    .venv/bin/python benchmarks/rollback.py --scale 0.1

Results go to stdout and to benchmarks/results/rollback.json. The database and the
work folder are removed at the end unless `--keep-work`.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from backup_restore import DAILY_FRACTION, Workspace, build_tenant, scaled
from benchlib.business_day import apply_business_day, day_size
from benchlib.machine import RunConditions, describe_machine
from benchlib.odoo_dr_cli import odoo_dr_backup, odoo_dr_command, run_odoo_dr
from benchlib.runner import run_benchmark
from benchlib.sizes import filestore_size, folder_size

from odoo_dr.odoo.inspect import count_rows
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "rollback"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "rollback.json"

TENANT = "bench_rollback"
RELEASE = "bench-v2"


def break_tenant(settings: PgSettings) -> dict:
    """Act as a failed module upgrade: delete rows and leave a module pending."""
    with settings.connect(TENANT) as connection:
        deleted = connection.execute(
            "DELETE FROM stock_move_line WHERE id % 10 = 0"
        ).rowcount
        connection.execute(
            "UPDATE ir_module_module SET state = 'to upgrade' WHERE name = 'sale'"
        )
        connection.commit()
    return {"stock_move_line_deleted": deleted, "module_left_to_upgrade": "sale"}


def run_expecting(arguments: list[str], log_path: Path, code: int) -> float:
    """Run odoo-dr, which must exit with `code`; return its wall time."""
    command = [odoo_dr_command(), *arguments]
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    seconds = time.perf_counter() - started
    with open(log_path, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != code:
        raise RuntimeError(
            f"odoo-dr {arguments[0]} exited with {result.returncode}, expected "
            f"{code}:\n{result.stderr[-3000:]}"
        )
    return round(seconds, 3)


def run(arguments: argparse.Namespace) -> dict:
    settings = PgSettings.from_options()
    workspace = Workspace(arguments.work_dir)
    workspace.create()
    machine = describe_machine(workspace.root, settings)
    conditions = RunConditions()
    repo = ["--repo", str(workspace.repo)]
    root = ["--filestore-root", str(workspace.source_root)]
    logs = workspace.odoo_dr_log
    run_odoo_dr(["init", *repo], logs)

    scale = scaled(arguments.scale)
    summary, data = build_tenant(settings, workspace, scale, name=TENANT)
    backup = odoo_dr_backup(TENANT, workspace.repo, workspace.source_root, logs)
    drill_seconds, _ = run_odoo_dr(["drill", TENANT, *repo], logs)
    pre_deploy_seconds = run_expecting(
        ["guard", "pre-deploy", TENANT, "--release", RELEASE, "--max-age", "1h",
         *repo], logs, 0)  # fmt: skip
    restore_point_rows = data["rows"]
    restore_point_files = filestore_size(summary.filestore)

    size = day_size(settings, TENANT, data["filestore_files"], DAILY_FRACTION)
    day = apply_business_day(
        settings,
        TENANT,
        summary.filestore,
        size,
        1,
        scale.generated_file_bytes,
        scale.lines_per_order,
    )
    broken = break_tenant(settings)
    post_deploy_seconds = run_expecting(
        ["guard", "post-deploy", TENANT, "--release", RELEASE, *repo, *root], logs, 5
    )

    conditions.prepare("rollback")
    started = time.perf_counter()
    result = subprocess.run(
        [odoo_dr_command(), "rollback", TENANT, "--to-release", RELEASE, "--yes",
         "--json", *repo, *root],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    rollback_seconds = round(time.perf_counter() - started, 3)
    with open(logs, "a") as handle:
        handle.write(f"$ odoo-dr rollback ...\n{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(
            f"rollback exited with {result.returncode}:\n{result.stderr}"
        )
    report = json.loads(result.stdout)

    with settings.connect(TENANT) as connection:
        with connection.cursor() as cursor:
            rows_after = count_rows(cursor, tuple(restore_point_rows))
    files_after = filestore_size(summary.filestore)
    matches = rows_after == restore_point_rows and (
        files_after.files,
        files_after.bytes,
    ) == (restore_point_files.files, restore_point_files.bytes)
    if not matches:
        raise RuntimeError("the rolled-back tenant differs from the restore point")

    return {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": arguments.scale,
        "machine": machine,
        "background_cpu_before_rollback": conditions.background_cpu,
        "page_cache_dropped": conditions.cache_dropped_every_time,
        "tenant": {key: value for key, value in data.items() if key != "rows"},
        "restore_point_rows": restore_point_rows,
        "after_restore_point": {
            "business_day": day,
            "day_size": size.__dict__,
            **broken,
        },  # fmt: skip
        "times": {
            "backup_s": backup["seconds"],
            "drill_s": drill_seconds,
            "pre_deploy_s": pre_deploy_seconds,
            "post_deploy_failing_s": post_deploy_seconds,
            "rollback_s": rollback_seconds,
            "rollback_steps_s": report["steps"],
            "restore_steps_s": report["restore_steps"],
        },
        "rollback_checks": {
            check["name"]: check["passed"] for check in report["checks"]
        },
        "discarded_rows": report["discarded_rows"],
        "discarded_files": report["discarded_files"],
        "repository_bytes": folder_size(workspace.repo).bytes,
        "restored_matches_restore_point": matches,
    }


def print_report(results: dict) -> None:
    machine = results["machine"]
    tenant = results["tenant"]
    times = results["times"]
    print(
        f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
        f"{machine['memory_bytes'] / 2**30:.0f} GiB, PostgreSQL {machine['postgresql']}"
    )
    print(
        f"tenant (scale {results['scale']}): database "
        f"{tenant['database_bytes'] / 1e6:.1f} MB, {tenant['filestore_files']:,} "
        f"files of {tenant['filestore_bytes'] / 1e6:.1f} MB"
    )
    print(
        f"backup {times['backup_s']:.1f}s, drill {times['drill_s']:.1f}s, "
        f"guard pre-deploy {times['pre_deploy_s']:.1f}s, failing guard post-deploy "
        f"{times['post_deploy_failing_s']:.1f}s"
    )
    steps = ", ".join(
        f"{name} {seconds:.1f}s" for name, seconds in times["rollback_steps_s"].items()
    )
    print(f"rollback --yes: {times['rollback_s']:.1f}s ({steps})")
    restore_steps = ", ".join(
        f"{name} {seconds:.1f}s" for name, seconds in times["restore_steps_s"].items()
    )
    print(f"  its restore: {restore_steps}")
    print(f"checks after the rollback: {results['rollback_checks']}")
    print(f"discarded rows: {results['discarded_rows']}")
    print(f"restored tenant matches the restore point: "
          f"{results['restored_matches_restore_point']}")  # fmt: skip


def drop_tenant(settings: PgSettings) -> None:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        drop_database(connection, TENANT)


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
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK,
        help="Folder for the filestore and repository, emptied first.",
    )
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="JSON file to write."
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="Keep the work folder and the database.",
    )
    arguments = parser.parse_args(argv)
    if arguments.scale <= 0:
        parser.error("--scale must be positive")
    arguments.work_dir = arguments.work_dir.absolute()
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    return run_benchmark(arguments, run, print_report, drop_tenant)


if __name__ == "__main__":
    sys.exit(main())
