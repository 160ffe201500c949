"""The shapes manifests are read into: Kubernetes objects and workloads.

Workloads of Kubernetes and of docker-compose are read into one shape, so rules about
Odoo, PostgreSQL and Redis apply to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from odoo_dr.review.evidence import classify
from odoo_dr.review.yamlio import Location, line_at


@dataclass
class K8sObject:
    kind: str
    api_version: str
    name: str
    namespace: str | None
    data: Any
    location: Location
    # The chart template a Helm-rendered document came from (its `# Source:` line).
    template: str | None = None

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    def get(self, *path: str | int, default: Any = None) -> Any:
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def at(self, *path: str | int) -> Location:
        """Return the location of the value at `path` (or its nearest parent)."""
        line = line_at(self.data, path)
        return Location(self.location.file, line or self.location.line)

    @property
    def ref(self) -> str:
        namespace = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{namespace}{self.name}"


@dataclass
class Volume:
    """A pod volume or a compose mount source.

    `kind` is the Kubernetes volume type (`emptyDir`, `persistentVolumeClaim`, ...) or,
    for compose, `hostPath` (a bind mount), `namedVolume`, `anonymousVolume` or
    `tmpfs`. `claim` is the claim name, or the compose source; `reference` is the
    ConfigMap or Secret a `configMap`, `secret` or `projected` volume shows.
    """

    name: str
    kind: str
    claim: str | None = None
    reference: tuple[str, ...] = ()
    location: Location | None = None


@dataclass
class PublishedPort:
    """A container port reachable on a host's network: a compose `ports` entry, a
    Kubernetes `hostPort`, or every port of a host-network pod."""

    target: int | None
    published: str
    host_ip: str
    location: Location

    @property
    def loopback_only(self) -> bool:
        return self.host_ip in {"127.0.0.1", "::1", "localhost"}


@dataclass
class Container:
    name: str
    image: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    mounts: list[tuple[str, str]] = field(default_factory=list)
    init: bool = False
    # Variables set from elsewhere: `secret NAME/KEY`, `configMap NAME/KEY`,
    # `field PATH`, or `environment` for compose's `${VAR}` and bare names.
    env_sources: dict[str, str] = field(default_factory=dict)
    env_locations: dict[str, Location] = field(default_factory=dict)
    port_names: dict[str, int] = field(default_factory=dict)
    location: Location | None = None
    image_location: Location | None = None
    command_location: Location | None = None

    @property
    def command_text(self) -> str:
        return " ".join(self.command)


@dataclass
class Workload:
    """A Kubernetes workload or a compose service."""

    kind: str
    name: str
    namespace: str | None
    replicas: int
    containers: list[Container]
    volumes: dict[str, Volume]
    location: Location
    labels: dict[str, str] = field(default_factory=dict)
    claim_templates: list[str] = field(default_factory=list)
    schedule: str | None = None
    source: K8sObject | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    published: list[PublishedPort] = field(default_factory=list)
    label_locations: dict[str, Location] = field(default_factory=dict)
    # The custom resource kind (`OdooInstance`, ...) of an Odoo run by an operator.
    operator_kind: str | None = None
    # Claims that an operator creates from the workload's custom resource, by name:
    # their `accessModes` and `storageClassName`, and where the resource sets them.
    declared_claims: dict[str, tuple[dict, Location]] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        namespace = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{namespace}{self.name}"

    @property
    def main_containers(self) -> list[Container]:
        return [container for container in self.containers if not container.init]

    @property
    def is_odoo(self) -> bool:
        """Whether the workload runs an Odoo server (see `classify`)."""
        return self.operator_kind is not None or any(
            classify.is_odoo_container(container) for container in self.main_containers
        )

    @property
    def is_postgres(self) -> bool:
        return any(classify.is_postgres_container(c) for c in self.containers)

    @property
    def is_redis(self) -> bool:
        return any(classify.is_redis_container(c) for c in self.containers)

    @property
    def exporters(self) -> list[str]:
        """What the workload's metrics exporters watch (`postgresql`, `redis`, ...)."""
        found = [classify.exporter_of(container) for container in self.containers]
        return [item for item in found if item is not None]
