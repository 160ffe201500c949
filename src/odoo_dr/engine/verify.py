"""Check that every snapshot in a repository can be restored.

The structure check confirms that every blob a snapshot needs has an index entry and
that its pack exists. The content check (`read_data`) then reads packs whole, each
once: all of them, or those of a `Subset`. A pack's bytes are checked against its
name (a SHA-256) and its header is parsed. Every blob it contains is decrypted (in an
encrypted repository) and decompressed, however many snapshots share it, and in a
pack whose bytes do not match its name each blob is also checked against its own
name, to tell the damaged blobs from the intact ones.

A blob counts where the index points to it: when a damaged blob was written again
into a newer pack, the newer index entry wins, as it does for a restore. Damage
in a blob that snapshots need is reported with each snapshot and file it breaks.
Damage in a copy that nothing needs any more (superseded or unreferenced) is
reported with its pack only, and breaks no snapshot.

Each tenant's filestore journal is checked like a snapshot: every blob of every
entry it holds must be present (and, reading packs, intact).
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

from odoo_dr import progress
from odoo_dr.engine.subset import Subset
from odoo_dr.errors import OdooDrError, StoreUnavailable
from odoo_dr.repository.crypto import RepositoryKeys
from odoo_dr.repository.index import BlobIndex, pack_key
from odoo_dr.repository.journal import JournalReader, journal_tenants
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
    # Index files that could not be read. They break no snapshot, because the
    # packs they listed are read from their headers, so they leave `ok` true.
    damaged_index_files: dict[str, str] = field(default_factory=dict)
    # The subset of packs read, described, when not all of them were.
    subset: str | None = None
    packs_read: int = 0
    packs_total: int = 0
    # One report per tenant's filestore journal, named "filestore journal".
    journals: list[SnapshotReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.unreadable
            and not self.damaged_packs
            and all(item.ok for item in self.snapshots)
            and all(item.ok for item in self.journals)
        )


@dataclass
class _PackResult:
    """Findings of one pack's read: damaged blobs by id, and the pack's own problem."""

    damaged: dict[str, str]
    problem: str | None
    size: int
    blobs: int


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
    except StoreUnavailable:
        # The store failed, so nothing is known about the object and no finding is made.
        raise
    except (OdooDrError, ValueError, ValidationError) as exc:
        message = exc.message if isinstance(exc, OdooDrError) else str(exc)
        report.problems.append(
            f"file index unreadable, so its files cannot be listed: "
            f"{message.splitlines()[0]}"
        )
        return blobs
    blobs.extend((f"filestore file {entry.path}", entry) for entry in entries)
    return blobs


JOURNAL_REPORT = "filestore journal"


def _journal_reports(
    repository: Repository, tenant: str | None
) -> list[tuple[SnapshotReport, list[tuple[str, StoredBlob]]]]:
    """Return a report per filestore journal (of `tenant`) and the blobs it needs."""
    tenants, unreadable = journal_tenants(repository)
    found = []
    for name in sorted(tenants.values()):
        if tenant is not None and name != tenant:
            continue
        report = SnapshotReport(JOURNAL_REPORT, name)
        try:
            state = JournalReader(repository, name).load()
        except StoreUnavailable:
            raise
        except OdooDrError as exc:
            report.problems.append(f"journal unreadable: {exc.message}")
            found.append((report, []))
            continue
        blobs: list[tuple[str, StoredBlob]] = [
            (f"journal file {entry.store_fname}", entry) for entry in state.entries()
        ]
        found.append((report, blobs))
    if tenant is None:
        for folder, message in sorted(unreadable.items()):
            report = SnapshotReport(JOURNAL_REPORT, "?")
            report.problems.append(
                f"journal {repository.location}/{folder} unreadable: {message}"
            )
            found.append((report, []))
    return found


def _pack_blobs(
    data: bytes | memoryview,
    pack_id: str,
    indexed: dict[str, BlobLocation],
    keys: RepositoryKeys | None = None,
) -> tuple[dict[str, BlobLocation], str | None]:
    """Return the blobs to check in a pack, and its header's problem.

    These are the blobs its header lists, with the index's location for those the
    index places in this pack (a restore reads them there), or only the latter when
    the header is unreadable.
    """
    try:
        entries = decode_header(bytes(data[: header_length(data)]), keys)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        return dict(indexed), f"its header is unreadable ({exc})"
    blobs = {
        blob_id: BlobLocation(pack_id, offset, length, size)
        for blob_id, offset, length, size in entries
    }
    blobs.update(indexed)
    return blobs, None


def _read_pack(
    repository: Repository, pack_id: str, indexed: dict[str, BlobLocation]
) -> _PackResult:
    """Read one pack whole and check its bytes, its header and every blob in it.

    `indexed` holds the needed blobs that the index places in this pack. A pack in
    a folder is mapped into memory, so it is not copied.
    """
    key = pack_key(pack_id)
    mapped = getattr(repository.backend, "mapped", None)
    try:
        if mapped is None:
            data = repository.backend.read(key)
            return _check_pack(repository, pack_id, indexed, data)
        with mapped(key) as data:
            return _check_pack(repository, pack_id, indexed, data)
    except StoreUnavailable:
        raise
    except OdooDrError as exc:
        reason = f"unreadable ({exc.message})"
        return _PackResult(dict.fromkeys(indexed, reason), reason, 0, 0)


def _check_pack(
    repository: Repository,
    pack_id: str,
    indexed: dict[str, BlobLocation],
    data: bytes | memoryview,
) -> _PackResult:
    """Check a pack's bytes, its header and every blob in it.

    Every blob is decompressed (zstd checks its frame's own checksum) and, in an
    encrypted repository, decrypted. A blob's name is recomputed from its content
    only when the pack's bytes differ from those its writer named it by: when they
    match, each blob is the one its writer stored under that name.
    """
    problems = []
    bytes_intact = hashlib.sha256(data).hexdigest() == pack_id
    if not bytes_intact:
        problems.append("its bytes do not match its name (SHA-256)")
    blobs, header_problem = _pack_blobs(data, pack_id, indexed, repository.keys)
    if header_problem is not None:
        problems.append(header_problem)
    damaged: dict[str, str] = {}
    for blob_id, where in blobs.items():
        if where.offset + where.length > len(data):
            damaged[blob_id] = f"truncated (pack {pack_id} ends at byte {len(data)})"
            continue
        try:
            repository.blobs.decode(
                blob_id,
                data[where.offset : where.offset + where.length],
                verify=not bytes_intact,
            )
        except OdooDrError as exc:
            damaged[blob_id] = f"damaged ({exc.message.split(': ', 1)[-1]})"
    problem = "; ".join(problems) if problems else None
    return _PackResult(damaged, problem, len(data), len(blobs))


def verify(
    repository: Repository,
    tenant: str | None = None,
    read_data: bool = False,
    jobs: int = 2,
    subset: Subset | None = None,
) -> VerifyReport:
    """Check every snapshot (of `tenant`); with `read_data` or `subset`, read packs."""
    manifests, unreadable = repository.scan_snapshots(tenant)
    index = repository.blobs.index
    # A restore reads packs that no index file lists (a backup killed before it
    # wrote one, or a damaged index file) from their headers, so verify does too.
    # The index is only extended in memory; the next backup writes the index file.
    unindexed = index.add_unindexed_packs()
    reports: list[SnapshotReport] = []
    needed: dict[str, list[tuple[SnapshotReport, str]]] = {}
    with progress.track("read snapshots", len(manifests), "snapshots") as done:
        for manifest in manifests:
            report = SnapshotReport(manifest.id, manifest.tenant)
            reports.append(report)
            for description, blob in _needed_blobs(repository, manifest, report):
                for blob_id in blob.chunks:
                    needed.setdefault(blob_id, []).append((report, description))
                    report.objects += 1
            done(1)
    journals = []
    for report, blobs in _journal_reports(repository, tenant):
        journals.append(report)
        for description, blob in blobs:
            for blob_id in blob.chunks:
                needed.setdefault(blob_id, []).append((report, description))
                report.objects += 1

    # Structure: every needed blob is indexed, its pack exists and is long enough.
    on_disk = index.pack_ids_on_disk()
    sizes = index.pack_sizes() or {}
    problems: dict[str, str] = {}
    for blob_id in needed:
        where = index.get(blob_id)
        end = where.offset + where.length if where is not None else 0
        if where is None:
            problems[blob_id] = "missing (no index entry, in no pack's header)"
        elif where.pack not in on_disk:
            problems[blob_id] = f"missing (its pack {where.pack} is gone)"
        elif where.pack in sizes and sizes[where.pack] < end:
            problems[blob_id] = (
                f"truncated (pack {where.pack} has {sizes[where.pack]:,} bytes, the "
                f"object ends at byte {end:,})"
            )

    damaged_packs = dict(index.unreadable_packs)
    bytes_read = 0
    objects_checked = 0
    packs = sorted(on_disk)
    if subset is not None:
        packs = [pack_id for pack_id in packs if subset.contains(pack_id)]
    if read_data or subset is not None:
        indexed: dict[str, dict[str, BlobLocation]] = defaultdict(dict)
        for blob_id in needed:
            where = index.get(blob_id)
            if where is not None:
                indexed[where.pack][blob_id] = where

        def read(pack_id: str) -> _PackResult:
            return _read_pack(repository, pack_id, indexed.get(pack_id, {}))

        with (
            ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool,
            progress.track("read packs", len(packs), "packs") as done,
        ):
            results = pool.map(read, packs)
            for pack_id, result in zip(packs, results, strict=True):
                done(1)
                bytes_read += result.size
                objects_checked += result.blobs
                message = _record_pack(index, pack_id, result, needed, problems)
                if message is not None:
                    damaged_packs[pack_id] = message
    else:
        packs = []
        objects_checked = len(needed)

    for blob_id, problem in sorted(problems.items()):
        for report, description in needed[blob_id]:
            report.problems.append(f"{description}: object {blob_id} {problem}")
    return VerifyReport(
        reports,
        unreadable,
        objects_checked,
        bytes_read,
        read_data or subset is not None,
        damaged_packs,
        unindexed,
        dict(index.damaged_files),
        subset.description if subset is not None else None,
        len(packs),
        len(on_disk),
        journals,
    )


def _record_pack(
    index: BlobIndex,
    pack_id: str,
    result: _PackResult,
    needed: dict[str, list[tuple[SnapshotReport, str]]],
    problems: dict[str, str],
) -> str | None:
    """Add a pack's damaged blobs that count to `problems`; describe its damage.

    A blob counts when snapshots need it and the index places it in this pack.
    Another copy (superseded by a newer pack, or needed by no snapshot) breaks
    nothing, so it only makes the pack damaged.
    """
    broken: set[str] = set()
    harmless = 0
    for blob_id, problem in result.damaged.items():
        where = index.get(blob_id)
        if blob_id in needed and where is not None and where.pack == pack_id:
            problems[blob_id] = problem
            broken.update(report.snapshot_id for report, _ in needed[blob_id])
        else:
            harmless += 1
    if result.problem is None and not result.damaged:
        return None
    parts = [result.problem] if result.problem else []
    if broken:
        parts.append(
            f"{len(result.damaged) - harmless:,} damaged object(s) break "
            f"{len(broken):,} snapshot(s), listed with them"
        )
    if harmless:
        parts.append(
            f"{harmless:,} damaged object(s) that no snapshot needs from this pack "
            "(written again into a newer pack, or no longer referenced)"
        )
    if not broken:
        parts.append("no snapshot is broken by it")
    return "; ".join(parts)
