"""The storage interface that every repository backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from odoo_dr.errors import RepositoryError


class ObjectNotFound(RepositoryError):
    """A key that should exist in the repository does not."""


class DeleteDenied(RepositoryError):
    """The store rejected a delete because this credential may not delete there.

    Backup credentials on S3 may be append-only on purpose, so callers that remove
    something non-essential (a test file) log this instead of failing.
    """


class Backend(Protocol):
    """Key-value storage with atomic writes; keys are `/`-separated relative paths."""

    def describe(self) -> str:
        """Return the location for messages."""
        ...

    def exists(self, key: str) -> bool: ...

    def read(self, key: str) -> bytes:
        """Return the whole value of `key`, or raise `ObjectNotFound`."""
        ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Return `length` bytes of `key` from `offset`, or raise ObjectNotFound."""
        ...

    def write(
        self,
        key: str,
        data: bytes,
        *,
        sync: bool = False,
        retain_until: datetime | None = None,
    ) -> None:
        """Store `data` under `key` atomically: readers see all of it or nothing.

        With `sync`, the value is durable when the call returns. With
        `retain_until`, a backend that can lock objects (S3 Object Lock) refuses
        to delete or overwrite this version before that time; others ignore it.
        """
        ...

    def create_exclusive(
        self, key: str, data: bytes, *, retain_until: datetime | None = None
    ) -> bool:
        """Store `data` under `key` only if `key` is absent; return whether it did."""
        ...

    def retained_until(self, key: str) -> datetime | None:
        """Return the end of the lock on `key`'s current version, or None."""
        ...

    def extend_retention(self, key: str, retain_until: datetime) -> bool:
        """Extend the lock on `key`'s current version to `retain_until` if shorter.

        Returns whether the lock changed; backends without locks return False.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error.

        Raises `DeleteDenied` when the store forbids this credential to delete.
        """
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under `prefix` (a folder such as `snapshots/`)."""
        ...

    def flush(self) -> None:
        """Make every write so far durable before the next one (a snapshot manifest)."""
        ...

    def cleanup_stale_writes(self) -> int:
        """Remove leftovers of writes by processes that died; return how many."""
        ...
