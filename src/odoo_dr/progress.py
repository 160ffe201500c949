"""Progress of long operations, reported to whatever display the command line set.

The engine calls `track` around a loop and the returned function with each amount
done (bytes, files, snapshots). Without a reporter, which is the default and what
cron, CI and `--quiet` get, the calls do nothing. The command line installs a Rich
progress bar as the reporter (see `cli/progress.py`), so engine code stays free of
Rich.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

Unit = Literal["bytes", "files", "snapshots", "packs", "tasks"]
Advance = Callable[[int], None]


class Reporter(Protocol):
    """A display of progress; each method may be called from any thread."""

    def start(self, label: str, total: int | None, unit: Unit) -> object:
        """Begin showing a task; return a handle for `advance` and `stop`."""
        ...

    def advance(self, task: object, amount: int) -> None: ...

    def stop(self, task: object) -> None: ...


_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install `reporter` (None: report nothing); return the one it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


def _ignore(_amount: int) -> None:
    return None


@contextmanager
def track(label: str, total: int | None, unit: Unit = "bytes") -> Iterator[Advance]:
    """Report the progress of one task: yield a function taking the amount done
    since its last call. `total` is None when it is not known in advance; a task
    with a total of 0 is not shown."""
    reporter = _reporter
    if reporter is None or total == 0:
        yield _ignore
        return
    task = reporter.start(label, total, unit)

    def advance(amount: int) -> None:
        reporter.advance(task, amount)

    try:
        yield advance
    finally:
        reporter.stop(task)
