"""Temporary files and folders that the next run can clean up after a crash.

Names carry the host and process id of their creator: `<host>-<pid>-<purpose><hex>`,
with an `odoo-dr-` prefix outside the repository. A later run removes those whose
process is gone from this host, and never touches those of live processes or other
hosts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from odoo_dr.processes import HOST, process_alive

log = logging.getLogger(__name__)

# A purpose may contain hyphens, such as `scratch-redis`.
_NAME = re.compile(
    r"^(?:odoo-dr-)?(?P<host>.+)-(?P<pid>\d+)-(?P<rest>[a-z-]*[0-9a-f]{32})$"
)


def temporary_name(purpose: str = "", prefix: str = "") -> str:
    return f"{prefix}{HOST}-{os.getpid()}-{purpose}{uuid.uuid4().hex}"


def make_folder(parent: Path | None, purpose: str) -> Path:
    """Create a private folder in `parent` (default: the system's temporary folder)."""
    base = parent if parent is not None else Path(tempfile.gettempdir())
    folder = base / temporary_name(purpose, prefix="odoo-dr-")
    folder.mkdir(mode=0o700)
    return folder


def is_stale(name: str) -> bool:
    """Return whether `name` is a temporary name of a dead process on this host."""
    match = _NAME.match(name)
    if match is None or match["host"] != HOST:
        return False
    return not process_alive(int(match["pid"]))


def remove_stale(parent: Path | None) -> int:
    """Remove leftovers of dead processes directly in `parent`; return how many."""
    base = parent if parent is not None else Path(tempfile.gettempdir())
    if not base.is_dir():
        return 0
    removed = 0
    for entry in base.iterdir():
        if not is_stale(entry.name):
            continue
        log.info("removing leftover %s of a killed odoo-dr", entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def replace_text(path: Path, text: str) -> None:
    """Write `text` to `path` under a temporary name renamed into place, so a reader
    never sees half of it.

    A path that exists and is not a regular file, such as /dev/null, /dev/stdout or
    a named pipe, is written to directly: a rename would replace the device or pipe
    with a file.
    """
    if path.exists() and not path.is_file():
        with path.open("w", encoding="utf-8") as stream:
            stream.write(text)
        return
    partial = path.with_name(f".{path.name}.{temporary_name()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
