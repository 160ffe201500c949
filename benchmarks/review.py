"""Measure `odoo-dr review` on generated platforms of growing size.

For each size N (`--sizes`, default 100, 1,000 and 5,000 tenants):

1. Generate, in a work folder, a platform of N tenants spread over five
   environments and four tiers: `inventory.yaml`, five Kubernetes manifest
   documents per tenant in multi-document YAML files, shared documents per
   environment, and one odoo.conf per tenant (see `benchlib/review_platform.py`).
   Generation is timed on its own and not counted in the review's time.
2. Run `odoo-dr review PLATFORM --no-live --format json --output FILE` as a child
   process `--repeat` times, the way a user runs it. Record each run's wall time,
   CPU time and peak resident memory (`ru_maxrss` from `wait4`). The launcher in
   `benchlib/child_usage.py` takes these figures, so the benchmark's own memory
   is not counted.
3. Check the last report of each size: every generated tenant must have findings,
   and every flaw the generator planted must be reported as failed by its rule.

The report gives the median time and peak memory per size, the time per tenant,
and the ratio of the time per tenant between consecutive sizes. When the review's
cost grows linearly, that ratio stays near 1. Growth is judged on CPU time, which
other work on the machine does not stretch as it does the wall time. The review
at 1,000 tenants (5,000 tenant documents) is compared with the target of one
minute.

Run from the repository root:

    .venv/bin/python benchmarks/review.py                    # 100, 1,000, 5,000
    .venv/bin/python benchmarks/review.py --sizes 100,300 --repeat 1
    .venv/bin/python benchmarks/review.py --sizes 300 --repeat 1 --profile 300

Results go to stdout and to benchmarks/results/review.json. The work folder is a
new temporary folder, removed at the end unless `--keep-work` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchlib.machine import describe_disk, source_fingerprint
from benchlib.odoo_dr_cli import odoo_dr_command
from benchlib.review_platform import (
    DOCUMENTS_PER_TENANT,
    GeneratedPlatform,
    generate_platform,
    tenant_findings,
)

import odoo_dr

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "review.json"
CHILD_USAGE = Path(__file__).resolve().parent / "benchlib" / "child_usage.py"

DEFAULT_SIZES = (100, 1000, 5000)
# The requirement: 1,000 tenants with 5,000 manifest documents in under a minute.
TARGET_TENANTS = 1000
TARGET_SECONDS = 60.0
# Growth counts as linear while the CPU time per tenant of each size stays within
# this factor of the previous size's. The start-up of the command is a fixed
# cost, so at small sizes the ratio is below 1.
LINEAR_RATIO_LIMIT = 1.25


# -- the machine


def _first_match(path: str, prefix: str) -> str | None:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def describe_host(work: Path) -> dict:
    """Return the CPU, memory, disk and software the benchmark runs on."""
    memory_kib = _first_match("/proc/meminfo", "MemTotal")
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
        "odoo_dr": odoo_dr.__version__,
        "odoo_dr_package": str(package),
        "odoo_dr_commit": commit or None,
        "odoo_dr_source_sha256": source_fingerprint(),
    }


def _cpu_counters() -> tuple[int, int]:
    """Return the machine's total and idle CPU time in clock ticks, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:9]]
    # The fields are user, nice, system, idle, iowait, irq, softirq and steal.
    return sum(values), values[3] + values[4]


def background_cpu(seconds: float = 1.0) -> float:
    """Return the share of the machine's CPU that other processes use, sampled over
    `seconds` while this script sleeps."""
    total_before, idle_before = _cpu_counters()
    time.sleep(seconds)
    total_after, idle_after = _cpu_counters()
    elapsed = max(1, total_after - total_before)
    return round(1 - (idle_after - idle_before) / elapsed, 3)


# -- one review


def review_command(platform_root: Path, report: Path) -> list[str]:
    return [
        odoo_dr_command(),
        "review",
        str(platform_root),
        "--no-live",
        "--format",
        "json",
        "--output",
        str(report),
    ]


def timed_review(platform_root: Path, report: Path, log_path: Path) -> dict:
    """Run one review through the launcher and return its time and peak memory.

    Raise RuntimeError, with the end of its stderr, when the review fails.
    """
    usage_file = report.with_suffix(".usage.json")
    command = [
        sys.executable,
        str(CHILD_USAGE),
        str(usage_file),
        *review_command(platform_root, report),
    ]
    with open(log_path, "ab") as errors:
        errors.write(f"$ {' '.join(command[3:])}\n".encode())
        errors.flush()
        # The working folder is the platform's parent, so reports name files
        # `platform-N/k8s/...`, as for a user who reviews a checkout.
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            cwd=platform_root.parent,
            check=False,
        )
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"odoo-dr review exited with {result.returncode}:\n{tail}")
    usage = json.loads(usage_file.read_text())
    usage_file.unlink()
    del usage["exit_code"]
    return usage


def profile_review(platform_root: Path, work: Path, text_path: Path) -> str:
    """Run one review under cProfile and write its 40 slowest functions, by own
    time and by cumulative time, to `text_path`. Return that text."""
    stats_path = work / "review.pstats"
    report = work / "profiled-review.json"
    command = [
        sys.executable,
        "-m",
        "cProfile",
        "-o",
        str(stats_path),
        *review_command(platform_root, report),
    ]
    subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        cwd=platform_root.parent,
        check=True,
    )
    with open(text_path, "w") as handle:
        stats = pstats.Stats(str(stats_path), stream=handle)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)
    return text_path.read_text()


# -- checks of the reports


def check_report(report: Path, generated: GeneratedPlatform) -> dict:
    """Count the findings of a review report and check that the review did its
    work: findings for every generated tenant, and a failed finding for every
    planted flaw."""
    data = json.loads(report.read_text())
    findings = data["findings"]
    by_tenant = tenant_findings(findings, generated.tenants)
    without = [name for name, found in by_tenant.items() if not found]

    missed = []
    reported = 0
    for tenant in generated.tenants:
        failed = {
            item["rule"] for item in by_tenant[tenant.name] if item["status"] == "fail"
        }
        for flaw, rule_id in tenant.flaws.items():
            if rule_id in failed:
                reported += 1
            else:
                missed.append(f"{tenant.name}: {flaw} ({rule_id})")

    summary = data["summary"]
    return {
        "report_bytes": report.stat().st_size,
        "checks": summary["checks"],
        "passed": summary["passed"],
        "failed": summary["failed"],
        "evidence_problems": len(data["evidence_problems"]),
        "tenants_with_findings": len(by_tenant) - len(without),
        "tenants_without_findings": without[:20],
        "flaws_planted": reported + len(missed),
        "flaws_reported": reported,
        "flaws_not_reported": missed[:20],
    }


# -- the run


def growth(sizes: list[dict]) -> list[dict]:
    """Compare each size with the previous one: time and CPU time per tenant, their
    ratios, and the extra time per extra tenant (which leaves out the command's
    fixed start-up)."""
    compared = []
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        extra_tenants = larger["tenants"] - smaller["tenants"]
        extra_seconds = larger["seconds"] - smaller["seconds"]
        compared.append(
            {
                "from_tenants": smaller["tenants"],
                "to_tenants": larger["tenants"],
                "tenant_ratio": round(larger["tenants"] / smaller["tenants"], 2),
                "time_ratio": round(larger["seconds"] / smaller["seconds"], 2),
                "per_tenant_cost_ratio": round(
                    larger["ms_per_tenant"] / smaller["ms_per_tenant"], 2
                ),
                "per_tenant_cpu_ratio": round(
                    larger["cpu_ms_per_tenant"] / smaller["cpu_ms_per_tenant"], 2
                ),
                "extra_ms_per_extra_tenant": round(
                    1000 * extra_seconds / extra_tenants, 2
                ),
                "peak_rss_ratio": round(
                    larger["peak_rss_bytes"] / smaller["peak_rss_bytes"], 2
                ),
            }
        )
    return compared


def measure(arguments: argparse.Namespace, work: Path) -> dict:
    machine = describe_host(work)
    log.info("machine: %s", json.dumps(machine))

    platforms: dict[int, tuple[GeneratedPlatform, float]] = {}
    for tenants in arguments.sizes:
        started = time.perf_counter()
        generated = generate_platform(work / f"platform-{tenants}", tenants)
        seconds = time.perf_counter() - started
        platforms[tenants] = (generated, seconds)
        log.info(
            "generated %d tenants, %d documents in %d files (%.1f MB) in %.1f s",
            tenants,
            generated.documents,
            generated.files,
            generated.bytes / 1e6,
            seconds,
        )

    log_path = work / "odoo-dr.log"
    sizes = []
    for tenants in arguments.sizes:
        generated, generation_seconds = platforms[tenants]
        report = work / f"review-{tenants}.json"
        runs = []
        cpu_before = []
        for repetition in range(arguments.repeat):
            cpu_before.append(background_cpu())
            run = timed_review(generated.root, report, log_path)
            runs.append(run)
            log.info(
                "%d tenants, run %d: %.1f s, peak %.0f MB",
                tenants,
                repetition + 1,
                run["seconds"],
                run["peak_rss_bytes"] / 1e6,
            )
        seconds = statistics.median(run["seconds"] for run in runs)
        cpu_seconds = statistics.median(
            run["user_seconds"] + run["system_seconds"] for run in runs
        )
        sizes.append(
            {
                "tenants": tenants,
                "platform": generated.summary(),
                "generation_seconds": round(generation_seconds, 2),
                "runs": runs,
                "background_cpu_before_each_run": cpu_before,
                "seconds": seconds,
                "cpu_seconds": round(cpu_seconds, 3),
                "peak_rss_bytes": statistics.median(
                    run["peak_rss_bytes"] for run in runs
                ),
                "ms_per_tenant": round(1000 * seconds / tenants, 2),
                "cpu_ms_per_tenant": round(1000 * cpu_seconds / tenants, 2),
                "ms_per_document": round(1000 * seconds / generated.documents, 3),
            }
        )

    # The reports are read after every timed run, so that no review runs beside
    # this script holding a large report in memory.
    for size in sizes:
        generated, _seconds = platforms[size["tenants"]]
        report = work / f"review-{size['tenants']}.json"
        size["review"] = check_report(report, generated)
        problems = size["review"]
        if problems["tenants_without_findings"] or problems["flaws_not_reported"]:
            log.warning(
                "%d tenants: tenants without findings %s, flaws not reported %s",
                size["tenants"],
                problems["tenants_without_findings"],
                problems["flaws_not_reported"],
            )

    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "review_command": "odoo-dr review PLATFORM --no-live --format json "
        "--output FILE",
        "repeat": arguments.repeat,
        "machine": machine,
        "sizes": sizes,
        "growth": growth(sizes),
        "linear_ratio_limit": LINEAR_RATIO_LIMIT,
    }
    # Other work on the machine stretches the wall time but not the CPU time the
    # review uses, so growth is judged on CPU time.
    ratios = [item["per_tenant_cpu_ratio"] for item in results["growth"]]
    results["linear"] = all(ratio <= LINEAR_RATIO_LIMIT for ratio in ratios)
    at_target = [size for size in sizes if size["tenants"] == TARGET_TENANTS]
    if at_target:
        results["target"] = {
            "tenants": TARGET_TENANTS,
            "tenant_documents": TARGET_TENANTS * DOCUMENTS_PER_TENANT,
            "limit_seconds": TARGET_SECONDS,
            "seconds": at_target[0]["seconds"],
            "met": at_target[0]["seconds"] < TARGET_SECONDS,
        }
    if source_fingerprint() != machine["odoo_dr_source_sha256"]:
        log.warning("odoo-dr's sources changed during the run; rerun to measure one")
        machine["odoo_dr_source_changed_during_run"] = True

    if arguments.profile is not None:
        profiled = arguments.profile
        root = work / f"platform-{profiled}"
        if profiled not in platforms:
            generate_platform(root, profiled)
        text_path = arguments.results.with_name(f"review-profile-{profiled}.txt")
        log.info("profiling the review of %d tenants into %s", profiled, text_path)
        profile_review(root, work, text_path)
        results["profile"] = str(text_path)
    return results


# -- output


def print_report(results: dict) -> None:
    machine = results["machine"]
    print(
        f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
        f"{machine['memory_bytes'] / 1e9:.1f} GB RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}"
    )
    print(
        f"odoo-dr {machine['odoo_dr']} "
        f"({machine['odoo_dr_commit'] or machine['odoo_dr_package']})"
    )
    if machine.get("odoo_dr_source_changed_during_run"):
        print("warning: odoo-dr's sources changed during the run")
    print(f"command: {results['review_command']}, median of {results['repeat']} runs")
    background = [
        share
        for size in results["sizes"]
        for share in size["background_cpu_before_each_run"]
    ]
    print(
        f"CPU used by other workloads in the second before each run: mean "
        f"{statistics.mean(background):.0%}, max {max(background):.0%}"
    )
    print()
    print(
        f"{'tenants':>8}{'documents':>11}{'MB':>7}{'generate':>10}{'review':>9}"
        f"{'cpu':>8}{'peak MB':>9}{'ms/tenant':>11}{'checks':>9}{'failed':>8}"
    )
    for size in results["sizes"]:
        platform_size = size["platform"]
        review = size["review"]
        print(
            f"{size['tenants']:>8,}{platform_size['documents']:>11,}"
            f"{platform_size['bytes'] / 1e6:>7.1f}"
            f"{size['generation_seconds']:>9.1f}s{size['seconds']:>8.1f}s"
            f"{size['cpu_seconds']:>7.1f}s{size['peak_rss_bytes'] / 1e6:>9.0f}"
            f"{size['ms_per_tenant']:>11.1f}{review['checks']:>9,}{review['failed']:>8,}"
        )
    for size in results["sizes"]:
        runs = ", ".join(f"{run['seconds']:.1f}" for run in size["runs"])
        review = size["review"]
        print(
            f"  {size['tenants']:,} tenants: runs {runs} s; "
            f"{review['tenants_with_findings']:,} of {size['tenants']:,} tenants "
            f"with findings; {review['flaws_reported']} of "
            f"{review['flaws_planted']} planted flaws reported"
        )
    print()
    for item in results["growth"]:
        print(
            f"{item['from_tenants']:,} -> {item['to_tenants']:,} tenants "
            f"(x{item['tenant_ratio']:g}): time x{item['time_ratio']:g}, "
            f"time per tenant x{item['per_tenant_cost_ratio']:g}, "
            f"CPU time per tenant x{item['per_tenant_cpu_ratio']:g}, "
            f"{item['extra_ms_per_extra_tenant']:.1f} ms per extra tenant, "
            f"peak memory x{item['peak_rss_ratio']:g}"
        )
    if results["growth"]:
        print(
            f"linear (CPU time per tenant within x{results['linear_ratio_limit']} of "
            f"the previous size): {results['linear']}"
        )
    target = results.get("target")
    if target is not None:
        print(
            f"target: {target['tenants']:,} tenants ({target['tenant_documents']:,} "
            f"tenant documents) in under {target['limit_seconds']:.0f} s: "
            f"{target['seconds']:.1f} s, met {target['met']}"
        )
    if "profile" in results:
        print(f"profile written to {results['profile']}")


def _sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid sizes {text!r}: write tenant counts separated by commas, "
            "such as 100,1000,5000"
        ) from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(
            f"invalid sizes {text!r}: each tenant count must be at least 1"
        )
    return sorted(set(values))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="Tenant counts to measure, separated by commas. Each tenant has "
        f"{DOCUMENTS_PER_TENANT} manifest documents "
        f"(default {','.join(str(size) for size in DEFAULT_SIZES)}).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="Reviews per size. The report uses their median (default 3).",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="Folder for the generated platforms and reports; it must be new or "
        "empty (default: a new temporary folder).",
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
        help="Keep the work folder, with its platforms and last reports.",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="TENANTS",
        default=None,
        help="After the timed runs, review a platform of TENANTS tenants once under "
        "cProfile and write its slowest functions to review-profile-TENANTS.txt "
        "beside the results.",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.profile is not None and arguments.profile < 1:
        parser.error("--profile must be at least 1")
    if arguments.work_dir is not None:
        arguments.work_dir = arguments.work_dir.absolute()
        if arguments.work_dir.exists() and any(arguments.work_dir.iterdir()):
            parser.error(f"--work-dir {arguments.work_dir} is not empty")
    arguments.results = arguments.results.absolute()
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if arguments.work_dir is None:
        work = Path(tempfile.mkdtemp(prefix="odoo-dr-review-benchmark-"))
    else:
        work = arguments.work_dir
        work.mkdir(parents=True, exist_ok=True)
    log.info("work folder: %s", work)
    arguments.results.parent.mkdir(parents=True, exist_ok=True)
    try:
        results = measure(arguments, work)
    finally:
        if not arguments.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    arguments.results.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"\nresults written to {arguments.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
