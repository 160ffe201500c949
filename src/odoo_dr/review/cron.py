"""Cron schedules: the five-field syntax of Kubernetes CronJobs and crontab, the
`@daily`-style macros, and the longest gap between two runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    3: ["jan", "feb", "mar", "apr", "may", "jun"]
    + ["jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
# Runs are listed over four years from this Monday, which covers a leap day and
# every weekday of every date, and stop after this many runs: a schedule that runs
# more often repeats its pattern well within them.
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_SCAN_DAYS = 4 * 366
_MAX_RUNS = 20000


class CronError(ValueError):
    """A schedule that is not valid five-field cron syntax."""


def _cron_value(text: str, field_index: int) -> int:
    names = _NAMES.get(field_index)
    if names and text.lower()[:3] in names and not text.isdigit():
        offset = 1 if field_index == 3 else 0
        return names.index(text.lower()[:3]) + offset
    if not text.isdigit():
        raise CronError(f"invalid value {text!r}")
    return int(text)


def _cron_field(text: str, field_index: int) -> tuple[set[int], bool]:
    """Return the values a field allows, and whether it is unrestricted (`*`)."""
    low, high = _RANGES[field_index]
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if step_text and not step_text.isdigit() or step < 1:
            raise CronError(f"invalid step in {part!r}")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _cron_value(first, field_index), _cron_value(last, field_index)
        else:
            start = _cron_value(base, field_index)
            end = high if step_text else start
        if not low <= start <= high or not low <= end <= high or start > end:
            raise CronError(f"value out of range in {part!r}")
        values.update(range(start, end + 1, step))
    if field_index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return values, text in ("*", "?")


@cache
def _parse_cron(schedule: str) -> tuple[tuple[set[int], bool], ...]:
    text = _MACROS.get(schedule.strip().lower(), schedule.strip())
    fields = text.split()
    if len(fields) == 6:
        # A leading CRON_TZ=... or, in CloudNativePG's six-field syntax, seconds.
        fields = fields[1:]
    if len(fields) != 5:
        raise CronError(f"expected five fields in {schedule!r}")
    return tuple(_cron_field(item, index) for index, item in enumerate(fields))


def cron_runs(schedule: str, start: datetime = _EPOCH) -> Iterator[datetime]:
    """Yield the run times of `schedule` from `start` (UTC) in order, for at most
    four years and `_MAX_RUNS` runs. Raise CronError when it is invalid."""
    (minutes, _), (hours, _), (days, any_day), (months, _), (weekdays, any_weekday) = (
        _parse_cron(schedule)
    )
    count = 0
    first_day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for offset in range(_SCAN_DAYS):
        day = first_day + timedelta(days=offset)
        if day.month not in months:
            continue
        day_matches = day.day in days
        weekday_matches = (day.isoweekday() % 7) in weekdays
        # cron's rule: when both day fields are restricted, either one may match.
        if any_day or any_weekday:
            runs_today = day_matches and weekday_matches
        else:
            runs_today = day_matches or weekday_matches
        if not runs_today:
            continue
        for hour in sorted(hours):
            for minute in sorted(minutes):
                moment = day.replace(hour=hour, minute=minute)
                if moment < start:
                    continue
                yield moment
                count += 1
                if count >= _MAX_RUNS:
                    return


@cache
def schedule_interval(schedule: str) -> int | None:
    """Return the longest gap in seconds between two runs of a cron `schedule`, the
    worst-case age of its latest copy; None if it is invalid or never runs twice."""
    # A randomized schedule such as K8up's `@daily-random` is read as its period.
    if schedule.strip().endswith("-random"):
        schedule = schedule.strip().removesuffix("-random")
    try:
        runs = list(cron_runs(schedule))
    except CronError:
        return None
    if len(runs) < 2:
        return None
    return max(
        int((later - earlier).total_seconds())
        for earlier, later in zip(runs, runs[1:], strict=False)
    )
