"""PostgreSQL role rules: Odoo's role is no superuser, backups have their own."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence.odoo import (
    Setting,
    database_user,
    manifest_superusers,
    odoo_servers,
)
from odoo_dr.review.mechanisms import DATABASE
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule


def _application_roles(view: EnvironmentView) -> list[tuple[str, Setting]]:
    """Return the roles the Odoo servers connect as, each once, with where each is
    set: db_user (odoo.conf, command line, environment), else the image's
    default."""
    roles: dict[str, Setting] = {}
    for server in odoo_servers(view.manifests):
        setting = database_user(server)
        if setting is not None:
            roles.setdefault(setting.value.strip(), setting)
    return list(roles.items())


@rule(
    "PG-007",
    Area.POSTGRESQL,
    Severity.HIGH,
    "Odoo does not connect as a superuser",
    "A superuser can drop every database on the server, read files and run "
    "programs as the server, so one flaw in Odoo or a module reaches all tenants "
    "and their backups' source.",
    "Create a role for Odoo with CREATEDB only, owning its databases, and set it as "
    "db_user. With the official postgres image, POSTGRES_USER is a superuser: keep "
    "it for administration and create Odoo's role apart.",
    snippet="CREATE ROLE odoo LOGIN CREATEDB PASSWORD '...';",
)
def application_not_superuser(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        live = view.live.postgres
        superusers = manifest_superusers(view.manifests)
        for role, setting in _application_roles(view):
            evidence = [
                Evidence(f"db_user = {role} ({setting.origin})", setting.location)
            ]
            if live is not None:
                is_super = role in live.superusers
                how = (
                    "a superuser on the live server" if is_super else "not a superuser"
                )
            elif role == "postgres":
                is_super, how = True, "the bootstrap superuser"
            elif role in superusers:
                is_super = True
                how = (
                    "a superuser: the manifests create it as the POSTGRES_USER of the "
                    "official postgres image"
                )
                evidence.append(Evidence(f"POSTGRES_USER = {role}", superusers[role]))
            else:
                is_super = False
                how = (
                    "which the manifests do not create as a superuser (no live server "
                    "to check its attributes)"
                )
            yield Outcome(
                not is_super,
                f"Odoo connects as {role!r}, {how}",
                environment=view.name,
                resource=f"role/{role}",
                evidence=tuple(evidence),
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
