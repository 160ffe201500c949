"""Backup mechanisms found in the evidence, and what each protects.

Several mechanisms can protect the same thing (pgBackRest, WAL-G or CloudNativePG's
Barman for the WAL; a pg_dump CronJob or odoo-dr for logical backups; Velero or K8up
for volumes). Rules accept any of them and never flag a part that another one covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from odoo_dr.review.archiving import archiving_tool, declared_archiving
from odoo_dr.review.cron import CronError, cron_runs, schedule_interval
from odoo_dr.review.evidence import classify
from odoo_dr.review.evidence.classify import BACKUP_PROGRAMS
from odoo_dr.review.evidence.live import LiveEvidence
from odoo_dr.review.evidence.manifests import ManifestSet, Workload
from odoo_dr.review.evidence.odoo import odoo_servers
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.yamlio import Location

__all__ = ["CronError", "cron_runs", "schedule_interval"]

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
    # Seconds between two runs of a loop that sleeps (`while true; ... sleep N`),
    # for a mechanism without a cron schedule.
    sleep_interval: int | None = None
    # Names that alert rules may select it by: its workload or object, the cluster
    # it backs up, a pgBackRest stanza. Its namespace, when it has one.
    names: set[str] = field(default_factory=set)
    namespace: str | None = None
    # WAL archiving: the archive_timeout the configuration sets (seconds), and
    # where; whether the archiving is declared in the manifests, not measured live.
    archive_timeout: int | None = None
    archive_timeout_location: Location | None = None
    archive_timeout_default: bool = False
    declared: bool = True

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

    @property
    def alert_names(self) -> set[str]:
        """Every name an alert rule may select this mechanism by."""
        return {self.name, *self.names} - {""}

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
        """Seconds between two runs at most, from the cron schedule or the sleep of
        a loop; None without either, or when the schedule cannot be read."""
        if self.schedule:
            return schedule_interval(self.schedule)
        return self.sleep_interval

    def protects(self, database: str) -> bool:
        """Return whether this mechanism's copies contain `database`."""
        return not self.databases or database in self.databases


def kinds(mechanisms: list[Mechanism]) -> str:
    """Return the distinct kinds of `mechanisms`, in order, for messages."""
    return ", ".join(dict.fromkeys(item.kind for item in mechanisms))


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
_ODOO_DR_DATABASE = re.compile(
    r"\bodoo-dr\s+(backup|drill)\s+(['\"]?\$*\{?[\w.-]+\}?['\"]?)"
)
_ROLE_OPTIONS = (
    re.compile(r"(?:\s-U\s*|--username[= ])([\w.-]+)"),
    re.compile(r"\buser=([\w.-]+)"),
    re.compile(r"postgres(?:ql)?://([\w.-]+)[:@]"),
)
_STANZA = re.compile(r"--stanza[= ]([\w.-]+)")
# A shell loop over literal words: `for db in acme globex; do`.
_FOR_LOOP = re.compile(r"\bfor\s+(\w+)\s+in\s+([^;\n]+?)\s*;?\s*do\b")
_SLEEP = re.compile(r"\bsleep\s+(\$\(\(.*?\)\)|[^\s;&|)]+)")
_SLEEP_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CRON_LINE = re.compile(
    r"(?:^|[\s'\"])(@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|(?:[\d*/,-]+\s+){4}[\d*/,A-Za-z-]+)\s+(?P<command>[^\n'\"]+)"
)
# Images that run scheduled database dumps, with the variable holding their cron
# schedule and its default, and the one listing their databases.
_DUMP_IMAGES = {
    "postgres-backup-local": ("SCHEDULE", "@daily", "POSTGRES_DB"),
}
_FILE_COPY = re.compile(r"\b(restic|rclone|rsync|borg)\b")


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


def _command_text(job: Workload) -> str:
    text = " " + " ".join(
        [container.command_text for container in job.containers]
        + [" ".join(container.env.values()) for container in job.containers]
    )
    # docker-compose writes a literal `$` as `$$`.
    return text.replace("$$", "$") if job.kind == "ComposeService" else text


def loop_values(text: str) -> dict[str, list[str]]:
    """Return the words each `for VAR in WORDS; do` loop of a shell script runs
    over, by variable name."""
    return {
        match.group(1): match.group(2).split() for match in _FOR_LOOP.finditer(text)
    }


def odoo_dr_databases(text: str, commands: tuple[str, ...] = ("backup",)) -> set[str]:
    """Return the databases that `odoo-dr backup NAME` (or another of `commands`)
    names in a command line or script, with a loop variable (`"$db"`) replaced by
    the words its loop runs over."""
    loops = loop_values(text)
    names = set()
    for command, raw in _ODOO_DR_DATABASE.findall(text):
        if command not in commands:
            continue
        word = raw.strip("'\"")
        if word.startswith("-"):
            continue
        if word.startswith("$"):
            names.update(loops.get(word.strip("${}"), []))
        else:
            names.add(word)
    return names


def sleep_seconds(text: str) -> int | None:
    """Return the seconds a loop's `sleep` waits: `sleep 3600`, `sleep 1h`, or the
    period of `sleep $(( (86400 + ... - $(date +%s) % 86400) % 86400 ))`, which
    waits for a time of day; None when it cannot be read."""
    found = []
    for match in _SLEEP.finditer(text):
        argument = match.group(1).strip("'\"")
        literal = re.fullmatch(r"(\d+)([smhd]?)", argument)
        if literal:
            found.append(int(literal.group(1)) * _SLEEP_UNITS[literal.group(2)])
            continue
        modulus = re.findall(r"%\s*(\d+)", argument)
        if modulus:
            found.append(max(int(value) for value in modulus))
    # The maximum sleep is the best bound on the time between two runs.
    return max(found) if found else None


def _schedule_in_text(text: str) -> str | None:
    """Return the cron schedule of a crontab line in the text whose command runs a
    backup program, such as `0 3 * * * pg_dump ...` given to crond."""
    for match in _CRON_LINE.finditer(text):
        if BACKUP_PROGRAMS.search(match.group("command")) is None:
            continue
        schedule = " ".join(match.group(1).split())
        if schedule_interval(schedule) is not None:
            return schedule
    return None


def _mechanism(
    job: Workload,
    kind: str,
    covers: set[str],
    text: str,
    schedule: str | None,
    sleep: int | None = None,
) -> Mechanism:
    databases = set(_DATABASE_OPTION.findall(text))
    if kind.startswith("odoo-dr"):
        databases |= odoo_dr_databases(text)
    return Mechanism(
        kind=kind,
        covers=set(covers),
        location=job.location,
        schedule=schedule,
        detail=job.ref,
        databases=databases,
        role=_job_role(job, text),
        uses_odoo_conf="--odoo-config" in text,
        workload=job,
        sleep_interval=sleep,
        names={job.name, *_STANZA.findall(text)},
        namespace=job.namespace,
    )


def _kind_of(
    text: str, workload: Workload, filestore: set[str]
) -> tuple[str, set[str]] | None:
    """Return the kind of backup a command line runs and what it covers: a known
    backup program, or a file copy (restic, rclone, rsync, borg) of the filestore,
    named by its path or by the volume Odoo keeps it on."""
    for pattern, kind, covers in _COMMANDS:
        if pattern.search(text):
            return kind, covers
    if _FILE_COPY.search(text) and any(
        volume.claim in filestore for volume in workload.volumes.values()
    ):
        return "file copy", {FILESTORE}
    return None


def _from_jobs(jobs: list[Workload], filestore: set[str]) -> list[Mechanism]:
    found = []
    for job in jobs:
        text = _command_text(job)
        known = _kind_of(text, job, filestore)
        if known is not None:
            kind, covers = known
            name = f"{kind} CronJob" if job.kind == "CronJob" else kind
            found.append(_mechanism(job, name, covers, text, job.schedule))
    return found


def _dump_image(service: Workload) -> Mechanism | None:
    """Return the backup of a service whose image dumps databases on a schedule
    of its own, or None."""
    for container in service.containers:
        known = _DUMP_IMAGES.get(classify.image_name(container.image))
        if known is None:
            continue
        variable, default, databases = known
        mechanism = _mechanism(
            service,
            f"pg_dump {classify.image_name(container.image)}",
            {DATABASE},
            _command_text(service),
            container.env.get(variable) or default,
        )
        mechanism.databases = {
            name.strip()
            for name in container.env.get(databases, "").split(",")
            if name.strip() and "$" not in name
        }
        return mechanism
    return None


def _from_services(workloads: list[Workload], filestore: set[str]) -> list[Mechanism]:
    """Find backups that long-running services take: a loop that runs a backup
    program and sleeps, a crontab line given to cron in the container, or an image
    that dumps databases on a schedule. A backup program run once at start is no
    scheduled backup and is left out."""
    found = []
    for service in workloads:
        if service.kind in ("CronJob", "Job") or service.operator_kind is not None:
            continue
        image = _dump_image(service)
        if image is not None:
            found.append(image)
            continue
        text = _command_text(service)
        known = _kind_of(text, service, filestore)
        if known is None:
            continue
        schedule = _schedule_in_text(text)
        looped = re.search(r"\b(while|until|for)\b.*\bsleep\b", text, re.DOTALL)
        if schedule is None and looped is None:
            continue
        sleep = sleep_seconds(text) if schedule is None else None
        kind, covers = known
        how = "cron" if schedule is not None else "loop"
        found.append(
            _mechanism(service, f"{kind} {how}", covers, text, schedule, sleep)
        )
    return found


def _filestore_sources(manifests: ManifestSet) -> set[str]:
    """Return the claims and compose volume sources that Odoo servers keep their
    data_dir (and so their filestore) on."""
    sources = set()
    for server in odoo_servers(manifests):
        if server.workload is None or server.container is None:
            continue
        data_dir = server.data_dir.rstrip("/") + "/"
        for name, target in server.container.mounts:
            volume = server.workload.volumes.get(name)
            inside = data_dir.startswith(target.rstrip("/") + "/")
            if volume is not None and volume.claim and inside:
                sources.add(volume.claim)
    return sources


def _from_archiving(manifests: ManifestSet) -> list[Mechanism]:
    found = []
    for item in declared_archiving(manifests):
        covers = {WAL, DATABASE} if item.base_backups else {WAL}
        found.append(
            Mechanism(
                item.tool if item.tool.startswith("cloudnative-pg") else item.kind,
                covers,
                item.location,
                detail=item.detail,
                offsite=item.offsite,
                encrypted=item.encrypted,
                workload=item.workload,
                names=item.names,
                namespace=item.namespace,
                archive_timeout=item.archive_timeout,
                archive_timeout_location=item.timeout_location,
                archive_timeout_default=item.timeout_default,
            )
        )
    return found


def _scheduled_backups(manifests: ManifestSet) -> list[Mechanism]:
    """CloudNativePG ScheduledBackups and Crunchy PGO backup schedules."""
    found = []
    for backup in manifests.of_kind("ScheduledBackup", group="postgresql.cnpg.io"):
        cluster = backup.get("spec", "cluster", "name")
        schedule = backup.get("spec", "schedule")
        found.append(
            Mechanism(
                "cloudnative-pg ScheduledBackup",
                {DATABASE},
                backup.location,
                schedule=schedule if isinstance(schedule, str) else None,
                detail=backup.ref,
                names={backup.name, str(cluster)} if cluster else {backup.name},
                namespace=backup.namespace,
            )
        )
    for cluster in manifests.of_kind(
        "PostgresCluster", group="postgres-operator.crunchydata.com"
    ):
        repos = as_list(cluster.get("spec", "backups", "pgbackrest", "repos"))
        for index, repo in enumerate(repos):
            schedules = as_dict(as_dict(repo).get("schedules"))
            for backup_type, schedule in schedules.items():
                found.append(
                    Mechanism(
                        f"pgbackrest {backup_type} schedule",
                        {DATABASE},
                        cluster.at(
                            "spec", "backups", "pgbackrest", "repos", index, "schedules"
                        ),
                        schedule=str(schedule),
                        detail=f"{cluster.ref}/{as_dict(repo).get('name', index)}",
                        names={cluster.name},
                        namespace=cluster.namespace,
                    )
                )
    return found


def _merge_archiving(mechanisms: list[Mechanism]) -> list[Mechanism]:
    """Keep one WAL archiving mechanism per object: the first found."""
    seen: set[str] = set()
    kept = []
    for item in mechanisms:
        if item.covers == {WAL}:
            if item.detail in seen:
                continue
            seen.add(item.detail)
        kept.append(item)
    return kept


def find_mechanisms(manifests: ManifestSet, live: LiveEvidence) -> list[Mechanism]:
    filestore = _filestore_sources(manifests)
    mechanisms = _from_jobs(manifests.cronjobs(), filestore)
    mechanisms += _from_services(manifests.workloads(), filestore)
    mechanisms += _from_archiving(manifests)
    mechanisms += _scheduled_backups(manifests)
    for schedule in manifests.of_kind("Schedule", group="velero.io"):
        mechanisms.append(
            Mechanism(
                "velero",
                {VOLUMES, MANIFESTS},
                schedule.location,
                schedule=schedule.get("spec", "schedule"),
                detail=schedule.ref,
                names={schedule.name},
                namespace=schedule.namespace,
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
                names={schedule.name},
                namespace=schedule.namespace,
            )
        )
    if live.postgres is not None and live.postgres.archiving:
        command = live.postgres.settings.get("archive_command", "")
        library = live.postgres.settings.get("archive_library", "")
        tool = archiving_tool(command or library)
        mechanisms.append(
            Mechanism(
                f"{tool} wal archiving" if tool else "wal archiving",
                {WAL},
                detail=command or library,
                declared=False,
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
                declared=False,
            )
        )
    return _merge_archiving(mechanisms)
