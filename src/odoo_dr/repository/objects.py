"""Object encoding: zstd frames named by the SHA-256 of their uncompressed content.

An object can be read by hand with `zstd -d`. Its name is its checksum, and the zstd
frame carries a content checksum of its own, so damage shows up either way.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import zstandard
from fastcdc import fastcdc

# Content-defined chunking: boundaries follow the content, so an insertion in a large
# table dump changes the chunks around it and leaves the others shared.
CHUNK_MIN = 512 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 8 * 1024 * 1024
COMPRESSION_LEVEL = 3

_local = threading.local()


def object_id(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def object_key(oid: str) -> str:
    return f"objects/{oid[:2]}/{oid}"


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(
            level=COMPRESSION_LEVEL, write_checksum=True, write_content_size=True
        )
        _local.compressor = compressor
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = zstandard.ZstdDecompressor()
        _local.decompressor = decompressor
    return decompressor


def encode(data: bytes | memoryview) -> bytes:
    return _compressor().compress(data)


def decode(stored: bytes) -> bytes:
    """Decompress `stored`; raise `zstandard.ZstdError` on damage."""
    return _decompressor().decompress(stored, max_output_size=CHUNK_MAX * 2)


def _boundaries(data: bytes | memoryview | mmap.mmap) -> Iterator[tuple[int, int]]:
    for chunk in fastcdc(
        data,
        min_size=CHUNK_MIN,
        avg_size=CHUNK_AVG,
        max_size=CHUNK_MAX,
        fat=False,
        hf=None,
    ):
        yield chunk.offset, chunk.length


def split_file(path: Path) -> Iterator[bytes]:
    """Yield the chunks of the file at `path`, reading it once.

    Files up to CHUNK_MAX bytes are one chunk. Larger ones are mapped into memory and
    cut by content, so no more than one chunk is copied at a time.
    """
    # O_NOFOLLOW: a symbolic link planted in a filestore must not make the backup
    # read (and a restore write out) a file from elsewhere on the host.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= CHUNK_MAX:
            yield handle.read()
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            for offset, length in _boundaries(mapped):
                yield mapped[offset : offset + length]


def split_bytes(data: bytes) -> Iterator[bytes]:
    if len(data) <= CHUNK_MAX:
        yield data
        return
    view = memoryview(data)
    for offset, length in _boundaries(view):
        yield bytes(view[offset : offset + length])
