"""Coverage rules: every stateful part maps to a backup mechanism."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence.manifests import K8sObject, Workload
from odoo_dr.review.inventory import format_duration
from odoo_dr.review.mechanisms import (
    DATABASE,
    FILESTORE,
    REDIS,
    VOLUMES,
    WAL,
    CronError,
    Mechanism,
    cron_runs,
    kinds,
)
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule


def _unread_repository(view: EnvironmentView) -> str | None:
    """Return the odoo-dr repository the inventory names for the environment when it
    was not read (live evidence off, or unreadable), else None."""
    repository = view.environment.evidence.repository
    return repository if repository and view.live.repository is None else None


def _covered(view: EnvironmentView, covering: list[Mechanism]) -> bool | None:
    """Return whether mechanisms cover a part; None (not evaluated) when none is
    seen but the environment's repository, which may hold its backups, was not read."""
    if covering:
        return True
    return None if _unread_repository(view) else False


def _uncovered(view: EnvironmentView, part: str) -> str:
    repository = _unread_repository(view)
    if repository:
        return (
            f"not evaluated: no other mechanism covers {part}, and the odoo-dr "
            f"repository {repository} that may hold its backups was not read "
            "(live evidence off or unreadable)"
        )
    return f"no backup mechanism covers {part}"


@rule(
    "COV-001",
    Area.COVERAGE,
    Severity.CRITICAL,
    "Every tenant database has a backup mechanism",
    "A database that no mechanism backs up cannot be recovered from any disruption.",
    "Add a backup for the database: odoo-dr backup, pgBackRest, WAL-G, CloudNativePG "
    "backups or at least a pg_dump CronJob.",
    snippet="odoo-dr backup TENANT --odoo-config /etc/odoo/odoo.conf",
)
def database_backed_up(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        covering = [
            item
            for item in view.covering(DATABASE)
            if not item.databases or tenant.name in item.databases
        ]
        yield Outcome(
            _covered(view, covering),
            "backed up by " + ", ".join(item.kind for item in covering)
            if covering
            else _uncovered(view, "this database"),
            environment=view.name,
            tenant=tenant.name,
            evidence=tuple(Evidence(item.label, item.location) for item in covering),
        )


@rule(
    "COV-002",
    Area.COVERAGE,
    Severity.CRITICAL,
    "Every tenant's filestore has a backup mechanism",
    "A database restored without its filestore loses every attachment, invoice PDF "
    "and product image; database backups alone do not hold them.",
    "Back up the filestore with the database: odoo-dr backup copies exactly the files "
    "the database snapshot references; Velero or K8up can cover the volume.",
)
def filestore_backed_up(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        covering = [
            item
            for item in view.covering(FILESTORE) + view.covering(VOLUMES)
            if not item.databases or tenant.name in item.databases
        ]
        yield Outcome(
            _covered(view, covering),
            "filestore backed up by " + ", ".join(item.kind for item in covering)
            if covering
            else _uncovered(view, "the filestore"),
            environment=view.name,
            tenant=tenant.name,
            evidence=tuple(Evidence(item.label, item.location) for item in covering),
        )


@rule(
    "COV-003",
    Area.COVERAGE,
    Severity.HIGH,
    "Every database on the server is backed up",
    "A database created outside the inventory (a new tenant, a copy made for a "
    "migration) is lost with the server if no backup includes it.",
    "Back up each database (odoo-dr backup, a pg_dump per database), or use a "
    "cluster-wide mechanism such as pgBackRest, WAL-G or CloudNativePG; drop "
    "databases nobody needs.",
)
def server_databases_backed_up(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        live = view.live.postgres
        if live is None:
            continue
        cluster_wide = [m for m in view.mechanisms if m.cluster_wide]
        repository = view.live.repository
        in_repository = set()
        if repository is not None:
            in_repository = {item.database.name for item in repository.snapshots}
        for database in live.databases:
            named = [
                m
                for m in view.covering(DATABASE)
                if not m.cluster_wide and m.databases and database in m.databases
            ]
            if database in in_repository:
                passed, message = True, "has snapshots in the odoo-dr repository"
            elif cluster_wide:
                passed = True
                message = "in the cluster-wide backup by " + kinds(cluster_wide)
            elif named:
                passed = True
                message = "backed up by " + kinds(named)
            else:
                passed = False
                message = (
                    "exists on the server, but no snapshot in the repository and no "
                    "backup mechanism names it"
                )
            yield Outcome(
                passed,
                f"database {database} {message}",
                environment=view.name,
                resource=f"database/{database}",
                evidence=tuple(
                    Evidence(m.label, m.location) for m in cluster_wide + named
                ),
            )


# Database and filestore copies taken further apart than this do not restore to
# one consistent state: attachments uploaded in between are missing or orphaned.
ALIGNMENT_LIMIT = 15 * 60


def schedule_offset(database_schedule: str, files_schedule: str) -> float | None:
    """Return the longest time, over a year of runs, between a filestore copy and
    the nearest database backup; None if a schedule cannot be read."""
    try:
        database_runs = [run.timestamp() for run in cron_runs(database_schedule)]
        files_runs = [run.timestamp() for run in cron_runs(files_schedule)]
    except CronError:
        return None
    if not database_runs or not files_runs:
        return None
    end = min(database_runs[-1], files_runs[-1])
    worst = 0.0
    for run in files_runs:
        if run > end:
            break
        index = bisect.bisect_left(database_runs, run)
        nearest = [
            abs(database_runs[i] - run)
            for i in (index - 1, index)
            if 0 <= i < len(database_runs)
        ]
        worst = max(worst, min(nearest))
    return worst


@rule(
    "COV-004",
    Area.COVERAGE,
    Severity.HIGH,
    "Database and filestore restore points are taken together",
    "A database dump and a filestore copy taken hours apart restore to a state "
    "where recent attachments are missing or point at files that do not exist.",
    "Back up both in one run (odoo-dr backup reads the filestore in the dump's "
    "snapshot), or archive WAL so the database can be recovered to the filestore "
    "copy's time.",
    snippet="odoo-dr backup TENANT --odoo-config /etc/odoo/odoo.conf",
)
def restore_points_aligned(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        database = [m for m in view.covering(DATABASE) if m.protects(tenant.name)]
        files = [
            m
            for m in view.covering(FILESTORE) + view.covering(VOLUMES)
            if m.protects(tenant.name)
        ]
        if not database or not files:
            continue
        base = {"environment": view.name, "tenant": tenant.name}
        both = [m for m in database if FILESTORE in m.covers]
        if both:
            yield Outcome(
                True,
                "one run copies database and filestore: " + kinds(both),
                evidence=tuple(Evidence(m.label, m.location) for m in both),
                **base,
            )
            continue
        wal = view.covering(WAL)
        if wal:
            yield Outcome(
                True,
                "WAL archiving (" + kinds(wal) + ") can recover "
                "the database to the time of any filestore copy",
                evidence=tuple(Evidence(m.label, m.location) for m in wal + files),
                **base,
            )
            continue
        pairs = []
        for first in database:
            for second in files:
                if first.schedule and second.schedule:
                    offset = schedule_offset(first.schedule, second.schedule)
                    if offset is not None:
                        pairs.append((offset, first, second))
        if not pairs:
            yield Outcome(
                False,
                "database and filestore are copied by separate mechanisms whose "
                "schedules are not in the evidence, so their restore points cannot "
                "be matched",
                evidence=tuple(Evidence(m.label, m.location) for m in database + files),
                severity=Severity.MEDIUM,
                **base,
            )
            continue
        offset, first, second = min(pairs, key=lambda item: item[0])
        passed = offset <= ALIGNMENT_LIMIT
        yield Outcome(
            passed,
            f"{first.kind} ({first.schedule}) and {second.kind} ({second.schedule}) "
            f"run up to {format_duration(offset)} apart"
            + ("" if passed else f", more than {format_duration(ALIGNMENT_LIMIT)}"),
            evidence=(
                Evidence(first.label, first.location),
                Evidence(second.label, second.location),
            ),
            **base,
        )


@rule(
    "COV-005",
    Area.COVERAGE,
    Severity.HIGH,
    "The latest backup is complete",
    "A snapshot without a dump, without its filestore or with missing files "
    "restores a database whose attachments or data are gone.",
    "Read the backup's warnings (`odoo-dr snapshots`), restore the missing files "
    "from an older snapshot or the source, and run the backup with --strict so an "
    "incomplete one fails.",
)
def latest_backup_complete(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        repository = view.live.repository
        if repository is None:
            continue
        snapshots = [
            item
            for item in repository.snapshots
            if tenant.name in (item.tenant, item.database.name)
        ]
        if not snapshots:
            continue
        latest = max(snapshots, key=lambda item: item.snapshot_time)
        problems = []
        dump_bytes = sum(item.size for item in latest.dump)
        if not latest.dump or dump_bytes == 0:
            problems.append("its dump is empty")
        elif not any(item.name == "toc.dat" for item in latest.dump):
            problems.append("its dump has no toc.dat")
        summary = latest.filestore
        if summary.referenced_files == 0 and summary.extra_files == 0:
            problems.append("it holds no filestore files")
        if summary.problems:
            names = ", ".join(
                f"{item.store_fname} ({item.reason})" for item in summary.problems[:3]
            )
            more = len(summary.problems) - 3
            problems.append(
                f"{len(summary.problems)} referenced files were missing or damaged: "
                + names
                + (f" and {more} more" if more > 0 else "")
            )
        if repository.unreadable:
            problems.append(
                f"{len(repository.unreadable)} manifests or drill records in the "
                "repository are unreadable: " + ", ".join(sorted(repository.unreadable))
            )
        yield Outcome(
            not problems,
            f"snapshot {latest.id}: "
            + (
                "; ".join(problems)
                or f"dump {dump_bytes} bytes, {summary.referenced_files} filestore "
                "files, no missing file"
            ),
            evidence=(Evidence(f"snapshot {latest.id} in {repository.location}"),),
            **{"environment": view.name, "tenant": tenant.name},
        )


@rule(
    "COV-006",
    Area.COVERAGE,
    Severity.HIGH,
    "Redis that holds sessions or a queue is backed up or persistent",
    "Sessions and queued jobs held only in memory are lost on the first restart, "
    "and a queue's lost jobs are orders or e-mails that never happen.",
    "Persist Redis (AOF or RDB on a persistent volume) and copy its RDB file off "
    "the node, or back its volume up with Velero or K8up.",
)
def redis_covered(context: ReviewContext) -> Iterator[Outcome]:
    from odoo_dr.review.rules.redis import manifest_persistence, stateful_tenants

    for view in context.environments:
        tenants = stateful_tenants(view)
        if not tenants:
            continue
        found: list[tuple[str, Evidence]] = []
        for mechanism in view.covering(REDIS):
            found.append(
                (mechanism.kind, Evidence(mechanism.label, mechanism.location))
            )
        if view.redis and view.covering(VOLUMES):
            for mechanism in view.covering(VOLUMES):
                found.append(
                    (
                        f"{mechanism.kind} volume backups",
                        Evidence(mechanism.label, mechanism.location),
                    )
                )
        live = view.live.redis
        if live is not None and (live.aof_enabled or live.rdb_enabled):
            found.append(
                ("persistence on the live Redis", Evidence("INFO persistence"))
            )
        for workload in view.redis:
            persistent, reason = manifest_persistence(workload)
            if persistent:
                found.append((reason, Evidence(workload.ref, workload.location)))
        for tenant in tenants:
            yield Outcome(
                bool(found),
                "covered by " + "; ".join(text for text, _ in found)
                if found
                else "no backup mechanism and no persistence for the Redis that holds "
                + ", ".join(sorted(role.value for role in tenant.redis_role)),
                environment=view.name,
                tenant=tenant.name,
                evidence=tuple(item for _, item in found),
            )


def _secret_names(workload: Workload) -> set[str]:
    """Return the Secrets a workload reads through env, envFrom or volumes."""
    names = set()
    for container in workload.containers:
        for source in container.env_sources.values():
            if source.startswith("secret "):
                names.add(source.split(" ", 1)[1].split("/", 1)[0])
    for volume in workload.volumes.values():
        names |= {
            ref.split("/", 1)[1]
            for ref in volume.reference
            if ref.startswith("Secret/")
        }
    if workload.source is not None:
        spec = workload.source.get("spec", "template", "spec", default=None)
        if spec is None:
            spec = workload.source.get(
                "spec", "jobTemplate", "spec", "template", "spec", default={}
            )
        for raw in (spec or {}).get("containers") or []:
            for item in (raw or {}).get("envFrom") or []:
                name = ((item or {}).get("secretRef") or {}).get("name")
                if name:
                    names.add(str(name))
    return names


def _managed_secrets(view: EnvironmentView) -> dict[str, str]:
    """Return Secrets whose content lives outside the cluster, with where."""
    managed = {}
    for item in view.manifests.of_kind("ExternalSecret", group="external-secrets.io"):
        target = item.get("spec", "target", "name") or item.name
        store = item.get("spec", "secretStoreRef", "name") or "a secret store"
        managed[str(target)] = f"ExternalSecret from {store}"
    for item in view.manifests.of_kind("SealedSecret", group="bitnami.com"):
        managed[item.name] = "SealedSecret in Git (its sealing key must be kept too)"
    for item in view.manifests.of_kind("Secret"):
        if item.get("sops") is not None:
            managed[item.name] = "SOPS-encrypted in Git"
    return managed


def _vault_injected(workload: Workload) -> bool:
    annotations = {}
    if workload.source is not None:
        annotations = (
            workload.source.get("spec", "template", "metadata", "annotations")
            or workload.source.get("metadata", "annotations")
            or {}
        )
    return (
        str(annotations.get("vault.hashicorp.com/agent-inject", "")).lower() == "true"
    )


def _velero_secrets(view: EnvironmentView, namespace: str | None) -> K8sObject | None:
    """Return a Velero Schedule whose backups include the namespace's Secrets."""
    for schedule in view.manifests.of_kind("Schedule", group="velero.io"):
        template = schedule.get("spec", "template", default={}) or {}
        included = template.get("includedNamespaces") or ["*"]
        excluded = [str(x).lower() for x in template.get("excludedResources") or []]
        resources = [str(x).lower() for x in template.get("includedResources") or ["*"]]
        if "secrets" in excluded:
            continue
        if "*" not in resources and "secrets" not in resources:
            continue
        if "*" in included or namespace in included:
            return schedule
    return None


@rule(
    "COV-007",
    Area.COVERAGE,
    Severity.MEDIUM,
    "Keys and the master password can be recovered without the cluster",
    "Backups that are encrypted, or stored behind credentials that exist only in "
    "the lost cluster, cannot be read after a disaster, and a restored Odoo needs "
    "its master password.",
    "Keep backup encryption keys, storage credentials and admin_passwd in an "
    "external secret store (External Secrets, Vault) or sealed in Git, or back the "
    "Secrets up with Velero to another location.",
)
def secrets_recoverable(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        workloads = view.odoo + [
            m.workload for m in view.mechanisms if m.workload is not None
        ]
        base = {"environment": view.name, "resource": "secrets"}
        if not view.manifests.objects:
            if view.odoo_confs or workloads:
                yield Outcome(
                    False,
                    "cannot be checked from this evidence: no Kubernetes manifests "
                    "show where admin_passwd and the backup keys are kept; confirm "
                    "by hand that a copy exists outside the platform",
                    severity=Severity.INFO,
                    **base,
                )
            continue
        managed = _managed_secrets(view)
        kept: list[str] = []
        lost: list[str] = []
        evidence = []
        for workload in workloads:
            if _vault_injected(workload):
                kept.append(f"{workload.ref} reads Vault")
                continue
            for name in sorted(_secret_names(workload)):
                velero = _velero_secrets(view, workload.namespace)
                if name in managed:
                    kept.append(f"Secret {name}: {managed[name]}")
                elif velero is not None:
                    kept.append(f"Secret {name}: in Velero backups ({velero.ref})")
                    evidence.append(Evidence(velero.ref, velero.location))
                else:
                    lost.append(f"Secret {name} (read by {workload.ref})")
                    evidence.append(Evidence(workload.ref, workload.location))
        if not kept and not lost:
            continue
        offsite = view.environment.offsite
        note = (
            f"; the inventory's off-site copy in {offsite.region} holds backups, "
            "which the review cannot tell include these keys"
            if offsite and lost
            else ""
        )
        yield Outcome(
            not lost,
            (
                "only in the cluster: " + ", ".join(sorted(set(lost))) + note
                if lost
                else "kept outside the cluster: " + "; ".join(sorted(set(kept)))
            ),
            evidence=tuple(evidence),
            **base,
        )
