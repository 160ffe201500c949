"""Measure `odoo-dr serve` on a repository of many tenants and snapshots.

1. Build a repository of `--tenants` tenants with `--snapshots` snapshots and
   `--drills` drill records each, one snapshot a day, through the real
   `Repository` API. The manifests are synthetic but valid: every snapshot
   references the same two tiny blobs (a toc.dat and an empty file index), so the
   repository is mostly manifests, which is what the status collector reads. An
   inventory puts every tenant in one environment, spread over four tiers.
2. Time the status collector in this process: the cold collection (every
   manifest and record read, and one review of the inventory), a refresh with
   nothing new, and a refresh after one new snapshot per tenant.
3. Start `odoo-dr serve` on 127.0.0.1 and load `/metrics` and the dashboard `/`
   (or `/api/status` when the dashboard is not installed) with `wrk`
   (`--duration` seconds, `--threads`, `--connections`), recording p50 and p99
   latency and requests per second.
   `/metrics` is loaded once more with one connection, as one Prometheus
   server scrapes it.
4. The baseline: a server that collects from scratch on every request, as a
   server without the cache would, loaded with `wrk` on `/metrics` with one
   connection.

Run from the repository root (wrk: `apt-get install wrk`):

    .venv/bin/python benchmarks/serve.py                       # 1,000 x 30
    .venv/bin/python benchmarks/serve.py --tenants 50 --snapshots 5 --duration 5

Results go to stdout and to benchmarks/results/serve.json. The work folder is
removed at the end unless `--keep-work` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib.machine import describe_machine
from benchlib.runner import run_benchmark
from benchlib.synthetic import synthetic_drill, synthetic_manifest

from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.manifest import (
    SnapshotManifest,
)
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.status.collect import StatusCollector

log = logging.getLogger("benchmark")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "serve.json"
TIERS = ("critical", "high", "standard", "low")
# Prints wrk's summary as one JSON line; latencies are in microseconds.
WRK_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, '
    .. '"p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def tenant_name(number: int) -> str:
    return f"tenant_{number:05d}"


def build_fleet(work: Path, tenants: int, snapshots: int, drills: int) -> dict:
    """Write the repository and the inventory; return their sizes."""
    location = work / "repo"
    repository = Repository.init(str(location))
    toc = b"toc of a synthetic benchmark snapshot"
    toc_blob, _ = repository.blobs.put_chunks([toc], meta=True)
    index_blob, _ = repository.blobs.put_chunks([b"[]"], meta=True)
    repository.blobs.flush()
    now = datetime.now(UTC).replace(microsecond=0)
    for number in range(tenants):
        name = tenant_name(number)
        for day in range(snapshots):
            moment = now - timedelta(days=snapshots - day, minutes=number % 600)
            manifest = synthetic_manifest(name, moment, toc_blob, index_blob, day)
            repository.write_document(
                f"snapshots/{manifest.id}.json",
                manifest.model_dump_json(indent=1).encode("utf-8"),
                sync=False,
            )
        for drill in range(drills):
            finished = now - timedelta(days=drill * 7 + 1, minutes=number % 600)
            record = synthetic_drill(name, finished, passed=drill != 1)
            repository.write_document(
                f"drills/{record.id}.json",
                record.model_dump_json(indent=1).encode("utf-8"),
                sync=False,
            )
    repository.backend.flush()
    inventory = work / "inventory.yaml"
    lines = [
        "platform: serve benchmark",
        "environments:",
        "  - name: prod",
        "    evidence:",
        "      repository: repo",
        "    tenants:",
    ]
    for number in range(tenants):
        lines.append(f"      - name: {tenant_name(number)}")
        lines.append(f"        tier: {TIERS[number % len(TIERS)]}")
    inventory.write_text("\n".join(lines) + "\n")
    manifest_bytes = sum(
        path.stat().st_size for path in (location / "snapshots").iterdir()
    )
    return {
        "tenants": tenants,
        "snapshots": tenants * snapshots,
        "drills": tenants * drills,
        "manifest_bytes": manifest_bytes,
    }


def add_one_snapshot_each(work: Path, tenants: int) -> None:
    repository = Repository.open(str(work / "repo"))
    blobs = json.loads(next((work / "repo" / "snapshots").iterdir()).read_text())
    template = SnapshotManifest.model_validate(blobs)
    now = datetime.now(UTC)
    for number in range(tenants):
        manifest = template.model_copy(
            update={
                "id": new_id(now),
                "tenant": tenant_name(number),
                "snapshot_time": now,
            }
        )
        repository.write_document(
            f"snapshots/{manifest.id}.json",
            manifest.model_dump_json(indent=1).encode("utf-8"),
            sync=False,
        )
    repository.backend.flush()


def time_collector(work: Path, tenants: int) -> dict:
    """Time the cold collection and two refreshes of one collector."""
    collector = StatusCollector(inventory_path=work / "inventory.yaml", repositories=[])
    started = time.perf_counter()
    status = collector.refresh()
    cold = time.perf_counter() - started
    assert not status.errors, status.errors
    assert len(status.tenants) == tenants, len(status.tenants)

    started = time.perf_counter()
    collector.refresh()
    unchanged = time.perf_counter() - started

    add_one_snapshot_each(work, tenants)
    started = time.perf_counter()
    status = collector.refresh()
    incremental = time.perf_counter() - started
    assert all(item.snapshots > 0 for item in status.tenants)

    from odoo_dr.review.engine import ReviewOptions, run_review

    started = time.perf_counter()
    run_review(work / "inventory.yaml", ReviewOptions(live=False))
    review = time.perf_counter() - started
    return {
        "cold_seconds": round(cold, 3),
        "refresh_unchanged_seconds": round(unchanged, 3),
        "refresh_one_new_snapshot_per_tenant_seconds": round(incremental, 3),
        "review_seconds": round(review, 3),
    }


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30):
                return
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None:
                message = f"server exited with code {process.returncode}"
                raise RuntimeError(message) from None
            if time.monotonic() > deadline:
                message = f"server did not respond to {url} in {timeout} s"
                raise RuntimeError(message) from None
            time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_wrk(url: str, arguments: argparse.Namespace, threads: int, connections: int):
    script = arguments.work_dir / "report.lua"
    script.write_text(WRK_REPORT)
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={arguments.duration}s",
        "--timeout=120s",
        f"--script={script}",
        url,
    ]
    log.info("running %s", " ".join(command))
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    summary = json.loads(
        next(line for line in reversed(output.splitlines()) if line.startswith("{"))
    )
    seconds = summary["duration_us"] / 1e6
    return {
        "url_path": urllib.parse.urlsplit(url).path,
        "threads": threads,
        "connections": connections,
        "seconds": round(seconds, 3),
        "requests": summary["requests"],
        "errors": summary["errors"],
        "requests_per_second": round(summary["requests"] / seconds, 2),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "max_ms": summary["max_us"] / 1000,
    }


def resident_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_server(work: Path, arguments: argparse.Namespace) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "odoo-dr"),
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        "--inventory",
        str(work / "inventory.yaml"),
        "-q",
    ]
    process = subprocess.Popen(command)
    try:
        started = time.perf_counter()
        wait_until_serving(f"{base}/healthz", process, timeout=1800)
        ready = time.perf_counter() - started
        try:
            with urllib.request.urlopen(f"{base}/", timeout=30):
                page = "/"
        except urllib.error.HTTPError:
            page = "/api/status"
        metrics = run_wrk(
            f"{base}/metrics", arguments, arguments.threads, arguments.connections
        )
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
            metrics["response_bytes"] = len(response.read())
        # Prometheus scrapes a target with one request at a time.
        single_scraper = run_wrk(f"{base}/metrics", arguments, 1, 1)
        dashboard = run_wrk(
            f"{base}{page}", arguments, arguments.threads, arguments.connections
        )
        with urllib.request.urlopen(f"{base}{page}", timeout=30) as response:
            dashboard["response_bytes"] = len(response.read())
        rss = resident_bytes(process.pid)
    finally:
        stop(process)
    return {
        "start_to_ready_seconds": round(ready, 3),
        "resident_bytes_after_load": rss,
        "metrics": metrics,
        "metrics_one_connection": single_scraper,
        "page": dashboard,
    }


def measure_baseline(work: Path, arguments: argparse.Namespace) -> dict:
    """Serve /metrics collected from scratch per request; load it with wrk."""
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "baseline-server",
        "--inventory",
        str(work / "inventory.yaml"),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/healthz", process, 120)
        return run_wrk(f"http://127.0.0.1:{port}/metrics", arguments, 1, 1)
    finally:
        stop(process)


def baseline_server(inventory: Path, port: int) -> None:
    """Run a server whose /metrics builds a new collector for every request."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import Response
    from prometheus_client import CONTENT_TYPE_LATEST

    from odoo_dr.status.metrics import MetricsRenderer

    app = FastAPI()

    @app.get("/metrics")
    def metrics() -> Response:
        collector = StatusCollector(inventory_path=inventory)
        collector.refresh()
        body = MetricsRenderer(collector).render()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages, to show other work."""
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


def run(arguments: argparse.Namespace) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install it with apt-get install wrk")
    work = arguments.work_dir
    work.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    started = time.perf_counter()
    data = build_fleet(work, arguments.tenants, arguments.snapshots, arguments.drills)
    data["build_seconds"] = round(time.perf_counter() - started, 3)
    log.info("built %s", data)
    collection = time_collector(work, arguments.tenants)
    log.info("collector %s", collection)
    server = measure_server(work, arguments)
    log.info("server %s", server)
    baseline = measure_baseline(work, arguments)
    log.info("baseline %s", baseline)
    return {
        "machine": describe_machine(work, PgSettings.from_options()),
        "load_average": {"before": load_before, "after": load_average()},
        "data": data,
        "collection": collection,
        "server": server,
        "baseline_rescan_per_request": baseline,
        "ratios": {
            "metrics_requests_per_second_vs_baseline": round(
                server["metrics"]["requests_per_second"]
                / max(baseline["requests_per_second"], 1e-9),
                1,
            )
        },
    }


def print_report(results: dict) -> None:
    data, collection = results["data"], results["collection"]
    print(
        f"\n{data['tenants']} tenants, {data['snapshots']} snapshots, "
        f"{data['drills']} drill records "
        f"({data['manifest_bytes'] / 1e6:.1f} MB of manifests)"
    )
    print(f"cold collection:        {collection['cold_seconds']:.2f} s")
    print(f"refresh, nothing new:   {collection['refresh_unchanged_seconds']:.2f} s")
    print(
        "refresh, +1 snapshot per tenant: "
        f"{collection['refresh_one_new_snapshot_per_tenant_seconds']:.2f} s"
    )
    print(f"review of the inventory: {collection['review_seconds']:.2f} s")
    rows = [
        ("/metrics", results["server"]["metrics"]),
        ("/metrics, 1 conn.", results["server"]["metrics_one_connection"]),
        (results["server"]["page"]["url_path"], results["server"]["page"]),
        ("/metrics, rescan", results["baseline_rescan_per_request"]),
    ]
    print(f"\n{'route':<20} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for label, row in rows:
        print(
            f"{label:<20} {row['requests_per_second']:>9.1f} {row['p50_ms']:>9.1f} "
            f"{row['p99_ms']:>9.1f} {row['errors']:>7}"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "baseline-server":
        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.add_argument("--inventory", type=Path, required=True)
        parser.add_argument("--port", type=int, required=True)
        options = parser.parse_args()
        logging.basicConfig(level=logging.WARNING)
        baseline_server(options.inventory, options.port)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--snapshots", type=int, default=30, help="per tenant")
    parser.add_argument("--drills", type=int, default=3, help="per tenant")
    parser.add_argument("--duration", type=int, default=30, help="seconds per load")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep-work", action="store_true")
    arguments = parser.parse_args()
    if arguments.work_dir is None:
        arguments.work_dir = Path(tempfile.mkdtemp(prefix="odoo-dr-serve-bench-"))
    return run_benchmark(arguments, run, print_report, lambda _settings: None)


if __name__ == "__main__":
    os.environ.setdefault("PGHOST", "127.0.0.1")
    sys.exit(main())
