"""Paths in Odoo's filestore: `<root>/<database>/<xx>/<sha1>`.

Odoo keeps empty marker files under `<database>/checklist/` for its garbage
collector; they are not attachments and odoo-dr neither stores nor restores them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

CHECKLIST = "checklist"
_DOTS = re.compile(r"[.]")
# Odoo names a file `<sha1[:2]>/<sha1>` after the SHA-1 of its content. Its
# `_get_path` still uses an existing `<sha1[:3]>/<sha1>` file, the older layout.
_CONTENT_NAME = re.compile(r"(?P<prefix>[0-9a-f]{2,3})/(?P<sha1>[0-9a-f]{40})")


def normalize_store_fname(store_fname: str) -> str | None:
    """Return the path Odoo would read for `store_fname`, or None if it has none.

    Odoo's `ir.attachment._full_path` removes every dot and strips leading and
    trailing slashes, so odoo-dr reads exactly the file Odoo would, and never a file
    outside the tenant's folder.
    """
    cleaned = _DOTS.sub("", store_fname).strip("/\\")
    return cleaned or None


def sha1_in_name(path: str) -> str | None:
    """Return the SHA-1 in a path of Odoo's content-named layout, else None.

    Odoo trusts such a name. An upload of that content finds the file present and
    is not written, so a file whose content differs stays wrong.
    """
    match = _CONTENT_NAME.fullmatch(path)
    if match is None or not match["sha1"].startswith(match["prefix"]):
        return None
    return match["sha1"]


def safe_relative(path: str) -> PurePosixPath:
    """Return `path` as a relative path that stays below its base folder.

    Paths come from manifests, which a damaged or hostile repository could fill with
    absolute paths or `..`. Any other file name is valid, backslashes included.
    """
    relative = PurePosixPath(path)
    if (
        not path
        or "\x00" in path
        or relative.is_absolute()
        or any(part in {"", ".", ".."} for part in path.split("/"))
    ):
        raise ValueError(f"invalid filestore path {path!r}: not a relative path")
    return relative


def walk(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield `(relative path, stat)` for every regular file below `folder`.

    The `checklist/` folder of the garbage collector is skipped, and so are files
    deleted during the walk.
    """
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        try:
            entries = list(os.scandir(current))
        except FileNotFoundError:
            continue
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if not (prefix == "" and entry.name == CHECKLIST):
                    stack.append((Path(entry.path), relative + "/"))
            elif entry.is_file(follow_symlinks=False):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    # Deleted since the listing, as by Odoo's garbage collector when
                    # the backup could not hold it off.
                    continue
                yield relative, stat


def count_checklist_markers(folder: Path) -> int:
    checklist = folder / CHECKLIST
    if not checklist.is_dir():
        return 0
    return sum(len(files) for _root, _dirs, files in os.walk(checklist))
