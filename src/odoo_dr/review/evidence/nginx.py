"""nginx configurations in front of Odoo, read into routes.

Each `location` inside a `server` block becomes a route. Its hosts come from
`server_name`, and its path from the location: `=` is exact, `~` and `~*` are regular
expressions, anything else a prefix. Its backend is the `proxy_pass` address, with an
`upstream` replaced by its first server. `deny all` or `return 4xx` block it. The
parser reads blocks and directives, not nginx's variables, `include`s or `if`
blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from odoo_dr.review.evidence.objects import Workload
from odoo_dr.review.evidence.routes import PathMatch, Route
from odoo_dr.review.yamlio import Location

if TYPE_CHECKING:
    from odoo_dr.review.evidence.manifests import ManifestSet

_TOKEN = re.compile(r"#[^\n]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};]+")
PROXY_IMAGES = ("nginx", "openresty")


@dataclass
class Directive:
    name: str
    args: list[str]
    line: int
    children: list[Directive] = field(default_factory=list)

    def all(self, name: str) -> list[Directive]:
        return [item for item in self.children if item.name == name]

    def first(self, name: str) -> Directive | None:
        return next(iter(self.all(name)), None)


def parse(text: str) -> Directive:
    """Parse nginx configuration text into a tree of directives.

    Raises ValueError on unbalanced braces.
    """
    root = Directive("", [], 1)
    stack = [root]
    words: list[tuple[str, int]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token.startswith("#"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        if token in {";", "{"}:
            if words:
                directive = Directive(
                    words[0][0], [word for word, _ in words[1:]], words[0][1]
                )
                stack[-1].children.append(directive)
                if token == "{":
                    stack.append(directive)
            words = []
        elif token == "}":
            if len(stack) == 1:
                raise ValueError(f"unexpected '}}' on line {line}")
            stack.pop()
            words = []
        else:
            words.append((token.strip("\"'"), line))
    if len(stack) != 1:
        raise ValueError(f"block opened on line {stack[-1].line} is not closed")
    return root


def looks_like_nginx(text: str) -> bool:
    return bool(re.search(r"^\s*(server|location|upstream)\b[^;]*\{", text, re.M))


# Route priorities that follow nginx's order: an exact location first, then a `^~`
# prefix, then regular expressions, then the longest plain prefix.
_PRIORITY = {"=": 3, "^~": 2, "~": 1, "~*": 1}


def _path(args: list[str]) -> tuple[PathMatch, int] | None:
    """Return the path a location matches and its priority among locations."""
    if not args:
        return None
    if len(args) == 1:
        return PathMatch(args[0], "string"), 0
    modifier, value = args[0], args[1]
    priority = _PRIORITY.get(modifier, 0)
    if modifier == "=":
        return PathMatch(value, "exact"), priority
    if modifier in {"~", "~*"}:
        flags = "(?i)" if modifier == "~*" else ""
        return PathMatch(flags + value, "regex"), priority
    return PathMatch(value, "string"), priority


def _restriction(location: Directive) -> tuple[str | None, str | None]:
    """Return what blocks the location outright, and what restricts it to some
    clients."""
    path = " ".join(location.args)
    denied = any(item.args == ["all"] for item in location.all("deny"))
    returned = [
        item for item in location.all("return") if item.args and item.args[0][:1] == "4"
    ]
    if returned:
        return f"nginx location {path} returns {returned[0].args[0]}", None
    if denied and not location.all("allow"):
        return f"nginx location {path} denies all", None
    if denied:
        return None, f"nginx location {path} allows only some addresses"
    auth = location.first("auth_basic")
    if (auth and auth.args != ["off"]) or location.first("auth_request"):
        return None, f"nginx location {path} requires authentication"
    return None, None


def _backend(
    location: Directive, upstreams: dict[str, tuple[str, int | None]]
) -> tuple[str | None, int | None]:
    proxy = location.first("proxy_pass")
    if proxy is None or not proxy.args:
        return None, None
    address = urlsplit(proxy.args[0])
    host = address.hostname or ""
    if host in upstreams:
        return upstreams[host]
    try:
        port = address.port
    except ValueError:
        port = None
    return host, port or (443 if address.scheme == "https" else 80)


def _upstreams(root: Directive) -> dict[str, tuple[str, int | None]]:
    found = {}
    blocks = root.all("upstream") + [
        item for http in root.all("http") for item in http.all("upstream")
    ]
    for block in blocks:
        server = block.first("server")
        if not block.args or server is None or not server.args:
            continue
        host, _, port = server.args[0].rpartition(":")
        found[block.args[0]] = (
            (host, int(port))
            if port.isdigit()
            else (
                server.args[0],
                80,
            )
        )
    return found


def routes_of(text: str, location: Location) -> list[Route]:
    """Read the routes of one configuration whose first line is at `location`."""
    root = parse(text)
    upstreams = _upstreams(root)
    servers = root.all("server") + [
        item for http in root.all("http") for item in http.all("server")
    ]
    offset = (location.line or 1) - 1
    routes = []
    for server in servers:
        names = server.first("server_name")
        hosts = tuple(
            name for name in (names.args if names else []) if name not in {"_", ""}
        )
        for block in server.all("location"):
            found = _path(block.args)
            if found is None:
                continue
            path, priority = found
            blocked, restricted = _restriction(block)
            host, port = _backend(block, upstreams)
            namespace = None
            if host and host.endswith((".svc", ".svc.cluster.local")):
                # A Service's DNS name: NAME.NAMESPACE.svc[.cluster.local].
                host, namespace = host.split(".")[:2]
            routes.append(
                Route(
                    kind="nginx",
                    resource=f"nginx {Path(location.file).name} server "
                    + (" ".join(hosts) or "(any host)"),
                    namespace=namespace,
                    location=Location(location.file, offset + block.line),
                    hosts=tuple(item for item in hosts if not item.startswith("~")),
                    host_patterns=tuple(
                        item[1:] for item in hosts if item.startswith("~")
                    ),
                    paths=(path,),
                    service=host,
                    port=port,
                    priority=priority,
                    blocked_by=blocked,
                    restricted_by=restricted,
                )
            )
    return routes


def mounted_configs(workload: Workload) -> list[tuple[str, Location]]:
    """Read the configuration files a compose nginx service bind-mounts."""
    image = workload.containers[0].image.split("@")[0].rsplit("/", 1)[-1].lower()
    if not image.startswith(PROXY_IMAGES):
        return []
    folder = Path(workload.location.file).parent
    found = []
    for volume in workload.volumes.values():
        if volume.kind != "hostPath" or not volume.claim:
            continue
        source = folder / volume.claim
        files = sorted(source.rglob("*.conf")) if source.is_dir() else [source]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if looks_like_nginx(text):
                found.append((text, Location(str(path), 1)))
    return found


def nginx_routes(manifests: ManifestSet) -> list[Route]:
    """Return the routes of every nginx configuration in the evidence. A route to a
    compose service's name is bound to that service."""
    routes: list[Route] = []
    for text, location in manifests.nginx_configs:
        for route in routes_of(text, location):
            route.compose = next(
                (item for item in manifests.compose if item.name == route.service),
                None,
            )
            routes.append(route)
    return routes
