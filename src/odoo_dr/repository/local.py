"""Repository backend on a local or mounted folder.

Every write goes to a temporary file under `tmp/` and is renamed into place, so a
reader (or a process killed halfway) never leaves a partial value under its final
name. Temporary names carry the host and process id, so the next run can tell the
leftovers of a dead process from the work of a live one.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from odoo_dr import tempfiles
from odoo_dr.errors import RepositoryError
from odoo_dr.repository.backend import ObjectNotFound

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


class LocalBackend:
    """Files below one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(
                f"{key} not found in repository {self.root}",
                hint="run 'odoo-dr verify' to list what is damaged",
            ) from None

    def _temporary_path(self) -> Path:
        return self.root / "tmp" / tempfiles.temporary_name()

    def temporary_folder(self, purpose: str) -> Path:
        """Create a folder in `tmp/`, removed by the next run if this process dies."""
        folder = self.root / "tmp" / tempfiles.temporary_name(purpose)
        folder.mkdir(mode=DIR_MODE, parents=True)
        return folder

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFound(
                f"{key} not found in repository {self.root}",
                hint="run 'odoo-dr verify' to list what is damaged",
            ) from None
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _write_temporary(self, data: bytes, *, sync: bool) -> Path:
        temporary = self._temporary_path()
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileNotFoundError:
            temporary.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise self._write_error(exc, temporary) from exc
        return temporary

    def _write_error(self, exc: OSError, path: Path) -> RepositoryError:
        if exc.errno == errno.ENOSPC:
            return RepositoryError(
                f"no space left on the device of repository path {path}",
                hint="free space there or move the repository to a larger disk",
            )
        return RepositoryError(f"cannot write {path}: {exc.strerror or exc}")

    def _place(self, temporary: Path, final: Path) -> None:
        try:
            os.replace(temporary, final)
        except FileNotFoundError:
            final.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.replace(temporary, final)

    def write(self, key: str, data: bytes, *, sync: bool = False) -> None:
        final = self._path(key)
        temporary = self._write_temporary(data, sync=sync)
        self._place(temporary, final)
        if sync:
            self._sync_folder(final.parent)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        temporary = self._write_temporary(data, sync=True)
        final.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        try:
            # link() fails when the name exists, so the complete file appears at once
            # or not at all.
            os.link(temporary, final)
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for folder, _subfolders, files in os.walk(base):
            relative = Path(folder).relative_to(self.root)
            for name in files:
                yield (relative / name).as_posix()

    def flush(self) -> None:
        """Flush every write on the repository's file system with syncfs(2)."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) != 0:
                os.sync()
        except (AttributeError, OSError):
            os.sync()
        finally:
            os.close(fd)

    def _sync_folder(self, folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def cleanup_stale_writes(self) -> int:
        return tempfiles.remove_stale(self.root / "tmp")
