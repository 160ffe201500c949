"""WAL segments: their names, the continuity of an archive, commit times inside one.

A segment name is three 8-digit hex numbers: timeline, then the high and low part of
the segment's number. How many segments make one "log" (the middle number) depends
on the cluster's wal_segment_size: 256 for the usual 16 MiB.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
# pg_waldump prints a commit as "desc: COMMIT 2026-12-05 10:42:00.123456 UTC; ...".
_XACT_TIME = re.compile(
    r"desc: (?:COMMIT|ABORT)(?:_PREPARED)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) "
    r"([A-Z]+|[+-]\d\d(?::?\d\d)?)"
)


@dataclass(frozen=True, order=True)
class Segment:
    number: int
    timeline: int

    def name(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
        per_log = segments_per_log(segment_size)
        return (
            f"{self.timeline:08X}{self.number // per_log:08X}"
            f"{self.number % per_log:08X}"
        )


def segments_per_log(segment_size: int) -> int:
    return 0x100000000 // segment_size


def is_segment_name(name: str) -> bool:
    return _NAME.match(name) is not None


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"not a WAL segment name: {name!r}")
    timeline, log_id, low = (int(part, 16) for part in match.groups())
    return Segment(log_id * segments_per_log(segment_size) + low, timeline)


def segment_of_lsn(lsn: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Return the number of the segment holding `lsn` ("16/B374D848")."""
    high, _, low = lsn.partition("/")
    return ((int(high, 16) << 32) + int(low, 16)) // segment_size


@dataclass(frozen=True)
class ChainCheck:
    """How far the archive continues from a starting segment."""

    start: Segment
    # The last segment of the unbroken chain from `start`.
    last: Segment | None
    # The first segment missing before the newest archived one, if any.
    first_missing: Segment | None

    @property
    def continuous(self) -> bool:
        return self.first_missing is None


def check_chain(start: Segment, archived: Iterable[Segment]) -> ChainCheck:
    """Follow the archive from `start` to its newest segment and find the first gap.

    A later timeline may take over at any number (after a promotion), never an
    earlier one: segment n of timeline 2 follows segment n-1 of timeline 1.
    """
    timelines: dict[int, set[int]] = {}
    newest = -1
    for segment in archived:
        timelines.setdefault(segment.number, set()).add(segment.timeline)
        newest = max(newest, segment.number)
    timeline = start.timeline
    last: Segment | None = None
    for number in range(start.number, newest + 1):
        present = sorted(tl for tl in timelines.get(number, ()) if tl >= timeline)
        if not present:
            return ChainCheck(start, last, Segment(number, timeline))
        # Stay on this timeline while it goes on; move up only when it stops.
        if timeline not in present:
            timeline = present[0]
        last = Segment(number, timeline)
    return ChainCheck(start, last, None)


def xact_times(pg_waldump: str, segment_file: Path) -> list[datetime]:
    """Return the commit and abort times recorded in one WAL segment file.

    pg_waldump stops with an error at the end of the records; what it printed
    before is still complete.
    """
    result = subprocess.run(
        [pg_waldump, str(segment_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "TZ": "UTC"},
    )
    times = []
    for match in _XACT_TIME.finditer(result.stdout):
        stamp, zone = match.groups()
        moment = datetime.fromisoformat(stamp)
        if zone == "UTC":
            moment = moment.replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(f"{stamp}{zone}").astimezone(UTC)
        times.append(moment)
    return times
