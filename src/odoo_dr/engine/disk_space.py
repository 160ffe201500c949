"""Free space for the files a restore writes, counted per file system.

A restore writes the uncompressed dump below `--temp-dir` (or the system's temporary
folder) and the filestore below the filestore root. When both folders are on one
file system, they need the sum of both there, not each its own share. Every file
takes whole blocks and an inode, so sizes are rounded up to the file system's
block size, and files and folders are counted against the free inodes where the
file system has a fixed number of them.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from odoo_dr.errors import RejectedError

# errno values of a full disk, and of a user's disk quota reached.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class SpaceNeed:
    """The files and folders that one step of a restore creates below `folder`."""

    folder: Path
    what: str
    option: str
    file_sizes: tuple[int, ...]
    folders: int


def _existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    return probe


def _blocks_bytes(need: SpaceNeed, block: int) -> int:
    # NOTE: folders count as inodes only, because tmpfs, XFS and btrfs keep small
    # folders without a data block. ext4 gives each folder a block, so it may need
    # up to one block per folder more (about 1 MiB for a filestore's 257 folders).
    return sum(-(-size // block) * block for size in need.file_sizes)


def _amount(value: int) -> str:
    return f"{value / 2**20:,.1f} MiB ({value:,} bytes)"


def _options_hint(members: list[SpaceNeed]) -> str:
    options = sorted({need.option for need in members})
    if len(members) > 1 and len(options) > 1:
        return (
            f"free space there, or pass {' or '.join(options)} on another disk so "
            "that they no longer share one"
        )
    return f"free space there, or pass {' or '.join(options)} on a larger disk"


def _describe(members: list[SpaceNeed], probe: Path, block: int) -> str:
    if len(members) == 1:
        return f"in {probe} for {members[0].what}"
    parts = " and ".join(
        f"{need.what} ({_amount(_blocks_bytes(need, block))} in {need.folder})"
        for need in members
    )
    return f"on the file system of {probe}, which holds both {parts}"


def check_space(needs: list[SpaceNeed]) -> None:
    """Raise `RejectedError` when a file system lacks the space or inodes needed."""
    groups: dict[int, tuple[Path, list[SpaceNeed]]] = {}
    for need in needs:
        probe = _existing(need.folder)
        device = probe.stat().st_dev
        groups.setdefault(device, (probe, []))[1].append(need)
    for probe, members in groups.values():
        stats = os.statvfs(probe)
        block = stats.f_frsize or stats.f_bsize or 4096
        needed = sum(_blocks_bytes(need, block) for need in members)
        free = stats.f_bavail * stats.f_frsize
        if needed > free:
            raise RejectedError(
                f"not enough free space {_describe(members, probe, block)}: "
                f"{_amount(needed)} needed, {_amount(free)} free",
                hint=_options_hint(members),
            )
        # Some file systems (btrfs, for one) have no fixed inode count and report 0.
        if stats.f_files == 0:
            continue
        inodes = sum(len(need.file_sizes) + need.folders for need in members)
        if inodes > stats.f_favail:
            raise RejectedError(
                f"not enough free inodes {_describe(members, probe, block)}: "
                f"{inodes:,} files and folders to create, {stats.f_favail:,} inodes "
                "free",
                hint=_options_hint(members),
            )


def disk_full_error(exc: OSError, needs: list[SpaceNeed]) -> tuple[str, str] | None:
    """Return the message and hint for a full disk met while writing, else None.

    The path in `exc` names the need that ran out, and so the option that moves it.
    """
    if exc.errno not in DISK_FULL:
        return None
    path = Path(exc.filename) if exc.filename else None
    option = None
    if path is not None:
        # The most specific folder wins: a filestore root may lie in --temp-dir.
        matches = [need for need in needs if path.is_relative_to(need.folder)]
        if matches:
            option = max(matches, key=lambda need: len(need.folder.parts)).option
    if path is not None:
        where = f" of {path}"
        hint = "free space there"
        if option is not None:
            hint += f", or pass {option} on a larger disk"
    else:
        # A write through an open file reports no path: name every folder written.
        folders = " or ".join(f"{need.folder}/" for need in needs)
        options = " or ".join(dict.fromkeys(need.option for need in needs))
        where = f" while writing below {folders}" if folders else ""
        hint = f"free space on the disk of {folders}" if folders else "free space"
        if options:
            hint += f", or pass {options} on a larger disk"
    return (
        f"no space left on the device{where} ({exc.strerror or 'disk full'})",
        hint + "; the restore removed what it had written",
    )
