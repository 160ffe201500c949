"""PostgreSQL role rules: Odoo's role is no superuser, backups have their own."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.mechanisms import DATABASE
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule
from odoo_dr.review.yamlio import Location


def _application_roles(view: EnvironmentView) -> list[tuple[str, Location]]:
    """Return the roles Odoo connects as, from odoo.conf and Odoo workloads."""
    roles = []
    for conf in view.odoo_confs:
        user = conf.options.get("db_user")
        if user and user != "False":
            roles.append((user, conf.at("db_user")))
    for workload in view.odoo:
        for container in workload.containers:
            user = container.env.get("USER") or container.env.get("PGUSER")
            if user:
                roles.append((user, workload.location))
    return roles


@rule(
    "PG-007",
    Area.POSTGRESQL,
    Severity.HIGH,
    "Odoo does not connect as a superuser",
    "A superuser can drop every database on the server, read files and run "
    "programs as the server, so one flaw in Odoo or a module reaches all tenants "
    "and their backups' source.",
    "Create a role for Odoo with CREATEDB only, owning its databases, and set it as "
    "db_user.",
    snippet="CREATE ROLE odoo LOGIN CREATEDB PASSWORD '...';",
)
def application_not_superuser(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        live = view.live.postgres
        seen = set()
        for role, location in _application_roles(view):
            if role in seen:
                continue
            seen.add(role)
            if live is not None:
                is_super = role in live.superusers
                how = (
                    "a superuser on the live server" if is_super else "not a superuser"
                )
            else:
                is_super = role == "postgres"
                how = (
                    "the bootstrap superuser"
                    if is_super
                    else "not 'postgres' (no live server to check its attributes)"
                )
            yield Outcome(
                not is_super,
                f"Odoo connects as {role!r}, {how}",
                environment=view.name,
                resource=f"role/{role}",
                evidence=(Evidence(f"db_user = {role}", location),),
            )


@rule(
    "PG-008",
    Area.POSTGRESQL,
    Severity.MEDIUM,
    "Backups connect with their own role, not Odoo's",
    "A backup role separate from Odoo's can be read-only (pg_read_all_data) and "
    "audited, and rotating or locking Odoo's password does not stop the backups.",
    "Create a backup role (GRANT pg_read_all_data) and give the backup job its own "
    "credentials instead of odoo.conf.",
    snippet="CREATE ROLE backup LOGIN PASSWORD '...';\n"
    "GRANT pg_read_all_data TO backup;",
)
def backup_role_separate(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        app_roles = {role for role, _ in _application_roles(view)}
        for mechanism in view.covering(DATABASE):
            if mechanism.workload is None:
                continue
            if mechanism.uses_odoo_conf:
                passed = False
                message = (
                    f"{mechanism.kind} reads odoo.conf, so it connects as Odoo's role"
                )
            elif mechanism.role is None:
                continue
            elif mechanism.role in app_roles:
                passed = False
                message = (
                    f"{mechanism.kind} connects as {mechanism.role!r}, Odoo's role"
                )
            else:
                passed = True
                message = (
                    f"{mechanism.kind} connects as its own role {mechanism.role!r}"
                )
            yield Outcome(
                passed,
                message,
                environment=view.name,
                resource=mechanism.detail,
                evidence=(Evidence(mechanism.label, mechanism.location),),
            )
