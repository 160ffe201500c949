"""Services, NetworkPolicies and label selectors read from Kubernetes manifests."""

from __future__ import annotations

from dataclasses import dataclass, field

from odoo_dr.review.evidence.manifests import K8sObject, ManifestSet, Workload, memoized
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.yamlio import Location

POSTGRES_PORT = 5432
REDIS_PORT = 6379

# Annotations that keep a LoadBalancer on the provider's private network.
INTERNAL_LOAD_BALANCER = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": None,
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "networking.gke.io/load-balancer-type": "internal",
    "cloud.google.com/load-balancer-type": "internal",
    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
    "service.beta.kubernetes.io/openstack-internal-load-balancer": "true",
    "service.beta.kubernetes.io/oci-load-balancer-internal": "true",
}


@dataclass
class Selector:
    """A label selector: `matchLabels` and `matchExpressions`; empty selects all."""

    labels: dict[str, str] = field(default_factory=dict)
    expressions: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: object, plain: bool = False) -> Selector:
        """Read a LabelSelector, or with `plain` a Service's label map."""
        raw = as_dict(raw)
        if plain:
            return cls({str(k): str(v) for k, v in raw.items()})
        expressions = [
            (
                str(item.get("key")),
                str(item.get("operator")),
                tuple(str(value) for value in as_list(item.get("values"))),
            )
            for item in map(as_dict, as_list(raw.get("matchExpressions")))
        ]
        labels = as_dict(raw.get("matchLabels"))
        return cls({str(k): str(v) for k, v in labels.items()}, expressions)

    @property
    def empty(self) -> bool:
        return not self.labels and not self.expressions

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.labels.items()):
            return False
        for key, operator, values in self.expressions:
            present = key in labels
            if operator == "In" and (not present or labels[key] not in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True


@dataclass
class ServicePort:
    name: str | None
    port: int | None
    target: int | str | None
    node_port: int | None
    location: Location


@dataclass
class Service:
    source: K8sObject
    type: str
    selector: Selector
    ports: list[ServicePort]

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def namespace(self) -> str | None:
        return self.source.namespace

    @property
    def external(self) -> bool:
        """Reachable from outside the cluster: NodePort, LoadBalancer, externalIPs."""
        return self.type in {"NodePort", "LoadBalancer"} or bool(
            self.source.get("spec", "externalIPs")
        )

    @property
    def restriction(self) -> str | None:
        """What keeps an external Service off the internet, if anything."""
        annotations = as_dict(self.source.get("metadata", "annotations"))
        for key, value in INTERNAL_LOAD_BALANCER.items():
            if key in annotations and (
                value is None or str(annotations[key]).lower() == value
            ):
                return f"internal load balancer ({key})"
        ranges = as_list(self.source.get("spec", "loadBalancerSourceRanges"))
        if ranges and self.type == "LoadBalancer":
            return "loadBalancerSourceRanges " + ", ".join(map(str, ranges))
        return None

    def selects(self, workload: Workload) -> bool:
        return (
            not self.selector.empty
            and same_namespace(self.namespace, workload.namespace)
            and self.selector.matches(workload.pod_labels)
        )

    def target_port(
        self, port: int | str | None, workloads: list[Workload]
    ) -> int | None:
        """Return the container port that `port` (a Service port number or name)
        reaches in `workloads`, or None when it cannot be resolved."""
        candidates = [
            item
            for item in self.ports
            if port is None or port in (item.port, item.name)
        ]
        if len(candidates) != 1:
            return None
        item = candidates[0]
        target = item.target if item.target is not None else item.port
        if isinstance(target, int):
            return target
        for workload in workloads:
            for container in workload.containers:
                if target in container.port_names:
                    return container.port_names[str(target)]
        return None


def same_namespace(first: str | None, second: str | None) -> bool:
    """Compare namespaces; a manifest without one is applied to any namespace."""
    return first is None or second is None or first == second


def _number(value: object) -> int | None:
    return int(value) if str(value).isdigit() else None


@memoized
def services(manifests: ManifestSet) -> list[Service]:
    found = []
    for item in manifests.of_kind("Service"):
        ports = []
        for index, raw in enumerate(as_list(item.get("spec", "ports"))):
            raw = as_dict(raw)
            target = raw.get("targetPort")
            ports.append(
                ServicePort(
                    name=str(raw["name"]) if raw.get("name") else None,
                    port=_number(raw.get("port")),
                    target=_number(target)
                    if _number(target) is not None
                    else (str(target) if target is not None else None),
                    node_port=_number(raw.get("nodePort")),
                    location=item.at("spec", "ports", index),
                )
            )
        found.append(
            Service(
                source=item,
                type=str(item.get("spec", "type", default="ClusterIP")),
                selector=Selector.parse(item.get("spec", "selector"), plain=True),
                ports=ports,
            )
        )
    return found


@dataclass
class NetworkPolicy:
    source: K8sObject
    selector: Selector

    def selects(self, workload: Workload) -> bool:
        return same_namespace(
            self.source.namespace, workload.namespace
        ) and self.selector.matches(workload.pod_labels)


@memoized
def network_policies(manifests: ManifestSet) -> list[NetworkPolicy]:
    """NetworkPolicies and CiliumNetworkPolicies, with the pods they select."""
    found = [
        NetworkPolicy(item, Selector.parse(item.get("spec", "podSelector")))
        for item in manifests.of_kind("NetworkPolicy", group="networking.k8s.io")
    ]
    found += [
        NetworkPolicy(item, Selector.parse(item.get("spec", "endpointSelector")))
        for item in manifests.of_kind("CiliumNetworkPolicy", group="cilium.io")
    ]
    return found
