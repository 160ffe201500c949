"""Pack subsets for `verify --read-data-subset`: windows over the packs' ids.

A pack's position is the first 32 bits of its id (the SHA-256 of its bytes, so
positions spread evenly). `N/M` reads the N-th of M equal slices of the position
space, as restic's `check --read-data-subset n/t` does. A percentage (random in
restic) reads a window of
that width which moves by its own width every day: day D reads positions
`[D * width, (D + 1) * width)`, wrapping around. So consecutive days read
consecutive windows, and `ceil(100 / PERCENT)` days read every pack at least once:
20 days at 5%, 30 days at 3.4%. The day is the number of days since 1970-01-01 in
UTC, unless a seed (a day number or an ISO date) replaces it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction

from odoo_dr.errors import RejectedError

SPACE = 2**32
_EPOCH = date(1970, 1, 1)
_PERCENT = re.compile(r"^(?P<value>\d+(?:\.\d+)?)%?$")
_SLICE = re.compile(r"^(?P<n>\d+)/(?P<m>\d+)$")


@dataclass(frozen=True)
class Subset:
    """Positions `[start, start + width)` of the position space, wrapping around."""

    start: int
    width: int
    description: str

    def contains(self, pack_id: str) -> bool:
        return (position(pack_id) - self.start) % SPACE < self.width


def position(pack_id: str) -> int:
    return int(pack_id[:8], 16)


def day_number(seed: str | None) -> int:
    """Return the day a rolling subset is for: the seed, or today in UTC."""
    if seed is None:
        return (datetime.now(UTC).date() - _EPOCH).days
    if seed.isdigit():
        return int(seed)
    try:
        return (date.fromisoformat(seed) - _EPOCH).days
    except ValueError:
        raise RejectedError(
            f"invalid --subset-seed {seed!r}: not a day number or a date",
            hint="pass a whole number (such as 20426) or a date (such as 2026-12-04)",
        ) from None


def parse_subset(text: str, seed: str | None = None) -> Subset:
    """Return the subset that `--read-data-subset TEXT` reads on the seed's day."""
    text = text.strip()
    sliced = _SLICE.match(text)
    if sliced:
        n, m = int(sliced["n"]), int(sliced["m"])
        if not 1 <= n <= m:
            raise RejectedError(
                f"invalid --read-data-subset {text!r}: N/M needs 1 <= N <= M",
                hint="read the first of five slices with --read-data-subset 1/5",
            )
        start = (n - 1) * SPACE // m
        return Subset(start, n * SPACE // m - start, f"slice {n} of {m}")
    match = _PERCENT.match(text)
    percent = Fraction(match["value"]) if match else Fraction(0)
    if not 0 < percent <= 100:
        raise RejectedError(
            f"invalid --read-data-subset {text!r}: not a percentage above 0 and up "
            "to 100, nor N/M",
            hint="pass a percentage such as 5% (a rolling window that covers the "
            "repository in 20 days) or a slice such as 1/5",
        )
    width = math.ceil(percent * SPACE / 100)
    day = day_number(seed)
    days = math.ceil(Fraction(100) / percent)
    return Subset(
        (day * width) % SPACE,
        width,
        f"{float(percent):g}% for day {day} (every pack read within {days} days)",
    )
