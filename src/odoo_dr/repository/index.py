"""The index: which pack holds each blob, at which offset.

Index files (`index/<time>-<sha256>.json`) list the blobs of packs written by one
run. They are written after their packs and before any manifest that needs them, so
a published snapshot's blobs are always indexed. The index is never the only copy of
anything: every pack's header lists its blobs, and packs that no index file names (a
run killed before writing its index) are read back from their headers.

When two index entries name the same blob (a damaged copy rewritten into a new pack),
the entry of the newer index file wins; index file names start with their UTC time.

In an encrypted repository an index file contains the sealed JSON, and its name's hash
is that of the sealed bytes. A reader checks the bytes against that hash, so a damaged
index file is skipped (its packs read from their headers) even when its JSON is still
valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
import threading
from datetime import UTC, datetime

from odoo_dr.repository import crypto
from odoo_dr.repository.backend import Backend
from odoo_dr.repository.packs import (
    BlobLocation,
    decode_header,
    header_length,
    load_json_object,
    parse_entries,
)

log = logging.getLogger(__name__)

FORMAT = "odoo-dr-index"
FORMAT_VERSION = 1
# Read this much of a pack to get its header; a longer header is read whole after.
HEADER_PROBE = 64 * 1024
# An index file's name ends with the first 16 hex digits of its bytes' SHA-256.
_NAMED_HASH = re.compile(r"-(?P<hash>[0-9a-f]{16})\.json$")


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


class BlobIndex:
    """All blob locations of a repository, with the packs added since loading."""

    def __init__(
        self, backend: Backend, keys: crypto.RepositoryKeys | None = None
    ) -> None:
        self.backend = backend
        self.keys = keys
        self._lock = threading.Lock()
        self._blobs: dict[str, BlobLocation] = {}
        self._packs: set[str] = set()
        self._unsaved: dict[str, dict[str, BlobLocation]] = {}
        # The index file that lists each pack, and the files this process wrote.
        self._pack_files: dict[str, str] = {}
        self.saved_files: set[str] = set()
        # Index files that could not be read, and unindexed packs whose header
        # could not be read, each with the reason.
        self.damaged_files: dict[str, str] = {}
        self.unreadable_packs: dict[str, str] = {}

    # -- loading

    def load(self) -> None:
        for key in sorted(self.backend.list("index/")):
            if key.endswith(".json"):
                self._load_file(key)

    def _load_file(self, key: str) -> None:
        try:
            raw = self.backend.read(key)
            named = _NAMED_HASH.search(key)
            if named and hashlib.sha256(raw).hexdigest()[:16] != named["hash"]:
                # A changed digit would still be valid JSON, placing a chunk at
                # a wrong offset or under a wrong id.
                raise ValueError("its content does not match the hash in its name")
            if self.keys is not None:
                raw = self.keys.open(raw, crypto.INDEX)
            payload = load_json_object(raw)
            if payload.get("format") != FORMAT:
                raise ValueError(f"unknown format {str(payload.get('format'))[:80]!r}")
            listed = payload.get("packs")
            if not isinstance(listed, list):
                raise ValueError("its pack list is missing or not a list")
            # Every entry is checked before any is used, so a damaged file adds
            # nothing and its packs are read again from their own headers.
            found = {}
            for pack in listed:
                if not isinstance(pack, dict) or not isinstance(pack.get("id"), str):
                    raise ValueError(f"malformed pack entry {str(pack)[:80]}")
                found[pack["id"]] = parse_entries(pack.get("blobs"))
        except ValueError as exc:
            # The packs it listed are found again by `add_unindexed_packs`.
            log.warning("skipping damaged index file %s: %s", key, exc)
            self.damaged_files[key] = str(exc) or type(exc).__name__
            return
        for pack_id, entries in found.items():
            self._packs.add(pack_id)
            self._pack_files[pack_id] = key
            for blob_id, offset, length, size in entries:
                self._blobs[blob_id] = BlobLocation(pack_id, offset, length, size)

    def pack_ids_on_disk(self) -> set[str]:
        return {key.rsplit("/", 1)[-1] for key in self.backend.list("packs/")}

    def pack_sizes(self) -> dict[str, int] | None:
        """Return each stored pack's size in bytes, or None if the backend has none."""
        list_sizes = getattr(self.backend, "list_sizes", None)
        sizes = list_sizes("packs/") if list_sizes is not None else None
        if sizes is None:
            return None
        return {key.rsplit("/", 1)[-1]: size for key, size in sizes.items()}

    def add_unindexed_packs(self) -> int:
        """Index the packs that no index file names, from their own headers.

        Only chunks that no index file lists are taken from them: a chunk already
        indexed elsewhere may have been written again after damage, and that newer
        copy must keep counting.
        """
        found = 0
        for pack_id in sorted(self.pack_ids_on_disk() - self._packs):
            try:
                blobs = self.read_pack_header(pack_id)
            except (ValueError, KeyError, TypeError, struct.error, OSError) as exc:
                log.warning("skipping unreadable pack %s: %s", pack_id, exc)
                self.unreadable_packs[pack_id] = f"its header is unreadable ({exc})"
                continue
            new = {
                blob_id: where
                for blob_id, where in blobs.items()
                if blob_id not in self
            }
            with self._lock:
                self._packs.add(pack_id)
            if new:
                self.add_pack(pack_id, new)
            found += 1
        if found:
            log.info("indexed %d packs that no index file listed", found)
        return found

    def read_pack_header(self, pack_id: str) -> dict[str, BlobLocation]:
        key = pack_key(pack_id)
        probe = self.backend.read_range(key, 0, HEADER_PROBE)
        length = header_length(probe)
        header = probe
        if length > len(probe):
            header = self.backend.read_range(key, 0, length)
        return {
            blob_id: BlobLocation(pack_id, offset, size_stored, size)
            for blob_id, offset, size_stored, size in decode_header(header, self.keys)
        }

    # -- lookups

    def get(self, blob_id: str) -> BlobLocation | None:
        return self._blobs.get(blob_id)

    def __contains__(self, blob_id: str) -> bool:
        return blob_id in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def blob_ids(self) -> set[str]:
        return set(self._blobs)

    def packs(self) -> set[str]:
        return set(self._packs)

    def file_of(self, pack_id: str) -> str | None:
        """Return the key of the index file that lists `pack_id`, if one does."""
        return self._pack_files.get(pack_id)

    # -- adding

    def add_pack(self, pack_id: str, blobs: dict[str, BlobLocation]) -> None:
        with self._lock:
            self._packs.add(pack_id)
            self._blobs.update(blobs)
            self._unsaved[pack_id] = blobs

    def locations(self) -> dict[str, BlobLocation]:
        """Return the location of every blob, by id (a copy)."""
        with self._lock:
            return dict(self._blobs)

    def save(self, retain_until: datetime | None = None) -> str | None:
        """Write an index file for the packs added since the last save.

        With `retain_until`, the backend locks the file until then (S3 Object Lock).
        """
        with self._lock:
            unsaved = self._unsaved
            self._unsaved = {}
        if not unsaved:
            return None
        key = write_index_file(self.backend, unsaved, self.keys, retain_until)
        with self._lock:
            self.saved_files.add(key)
            for pack_id in unsaved:
                self._pack_files[pack_id] = key
        return key


def write_index_file(
    backend: Backend,
    packs: dict[str, dict[str, BlobLocation]],
    keys: crypto.RepositoryKeys | None = None,
    retain_until: datetime | None = None,
) -> str:
    """Write, durably, an index file listing `packs`; return its key.

    Its name starts with the current UTC time, so its entries win over those of
    older index files. In an encrypted repository the file is sealed, and its
    name's hash is that of the sealed bytes.
    """
    payload = json.dumps(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "packs": [
                {
                    "id": pack_id,
                    "blobs": [
                        [blob_id, where.offset, where.length, where.size]
                        for blob_id, where in sorted(blobs.items())
                    ],
                }
                for pack_id, blobs in sorted(packs.items())
            ],
        },
        separators=(",", ":"),
    ).encode("utf-8")
    if keys is not None:
        payload = keys.seal(payload, crypto.INDEX)
    moment = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"index/{moment}-{hashlib.sha256(payload).hexdigest()[:16]}.json"
    backend.write(key, payload, sync=True, retain_until=retain_until)
    return key
