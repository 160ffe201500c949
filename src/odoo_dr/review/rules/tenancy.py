"""Tenancy rules: how a shared Odoo keeps tenants apart, and which hosting model
fits each tenant's profile."""

from __future__ import annotations

import re
from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence.odoo import OdooServer, odoo_servers
from odoo_dr.review.inventory import STRICTEST_TIER, Hosting, Level, Tenant
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule

# dbfilter values that let every database through.
_OPEN_FILTERS = {"", ".*", "^.*$", ".+", "^.+$", ".*$", "^.*"}
_SLA = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def multi_tenant_reason(view: EnvironmentView) -> str | None:
    """Say why the environment serves several tenants, or return None."""
    environment = view.environment
    if environment.hosting == Hosting.MULTI_TENANT:
        return "the environment is hosted multi-tenant"
    shared = [
        tenant.name
        for tenant in environment.tenants
        if tenant.hosting == Hosting.MULTI_TENANT
    ]
    if shared:
        return f"tenants hosted multi-tenant: {', '.join(shared)}"
    if len(environment.tenants) > 1:
        return f"{len(environment.tenants)} tenants in one environment"
    return None


def _shared_servers(
    context: ReviewContext,
) -> Iterator[tuple[EnvironmentView, str, OdooServer]]:
    for view in context.environments:
        reason = multi_tenant_reason(view)
        if reason is None:
            continue
        for server in odoo_servers(view.manifests):
            yield view, reason, server


def _setting_evidence(server: OdooServer, key: str) -> Evidence:
    setting = server.get(key)
    if setting is None:
        return Evidence(f"{key} not set", server.location)
    return Evidence(f"{key} = {setting.value} ({setting.origin})", setting.location)


@rule(
    "TEN-001",
    Area.TENANCY,
    Severity.HIGH,
    "A shared Odoo restricts each request to one database (dbfilter)",
    "Without dbfilter, an Odoo serving several databases lets each visitor choose any "
    "of them (the selector lists every tenant's database while list_db is on), and a "
    "restored or drilled copy on that server is reachable from every tenant's host.",
    "Set dbfilter so the host name selects the database (^%d$ for the first label, "
    "^%h$ for the whole host), or run one Odoo per tenant with db_name set.",
    snippet="[options]\ndbfilter = ^%d$",
)
def dbfilter_set(context: ReviewContext) -> Iterator[Outcome]:
    for view, reason, server in _shared_servers(context):
        dbfilter = server.get("dbfilter")
        db_name = server.get("db_name")
        names = [
            item.strip()
            for item in (db_name.value if db_name else "").split(",")
            if item.strip() and item.strip() != "False"
        ]
        if dbfilter is not None and dbfilter.value.strip() not in _OPEN_FILTERS:
            passed, message = True, f"dbfilter = {dbfilter.value.strip()}"
            evidence = _setting_evidence(server, "dbfilter")
        elif len(names) == 1:
            # Without dbfilter, Odoo exposes only the databases db_name lists.
            passed, message = True, f"serves the one database db_name names: {names[0]}"
            evidence = _setting_evidence(server, "db_name")
        else:
            passed = False
            state = "open" if dbfilter is not None else "not set"
            choice = (
                f"among the {len(names)} databases db_name lists"
                if names
                else "any database on the server"
            )
            message = f"{reason}, but dbfilter is {state}: visitors choose {choice}"
            evidence = _setting_evidence(server, "dbfilter")
        yield Outcome(
            passed,
            message,
            environment=view.name,
            resource=server.resource,
            evidence=(evidence,),
        )


@rule(
    "TEN-002",
    Area.TENANCY,
    Severity.HIGH,
    "A shared Odoo keeps the database manager closed (list_db = False)",
    "On a shared Odoo the database manager lists every tenant's database and, with "
    "the master password, backs up, drops or restores any of them: one leaked "
    "password reaches all tenants.",
    "Set list_db = False on every Odoo that serves several tenants; create, copy and "
    "restore databases with odoo-dr or from the command line instead.",
    snippet="[options]\nlist_db = False",
)
def shared_list_db_off(context: ReviewContext) -> Iterator[Outcome]:
    for view, reason, server in _shared_servers(context):
        enabled = server.flag("list_db")
        closed = enabled is False
        state = "on" if enabled else "not set (Odoo's default is True)"
        yield Outcome(
            closed,
            "list_db = False" if closed else f"{reason}, but list_db is {state}",
            environment=view.name,
            resource=server.resource,
            evidence=(_setting_evidence(server, "list_db"),),
        )


def _sla(text: str | None) -> float | None:
    match = _SLA.search(text or "")
    return float(match.group(1)) if match else None


def tenant_profile(tenant: Tenant) -> tuple[list[str], list[str]]:
    """Return the factors in a tenant's profile that call for a dedicated server
    (strong) and those that call for at least dedicated database or workers
    (moderate)."""
    strong: list[str] = []
    moderate: list[str] = []
    if tenant.regulated:
        strong.append("regulated")
    # A tier the inventory does not state (the strictest by default) does not
    # describe the tenant.
    declared = "tier" in tenant.model_fields_set
    if declared and tenant.tier == STRICTEST_TIER:
        strong.append(f"tier {tenant.tier}")
    elif declared and tenant.tier == "high":
        moderate.append("tier high")
    sla = _sla(tenant.sla)
    if sla is not None and sla >= 99.95:
        strong.append(f"SLA {sla}%")
    elif sla is not None and sla >= 99.9:
        moderate.append(f"SLA {sla}%")
    for name, value in (
        ("customization", tenant.customization),
        ("integration load", tenant.integration_load),
    ):
        if value == Level.HIGH:
            strong.append(f"{name} high")
        elif value == Level.MEDIUM:
            moderate.append(f"{name} medium")
    count = len(tenant.integrations)
    if count >= 5:
        strong.append(f"{count} integrations")
    elif count >= 3:
        moderate.append(f"{count} integrations")
    return strong, moderate


_PROFILE_FIELDS = {
    "tier",
    "sla",
    "customization",
    "integration_load",
    "regulated",
    "integrations",
}


def _profile_declared(tenant: Tenant) -> bool:
    """Return whether the inventory states any part of the tenant's profile. A
    tenant known only by name (a folder reviewed without inventory) gets no
    advice."""
    return bool(_PROFILE_FIELDS & tenant.model_fields_set)


def recommend_hosting(tenant: Tenant) -> tuple[Hosting, str]:
    """Recommend a hosting model for a tenant, with the reason."""
    strong, moderate = tenant_profile(tenant)
    if strong:
        return Hosting.DEDICATED, ", ".join(strong + moderate)
    if len(moderate) >= 2:
        return Hosting.HYBRID, ", ".join(moderate)
    reason = ", ".join(moderate) or "nothing calls for isolation"
    return Hosting.MULTI_TENANT, reason


@rule(
    "TEN-003",
    Area.TENANCY,
    Severity.INFO,
    "Each tenant's hosting model fits its profile",
    "A demanding, customized or regulated tenant on a shared Odoo shares its outages, "
    "upgrades and restores with every other tenant, while a small standard tenant on "
    "dedicated servers costs more than its objectives require.",
    "Host tenants with a critical tier, high customization or integration load, a "
    "regulated status or an SLA of 99.95% or more on dedicated servers; two moderate "
    "factors (tier high, medium customization or integration load, SLA of 99.9%, "
    "three integrations or more) call for hybrid hosting (shared platform with "
    "dedicated database and workers); otherwise multi-tenant.",
)
def hosting_fits_profile(context: ReviewContext) -> Iterator[Outcome]:
    for view, tenant in context.tenants():
        if not _profile_declared(tenant):
            continue
        hosting = tenant.hosting or view.environment.hosting
        recommended, reason = recommend_hosting(tenant)
        if hosting == recommended:
            message = f"hosted {hosting.value}, which fits the profile ({reason})"
        else:
            message = (
                f"hosted {hosting.value}; the profile suggests {recommended.value} "
                f"({reason})"
            )
        yield Outcome(
            hosting == recommended,
            message,
            environment=view.name,
            tenant=tenant.name,
            evidence=(
                Evidence(
                    f"tier {tenant.tier}, sla {tenant.sla or 'not set'}, customization "
                    f"{_level(tenant.customization)}, integration load "
                    f"{_level(tenant.integration_load)}, regulated "
                    f"{'yes' if tenant.regulated else 'no'}, "
                    f"{len(tenant.integrations)} integrations"
                ),
            ),
            severity=Severity.INFO,
        )


def _level(value: Level | None) -> str:
    return value.value if value is not None else "not set"
