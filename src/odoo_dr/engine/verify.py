"""Check that every snapshot in a repository can be restored.

The structure check confirms that every object a snapshot needs exists. With
`read_data`, each object is also read once, decompressed and checked against its
SHA-256, however many snapshots share it. Each problem names the snapshot, the file
(a dump file or a filestore path) and the object.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from odoo_dr.errors import OdooDrError
from odoo_dr.repository.manifest import FilestoreEntry, SnapshotManifest, StoredBlob
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)


@dataclass
class SnapshotReport:
    snapshot_id: str
    tenant: str
    objects: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    snapshots: list[SnapshotReport]
    unreadable: dict[str, str]
    objects_checked: int
    bytes_read: int
    read_data: bool

    @property
    def ok(self) -> bool:
        return not self.unreadable and all(item.ok for item in self.snapshots)


def _needed_blobs(
    repository: Repository, manifest: SnapshotManifest, report: SnapshotReport
) -> list[tuple[str, StoredBlob]]:
    """Return (description, blob) pairs for everything the snapshot restores."""
    blobs: list[tuple[str, StoredBlob]] = [
        (f"dump file {item.name}", item) for item in manifest.dump
    ]
    blobs.append(("file index", manifest.filestore.index))
    try:
        raw = repository.read_blob(manifest.filestore.index)
        entries = [FilestoreEntry.model_validate(item) for item in json.loads(raw)]
    except (OdooDrError, ValueError, ValidationError) as exc:
        message = exc.message if isinstance(exc, OdooDrError) else str(exc)
        report.problems.append(f"file index unreadable: {message.splitlines()[0]}")
        return blobs
    blobs.extend((f"filestore file {entry.path}", entry) for entry in entries)
    return blobs


def verify(
    repository: Repository,
    tenant: str | None = None,
    read_data: bool = False,
    jobs: int = 2,
) -> VerifyReport:
    manifests, unreadable = repository.scan_snapshots(tenant)
    reports: list[SnapshotReport] = []
    needed: dict[str, list[tuple[SnapshotReport, str]]] = {}
    for manifest in manifests:
        report = SnapshotReport(manifest.id, manifest.tenant)
        reports.append(report)
        for description, blob in _needed_blobs(repository, manifest, report):
            for oid in blob.chunks:
                needed.setdefault(oid, []).append((report, description))
                report.objects += 1

    def check(oid: str) -> tuple[str, str | None, int]:
        if not repository.has_object(oid):
            return oid, "missing", 0
        if not read_data:
            return oid, None, 0
        try:
            data = repository.get_object(oid)
        except OdooDrError as exc:
            return oid, f"damaged ({exc.message.split(': ', 1)[-1]})", 0
        return oid, None, len(data)

    bytes_read = 0
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
        for oid, problem, size in pool.map(check, sorted(needed)):
            bytes_read += size
            if problem is None:
                continue
            log.warning("object %s is %s", oid, problem)
            for report, description in needed[oid]:
                report.problems.append(f"{description}: object {oid} {problem}")
    return VerifyReport(reports, unreadable, len(needed), bytes_read, read_data)
