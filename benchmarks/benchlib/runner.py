"""The frame of a benchmark script's run: logging, libpq defaults, clean-up, results."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable

from odoo_dr.pg.connection import PgSettings


def run_benchmark(
    arguments: argparse.Namespace,
    run: Callable[[argparse.Namespace], dict],
    print_report: Callable[[dict], None],
    drop_databases: Callable[[PgSettings], None],
) -> int:
    """Run one benchmark, then write its results and print its report.

    `arguments` needs `work_dir`, `results` and `keep_work`. Unless `keep_work` is
    set, the work folder and the benchmark's databases are removed, also after a
    failed run.
    """
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # Every side reaches the server the same way, through libpq's variables.
    os.environ.setdefault("PGHOST", "127.0.0.1")
    os.environ.setdefault("PGUSER", "postgres")
    settings = PgSettings.from_options()
    try:
        results = run(arguments)
    finally:
        if not arguments.keep_work:
            drop_databases(settings)
            shutil.rmtree(arguments.work_dir, ignore_errors=True)
    arguments.results.parent.mkdir(parents=True, exist_ok=True)
    arguments.results.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"\nresults written to {arguments.results}")
    return 0
