"""Kubernetes and proxy rules: websocket routing, proxy mode, what is reachable from
outside, network policies and image pinning."""

from __future__ import annotations

import re
from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence.exposure import (
    Routing,
    Target,
    behind_proxy,
    load_routing,
    openings,
    unmatched_openings,
)
from odoo_dr.review.evidence.manifests import Workload
from odoo_dr.review.evidence.network import (
    POSTGRES_PORT,
    REDIS_PORT,
    network_policies,
    services,
)
from odoo_dr.review.evidence.odoo import OdooServer, odoo_servers
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule

# Tags that name a branch, not a build: they move to each new nightly image.
_MOVING_TAG = re.compile(r"^(latest|stable|master|main|\d+(\.\d+)?|saas-[\d.]+)$")


def _server_evidence(server: OdooServer, key: str, text: str) -> Evidence:
    setting = server.get(key)
    if setting is not None:
        return Evidence(f"{text} ({setting.origin})", setting.location)
    return Evidence(f"{text} (not set)", server.location)


@rule(
    "K8S-001",
    Area.KUBERNETES,
    Severity.HIGH,
    "Websocket (or longpolling) requests reach Odoo's gevent port",
    "With workers > 0, Odoo serves /websocket (Odoo 16 and later) or /longpolling "
    "(earlier) only on its gevent port, so a proxy that sends them to the HTTP port "
    "breaks chat, notifications and live updates for every user.",
    "On every route to Odoo, send /websocket (or /longpolling before Odoo 16) to the "
    "gevent port (gevent_port, 8072 by default) with a more specific path.",
    snippet="- kind: Rule\n"
    "  match: Host(`erp.example.com`) && PathPrefix(`/websocket`)\n"
    "  services:\n"
    "    - name: odoo\n"
    "      port: 8072",
)
def websocket_routed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        servers = odoo_servers(view.manifests)
        routing = load_routing(view.manifests, servers)
        for host in routing.hosts():
            main = routing.routes.winner(host, "/web")
            target = routing.target(main) if main is not None else None
            if target is None or target.server is None or target.server.workers == 0:
                continue
            yield _websocket_outcome(view, routing, host, target)


def _websocket_paths(server: OdooServer) -> list[str]:
    if server.version is None:
        return ["/websocket", "/longpolling"]
    return ["/websocket"] if server.version >= 16 else ["/longpolling"]


def _websocket_outcome(
    view: EnvironmentView, routing: Routing, host: str | None, main: Target
) -> Outcome:
    server = main.server
    label = host or "every host"
    workers = _server_evidence(server, "workers", f"workers = {server.workers}")
    failures = []
    for path in _websocket_paths(server):
        # Odoo before 16 polls /longpolling/poll, while 16 and later open
        # /websocket.
        request = path + "/poll" if path == "/longpolling" else path
        route = routing.routes.winner(host, request)
        target = routing.target(route) if route is not None else None
        if route is None or target is None or not target.odoo:
            failures.append((path, route, f"no route sends {path} to Odoo", False))
            continue
        gevent = (target.server or server).gevent_port
        if target.port == gevent:
            return Outcome(
                True,
                f"{label}: {path} goes to the gevent port {gevent}",
                environment=view.name,
                resource=route.resource,
                evidence=(Evidence(f"{path} route", route.location), workers),
            )
        if target.port is None:
            message = (
                f"{path} goes to {route.service} port {route.port}, which could not "
                "be traced to a container port"
            )
            failures.append((path, route, message, True))
        else:
            message = (
                f"{path} goes to port {target.port}, not to the gevent port {gevent}"
            )
            failures.append((path, route, message, False))
    path, route, message, unknown = failures[0]
    route = route or main.route
    return Outcome(
        False,
        f"{label}: {message} (workers = {server.workers})",
        environment=view.name,
        resource=route.resource,
        evidence=(Evidence(f"route for {path}", route.location), workers),
        severity=Severity.LOW if unknown else None,
    )


@rule(
    "K8S-002",
    Area.KUBERNETES,
    Severity.MEDIUM,
    "Odoo behind a proxy runs with proxy_mode = True",
    "Without proxy_mode, Odoo ignores the X-Forwarded-* headers, so it logs the "
    "proxy's address for every client and, behind a TLS proxy, builds http:// links "
    "and redirects and stores an http:// web.base.url.",
    "Set proxy_mode = True in odoo.conf (or pass --proxy-mode), and let only the proxy "
    "reach Odoo.",
    snippet="[options]\nproxy_mode = True",
)
def proxy_mode_on(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        servers = odoo_servers(view.manifests)
        routing = load_routing(view.manifests, servers)
        for server in servers:
            proxy = behind_proxy(server, routing, view.manifests)
            if proxy is None:
                continue
            enabled = bool(server.flag("proxy_mode"))
            yield Outcome(
                enabled,
                "proxy_mode is on"
                if enabled
                else "Odoo is behind a proxy but proxy_mode is "
                + ("off" if server.get("proxy_mode") else "not set (default False)"),
                environment=view.name,
                resource=server.resource,
                evidence=(
                    _server_evidence(server, "proxy_mode", "proxy_mode"),
                    Evidence("proxy in front of Odoo", proxy),
                ),
            )


def _servers(workloads: list[Workload]) -> list[Workload]:
    """Leave out jobs and metric exporters, whose images also name the database."""
    return [
        item
        for item in workloads
        if item.kind != "Job"
        and not any("exporter" in container.image for container in item.containers)
    ]


def _exposure(
    view: EnvironmentView, workloads: list[Workload], port: int, what: str
) -> Iterator[Outcome]:
    known = services(view.manifests)
    for workload in _servers(workloads):
        found = openings(workload, known)
        if not found:
            yield Outcome(
                True,
                f"{what} is reachable only inside the cluster or host",
                environment=view.name,
                resource=workload.ref,
                evidence=(Evidence(workload.ref, workload.location),),
            )
        for opening in found:
            yield Outcome(
                False,
                f"{what} is reachable from outside: {opening.text}"
                + (
                    f", limited by {opening.restriction}" if opening.restriction else ""
                ),
                environment=view.name,
                resource=workload.ref,
                evidence=(Evidence(opening.text, opening.location),),
                severity=Severity.MEDIUM if opening.restriction else None,
            )
    for service, opening in unmatched_openings(port, workloads, known):
        yield Outcome(
            False,
            f"{what} port {port} is reachable from outside: {opening.text}",
            environment=view.name,
            resource=service.source.ref,
            evidence=(Evidence(opening.text, opening.location),),
            severity=Severity.MEDIUM if opening.restriction else None,
        )


def _operator_exposure(view: EnvironmentView) -> Iterator[Outcome]:
    """CloudNativePG and Zalando clusters asking their operator for external
    Services."""
    for cluster in view.manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        additional = as_list(cluster.get("spec", "managed", "services", "additional"))
        external = [
            index
            for index, item in enumerate(additional)
            if as_dict(as_dict(as_dict(item).get("serviceTemplate")).get("spec")).get(
                "type"
            )
            in {"LoadBalancer", "NodePort"}
        ]
        for index in external:
            yield Outcome(
                False,
                "PostgreSQL is reachable from outside: the CloudNativePG cluster asks "
                "for a LoadBalancer or NodePort Service",
                environment=view.name,
                resource=cluster.ref,
                evidence=(
                    Evidence(
                        "managed.services.additional",
                        cluster.at("spec", "managed", "services", "additional", index),
                    ),
                ),
            )
        if not external:
            yield Outcome(
                True,
                "PostgreSQL is reachable only inside the cluster (CloudNativePG "
                "cluster with no external Service)",
                environment=view.name,
                resource=cluster.ref,
                evidence=(Evidence(cluster.ref, cluster.location),),
            )
    for cluster in view.manifests.of_kind("postgresql", group="acid.zalan.do"):
        for key in ("enableMasterLoadBalancer", "enableReplicaLoadBalancer"):
            if cluster.get("spec", key) is True:
                yield Outcome(
                    False,
                    f"PostgreSQL is reachable from outside: {key} is true",
                    environment=view.name,
                    resource=cluster.ref,
                    evidence=(Evidence(key, cluster.at("spec", key)),),
                )


@rule(
    "K8S-003",
    Area.KUBERNETES,
    Severity.HIGH,
    "PostgreSQL is not reachable from outside the cluster or host",
    "A database port open to the network invites password guessing and exploits "
    "against the server that holds every tenant's data.",
    "Use a ClusterIP Service (or no published port in compose, or one bound to "
    "127.0.0.1), and reach the database from outside through a bastion or "
    "kubectl port-forward.",
    snippet='ports:\n  - "127.0.0.1:5432:5432"',
)
def postgres_not_exposed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        yield from _exposure(view, view.postgres, POSTGRES_PORT, "PostgreSQL")
        yield from _operator_exposure(view)


@rule(
    "K8S-004",
    Area.KUBERNETES,
    Severity.HIGH,
    "Redis is not reachable from outside the cluster or host",
    "Redis has no password by default and holds Odoo's sessions when session_redis "
    "is used: whoever reaches it can read sessions, log in as any user, or flush "
    "them all.",
    "Use a ClusterIP Service (or no published port in compose), and set a password "
    "(requirepass or ACL users).",
)
def redis_not_exposed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        yield from _exposure(view, view.redis, REDIS_PORT, "Redis")


@rule(
    "K8S-005",
    Area.KUBERNETES,
    Severity.MEDIUM,
    "A NetworkPolicy selects the Odoo pods",
    "Without a NetworkPolicy every pod in the cluster can reach Odoo's HTTP and "
    "gevent ports directly, around the proxy and whatever it blocks, such as "
    "/web/database.",
    "Add a NetworkPolicy that selects the Odoo pods and admits only the ingress "
    "controller (and the monitoring) on Odoo's ports.",
    snippet="apiVersion: networking.k8s.io/v1\n"
    "kind: NetworkPolicy\n"
    "metadata:\n  name: odoo\n"
    "spec:\n"
    "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: odoo\n"
    "  policyTypes: [Ingress]\n"
    "  ingress:\n"
    "    - from:\n"
    "        - namespaceSelector:\n"
    "            matchLabels:\n"
    "              kubernetes.io/metadata.name: ingress\n"
    "      ports:\n        - port: 8069\n        - port: 8072",
)
def odoo_network_policy(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        policies = network_policies(view.manifests)
        for server in odoo_servers(view.manifests):
            workload = server.workload
            if workload is None or workload.kind == "ComposeService":
                continue
            if workload.operator_kind is not None:
                # The operator creates the pods, so their labels are unknown here.
                yield Outcome(
                    None,
                    f"the pods of this {workload.kind} are created by its operator, "
                    "with labels the manifests do not show",
                    environment=view.name,
                    resource=workload.ref,
                    evidence=(Evidence(workload.ref, workload.location),),
                )
                continue
            selecting = [item for item in policies if item.selects(workload)]
            yield Outcome(
                bool(selecting),
                "selected by " + ", ".join(item.source.ref for item in selecting)
                if selecting
                else "no NetworkPolicy selects these pods",
                environment=view.name,
                resource=workload.ref,
                evidence=tuple(
                    Evidence(item.source.ref, item.source.location)
                    for item in selecting
                )
                or (Evidence(workload.ref, workload.location),),
            )


def image_tag(image: str) -> str | None:
    """Return the tag of an image reference, or None when it has none."""
    name = image.split("@")[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


@rule(
    "K8S-006",
    Area.KUBERNETES,
    Severity.MEDIUM,
    "The Odoo image is pinned by digest",
    "A tag such as latest or 17.0 is moved to each new build, so a restore or a "
    "rescheduled pod can run different Odoo code than the database was last "
    "upgraded with, and the exact image may no longer exist.",
    "Reference the image by digest (name@sha256:...), keeping the tag for "
    "readers, and keep the images your backups need for as long as the backups.",
    snippet="image: odoo:17.0@sha256:<digest>",
)
def image_pinned(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for server in odoo_servers(view.manifests):
            container = server.container
            if container is None or not container.image:
                continue
            image = container.image
            location = container.image_location or container.location
            if "@sha256:" in image:
                yield Outcome(
                    True,
                    f"{image} is pinned by digest",
                    environment=view.name,
                    resource=server.resource,
                    evidence=(Evidence(image, location),),
                )
                continue
            tag = image_tag(image)
            moving = tag is None or _MOVING_TAG.match(tag) is not None
            yield Outcome(
                False,
                f"{image} "
                + (
                    "has no tag (latest)"
                    if tag is None
                    else f"uses the tag {tag}, "
                    + (
                        "which moves with each build"
                        if moving
                        else "which can be moved"
                    )
                ),
                environment=view.name,
                resource=server.resource,
                evidence=(Evidence(image, location),),
                severity=None if moving else Severity.LOW,
            )
