"""Ways into Odoo, PostgreSQL and Redis: routes traced to the Odoo server and
container port behind them, and ports open outside the cluster or host."""

from __future__ import annotations

from dataclasses import dataclass

from odoo_dr.review.evidence.manifests import ManifestSet, Workload
from odoo_dr.review.evidence.network import Service, same_namespace, services
from odoo_dr.review.evidence.nginx import nginx_routes
from odoo_dr.review.evidence.odoo import OdooServer
from odoo_dr.review.evidence.routes import Route, RouteSet, load_routes
from odoo_dr.review.yamlio import Location

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Images of proxies that, in a compose file, put Odoo behind them.
PROXY_IMAGES = ("nginx", "traefik", "caddy", "haproxy", "envoy", "apache", "httpd")


@dataclass
class Target:
    """The destination of a route: an Odoo server and container port, when known."""

    route: Route
    server: OdooServer | None
    port: int | None
    odoo: bool


@dataclass
class Routing:
    routes: RouteSet
    targets: list[Target]
    services: list[Service]

    def target(self, route: Route) -> Target | None:
        return next((item for item in self.targets if item.route is route), None)

    def odoo_targets(self) -> list[Target]:
        return [item for item in self.targets if item.odoo]

    def hosts(self, server: OdooServer | None = None) -> list[str | None]:
        """Return the hosts (or host patterns; None for routes without host) whose
        routes reach Odoo, or reach `server`."""
        found: list[str | None] = []
        for target in self.odoo_targets():
            if server is not None and target.server is not server:
                continue
            route = target.route
            for host in [*route.hosts, *route.host_patterns] or [None]:
                if host not in found:
                    found.append(host)
        return found


class _Backends:
    """The Services by name and the Odoo servers by pod label, so that resolving
    every route costs time in proportion to the routes, not routes times servers."""

    def __init__(self, servers: list[OdooServer], known: list[Service]) -> None:
        self.servers = servers
        self.services: dict[str, list[Service]] = {}
        for service in known:
            self.services.setdefault(service.name, []).append(service)
        self.by_label: dict[tuple[str, str], list[OdooServer]] = {}
        for server in servers:
            if server.workload is not None:
                for pair in server.workload.pod_labels.items():
                    self.by_label.setdefault(pair, []).append(server)

    def service(self, route: Route) -> Service | None:
        return next(
            (
                item
                for item in self.services.get(route.service or "", ())
                if same_namespace(item.namespace, route.namespace)
            ),
            None,
        )

    def selected(self, service: Service) -> list[OdooServer]:
        """Return the servers `service` selects, in the order of `servers`."""
        candidates = self.servers
        if service.selector.labels:
            # The rarest label of the selector narrows the servers most.
            candidates = min(
                (
                    self.by_label.get(pair, [])
                    for pair in service.selector.labels.items()
                ),
                key=len,
            )
        return [
            item
            for item in candidates
            if item.workload is not None and service.selects(item.workload)
        ]


def _resolve(route: Route, servers: list[OdooServer], backends: _Backends) -> Target:
    if route.blocked_by:
        return Target(route, None, None, False)
    if route.kind == "nginx" and route.compose is None and route.service in LOOPBACK:
        # nginx on the Odoo host itself, in front of the only Odoo server known.
        if len(servers) == 1:
            return Target(route, servers[0], route.port, True)
        return Target(route, None, None, False)
    if route.compose is not None:
        server = next(
            (item for item in servers if item.workload is route.compose), None
        )
        if server is None:
            return Target(route, None, None, False)
        port = route.port if isinstance(route.port, int) else None
        if port is None:
            # Traefik picks the lowest port the container exposes.
            port = min(server.container.ports, default=server.http_port)
        return Target(route, server, port, True)
    service = backends.service(route)
    if service is None:
        odoo = route.service is not None and "odoo" in route.service.lower()
        return Target(route, None, None, odoo)
    selected = backends.selected(service)
    if not selected:
        return Target(route, None, None, False)
    port = service.target_port(route.port, [item.workload for item in selected])
    return Target(route, selected[0], port, True)


def load_routing(manifests: ManifestSet, servers: list[OdooServer]) -> Routing:
    """Return the routes to Odoo and where each leads. Several rules ask with the
    same servers; the result is cached on `manifests` for them."""
    cache = manifests.__dict__.setdefault("_routing", {})
    key = (len(manifests.objects), tuple(id(server) for server in servers))
    if key not in cache:
        routes = load_routes(manifests)
        routes.routes += nginx_routes(manifests)
        known = services(manifests)
        backends = _Backends(servers, known)
        targets = [_resolve(route, servers, backends) for route in routes.routes]
        cache[key] = Routing(routes, targets, known)
    return cache[key]


def behind_proxy(
    server: OdooServer, routing: Routing, manifests: ManifestSet
) -> Location | None:
    """Return where a proxy in front of `server` is declared, or None."""
    workload = server.workload
    for target in routing.odoo_targets():
        if target.server is server:
            return target.route.location
        # A route to a Service named like Odoo that the manifests do not define.
        if target.server is None and workload and workload.kind != "ComposeService":
            return target.route.location
    if workload is not None and workload.kind == "ComposeService":
        for other in manifests.compose:
            if other.location.file != workload.location.file or other is workload:
                continue
            for container in other.containers:
                name = container.image.split("@")[0].rsplit("/", 1)[-1].lower()
                if any(name.startswith(proxy) for proxy in PROXY_IMAGES):
                    return other.location
    return None


@dataclass
class Opening:
    """A way in from outside the cluster or host."""

    text: str
    location: Location
    restriction: str | None = None


def openings(workload: Workload, known: list[Service]) -> list[Opening]:
    """List the external Services selecting `workload` and the ports it publishes
    on its host or node beyond the loopback interface."""
    found = []
    for service in known:
        if service.external and service.selects(workload):
            found.append(
                Opening(
                    f"Service {service.name} is {service.type}",
                    service.source.at("spec", "type"),
                    service.restriction,
                )
            )
    for port in workload.published:
        if port.loopback_only:
            continue
        where = port.host_ip or "every interface"
        published = port.published or "a random port"
        found.append(
            Opening(
                f"port {port.target or 'all'} published on {where} as {published}",
                port.location,
            )
        )
    return found


def unmatched_openings(
    port: int, workloads: list[Workload], known: list[Service]
) -> list[tuple[Service, Opening]]:
    """External Services on `port` that select none of the known workloads, such as
    those in front of an operator's pods or a database outside the manifests."""
    found = []
    for service in known:
        if not service.external or any(service.selects(item) for item in workloads):
            continue
        if any(port in (item.port, item.target) for item in service.ports):
            found.append(
                (
                    service,
                    Opening(
                        f"Service {service.name} is {service.type} on port {port}",
                        service.source.at("spec", "type"),
                        service.restriction,
                    ),
                )
            )
    return found
