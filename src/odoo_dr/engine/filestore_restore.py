"""Write filestore files from the repository into a folder.

The files come from a snapshot's file index (`FilestoreEntry`) or from the
filestore journal (`JournalEntry`); both name a path, a SHA-1, a size and chunks.

Most filestore files are one blob. Those are grouped by pack, each pack is read with
one sequential read of the span they occupy, and every file is written from that
buffer. Larger files (several blobs) are written one blob after another.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from odoo_dr import progress
from odoo_dr.errors import CorruptObject, SnapshotDamaged
from odoo_dr.odoo.filestore import safe_relative
from odoo_dr.repository.packs import BlobLocation
from odoo_dr.repository.store import Repository

# Packs read at once, per pg_restore job. On the two-core machine of BENCHMARKS.md,
# four threads wrote the same files in 4.2 s where two took 2.8 s: more threads only
# made the kernel work harder.
THREADS_PER_JOB = 1
MAX_THREADS = 4


class StoredFile(Protocol):
    """A filestore file recorded in the repository, with the SHA-1 to check."""

    @property
    def path(self) -> str: ...

    sha1: str
    size: int
    chunks: list[str]


@contextmanager
def naming_path(path: Path) -> Iterator[None]:
    """Add `path` to an `OSError` that names none, such as a failed write."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _check(repository: Repository, entry: StoredFile, sha1: str, size: int) -> None:
    if sha1 != entry.sha1 or size != entry.size:
        raise CorruptObject(
            f"filestore file {entry.path} read from repository {repository.location} "
            f"does not match its record (sha1 {sha1}, size {size}, expected sha1 "
            f"{entry.sha1}, size {entry.size})",
            hint="run 'odoo-dr verify --read-data' to find the snapshots it breaks",
        )


def _write_multi(repository: Repository, entry: StoredFile, folder: Path) -> int:
    sha1 = hashlib.sha1()
    size = 0
    path = folder / safe_relative(entry.path)
    with naming_path(path), open(path, "wb") as handle:
        for chunk in repository.blobs.iter_blob(entry, verify=False):
            sha1.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    _check(repository, entry, sha1.hexdigest(), size)
    return size


def _write_pack(
    repository: Repository,
    items: list[tuple[StoredFile, BlobLocation]],
    folder: Path,
    cancelled: threading.Event,
) -> int:
    """Write the single-blob files whose blob is in one pack, from one read."""
    if cancelled.is_set():
        return 0
    items.sort(key=lambda item: item[1].offset)
    start = items[0][1].offset
    end = max(where.offset + where.length for _entry, where in items)
    span = repository.blobs.read_stored(
        BlobLocation(items[0][1].pack, start, end - start, 0)
    )
    written = 0
    for entry, where in items:
        stored = span[where.offset - start : where.offset - start + where.length]
        # The file's SHA-1 from its record proves the whole content, so the blob's
        # own SHA-256 is not computed again (its zstd checksum still is).
        try:
            data = repository.blobs.decode(entry.chunks[0], stored, verify=False)
        except SnapshotDamaged as exc:
            raise SnapshotDamaged(
                f"{exc.message} (in filestore file {entry.path})", exc.hint
            ) from None
        _check(repository, entry, hashlib.sha1(data).hexdigest(), len(data))
        path = folder / safe_relative(entry.path)
        with naming_path(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                # write() may write less than requested (on a disk about to be full);
                # the next call then raises the error.
                remaining = memoryview(data)
                while remaining:
                    remaining = remaining[os.write(fd, remaining) :]
            finally:
                os.close(fd)
        written += len(data)
    return written


def restore_files(
    repository: Repository,
    entries: list[StoredFile],
    folder: Path,
    jobs: int,
    owner: tuple[int, int] | None = None,
    cancelled: threading.Event | None = None,
) -> tuple[int, int]:
    """Write every entry below `folder`; return the number of files and bytes.

    With `owner` (uid, gid), every file and folder written is given to that user,
    so the Odoo server can add attachments next to them. Setting `cancelled` makes
    the remaining packs be skipped.
    """
    stop = cancelled or threading.Event()
    by_pack: dict[str, list[tuple[StoredFile, BlobLocation]]] = defaultdict(list)
    several: list[StoredFile] = []
    folders = {folder}
    for entry in entries:
        folders.add((folder / safe_relative(entry.path)).parent)
        if len(entry.chunks) == 1:
            where = repository.blobs.location(entry.chunks[0])
            by_pack[where.pack].append((entry, where))
        else:
            several.append(entry)
    for path in sorted(folders):
        path.mkdir(parents=True, exist_ok=True)

    threads = min(MAX_THREADS, THREADS_PER_JOB * jobs)
    total = sum(entry.size for entry in entries)
    try:
        with (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="files") as pool,
            progress.track(f"write {len(entries):,} files", total) as done,
        ):

            def write_pack(items: list[tuple[StoredFile, BlobLocation]]) -> int:
                written = _write_pack(repository, items, folder, stop)
                done(written)
                return written

            sizes = list(pool.map(write_pack, by_pack.values()))
            for entry in several:
                sizes.append(_write_multi(repository, entry, folder))
                done(sizes[-1])
    except SnapshotDamaged:
        stop.set()
        raise
    if owner is not None:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, *owner, follow_symlinks=False)
    return len(entries), sum(sizes)
