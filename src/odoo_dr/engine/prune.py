"""Remove the snapshots that retention lets go, then the packs nothing refers to.

Prune runs under the repository's prune lock, which it takes only while no tenant
is locked (see `repository.lock`). It plans before it changes anything:

1. Decide per tenant which snapshots stay (`engine.retention`).
2. Mark every blob that a remaining snapshot needs: its dump files, its file
   index and the chunks of every file that the file index lists. Mark every
   blob of the filestore journals' entries too, except entries of files gone
   before `keep_since` (see `engine.journal_prune`).
3. Keep every pack that holds the current copy of a marked blob; every other pack
   can go, unless the backend reports it locked. With a repack threshold, a kept
   pack whose unmarked share of bytes exceeds it is rewritten.

Then it changes the repository in an order that a kill at any point leaves safe:

0. Write the marked blobs of the packs to rewrite into new packs.
1. Delete the manifests of the snapshots that go, and rewrite the journals
   that drop entries.
2. Write one new index file that lists the packs that stay.
3. Delete the older index files.
4. Delete the packs that go.

Until step 4 every pack still exists; during step 4 no index file names the packs
being deleted, and no remaining manifest needs them. New packs of step 0 that no
index file lists yet are only copies, so a kill there leaves garbage, not damage.
A second prune finishes what a killed one left.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from odoo_dr.engine.journal_prune import (
    JournalPlan,
    damaged_journals_error,
    plan_journals,
    rewrite_journals,
)
from odoo_dr.engine.platform import plan_platform_records, remove_platform_records
from odoo_dr.engine.release import latest_restore_points
from odoo_dr.engine.retention import (
    Decision,
    RetentionPolicy,
    SnapshotFacts,
    choose_policy,
    select,
)
from odoo_dr.errors import OdooDrError, RejectedError, RepositoryError
from odoo_dr.repository.index import pack_key, write_index_file
from odoo_dr.repository.lock import PruneLock
from odoo_dr.repository.manifest import FilestoreEntry, SnapshotManifest
from odoo_dr.repository.packs import BlobLocation, PackWriter, SealedPack
from odoo_dr.repository.store import MANIFEST_READERS, Repository

log = logging.getLogger(__name__)


@dataclass
class TenantPlan:
    """One tenant's snapshots, newest first, and the policy that decided them."""

    tenant: str
    policy_number: int | None
    policy: RetentionPolicy | None
    decisions: list[Decision]

    @property
    def removed(self) -> list[str]:
        return [item.snapshot.id for item in self.decisions if not item.keep]


@dataclass
class PruneResult:
    tenants: list[TenantPlan]
    dry_run: bool
    # Manifests that cannot be read, or whose file index cannot be read, by id.
    damaged: dict[str, str] = field(default_factory=dict)
    packs_to_delete: list[str] = field(default_factory=list)
    # Bytes of the blobs stored in the packs to delete, per the index.
    bytes_to_delete: int = 0
    packs_kept: int = 0
    locked_packs: dict[str, datetime] = field(default_factory=dict)
    # Packs that no index file lists and whose header cannot be read: prune cannot
    # know what they hold, so it leaves them.
    unreadable_packs: list[str] = field(default_factory=list)
    locked_index_files: dict[str, datetime] = field(default_factory=dict)
    snapshots_removed: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    index_files_deleted: int = 0
    new_index_file: str | None = None
    # Kept packs to rewrite without their unused blobs: the blobs to copy, by pack.
    packs_to_repack: dict[str, list[str]] = field(default_factory=dict)
    # Packs left as they are because a blob to copy could not be read, and why.
    repack_failed: dict[str, str] = field(default_factory=dict)
    packs_written: int = 0
    # Filestore journals: what each keeps and drops, and the unreadable ones.
    journals: list[JournalPlan] = field(default_factory=list)
    damaged_journals: dict[str, str] = field(default_factory=dict)
    journals_rewritten: int = 0
    # Platform backup records whose tenant snapshots are all gone.
    platform_records_removed: list[str] = field(default_factory=list)


def _drilled_snapshots(repository: Repository) -> set[str]:
    return {record.snapshot_id for record in repository.list_drills() if record.passed}


def _future(moment: datetime | None, now: datetime) -> datetime | None:
    return moment if moment is not None and moment > now else None


def _retained_until(
    repository: Repository, snapshot_ids: list[str]
) -> dict[str, datetime | None]:
    """Read the Object Lock date of each manifest, several at a time, since each is
    a request of its own to an object store."""

    def retained(snapshot_id: str) -> datetime | None:
        return repository.backend.retained_until(f"snapshots/{snapshot_id}.json")

    with ThreadPoolExecutor(
        max_workers=MANIFEST_READERS, thread_name_prefix="odoo-dr-retention"
    ) as pool:
        return dict(zip(snapshot_ids, pool.map(retained, snapshot_ids), strict=True))


def plan_tenants(
    repository: Repository,
    manifests: list[SnapshotManifest],
    policies: list[RetentionPolicy],
    tenant: str | None,
    now: datetime,
) -> list[TenantPlan]:
    """Decide, per tenant (or for `tenant` only), which snapshots stay."""
    by_tenant: dict[str, list[SnapshotManifest]] = defaultdict(list)
    for manifest in manifests:
        by_tenant[manifest.tenant].append(manifest)
    if tenant is not None and tenant not in by_tenant:
        raise RejectedError(
            f"tenant {tenant!r} has no readable snapshot in repository "
            f"{repository.location}",
            hint="list snapshots with: odoo-dr snapshots",
        )
    drilled = _drilled_snapshots(repository)
    locked = _retained_until(
        repository,
        [
            item.id
            for name, items in by_tenant.items()
            if tenant in (None, name)
            for item in items
        ],
    )
    restore_points = {
        point.snapshot_id: point.release
        for point in latest_restore_points(repository).values()
    }
    plans = []
    for name in sorted(by_tenant):
        if tenant is not None and name != tenant:
            continue
        items = by_tenant[name]
        newest = max(items, key=lambda item: (item.snapshot_time, item.id))
        chosen = choose_policy(policies, newest.labels)
        facts = [
            SnapshotFacts(
                id=item.id,
                time=item.snapshot_time,
                labels=item.labels,
                drill_passed=item.id in drilled,
                restore_point_of=restore_points.get(item.id),
                locked_until=_future(locked[item.id], now),
            )
            for item in items
        ]
        decisions = select(facts, chosen[1] if chosen else None, now)
        plans.append(
            TenantPlan(
                name,
                chosen[0] if chosen else None,
                chosen[1] if chosen else None,
                decisions,
            )
        )
    return plans


def _mark(
    repository: Repository,
    manifests: list[SnapshotManifest],
    damaged: dict[str, str],
) -> set[str]:
    """Return the ids of every blob the manifests need; note those not readable."""
    marked: set[str] = set()
    for manifest in manifests:
        for dump_file in manifest.dump:
            marked.update(dump_file.chunks)
        marked.update(manifest.filestore.index.chunks)
        try:
            raw = repository.blobs.read_blob(manifest.filestore.index)
            for item in json.loads(raw):
                marked.update(FilestoreEntry.model_validate(item).chunks)
        except (OdooDrError, ValueError, ValidationError) as exc:
            message = exc.message if isinstance(exc, OdooDrError) else str(exc)
            damaged[manifest.id] = (
                f"its file index cannot be read: {message.splitlines()[0]}"
            )
    return marked


def _damaged_error(repository: Repository, damaged: dict[str, str]) -> RepositoryError:
    listed = "; ".join(
        f"{repository.manifest_path(snapshot_id)}: {message}"
        for snapshot_id, message in sorted(damaged.items())[:10]
    )
    more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
    return RepositoryError(
        f"cannot prune: {len(damaged)} snapshot(s) cannot be read, so prune cannot "
        f"tell which packs they need: {listed}{more}",
        hint="run 'odoo-dr verify' to see what is damaged; put the manifests back "
        "from a copy of the repository, or move unreadable ones out of snapshots/ "
        "and run 'odoo-dr repository rebuild-catalog'; prune --ignore-damaged "
        "deletes what they may need",
    )


def prune(
    repository: Repository,
    policies: list[RetentionPolicy],
    *,
    tenant: str | None = None,
    dry_run: bool = False,
    ignore_damaged: bool = False,
    repack: float | None = None,
    now: datetime | None = None,
    keep_since: datetime | None = None,
) -> PruneResult:
    """Plan a prune and, unless `dry_run`, carry it out under the prune lock.

    `repack` is the unused share of a kept pack's bytes (0 to 1) above which the
    pack is rewritten with only its used blobs; None rewrites no pack. Filestore
    journal entries of files gone before `keep_since` are dropped; with None,
    every journal entry stays.
    """
    now = now or datetime.now(UTC)
    options = (ignore_damaged, repack, now, keep_since)
    if dry_run:
        # A dry run changes nothing in the repository, the catalog included.
        catalog_writes = repository.catalog_writes
        repository.catalog_writes = False
        try:
            return _plan(repository, policies, tenant, *options, dry_run=True)
        finally:
            repository.catalog_writes = catalog_writes
    with PruneLock(repository.backend, repository.keys):
        repository.cleanup()
        repository.forget_stale_removals()
        result = _plan(repository, policies, tenant, *options, dry_run=False)
        _execute(repository, result)
        # After the manifests are gone: readers ignore the entries of manifests
        # that the catalog lists as removed until then. A prune killed before this
        # step left such entries for the next one to remove.
        if result.snapshots_removed or repository.catalog_stale_entries():
            repository.compact_catalog()
        return result


def _plan(
    repository: Repository,
    policies: list[RetentionPolicy],
    tenant: str | None,
    ignore_damaged: bool,
    repack: float | None,
    now: datetime,
    keep_since: datetime | None,
    *,
    dry_run: bool,
) -> PruneResult:
    manifests, damaged = repository.scan_snapshots()
    tenants = plan_tenants(repository, manifests, policies, tenant, now)
    removed = {snapshot_id for plan in tenants for snapshot_id in plan.removed}
    remaining = [item for item in manifests if item.id not in removed]

    index = repository.blobs.index
    # Packs of a killed backup that no index file lists are read from their
    # headers; the index grows only in memory here.
    index.add_unindexed_packs()
    marked = _mark(repository, remaining, damaged)
    result = PruneResult(tenants, dry_run, damaged)
    if damaged and not ignore_damaged:
        raise _damaged_error(repository, damaged)
    result.journals, journal_blobs = plan_journals(
        repository, tenant, keep_since, result.damaged_journals
    )
    if result.damaged_journals and not ignore_damaged:
        raise damaged_journals_error(repository, result.damaged_journals)
    marked |= journal_blobs
    platform_blobs, result.platform_records_removed = plan_platform_records(
        repository, {item.id for item in remaining}, result.damaged
    )
    if result.damaged and not ignore_damaged:
        raise _damaged_error(repository, result.damaged)
    marked |= platform_blobs

    locations = index.locations()
    kept: set[str] = {
        locations[blob_id].pack for blob_id in marked if blob_id in locations
    }
    on_disk = index.pack_ids_on_disk()
    known = index.packs()
    result.unreadable_packs = sorted(on_disk - known)
    for pack_id in sorted(on_disk & known - kept):
        locked = _future(repository.backend.retained_until(pack_key(pack_id)), now)
        if locked is not None:
            result.locked_packs[pack_id] = locked
        else:
            result.packs_to_delete.append(pack_id)
    doomed = set(result.packs_to_delete)
    result.bytes_to_delete = sum(
        where.length for where in locations.values() if where.pack in doomed
    )
    result.packs_kept = len(on_disk - doomed)
    result.snapshots_removed = sorted(removed)
    if repack is not None:
        result.packs_to_repack = _packs_to_repack(
            repository, locations, marked, kept, repack, now
        )
    return result


def _packs_to_repack(
    repository: Repository,
    locations: dict[str, BlobLocation],
    marked: set[str],
    kept: set[str],
    threshold: float,
    now: datetime,
) -> dict[str, list[str]]:
    """Return the kept packs whose unused share exceeds `threshold`, with the
    blobs to copy out of each.

    Shares count the stored bytes of the blobs that the index places in a pack.
    NOTE: an older copy of a blob that a newer pack superseded is counted in
    neither part, so such a pack may waste more than its share shows.
    """
    total: dict[str, int] = defaultdict(int)
    used: dict[str, list[str]] = defaultdict(list)
    used_bytes: dict[str, int] = defaultdict(int)
    for blob_id, where in locations.items():
        if where.pack not in kept:
            continue
        total[where.pack] += where.length
        if blob_id in marked:
            used[where.pack].append(blob_id)
            used_bytes[where.pack] += where.length
    chosen = {}
    for pack_id in sorted(kept):
        if not total[pack_id]:
            continue
        unused = 1 - used_bytes[pack_id] / total[pack_id]
        if unused <= threshold:
            continue
        if _future(repository.backend.retained_until(pack_key(pack_id)), now):
            continue
        chosen[pack_id] = sorted(used[pack_id], key=lambda b: locations[b].offset)
    return chosen


def _repack(repository: Repository, result: PruneResult) -> None:
    """Copy the used blobs of the packs to repack into new, durable packs.

    The in-memory index then points at the copies, and the old packs join the
    packs to delete.
    """
    index = repository.blobs.index
    written: list[SealedPack] = []

    def store(sealed: SealedPack) -> None:
        repository.backend.write(
            pack_key(sealed.id), sealed.data, retain_until=repository.retain_until()
        )
        written.append(sealed)

    writer = PackWriter(repository.config.pack_size, store, repository.keys)
    copied: list[str] = []
    for pack_id, blob_ids in result.packs_to_repack.items():
        entries = []
        try:
            data = repository.backend.read(pack_key(pack_id))
            for blob_id in blob_ids:
                where = index.get(blob_id)
                stored = data[where.offset : where.offset + where.length]
                # Check each blob, so that a damaged one is not copied as intact.
                repository.blobs.decode(blob_id, stored)
                entries.append((blob_id, stored, where.size))
        except OdooDrError as exc:
            result.repack_failed[pack_id] = exc.message
            log.warning("not repacking pack %s: %s", pack_id, exc.message)
            continue
        for blob_id, stored, size in entries:
            writer.add(blob_id, stored, size)
        copied.append(pack_id)
    writer.flush()
    # The copies are durable before any index file names them.
    repository.backend.flush()
    for sealed in written:
        index.add_pack(sealed.id, sealed.blobs)
    # Packs are named by their content, so a pack that a killed repack wrote
    # before, planned for deletion as unused, is the same pack as a new one.
    new_ids = {sealed.id for sealed in written}
    result.packs_to_delete = [
        pack_id for pack_id in result.packs_to_delete if pack_id not in new_ids
    ]
    result.packs_to_delete.extend(copied)
    result.packs_written = len(written)
    result.packs_kept += len(new_ids) - len(copied)


def _remaining_index(
    repository: Repository, result: PruneResult
) -> dict[str, dict[str, BlobLocation]]:
    """Return, by pack, the blobs of every pack that stays, as the index lists them."""
    doomed = set(result.packs_to_delete)
    packs: dict[str, dict[str, BlobLocation]] = defaultdict(dict)
    for blob_id, where in repository.blobs.index.locations().items():
        if where.pack not in doomed:
            packs[where.pack][blob_id] = where
    return packs


def _delete_manifests(repository: Repository, snapshot_ids: list[str]) -> None:
    for snapshot_id in snapshot_ids:
        repository.backend.delete(f"snapshots/{snapshot_id}.json")
        log.info("removed snapshot %s", snapshot_id)


def _execute(repository: Repository, result: PruneResult) -> None:
    backend = repository.backend
    if result.packs_to_repack:
        _repack(repository, result)
    # The catalog lists the manifests prune deletes before any is deleted, so a
    # manifest deleted by anything else is found as missing.
    repository.mark_removed(result.snapshots_removed)
    _delete_manifests(repository, result.snapshots_removed)
    remove_platform_records(repository, result.platform_records_removed)
    result.journals_rewritten = rewrite_journals(repository, result.journals)
    if not result.snapshots_removed and not result.packs_to_delete:
        return

    old_index_files = sorted(backend.list("index/"))
    # Every pack still exists here, and the manifests just deleted are the only
    # ones that needed the packs to delete.
    result.new_index_file = write_index_file(
        backend,
        _remaining_index(repository, result),
        repository.keys,
        repository.retain_until(),
    )

    now = datetime.now(UTC)
    for key in old_index_files:
        if key == result.new_index_file:
            continue
        locked = _future(backend.retained_until(key), now)
        if locked is not None:
            result.locked_index_files[key] = locked
            continue
        backend.delete(key)
        result.index_files_deleted += 1
    if result.locked_index_files:
        # NOTE: a locked older index file still lists the packs deleted below.
        # Readers then find those blobs indexed but missing; a backup writes such
        # a blob again and verify reports only snapshots that need it.
        log.warning(
            "%d older index files are locked and stay", len(result.locked_index_files)
        )

    for pack_id in result.packs_to_delete:
        backend.delete(pack_key(pack_id))
        result.packs_deleted += 1
    backend.flush()
    log.info(
        "pruned %s: removed %d snapshots, deleted %d packs",
        repository.location,
        len(result.snapshots_removed),
        result.packs_deleted,
    )
