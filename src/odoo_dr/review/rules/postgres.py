"""PostgreSQL rules: WAL archiving, base backups, replicas and roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.inventory import Disruption, Tenant, format_duration
from odoo_dr.review.mechanisms import DATABASE, DUMP_KINDS, WAL, Mechanism, kinds
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule
from odoo_dr.review.rules.objectives import restore_objective
from odoo_dr.review.yamlio import Location

# NOTE: a week is a common upper bound between full backups, not a computed one:
# recovery replays every WAL segment written since the base backup, so the right
# bound depends on the WAL volume and the RTO.
BASE_BACKUP_MAX_AGE = 7 * 86400


def pitr_tenants(context: ReviewContext, view: EnvironmentView) -> list[Tenant]:
    return [t for t in view.environment.tenants if context.tier(t).needs_pitr]


def strictest_rpo(context: ReviewContext, tenants: list[Tenant]) -> int | None:
    values = [
        objective[1].rpo
        for tenant in tenants
        if (objective := restore_objective(context, tenant)) is not None
    ]
    return min(values) if values else None


def postgres_instances(view: EnvironmentView) -> tuple[int, str, Location | None]:
    """Count PostgreSQL instances: the live primary and its streaming replicas, else
    CloudNativePG's `instances`, else the replicas of PostgreSQL workloads."""
    live = view.live.postgres
    if live is not None and not live.in_recovery:
        streaming = [r for r in live.replicas if r.get("state") in ("streaming", None)]
        return 1 + len(streaming), "pg_stat_replication", None
    for cluster in view.manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        instances = cluster.get("spec", "instances", default=1)
        if isinstance(instances, int):
            return instances, cluster.ref, cluster.at("spec", "instances")
    if view.postgres:
        count = sum(item.replicas for item in view.postgres)
        first = view.postgres[0]
        return count, ", ".join(item.ref for item in view.postgres), first.location
    return 0, "no PostgreSQL in the evidence", None


def _instances(count: int) -> str:
    return f"{count} instance" if count == 1 else f"{count} instances"


def _wal_mechanisms(view: EnvironmentView) -> list[Mechanism]:
    return view.covering(WAL)


@rule(
    "PG-001",
    Area.POSTGRESQL,
    Severity.CRITICAL,
    "WAL archiving is on for tiers that need point-in-time recovery",
    "Without archived WAL a database can only go back to its last full backup, not "
    "to the minute before a bad import or a dropped table.",
    "Archive WAL continuously with pgBackRest, WAL-G or CloudNativePG's Barman, or "
    "set archive_mode = on with an archive_command that copies off the server.",
    snippet="archive_mode = on\n"
    "archive_command = 'pgbackrest --stanza=main archive-push %p'\n"
    "archive_timeout = 60",
)
def wal_archiving_on(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        tenants = pitr_tenants(context, view)
        if not tenants:
            continue
        live = view.live.postgres
        mechanisms = _wal_mechanisms(view)
        if live is not None:
            archived = int(live.archiver.get("archived_count") or 0)
            command = live.settings.get("archive_command") or live.settings.get(
                "archive_library", ""
            )
            if not live.archiving:
                passed = False
                message = (
                    f"archive_mode = {live.settings.get('archive_mode', 'unknown')}"
                    + (f", archive_command = {command!r}" if command else "")
                    + " on the live server"
                )
            elif archived == 0:
                passed = False
                message = f"archiving is on ({command}) but no WAL segment was archived"
            else:
                passed = True
                message = f"archiving with {command}: {archived} segments archived"
            evidence = (Evidence(message),)
        else:
            passed = bool(mechanisms)
            message = (
                "WAL archived by "
                + kinds(mechanisms)
                + " (from the manifests; not checked on a live server)"
                if mechanisms
                else "no WAL archiving in the evidence"
            )
            evidence = tuple(Evidence(m.label, m.location) for m in mechanisms)
        for tenant in tenants:
            yield Outcome(
                passed,
                message,
                environment=view.name,
                tenant=tenant.name,
                evidence=evidence,
            )


@rule(
    "PG-002",
    Area.POSTGRESQL,
    Severity.CRITICAL,
    "The WAL archiver is healthy and current",
    "A failing archive_command keeps WAL piling up on the server until the disk "
    "fills, while every minute since the last archived segment is lost in a restore.",
    "Read the server log for the archive_command's error and fix it (credentials, "
    "bucket, network); set archive_timeout below the RPO so quiet servers switch "
    "segments.",
)
def archiver_healthy(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        live = view.live.postgres
        if live is None or not live.archiving:
            continue
        archiver = live.archiver
        last_ok = archiver.get("last_archived_time")
        last_failed = archiver.get("last_failed_time")
        problems = []
        if last_failed is not None and (last_ok is None or last_failed > last_ok):
            problems.append(
                f"archiving {archiver.get('last_failed_wal')} failed at "
                f"{last_failed:%Y-%m-%d %H:%M:%S %Z}"
                + (
                    f", after the last success at {last_ok:%Y-%m-%d %H:%M:%S %Z}"
                    if last_ok
                    else ", and no segment was ever archived"
                )
                + f" ({archiver.get('failed_count')} failures)"
            )
        age = live.archive_age_seconds
        tenants = pitr_tenants(context, view) or view.environment.tenants
        rpo = strictest_rpo(context, tenants)
        if age is not None and rpo is not None and age > rpo:
            problems.append(
                f"last segment archived {format_duration(age)} ago, above the RPO of "
                f"{format_duration(rpo)}"
            )
        if not problems and last_ok is None:
            problems.append("no WAL segment archived yet")
        yield Outcome(
            not problems,
            "; ".join(problems)
            or f"last segment {archiver.get('last_archived_wal')} archived "
            f"{format_duration(age)} ago, no failure since",
            environment=view.name,
            resource="wal-archiver",
            evidence=(Evidence(f"pg_stat_archiver: {_archiver_text(archiver)}"),),
        )


def _archiver_text(archiver: dict) -> str:
    keys = ("archived_count", "last_archived_wal", "failed_count", "last_failed_wal")
    return ", ".join(f"{key}={archiver.get(key)}" for key in keys)


def _measured_base_backups(
    view: EnvironmentView,
) -> list[tuple[datetime, str, Location]]:
    """Return finished base backups that manifests or pgBackRest info files show."""
    found = []
    for backup in view.manifests.of_kind("Backup", group="postgresql.cnpg.io"):
        stopped = backup.get("status", "stoppedAt")
        if backup.get("status", "phase") == "completed" and stopped:
            when = _timestamp(stopped)
            if when is not None:
                found.append((when, backup.ref, backup.at("status", "stoppedAt")))
    for cluster in view.manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        last = _timestamp(cluster.get("status", "lastSuccessfulBackup"))
        if last is not None:
            found.append((last, cluster.ref, cluster.at("status")))
    for name in view.manifests.files:
        if name.endswith(".json"):
            found += _pgbackrest_info(Path(name))
    return found


def _timestamp(value: object) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _pgbackrest_info(path: Path) -> list[tuple[datetime, str, Location]]:
    """Read the output of `pgbackrest info --output=json` saved as a file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    found = []
    for stanza in data:
        if not isinstance(stanza, dict) or "backup" not in stanza:
            continue
        for backup in stanza.get("backup") or []:
            stop = (backup.get("timestamp") or {}).get("stop")
            if isinstance(stop, int):
                found.append(
                    (
                        datetime.fromtimestamp(stop, UTC),
                        f"pgbackrest {backup.get('type', '')} backup "
                        f"{backup.get('label')}",
                        Location(str(path)),
                    )
                )
    return found


@rule(
    "PG-003",
    Area.POSTGRESQL,
    Severity.HIGH,
    "Base backups are recent",
    "Point-in-time recovery replays every WAL segment written since the base "
    "backup, so an old or missing base backup makes recovery slow or impossible.",
    "Schedule base backups at least weekly (a pgBackRest or WAL-G CronJob, or a "
    "CloudNativePG ScheduledBackup), and check that they complete.",
    snippet="apiVersion: postgresql.cnpg.io/v1\nkind: ScheduledBackup\n"
    "metadata: {name: daily}\nspec:\n  schedule: '0 0 2 * * *'\n"
    "  cluster: {name: odoo-db}",
)
def base_backups_recent(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        if not _wal_mechanisms(view):
            continue
        limit = BASE_BACKUP_MAX_AGE
        measured = _measured_base_backups(view)
        base = {"environment": view.name, "resource": "base-backups"}
        if measured:
            when, source, location = max(measured, key=lambda item: item[0])
            age = (context.now - when).total_seconds()
            yield Outcome(
                age <= limit,
                f"latest base backup ({source}) finished {format_duration(age)} ago"
                + ("" if age <= limit else f", older than {format_duration(limit)}"),
                evidence=(Evidence(source, location),),
                **base,
            )
            continue
        scheduled = [m for m in view.mechanisms if m.base_backup]
        intervals = [(m.interval, m) for m in scheduled if m.interval is not None]
        if intervals:
            interval, mechanism = min(intervals, key=lambda item: item[0])
            yield Outcome(
                interval <= limit,
                f"{mechanism.kind} takes a base backup every "
                f"{format_duration(interval)} at most ({mechanism.schedule})"
                + (
                    "" if interval <= limit else f", more than {format_duration(limit)}"
                ),
                evidence=(Evidence(mechanism.label, mechanism.location),),
                **base,
            )
        elif scheduled:
            yield Outcome(
                False,
                "base backups by "
                + kinds(scheduled)
                + " have no schedule in the evidence, so their age is unknown",
                evidence=tuple(Evidence(m.label, m.location) for m in scheduled),
                severity=Severity.MEDIUM,
                **base,
            )
        else:
            yield Outcome(
                False,
                "WAL is archived but no mechanism takes base backups to replay it on",
                evidence=tuple(
                    Evidence(m.label, m.location) for m in _wal_mechanisms(view)
                ),
                **base,
            )


@rule(
    "PG-004",
    Area.POSTGRESQL,
    Severity.HIGH,
    "A tier that needs point-in-time recovery is not protected by dumps alone",
    "A nightly pg_dump loses up to a day of orders and invoices, restores slowly, "
    "and cannot go back to the minute before a mistake.",
    "Add physical backups with WAL archiving (pgBackRest, WAL-G, CloudNativePG) and "
    "keep the dump as a second, logical copy.",
)
def not_dump_only(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for tenant in pitr_tenants(context, view):
            covering = [m for m in view.covering(DATABASE) if m.protects(tenant.name)]
            covering += view.covering(WAL)
            if not covering:
                continue
            dumps = [m for m in covering if m.is_kind(DUMP_KINDS)]
            others = [m for m in covering if not m.is_kind(DUMP_KINDS)]
            yield Outcome(
                bool(others),
                "protected by " + kinds(others)
                if others
                else "only logical dumps protect this tier: " + kinds(dumps),
                environment=view.name,
                tenant=tenant.name,
                evidence=tuple(Evidence(m.label, m.location) for m in covering),
            )


@rule(
    "PG-005",
    Area.POSTGRESQL,
    Severity.HIGH,
    "Recovery settings have archived WAL to recover from",
    "A restore_command or recovery target without WAL archiving looks like a "
    "point-in-time recovery plan but has no WAL to replay.",
    "Turn WAL archiving on where the restore_command reads from, or remove the "
    "recovery settings so nobody relies on them.",
)
def recovery_needs_wal(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        live = view.live.postgres
        if live is None or not live.recovery_settings:
            continue
        names = ", ".join(
            f"{name} = {value!r}"
            for name, value in sorted(live.recovery_settings.items())
        )
        # A standby's WAL comes from its primary's archive, which manifests may show.
        archived = live.archiving or (live.in_recovery and bool(_wal_mechanisms(view)))
        yield Outcome(
            archived,
            f"{names} set and WAL archiving "
            + (
                "on"
                if archived
                else f"off (archive_mode = {live.settings.get('archive_mode')})"
            ),
            environment=view.name,
            resource="recovery-settings",
            evidence=(Evidence(names),),
        )


@rule(
    "PG-006",
    Area.POSTGRESQL,
    Severity.HIGH,
    "PostgreSQL runs the tier's number of instances with bounded replica lag",
    "A single instance means a node failure is a restore from backup, and a lagging "
    "replica loses the transactions it has not received when it takes over.",
    "Run at least the tier's min_replicas instances (CloudNativePG `instances`, or "
    "streaming replicas), and keep replay lag below the component_failure RPO.",
    snippet="spec:\n  instances: 2",
)
def replicas_enough(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        tenants = view.environment.tenants
        if not tenants:
            continue
        count, source, location = postgres_instances(view)
        if count == 0:
            continue
        required_tenant = max(tenants, key=lambda t: context.tier(t).min_replicas)
        required = context.tier(required_tenant).min_replicas
        problems = []
        if count < required:
            problems.append(
                f"{_instances(count)} ({source}), tier {required_tenant.tier} needs "
                f"{required}"
            )
        lag_limits = [
            objective.rpo
            for tenant in tenants
            if (
                objective := context.inventory.objective(
                    tenant, Disruption.COMPONENT_FAILURE
                )
            )
            is not None
        ]
        live = view.live.postgres
        if live is not None and lag_limits and live.replication_visible:
            limit = min(lag_limits)
            for replica in live.replicas:
                lag = replica.get("replay_lag_seconds")
                if lag is not None and lag > limit:
                    problems.append(
                        f"replica {replica.get('application_name')} replays "
                        f"{format_duration(lag)} behind, above the component_failure "
                        f"RPO of {format_duration(limit)}"
                    )
                if replica.get("state") != "streaming":
                    problems.append(
                        f"replica {replica.get('application_name')} is "
                        f"{replica.get('state')}, not streaming"
                    )
        yield Outcome(
            not problems,
            "; ".join(problems)
            or f"{_instances(count)} ({source}), {required} required",
            environment=view.name,
            resource="postgresql-instances",
            evidence=(Evidence(source, location),),
        )
