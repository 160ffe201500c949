"""The repository benchmark, run at a tiny size so the script keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "repository.py"
KINDS = ("local", "local-encrypted", "s3")


def test_benchmark_measures_every_kind(tmp_path):
    results_path = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--scale",
            "0.003",
            "--repeat",
            "1",
            "--snapshots",
            "6",
            "--work-dir",
            str(tmp_path / "work"),
            "--results",
            str(results_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(results_path.read_text())

    for kind in KINDS:
        assert len(results["runs"][kind]["backups"]) == 1, kind
        assert len(results["runs"][kind]["restores"]) == 1, kind
    assert results["verify"]["pack_files"] > 0
    assert results["verify"]["pack_bytes"] > 0
    prune = results["prune"]
    assert prune["snapshots_before"] == 6
    assert len(prune["report"]["snapshots_removed"]) == 1
    assert set(results["ratios"]) == {
        "s3_vs_local_backup",
        "s3_vs_local_restore",
        "encrypted_vs_plain_backup",
        "encrypted_vs_plain_restore",
        "verify_vs_sha1sum_throughput",
    }
    assert not (tmp_path / "work").exists()
