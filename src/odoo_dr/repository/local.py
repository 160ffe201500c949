"""Repository backend on a local or mounted folder.

Every write goes to a temporary file under `tmp/` and is renamed into place, so a
reader (or a process killed halfway) never leaves a partial value under its final
name. Temporary names carry the host and process id, so the next run can tell the
leftovers of a dead process from the work of a live one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import mmap
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from odoo_dr import tempfiles
from odoo_dr.errors import RepositoryError
from odoo_dr.repository.backend import ObjectNotFound

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_folder(path: Path) -> None:
    """Create `path` and its missing parents with DIR_MODE, whatever the umask.

    `Path.mkdir(mode, parents=True)` gives the parents the default mode, which a
    umask of 000 leaves open to every user.
    """
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)


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
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(
                f"{key} not found in repository {self.root}",
                hint="run 'odoo-dr verify' to list what is damaged",
            ) from None
        except OSError as exc:
            raise self._read_error(exc, path) from None

    @contextlib.contextmanager
    def mapped(self, key: str) -> Iterator[memoryview]:
        """Yield the value of `key` mapped into memory, read-only, without a copy.

        Raises `ObjectNotFound` like `read`. The view must not outlive the block.
        """
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after the map
        except FileNotFoundError:
            raise ObjectNotFound(
                f"{key} not found in repository {self.root}",
                hint="run 'odoo-dr verify' to list what is damaged",
            ) from None
        except OSError as exc:
            raise self._read_error(exc, path) from None
        with handle:
            if os.fstat(handle.fileno()).st_size == 0:
                yield memoryview(b"")
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapping:
                mapping.madvise(mmap.MADV_SEQUENTIAL)
                view = memoryview(mapping)
                try:
                    yield view
                finally:
                    view.release()

    def _read_error(self, exc: OSError, path: Path) -> RepositoryError:
        return RepositoryError(
            f"cannot read {path} in repository {self.root}: {exc.strerror or exc}",
            hint="check the repository's permissions and that --repo names the "
            "repository's folder",
        )

    def _temporary_path(self) -> Path:
        return self.root / "tmp" / tempfiles.temporary_name()

    def temporary_folder(self, purpose: str) -> Path:
        """Create a folder in `tmp/`, removed by the next run if this process dies."""
        folder = self.root / "tmp" / tempfiles.temporary_name(purpose)
        try:
            make_private_folder(folder.parent)
            folder.mkdir(mode=DIR_MODE)
        except OSError as exc:
            raise self._write_error(exc, folder) from exc
        return folder

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFound(
                f"{key} not found in repository {self.root}",
                hint="run 'odoo-dr verify' to list what is damaged",
            ) from None
        except OSError as exc:
            raise self._read_error(exc, path) from None
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _write_temporary(self, data: bytes, *, sync: bool) -> Path:
        temporary = self._temporary_path()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                fd = os.open(temporary, flags, FILE_MODE)
            except FileNotFoundError:
                make_private_folder(temporary.parent)
                fd = os.open(temporary, flags, FILE_MODE)
        except OSError as exc:
            raise self._write_error(exc, temporary) from exc
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
        if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
            return RepositoryError(
                f"no space left on the device of repository path {path}",
                hint="free space there or move the repository to a larger disk",
            )
        if exc.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
            return RepositoryError(
                f"cannot write {path} in repository {self.root}: {exc.strerror or exc}",
                hint="run odoo-dr as a user that may write to the repository, on a "
                "file system mounted read-write",
            )
        return RepositoryError(f"cannot write {path}: {exc.strerror or exc}")

    def _place(self, temporary: Path, final: Path) -> None:
        try:
            try:
                os.replace(temporary, final)
            except FileNotFoundError:
                make_private_folder(final.parent)
                os.replace(temporary, final)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise self._write_error(exc, final) from exc

    def write(
        self,
        key: str,
        data: bytes,
        *,
        sync: bool = False,
        retain_until: datetime | None = None,
    ) -> None:
        final = self._path(key)
        temporary = self._write_temporary(data, sync=sync)
        self._place(temporary, final)
        if sync:
            self._sync_folder(final.parent)

    def create_exclusive(
        self, key: str, data: bytes, *, retain_until: datetime | None = None
    ) -> bool:
        final = self._path(key)
        temporary = self._write_temporary(data, sync=True)
        try:
            make_private_folder(final.parent)
            # link() fails when the name exists, so the complete file appears at once
            # or not at all.
            os.link(temporary, final)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._write_error(exc, final) from exc
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def retained_until(self, key: str) -> datetime | None:
        # A folder cannot lock a file against its owner; see the README on S3.
        return None

    def extend_retention(self, key: str, retain_until: datetime) -> bool:
        return False

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return

        def fail(exc: OSError) -> None:
            raise self._read_error(exc, Path(exc.filename or base))

        for folder, _subfolders, files in os.walk(base, onerror=fail):
            relative = Path(folder).relative_to(self.root)
            for name in files:
                yield (relative / name).as_posix()

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Return the size in bytes of every file under `prefix`, by key."""
        sizes = {}
        for key in self.list(prefix):
            try:
                sizes[key] = self._path(key).stat().st_size
            except FileNotFoundError:
                continue
        return sizes

    def list_stamps(self, prefix: str) -> dict[str, str]:
        """Return the change stamp (size and mtime) of every file under `prefix`."""
        stamps = {}
        for key in self.list(prefix):
            stamp = self.stamp(key)
            if stamp is not None:
                stamps[key] = stamp
        return stamps

    def stamp(self, key: str) -> str | None:
        """Return `key`'s size and modification time in ns, or None if it is absent.

        Every write replaces the file by a new one, so a rewrite changes the stamp
        unless it keeps the size within one tick of the file system's clock (a few
        milliseconds on Linux).
        """
        try:
            status = self._path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._read_error(exc, self._path(key)) from None
        return f"{status.st_size}:{status.st_mtime_ns}"

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
