"""Results on stdout, diagnostics on stderr."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from rich.console import Console

# Output to a pipe or file is not wrapped at 80 columns, so tables stay one row a line.
# Names and messages are printed as they are: Rich markup such as "[red]" in a
# database name must neither be interpreted nor crash the output.
console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
if not console.is_terminal:
    console.width = 200
errors = Console(
    stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False
)


def print_json(value: object) -> None:
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    console.out(text)


def size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    delta = timedelta(seconds=round(seconds))
    days, rest = delta.days, delta.seconds
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest % 60}s"


def age(moment: datetime) -> str:
    return duration((datetime.now(UTC) - moment).total_seconds())


def local_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
