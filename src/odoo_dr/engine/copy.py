"""Copy snapshots from one repository to another, incrementally.

Blob ids are not assumed equal in both repositories: a repository may name a blob
by a keyed hash of its content, so the same content has another id in a repository
with another key. Each blob is read as plain content from the source and stored in
the target, which returns the target's id. The manifest's dump chunk lists and the
filestore index (a blob listing each file's chunks) are rewritten with those ids.

The copy skips work where it can:

- A snapshot whose id the target already has is not copied again.
- When both repositories name blobs the same way, a blob the target already has
  (by id) is neither read nor sent.
- Otherwise, the latest snapshot of a tenant that both repositories hold pairs
  source ids with target ids, chunk list by chunk list, so blobs shared with it are
  not read either.

A target manifest is written only after the blobs and the index it needs are
durable (`Repository.save_snapshot`), so a killed copy leaves no snapshot behind,
and the next copy takes in the packs the killed one finished.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from odoo_dr import progress
from odoo_dr.errors import BackupFailed, RejectedError, RepositoryError, SnapshotDamaged
from odoo_dr.repository import residency
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.manifest import (
    DrillRecord,
    DumpFile,
    FilestoreEntry,
    SnapshotManifest,
    StoredBlob,
)
from odoo_dr.repository.objects import split_bytes
from odoo_dr.repository.store import Repository, dump_json

log = logging.getLogger(__name__)

# The number of snapshots a residency rejection names.
LISTED_SNAPSHOTS = 10


@dataclass(frozen=True)
class CopyOptions:
    tenant: str | None = None
    # A snapshot id or a unique prefix of one.
    snapshot: str | None = None
    # Threads that read, compress and store blobs.
    jobs: int = 2
    # Copy from an encrypted repository into one that is not encrypted.
    allow_unencrypted: bool = False


@dataclass
class CopyStats:
    """Counts of blobs and bytes that one snapshot's copy, or a whole run, handled."""

    blobs_sent: int = 0
    bytes_sent: int = 0  # compressed bytes stored in the target
    blobs_reused: int = 0
    bytes_read: int = 0  # uncompressed bytes read from the source

    def add(self, other: CopyStats) -> None:
        self.blobs_sent += other.blobs_sent
        self.bytes_sent += other.bytes_sent
        self.blobs_reused += other.blobs_reused
        self.bytes_read += other.bytes_read


@dataclass
class SnapshotCopy:
    """The outcome of one snapshot: copied, already in the target, or failed."""

    manifest: SnapshotManifest
    status: str  # "copied", "present" or "failed"
    stats: CopyStats = field(default_factory=CopyStats)
    drills: int = 0
    error: str | None = None


@dataclass
class CopyReport:
    source: str
    target: str
    snapshots: list[SnapshotCopy] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    stats: CopyStats = field(default_factory=CopyStats)
    drills: int = 0

    def count(self, status: str) -> int:
        return sum(1 for item in self.snapshots if item.status == status)

    @property
    def failed(self) -> list[SnapshotCopy]:
        return [item for item in self.snapshots if item.status == "failed"]


class _SourceDamaged(Exception):
    """Data of the snapshot being copied is missing or damaged in the source."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def same_blob_ids(source: Repository, target: Repository) -> bool:
    """Return whether both repositories give the same content the same blob id.

    A wrong result costs only speed: the target's id always comes from the target.
    """
    # Both name blobs by a plain SHA-256, or by an HMAC with the same id key (a
    # copy of the same encrypted repository), exactly when a probe gets one name.
    probe = b"odoo-dr blob id probe"
    return source.blobs.object_id(probe) == target.blobs.object_id(probe)


class _BlobCopier:
    """Blob copier from source to target, with each source id's target id."""

    def __init__(self, source: Repository, target: Repository, jobs: int) -> None:
        self.source = source
        self.target = target
        self.jobs = jobs
        self.same_ids = same_blob_ids(source, target)
        # Guards `copied` and the counters, which worker threads update.
        self._lock = threading.Lock()
        # Source id to target id, for blobs stored or found intact in this run.
        self.copied: dict[str, str] = {}
        # Source id to target id, paired from snapshots that both repositories
        # contain. Each is checked for presence in the target before it is trusted.
        self.paired: dict[str, str] = {}

    def copy(self, source_id: str, stats: CopyStats, meta: bool = False) -> str:
        """Return the target id of `source_id`, storing the blob if needed."""
        with self._lock:
            known = self.copied.get(source_id)
        if known is not None:
            return known
        candidate = source_id if self.same_ids else self.paired.get(source_id)
        if candidate is not None and self.target.blobs.present(candidate):
            with self._lock:
                self.copied[source_id] = candidate
                stats.blobs_reused += 1
            return candidate
        data = self._read(source_id)
        # Two threads may store the same blob at once: the target's pack writer
        # keeps one, and the other counts as reused.
        target_id, added = self.target.blobs.put(data, meta)
        with self._lock:
            stats.bytes_read += len(data)
            if added.new_objects:
                stats.blobs_sent += added.new_objects
                stats.bytes_sent += added.new_bytes
            else:
                stats.blobs_reused += 1
            self.copied[source_id] = target_id
        return target_id

    def copy_all(self, source_ids: list[str], stats: CopyStats) -> None:
        """Copy each distinct blob of `source_ids`, in `jobs` threads."""
        distinct = list(dict.fromkeys(source_ids))

        def copy_one(source_id: str) -> str:
            return self.copy(source_id, stats)

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="copy")
        try:
            # Reading the results raises the first error of a worker.
            list(pool.map(copy_one, distinct))
        finally:
            # After an error, blobs not started yet are not copied.
            pool.shutdown(wait=True, cancel_futures=True)

    def copy_blob(self, blob: StoredBlob, stats: CopyStats) -> list[str]:
        return [self.copy(blob_id, stats) for blob_id in blob.chunks]

    def _read(self, source_id: str) -> bytes:
        try:
            return self.source.blobs.get(source_id)
        except (SnapshotDamaged, ObjectNotFound) as exc:
            raise _SourceDamaged(exc.message) from None

    def read_index(self, manifest: SnapshotManifest) -> list[dict]:
        """Return the raw entries of a source snapshot's filestore index, checked."""
        try:
            raw = self.source.blobs.read_blob(manifest.filestore.index)
        except (SnapshotDamaged, ObjectNotFound) as exc:
            raise _SourceDamaged(exc.message) from None
        try:
            items = json.loads(raw)
            for item in items:
                FilestoreEntry.model_validate(item)
        except (ValueError, TypeError, ValidationError) as exc:
            problem = str(exc).splitlines()[0]
            raise _SourceDamaged(
                f"the file index of snapshot {manifest.id} is damaged: {problem}"
            ) from None
        return items

    def pair(self, source: SnapshotManifest, target: SnapshotManifest) -> None:
        """Pair the blob ids of one snapshot that both repositories hold."""
        if self.same_ids:
            return
        self._pair_lists(source.filestore.index.chunks, target.filestore.index.chunks)
        target_dump = {item.name: item for item in target.dump}
        for item in source.dump:
            other = target_dump.get(item.name)
            if other is not None:
                self._pair_lists(item.chunks, other.chunks)
        try:
            source_files = json.loads(
                self.source.blobs.read_blob(source.filestore.index)
            )
            target_files = json.loads(
                self.target.blobs.read_blob(target.filestore.index)
            )
        except (RepositoryError, ValueError) as exc:
            log.warning("cannot pair the files of snapshot %s: %s", source.id, exc)
            return
        target_by_path = {item.get("path"): item for item in target_files}
        for item in source_files:
            other = target_by_path.get(item.get("path"))
            if other is not None and other.get("sha1") == item.get("sha1"):
                self._pair_lists(item.get("chunks", []), other.get("chunks", []))

    def _pair_lists(self, source_ids: list[str], target_ids: list[str]) -> None:
        # Lists of equal content have equal length, so other lists stay unpaired.
        if len(source_ids) == len(target_ids):
            self.paired.update(zip(source_ids, target_ids, strict=True))


def _select(
    source: Repository, options: CopyOptions
) -> tuple[list[SnapshotManifest], dict[str, str]]:
    """Return the source snapshots to copy (oldest first) and the unreadable ones."""
    if options.snapshot is not None:
        manifest = source.find_snapshot(options.snapshot)
        if options.tenant is not None and manifest.tenant != options.tenant:
            raise RejectedError(
                f"snapshot {manifest.id} belongs to tenant {manifest.tenant!r}, not "
                f"{options.tenant!r}",
                hint="drop --tenant, or give a snapshot of that tenant",
            )
        return [manifest], {}
    manifests, damaged = source.scan_snapshots(options.tenant)
    if options.tenant is not None and not manifests and not damaged:
        # As verify and prune do: a misspelt tenant must not pass as a copy that
        # found nothing new.
        raise RejectedError(
            f"no snapshots of tenant {options.tenant!r} in repository "
            f"{source.location}",
            hint="list tenants and snapshots with: odoo-dr snapshots",
        )
    return manifests, damaged


def check_residency(manifests: list[SnapshotManifest], target: Repository) -> None:
    """Reject the copy when a snapshot may not be stored in the target's region."""
    region = target.config.region
    rejected = [
        manifest
        for manifest in manifests
        if manifest.residency is not None
        and not residency.admits(manifest.residency, region)
    ]
    if not rejected:
        return
    listed = ", ".join(
        f"{manifest.id} of {manifest.tenant!r} (residency {manifest.residency!r})"
        for manifest in rejected[:LISTED_SNAPSHOTS]
    )
    more = len(rejected) - LISTED_SNAPSHOTS
    if more > 0:
        listed += f" and {more} more"
    if region is None:
        where = "declares no region"
        hint = (
            "copy to a repository created with 'odoo-dr init --region', or leave "
            "these snapshots out with --tenant or --snapshot"
        )
    else:
        where = f"is in region {region!r}"
        hint = (
            "copy to a repository in a region the residency admits, or leave these "
            "snapshots out with --tenant or --snapshot"
        )
    raise RejectedError(
        f"{len(rejected)} snapshot(s) may not be stored in target repository "
        f"{target.location}, which {where}: {listed}; nothing was copied",
        hint=hint,
    )


def _check_distinct(source: Repository, target: Repository) -> None:
    if source.location == target.location:
        raise RejectedError(
            f"--to {target.location} is the source repository itself",
            hint="give another repository with --to; --repo or $ODOO_DR_REPO names "
            "the source",
        )


def run_copy(
    source: Repository,
    target: Repository,
    options: CopyOptions,
    on_snapshot: Callable[[SnapshotCopy], None] | None = None,
) -> CopyReport:
    """Copy the selected snapshots and their drill records, and return a report.

    The checks of the repositories, the selection and each snapshot's residency run
    before anything is written to the target. A tenant that is locked in the target
    (`LockHeld`) stops the run where it is reached. A snapshot
    whose source data is damaged is reported as failed, and the others are still
    copied. A failure to write the target stops the run with `BackupFailed`.
    """
    _check_distinct(source, target)
    if source.encrypted and not target.encrypted and not options.allow_unencrypted:
        raise RejectedError(
            f"source repository {source.location} is encrypted but target "
            f"{target.location} is not: the copy would store every snapshot in clear",
            hint="create the target with 'odoo-dr init --encrypt', or pass "
            "--allow-unencrypted to copy into it in clear on purpose",
        )
    try:
        selected, unreadable = _select(source, options)
        present = set(target.snapshot_ids())
    except SnapshotDamaged:
        raise
    except RepositoryError as exc:
        # A store that fails while it is listed fails the copy, as it would later.
        # Rejections of the input (an unknown snapshot, a wrong tenant) are not
        # RepositoryError and keep exit 2.
        raise BackupFailed(
            f"copy to {target.location} failed: {exc.message}",
            hint=exc.hint or "run the copy again; nothing was copied",
        ) from None
    check_residency([item for item in selected if item.id not in present], target)
    report = CopyReport(source.location, target.location, unreadable=unreadable)
    if not selected:
        return report
    target.check_writable("snapshots", "no snapshot can be copied into it")

    copier = _BlobCopier(source, target, options.jobs)
    try:
        target.cleanup()
        target.blobs.prepare_to_write()
        target_drills = {record.id for record in target.list_drills()}
        source_drills = _drills_by_snapshot(source, selected)
        label = f"copy to {target.location}"
        with progress.track(label, len(selected), "snapshots") as done:
            for tenant, manifests in _by_tenant(selected).items():
                with target.lock_tenant(tenant, "copy"):
                    _pair_latest_common(copier, target, manifests, present)
                    for manifest in manifests:
                        item = _copy_snapshot(copier, target, manifest, present)
                        if item.status != "failed":
                            item.drills = _copy_drills(
                                source,
                                target,
                                source_drills.get(manifest.id, []),
                                target_drills,
                            )
                        report.snapshots.append(item)
                        report.stats.add(item.stats)
                        report.drills += item.drills
                        done(1)
                        if on_snapshot is not None:
                            on_snapshot(item)
    except RepositoryError as exc:
        raise BackupFailed(
            f"copy to {target.location} failed: {exc.message}",
            hint="snapshots already copied stay; run the copy again to resume, "
            "reusing the data it stored",
        ) from None
    except OSError as exc:
        raise BackupFailed(
            f"copy to {target.location} failed: {exc.strerror or exc}",
            hint="snapshots already copied stay; run the copy again to resume",
        ) from None
    return report


def _by_tenant(
    manifests: list[SnapshotManifest],
) -> dict[str, list[SnapshotManifest]]:
    groups: dict[str, list[SnapshotManifest]] = {}
    for manifest in manifests:
        groups.setdefault(manifest.tenant, []).append(manifest)
    return groups


def _pair_latest_common(
    copier: _BlobCopier,
    target: Repository,
    manifests: list[SnapshotManifest],
    present: set[str],
) -> None:
    """Pair ids from the tenant's latest snapshot that the target already holds."""
    if copier.same_ids:
        return
    common = [manifest for manifest in manifests if manifest.id in present]
    if not common:
        return
    latest = common[-1]
    try:
        copier.pair(latest, target.load_snapshot(latest.id))
    except RepositoryError as exc:
        log.warning("cannot pair the blobs of snapshot %s: %s", latest.id, exc.message)


def _copy_snapshot(
    copier: _BlobCopier,
    target: Repository,
    manifest: SnapshotManifest,
    present: set[str],
) -> SnapshotCopy:
    if manifest.id in present:
        return SnapshotCopy(manifest, "present")
    stats = CopyStats()
    try:
        entries = copier.read_index(manifest)
        copier.copy_all(
            [
                *(blob_id for item in manifest.dump for blob_id in item.chunks),
                *(blob_id for entry in entries for blob_id in entry["chunks"]),
            ],
            stats,
        )
        # Every blob is copied now, so the lists below only look their ids up.
        dump = [
            DumpFile(
                name=item.name, size=item.size, chunks=copier.copy_blob(item, stats)
            )
            for item in manifest.dump
        ]
        for entry in entries:
            entry["chunks"] = [
                copier.copy(blob_id, stats) for blob_id in entry["chunks"]
            ]
        index = _store_index(copier, manifest, entries, stats)
    except _SourceDamaged as exc:
        log.warning("cannot copy snapshot %s: %s", manifest.id, exc.message)
        return SnapshotCopy(manifest, "failed", stats, error=exc.message)
    copied = manifest.model_copy(
        update={
            "dump": dump,
            "filestore": manifest.filestore.model_copy(update={"index": index}),
        }
    )
    target.save_snapshot(copied)
    present.add(manifest.id)
    return SnapshotCopy(manifest, "copied", stats)


def _store_index(
    copier: _BlobCopier,
    manifest: SnapshotManifest,
    entries: list[dict],
    stats: CopyStats,
) -> StoredBlob:
    """Store the filestore index in the target, with the target's chunk ids."""
    if copier.same_ids:
        # The entries are unchanged, so the source's index blobs serve as they are.
        chunks = [
            copier.copy(blob_id, stats, meta=True)
            for blob_id in manifest.filestore.index.chunks
        ]
        return StoredBlob(size=manifest.filestore.index.size, chunks=chunks)
    data = dump_json(entries)
    chunks = []
    for chunk in split_bytes(data):
        blob_id, added = copier.target.blobs.put(chunk, meta=True)
        chunks.append(blob_id)
        stats.blobs_sent += added.new_objects
        stats.bytes_sent += added.new_bytes
    return StoredBlob(size=len(data), chunks=chunks)


def _drills_by_snapshot(
    source: Repository, manifests: list[SnapshotManifest]
) -> dict[str, list[DrillRecord]]:
    selected_ids = {manifest.id for manifest in manifests}
    records: dict[str, list[DrillRecord]] = {}
    for record in source.list_drills():
        if record.snapshot_id in selected_ids:
            records.setdefault(record.snapshot_id, []).append(record)
    return records


def _copy_drills(
    source: Repository,
    target: Repository,
    records: list[DrillRecord],
    target_drills: set[str],
) -> int:
    """Copy the drill records the target lacks, marked with the source's id.

    A record copied before keeps the repository it was first made in.
    """
    copied = 0
    for record in records:
        if record.id in target_drills:
            continue
        origin = record.copied_from or source.config.id
        target.save_drill(record.model_copy(update={"copied_from": origin}))
        target_drills.add(record.id)
        copied += 1
    return copied
