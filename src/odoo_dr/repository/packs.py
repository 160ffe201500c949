"""Pack files: many blobs in one file, so reads and uploads are few and sequential.

A pack is a zstd skippable frame holding a JSON header, followed by one zstd frame per
blob. `zstd -d < pack` skips the header and prints the blobs' contents one after the
other. The header lists every blob's id, offset (from the start of the pack file),
length and uncompressed size, so a pack describes itself: the index can always be
rebuilt from the packs. A pack is named by the SHA-256 of its bytes.

Layout of the header frame: 4 bytes magic 0x184D2A50 (little-endian), 4 bytes payload
length (little-endian), then the JSON payload. In an encrypted repository the payload
is the sealed JSON, and each blob frame is sealed too (see crypto.py), so `zstd -d`
no longer reads the blobs.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from odoo_dr.repository import crypto

# The first of zstd's sixteen skippable-frame magic numbers (RFC 8878, section 3.1.2).
SKIPPABLE_MAGIC = 0x184D2A50
_FRAME_HEADER = struct.Struct("<II")
FORMAT = "odoo-dr-pack"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob is: its pack, byte offset and length there, and its own size."""

    pack: str
    offset: int
    length: int
    size: int


def encode_header(
    entries: list[tuple[str, int, int, int]],
    keys: crypto.RepositoryKeys | None = None,
    length: int | None = None,
) -> bytes:
    """Return the header frame for blobs given as (id, offset, length, size).

    With `length`, the JSON payload is padded with spaces so the frame is `length`
    bytes long. With `keys`, the payload is sealed.
    """
    payload = json.dumps(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "blobs": [list(entry) for entry in entries],
        },
        separators=(",", ":"),
    ).encode("utf-8")
    if length is not None:
        overhead = _FRAME_HEADER.size + (crypto.OVERHEAD if keys else 0)
        missing = length - overhead - len(payload)
        if missing < 0:
            raise AssertionError("pack header longer than its estimate")
        payload += b" " * missing
    if keys is not None:
        payload = keys.seal(payload, crypto.PACK_HEADER)
    return _FRAME_HEADER.pack(SKIPPABLE_MAGIC, len(payload)) + payload


def header_length(prefix: bytes) -> int:
    """Return the length of the header frame that `prefix` (8 bytes or more) starts."""
    if len(prefix) < _FRAME_HEADER.size:
        raise ValueError("not an odoo-dr pack: shorter than a header frame")
    magic, length = _FRAME_HEADER.unpack_from(prefix)
    if magic != SKIPPABLE_MAGIC:
        raise ValueError("not an odoo-dr pack: no header frame at its start")
    return _FRAME_HEADER.size + length


def decode_header(
    header: bytes, keys: crypto.RepositoryKeys | None = None
) -> list[tuple[str, int, int, int]]:
    """Return (id, offset, length, size) of each blob from a pack's header frame.

    Raises ValueError (`crypto.DecryptionFailed` among them) for a damaged header.
    """
    length = header_length(header)
    raw = header[_FRAME_HEADER.size : length]
    if keys is not None:
        raw = keys.open(raw, crypto.PACK_HEADER)
    payload = load_json_object(raw)
    if payload.get("format") != FORMAT:
        raise ValueError("not an odoo-dr pack: unknown header format")
    return parse_entries(payload.get("blobs"))


def load_json_object(raw: bytes) -> dict:
    """Parse a header or index file's JSON object; raise ValueError if it is not one."""
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None
    if not isinstance(payload, dict):
        raise ValueError("its JSON is not an object")
    return payload


def parse_entries(entries: object) -> list[tuple[str, int, int, int]]:
    """Return the (id, offset, length, size) entries of a header or index file.

    Raises ValueError, before returning any entry, when one is not a blob id and
    three integers of at least 0.
    """
    if not isinstance(entries, list):
        raise ValueError("its blob list is missing or not a list")
    parsed = []
    for entry in entries:
        valid = (
            isinstance(entry, list)
            and len(entry) == 4
            and isinstance(entry[0], str)
            and all(type(number) is int and number >= 0 for number in entry[1:])
        )
        if not valid:
            raise ValueError(f"malformed blob entry {str(entry)[:80]}")
        blob_id, offset, length, size = entry
        parsed.append((blob_id, offset, length, size))
    return parsed


@dataclass
class SealedPack:
    id: str
    data: bytes
    blobs: dict[str, BlobLocation]


def seal(
    entries: list[tuple[str, bytes, int]], keys: crypto.RepositoryKeys | None = None
) -> SealedPack:
    """Build a pack from (blob id, encoded blob, uncompressed size) entries.

    Encoded blobs arrive sealed already when `keys` is given; only the header is
    sealed here.
    """
    # The header's length depends on the offsets it lists, and the offsets on the
    # header's length, so the offsets are first computed from an estimate and the
    # header is padded to the length that estimate assumed.
    relative = []
    position = 0
    for blob_id, encoded, size in entries:
        relative.append((blob_id, position, len(encoded), size))
        position += len(encoded)
    estimate = len(
        encode_header([(b, o + 10**12, n, s) for b, o, n, s in relative], keys)
    )
    absolute = [(b, o + estimate, n, s) for b, o, n, s in relative]
    header = encode_header(absolute, keys, length=estimate)
    data = header + b"".join(encoded for _id, encoded, _size in entries)
    pack_id = hashlib.sha256(data).hexdigest()
    blobs = {b: BlobLocation(pack_id, o, n, s) for b, o, n, s in absolute}
    return SealedPack(pack_id, data, blobs)


class PackWriter:
    """Collects encoded blobs and hands each full pack to `store`.

    Thread-safe: blobs are added under a lock, and a full pack is sealed and stored
    outside it, so compression and disk writes of other threads go on meanwhile.
    """

    def __init__(
        self,
        target_size: int,
        store: Callable[[SealedPack], None],
        keys: crypto.RepositoryKeys | None = None,
    ) -> None:
        self.target_size = target_size
        self._keys = keys
        self._store = store
        self._lock = threading.Lock()
        self._entries: list[tuple[str, bytes, int]] = []
        self._pending: set[str] = set()
        self._bytes = 0

    def pending(self, blob_id: str) -> bool:
        with self._lock:
            return blob_id in self._pending

    def add(self, blob_id: str, encoded: bytes, size: int) -> bool:
        """Add a blob unless one with this id waits already; return whether added."""
        full = None
        with self._lock:
            if blob_id in self._pending:
                return False
            self._entries.append((blob_id, encoded, size))
            self._pending.add(blob_id)
            self._bytes += len(encoded)
            if self._bytes >= self.target_size:
                full = self._take()
        if full:
            self._store(seal(full, self._keys))
        return True

    def _take(self) -> list[tuple[str, bytes, int]]:
        entries = self._entries
        self._entries = []
        self._bytes = 0
        # Ids stay pending until the caller's index knows them (see `stored`).
        return entries

    def stored(self, blob_ids: list[str]) -> None:
        """Forget blobs that the index now knows."""
        with self._lock:
            self._pending.difference_update(blob_ids)

    def flush(self) -> None:
        """Seal and store the blobs collected so far, if any."""
        with self._lock:
            entries = self._take()
        if entries:
            self._store(seal(entries, self._keys))
