"""Write a snapshot's filestore files from the repository into a folder."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from odoo_dr.errors import CorruptObject, SnapshotDamaged
from odoo_dr.odoo.filestore import safe_relative
from odoo_dr.repository.manifest import FilestoreEntry
from odoo_dr.repository.store import Repository

# Threads per pg_restore job: reading many small objects from a cold disk waits on
# I/O far more than on the CPU.
THREADS_PER_JOB = 4
MAX_THREADS = 16


def _write_one(
    repository: Repository,
    entry: FilestoreEntry,
    folder: Path,
    cancelled: threading.Event,
) -> int:
    if cancelled.is_set():
        return 0
    path = folder / safe_relative(entry.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sha1 = hashlib.sha1()
    size = 0
    # The file's SHA-1 from the manifest proves the whole content, so the chunks'
    # own SHA-256 is not computed again (their zstd checksum still is).
    try:
        with open(path, "wb") as handle:
            for chunk in repository.iter_blob(entry, verify=False):
                sha1.update(chunk)
                size += len(chunk)
                handle.write(chunk)
    except SnapshotDamaged as exc:
        raise SnapshotDamaged(
            f"{exc.message} (in filestore file {entry.path})", exc.hint
        ) from None
    if sha1.hexdigest() != entry.sha1 or size != entry.size:
        raise CorruptObject(
            f"filestore file {entry.path} read from repository {repository.location} "
            f"does not match its manifest (sha1 {sha1.hexdigest()}, size {size})",
            hint="run 'odoo-dr verify --read-data' to find the snapshots it breaks",
        )
    return size


def restore_files(
    repository: Repository,
    entries: list[FilestoreEntry],
    folder: Path,
    jobs: int,
    owner: tuple[int, int] | None = None,
    cancelled: threading.Event | None = None,
) -> tuple[int, int]:
    """Write every entry below `folder`; return the number of files and bytes.

    With `owner` (uid, gid), every file and folder written is given to that user,
    so the Odoo server can add attachments next to them. Setting `cancelled` makes
    the remaining files be skipped.
    """
    stop = cancelled or threading.Event()
    os.makedirs(folder, exist_ok=True)
    threads = min(MAX_THREADS, THREADS_PER_JOB * jobs)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="files") as pool:
        sizes = list(
            pool.map(lambda entry: _write_one(repository, entry, folder, stop), entries)
        )
    if owner is not None:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, *owner, follow_symlinks=False)
    return len(sizes), sum(sizes)
