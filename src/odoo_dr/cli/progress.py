"""The Rich progress bar on stderr that shows what `odoo_dr.progress` reports.

The bar appears only when stderr is a terminal. It stays away under cron, CI or a
pipe, with `--quiet`, and with ODOO_DR_PROGRESS=0. While it is shown, log lines and
messages on stderr are printed above it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from odoo_dr import progress
from odoo_dr.cli.output import errors

PROGRESS_VARIABLE = "ODOO_DR_PROGRESS"


def progress_enabled() -> bool:
    """Return whether a bar may be shown: stderr is a terminal, no -q, not 0."""
    if os.environ.get(PROGRESS_VARIABLE, "").strip() in ("0", "false", "no", "off"):
        return False
    if not errors.is_terminal:
        return False
    # -q (before or after the command name) raises the level to WARNING.
    return logging.getLogger("odoo_dr").getEffectiveLevel() < logging.WARNING


class AmountColumn(ProgressColumn):
    """The amount done: bytes as Rich's download column prints them, else a count."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "bytes")
        if unit == "bytes":
            return DownloadColumn().render(task)
        done = f"{int(task.completed):,}"
        if task.total is None:
            return Text(f"{done} {unit}")
        return Text(f"{done}/{int(task.total):,} {unit}")


class RichReporter:
    """Shows each tracked task as a line of one Rich progress display.

    The display starts with the first task and stops when the last one ends, so
    a command that tracks nothing prints nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._display: Progress | None = None
        self._active = 0
        self._saved_streams: list[tuple[logging.StreamHandler, object]] = []

    def start(self, label: str, total: int | None, unit: progress.Unit) -> object:
        with self._lock:
            if not progress_enabled():
                return None
            if self._display is None:
                self._display = Progress(
                    SpinnerColumn(),
                    # Labels contain tenant and database names, which are text,
                    # not Rich markup: "[/]" in a name must not raise.
                    TextColumn("{task.description}", markup=False),
                    BarColumn(),
                    AmountColumn(),
                    TimeElapsedColumn(),
                    console=errors,
                    transient=True,
                    # stdout keeps its own stream when it is a pipe or a file:
                    # results must never move to stderr.
                    redirect_stdout=sys.stdout.isatty(),
                    redirect_stderr=True,
                )
                self._display.start()
                self._route_logging()
            self._active += 1
            return self._display.add_task(label, total=total, unit=unit)

    def advance(self, task: object, amount: int) -> None:
        display = self._display
        if task is None or display is None:
            return
        display.advance(task, amount)  # type: ignore[arg-type]

    def stop(self, task: object) -> None:
        if task is None:
            return
        with self._lock:
            if self._display is None:
                return
            self._display.remove_task(task)  # type: ignore[arg-type]
            self._active -= 1
            if self._active == 0:
                self._restore_logging()
                self._display.stop()
                self._display = None

    def _route_logging(self) -> None:
        """Point the log handlers at the display's stderr, so lines print above."""
        for handler in logging.getLogger("odoo_dr").handlers:
            if isinstance(handler, logging.StreamHandler):
                previous = handler.setStream(sys.stderr)
                self._saved_streams.append((handler, previous))

    def _restore_logging(self) -> None:
        for handler, stream in self._saved_streams:
            handler.setStream(stream)
        self._saved_streams.clear()


def install() -> None:
    """Install the Rich reporter for this process."""
    progress.set_reporter(RichReporter())
