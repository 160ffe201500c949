"""HTTP routes in front of Odoo: Ingress, Traefik IngressRoute and compose labels.

Each route is read into one shape (hosts, paths, backend service and port,
middlewares), so rules ask the same questions of every proxy: which route serves
`/websocket` on a host, and does anything deny `/web/database`. Traefik's
IngressRoute is read in both API groups, `traefik.io` and the older
`traefik.containo.us`; compose services are read from `traefik.http.*` labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from odoo_dr.review.evidence.objects import K8sObject, Workload
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.yamlio import Location

if TYPE_CHECKING:
    from odoo_dr.review.evidence.manifests import ManifestSet

TRAEFIK_GROUPS = ("traefik.io", "traefik.containo.us")
# Middleware types that keep a path from the public: by source address or login.
RESTRICTING_MIDDLEWARES = {
    "ipallowlist",
    "ipwhitelist",
    "basicauth",
    "digestauth",
    "forwardauth",
}
NGINX = "nginx.ingress.kubernetes.io/"
_NGINX_RESTRICTIONS = (
    "whitelist-source-range",
    "allowlist-source-range",
    "auth-url",
    "auth-type",
)
_MATCHER = re.compile(
    r"(!?)\s*(HostRegexp|Host|PathRegexp|PathPrefix|Path)\s*\(([^)]*)\)"
)
_ARGUMENT = re.compile(r"[`\"]([^`\"]*)[`\"]")
_DENY = re.compile(r"deny\s+all|return\s+4\d\d")


@dataclass(frozen=True)
class PathMatch:
    """A path a route matches: `prefix` (by path element, Kubernetes' Prefix),
    `string` (a plain string prefix, Traefik's PathPrefix), `exact` or `regex`."""

    value: str
    kind: str = "prefix"

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.value
        if self.kind == "string":
            return path.startswith(self.value)
        if self.kind == "regex":
            try:
                return re.match(self.value, path) is not None
            except re.error:
                return False
        base = self.value.rstrip("/")
        return not base or path == base or path.startswith(base + "/")


@dataclass
class Route:
    kind: str
    resource: str
    namespace: str | None
    location: Location
    hosts: tuple[str, ...] = ()
    host_patterns: tuple[str, ...] = ()
    paths: tuple[PathMatch, ...] = ()
    service: str | None = None
    port: int | str | None = None
    middlewares: tuple[str, ...] = ()
    priority: int = 0
    # What denies or restricts every path of this route at the proxy itself.
    blocked_by: str | None = None
    restricted_by: str | None = None
    # The compose service a label route sends to.
    compose: Workload | None = None

    def serves(self, host: str | None) -> bool:
        """Return whether a request for `host` can reach this route; None stands
        for a request that only routes without host serve."""
        if not self.hosts and not self.host_patterns:
            return True
        if host is None:
            return False
        if host in self.hosts or host in self.host_patterns:
            return True
        return any(_host_matches(pattern, host) for pattern in self.host_patterns)

    def match(self, path: str) -> int | None:
        """Return how specific the route's match of `path` is, or None if it does
        not match."""
        if not self.paths:
            return 0
        lengths = [len(item.value) for item in self.paths if item.matches(path)]
        return max(lengths) if lengths else None


def _host_matches(pattern: str, host: str) -> bool:
    # Traefik v2 writes `{name:regexp}` or `{name}` inside HostRegexp.
    regex = re.sub(r"\{[^}:]+:([^}]+)\}", r"(\1)", pattern)
    regex = re.sub(r"\{[^}]+\}", r"[^.]+", regex)
    try:
        return re.fullmatch(regex, host) is not None
    except re.error:
        return False


def parse_rule(rule: str) -> tuple[list[str], list[str], list[PathMatch]]:
    """Read hosts, host patterns and paths from a Traefik rule; negated matchers
    are left out."""
    hosts: list[str] = []
    patterns: list[str] = []
    paths: list[PathMatch] = []
    for negated, matcher, arguments in _MATCHER.findall(rule):
        if negated:
            continue
        values = _ARGUMENT.findall(arguments)
        if matcher == "Host":
            hosts += values
        elif matcher == "HostRegexp":
            patterns += values
        else:
            kind = {"Path": "exact", "PathPrefix": "string"}.get(matcher, "regex")
            paths += [PathMatch(value, kind) for value in values]
    return hosts, patterns, paths


# -- Ingress


def _ingress_path(raw: dict, annotations: dict) -> PathMatch:
    value = str(raw.get("path") or "/")
    kind = str(raw.get("pathType", "ImplementationSpecific"))
    if kind == "Exact":
        return PathMatch(value, "exact")
    if kind == "Prefix":
        return PathMatch(value, "prefix")
    if str(annotations.get(NGINX + "use-regex", "")).lower() == "true":
        return PathMatch(value, "regex")
    return PathMatch(value, "string")


def _ingress_backend(raw: dict) -> tuple[str | None, int | str | None]:
    service = as_dict(raw.get("service"))
    if service:
        port = as_dict(service.get("port"))
        number = port.get("number")
        name = str(service.get("name"))
        return name, number if number is not None else port.get("name")
    # networking.k8s.io/v1beta1 and extensions/v1beta1
    if "serviceName" in raw:
        return str(raw["serviceName"]), raw.get("servicePort")
    return None, None


def _ingress_routes(item: K8sObject) -> list[Route]:
    annotations = as_dict(item.get("metadata", "annotations"))
    restriction = next(
        (NGINX + key for key in _NGINX_RESTRICTIONS if NGINX + key in annotations),
        None,
    )
    middlewares = tuple(
        part.strip()
        for part in str(
            annotations.get("traefik.ingress.kubernetes.io/router.middlewares", "")
        ).split(",")
        if part.strip()
    )
    common = dict(
        kind="Ingress",
        resource=item.ref,
        namespace=item.namespace,
        middlewares=middlewares,
        restricted_by=restriction,
    )
    routes = []
    hosts: list[str] = []
    for rule_index, rule in enumerate(as_list(item.get("spec", "rules"))):
        rule = as_dict(rule)
        host = (str(rule["host"]),) if rule.get("host") else ()
        hosts += host
        paths = as_list(as_dict(rule.get("http")).get("paths"))
        for path_index, raw in enumerate(paths):
            raw = as_dict(raw)
            service, port = _ingress_backend(as_dict(raw.get("backend")))
            location = item.at("spec", "rules", rule_index, "http", "paths", path_index)
            routes.append(
                Route(
                    **common,
                    location=location,
                    hosts=host,
                    paths=(_ingress_path(raw, annotations),),
                    service=service,
                    port=port,
                )
            )
    default = item.get("spec", "defaultBackend") or item.get("spec", "backend")
    if isinstance(default, dict):
        service, port = _ingress_backend(default)
        at = item.at(
            "spec",
            "defaultBackend" if "defaultBackend" in item.get("spec") else "backend",
        )
        routes.append(Route(**common, location=at, service=service, port=port))
    for key in ("server-snippet", "configuration-snippet"):
        snippet = str(annotations.get(NGINX + key, ""))
        if "/web/database" in snippet and _DENY.search(snippet):
            routes.append(
                Route(
                    **common,
                    location=item.at("metadata", "annotations", NGINX + key),
                    hosts=tuple(hosts),
                    paths=(PathMatch("/web/database", "string"),),
                    # The snippet runs before any path of the Ingress is chosen.
                    priority=1_000_000,
                    blocked_by=f"{NGINX}{key} denies /web/database",
                )
            )
    return routes


# -- Traefik


@dataclass
class Middleware:
    name: str
    kind: str
    members: tuple[str, ...] = ()
    location: Location | None = None


def _crd_middlewares(manifests: ManifestSet) -> dict[str, Middleware]:
    """Middlewares by `name`, `namespace/name` and `namespace-name` (the form an
    Ingress annotation uses)."""
    found: dict[str, Middleware] = {}
    for group in TRAEFIK_GROUPS:
        for item in manifests.of_kind("Middleware", group=group):
            spec = as_dict(item.get("spec"))
            kind = next(iter(spec), "")
            members = tuple(
                str(as_dict(member).get("name"))
                for member in as_list(as_dict(spec.get("chain")).get("middlewares"))
            )
            middleware = Middleware(item.name, kind.lower(), members, item.location)
            found[item.name] = middleware
            if item.namespace:
                found[f"{item.namespace}/{item.name}"] = middleware
                found[f"{item.namespace}-{item.name}"] = middleware
    return found


def _ingressroute_routes(item: K8sObject) -> list[Route]:
    routes = []
    for index, raw in enumerate(as_list(item.get("spec", "routes"))):
        raw = as_dict(raw)
        rule = str(raw.get("match", ""))
        hosts, patterns, paths = parse_rule(rule)
        services = [as_dict(service) for service in as_list(raw.get("services"))]
        first = services[0] if services else {}
        middlewares = []
        for middleware in map(as_dict, as_list(raw.get("middlewares"))):
            namespace = middleware.get("namespace")
            name = str(middleware.get("name"))
            middlewares.append(f"{namespace}/{name}" if namespace else name)
        name = first.get("name")
        routes.append(
            Route(
                kind="IngressRoute",
                resource=item.ref,
                namespace=first.get("namespace") or item.namespace,
                location=item.at("spec", "routes", index),
                hosts=tuple(hosts),
                host_patterns=tuple(patterns),
                paths=tuple(paths),
                service=str(name) if name is not None else None,
                port=first.get("port"),
                middlewares=tuple(middlewares),
                priority=traefik_priority(raw.get("priority"), rule),
                blocked_by=f"service {name}"
                if str(name).endswith("@internal")
                else None,
            )
        )
    return routes


def traefik_priority(value: object, rule: str) -> int:
    """Return a router's priority: the one set, else the length of its rule, which
    is Traefik's default, so that the longer of two matching rules wins."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    return len(rule)


def _label_routes(workload: Workload) -> tuple[list[Route], dict[str, Middleware]]:
    """Read a compose service's `traefik.http.routers.*`, `services.*` and
    `middlewares.*` labels; Traefik reads label names without regard to case."""
    routers: dict[str, dict[str, str]] = {}
    ports: dict[str, str] = {}
    middlewares: dict[str, Middleware] = {}
    lines: dict[str, Location] = {}
    for key, value in workload.labels.items():
        parts = key.split(".")
        lowered = [part.lower() for part in parts]
        if lowered[:3] == ["traefik", "http", "routers"] and len(parts) == 5:
            routers.setdefault(parts[3], {})[lowered[4]] = value
            if lowered[4] == "rule":
                lines[parts[3]] = workload.label_locations.get(key, workload.location)
        elif lowered[:3] == ["traefik", "http", "services"] and lowered[-1] == "port":
            ports[parts[3]] = value
        elif lowered[:3] == ["traefik", "http", "middlewares"] and len(parts) >= 5:
            middlewares[parts[3]] = Middleware(
                parts[3], lowered[4], location=workload.label_locations.get(key)
            )
            if lowered[4] == "chain" and lowered[-1] == "middlewares":
                middlewares[parts[3]].members = tuple(
                    item.strip() for item in value.split(",")
                )
    routes = []
    for name, router in routers.items():
        if "rule" not in router:
            continue
        hosts, patterns, paths = parse_rule(router["rule"])
        service = router.get("service") or (
            next(iter(ports)) if len(ports) == 1 else None
        )
        port = ports.get(service or "")
        routes.append(
            Route(
                kind="Traefik labels",
                resource=f"{workload.ref} router {name}",
                namespace=None,
                location=lines[name],
                hosts=tuple(hosts),
                host_patterns=tuple(patterns),
                paths=tuple(paths),
                service=service,
                port=int(port) if port and port.isdigit() else None,
                middlewares=tuple(
                    item.strip()
                    for item in router.get("middlewares", "").split(",")
                    if item.strip()
                ),
                priority=traefik_priority(router.get("priority"), router["rule"]),
                blocked_by=f"service {service}"
                if service and service.endswith("@internal")
                else None,
                compose=workload,
            )
        )
    return routes, middlewares


@dataclass
class RouteSet:
    routes: list[Route] = field(default_factory=list)
    middlewares: dict[str, Middleware] = field(default_factory=dict)

    def restriction(self, route: Route) -> str | None:
        """Return what restricts every request on `route`, if anything does."""
        if route.blocked_by or route.restricted_by:
            return route.blocked_by or route.restricted_by
        for reference in route.middlewares:
            found = self._restricting(reference, set())
            if found:
                return f"middleware {found}"
        return None

    def _restricting(self, reference: str, seen: set[str]) -> str | None:
        name = reference.split("@")[0]
        if name in seen:
            return None
        seen.add(name)
        middleware = self.middlewares.get(name)
        if middleware is None:
            return None
        if middleware.kind in RESTRICTING_MIDDLEWARES:
            return f"{reference} ({middleware.kind})"
        for member in middleware.members:
            found = self._restricting(member, seen)
            if found:
                return found
        return None

    def _candidates(self, host: str | None) -> list[Route]:
        """Return the routes that may serve `host`, in order: those naming it, and
        those with no host or a host pattern. The index is built again when routes
        are added."""
        index = self.__dict__.get("_by_host")
        if index is None or index[0] != len(self.routes):
            by_host: dict[str, list[int]] = {}
            anywhere: list[int] = []
            for position, route in enumerate(self.routes):
                if route.host_patterns or not route.hosts:
                    anywhere.append(position)
                for name in route.hosts:
                    by_host.setdefault(name, []).append(position)
            index = (len(self.routes), by_host, anywhere)
            self.__dict__["_by_host"] = index
        _size, by_host, anywhere = index
        positions = sorted({*by_host.get(host or "", ()), *anywhere})
        return [self.routes[position] for position in positions]

    def winner(self, host: str | None, path: str) -> Route | None:
        """Return the route that serves `path` on `host`: the highest priority, then
        the longest matching path, as Ingress controllers and Traefik choose."""
        best, best_key = None, None
        for route in self._candidates(host):
            if not route.serves(host):
                continue
            specificity = route.match(path)
            if specificity is None:
                continue
            key = (route.priority, specificity, bool(route.blocked_by))
            if best_key is None or key > best_key:
                best, best_key = route, key
        return best


def load_routes(manifests: ManifestSet) -> RouteSet:
    found = RouteSet(middlewares=_crd_middlewares(manifests))
    for item in manifests.of_kind("Ingress", group="networking.k8s.io"):
        found.routes += _ingress_routes(item)
    for item in manifests.of_kind("Ingress", group="extensions"):
        found.routes += _ingress_routes(item)
    for group in TRAEFIK_GROUPS:
        for item in manifests.of_kind("IngressRoute", group=group):
            found.routes += _ingressroute_routes(item)
    for workload in manifests.compose:
        routes, middlewares = _label_routes(workload)
        found.routes += routes
        found.middlewares.update(middlewares)
    return found
