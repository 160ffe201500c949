"""Measure snapshot listing and `prune --dry-run` with and without the catalog.

1. Build a repository of `--tenants` tenants with `--snapshots` snapshots each,
   one a day, in a local folder and in a bucket of moto's S3 server (`moto_server`,
   a separate process on 127.0.0.1). Manifests are synthetic but valid and share
   one tiny blob, so the repository is mostly manifests. They are written as
   documents, as by a version without a catalog; one listing then writes the
   catalog.
2. For each location, open the repository afresh for every run and time, `--repeat`
   times each (alternating which goes first), what `odoo-dr snapshots` does
   (`Repository.scan_summaries`) and what `odoo-dr prune --dry-run --keep-last 5`
   does (`engine.prune.prune`), once with the catalog and once with it turned off
   (`catalog_enabled = False`, every manifest read). Reads of the backend are
   counted by folder.

Run from the repository root:

    .venv/bin/python benchmarks/catalog.py                      # 100 x 10
    .venv/bin/python benchmarks/catalog.py --tenants 5 --snapshots 4 --repeat 1

Results go to stdout and to benchmarks/results/catalog.json. The work folder is
removed at the end unless `--keep-work` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib.machine import describe_machine
from benchlib.runner import run_benchmark
from benchlib.synthetic import synthetic_manifest
from repository import MotoServer

from odoo_dr.engine.prune import prune
from odoo_dr.engine.retention import RetentionPolicy
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.backend import Backend
from odoo_dr.repository.store import Repository

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work" / "catalog"
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "catalog.json"
BUCKET = "bench-catalog"
KEEP_LAST = 5
START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


class CountingBackend:
    """A backend that counts its reads by top folder and passes everything on."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.reads: Counter[str] = Counter()

    def read(self, key: str) -> bytes:
        self.reads[key.split("/", 1)[0]] += 1
        return self.inner.read(key)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def build(location: str, tenants: int, snapshots: int) -> Repository:
    repository = Repository.init(location)
    blob, _ = repository.blobs.put_chunks([b"[]"], meta=True)
    repository.blobs.flush()
    for day in range(snapshots):
        for number in range(tenants):
            moment = START + timedelta(days=day, seconds=number)
            manifest = synthetic_manifest(
                f"tenant-{number:04d}",
                moment,
                blob,
                labels={"environment": "production"},
            )
            repository.write_document(
                f"snapshots/{manifest.id}.json",
                manifest.model_dump_json(indent=1).encode("utf-8"),
                sync=False,
            )
    repository.backend.flush()
    repository.snapshot_summaries()
    return repository


def time_once(location: str, operation: str, enabled: bool) -> tuple[float, dict]:
    """Open the repository afresh, run `operation` once; return seconds and reads."""
    opened = Repository.open(location)
    backend = CountingBackend(opened.backend)
    repository = Repository(backend, opened.config, opened.keys)
    repository.catalog_enabled = enabled
    started = time.perf_counter()
    if operation == "snapshots":
        repository.scan_summaries()
    else:
        prune(repository, [RetentionPolicy(keep_last=KEEP_LAST)], dry_run=True)
    return time.perf_counter() - started, dict(backend.reads)


def time_pair(location: str, operation: str, repeat: int) -> dict:
    """Time `operation` with and without the catalog, alternating which goes first
    so that a change in the machine's load weighs on both."""
    runs: dict = {
        name: {"seconds": [], "reads": {}}
        for name in ("with_catalog", "without_catalog")
    }
    for attempt in range(repeat):
        order = [True, False] if attempt % 2 == 0 else [False, True]
        for enabled in order:
            seconds, reads = time_once(location, operation, enabled)
            entry = runs["with_catalog" if enabled else "without_catalog"]
            entry["seconds"].append(seconds)
            entry["reads"] = reads
    for entry in runs.values():
        entry["median_seconds"] = statistics.median(entry["seconds"])
    return runs


def run(arguments: argparse.Namespace) -> dict:
    work = arguments.work_dir
    work.mkdir(parents=True, exist_ok=True)
    moto = MotoServer(work)
    try:
        os.environ.update(moto.environment())
        moto.create_bucket(BUCKET)
        locations = {
            "local": str(work / "repo"),
            "s3": f"s3://{BUCKET}/repo",
        }
        measured: dict = {}
        for kind, location in locations.items():
            log.info("building %s repository at %s", kind, location)
            build(location, arguments.tenants, arguments.snapshots)
            measured[kind] = {}
            for operation in ("snapshots", "prune_dry_run"):
                measured[kind][operation] = time_pair(
                    location, operation, arguments.repeat
                )
    finally:
        moto.stop()
    return {
        "benchmark": "catalog",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(work, PgSettings.from_options()),
        "data": {
            "tenants": arguments.tenants,
            "snapshots_per_tenant": arguments.snapshots,
            "snapshots": arguments.tenants * arguments.snapshots,
        },
        "repeat": arguments.repeat,
        "measured": measured,
    }


def print_report(results: dict) -> None:
    data = results["data"]
    print(
        f"{data['snapshots']:,} snapshots ({data['tenants']} tenants x "
        f"{data['snapshots_per_tenant']}), median of {results['repeat']}"
    )
    print(
        f"{'where':<6} {'operation':<14} {'catalog':>10} {'without':>10} "
        f"{'manifest reads':>15}"
    )
    for kind, operations in results["measured"].items():
        for operation, runs in operations.items():
            with_catalog = runs["with_catalog"]
            without = runs["without_catalog"]
            reads = (
                f"{with_catalog['reads'].get('snapshots', 0)} / "
                f"{without['reads'].get('snapshots', 0)}"
            )
            print(
                f"{kind:<6} {operation:<14} {with_catalog['median_seconds']:>9.3f}s "
                f"{without['median_seconds']:>9.3f}s {reads:>15}"
            )


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--snapshots", type=int, default=10, help="per tenant")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep-work", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    return run_benchmark(arguments, run, print_report, lambda _settings: None)


if __name__ == "__main__":
    sys.exit(main())
