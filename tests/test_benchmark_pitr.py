"""The point-in-time benchmark, run at a tiny size so the script keeps working."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "pitr.py"

pytestmark = pytest.mark.skipif(
    shutil.which("pgbackrest") is None, reason="pgBackRest is not installed"
)


def _benchmark_clusters() -> set[Path]:
    return set(Path("/var/tmp").glob("odoo-dr-bench-pitr-*"))


def test_benchmark_drills_both_ways(tmp_path):
    results_path = tmp_path / "results.json"
    clusters_before = _benchmark_clusters()
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--scale", "0.002",
            "--repeat", "1",
            "--sync-files", "100",
            "--sync-runs", "1",
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

    prepared = results["prepared"]
    assert prepared["base_backup"]["size_bytes"] > prepared["database_bytes"]
    assert prepared["filestore_files"] > 0
    assert [sync["new_files"] > 0 for sync in prepared["syncs"]] == [True] * 3
    pitr = results["drills"]["pitr"]
    assert len(pitr) == 1
    assert {"restore base backup", "replay WAL", "filestore"} <= set(pitr[0]["steps"])
    assert pitr[0]["recovered_to"] <= prepared["target_time"]
    assert len(results["drills"]["snapshot"]) == 1
    assert results["summary"]["ratio_pitr_vs_snapshot"] > 0
    sync = results["filestore_sync"]
    assert sync["first_sync_files"] == 100
    assert sync["new_files_per_run"] == 1
    assert not (tmp_path / "work").exists()
    assert _benchmark_clusters() == clusters_before
