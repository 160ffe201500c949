"""Object-storage endpoints that backups are sent to, as manifests declare them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from odoo_dr.review.evidence.manifests import ManifestSet, Workload
from odoo_dr.review.yamlio import Location

# Words in an image name or command that mark a container as a backup job.
BACKUP_TOOLS = (
    "backup",
    "pgbackrest",
    "wal-g",
    "walg",
    "restic",
    "rclone",
    "barman",
    "odoo-dr",
    "aws-cli",
    "awscli",
    "s3cmd",
    "kopia",
    "borg",
)
_URL = re.compile(r"https?://[^\s\"',;]+")
# Command-line options and variables that name an object-storage endpoint.
_ENDPOINT_OPTION = re.compile(
    r"(?:--endpoint-url|--endpoint|--s3-endpoint|-repo|s3:)[= ]?(https?://[^\s\"',;]+)"
)
_ENDPOINT_VARIABLE = re.compile(r"ENDPOINT|S3|REPOSITORY|REPO\d*_|STORAGE_URL")
_INSECURE = re.compile(r"(VERIFY_TLS|VERIFY_SSL|SSL_VERIFY)$")


@dataclass
class Endpoint:
    """The destination of a backup mechanism: a URL, or TLS with verification
    off."""

    url: str
    declared_by: str
    resource: str
    location: Location
    verify: bool = True

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def encrypted(self) -> bool:
        return self.url.startswith("https://") or not self.url.startswith("http")

    @property
    def loopback(self) -> bool:
        return self.host in {"localhost", "127.0.0.1", "::1"}

    @property
    def in_cluster(self) -> bool:
        """A Kubernetes service name or compose service name, not a public host."""
        host = self.host
        return "." not in host or host.endswith((".svc", ".cluster.local"))


def _crd_endpoints(manifests: ManifestSet) -> list[Endpoint]:
    found = []
    for item in manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        store = ("spec", "backup", "barmanObjectStore")
        if item.get(*store):
            url = str(item.get(*store, "endpointURL", default="") or "")
            found.append(
                Endpoint(
                    url or "AWS S3 (https)",
                    "CloudNativePG barmanObjectStore",
                    item.ref,
                    item.at(*store, "endpointURL") if url else item.at(*store),
                )
            )
    for item in manifests.of_kind("ObjectStore", group="barmancloud.cnpg.io"):
        url = str(item.get("spec", "configuration", "endpointURL", default="") or "")
        found.append(
            Endpoint(
                url or "AWS S3 (https)",
                "Barman Cloud ObjectStore",
                item.ref,
                item.at("spec", "configuration", "endpointURL"),
            )
        )
    for item in manifests.of_kind("BackupStorageLocation", group="velero.io"):
        url = str(item.get("spec", "config", "s3Url", default="") or "")
        insecure = str(item.get("spec", "config", "insecureSkipTLSVerify", default=""))
        found.append(
            Endpoint(
                url or f"{item.get('spec', 'provider', default='object')} storage",
                "Velero BackupStorageLocation",
                item.ref,
                item.at("spec", "config", "s3Url"),
                verify=insecure.lower() != "true",
            )
        )
    for kind in ("Schedule", "Backup"):
        for item in manifests.of_kind(kind, group="k8up.io"):
            url = item.get("spec", "backend", "s3", "endpoint")
            if url:
                found.append(
                    Endpoint(
                        str(url),
                        f"K8up {kind}",
                        item.ref,
                        item.at("spec", "backend", "s3", "endpoint"),
                    )
                )
    return found


def _is_backup_job(workload: Workload) -> bool:
    if workload.kind in {"CronJob", "Job"}:
        return True
    text = " ".join(
        f"{container.image} {container.command_text}".lower()
        for container in workload.containers
    )
    return any(word in text for word in BACKUP_TOOLS)


def _job_endpoints(workload: Workload) -> list[Endpoint]:
    found = []
    for container in workload.containers:
        location = container.command_location or workload.location
        for url in _ENDPOINT_OPTION.findall(container.command_text):
            found.append(Endpoint(url, "command line", workload.ref, location))
        for name, value in container.env.items():
            where = container.env_locations.get(name) or workload.location
            if _INSECURE.search(name) and value.strip().lower() in {"n", "no", "false"}:
                found.append(
                    Endpoint(f"{name}={value}", name, workload.ref, where, verify=False)
                )
            elif _ENDPOINT_VARIABLE.search(name):
                for url in _URL.findall(value):
                    found.append(Endpoint(url, name, workload.ref, where))
    return found


def backup_endpoints(manifests: ManifestSet) -> list[Endpoint]:
    """Return the endpoints of backup operators' resources, and the endpoint options
    and variables of backup jobs."""
    found = _crd_endpoints(manifests)
    jobs = manifests.cronjobs() + [
        item for item in manifests.workloads() if _is_backup_job(item)
    ]
    for workload in jobs:
        found += _job_endpoints(workload)
    return found
