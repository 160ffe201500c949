"""The storage of an Odoo server's filestore: the mount, the volume and its claim."""

from __future__ import annotations

from dataclasses import dataclass

from odoo_dr.review.evidence.manifests import K8sObject, ManifestSet, Volume, memoized
from odoo_dr.review.evidence.network import same_namespace
from odoo_dr.review.evidence.odoo import OdooServer
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.yamlio import Location

# Volume types that outlive the pod, and those that several nodes can mount at once.
PERSISTENT_KINDS = {
    "persistentVolumeClaim",
    "nfs",
    "cephfs",
    "glusterfs",
    "azureFile",
    "azureDisk",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "cinder",
    "iscsi",
    "rbd",
    "fc",
    "csi",
    "portworxVolume",
    "vsphereVolume",
    # compose: a bind mount or a named volume outlives the container
    "hostPath",
    "namedVolume",
}
SHARED_KINDS = {"nfs", "cephfs", "glusterfs", "azureFile"}
# Provisioners and class names of storage that lives on one node's disk.
NODE_LOCAL_PROVISIONERS = (
    "rancher.io/local-path",
    "kubernetes.io/no-provisioner",
    "openebs.io/local",
    "local.csi.openebs.io",
    "microk8s.io/hostpath",
    "k8s.io/minikube-hostpath",
    "docker.io/hostpath",
    "topolvm.io",
)
NODE_LOCAL_CLASSES = (
    "local-path",
    "local-storage",
    "openebs-hostpath",
    "openebs-lvmpv",
    "microk8s-hostpath",
    "hostpath",
    "topolvm-provisioner",
)
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


@dataclass
class Claim:
    """A PersistentVolumeClaim, or a StatefulSet's claim template."""

    name: str
    namespace: str | None
    access_modes: tuple[str, ...]
    storage_class: str | None
    location: Location
    template: bool = False

    @property
    def shared(self) -> bool:
        return "ReadWriteMany" in self.access_modes


def _claim(item: K8sObject, spec: object, name: str, template: bool) -> Claim:
    spec = as_dict(spec)
    storage_class = spec.get("storageClassName")
    return Claim(
        name=name,
        namespace=item.namespace,
        access_modes=tuple(str(mode) for mode in as_list(spec.get("accessModes"))),
        storage_class=str(storage_class) if storage_class is not None else None,
        location=item.location,
        template=template,
    )


@memoized
def claims(manifests: ManifestSet) -> list[Claim]:
    return [
        _claim(item, item.get("spec"), item.name, False)
        for item in manifests.of_kind("PersistentVolumeClaim")
    ]


@memoized
def claims_by_name(manifests: ManifestSet) -> dict[str, list[Claim]]:
    found: dict[str, list[Claim]] = {}
    for claim in claims(manifests):
        found.setdefault(claim.name, []).append(claim)
    return found


@dataclass
class StorageClass:
    name: str
    provisioner: str
    default: bool
    location: Location

    @property
    def node_local(self) -> bool:
        return any(
            self.provisioner.startswith(item) for item in NODE_LOCAL_PROVISIONERS
        )


@memoized
def storage_classes(manifests: ManifestSet) -> dict[str, StorageClass]:
    found = {}
    for item in manifests.of_kind("StorageClass"):
        annotations = as_dict(item.get("metadata", "annotations"))
        found[item.name] = StorageClass(
            item.name,
            str(item.get("provisioner", default="")),
            str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true",
            item.location,
        )
    return found


@dataclass
class FilestoreVolume:
    """The volume holding an Odoo server's `<data_dir>/filestore`.

    `volume` is None when no volume is mounted there, so the files are in the
    container's own layer (or, with compose, an anonymous volume the image declares).
    """

    server: OdooServer
    data_dir: str
    mount_path: str | None
    volume: Volume | None
    claim: Claim | None
    location: Location

    @property
    def kind(self) -> str:
        if self.volume is None:
            return "container"
        if self.claim is not None and self.claim.template:
            return "volumeClaimTemplate"
        return self.volume.kind

    @property
    def persistent(self) -> bool:
        return self.kind in PERSISTENT_KINDS or self.kind == "volumeClaimTemplate"

    @property
    def claim_name(self) -> str | None:
        if self.volume is not None and self.volume.kind == "persistentVolumeClaim":
            return self.volume.claim
        return self.claim.name if self.claim is not None else None


def _covers(mount_path: str, path: str) -> bool:
    mount = mount_path.rstrip("/") or "/"
    return path == mount or path.startswith(mount + "/") or mount == "/"


def filestore_volume(
    server: OdooServer, manifests: ManifestSet
) -> FilestoreVolume | None:
    """Find the volume mounted deepest above `<data_dir>/filestore`; None for a
    server known only from its odoo.conf."""
    workload, container = server.workload, server.container
    if workload is None or container is None:
        return None
    data_dir = server.data_dir
    target = f"{data_dir}/filestore"
    mounts = [item for item in container.mounts if _covers(item[1], target)]
    if not mounts:
        setting = server.get("data_dir")
        location = setting.location if setting is not None else workload.location
        return FilestoreVolume(server, data_dir, None, None, None, location)
    name, mount_path = max(mounts, key=lambda item: len(item[1]))
    volume = workload.volumes.get(name)
    claim = None
    if volume is not None and volume.kind == "persistentVolumeClaim":
        claim = next(
            (
                item
                for item in claims_by_name(manifests).get(volume.claim, ())
                if item.name == volume.claim
                and same_namespace(item.namespace, workload.namespace)
            ),
            None,
        )
        if claim is None and volume.claim in workload.declared_claims:
            # A claim an operator creates from the workload's custom resource.
            spec, where = workload.declared_claims[volume.claim]
            claim = _claim(workload.source, spec, str(volume.claim), False)
            claim.location = where
    elif volume is None and name in workload.claim_templates and workload.source:
        templates = as_list(workload.source.get("spec", "volumeClaimTemplates"))
        index = workload.claim_templates.index(name)
        claim = _claim(
            workload.source, as_dict(templates[index]).get("spec"), name, True
        )
        claim.location = workload.source.at("spec", "volumeClaimTemplates", index)
        volume = Volume(name, "persistentVolumeClaim", name, location=claim.location)
    location = (
        volume.location
        if volume is not None and volume.location is not None
        else workload.location
    )
    return FilestoreVolume(server, data_dir, mount_path, volume, claim, location)


def node_local_class(
    claim: Claim, manifests: ManifestSet
) -> tuple[str, Location] | None:
    """Return the node-local storage class `claim` uses and where it is named, or
    None when its class is not known to be node-local."""
    classes = storage_classes(manifests)
    name = claim.storage_class
    if name is None:
        name = next((item.name for item in classes.values() if item.default), None)
    if name is None:
        return None
    known = classes.get(name)
    if known is not None and known.node_local:
        return f"{name} ({known.provisioner})", known.location
    if name in NODE_LOCAL_CLASSES:
        return name, claim.location
    return None
