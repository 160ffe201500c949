"""Filestore rules: the volume each Odoo server keeps its attachments on, and whether
all replicas read and write the same files."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import ReviewContext
from odoo_dr.review.evidence.odoo import OdooServer, max_replicas, odoo_servers
from odoo_dr.review.evidence.storage import (
    SHARED_KINDS,
    FilestoreVolume,
    filestore_volume,
    node_local_class,
)
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule


def _object_storage(server: OdooServer) -> Evidence | None:
    setting = server.object_storage
    if setting is None:
        return None
    return Evidence(f"attachments in object storage: {setting.value}", setting.location)


def _volumes(
    context: ReviewContext,
) -> Iterator[tuple[str, OdooServer, FilestoreVolume]]:
    for view in context.environments:
        for server in odoo_servers(view.manifests):
            volume = filestore_volume(server, view.manifests)
            if volume is not None:
                yield view.name, server, volume


def _describe(volume: FilestoreVolume) -> str:
    if volume.volume is None:
        return f"no volume is mounted at {volume.data_dir}"
    name = volume.claim_name or volume.volume.claim or volume.volume.name
    return f"{volume.mount_path} is on the {volume.kind} volume {name}"


@rule(
    "FS-001",
    Area.FILESTORE,
    Severity.CRITICAL,
    "The filestore is on a persistent volume",
    "Odoo keeps every attachment under data_dir/filestore: on an emptyDir or in the "
    "container's own layer they are lost when the pod or container is replaced, "
    "while the database still references them.",
    "Mount a PersistentVolumeClaim (or, with compose, a named volume or bind mount) at "
    "data_dir, /var/lib/odoo in the official image, or store attachments in object "
    "storage.",
    snippet="volumeMounts:\n"
    "  - name: filestore\n"
    "    mountPath: /var/lib/odoo\n"
    "volumes:\n"
    "  - name: filestore\n"
    "    persistentVolumeClaim:\n"
    "      claimName: odoo-filestore",
)
def filestore_persistent(context: ReviewContext) -> Iterator[Outcome]:
    for environment, server, volume in _volumes(context):
        stored = _object_storage(server)
        if stored is not None:
            yield Outcome(
                True,
                "attachments are stored in object storage, not in the filestore",
                environment=environment,
                resource=server.resource,
                evidence=(stored,),
            )
            continue
        compose = server.workload.kind == "ComposeService"
        message = _describe(volume)
        severity = None
        if volume.volume is None and server.workload.operator_kind is not None:
            yield Outcome(
                None,
                f"the {server.workload.kind} sets no filestore storage, so the "
                "operator's default applies, which the manifests do not show",
                environment=environment,
                resource=server.resource,
                evidence=(Evidence(server.workload.ref, server.workload.location),),
            )
            continue
        if volume.volume is None:
            passed = False
            message += (
                ": the filestore is in the container's own layer (or an anonymous "
                "volume) and is lost when the container is recreated"
            )
        elif volume.kind == "hostPath" and not compose:
            passed, severity = False, Severity.HIGH
            message += (
                ": it stays on one node, and a pod scheduled elsewhere starts with an "
                "empty filestore"
            )
        elif volume.persistent:
            passed = True
        else:
            passed = False
            message += (
                ": it is lost when the container is recreated"
                if compose
                else ": it is deleted with the pod"
            )
        yield Outcome(
            passed,
            message,
            environment=environment,
            resource=server.resource,
            evidence=(Evidence(f"filestore below {volume.data_dir}", volume.location),),
            severity=severity,
        )


@rule(
    "FS-002",
    Area.FILESTORE,
    Severity.HIGH,
    "Several Odoo replicas share one filestore",
    "Each replica writes attachments to its own data_dir: unless all of them mount "
    "the same ReadWriteMany volume (or use object storage), a file uploaded through "
    "one replica is missing on the others and from backups taken through them.",
    "Give the filestore a ReadWriteMany claim (NFS, CephFS, EFS, Azure Files) shared "
    "by every replica, or store attachments in object storage.",
    snippet="spec:\n  accessModes: [ReadWriteMany]\n  storageClassName: efs-sc",
)
def filestore_shared(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for server in odoo_servers(view.manifests):
            volume = filestore_volume(server, view.manifests)
            if volume is None:
                continue
            replicas, where = max_replicas(server.workload, view.manifests)
            if replicas <= 1:
                continue
            found = _sharing(server, volume, replicas)
            if found is None:
                continue
            passed, message, evidence = found
            yield Outcome(
                passed,
                message,
                environment=view.name,
                resource=server.resource,
                evidence=(evidence, Evidence(f"up to {replicas} replicas", where)),
            )


def _sharing(
    server: OdooServer, volume: FilestoreVolume, replicas: int
) -> tuple[bool | None, str, Evidence] | None:
    """Say whether `replicas` copies of the server see one filestore; None when the
    claim is not in the manifests. The verdict is None (not evaluated) when an
    operator creates the claim with an access mode the manifests do not name."""
    stored = _object_storage(server)
    claim = volume.claim
    if stored is not None:
        return True, f"{replicas} replicas; attachments are in object storage", stored
    if volume.kind in SHARED_KINDS:
        return (
            True,
            f"{replicas} replicas share the {volume.kind} volume at "
            f"{volume.mount_path}",
            Evidence(volume.kind, volume.location),
        )
    if claim is not None and claim.template:
        return (
            False,
            f"{replicas} replicas, each with its own claim from the "
            f"volumeClaimTemplate {claim.name}, so each has a different filestore",
            Evidence("volumeClaimTemplate", claim.location),
        )
    if claim is not None and not claim.access_modes and server.workload.operator_kind:
        return (
            None,
            f"{replicas} replicas; the {server.workload.kind} names no access mode "
            f"for the claim {claim.name}, so the operator's default applies, which "
            "the manifests do not show",
            Evidence(f"claim {claim.name}", claim.location),
        )
    if claim is not None:
        modes = ", ".join(claim.access_modes) or "no access mode"
        evidence = Evidence(f"claim {claim.name}: {modes}", claim.location)
        if claim.shared:
            return (
                True,
                f"{replicas} replicas share the ReadWriteMany claim {claim.name}",
                evidence,
            )
        return (
            False,
            f"{replicas} replicas, but the claim {claim.name} is {modes}, which "
            "replicas on more than one node cannot mount together",
            evidence,
        )
    if volume.kind == "persistentVolumeClaim":
        return None
    return (
        False,
        f"{replicas} replicas, but {_describe(volume)}, so each has its own filestore",
        Evidence(f"filestore below {volume.data_dir}", volume.location),
    )


@rule(
    "FS-003",
    Area.FILESTORE,
    Severity.MEDIUM,
    "The filestore claim is not on node-local storage",
    "A volume from a node-local class (local-path, local-storage, OpenEBS hostpath) "
    "lives on one node's disk: losing the node loses the filestore, and the pod "
    "cannot move to another node.",
    "Use a storage class that replicates or is reachable from every node (a cloud "
    "disk, Ceph, Longhorn, NFS), or store attachments in object storage.",
)
def filestore_not_node_local(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for server in odoo_servers(view.manifests):
            volume = filestore_volume(server, view.manifests)
            if volume is None or volume.claim is None or _object_storage(server):
                continue
            claim = volume.claim
            local = node_local_class(claim, view.manifests)
            if local is not None:
                name, location = local
                yield Outcome(
                    False,
                    f"claim {claim.name} uses the node-local storage class {name}",
                    environment=view.name,
                    resource=server.resource,
                    evidence=(
                        Evidence(f"claim {claim.name}", claim.location),
                        Evidence(f"storage class {name}", location),
                    ),
                )
            elif claim.storage_class is not None:
                yield Outcome(
                    True,
                    f"claim {claim.name} uses the storage class {claim.storage_class}",
                    environment=view.name,
                    resource=server.resource,
                    evidence=(Evidence(f"claim {claim.name}", claim.location),),
                )
