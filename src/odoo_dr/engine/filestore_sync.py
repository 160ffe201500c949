"""Keep a tenant's filestore journal in step with its filestore folder.

Each sync lists the tenant's folder by name only (Odoo never rewrites a file in
place: its name is the SHA-1 of its content), compares the names with the files
the journal holds, stores the content of new files, and writes one segment that
lists the new and the gone files. A run that finds nothing new reads no file and
writes nothing. The journal, not a local cache, is the only record: the parsed
segments a `JournalReader` keeps between runs live in memory.

The functions at the end are what a point-in-time restore uses: the files of a
tenant as they were at a moment, and writing them into a folder.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG

from odoo_dr.engine.filestore_restore import restore_files
from odoo_dr.engine.retention import parse_age
from odoo_dr.errors import BackupFailed, RejectedError
from odoo_dr.odoo.filestore import CHECKLIST
from odoo_dr.repository.blobs import WriteStats
from odoo_dr.repository.journal import (
    GoneEntry,
    JournalEntry,
    JournalProblem,
    JournalReader,
    JournalSegment,
    JournalState,
    merge,
    write_segment,
)
from odoo_dr.repository.lock import FilestoreSyncLock
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

# Segments of one tenant after which a sync merges them into one. Each read of
# the journal lists and opens every segment, so their number bounds its cost.
COMPACT_AFTER = 50
_SHA1_NAME = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class SyncResult:
    tenant: str
    folder: Path
    new_files: int = 0
    new_bytes: int = 0
    gone_files: int = 0
    present_files: int = 0
    # Problems found by this run (files already reported are not repeated).
    problems: list[JournalProblem] = field(default_factory=list)
    stats: WriteStats = field(default_factory=WriteStats)
    segment: str | None = None
    compacted: bool = False
    seconds: float = 0.0


@dataclass
class _Listing:
    """The tenant folder's files named as Odoo names them, and the other paths."""

    names: set[str] = field(default_factory=set)
    odd: dict[str, str] = field(default_factory=dict)
    # Entries directly in the tenant folder, the checklist folder included.
    entries: int = 0


def _is_odoo_name(folder: str, name: str) -> bool:
    # Odoo names a file <sha1[:2]>/<sha1>; versions before 11 used <sha1[:3]>.
    return len(folder) in (2, 3) and _SHA1_NAME.match(name) and name.startswith(folder)


def list_folder(folder: Path) -> _Listing:
    """List a tenant folder with `os.scandir`, without a stat call per file.

    The file type comes from the directory entry itself on Linux file systems,
    so an unchanged folder of 20,000 files costs about 260 directory reads.
    """
    listing = _Listing()
    with os.scandir(folder) as top:
        subfolders = []
        for entry in top:
            listing.entries += 1
            if entry.is_dir(follow_symlinks=False):
                if entry.name != CHECKLIST:
                    subfolders.append(entry.name)
            else:
                listing.odd[entry.name] = "unexpected name"
    for sub in subfolders:
        try:
            with os.scandir(folder / sub) as inner:
                for entry in inner:
                    path = f"{sub}/{entry.name}"
                    if not entry.is_file(follow_symlinks=False):
                        listing.odd[path] = "not a regular file"
                    elif _is_odoo_name(sub, entry.name):
                        listing.names.add(path)
                    else:
                        listing.odd[path] = "unexpected name"
        except FileNotFoundError:
            continue
    return listing


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class _Store:
    """Reads and stores one new file; runs in worker threads."""

    def __init__(self, repository: Repository, folder: Path, now: datetime) -> None:
        self.repository = repository
        self.folder = folder
        self.now = now

    def __call__(
        self, name: str
    ) -> tuple[JournalEntry | JournalProblem | None, WriteStats]:
        path = self.folder / name
        try:
            stat = os.lstat(path)
            if not S_ISREG(stat.st_mode):
                return self._problem(name, "not a regular file", stat), WriteStats()
            blob, sha1, stats = self.repository.blobs.put_file(path)
        except FileNotFoundError:
            # Removed since the listing (Odoo's garbage collector): never seen.
            return None, WriteStats()
        except PermissionError as exc:
            raise BackupFailed(
                f"cannot read filestore file {path}: {exc.strerror}",
                hint="run odoo-dr as a user that can read the Odoo filestore",
            ) from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            return self._problem(
                name, "not a regular file", os.lstat(path)
            ), WriteStats()
        if sha1 != name.rsplit("/", 1)[-1]:
            # The stored blob stays unreferenced, and prune deletes it. A file
            # read while Odoo was still writing it is read again once it changes.
            problem = self._problem(name, "checksum mismatch", stat)
            problem.size = blob.size
            problem.found_sha1 = sha1
            return problem, stats
        entry = JournalEntry(
            store_fname=name,
            sha1=sha1,
            size=blob.size,
            chunks=blob.chunks,
            first_seen=self.now,
            mtime=_utc(stat.st_mtime_ns),
        )
        log.debug("stored file %s bytes=%d", name, blob.size)
        return entry, stats

    def _problem(
        self, name: str, reason: str, stat: os.stat_result | None
    ) -> JournalProblem:
        return JournalProblem(
            store_fname=name,
            reason=reason,
            size=stat.st_size if stat is not None else 0,
            mtime_ns=stat.st_mtime_ns if stat is not None else 0,
            seen=self.now,
        )


def _unchanged_problem(folder: Path, problem: JournalProblem | None) -> bool:
    """Return whether a file already reported as damaged is still as it was."""
    if problem is None:
        return False
    if problem.reason != "checksum mismatch":
        return True
    try:
        stat = os.lstat(folder / problem.store_fname)
    except FileNotFoundError:
        return False
    return stat.st_size == problem.size and stat.st_mtime_ns == problem.mtime_ns


def _check_folder(folder: Path, listing: _Listing, state: JournalState) -> None:
    """Reject a tenant folder that is empty while the journal holds files.

    Odoo leaves its emptied `<xx>` folders in place, so an empty tenant folder is
    more likely an unmounted volume's mount point than a filestore whose files
    were all deleted.
    """
    present = state.present()
    if present and not listing.entries:
        raise RejectedError(
            f"filestore folder {folder} is empty, but the filestore journal of "
            f"tenant {state.tenant!r} holds {len(present):,} files found there before",
            hint="check that the filestore volume is mounted and that "
            "--filestore-root is right; if the files were deleted on purpose, create "
            "an empty folder in it and sync again to record them as gone",
        )


def sync(
    repository: Repository,
    tenant: str,
    folder: Path,
    *,
    jobs: int = 4,
    reader: JournalReader | None = None,
    compact_after: int = COMPACT_AFTER,
) -> SyncResult:
    """Record in the journal what changed in `folder` since the last sync.

    `reader` keeps parsed segments between runs of a loop. Raises `RejectedError`
    when `folder` is missing, and `LockHeld` while another sync of the tenant or
    a prune runs.
    """
    started = time.monotonic()
    if not folder.is_dir():
        raise RejectedError(
            f"filestore folder {folder} of tenant {tenant!r} not found",
            hint="check --filestore-root (or data_dir in odoo.conf) and the database "
            "name; the folder's name must be the database's exact name",
        )
    reader = reader or JournalReader(repository, tenant)
    result = SyncResult(tenant, folder)
    with FilestoreSyncLock(repository.backend, tenant, repository.keys):
        state = reader.load()
        listing = list_folder(folder)
        _check_folder(folder, listing, state)
        now = datetime.now(UTC)
        present = state.present()

        on_disk = listing.names | listing.odd.keys()
        gone = sorted(set(present) - listing.names)
        gone += sorted(name for name in state.problems if name not in on_disk)
        to_read = [
            name
            for name in sorted(listing.names - present.keys())
            if not _unchanged_problem(folder, state.problems.get(name))
        ]
        store = _Store(repository, folder, now)
        for name, reason in sorted(listing.odd.items()):
            known = state.problems.get(name)
            if known is None or known.reason != reason:
                result.problems.append(
                    store._problem(name, reason, _lstat(folder, name))
                )

        new_entries: list[JournalEntry] = []
        if to_read:
            repository.blobs.prepare_to_write()
            with ThreadPoolExecutor(
                max_workers=jobs, thread_name_prefix="sync"
            ) as pool:
                for outcome, stats in pool.map(store, to_read):
                    result.stats.add(stats)
                    if isinstance(outcome, JournalEntry):
                        new_entries.append(outcome)
                    elif outcome is not None:
                        result.problems.append(outcome)
            repository.blobs.flush()
            repository.extend_locks(
                {chunk for entry in new_entries for chunk in entry.chunks}
            )

        result.new_files = len(new_entries)
        result.new_bytes = sum(entry.size for entry in new_entries)
        result.gone_files = len(set(gone) & present.keys())
        result.present_files = len(present) - result.gone_files + result.new_files
        if new_entries or gone or result.problems:
            segment = JournalSegment(
                tenant=tenant,
                sequence=state.next_sequence,
                written_at=now,
                new=new_entries,
                gone=[GoneEntry(store_fname=name, gone_seen=now) for name in gone],
                problems=result.problems,
            )
            result.segment = write_segment(repository, segment)
            state = reader.load()
            if len(state.live) > compact_after:
                merge(repository, state)
                result.compacted = True
        for problem in result.problems:
            log.warning(
                "tenant %r: filestore file not recorded: %s", tenant, problem.describe()
            )
    result.seconds = time.monotonic() - started
    log.info(
        "synced filestore tenant=%s new=%d bytes=%d gone=%d segment=%s",
        tenant,
        result.new_files,
        result.new_bytes,
        result.gone_files,
        result.segment,
    )
    return result


def _lstat(folder: Path, name: str) -> os.stat_result | None:
    try:
        return os.lstat(folder / name)
    except OSError:
        return None


def parse_moment(text: str, option: str, now: datetime | None = None) -> datetime:
    """Return the moment written as ISO 8601 (UTC unless it names a time zone),
    or as an age before `now` such as 30d."""
    try:
        return _aware(datetime.fromisoformat(text.strip()))
    except ValueError:
        pass
    try:
        age = parse_age(text.strip())
    except ValueError:
        raise RejectedError(
            f"invalid {option} {text!r}",
            hint="give a time such as 2026-12-04T10:42:00Z (UTC unless it names a "
            "time zone), or an age such as 12h, 7d or 2w",
        ) from None
    return (now or datetime.now(UTC)) - age


# -- what a point-in-time restore reads


def _aware(moment: datetime) -> datetime:
    """Return `moment` with a time zone: a naive one is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def journal_entries(repository: Repository, tenant: str) -> dict[str, JournalEntry]:
    """Return every file the tenant's journal recorded: its latest lifetime,
    by store_fname."""
    return JournalReader(repository, tenant).load().latest()


def files_at(
    repository: Repository, tenant: str, moment: datetime
) -> dict[str, JournalEntry]:
    """Return the tenant's filestore as it was at `moment`, by store_fname.

    A file counts when min(mtime, first_seen) <= moment and it was not yet missed
    (gone_seen is None or later than moment). A naive `moment` is taken as UTC.
    """
    return JournalReader(repository, tenant).load().at(_aware(moment))


def write_files(
    repository: Repository,
    entries: Iterable[JournalEntry],
    folder: Path,
    jobs: int,
) -> tuple[int, int]:
    """Write `entries` into `folder/<xx>/<sha1>`, each checked against its SHA-1.

    Returns the number of files and bytes written. Raises `SnapshotDamaged` (or
    its `CorruptObject`) when a blob is missing or its content is damaged.
    """
    return restore_files(repository, list(entries), folder, jobs)
