"""Run the fault suite in its full form and sum up its figures for RELIABILITY.md.

The fault suite (tests/faults/) kills commands with SIGKILL, damages repositories,
backs up under a busy writer, runs out of disk, stops PostgreSQL and S3 under
running commands, fuzzes the parsers and scans for leaked secrets. The test command
runs it in its short form. This script runs it with `ODOO_DR_FAULTS=full`, where
each kind of fault gets tens to hundreds of trials. It collects the line each test
writes to the report file, and prints the trials, faults injected, inputs tried and
anything lost per area and per test.

Run from the repository root:

    .venv/bin/python benchmarks/faults.py                   # the full form
    .venv/bin/python benchmarks/faults.py --area crash      # one area
    .venv/bin/python benchmarks/faults.py --short           # the form CI runs
    .venv/bin/python benchmarks/faults.py --seed 1234       # repeat random choices

Results go to stdout and to benchmarks/results/faults.json. The exit code is 0 only
when every test passed and nothing was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchlib.machine import describe_machine

from odoo_dr.pg.connection import PgSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FAULT_TESTS = PROJECT_ROOT / "tests" / "faults"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "faults.json"
FIGURES = ("trials", "faults", "inputs", "lost")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--area",
        action="append",
        default=[],
        help="run only tests/faults/test_AREA.py (repeatable)",
    )
    parser.add_argument(
        "--short", action="store_true", help="run the short form that CI runs"
    )
    parser.add_argument("--seed", type=int, help="seed of every random choice")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument(
        "--results",
        type=Path,
        help="where to write the figures (default benchmarks/results/faults.json for "
        "a full run of every area, faults-partial.json otherwise)",
    )
    arguments = parser.parse_args(argv)
    if arguments.results is None:
        partial = arguments.short or arguments.area
        arguments.results = (
            DEFAULT_RESULTS.with_stem("faults-partial") if partial else DEFAULT_RESULTS
        )
    return arguments


def selected_paths(areas: list[str]) -> list[str]:
    """Return the test files to run: every file of the suite, or those of `areas`."""
    if not areas:
        return [str(FAULT_TESTS)]
    paths = []
    for area in areas:
        path = FAULT_TESTS / f"test_{area}.py"
        if not path.is_file():
            known = sorted(
                p.stem.removeprefix("test_") for p in FAULT_TESTS.glob("test_*.py")
            )
            raise SystemExit(
                f"unknown area {area!r}: expected one of {', '.join(known)}"
            )
        paths.append(str(path))
    return paths


def summarise(lines: list[dict]) -> dict:
    """Return the figures summed per area and in all, with each test's own line."""
    areas: dict[str, dict] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for line in lines:
        for figure in FIGURES:
            areas[line["area"]][figure] += line[figure]
    total = {figure: sum(area[figure] for area in areas.values()) for figure in FIGURES}
    failed = [
        f"{line['area']}::{line['name']}"
        for line in lines
        if line["outcome"] != "passed"
    ]
    return {
        "areas": dict(sorted(areas.items())),
        "total": total,
        "failed_tests": failed,
        "tests": sorted(lines, key=lambda line: (line["area"], line["name"])),
    }


def run(arguments: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="odoo-dr-faults-") as folder:
        report = Path(folder) / "report.jsonl"
        report.touch()
        env = dict(os.environ)
        env["ODOO_DR_FAULTS"] = "short" if arguments.short else "full"
        env["ODOO_DR_FAULT_REPORT"] = str(report)
        env.setdefault("PGHOST", "127.0.0.1")
        env.setdefault("PGUSER", "postgres")
        if arguments.seed is not None:
            env["ODOO_DR_FAULT_SEED"] = str(arguments.seed)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            str(arguments.workers),
            *selected_paths(arguments.area),
        ]
        started = time.monotonic()
        completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=False)
        seconds = time.monotonic() - started
        lines = [json.loads(text) for text in report.read_text().splitlines() if text]
    results = summarise(lines)
    results.update(
        form=env["ODOO_DR_FAULTS"],
        seed=arguments.seed,
        command=" ".join(["benchmarks/faults.py", *sys.argv[1:]]),
        pytest_exit_code=completed.returncode,
        seconds=round(seconds, 1),
        machine=describe_machine(PROJECT_ROOT, PgSettings.from_options()),
    )
    return results


def print_report(results: dict) -> None:
    print(f"\nfault suite, {results['form']} form, {results['seconds']:.0f} s")
    header = f"{'area':<14}{'trials':>8}{'faults':>8}{'inputs':>9}{'lost':>6}"
    print(header)
    for area, figures in results["areas"].items():
        print(
            f"{area:<14}"
            + "".join(
                f"{figures[f]:>{w}}" for f, w in zip(FIGURES, (8, 8, 9, 6), strict=True)
            )
        )
    total = results["total"]
    print(
        f"{'all':<14}"
        + "".join(
            f"{total[f]:>{w}}" for f, w in zip(FIGURES, (8, 8, 9, 6), strict=True)
        )
    )
    if results["failed_tests"]:
        print("failed tests: " + ", ".join(results["failed_tests"]))


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    results = run(arguments)
    arguments.results.parent.mkdir(parents=True, exist_ok=True)
    arguments.results.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"\nresults written to {arguments.results}")
    if (
        results["pytest_exit_code"] != 0
        or results["total"]["lost"]
        or results["failed_tests"]
    ):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
