"""Store a tenant's filestore files, checked against what the snapshot references."""

from __future__ import annotations

import errno
import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from odoo_dr import progress
from odoo_dr.errors import BackupFailed
from odoo_dr.odoo import filestore
from odoo_dr.odoo.inspect import AttachmentRef
from odoo_dr.repository.blobs import WriteStats
from odoo_dr.repository.manifest import FileProblem, FilestoreEntry
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)


@dataclass
class FilestoreResult:
    entries: list[FilestoreEntry] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    stats: WriteStats = field(default_factory=WriteStats)
    files_read: int = 0
    files_reused: int = 0
    bytes_read: int = 0
    checklist_markers: int = 0


class _NotRegular(Exception):
    """A filestore path that is a symbolic link, a folder or a device."""


@dataclass(frozen=True)
class _Wanted:
    path: str
    attachments: tuple[AttachmentRef, ...]

    @property
    def referenced(self) -> bool:
        return bool(self.attachments)


def _group_references(
    refs: Iterable[AttachmentRef],
) -> tuple[dict[str, list[AttachmentRef]], list[FileProblem]]:
    grouped: dict[str, list[AttachmentRef]] = defaultdict(list)
    invalid: list[FileProblem] = []
    for ref in refs:
        path = filestore.normalize_store_fname(ref.store_fname)
        if path is None:
            invalid.append(
                FileProblem(
                    store_fname=ref.store_fname,
                    reason="invalid path",
                    checksum=ref.checksum,
                    file_size=ref.file_size,
                    attachments=[ref.describe()],
                )
            )
            continue
        grouped[path].append(ref)
    return grouped, invalid


def _misnamed(entry: FilestoreEntry) -> bool:
    """Return whether a file named after a SHA-1, as Odoo names files, has other
    content."""
    promised = filestore.sha1_in_name(entry.path)
    return promised is not None and promised != entry.sha1


class FilestoreBackup:
    """Copies one tenant's files into the repository, in parallel threads.

    A file whose size and modification time equal those recorded by the tenant's
    previous snapshot is not read again: Odoo never rewrites a filestore file in
    place, and `read_all` turns this shortcut off.
    """

    def __init__(
        self,
        repository: Repository,
        folder: Path,
        previous: dict[str, FilestoreEntry],
        jobs: int,
        read_all: bool,
    ) -> None:
        self.repository = repository
        self.folder = folder
        self.previous = previous
        self.jobs = jobs
        self.read_all = read_all

    def run(self, refs: list[AttachmentRef]) -> FilestoreResult:
        result = FilestoreResult()
        grouped, invalid = _group_references(refs)
        result.problems.extend(invalid)

        # One walk lists every regular file with its stat; unchanged files are taken
        # from the previous snapshot right here, and only the others go to threads.
        on_disk = dict(filestore.walk(self.folder))
        wanted = [
            _Wanted(path, tuple(group)) for path, group in sorted(grouped.items())
        ]
        wanted.extend(_Wanted(path, ()) for path in on_disk if path not in grouped)
        result.checklist_markers = filestore.count_checklist_markers(self.folder)

        to_read = []
        for item in wanted:
            entry = self._reusable(item, on_disk.get(item.path))
            if entry is None:
                to_read.append(item)
                continue
            result.entries.append(entry)
            result.files_reused += 1
            problem = self._check(entry, item) if item.attachments else None
            if problem is not None:
                result.problems.append(problem)

        size = sum(
            on_disk[item.path].st_size for item in to_read if item.path in on_disk
        )
        label = f"back up files of {self.folder.name}"
        with (
            ThreadPoolExecutor(
                max_workers=self.jobs, thread_name_prefix="files"
            ) as pool,
            progress.track(label, size) as done,
        ):
            for outcome in pool.map(self._store_one, to_read):
                entry, problem, _reused, stats = outcome
                done(entry.size if entry is not None else 0)
                if entry is not None:
                    result.entries.append(entry)
                    result.files_read += 1
                    result.bytes_read += entry.size
                if problem is not None:
                    result.problems.append(problem)
                result.stats.add(stats)
        result.entries.sort(key=lambda entry: entry.path)
        return result

    def _reusable(
        self, wanted: _Wanted, stat: os.stat_result | None
    ) -> FilestoreEntry | None:
        """Return the previous snapshot's entry if the file is unchanged since."""
        previous = self.previous.get(wanted.path)
        if (
            self.read_all
            or stat is None
            or previous is None
            or previous.size != stat.st_size
            or previous.mtime_ns != stat.st_mtime_ns
            or not all(self.repository.blobs.present(oid) for oid in previous.chunks)
            or (not wanted.referenced and _misnamed(previous))
        ):
            return None
        return previous.model_copy(update={"referenced": wanted.referenced})

    def _store_one(
        self, wanted: _Wanted
    ) -> tuple[FilestoreEntry | None, FileProblem | None, bool, WriteStats]:
        full_path = self.folder / wanted.path
        first = wanted.attachments[0] if wanted.attachments else None
        try:
            entry, reused, stats = self._reuse_or_store(wanted, full_path)
        except _NotRegular:
            if first is None:
                return None, None, False, WriteStats()
            problem = FileProblem(
                store_fname=first.store_fname,
                reason="not a regular file",
                checksum=first.checksum,
                file_size=first.file_size,
                attachments=[ref.describe() for ref in wanted.attachments],
            )
            return None, problem, False, WriteStats()
        except FileNotFoundError:
            if first is None:
                # An unreferenced file that vanished, e.g. removed by Odoo's garbage
                # collector after the walk: nothing was lost.
                return None, None, False, WriteStats()
            problem = FileProblem(
                store_fname=first.store_fname,
                reason="missing",
                checksum=first.checksum,
                file_size=first.file_size,
                attachments=[ref.describe() for ref in wanted.attachments],
            )
            return None, problem, False, WriteStats()
        except PermissionError as exc:
            raise BackupFailed(
                f"cannot read filestore file {full_path}: {exc.strerror}",
                hint="run odoo-dr as a user that can read the Odoo filestore",
            ) from None
        if first is None and _misnamed(entry):
            # An upload still being written, or a damaged file. No attachment of the
            # snapshot uses it, and a restored copy must not offer it to Odoo under
            # a name that promises other content.
            log.debug(
                "skipped unreferenced file %s: its SHA-1 is %s", entry.path, entry.sha1
            )
            return None, None, reused, stats
        problem = self._check(entry, wanted) if first is not None else None
        return entry, problem, reused, stats

    def _reuse_or_store(
        self, wanted: _Wanted, full_path: Path
    ) -> tuple[FilestoreEntry, bool, WriteStats]:
        stat = os.lstat(full_path)
        if not S_ISREG(stat.st_mode):
            raise _NotRegular(full_path)
        try:
            blob, sha1, stats = self.repository.blobs.put_file(full_path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _NotRegular(full_path) from None
            raise
        entry = FilestoreEntry.model_construct(
            path=wanted.path,
            sha1=sha1,
            size=blob.size,
            chunks=blob.chunks,
            referenced=wanted.referenced,
            mtime_ns=stat.st_mtime_ns,
        )
        log.debug("stored file %s bytes=%d", wanted.path, blob.size)
        return entry, False, stats

    @staticmethod
    def _check(entry: FilestoreEntry, wanted: _Wanted) -> FileProblem | None:
        first = wanted.attachments[0]
        reason = None
        if first.checksum and first.checksum != entry.sha1:
            reason = "checksum mismatch"
        elif first.file_size is not None and first.file_size != entry.size:
            reason = "size mismatch"
        if reason is None:
            return None
        return FileProblem(
            store_fname=first.store_fname,
            reason=reason,
            checksum=first.checksum,
            file_size=first.file_size,
            found_sha1=entry.sha1,
            found_size=entry.size,
            attachments=[ref.describe() for ref in wanted.attachments],
        )
