"""Security and governance rules: the database manager, the master password and the
backup transport."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import ReviewContext
from odoo_dr.review.evidence.endpoints import backup_endpoints
from odoo_dr.review.evidence.exposure import Routing, load_routing, openings
from odoo_dr.review.evidence.git import tracked_by_git
from odoo_dr.review.evidence.manifests import Container, OdooConf, Workload
from odoo_dr.review.evidence.odoo import OdooServer, odoo_servers
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule


@rule(
    "SEC-001",
    Area.SECURITY,
    Severity.HIGH,
    "Odoo's database manager is closed (list_db = False)",
    "With list_db on, anyone who reaches Odoo can list, dump, drop or restore "
    "databases "
    "through /web/database if the master password leaks or is weak.",
    "Set list_db = False in odoo.conf and block /web/database at the proxy.",
    snippet="[options]\nlist_db = False",
)
def database_manager_closed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            enabled = conf.flag("list_db")
            if enabled is None and conf.from_operator:
                yield _operator_default(view.name, conf, "list_db")
                continue
            # Odoo's default is list_db = True.
            if enabled is None or enabled:
                yield Outcome(
                    False,
                    "list_db is "
                    + ("not set (Odoo's default is True)" if enabled is None else "on"),
                    environment=view.name,
                    resource=conf.resource,
                    evidence=(Evidence("list_db", conf.at("list_db")),),
                )
            else:
                yield Outcome(
                    True,
                    "list_db = False",
                    environment=view.name,
                    resource=conf.resource,
                    evidence=(Evidence("list_db = False", conf.at("list_db")),),
                )


def _operator_default(environment: str, conf: OdooConf, option: str) -> Outcome:
    return Outcome(
        None,
        f"{conf.origin} sets no {option}, so its operator's default applies, which "
        "the manifests do not show",
        environment=environment,
        resource=conf.resource,
        evidence=(Evidence(conf.resource, conf.holder.location),),
    )


@rule(
    "SEC-002",
    Area.SECURITY,
    Severity.HIGH,
    "The master password (admin_passwd) is set and not a default",
    "Without a master password, or with `admin`, anyone reaching the database manager "
    "can drop or restore any database.",
    "Set admin_passwd to a long random value, stored hashed: Odoo writes a "
    "$pbkdf2-sha512$ hash when the password is changed from the database manager.",
)
def master_password_set(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            value = conf.options.get("admin_passwd")
            location = conf.at("admin_passwd")
            if value is None and conf.from_operator:
                yield _operator_default(view.name, conf, "admin_passwd")
                continue
            if value in (None, "", "False"):
                passed, message = False, "admin_passwd is not set"
            elif value.strip() in {"admin", "odoo", "password", "changeme"}:
                passed, message = False, "admin_passwd is a well-known default"
            else:
                passed, message = True, "admin_passwd is set"
            yield Outcome(
                passed,
                message,
                environment=view.name,
                resource=conf.resource,
                evidence=(Evidence("admin_passwd", location),),
            )


@rule(
    "SEC-003",
    Area.SECURITY,
    Severity.MEDIUM,
    "The master password is stored hashed, not in clear",
    "A master password in clear text in odoo.conf ends up in Git, images and backups, "
    "where anyone who can read them can use it.",
    "Store the $pbkdf2-sha512$ hash Odoo writes (change the password once from the "
    "database manager), and keep odoo.conf out of Git or in a Secret.",
)
def master_password_hashed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            value = conf.options.get("admin_passwd")
            if value in (None, "", "False"):
                continue
            hashed = value.startswith("$pbkdf2")
            yield Outcome(
                hashed,
                "admin_passwd is a pbkdf2 hash"
                if hashed
                else "admin_passwd is in clear",
                environment=view.name,
                resource=conf.resource,
                evidence=(Evidence("admin_passwd", conf.at("admin_passwd")),),
            )


# -- the proxy, the manifests and the backup transport


@rule(
    "SEC-004",
    Area.SECURITY,
    Severity.HIGH,
    "The proxy blocks /web/database while the database manager is open",
    "With list_db on (Odoo's default), anyone who reaches /web/database can list the "
    "databases and, with the master password, back up, drop or restore them.",
    "Set list_db = False, and deny /web/database at the proxy or allow it only from "
    "an admin network. The same operations stay reachable as the `db` service on "
    "/xmlrpc/2/db and /jsonrpc, so list_db = False and a strong master password "
    "remain the main defence.",
    snippet="apiVersion: traefik.io/v1alpha1\n"
    "kind: Middleware\n"
    "metadata:\n  name: admin-only\n"
    "spec:\n  ipAllowList:\n    sourceRange: [10.0.0.0/8]\n"
    "---\n"
    "# in the IngressRoute, before the catch-all route:\n"
    "- match: Host(`erp.example.com`) && PathPrefix(`/web/database`)\n"
    "  middlewares: [{name: admin-only}]\n"
    "  services: [{name: odoo, port: 8069}]",
)
def database_manager_blocked(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        servers = odoo_servers(view.manifests)
        routing = load_routing(view.manifests, servers)
        for server in servers:
            enabled = server.flag("list_db")
            if enabled is False:
                continue
            state = "on" if enabled else "not set (Odoo's default is True)"
            list_db = Evidence(
                f"list_db {state}",
                server.get("list_db").location
                if server.get("list_db")
                else server.location,
            )
            if server.workload is not None:
                for opening in openings(server.workload, routing.services):
                    yield Outcome(
                        False,
                        f"list_db is {state} and Odoo is reachable without the proxy: "
                        f"{opening.text}",
                        environment=view.name,
                        resource=server.resource,
                        evidence=(Evidence(opening.text, opening.location), list_db),
                    )
            for host in routing.hosts(server):
                yield _database_path(view.name, routing, server, host, state, list_db)


def _database_path(
    environment: str,
    routing: Routing,
    server: OdooServer,
    host: str | None,
    state: str,
    list_db: Evidence,
) -> Outcome:
    label = host or "every host"
    route = routing.routes.winner(host, "/web/database/manager")
    if route is None:
        return Outcome(
            True,
            f"{label}: no route serves /web/database",
            environment=environment,
            resource=server.resource,
            evidence=(list_db,),
        )
    evidence = (Evidence("route serving /web/database", route.location), list_db)
    restriction = routing.routes.restriction(route)
    target = routing.target(route)
    if restriction is not None:
        passed, message = True, f"/web/database is restricted by {restriction}"
    elif target is not None and not target.odoo:
        passed, message = True, f"/web/database goes to {route.service}, not to Odoo"
    else:
        passed = False
        message = f"/web/database reaches Odoo through {route.resource} with list_db "
        message += state
    return Outcome(
        passed,
        f"{label}: {message}",
        environment=environment,
        resource=route.resource,
        evidence=evidence,
    )


# Variables that images write into admin_passwd. camptocamp's docker-odoo-project
# reads ADMIN_PASSWD. The other names are plausible spellings for custom images, not
# taken from a known image.
MASTER_PASSWORD_VARIABLES = (
    "ADMIN_PASSWD",
    "ODOO_ADMIN_PASSWD",
    "ODOO_MASTER_PASSWORD",
    "MASTER_PASSWORD",
)


@rule(
    "SEC-005",
    Area.SECURITY,
    Severity.HIGH,
    "The master password is kept out of ConfigMaps and manifests in Git",
    "A master password in clear in a ConfigMap is readable by anyone allowed to view "
    "the namespace, and one in a manifest tracked by Git (a Secret is only base64) is "
    "readable by everyone with the repository, forever, in its history.",
    "Keep odoo.conf (or the variable holding admin_passwd) in a Secret created from "
    "a secret store (External Secrets, Sealed Secrets, SOPS), reference it from the "
    "pod, and store the $pbkdf2-sha512$ hash rather than the password.",
    snippet="env:\n"
    "  - name: ADMIN_PASSWD\n"
    "    valueFrom:\n"
    "      secretKeyRef: {name: odoo-secrets, key: admin_passwd}",
)
def master_password_stored_safely(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            if conf.holder is not None:
                outcome = _conf_storage(view.name, conf)
                if outcome is not None:
                    yield outcome
        for workload in view.workloads:
            for container in workload.containers:
                for name in MASTER_PASSWORD_VARIABLES:
                    if name in container.env:
                        yield _variable_storage(view.name, workload, container, name)


def _conf_storage(environment: str, conf: OdooConf) -> Outcome | None:
    value = conf.options.get("admin_passwd")
    if value in (None, "", "False"):
        return None
    holder = conf.holder
    hashed = value.startswith("$pbkdf2")
    form = "a pbkdf2 hash" if hashed else "in clear"
    evidence = (Evidence(f"admin_passwd in {holder.ref}", conf.at("admin_passwd")),)
    if holder.kind == "ConfigMap":
        passed = hashed
        message = f"admin_passwd is {form} in the ConfigMap {holder.name}"
    elif holder.kind != "Secret":
        # The custom resource of an Odoo operator.
        passed = hashed
        message = (
            f"admin_passwd is {form} in the {holder.kind} {holder.name}, readable by "
            "anyone who can read the resource or its manifest"
        )
    elif tracked_by_git(conf.location.file):
        passed = hashed
        message = (
            f"admin_passwd is {form} in the Secret {holder.name}, whose manifest is "
            "tracked by Git (base64 is not encryption)"
        )
    else:
        passed, message = True, f"admin_passwd is in the Secret {holder.name}"
    return Outcome(
        passed,
        message,
        environment=environment,
        resource=holder.ref,
        evidence=evidence,
    )


def _variable_storage(
    environment: str, workload: Workload, container: Container, name: str
) -> Outcome:
    source = container.env_sources.get(name)
    location = container.env_locations.get(name) or workload.location
    value = container.env[name]
    if source is not None and source.startswith("secret"):
        passed, message = True, f"{name} comes from the {source}"
    elif source is not None and source.startswith("configMap"):
        passed, message = False, f"{name} comes from the {source}, not a Secret"
    elif source is not None or not value or value.startswith("$pbkdf2"):
        passed, message = True, f"{name} is not written in the manifest in clear"
    else:
        passed, message = False, f"{name} is written in the manifest in clear"
    return Outcome(
        passed,
        message,
        environment=environment,
        resource=workload.ref,
        evidence=(Evidence(name, location),),
    )


@rule(
    "SEC-006",
    Area.SECURITY,
    Severity.HIGH,
    "Backups travel to object storage over verified TLS",
    "A backup sent to an http:// endpoint, or over TLS without certificate checks, "
    "can be read or altered on the way, and it holds all of a tenant's data, personal "
    "data included.",
    "Use the https:// endpoint of the object storage (with its CA if private), and "
    "leave certificate verification on.",
    snippet="backup:\n"
    "  barmanObjectStore:\n"
    "    endpointURL: https://s3.example.com\n"
    "    endpointCA: {name: s3-ca, key: ca.crt}",
)
def backups_over_tls(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for endpoint in backup_endpoints(view.manifests):
            severity = None
            if not endpoint.verify:
                passed = False
                message = f"{endpoint.declared_by}: TLS certificate verification is off"
                severity = Severity.MEDIUM
            elif endpoint.encrypted:
                passed, message = True, f"{endpoint.declared_by}: {endpoint.url}"
            elif endpoint.loopback:
                passed = True
                message = f"{endpoint.declared_by}: {endpoint.url} stays on this host"
            else:
                passed = False
                message = f"{endpoint.declared_by}: {endpoint.url} is plain HTTP"
                if endpoint.in_cluster:
                    message += " (inside the cluster or compose network)"
                    severity = Severity.MEDIUM
            yield Outcome(
                passed,
                message,
                environment=view.name,
                resource=endpoint.resource,
                evidence=(Evidence(endpoint.url, endpoint.location),),
                severity=severity,
            )
