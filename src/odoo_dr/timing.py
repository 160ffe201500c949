"""Wall-clock timing of named steps, for RTO reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class StepTimer:
    """Records the seconds each named step took, in the order the steps ran."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        log.debug("step %s started", name)
        try:
            yield
        finally:
            self.steps[name] = round(time.monotonic() - started, 3)
            log.debug("step %s took %.1fs", name, self.steps[name])

    @property
    def total(self) -> float:
        return round(sum(self.steps.values()), 3)
