"""The platform drill benchmark, run with --small so the script keeps working.

It uses db 10 of the machine's Redis on 127.0.0.1:6379, which no other test uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "platform_drill.py"
REDIS_DB = 10


def test_benchmark_drills_every_jobs_value(tmp_path):
    results_path = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--small",
            "--redis-db", str(REDIS_DB),
            "--work-dir", str(tmp_path / "work"),
            "--results", str(results_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(results_path.read_text())

    assert results["data"]["tenant_count"] == 3
    assert results["data"]["redis_sessions"]["keys"] == 500
    assert set(results["summary"]) == {"1", "2"}
    for jobs, summary in results["summary"].items():
        assert summary["failed_tenants"] == [], jobs
        assert summary["redis"] == ["500 keys restored"], jobs
        assert summary["critical_seconds"] > 0, jobs
        assert summary["full_seconds"] >= summary["critical_seconds"], jobs
        assert summary["per_tenant_overhead_seconds"] is not None, jobs
    assert results["summary"]["1"]["speed_up_full"] == 1.0
    for runs in results["drills"].values():
        (drill,) = runs
        assert drill["exit_code"] == 0
        for tenant in drill["tenants"]:
            assert "restore database and files" in tenant["steps"], tenant["tenant"]
        assert [tier["tier"] for tier in drill["tiers"]] == [
            "critical",
            "standard",
            "low",
        ]

    # Everything the benchmark made is gone.
    assert not (tmp_path / "work").exists()
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres") as connection:
        left = connection.execute(
            "SELECT datname FROM pg_database "
            "WHERE starts_with(datname, 'pbench_small_')"
        ).fetchall()
    assert left == []
    assert redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).dbsize() == 0
