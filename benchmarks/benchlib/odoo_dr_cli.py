"""odoo-dr run through its command line, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def odoo_dr_command() -> str:
    beside = Path(sys.executable).parent / "odoo-dr"
    if beside.exists():
        return str(beside)
    found = shutil.which("odoo-dr")
    if found is None:
        raise SystemExit(
            "odoo-dr not found next to this Python or on the PATH. "
            "Run the script with the python of odoo-dr's virtualenv."
        )
    return found


def run_odoo_dr(arguments: list[str], log_path: Path) -> tuple[float, str]:
    """Run `odoo-dr ARGUMENTS` and return its wall time and stdout.

    Raise RuntimeError, with the end of its stderr, when it exits with a non-zero code.
    """
    command = [odoo_dr_command(), *arguments]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    with open(log_path, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(
            f"odoo-dr {arguments[0]} exited with {result.returncode}:\n"
            f"{result.stderr[-3000:]}"
        )
    return round(seconds, 3), result.stdout


def odoo_dr_backup(
    dbname: str, repo: Path, filestore_root: Path, log_path: Path
) -> dict:
    seconds, stdout = run_odoo_dr(
        [
            "backup",
            dbname,
            "--repo",
            str(repo),
            "--filestore-root",
            str(filestore_root),
            "--json",
        ],
        log_path,
    )
    manifest = json.loads(stdout)
    return {"seconds": seconds, "snapshot": manifest["id"], "stats": manifest["stats"]}


def odoo_dr_restore(
    repo: Path, snapshot: str, target: str, filestore_root: Path, log_path: Path
) -> dict:
    seconds, stdout = run_odoo_dr(
        [
            "restore",
            snapshot,
            "--target",
            target,
            "--copy",
            "--repo",
            str(repo),
            "--filestore-root",
            str(filestore_root),
            "--json",
        ],
        log_path,
    )
    return {"seconds": seconds, "steps": json.loads(stdout)["steps"]}
