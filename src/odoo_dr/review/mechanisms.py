"""Backup mechanisms found in the evidence, and what each protects.

Several mechanisms can protect the same thing (pgBackRest, WAL-G or CloudNativePG's
Barman for the WAL; a pg_dump CronJob or odoo-dr for logical backups; Velero or K8up
for volumes). Rules accept any of them and never flag a part that another one covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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

    @property
    def label(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"{self.kind}{where}"


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
)


def _from_jobs(jobs: list[Workload]) -> list[Mechanism]:
    found = []
    for job in jobs:
        text = " ".join(
            [container.command_text for container in job.containers]
            + [" ".join(container.env.values()) for container in job.containers]
        )
        for pattern, kind, covers in _COMMANDS:
            if pattern.search(text):
                databases = set(re.findall(r"(?:-d|--dbname[= ])\s*([\w.-]+)", text))
                found.append(
                    Mechanism(
                        kind=f"{kind} CronJob" if job.kind == "CronJob" else kind,
                        covers=set(covers),
                        location=job.location,
                        schedule=job.schedule,
                        detail=job.ref,
                        databases=databases,
                    )
                )
                break
    return found


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
    if live.postgres is not None:
        command = live.postgres.settings.get("archive_command", "")
        library = live.postgres.settings.get("archive_library", "")
        if live.postgres.settings.get("archive_mode") in {"on", "always"} and (
            command not in {"", "(disabled)"} or library
        ):
            kind = "wal archiving"
            for tool in ("pgbackrest", "wal-g", "barman"):
                if tool in command or tool in library:
                    kind = f"{tool} wal archiving"
            mechanisms.append(Mechanism(kind, {WAL}, detail=command or library))
    if live.repository is not None and live.repository.snapshots:
        mechanisms.append(
            Mechanism(
                "odoo-dr repository",
                {DATABASE, FILESTORE},
                detail=live.repository.location,
                databases={item.database.name for item in live.repository.snapshots},
            )
        )
    return mechanisms
