"""The catalog benchmark, run at a tiny size so the script keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "catalog.py"
TENANTS = 3
SNAPSHOTS = 2


def test_benchmark_counts_reads(tmp_path):
    results_path = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT),
            "--tenants", str(TENANTS), "--snapshots", str(SNAPSHOTS),
            "--repeat", "1",
            "--work-dir", str(tmp_path / "work"),
            "--results", str(results_path),
        ],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(results_path.read_text())

    assert results["data"]["snapshots"] == TENANTS * SNAPSHOTS
    for kind in ("local", "s3"):
        listing = results["measured"][kind]["snapshots"]
        assert listing["with_catalog"]["reads"] == {"catalog": 1}
        assert listing["without_catalog"]["reads"] == {"snapshots": 6}
        pruning = results["measured"][kind]["prune_dry_run"]
        assert pruning["without_catalog"]["reads"]["snapshots"] == 6
    assert not (tmp_path / "work").exists()
