"""The serve benchmark, run at a tiny size so the script keeps working."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "serve.py"
TENANTS = 8
SNAPSHOTS = 3


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_benchmark_loads_server(tmp_path):
    results_path = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT),
            "--tenants", str(TENANTS), "--snapshots", str(SNAPSHOTS),
            "--duration", "1",
            "--work-dir", str(tmp_path / "work"),
            "--results", str(results_path),
        ],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(results_path.read_text())

    assert results["data"]["snapshots"] == TENANTS * SNAPSHOTS
    assert results["collection"]["cold_seconds"] > 0
    for run in (
        results["server"]["metrics"],
        results["server"]["page"],
        results["baseline_rescan_per_request"],
    ):
        assert run["requests"] > 0
        assert run["errors"] == 0
    assert results["server"]["metrics"]["response_bytes"] > 0
    assert not (tmp_path / "work").exists()
