"""The fleet benchmark, run at a tiny size so the script keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "fleet.py"
PREFIX = "odoo_dr_fleetsmoke_"


def test_benchmark_fleet_small(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the fleet benchmark plots need the bench extra"
    )
    results_path = tmp_path / "results" / "fleet.json"
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT),
            "--tenants", "4", "--tenant-mb", "12", "30",
            "--jobs", "1", "2", "--linear-counts", "2", "4",
            "--snapshots-per-tenant", "3", "--sizes", "0.02",
            "--prefix", PREFIX,
            "--work-dir", str(tmp_path / "work"),
            "--results", str(results_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(results_path.read_text())

    assert results["complete"] is True
    assert results["data"]["tenant_count"] == 4
    tenants = results["data"]["tenants"]
    assert len({item["template"] for item in tenants}) >= 2
    for item in tenants:
        assert 10e6 < item["total_bytes"] < 35e6, item
    for kind in ("backup", "drill"):
        assert set(results["fleet"][kind]) == {"1", "2"}, kind
        for jobs, summary in results["fleet"][kind].items():
            assert summary["exit_code"] == 0, (kind, jobs)
            assert summary["failed_tenants"] == [], (kind, jobs)
            assert summary["peak_tree_rss_bytes"] > 0, (kind, jobs)
            assert summary["per_tenant"]["overhead_seconds"] is not None, (kind, jobs)
        for outcomes in results["fleet_outcomes"][kind].values():
            assert len(outcomes) == 4, kind
    assert results["ratios"]["backup"]["baseline_seconds"] > 0
    assert results["ratios"]["drill"]["baseline_seconds"] > 0
    assert results["catalogue"]["snapshots"] == 12
    for label, usage in results["catalogue"]["commands"].items():
        assert usage["exit_code"] == 0, label
    assert [run["tenants"] for run in results["linearity"]["runs"]] == [2, 4]
    for run in results["linearity"]["runs"]:
        assert run["exit_code"] == 0, run
    assert results["linearity"]["fit"]["r_squared"] is not None
    (large,) = results["large_drills"]
    assert large["drill"]["exit_code"] == 0
    assert large["drill_passed"] is True
    for name in results["plots"].values():
        assert (results_path.parent / name).stat().st_size > 0, name

    # Everything the benchmark made is gone.
    assert not (tmp_path / "work").exists()
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres") as connection:
        left = connection.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
            (PREFIX,),
        ).fetchall()
    assert left == []
