"""Check that every snapshot in a repository can be restored.

The structure check confirms that every blob a snapshot needs has an index entry and
that its pack exists. With `read_data`, each pack holding needed blobs is read once:
its bytes are checked against its name and its header is parsed, and each needed
blob is decompressed and checked against its SHA-256, however many snapshots share
it. Each problem names the snapshot, the file (a dump file or a filestore path) and
the blob; a damaged pack whose blobs still read correctly is reported on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from odoo_dr.errors import OdooDrError
from odoo_dr.repository.index import pack_key
from odoo_dr.repository.manifest import FilestoreEntry, SnapshotManifest, StoredBlob
from odoo_dr.repository.packs import BlobLocation, decode_header, header_length
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
    damaged_packs: dict[str, str] = field(default_factory=dict)
    # Packs that no index file lists, whose chunks were found from their headers.
    unindexed_packs: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.unreadable
            and not self.damaged_packs
            and all(item.ok for item in self.snapshots)
        )


def _needed_blobs(
    repository: Repository, manifest: SnapshotManifest, report: SnapshotReport
) -> list[tuple[str, StoredBlob]]:
    """Return (description, blob list) pairs for everything the snapshot restores."""
    problem = manifest.dump_problem()
    if problem is not None:
        report.problems.append(problem)
    blobs: list[tuple[str, StoredBlob]] = [
        (f"dump file {item.name}", item) for item in manifest.dump
    ]
    blobs.append(("file index", manifest.filestore.index))
    try:
        raw = repository.blobs.read_blob(manifest.filestore.index)
        entries = [FilestoreEntry.model_validate(item) for item in json.loads(raw)]
    except (OdooDrError, ValueError, ValidationError) as exc:
        message = exc.message if isinstance(exc, OdooDrError) else str(exc)
        report.problems.append(f"file index unreadable: {message.splitlines()[0]}")
        return blobs
    blobs.extend((f"filestore file {entry.path}", entry) for entry in entries)
    return blobs


def _read_pack(
    repository: Repository, pack_id: str, blobs: list[tuple[str, BlobLocation]]
) -> tuple[dict[str, str], str | None, int]:
    """Read one pack whole and check it.

    Returns the problems of the needed blobs by id, a problem of the pack itself (its
    bytes do not match its name, or its header is unreadable), and the bytes read.
    """
    try:
        data = repository.backend.read(pack_key(pack_id))
    except OdooDrError as exc:
        return {blob_id: f"unreadable ({exc.message})" for blob_id, _ in blobs}, None, 0
    pack_problem = None
    if hashlib.sha256(data).hexdigest() != pack_id:
        pack_problem = "its bytes do not match its name (SHA-256)"
    try:
        decode_header(data[: header_length(data)], repository.keys)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        pack_problem = f"its header is unreadable ({exc})"
    problems: dict[str, str] = {}
    for blob_id, where in blobs:
        if where.offset + where.length > len(data):
            problems[blob_id] = f"truncated (pack {pack_id} ends at byte {len(data)})"
            continue
        try:
            repository.blobs.decode(
                blob_id, data[where.offset : where.offset + where.length]
            )
        except OdooDrError as exc:
            problems[blob_id] = f"damaged ({exc.message.split(': ', 1)[-1]})"
    return problems, pack_problem, len(data)


def verify(
    repository: Repository,
    tenant: str | None = None,
    read_data: bool = False,
    jobs: int = 2,
) -> VerifyReport:
    manifests, unreadable = repository.scan_snapshots(tenant)
    # A restore reads packs that no index file lists (a backup killed before it
    # wrote one, or a damaged index file) from their headers, so verify does too.
    # The index is only extended in memory; the next backup writes the index file.
    unindexed = repository.blobs.index.add_unindexed_packs()
    reports: list[SnapshotReport] = []
    needed: dict[str, list[tuple[SnapshotReport, str]]] = {}
    for manifest in manifests:
        report = SnapshotReport(manifest.id, manifest.tenant)
        reports.append(report)
        for description, blob in _needed_blobs(repository, manifest, report):
            for blob_id in blob.chunks:
                needed.setdefault(blob_id, []).append((report, description))
                report.objects += 1

    problems: dict[str, str] = {}
    for blob_id in repository.blobs.missing([StoredBlob(size=0, chunks=list(needed))]):
        problems[blob_id] = "missing"
    bytes_read = 0
    pack_problems: dict[str, str] = {}
    if read_data:
        by_pack: dict[str, list[tuple[str, BlobLocation]]] = defaultdict(list)
        for blob_id in needed:
            if blob_id not in problems:
                where = repository.blobs.location(blob_id)
                by_pack[where.pack].append((blob_id, where))
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
            for pack_id, (found, pack_problem, size) in zip(
                by_pack,
                pool.map(lambda item: _read_pack(repository, *item), by_pack.items()),
                strict=True,
            ):
                problems.update(found)
                bytes_read += size
                if pack_problem is not None:
                    pack_problems[pack_id] = pack_problem

    for blob_id, problem in sorted(problems.items()):
        for report, description in needed[blob_id]:
            report.problems.append(f"{description}: object {blob_id} {problem}")
    return VerifyReport(
        reports,
        unreadable,
        len(needed),
        bytes_read,
        read_data,
        pack_problems,
        unindexed,
    )
