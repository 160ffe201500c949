"""Settings shared by the fault suite: its scale, its seed and its report.

The suite runs in two forms. The short form, the default, runs a few trials of each
kind so that the whole test command stays within its time budget. The full form
(`ODOO_DR_FAULTS=full`, which `benchmarks/faults.py` sets) runs every kind at least
a hundred times. Each test adds its figures (trials, faults injected, inputs tried,
anything lost) to the report file named by `ODOO_DR_FAULT_REPORT`, one JSON object
per line, which `benchmarks/faults.py` sums up for RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

SCALE_VARIABLE = "ODOO_DR_FAULTS"
REPORT_VARIABLE = "ODOO_DR_FAULT_REPORT"
SEED_VARIABLE = "ODOO_DR_FAULT_SEED"


def full_scale() -> bool:
    """Return whether the suite runs in its full form."""
    return os.environ.get(SCALE_VARIABLE, "short") == "full"


def trials(short: int, full: int) -> int:
    """Return how many trials a test runs in the current form."""
    return full if full_scale() else short


try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "short",
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "full",
        max_examples=5000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile("full" if full_scale() else "short")
except ImportError:  # pragma: no cover - Hypothesis is in the test extra
    pass


@dataclass
class FaultRecord:
    """The figures of one fault test, written to the report when the test ends."""

    area: str
    name: str
    seed: int
    trials: int = 0
    faults: int = 0
    inputs: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    def as_line(self, seconds: float, outcome: str) -> str:
        return json.dumps(
            {
                "area": self.area,
                "name": self.name,
                "seed": self.seed,
                "form": "full" if full_scale() else "short",
                "trials": self.trials,
                "faults": self.faults,
                "inputs": self.inputs,
                "lost": self.lost,
                "notes": self.notes,
                "seconds": round(seconds, 1),
                "outcome": outcome,
            },
            sort_keys=True,
        )


@pytest.fixture
def fault_seed() -> int:
    """Return the seed of this test's random choices (ODOO_DR_FAULT_SEED fixes it).

    Tests print it in their failure messages so that a failing trial can be rerun.
    """
    fixed = os.environ.get(SEED_VARIABLE)
    return int(fixed) if fixed else random.SystemRandom().randrange(2**32)


@pytest.fixture
def fault_random(fault_seed: int) -> random.Random:
    return random.Random(fault_seed)


@pytest.fixture
def fault_record(
    request: pytest.FixtureRequest, fault_seed: int
) -> Iterator[FaultRecord]:
    """Yield the record a test fills in; append it to the report when it ends.

    The area is the test file's name without `test_`, the name the test's.
    """
    area = request.path.stem.removeprefix("test_")
    record = FaultRecord(area=area, name=request.node.name, seed=fault_seed)
    started = time.monotonic()
    yield record
    report = os.environ.get(REPORT_VARIABLE)
    if not report:
        return
    failed = getattr(request.node, "fault_failed", False)
    line = record.as_line(time.monotonic() - started, "failed" if failed else "passed")
    # One short write in append mode: lines of parallel workers do not interleave.
    with open(report, "a", encoding="utf-8") as stream:
        stream.write(line + "\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        item.fault_failed = True  # type: ignore[attr-defined]
    return report
