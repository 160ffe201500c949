"""Measure `backup --all`, `drill --all` and the repository commands on a fleet.

One run, on the machine's PostgreSQL (127.0.0.1:5432):

1. Builds `--tenants` tenants (default 200) named `odoo_dr_fleet_NNN`, with
   total sizes (database plus filestore) spread evenly between `--tenant-mb`
   bounds (default 12 to 50 MB). Four template databases are built with
   `odoo_dr.demo.builder` at growing scales, without generated files. Each
   tenant is a `CREATE DATABASE ... TEMPLATE` clone of the largest template that
   leaves room for files, then made its own: 5% of its partners and messages are
   rewritten with seeded random text, and its filestore gets its own random files
   (with their `ir_attachment` rows) up to its target size. So the filestores
   share nothing between tenants, while the database dumps of one template share
   all but the rewritten rows, which odoo-dr's deduplication stores once.
2. Runs `odoo-dr backup --all` at each `--jobs` value (default 1, 2 and 4), each
   into a fresh repository, then `odoo-dr drill --all` at each value against the
   first repository. Each run is timed through benchmarks/benchlib/child_usage.py,
   with the peak resident memory of its largest process, and the summed resident
   memory of its process tree sampled every 0.2 s. From the per-tenant times of
   the JSON summary a fit `seconds = a + b * MB` gives the per-tenant overhead `a`.
   The baseline is a shell loop over the tenants, one at a time: `pg_dump -Fc`
   plus `tar` of the filestore for backup, and `createdb`, `pg_restore` and
   `tar -x` into a new database and folder (dropped afterwards) for drill.
3. Adds to the drilled repository copies of each real manifest, moved 1 to 4
   days back, so it lists 5 snapshots per tenant (1,000 for 200 tenants), and
   times `odoo-dr snapshots`, `prune --dry-run --keep-daily 2 --keep-weekly 1`
   and `verify` (structure only).
4. Times `backup --all --jobs 2` of 50, 100 and 200 tenants (`--linear-counts`;
   an evenly strided subset, so the size distribution stays the same), one run
   after the other into fresh repositories, and fits a line with its R^2.
5. Unless `--skip-large`, builds one tenant at each of `--sizes` GB (default 0.1,
   0.3, 1 and 3) with the demo builder, backs it up and times its drill.

`--steps` runs only some of steps 2 to 5 after the build. Without step 2, step 3
first runs `backup --all --jobs 2` into its repository.

The JSON is rewritten after each step with `"complete": false`, so an interrupted
run still leaves the figures it measured. Plots go next to the JSON as PNG files
(matplotlib, from the `bench` extra: `pip install -e '.[bench]'`).

Run from the repository root:

    .venv/bin/python benchmarks/fleet.py                     # 200 tenants
    .venv/bin/python benchmarks/fleet.py --tenants 8 --jobs 1 2 --sizes 0.05 \
        --linear-counts 4 8                                  # a few minutes

Every database the script creates starts with `--prefix` (default
`odoo_dr_fleet_`) and is dropped at the end, also after a failure or SIGTERM,
unless --keep. The work folder is removed too.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_restore import human_bytes
from benchlib.machine import describe_machine, source_fingerprint
from benchlib.odoo_dr_cli import odoo_dr_command
from benchlib.runner import run_benchmark
from benchlib.sizes import database_size, filestore_size, folder_size
from platform_drill import scale_for

from odoo_dr.demo import builder
from odoo_dr.engine.drill import SCRATCH_PREFIX
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.repository.store import Repository, new_id

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "fleet"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "fleet.json"
CHILD_USAGE = Path(__file__).resolve().parent / "benchlib" / "child_usage.py"

# Template databases without generated files, by scale factor of
# backup_restore.py's tenant. The smallest is the schema with one row per table.
TEMPLATE_FACTORS = (0.001, 0.01, 0.02, 0.04)
# Share of partners and messages each clone rewrites, so its dump differs.
REWRITE_SHARE = 0.05
MEAN_FILE_BYTES = 50_000
SEED = 20261205
ENVIRONMENT = "fleet"
SAMPLE_SECONDS = 0.2
STEPS = ("fleet", "catalogue", "linearity", "large")


# -- memory and time of one command


def tree_rss_bytes(root: int) -> int:
    """Return the summed resident memory of `root` and its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in members:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * page
        except OSError:
            continue
    return total


def measure(command: list[str], work: Path, label: str, log_path: Path) -> dict:
    """Run `command` under child_usage.py; return its usage, stdout and load."""
    usage_path = work / f"usage-{label}.json"
    load_before = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    with open(log_path, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        process = subprocess.Popen(
            [sys.executable, str(CHILD_USAGE), str(usage_path), *command],
            stdout=subprocess.PIPE,
            stderr=handle,
            text=True,
        )
        peak_tree = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_tree
            while not stop.wait(SAMPLE_SECONDS):
                peak_tree = max(peak_tree, tree_rss_bytes(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = process.communicate()
        stop.set()
        sampler.join()
    usage = json.loads(usage_path.read_text())
    usage_path.unlink()
    usage["peak_tree_rss_bytes"] = peak_tree
    usage["load_average_before"] = load_before
    log.info(
        "%s: %.1f s, exit %d, peak %.0f MB (tree %.0f MB), load %.1f",
        label,
        usage["seconds"],
        usage["exit_code"],
        usage["peak_rss_bytes"] / 1e6,
        peak_tree / 1e6,
        load_before[0],
    )
    return {"usage": usage, "stdout": stdout}


def odoo_dr(*arguments: str) -> list[str]:
    return [odoo_dr_command(), "-q", *arguments]


# -- building the fleet


def tenant_name(prefix: str, number: int) -> str:
    return f"{prefix}{number:03d}"


def target_sizes(count: int, low_mb: float, high_mb: float) -> list[float]:
    if count == 1:
        return [low_mb]
    step = (high_mb - low_mb) / (count - 1)
    return [round(low_mb + step * index, 2) for index in range(count)]


def build_templates(settings: PgSettings, prefix: str, root: Path) -> list[dict]:
    templates = []
    for number, factor in enumerate(TEMPLATE_FACTORS):
        name = f"{prefix}template_{number}"
        scale = builder.DemoScale(
            partners=max(1, round(23500 * factor)),
            products=max(1, round(9400 * factor)),
            sale_orders=max(1, round(94000 * factor)),
            purchase_orders=max(1, round(23500 * factor)),
            lines_per_order=3,
            messages=max(1, round(235000 * factor)),
            generated_files=0,
        )
        builder.build(settings, name, root / "templates", scale, replace=True)
        with settings.connect(name, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        templates.append(
            {
                "name": name,
                "factor": factor,
                "database_bytes": database_size(settings, name),
                "filestore": str(root / "templates" / name),
            }
        )
        log.info("template %s: %.1f MB", name, templates[-1]["database_bytes"] / 1e6)
    return templates


def pick_template(templates: list[dict], target_bytes: float) -> dict:
    """Return the largest template that leaves at least 40% of the target to
    files, or the smallest."""
    fitting = [t for t in templates if t["database_bytes"] <= 0.6 * target_bytes]
    return fitting[-1] if fitting else templates[0]


def add_files(
    connection, folder: Path, generator: random.Random, wanted_bytes: int
) -> tuple[int, int]:
    """Write random files of about `wanted_bytes` in all, with attachment rows."""
    rows = []
    written = 0
    index = 0
    while written < wanted_bytes:
        size = max(1, int(generator.expovariate(1 / MEAN_FILE_BYTES)))
        size = min(size, wanted_bytes - written)
        content = generator.randbytes(size)
        checksum = hashlib.sha1(content).hexdigest()
        path = folder / checksum[:2] / checksum
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        rows.append((f"upload-{index:05d}.bin", f"{checksum[:2]}/{checksum}", size))
        written += size
        index += 1
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY ir_attachment (name, res_model, res_id, type, store_fname,"
            " file_size, checksum, mimetype, company_id, create_uid, create_date)"
            " FROM STDIN"
        ) as copy:
            for name, store_fname, size in rows:
                copy.write_row(
                    (
                        name,
                        "res.partner",
                        3,
                        "binary",
                        store_fname,
                        size,
                        store_fname[3:],
                        "application/octet-stream",
                        1,
                        2,
                        "2025-06-01 10:00:00",
                    )
                )
    return len(rows), written


def build_tenant(
    settings: PgSettings,
    name: str,
    target_mb: float,
    templates: list[dict],
    root: Path,
    generator: random.Random,
) -> dict:
    target = target_mb * 1e6
    template = pick_template(templates, target)
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template["name"]}"')
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template["filestore"], folder)
    seed = generator.getrandbits(32)
    with settings.connect(name) as connection:
        connection.execute("SELECT setseed(%s)", (seed / 2**32,))
        for table, column in (("res_partner", "name"), ("mail_message", "body")):
            connection.execute(
                f"UPDATE {table} SET {column} = md5(random()::text) "
                f"|| ' ' || {column} WHERE random() < %s",
                (REWRITE_SHARE,),
            )
        files, _ = add_files(
            connection,
            folder,
            generator,
            max(50_000, int(target - template["database_bytes"])),
        )
        connection.commit()
    with settings.connect(name, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    store = filestore_size(folder)
    item = {
        "tenant": name,
        "template": template["name"],
        "target_mb": target_mb,
        "database_bytes": database_size(settings, name),
        "filestore_files": store.files,
        "filestore_bytes": store.bytes,
    }
    item["total_bytes"] = item["database_bytes"] + item["filestore_bytes"]
    return item


def build_fleet(arguments: argparse.Namespace, settings: PgSettings) -> dict:
    started = time.perf_counter()
    root = arguments.work_dir / "filestore"
    templates = build_templates(settings, arguments.prefix, arguments.work_dir)
    generator = random.Random(SEED)
    tenants = []
    sizes = target_sizes(arguments.tenants, *arguments.tenant_mb)
    for number, target_mb in enumerate(sizes):
        name = tenant_name(arguments.prefix, number)
        tenants.append(
            build_tenant(settings, name, target_mb, templates, root, generator)
        )
        if number % 20 == 19:
            log.info("built %d of %d tenants", number + 1, len(sizes))
    totals = [item["total_bytes"] for item in tenants]
    return {
        "tenant_count": len(tenants),
        "templates": templates,
        "tenants": tenants,
        "total_bytes": sum(totals),
        "database_bytes": sum(item["database_bytes"] for item in tenants),
        "filestore_bytes": sum(item["filestore_bytes"] for item in tenants),
        "smallest_bytes": min(totals),
        "largest_bytes": max(totals),
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def write_inventory(path: Path, names: list[str]) -> Path:
    lines = [
        "version: 1",
        "platform: odoo-dr fleet benchmark",
        "environments:",
        f"  - name: {ENVIRONMENT}",
        "    tenants:",
    ]
    lines += [f"      - name: {name}" for name in names]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- fits


def linear_fit(xs: list[float], ys: list[float]) -> dict:
    """Return the least-squares line through (xs, ys) and its R^2."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return {"intercept": None, "slope": None, "r_squared": None}
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    total = sum((y - mean) ** 2 for y in ys)
    residual = sum(
        (y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True)
    )
    return {
        "intercept": round(intercept, 4),
        "slope": round(slope, 6),
        "r_squared": round(1 - residual / total, 4) if total else None,
    }


def per_tenant_fit(outcomes: list[dict], sizes: dict[str, int]) -> dict:
    """Fit each tenant's seconds against its MB: the intercept is the overhead."""
    ok = [item for item in outcomes if item["result"] in ("ok", "warnings")]
    fit = linear_fit(
        [sizes[item["tenant"]] / 1e6 for item in ok], [item["seconds"] for item in ok]
    )
    return {
        "overhead_seconds": fit["intercept"],
        "seconds_per_mb": fit["slope"],
        "r_squared": fit["r_squared"],
        "tenant_seconds_median": round(
            statistics.median(item["seconds"] for item in ok), 3
        )
        if ok
        else None,
    }


# -- fleet runs


def fleet_run(
    kind: str, arguments_: list[str], jobs: int, work: Path, log_path: Path
) -> dict:
    label = f"{kind}-all-jobs-{jobs}"
    measured = measure(odoo_dr(kind, "--all", *arguments_), work, label, log_path)
    outcomes = json.loads(measured["stdout"]) if measured["stdout"].strip() else []
    failed = [item["tenant"] for item in outcomes if item["result"] == "failed"]
    if failed:
        log.warning("%s: %d tenant(s) failed: %s", label, len(failed), failed[:5])
    return {"usage": measured["usage"], "outcomes": outcomes, "failed": failed}


def backup_all(
    arguments: argparse.Namespace,
    names: list[str],
    jobs: int,
    repo: Path,
    label: str,
) -> dict:
    Repository.init(str(repo))
    inventory = write_inventory(arguments.work_dir / f"inventory-{label}.yaml", names)
    result = fleet_run(
        "backup",
        [
            "--inventory", str(inventory), "--repo", str(repo),
            "--filestore-root", str(arguments.work_dir / "filestore"),
            "--jobs", str(jobs), "--json",
        ],
        jobs,
        arguments.work_dir,
        arguments.work_dir / "commands.log",
    )  # fmt: skip
    result["tenants"] = len(names)
    result["repository_bytes"] = folder_size(repo).bytes
    return result


def drill_all(arguments: argparse.Namespace, jobs: int, repo: Path) -> dict:
    return fleet_run(
        "drill",
        ["--repo", str(repo), "--jobs", str(jobs), "--json",
         "--temp-dir", str(arguments.work_dir / "scratch")],
        jobs,
        arguments.work_dir,
        arguments.work_dir / "commands.log",
    )  # fmt: skip


def baseline_backup(arguments: argparse.Namespace, names: list[str]) -> dict:
    folder = arguments.work_dir / "baseline"
    folder.mkdir(exist_ok=True)
    root = arguments.work_dir / "filestore"
    script = (
        'for t in "$@"; do '
        f'pg_dump -Fc -f "{folder}/$t.dump" "$t" && '
        f'tar -cf "{folder}/$t.tar" -C "{root}" "$t" || exit 1; done'
    )
    measured = measure(
        ["bash", "-c", script, "baseline", *names],
        arguments.work_dir,
        "baseline-backup",
        arguments.work_dir / "commands.log",
    )
    return {"usage": measured["usage"], "bytes": folder_size(folder).bytes}


def baseline_restore(arguments: argparse.Namespace, names: list[str]) -> dict:
    folder = arguments.work_dir / "baseline"
    scratch = arguments.work_dir / "baseline-restore"
    restore_prefix = f"{arguments.prefix}restore_"
    script = (
        'for t in "$@"; do '
        f'r="{restore_prefix}${{t#{arguments.prefix}}}"; '
        'createdb "$r" && '
        f'pg_restore --no-owner -d "$r" "{folder}/$t.dump" && '
        f'mkdir -p "{scratch}" && tar -xf "{folder}/$t.tar" -C "{scratch}" && '
        f'dropdb "$r" && rm -rf "{scratch}/$t" || exit 1; done'
    )
    measured = measure(
        ["bash", "-c", script, "baseline", *names],
        arguments.work_dir,
        "baseline-restore",
        arguments.work_dir / "commands.log",
    )
    shutil.rmtree(folder, ignore_errors=True)
    return {"usage": measured["usage"]}


def summarize(runs: dict[int, dict], sizes: dict[str, int]) -> dict:
    first = runs[min(runs)]["usage"]["seconds"]
    summary = {}
    for jobs, run in sorted(runs.items()):
        usage = run["usage"]
        summary[str(jobs)] = {
            "seconds": usage["seconds"],
            "speed_up": round(first / usage["seconds"], 3),
            "peak_rss_bytes": usage["peak_rss_bytes"],
            "peak_tree_rss_bytes": usage["peak_tree_rss_bytes"],
            "cpu_seconds": round(usage["user_seconds"] + usage["system_seconds"], 1),
            "load_average_before": usage["load_average_before"],
            "exit_code": usage["exit_code"],
            "failed_tenants": run["failed"],
            "per_tenant": per_tenant_fit(run["outcomes"], sizes),
        }
        if "repository_bytes" in run:
            summary[str(jobs)]["repository_bytes"] = run["repository_bytes"]
    return summary


# -- the 1,000-snapshot repository


def add_older_copies(repo: Path, copies: int) -> int:
    """Write `copies` copies of each manifest, 1 to `copies` days older."""
    repository = Repository.open(str(repo))
    written = 0
    for manifest in repository.list_snapshots():
        for days in range(1, copies + 1):
            shift = timedelta(days=days)
            moment = manifest.snapshot_time - shift
            copy = manifest.model_copy(
                update={
                    "id": new_id(moment),
                    "started_at": manifest.started_at - shift,
                    "snapshot_time": moment,
                    "finished_at": manifest.finished_at - shift,
                }
            )
            SnapshotManifest.model_validate(copy.model_dump())
            repository.write_document(
                f"snapshots/{copy.id}.json",
                copy.model_dump_json(indent=1).encode("utf-8"),
                sync=False,
            )
            written += 1
    repository.backend.flush()
    return written


def catalogue(arguments: argparse.Namespace, repo: Path) -> dict:
    added = add_older_copies(repo, arguments.snapshots_per_tenant - 1)
    count = len(list((repo / "snapshots").glob("*.json")))
    log.info("repository now lists %d snapshots (%d copies)", count, added)
    log_path = arguments.work_dir / "commands.log"
    results = {"snapshots": count, "copied_manifests": added, "commands": {}}
    for label, command in (
        ("snapshots", odoo_dr("snapshots", "--repo", str(repo), "--json")),
        (
            "prune --dry-run",
            odoo_dr(
                "prune",
                "--dry-run",
                "--keep-daily",
                "2",
                "--keep-weekly",
                "1",
                "--repo",
                str(repo),
                "--json",
            ),
        ),  # fmt: skip
        ("verify", odoo_dr("verify", "--repo", str(repo), "--json")),
    ):
        measured = measure(command, arguments.work_dir, label.split()[0], log_path)
        results["commands"][label] = measured["usage"]
    return results


# -- drill time against size


def large_drills(arguments: argparse.Namespace, settings: PgSettings) -> list[dict]:
    rows = []
    root = arguments.work_dir / "large-filestore"
    log_path = arguments.work_dir / "commands.log"
    for gigabytes in arguments.sizes:
        name = f"{arguments.prefix}large_{round(gigabytes * 1000):05d}mb"
        factor, scale = scale_for(round(gigabytes * 1000))
        started = time.perf_counter()
        builder.build(settings, name, root, scale, replace=True)
        with settings.connect(name, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        build_seconds = round(time.perf_counter() - started, 1)
        files = filestore_size(root / name)
        row = {
            "target_gb": gigabytes,
            "scale": round(factor, 4),
            "build_seconds": build_seconds,
            "database_bytes": database_size(settings, name),
            "filestore_files": files.files,
            "filestore_bytes": files.bytes,
        }
        row["total_bytes"] = row["database_bytes"] + row["filestore_bytes"]
        repo = arguments.work_dir / "large-repo"
        shutil.rmtree(repo, ignore_errors=True)
        Repository.init(str(repo))
        backup = measure(
            odoo_dr("backup", name, "--repo", str(repo), "--filestore-root", str(root),
                    "--json"),
            arguments.work_dir, f"backup-{name}", log_path,
        )  # fmt: skip
        row["backup"] = backup["usage"]
        drill = measure(
            odoo_dr("drill", name, "--repo", str(repo), "--json",
                    "--temp-dir", str(arguments.work_dir / "scratch")),
            arguments.work_dir, f"drill-{name}", log_path,
        )  # fmt: skip
        row["drill"] = drill["usage"]
        record = json.loads(drill["stdout"]) if drill["stdout"].strip() else {}
        row["drill_steps"] = record.get("steps")
        row["drill_passed"] = record.get("passed")
        rows.append(row)
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            drop_database(connection, name)
        shutil.rmtree(root / name, ignore_errors=True)
        shutil.rmtree(repo, ignore_errors=True)
    return rows


# -- plots


def plot(results: dict, folder: Path, stem: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    fleet = results.get("fleet")
    if fleet and fleet.get("backup") and fleet.get("drill"):
        figure, axis = plt.subplots(figsize=(6, 4))
        for kind in ("backup", "drill"):
            jobs = sorted(int(value) for value in fleet[kind])
            axis.plot(
                jobs,
                [fleet[kind][str(value)]["speed_up"] for value in jobs],
                marker="o",
                label=f"{kind} --all",
            )
        axis.plot(jobs, jobs, linestyle=":", color="grey", label="linear")
        axis.set_xlabel("--jobs (tenants at once)")
        axis.set_ylabel("speed-up over --jobs 1")
        axis.set_xticks(jobs)
        axis.set_title(f"{results['data']['tenant_count']} tenants")
        axis.legend()
        figure.tight_layout()
        path = folder / f"{stem}-speedup.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written["speedup"] = path.name
    large = results.get("large_drills")
    if large:
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot(
            [row["total_bytes"] / 1e9 for row in large],
            [row["drill"]["seconds"] for row in large],
            marker="o",
        )
        axis.set_xlabel("database plus filestore (GB)")
        axis.set_ylabel("drill time (s)")
        axis.set_title("drill of one tenant")
        figure.tight_layout()
        path = folder / f"{stem}-drill-size.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written["drill_size"] = path.name
    linear = results.get("linearity")
    if linear and linear.get("runs"):
        figure, axis = plt.subplots(figsize=(6, 4))
        runs = linear["runs"]
        axis.plot(
            [run["tenants"] for run in runs],
            [run["seconds"] for run in runs],
            marker="o",
            label="measured",
        )
        fit = linear["fit"]
        if fit["slope"] is not None:
            counts = [0, max(run["tenants"] for run in runs)]
            axis.plot(
                counts,
                [fit["intercept"] + fit["slope"] * count for count in counts],
                linestyle=":",
                label=f"fit, R^2 = {fit['r_squared']}",
            )
        axis.set_xlabel("tenants")
        axis.set_ylabel("backup --all --jobs 2 (s)")
        axis.legend()
        figure.tight_layout()
        path = folder / f"{stem}-linear.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written["linear"] = path.name
    return written


# -- the run


def strided(names: list[str], count: int) -> list[str]:
    """Return `count` names spread evenly over `names`."""
    if count >= len(names):
        return list(names)
    return [names[index * len(names) // count] for index in range(count)]


def run(arguments: argparse.Namespace) -> dict:
    settings = PgSettings.from_options()
    work = arguments.work_dir
    shutil.rmtree(work, ignore_errors=True)
    (work / "scratch").mkdir(parents=True)
    drop_databases(settings, arguments.prefix)
    results: dict = {
        "benchmark": "fleet",
        "complete": False,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(work, settings),
        "settings": {
            "tenants": arguments.tenants,
            "tenant_mb": arguments.tenant_mb,
            "jobs": arguments.jobs,
            "tenant_jobs": 2,
            "linear_counts": arguments.linear_counts,
            "snapshots_per_tenant": arguments.snapshots_per_tenant,
            "sizes_gb": [] if arguments.skip_large else arguments.sizes,
            "steps": arguments.steps,
            "rewrite_share": REWRITE_SHARE,
            "seed": SEED,
        },
    }

    def save(step: str) -> None:
        results["last_step"] = step
        arguments.results.parent.mkdir(parents=True, exist_ok=True)
        arguments.results.write_text(json.dumps(results, indent=2) + "\n")

    data = build_fleet(arguments, settings)
    results["data"] = data
    log.info(
        "fleet: %d tenants, %s (%s to %s each) in %.0f s",
        data["tenant_count"],
        human_bytes(data["total_bytes"]),
        human_bytes(data["smallest_bytes"]),
        human_bytes(data["largest_bytes"]),
        data["build_seconds"],
    )
    save("build")
    names = [item["tenant"] for item in data["tenants"]]
    sizes = {item["tenant"]: item["total_bytes"] for item in data["tenants"]}

    if "fleet" in arguments.steps:
        drill_repo = measure_fleet(arguments, names, sizes, results, save)
    else:
        drill_repo = work / "repo-catalogue"
        if "catalogue" in arguments.steps:
            backup_all(arguments, names, 2, drill_repo, "catalogue")

    if "catalogue" in arguments.steps:
        results["catalogue"] = catalogue(arguments, drill_repo)
        save("catalogue")
    shutil.rmtree(drill_repo, ignore_errors=True)

    if "linearity" in arguments.steps:
        results["linearity"] = linearity(arguments, names)
        save("linearity")

    if "large" in arguments.steps and not arguments.skip_large:
        results["large_drills"] = large_drills(arguments, settings)
        save("large")

    results["plots"] = plot(results, arguments.results.parent, arguments.results.stem)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["complete"] = True
    results["load_average_after"] = [
        float(x) for x in Path("/proc/loadavg").read_text().split()[:3]
    ]
    if source_fingerprint() != results["machine"]["odoo_dr_source_sha256"]:
        log.warning("odoo-dr's sources changed during the run")
        results["sources_changed_during_run"] = True
    return results


def measure_fleet(
    arguments: argparse.Namespace,
    names: list[str],
    sizes: dict[str, int],
    results: dict,
    save,
) -> Path:
    """Time backup --all and drill --all at each --jobs value, and the baselines.

    Return the repository of the first value's backup, which the drills used.
    """
    work = arguments.work_dir
    backups: dict[int, dict] = {}
    drill_repo = work / f"repo-jobs-{arguments.jobs[0]}"
    for jobs in arguments.jobs:
        repo = work / f"repo-jobs-{jobs}"
        backups[jobs] = backup_all(arguments, names, jobs, repo, f"jobs-{jobs}")
        if repo != drill_repo:
            shutil.rmtree(repo)
    baseline = {"backup": baseline_backup(arguments, names)}
    results["fleet"] = {"backup": summarize(backups, sizes)}
    results["fleet_outcomes"] = {
        "backup": {str(j): run["outcomes"] for j, run in backups.items()}
    }
    results["baseline"] = baseline
    save("backup")

    drills: dict[int, dict] = {}
    for jobs in arguments.jobs:
        drills[jobs] = drill_all(arguments, jobs, drill_repo)
    baseline["restore"] = baseline_restore(arguments, names)
    results["fleet"]["drill"] = summarize(drills, sizes)
    results["fleet_outcomes"]["drill"] = {
        str(j): run["outcomes"] for j, run in drills.items()
    }
    results["ratios"] = ratios(results)
    save("drill")
    return drill_repo


def ratios(results: dict) -> dict:
    baseline = results["baseline"]
    fleet = results["fleet"]
    out = {}
    for kind, base in (("backup", "backup"), ("drill", "restore")):
        seconds = baseline[base]["usage"]["seconds"]
        out[kind] = {
            "baseline_seconds": seconds,
            **{
                f"jobs_{jobs}": round(summary["seconds"] / seconds, 3)
                for jobs, summary in fleet[kind].items()
            },
        }
    return out


def linearity(arguments: argparse.Namespace, names: list[str]) -> dict:
    """Time backup --all --jobs 2 of each count of tenants, one after the other,
    so that all counts run under similar load."""
    runs = []
    for count in sorted(set(arguments.linear_counts)):
        chosen = strided(names, count)
        repo = arguments.work_dir / f"repo-linear-{count}"
        measured = backup_all(arguments, chosen, 2, repo, f"linear-{count}")
        shutil.rmtree(repo)
        usage = measured["usage"]
        runs.append(
            {
                "tenants": len(chosen),
                "seconds": usage["seconds"],
                "exit_code": usage["exit_code"],
                "failed_tenants": measured["failed"],
                "load_average_before": usage["load_average_before"],
            }
        )
    fit = linear_fit(
        [float(item["tenants"]) for item in runs], [item["seconds"] for item in runs]
    )
    return {"runs": runs, "fit": fit}


def drop_databases(settings: PgSettings, prefix: str) -> None:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database "
                "WHERE starts_with(datname, %s) OR starts_with(datname, %s)",
                (prefix, SCRATCH_PREFIX),
            )
        ]
        for name in names:
            if name.startswith(SCRATCH_PREFIX) and prefix not in name:
                continue
            drop_database(connection, name)


def print_report(results: dict) -> None:
    data = results["data"]
    print(
        f"fleet: {data['tenant_count']} tenants, {human_bytes(data['total_bytes'])} "
        f"({human_bytes(data['smallest_bytes'])} to "
        f"{human_bytes(data['largest_bytes'])})"
    )
    for kind, summaries in results.get("fleet", {}).items():
        for jobs, summary in summaries.items():
            print(
                f"{kind} --all --jobs {jobs}: {summary['seconds']:.1f} s, "
                f"speed-up {summary['speed_up']}, peak "
                f"{summary['peak_tree_rss_bytes'] / 1e6:.0f} MB, per-tenant overhead "
                f"{summary['per_tenant']['overhead_seconds']} s"
            )
    for kind, ratio in results.get("ratios", {}).items():
        print(f"{kind}: baseline {ratio['baseline_seconds']:.1f} s, ratios {ratio}")
    if "catalogue" in results:
        snapshots = results["catalogue"]["snapshots"]
        for label, usage in results["catalogue"]["commands"].items():
            print(f"{label} of {snapshots} snapshots: {usage['seconds']} s")
    if "linearity" in results:
        linear = results["linearity"]
        print(f"linearity: {linear['runs']}, fit {linear['fit']}")
    for row in results.get("large_drills", []):
        print(
            f"drill of {human_bytes(row['total_bytes'])}: {row['drill']['seconds']} s"
        )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200, help="tenant count")
    parser.add_argument(
        "--tenant-mb",
        type=float,
        nargs=2,
        default=[12.0, 50.0],
        metavar=("MIN", "MAX"),
        help="smallest and largest tenant, database plus filestore, in MB",
    )
    parser.add_argument(
        "--jobs", type=int, nargs="+", default=[1, 2, 4], help="--jobs values"
    )
    parser.add_argument(
        "--linear-counts",
        type=int,
        nargs="+",
        default=[50, 100, 200],
        help="tenant counts of the linearity check",
    )
    parser.add_argument(
        "--snapshots-per-tenant",
        type=int,
        default=5,
        help="snapshots per tenant in the repository of the catalogue step",
    )
    parser.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        default=[0.1, 0.3, 1.0, 3.0],
        help="total sizes in GB of the single-tenant drills",
    )
    parser.add_argument(
        "--skip-large", action="store_true", help="leave out the single-tenant drills"
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=STEPS,
        default=list(STEPS),
        help="steps to run after building the fleet (default: all): fleet times "
        "backup and drill --all with the baselines, catalogue the commands on "
        "--snapshots-per-tenant snapshots of each tenant, linearity the backups "
        "of --linear-counts tenants, large the single-tenant drills of --sizes",
    )
    parser.add_argument(
        "--prefix", default="odoo_dr_fleet_", help="prefix of every database created"
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument(
        "--keep",
        dest="keep_work",
        action="store_true",
        help="keep the databases and the work folder",
    )
    return parser.parse_args(argv)


def main() -> int:
    arguments = parse_arguments()
    # Checked before the run, which takes up to an hour before it plots.
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit(
            "matplotlib not found; install the bench extra: "
            ".venv/bin/pip install -e '.[bench]'"
        )
    # SIGTERM ends the run like Ctrl-C, so the clean-up runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return run_benchmark(
        arguments,
        run,
        print_report,
        lambda settings: drop_databases(settings, arguments.prefix),
    )


if __name__ == "__main__":
    sys.exit(main())
