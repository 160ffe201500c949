"""Objective rules: declared tiers, achieved RPO and RTO, drills, HA versus DR."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from odoo_dr.repository.manifest import DrillRecord
from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.inventory import Disruption, Objective, Tenant, format_duration
from odoo_dr.review.mechanisms import DATABASE, WAL, Mechanism, kinds
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule
from odoo_dr.review.yamlio import Location

# Disruptions that only a backup recovers from: a replica copies a dropped table
# at once, and a region loss takes the replicas with it.
RESTORE_DISRUPTIONS = (Disruption.LOGICAL_CORRUPTION, Disruption.REGION_LOSS)


def restore_objective(
    context: ReviewContext, tenant: Tenant
) -> tuple[Disruption, Objective] | None:
    """Return the strictest objective among the disruptions a restore recovers from:
    the one with the smallest RPO, then the smallest RTO."""
    found = [
        (disruption, objective)
        for disruption in RESTORE_DISRUPTIONS
        if (objective := context.inventory.objective(tenant, disruption)) is not None
    ]
    if not found:
        return None
    return min(found, key=lambda item: (item[1].rpo, item[1].rto))


@dataclass
class RecoveryPoint:
    """One way to measure how much data a restore would lose now."""

    seconds: float
    source: str
    location: Location | None = None
    wal: bool = False


def _declared_wal_points(view: EnvironmentView, tenant: Tenant) -> list[RecoveryPoint]:
    """Return the RPO that WAL archiving declared in the manifests gives: at most
    its archive_timeout, as segments switch at least that often."""
    found = []
    for mechanism in view.covering(WAL):
        if not mechanism.declared or mechanism.archive_timeout is None:
            continue
        if not mechanism.protects(tenant.name):
            continue
        origin = (
            "CloudNativePG's default archive_timeout"
            if mechanism.archive_timeout_default
            else "archive_timeout"
        )
        found.append(
            RecoveryPoint(
                mechanism.archive_timeout,
                f"{mechanism.kind} (declared in the manifests, not measured) "
                "switches WAL segments at least every "
                f"{format_duration(mechanism.archive_timeout)} ({origin}), assuming "
                "the archiver keeps up",
                mechanism.archive_timeout_location or mechanism.location,
                wal=True,
            )
        )
    return found


def recovery_points(
    view: EnvironmentView, tenant: Tenant, now: datetime
) -> list[RecoveryPoint]:
    """Measure the achievable RPO of `tenant` from each mechanism that shows it.

    These are the WAL archive's age on the live server (else the archive_timeout
    of the WAL archiving that the manifests declare), the latest repository
    snapshot's age, and the longest gap between two runs of a scheduled backup.
    """
    found = []
    postgres = view.live.postgres
    on_server = postgres is not None and (
        not postgres.databases or tenant.name in postgres.databases
    )
    if on_server and postgres.archiving:
        age = postgres.archive_age_seconds
        if age is not None:
            found.append(
                RecoveryPoint(
                    age,
                    f"last WAL segment archived {format_duration(age)} ago",
                    wal=True,
                )
            )
    if not on_server:
        # The live server, when read, shows whether archiving really is on.
        found += _declared_wal_points(view, tenant)
    repository = view.live.repository
    if repository is not None:
        snapshots = [
            item
            for item in repository.snapshots
            if tenant.name in (item.tenant, item.database.name)
        ]
        if snapshots:
            latest = max(snapshots, key=lambda item: item.snapshot_time)
            age = (now - latest.snapshot_time).total_seconds()
            found.append(
                RecoveryPoint(
                    max(age, 0.0),
                    f"latest snapshot {latest.id} is {format_duration(age)} old",
                )
            )
    seen: set[int] = set()
    for mechanism in view.covering(DATABASE) + view.covering(WAL):
        if not mechanism.protects(tenant.name) or mechanism.interval is None:
            continue
        if id(mechanism) in seen:
            continue
        seen.add(id(mechanism))
        how = (
            f"({mechanism.schedule})"
            if mechanism.schedule
            else "(the sleep of its loop)"
        )
        found.append(
            RecoveryPoint(
                mechanism.interval,
                f"{mechanism.kind} runs every {format_duration(mechanism.interval)} "
                f"at most {how}",
                mechanism.location,
            )
        )
    return found


def unread_sources(view: EnvironmentView) -> list[str]:
    """Return the live sources the inventory names for the environment that were
    not read (live evidence off, or unreachable)."""
    sources = view.environment.evidence
    unread = []
    if sources.repository and view.live.repository is None:
        unread.append(f"the repository {sources.repository}")
    if sources.postgres_dsn and view.live.postgres is None:
        unread.append("the live PostgreSQL")
    return unread


def tenant_drills(view: EnvironmentView, tenant: Tenant) -> list[DrillRecord]:
    repository = view.live.repository
    if repository is None:
        return []
    snapshot_ids = {
        item.id for item in repository.snapshots if item.database.name == tenant.name
    }
    drills = [
        item
        for item in repository.drills
        if item.tenant == tenant.name or item.snapshot_id in snapshot_ids
    ]
    return sorted(drills, key=lambda item: item.finished_at)


def neutralized(drill: DrillRecord) -> bool:
    """Return whether the drill's `neutralized` check ran and passed."""
    return any(check.name == "neutralized" and check.passed for check in drill.checks)


@rule(
    "OBJ-001",
    Area.OBJECTIVES,
    Severity.MEDIUM,
    "Each tenant declares its tier and objectives for every disruption",
    "Without a declared tier and RTO/RPO per disruption, nobody can tell whether "
    "the backups and drills are sufficient, and the review must assume the "
    "strictest tier.",
    "Give each tenant a `tier:` in the inventory, and `objectives:` for any "
    "disruption the tier does not define or where the tenant differs from it.",
    snippet="tenants:\n  - name: acme\n    tier: high\n    objectives:\n"
    "      region_loss: {rto: 4h, rpo: 1h}",
)
def objectives_declared(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        declared_tier = "tier" in tenant.model_fields_set
        tier = context.tier(tenant)
        own = [d.value for d in Disruption if d in tenant.objectives]
        inherited = [
            d.value
            for d in Disruption
            if d not in tenant.objectives and d in tier.objectives
        ]
        missing = [
            d.value
            for d in Disruption
            if d not in tenant.objectives and d not in tier.objectives
        ]
        parts = []
        if own:
            parts.append("declared for " + ", ".join(own))
        if inherited:
            parts.append(
                f"inherited from tier {tenant.tier} for " + ", ".join(inherited)
            )
        if missing:
            parts.append("missing for " + ", ".join(missing))
        if not declared_tier:
            message = f"no tier declared; assumed {tenant.tier}; " + "; ".join(parts)
        else:
            message = f"tier {tenant.tier}; objectives " + "; ".join(parts)
        yield Outcome(
            declared_tier and not missing,
            message,
            environment=view.name,
            tenant=tenant.name,
        )


@rule(
    "OBJ-002",
    Area.OBJECTIVES,
    Severity.HIGH,
    "The achieved RPO is within the objective",
    "A backup older than the RPO means a restore today loses more data than the "
    "business agreed to lose.",
    "Back up more often, or archive WAL (pgBackRest, WAL-G, CloudNativePG) with an "
    "archive_timeout below the RPO; then check that the latest copy is recent.",
)
def rpo_achieved(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        objective = restore_objective(context, tenant)
        if objective is None:
            continue
        disruption, target = objective
        base = {"environment": view.name, "tenant": tenant.name}
        points = recovery_points(view, tenant, context.now)
        evidence = tuple(Evidence(item.source, item.location) for item in points)
        best = min(points, key=lambda item: item.seconds, default=None)
        if best is not None and best.seconds <= target.rpo:
            yield Outcome(
                True,
                f"achieved RPO {format_duration(best.seconds)} is within the "
                f"{disruption.value} RPO of {format_duration(target.rpo)}: "
                f"{best.source}",
                evidence=evidence,
                **base,
            )
            continue
        wal = view.covering(WAL)
        untimed = [
            item for item in wal if item.declared and item.archive_timeout is None
        ]
        if untimed and view.live.postgres is None:
            yield _untimed_archiving(best, untimed, disruption, target, base)
            continue
        if best is not None:
            if wal and not any(point.wal for point in points):
                yield Outcome(
                    False,
                    f"backups alone give an RPO of {format_duration(best.seconds)}, "
                    f"above the {disruption.value} RPO of "
                    f"{format_duration(target.rpo)}; WAL archived by {kinds(wal)} "
                    "may do better, but its archive age needs the live server "
                    "(evidence.postgres_dsn)",
                    evidence=evidence,
                    severity=Severity.LOW,
                    **base,
                )
                continue
            yield Outcome(
                False,
                f"achieved RPO {format_duration(best.seconds)} is above the "
                f"{disruption.value} RPO of {format_duration(target.rpo)}: "
                f"{best.source}",
                evidence=evidence,
                **base,
            )
            continue
        covered = [m for m in view.covering(DATABASE) if m.protects(tenant.name)]
        unread = unread_sources(view)
        if unread:
            yield Outcome(
                None,
                "achieved RPO not evaluated: "
                + " and ".join(unread)
                + (" were" if len(unread) > 1 else " was")
                + " not read (live evidence off or unreadable), and no schedule or "
                "WAL archiving in the manifests shows it",
                **base,
            )
        elif covered or wal:
            yield Outcome(
                False,
                "achieved RPO cannot be measured: no schedule, WAL archiver "
                "status or repository snapshot in the evidence for "
                + kinds(covered or wal),
                severity=Severity.LOW,
                **base,
            )


def _untimed_archiving(
    best: RecoveryPoint | None,
    archiving: list[Mechanism],
    disruption: Disruption,
    target: Objective,
    base: dict,
) -> Outcome:
    """Describe WAL archiving declared without archive_timeout: it bounds the data
    at risk by volume (a 16 MB segment by default), not by time."""
    backups = (
        f"backups alone give an RPO of {format_duration(best.seconds)}, above the "
        f"{disruption.value} RPO of {format_duration(target.rpo)}; "
        if best is not None
        else ""
    )
    evidence = [Evidence(item.label, item.location) for item in archiving]
    if best is not None:
        evidence.insert(0, Evidence(best.source, best.location))
    return Outcome(
        False,
        backups + f"WAL archiving by {kinds(archiving)} is declared in the manifests "
        "(not measured) without archive_timeout, so a quiet server keeps a partly "
        "filled segment unarchived for any length of time: set archive_timeout "
        f"below the RPO of {format_duration(target.rpo)}, or give "
        "evidence.postgres_dsn to measure the archive's age",
        evidence=tuple(evidence),
        severity=Severity.LOW,
        **base,
    )


@rule(
    "OBJ-003",
    Area.OBJECTIVES,
    Severity.HIGH,
    "The last measured restore time is within the RTO",
    "A restore that took longer in a drill than the RTO will take at least as long "
    "in a real disaster, which adds detection and decision time.",
    "Restore faster (parallel jobs, a nearer repository, smaller snapshots through "
    "archiving old data) or agree a longer RTO; run `odoo-dr drill` again after the "
    "change.",
)
def rto_measured(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        objective = restore_objective(context, tenant)
        passing = [item for item in tenant_drills(view, tenant) if item.passed]
        if objective is None or not passing:
            continue
        disruption, target = objective
        last = passing[-1]
        passed = last.rto_seconds <= target.rto
        yield Outcome(
            passed,
            f"drill {last.id} restored and checked in "
            f"{format_duration(last.rto_seconds)}, "
            f"{'within' if passed else 'above'} the {disruption.value} RTO of "
            f"{format_duration(target.rto)} (a drill measures restore and checks "
            "only, so a real recovery takes longer)",
            environment=view.name,
            tenant=tenant.name,
            evidence=(
                Evidence(f"drill {last.id} finished {last.finished_at:%Y-%m-%d}"),
            ),
        )


@rule(
    "OBJ-004",
    Area.OBJECTIVES,
    Severity.HIGH,
    "A neutralized restore drill ran within the tier's window",
    "A backup that has not been restored recently is a hope, not a recovery plan, "
    "and a drill that was not neutralized may have sent mail or run jobs from the "
    "copy.",
    "Schedule `odoo-dr drill TENANT` at least as often as the tier's drill_every; "
    "its record lands in the repository that the inventory names.",
    snippet="odoo-dr drill TENANT --odoo-config /etc/odoo/odoo.conf",
)
def drill_recent(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        window = context.tier(tenant).drill_every
        drills = tenant_drills(view, tenant)
        base = {"environment": view.name, "tenant": tenant.name}
        if view.live.repository is None:
            where = view.environment.evidence.repository
            if where:
                # Drill records may well be there: the check cannot be made.
                yield Outcome(
                    None,
                    f"the repository {where} was not read (live "
                    "evidence off or unreadable), so its drill records are unknown",
                    **base,
                )
            else:
                yield Outcome(
                    False,
                    "no drill evidence: no odoo-dr repository in the evidence, so "
                    "no drill records",
                    **base,
                )
            continue
        passing = [item for item in drills if item.passed]
        if not passing:
            text = (
                f"{len(drills)} drills recorded, none passed"
                if drills
                else "no drill recorded for this tenant"
            )
            yield Outcome(False, text, **base)
            continue
        last = passing[-1]
        age = (context.now - last.finished_at).total_seconds()
        in_window = age <= window
        was_neutralized = neutralized(last)
        problems = []
        if not in_window:
            problems.append(
                f"last passing drill {format_duration(age)} ago, outside the "
                f"{tenant.tier} window of {format_duration(window)}"
            )
        if not was_neutralized:
            problems.append(
                f"drill {last.id} did not verify that the copy was neutralized"
            )
        yield Outcome(
            not problems,
            "; ".join(problems)
            or f"drill {last.id} passed {format_duration(age)} ago, neutralized, "
            f"within the {tenant.tier} window of {format_duration(window)}",
            evidence=(
                Evidence(f"drill {last.id} finished {last.finished_at:%Y-%m-%d}"),
            ),
            **base,
        )


@rule(
    "OBJ-005",
    Area.OBJECTIVES,
    Severity.HIGH,
    "High availability is not counted as disaster recovery",
    "Replicas in other zones survive a node or zone loss, but a region loss takes "
    "them all, and they copy every deletion and corruption at once.",
    "Keep a backup copy in another region: replicate the backup bucket "
    "(S3 replication), or push backups to a second region, and record it under "
    "`offsite:` in the inventory.",
    snippet="offsite:\n  region: eu-central-1\n  account: backup-account",
)
def ha_not_dr(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        objective = context.inventory.objective(tenant, Disruption.REGION_LOSS)
        if objective is None:
            continue
        offsite = offsite_copies(view)
        base = {"environment": view.name, "tenant": tenant.name}
        if offsite:
            yield Outcome(
                True,
                "off-site copy: " + "; ".join(text for text, _ in offsite),
                evidence=tuple(Evidence(text, where) for text, where in offsite),
                **base,
            )
            continue
        from odoo_dr.review.rules.postgres import postgres_instances

        count, source, location = postgres_instances(view)
        zones = view.environment.zones
        if count > 1:
            text = f"only replicas ({count} PostgreSQL instances from {source}"
            text += f" across zones {', '.join(zones)})" if zones else ")"
            text += (
                " and no off-site backup: a region loss takes them all, and the "
                f"{format_duration(objective.rto)} region_loss RTO needs a copy "
                "elsewhere"
            )
        else:
            text = "no off-site backup copy for the region_loss objective"
        yield Outcome(False, text, evidence=(Evidence(source, location),), **base)


def offsite_copies(view: EnvironmentView) -> list[tuple[str, Location | None]]:
    """Return the copies outside the environment's region that the evidence shows."""
    found: list[tuple[str, Location | None]] = []
    region = view.environment.region
    offsite = view.environment.offsite
    if offsite is not None and offsite.region != region:
        found.append((f"declared off-site copy in {offsite.region} (inventory)", None))
    bucket = view.live.bucket
    if bucket is not None:
        rules = [
            item
            for item in (bucket.replication or {}).get("Rules", [])
            if item.get("Status") == "Enabled"
        ]
        if rules:
            targets = sorted(
                {str(item.get("Destination", {}).get("Bucket", "?")) for item in rules}
            )
            found.append(
                (f"bucket {bucket.bucket} replicates to {', '.join(targets)}", None)
            )
        if region and bucket.region and bucket.region != region:
            found.append(
                (f"bucket {bucket.bucket} is in {bucket.region}, not {region}", None)
            )
    return found
