"""Coverage rules: every stateful part maps to a backup mechanism."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import ReviewContext
from odoo_dr.review.mechanisms import DATABASE, FILESTORE, VOLUMES
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule


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
            bool(covering),
            "backed up by " + ", ".join(item.kind for item in covering)
            if covering
            else "no backup mechanism covers this database",
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
            bool(covering),
            "filestore backed up by " + ", ".join(item.kind for item in covering)
            if covering
            else "no backup mechanism covers the filestore",
            environment=view.name,
            tenant=tenant.name,
            evidence=tuple(Evidence(item.label, item.location) for item in covering),
        )
