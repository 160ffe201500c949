"""Blobs: content chunks named by their SHA-256, kept in packs and found by the index.

In an encrypted repository a blob is named by the HMAC-SHA256 of its content under
the repository's id key, and its compressed bytes are sealed, bound to that name.

Writers add blobs to a pack in memory and store each full pack (16 MiB by default)
as one file; `flush` stores the last pack and then the index file that lists them,
and makes both durable. Readers look a blob up in the index and read its byte range.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import zstandard

from odoo_dr.errors import CorruptObject, SnapshotDamaged
from odoo_dr.repository import crypto, objects
from odoo_dr.repository.backend import Backend, ObjectNotFound
from odoo_dr.repository.index import BlobIndex, pack_key
from odoo_dr.repository.manifest import StoredBlob
from odoo_dr.repository.packs import BlobLocation, PackWriter, SealedPack

log = logging.getLogger(__name__)

DEFAULT_PACK_SIZE = 16 * 1024 * 1024


@dataclass
class WriteStats:
    """Blobs and compressed bytes that writes added to the repository."""

    new_objects: int = 0
    new_bytes: int = 0

    def add(self, other: WriteStats) -> None:
        self.new_objects += other.new_objects
        self.new_bytes += other.new_bytes


class BlobStore:
    def __init__(
        self,
        backend: Backend,
        pack_size: int = DEFAULT_PACK_SIZE,
        keys: crypto.RepositoryKeys | None = None,
        retention: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self.backend = backend
        self.pack_size = pack_size
        self.keys = keys
        # Returns the Object Lock date for new packs and index files, or None.
        self.retention = retention
        self.written_packs: set[str] = set()
        self._index: BlobIndex | None = None
        self._index_lock = threading.Lock()
        # Metadata (file indexes) goes into packs of its own, so damage to a data
        # pack never hides which files a snapshot holds.
        self._packs_on_disk: set[str] | None = None
        self._writers = {
            kind: PackWriter(pack_size, self._store_pack, keys)
            for kind in ("data", "meta")
        }

    @property
    def index(self) -> BlobIndex:
        with self._index_lock:
            if self._index is None:
                index = BlobIndex(self.backend, self.keys)
                index.load()
                self._index = index
        return self._index

    def prepare_to_write(self) -> None:
        """Take in the packs of an interrupted run, so their blobs are reused."""
        self.index.add_unindexed_packs()

    # -- writing

    def object_id(self, data: bytes | memoryview) -> str:
        """Return the name of a blob with content `data`."""
        if self.keys is not None:
            return self.keys.object_id(data)
        return objects.object_id(data)

    def _store_pack(self, sealed: SealedPack) -> None:
        self.backend.write(
            pack_key(sealed.id), sealed.data, retain_until=self.retention()
        )
        self.written_packs.add(sealed.id)
        if self._packs_on_disk is not None:
            self._packs_on_disk.add(sealed.id)
        self.index.add_pack(sealed.id, sealed.blobs)
        for writer in self._writers.values():
            writer.stored(list(sealed.blobs))
        log.debug(
            "stored pack %s blobs=%d bytes=%d",
            sealed.id,
            len(sealed.blobs),
            len(sealed.data),
        )

    def _intact(self, blob_id: str) -> bool:
        try:
            self.get(blob_id)
        except (SnapshotDamaged, ObjectNotFound):
            return False
        return True

    def put(
        self, data: bytes | memoryview, meta: bool = False
    ) -> tuple[str, WriteStats]:
        """Store one chunk unless an intact blob of the same content exists.

        An existing blob is read back and checked before it is trusted, so a damaged
        copy is written again from the fresh data (into a new pack, which the newer
        index file makes the one that counts) instead of being referenced by one
        more snapshot.
        """
        blob_id = self.object_id(data)
        writer = self._writers["meta" if meta else "data"]
        if any(pending.pending(blob_id) for pending in self._writers.values()):
            return blob_id, WriteStats()
        if blob_id in self.index:
            if self._intact(blob_id):
                return blob_id, WriteStats()
            log.warning(
                "object %s is damaged; rewriting it from the backup's data", blob_id
            )
        encoded = objects.encode(data)
        if self.keys is not None:
            encoded = self.keys.seal(encoded, crypto.BLOB + blob_id.encode("ascii"))
        if not writer.add(blob_id, encoded, len(data)):
            return blob_id, WriteStats()
        return blob_id, WriteStats(new_objects=1, new_bytes=len(encoded))

    def put_chunks(
        self, chunks: Iterable[bytes | memoryview], meta: bool = False
    ) -> tuple[StoredBlob, WriteStats]:
        stats = WriteStats()
        ids: list[str] = []
        size = 0
        for chunk in chunks:
            blob_id, added = self.put(chunk, meta)
            ids.append(blob_id)
            size += len(chunk)
            stats.add(added)
        return StoredBlob(size=size, chunks=ids), stats

    def put_file(self, path: Path) -> tuple[StoredBlob, str, WriteStats]:
        """Store the file at `path`; return its blobs, its SHA-1 and what was added."""
        sha1 = hashlib.sha1()
        stats = WriteStats()
        ids: list[str] = []
        size = 0
        for chunk in objects.split_file(path):
            sha1.update(chunk)
            blob_id, added = self.put(chunk)
            ids.append(blob_id)
            size += len(chunk)
            stats.add(added)
        return StoredBlob(size=size, chunks=ids), sha1.hexdigest(), stats

    def flush(self) -> None:
        """Store the last pack and the index file, and make every write durable."""
        for writer in self._writers.values():
            writer.flush()
        self.index.save(retain_until=self.retention())
        self.backend.flush()

    # -- reading

    def present(self, blob_id: str) -> bool:
        """Return whether the blob is indexed and its pack exists (content unread)."""
        where = self.index.get(blob_id)
        if where is None:
            return False
        if self._packs_on_disk is None:
            self._packs_on_disk = self.index.pack_ids_on_disk()
        return where.pack in self._packs_on_disk

    def location(self, blob_id: str) -> BlobLocation:
        where = self.index.get(blob_id)
        if where is None:
            raise SnapshotDamaged(
                f"object {blob_id} is missing: no index entry in repository "
                f"{self.backend.describe()}",
                hint="run 'odoo-dr verify' to see which snapshots are affected",
            )
        return where

    def decode(self, blob_id: str, stored: bytes, verify: bool = True) -> bytes:
        """Decompress a blob read from its pack and check it against its name.

        Without `verify` only the zstd frame's own checksum is checked, for callers
        that check the whole file's hash themselves.
        """
        try:
            if self.keys is not None:
                stored = self.keys.open(stored, crypto.BLOB + blob_id.encode("ascii"))
            data = objects.decode(stored)
        except (zstandard.ZstdError, crypto.DecryptionFailed) as exc:
            raise CorruptObject(
                f"object {blob_id} in {self.backend.describe()} is damaged: {exc}",
                hint="run 'odoo-dr verify --read-data' to find the snapshots it breaks",
            ) from None
        if verify and self.object_id(data) != blob_id:
            raise CorruptObject(
                f"object {blob_id} in {self.backend.describe()} is damaged: its "
                "content does not match its checksum",
                hint="run 'odoo-dr verify --read-data' to find the snapshots it breaks",
            )
        return data

    def read_stored(self, where: BlobLocation) -> bytes:
        try:
            stored = self.backend.read_range(
                pack_key(where.pack), where.offset, where.length
            )
        except ObjectNotFound:
            raise SnapshotDamaged(
                f"pack {where.pack} is missing from repository "
                f"{self.backend.describe()}",
                hint="run 'odoo-dr verify' to see which snapshots are affected",
            ) from None
        if len(stored) != where.length:
            raise CorruptObject(
                f"pack {where.pack} in {self.backend.describe()} is truncated",
                hint="run 'odoo-dr verify --read-data' to find the snapshots it breaks",
            )
        return stored

    def get(self, blob_id: str, verify: bool = True) -> bytes:
        """Return the content of blob `blob_id`, checked against its name."""
        return self.decode(blob_id, self.read_stored(self.location(blob_id)), verify)

    def iter_blob(self, blob: StoredBlob, verify: bool = True) -> Iterator[bytes]:
        for blob_id in blob.chunks:
            yield self.get(blob_id, verify)

    def read_blob(self, blob: StoredBlob) -> bytes:
        return b"".join(self.iter_blob(blob))

    def missing(self, blobs: Iterable[StoredBlob]) -> list[str]:
        """Return the ids of blobs that have no index entry or whose pack is gone."""
        packs = self.index.pack_ids_on_disk()
        missing: set[str] = set()
        for blob in blobs:
            for blob_id in blob.chunks:
                where = self.index.get(blob_id)
                if where is None or where.pack not in packs:
                    missing.add(blob_id)
        return sorted(missing)
