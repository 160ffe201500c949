"""Backup mechanisms found in the evidence, and what each protects.

Several mechanisms can protect the same thing (pgBackRest, WAL-G or CloudNativePG's
Barman for the WAL; a pg_dump CronJob or odoo-dr for logical backups; Velero or K8up
for volumes). Rules accept any of them and never flag a part that another one covers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from odoo_dr.review.evidence.live import LiveEvidence
from odoo_dr.review.evidence.manifests import ManifestSet, Workload
from odoo_dr.review.yamlio import Location

# What a mechanism can protect.
DATABASE = "database"
WAL = "wal"
FILESTORE = "filestore"
VOLUMES = "volumes"
REDIS = "redis"
MANIFESTS = "manifests"

# Mechanisms that copy the whole PostgreSQL cluster, so every database on the server,
# including one created after the mechanism was set up.
CLUSTER_WIDE_KINDS = (
    "pgbackrest",
    "wal-g",
    "pg_basebackup",
    "pg_dumpall",
    "cloudnative-pg",
)
# Mechanisms that take a physical copy that WAL can be replayed on (a base backup).
BASE_BACKUP_KINDS = ("pgbackrest", "wal-g", "pg_basebackup", "cloudnative-pg")
# Logical dumps: one database at one moment, no point-in-time recovery.
DUMP_KINDS = ("pg_dump", "pg_dumpall", "click-odoo-backupdb")


@dataclass
class Mechanism:
    kind: str
    covers: set[str]
    location: Location | None = None
    schedule: str | None = None
    detail: str = ""
    offsite: bool | None = None
    encrypted: bool | None = None
    databases: set[str] = field(default_factory=set)
    # The PostgreSQL role a backup job connects as, when its manifest names it.
    role: str | None = None
    # The job reads its connection settings from odoo.conf, so it uses Odoo's role.
    uses_odoo_conf: bool = False
    workload: Workload | None = None

    @property
    def label(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"{self.kind}{where}"

    @property
    def name(self) -> str:
        """The workload or object name, for matching alert expressions."""
        if self.workload is not None:
            return self.workload.name
        return self.detail.rsplit("/", 1)[-1]

    def is_kind(self, kinds: tuple[str, ...]) -> bool:
        return self.kind.split()[0] in kinds

    @property
    def cluster_wide(self) -> bool:
        return DATABASE in self.covers and self.is_kind(CLUSTER_WIDE_KINDS)

    @property
    def base_backup(self) -> bool:
        return DATABASE in self.covers and self.is_kind(BASE_BACKUP_KINDS)

    @property
    def interval(self) -> int | None:
        """Seconds between two runs at most, from the cron schedule; None without
        one or when the schedule cannot be read."""
        return schedule_interval(self.schedule) if self.schedule else None

    def protects(self, database: str) -> bool:
        """Whether this mechanism's copies contain `database`."""
        return not self.databases or database in self.databases


def kinds(mechanisms: list[Mechanism]) -> str:
    """Return the distinct kinds of `mechanisms`, in order, for messages."""
    return ", ".join(dict.fromkeys(item.kind for item in mechanisms))


# -- cron schedules (the five-field syntax of Kubernetes CronJobs and crontab)

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


# -- mechanisms in manifests

_COMMANDS = (
    (re.compile(r"\bodoo-dr\s+backup\b"), "odoo-dr", {DATABASE, FILESTORE}),
    (re.compile(r"\bpgbackrest\b.*\bbackup\b"), "pgbackrest", {DATABASE, WAL}),
    (re.compile(r"\bwal-g\s+backup-push\b"), "wal-g", {DATABASE, WAL}),
    (
        re.compile(r"\bclick-odoo-backupdb\b"),
        "click-odoo-backupdb",
        {DATABASE, FILESTORE},
    ),
    (re.compile(r"\bpg_dumpall\b"), "pg_dumpall", {DATABASE}),
    (re.compile(r"\bpg_dump\b"), "pg_dump", {DATABASE}),
    (re.compile(r"\bpg_basebackup\b"), "pg_basebackup", {DATABASE}),
    (
        re.compile(
            r"\b(restic|rclone|rsync|borg)\b.*(filestore|/var/lib/odoo|data_dir)"
        ),
        "file copy",
        {FILESTORE},
    ),
    (
        re.compile(r"\bredis-cli\b.*(--rdb\b|\bbgsave\b)", re.IGNORECASE),
        "redis rdb copy",
        {REDIS},
    ),
)
_DATABASE_OPTION = re.compile(r"(?:\s-d|--dbname[= ])\s*([\w.-]+)")
_ODOO_DR_DATABASE = re.compile(r"\bodoo-dr\s+backup\s+([\w.-]+)")
_ROLE_OPTIONS = (
    re.compile(r"(?:\s-U\s*|--username[= ])([\w.-]+)"),
    re.compile(r"\buser=([\w.-]+)"),
    re.compile(r"postgres(?:ql)?://([\w.-]+)[:@]"),
)


def _job_role(job: Workload, text: str) -> str | None:
    """Return the PostgreSQL role a job's manifest names (PGUSER, -U, user=)."""
    for container in job.containers:
        if container.env.get("PGUSER"):
            return container.env["PGUSER"]
    for pattern in _ROLE_OPTIONS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


def _from_jobs(jobs: list[Workload]) -> list[Mechanism]:
    found = []
    for job in jobs:
        text = " " + " ".join(
            [container.command_text for container in job.containers]
            + [" ".join(container.env.values()) for container in job.containers]
        )
        for pattern, kind, covers in _COMMANDS:
            if pattern.search(text):
                databases = set(_DATABASE_OPTION.findall(text))
                if kind == "odoo-dr":
                    databases |= set(_ODOO_DR_DATABASE.findall(text))
                found.append(
                    Mechanism(
                        kind=f"{kind} CronJob" if job.kind == "CronJob" else kind,
                        covers=set(covers),
                        location=job.location,
                        schedule=job.schedule,
                        detail=job.ref,
                        databases=databases,
                        role=_job_role(job, text),
                        uses_odoo_conf="--odoo-config" in text,
                        workload=job,
                    )
                )
                break
    return found


_ARCHIVE_SETTING = re.compile(r"archive_command\s*=\s*['\"]?([^'\"\n]+)")


def _archiving_in_manifests(manifests: ManifestSet) -> list[Mechanism]:
    """Find WAL archiving configured in a PostgreSQL container's command line (as
    `-c archive_command=...`) or in a ConfigMap holding postgresql.conf."""
    found = []
    for workload in manifests.workloads():
        if not workload.is_postgres:
            continue
        text = " ".join(container.command_text for container in workload.containers)
        match = _ARCHIVE_SETTING.search(text)
        if match and re.search(r"archive_mode\s*=\s*['\"]?(on|always)", text):
            found.append(
                Mechanism(
                    _archiving_kind(match.group(1)),
                    {WAL},
                    workload.location,
                    detail=workload.ref,
                    workload=workload,
                )
            )
    for config in manifests.of_kind("ConfigMap"):
        for key, value in (config.get("data") or {}).items():
            text = str(value)
            match = _ARCHIVE_SETTING.search(text)
            if match and re.search(r"^\s*archive_mode\s*=\s*'?(on|always)", text, re.M):
                found.append(
                    Mechanism(
                        _archiving_kind(match.group(1)),
                        {WAL},
                        config.at("data", key),
                        detail=config.ref,
                    )
                )
    return found


def _archiving_kind(command: str) -> str:
    for tool in ("pgbackrest", "wal-g", "barman"):
        if tool in command:
            return f"{tool} wal archiving"
    return "wal archiving"


def find_mechanisms(manifests: ManifestSet, live: LiveEvidence) -> list[Mechanism]:
    mechanisms = _from_jobs(manifests.cronjobs())
    for cluster in manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        store = cluster.get("spec", "backup", "barmanObjectStore")
        if store:
            mechanisms.append(
                Mechanism(
                    "cloudnative-pg barman",
                    {DATABASE, WAL},
                    cluster.at("spec", "backup", "barmanObjectStore"),
                    detail=cluster.ref,
                    offsite=True,
                    encrypted=bool(store.get("s3Credentials") or store.get("data")),
                )
            )
    for backup in manifests.of_kind("ScheduledBackup", group="postgresql.cnpg.io"):
        mechanisms.append(
            Mechanism(
                "cloudnative-pg ScheduledBackup",
                {DATABASE},
                backup.location,
                schedule=backup.get("spec", "schedule"),
                detail=backup.ref,
            )
        )
    for schedule in manifests.of_kind("Schedule", group="velero.io"):
        mechanisms.append(
            Mechanism(
                "velero",
                {VOLUMES, MANIFESTS},
                schedule.location,
                schedule=schedule.get("spec", "schedule"),
                detail=schedule.ref,
            )
        )
    for schedule in manifests.of_kind("Schedule", group="k8up.io"):
        mechanisms.append(
            Mechanism(
                "k8up",
                {VOLUMES},
                schedule.location,
                schedule=schedule.get("spec", "backup", "schedule")
                or schedule.get("spec", "schedule"),
                detail=schedule.ref,
            )
        )
    mechanisms += _archiving_in_manifests(manifests)
    if live.postgres is not None and live.postgres.archiving:
        command = live.postgres.settings.get("archive_command", "")
        library = live.postgres.settings.get("archive_library", "")
        mechanisms.append(
            Mechanism(
                _archiving_kind(command or library),
                {WAL},
                detail=command or library,
            )
        )
    if live.repository is not None and live.repository.snapshots:
        mechanisms.append(
            Mechanism(
                "odoo-dr repository",
                {DATABASE, FILESTORE},
                detail=live.repository.location,
                databases={item.database.name for item in live.repository.snapshots}
                | {item.tenant for item in live.repository.snapshots},
            )
        )
    return mechanisms
