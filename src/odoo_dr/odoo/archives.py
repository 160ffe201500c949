"""Backup archives of Odoo's own tools: recognise, check and unpack them.

Three layouts exist in the field:

- Odoo's database manager (`odoo/service/db.py`, `dump_db`) writes a zip holding
  `dump.sql` (plain-format `pg_dump --no-owner`), `filestore/` (the database's
  filestore folder) and `manifest.json`.
- click-odoo-contrib's `click-odoo-backupdb --format folder` writes a folder holding
  `db.dump` (`pg_dump --format=c --no-owner`), `filestore/` and `manifest.json`.
- A bare `pg_dump --format=c` file (`.dump`), whose filestore, if any, comes apart.

Every check here runs before odoo-dr connects to PostgreSQL: the zip's member list
(paths, links, sizes against the free space), the members' CRC-32 while they are
extracted, the closing line of a plain dump, and `pg_restore --list` of a custom
dump. Dumps are read as streams, never whole into memory.
"""

from __future__ import annotations

import json
import logging
import lzma
import os
import shutil
import stat
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from odoo_dr.errors import RejectedError
from odoo_dr.pg.binaries import find_newest_tools
from odoo_dr.processes import dying_with_parent

log = logging.getLogger(__name__)

PLAIN_DUMP = "dump.sql"
CUSTOM_DUMP = "db.dump"
FILESTORE = "filestore"
MANIFEST = "manifest.json"

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
CUSTOM_SIGNATURE = b"PGDMP"
# pg_dump's plain format starts with this comment and ends with the second one;
# a file without the closing comment was cut off.
PLAIN_HEADER = b"-- PostgreSQL database dump"
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
# The trailer is followed by at most a few comment lines (and, since PostgreSQL
# 17.6, 16.10 and 15.14, an `\unrestrict` line), so it lies within this tail.
TRAILER_WINDOW = 4096
# psql meta-commands that pg_dump itself writes outside COPY data.
ALLOWED_META_COMMANDS = (b"\\restrict ", b"\\unrestrict ")
# The first minor release of each major version whose psql has `\restrict`.
RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
# Room left on the extraction disk beyond the members' declared sizes.
FREE_SPACE_MARGIN = 64 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MANIFEST_HINT = (
    "Odoo writes manifest.json as a small JSON object; repack the "
    "archive with the manifest.json Odoo wrote, or without one"
)
COPY_BYTES = 1024 * 1024
# Exceptions that zipfile and its decompressors raise on damaged archive bytes
# (bzip2 raises OSError too). zipfile raises NotImplementedError for a zip version
# or feature it lacks, and ValueError (UnicodeDecodeError) for a name flagged UTF-8
# that is not.
ZIP_DAMAGE = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    ValueError,
)
# Deflate expands at most about 1032 times, so a member declaring a higher ratio
# comes from bzip2 or LZMA, whose ratios are unbounded. Real dumps and filestore
# files stay far below it; a zip bomb's members are far above.
MAX_RATIO = 1100
RATIO_MIN_SIZE = 1024 * 1024
# The fixed part of a zip member's local header, before its name and extra field.
LOCAL_HEADER_SIZE = 30
SUPPORTED_COMPRESSION = {
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
}


@dataclass
class ArchiveSource:
    """An archive found at a path, before its content was checked."""

    kind: str  # odoo-zip, click-odoo-folder, odoo-folder, pg-custom or plain-sql
    path: Path
    dump: Path | None = None  # the dump file in place, for folders and files
    filestore: Path | None = None

    @property
    def label(self) -> str:
        """The archive's own name, without the folders leading to it."""
        return self.path.resolve().name or self.path.name


@dataclass
class CheckedArchive:
    """An archive whose dump and filestore are ready to load, with what it records."""

    source: ArchiveSource
    dump: Path
    dump_format: str  # "plain" or "custom"
    filestore: Path | None
    odoo_manifest: dict = field(default_factory=dict)
    created_at: datetime | None = None
    created_from: str = ""
    dump_database: str | None = None
    # The major version of the pg_dump that wrote a custom dump.
    dump_major: int = 0


def identify(path: Path, filestore: Path | None) -> ArchiveSource:
    """Return which archive `path` is, from its layout and first bytes."""
    if not path.exists():
        raise RejectedError(
            f"{path} not found", hint="give the path of an archive file or folder"
        )
    if filestore is not None and not filestore.is_dir():
        raise RejectedError(
            f"--filestore {filestore} is not a folder",
            hint="give the database's filestore folder, the one holding the "
            "two-letter folders",
        )
    if path.is_dir():
        return _identify_folder(path, filestore)
    if not path.is_file():
        # A named pipe or a device would block or give other bytes at each open.
        raise RejectedError(
            f"{path} is not a regular file or folder",
            hint="copy the archive to a file first, then import that file",
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(PLAIN_HEADER) + 64)
    except OSError as exc:
        raise RejectedError(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(ZIP_SIGNATURES):
        if filestore is not None:
            raise RejectedError(
                f"--filestore is not used with a zip archive such as {path.name}",
                hint="a zip contains its own filestore/ folder; leave out --filestore",
            )
        return ArchiveSource("odoo-zip", path)
    if head.startswith(CUSTOM_SIGNATURE):
        return ArchiveSource("pg-custom", path, dump=path, filestore=filestore)
    if PLAIN_HEADER in head:
        return ArchiveSource("plain-sql", path, dump=path, filestore=filestore)
    if path.suffix.lower() == ".zip":
        raise RejectedError(
            f"{path.name} is not a zip archive: it does not start with a zip signature",
            hint="check that the file is the archive Odoo's database manager "
            "downloaded, not an error page or another file",
        )
    raise RejectedError(
        f"{path.name} is not an archive odoo-dr can import: neither a zip, a "
        "pg_dump custom-format dump nor a plain pg_dump file",
        hint="import an Odoo backup zip, a click-odoo-backupdb folder, or a "
        "'pg_dump --format=c' file",
    )


def _identify_folder(path: Path, filestore: Path | None) -> ArchiveSource:
    own_filestore = path / FILESTORE
    if filestore is None and own_filestore.is_dir():
        filestore = own_filestore
    custom = path / CUSTOM_DUMP
    plain = path / PLAIN_DUMP
    if custom.is_file():
        return ArchiveSource("click-odoo-folder", path, custom, filestore)
    if plain.is_file():
        return ArchiveSource("odoo-folder", path, plain, filestore)
    raise RejectedError(
        f"folder {path} contains neither {CUSTOM_DUMP} nor {PLAIN_DUMP}",
        hint="give a click-odoo-backupdb folder (db.dump, filestore/, "
        "manifest.json) or an unpacked Odoo backup zip",
    )


def check(source: ArchiveSource, work: Path) -> CheckedArchive:
    """Check `source` and, for a zip, extract it into `work`; touch no database."""
    if source.kind == "odoo-zip":
        checked = _extract_zip(source, work)
    else:
        assert source.dump is not None
        plain = source.kind in {"plain-sql", "odoo-folder"}
        dump_format = "plain" if plain else "custom"
        checked = CheckedArchive(source, source.dump, dump_format, source.filestore)
        manifest = source.path / MANIFEST if source.path.is_dir() else None
        if manifest is not None and manifest.is_file():
            if manifest.stat().st_size > MAX_MANIFEST_BYTES:
                raise RejectedError(
                    f"{MANIFEST} of {source.label} is "
                    f"{manifest.stat().st_size:,} bytes, far more than Odoo writes",
                    hint=MANIFEST_HINT,
                )
            checked.odoo_manifest = _read_manifest(manifest.read_bytes(), source)
        checked.created_at = _file_time(source.dump)
        checked.created_from = "file modification time"
    checked.dump_format = _dump_format(checked.dump, checked.dump_format)
    if checked.dump_format == "plain":
        described = source.label
        if source.kind != "plain-sql":
            described = f"{PLAIN_DUMP} of {source.label}"
        check_plain_dump(checked.dump, described)
    else:
        _list_custom_dump(checked)
    return checked


def _dump_format(dump: Path, named: str) -> str:
    """Return the format of `dump` from its first bytes, else the one its name gives.

    A `dump.sql` may contain a custom-format dump and a `db.dump` plain SQL when
    the archive was put together by hand.
    """
    with open(dump, "rb") as handle:
        head = handle.read(len(PLAIN_HEADER) + 64)
    if head.startswith(CUSTOM_SIGNATURE):
        return "custom"
    if PLAIN_HEADER in head:
        return "plain"
    return named


def _file_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _read_manifest(data: bytes, source: ArchiveSource) -> dict:
    try:
        manifest = json.loads(data)
    except RecursionError:
        raise RejectedError(
            f"{MANIFEST} of {source.label} nests its JSON too deeply",
            hint=MANIFEST_HINT,
        ) from None
    except ValueError as exc:
        raise RejectedError(
            f"{MANIFEST} of {source.label} is not valid JSON: {exc}",
            hint="the archive is damaged; take or copy it again",
        ) from None
    if not isinstance(manifest, dict):
        raise RejectedError(
            f"{MANIFEST} of {source.label} is not a JSON object",
            hint=MANIFEST_HINT,
        )
    return manifest


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Return why extracting `info` is unsafe or impossible, or None."""
    name = info.filename
    path = PurePosixPath(name)
    if "\x00" in name or "\\" in name:
        return "its name contains a NUL character or a backslash"
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "its path is absolute"
    if ".." in path.parts:
        return "its path leads out of the archive's folder ('..')"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "it is a symbolic link"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "it is not a regular file (a device, named pipe or socket)"
    if info.flag_bits & 0x1:
        return "it is encrypted"
    if info.compress_type not in SUPPORTED_COMPRESSION:
        return f"it uses compression method {info.compress_type}, which is unsupported"
    if (
        info.file_size > RATIO_MIN_SIZE
        and info.file_size > MAX_RATIO * info.compress_size
    ):
        return (
            f"it declares {info.file_size:,} bytes uncompressed from "
            f"{info.compress_size:,} compressed, a ratio above {MAX_RATIO} that "
            "only a zip bomb reaches"
        )
    return None


def _overlapping(members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo | None:
    """Return a member whose data starts inside another member's, or None.

    Overlapping members let a small zip expand to many copies of the same
    compressed data. Each member takes at least its local header and its
    compressed size from its offset on.
    """
    ordered = sorted(members, key=lambda info: info.header_offset)
    for current, following in zip(ordered, ordered[1:], strict=False):
        end = current.header_offset + LOCAL_HEADER_SIZE + current.compress_size
        if end > following.header_offset:
            return following
    return None


def _is_extracted(name: str) -> bool:
    return name in {PLAIN_DUMP, MANIFEST} or name.startswith(FILESTORE + "/")


def _open_zip(source: ArchiveSource) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source.path)
    except ZIP_DAMAGE as exc:
        raise RejectedError(
            f"{source.label} is a truncated or damaged zip archive: its member list "
            f"(the central directory at its end) cannot be read ({exc})",
            hint="copy the archive again from where it was made, and compare its "
            "size with the original",
        ) from None
    except OSError as exc:
        raise RejectedError(f"cannot read {source.path}: {exc.strerror}") from None


# NOTE: zipfile reads the whole member list into memory when it opens an archive,
# some hundreds of bytes per member, so memory grows with the number of members.
def _check_members(archive: zipfile.ZipFile, source: ArchiveSource) -> list:
    members = archive.infolist()
    seen: set[str] = set()
    for info in members:
        problem = _member_problem(info)
        if problem is not None:
            raise RejectedError(
                f"member {info.filename!r} of {source.label} is rejected: {problem}",
                hint="odoo-dr extracts only plain files and folders inside the "
                "archive; repack it without such members",
            )
        # `a//b` and `a/./b` are extracted to the same file as `a/b`.
        normalized = str(PurePosixPath(info.filename))
        if normalized in seen:
            raise RejectedError(
                f"member {info.filename!r} appears twice in {source.label}",
                hint="repack the archive with each file once",
            )
        seen.add(normalized)
    overlapping = _overlapping(members)
    if overlapping is not None:
        raise RejectedError(
            f"member {overlapping.filename!r} of {source.label} overlaps another "
            "member's data, as only zip bombs do",
            hint="repack the archive with a standard zip tool",
        )
    names = {info.filename for info in members}
    if PLAIN_DUMP not in names:
        present = (
            "a filestore/ folder but "
            if any(name.startswith(FILESTORE + "/") for name in names)
            else ""
        )
        raise RejectedError(
            f"{source.label} contains {present}no {PLAIN_DUMP}, the database dump of "
            "an Odoo backup zip",
            hint="export the backup again from Odoo's database manager with the "
            "'zip (includes filestore)' format",
        )
    return [
        info for info in members if _is_extracted(info.filename) and not info.is_dir()
    ]


def _check_space(members: list, work: Path, source: ArchiveSource) -> None:
    free = shutil.disk_usage(work).free
    for info in members:
        if info.file_size > free:
            raise RejectedError(
                f"member {info.filename!r} of {source.label} declares "
                f"{info.file_size:,} bytes uncompressed ({info.compress_size:,} "
                f"compressed), more than the {free:,} bytes free in {work}",
                hint="the archive may be damaged or crafted to fill the disk; if it "
                "is genuine, pass --temp-dir on a disk with enough room",
            )
    total = sum(info.file_size for info in members)
    if total + FREE_SPACE_MARGIN > free:
        raise RejectedError(
            f"extracting {source.label} needs {total:,} bytes, but {work} has only "
            f"{free:,} bytes free",
            hint="pass --temp-dir on a disk with enough room, or free space",
        )


def _extract_zip(source: ArchiveSource, work: Path) -> CheckedArchive:
    with _open_zip(source) as archive:
        members = _check_members(archive, source)
        _check_space(members, work, source)
        root = work / "archive"
        root.mkdir(mode=0o700)
        manifest: dict = {}
        for info in members:
            target = root.joinpath(*PurePosixPath(info.filename).parts)
            if info.filename == MANIFEST and info.file_size > MAX_MANIFEST_BYTES:
                raise RejectedError(
                    f"{MANIFEST} of {source.label} declares {info.file_size:,} "
                    "bytes, far more than Odoo writes",
                    hint=MANIFEST_HINT,
                )
            try:
                _extract_member(archive, info, target)
            except _DamagedMember as exc:
                raise RejectedError(
                    f"member {info.filename!r} of {source.label} is damaged: "
                    f"{exc.__cause__}",
                    hint="copy the archive again from where it was made",
                ) from None
            except OSError as exc:
                raise RejectedError(
                    f"cannot extract member {info.filename!r} of {source.label} "
                    f"to {exc.filename or target}: {exc.strerror or exc}",
                    hint="a file and a folder of the archive may share a name; "
                    "if the disk is full, pass --temp-dir on another disk",
                ) from None
            if info.filename == MANIFEST:
                manifest = _read_manifest(target.read_bytes(), source)
        dump_info = archive.getinfo(PLAIN_DUMP)
    filestore = root / FILESTORE
    filestore.mkdir(exist_ok=True)
    checked = CheckedArchive(
        source, root / PLAIN_DUMP, "plain", filestore, odoo_manifest=manifest
    )
    # Zip entries carry the writer's local time without its zone. It is read in
    # this host's zone, which is right when both hosts use the same zone (or UTC).
    try:
        local = datetime(*dump_info.date_time).astimezone()
    except ValueError:
        # A damaged date (month 0, day 40) leaves the time unknown.
        log.info("the time of %s in %s is invalid", PLAIN_DUMP, source.label)
        return checked
    checked.created_at = local.astimezone(UTC)
    checked.created_from = f"time of {PLAIN_DUMP} in the zip"
    return checked


class _DamagedMember(Exception):
    """A member's bytes failed to decompress or to match their CRC-32."""


def _extract_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path
) -> None:
    """Copy one member to `target`, streamed.

    zipfile stops reading at the member's declared size and checks its CRC-32 at
    the end, so a member cannot write more than the free-space check allowed.
    Errors reading the archive raise `_DamagedMember`, apart from the OSError of
    writing the target.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as writer:
        try:
            reader = archive.open(info)
        except (*ZIP_DAMAGE, OSError) as exc:
            raise _DamagedMember() from exc
        with reader:
            while True:
                try:
                    piece = reader.read(COPY_BYTES)
                except (*ZIP_DAMAGE, OSError) as exc:
                    raise _DamagedMember() from exc
                if not piece:
                    break
                writer.write(piece)


def _pieces(handle: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield the file's lines in pieces of at most COPY_BYTES, each with a flag.

    The flag is true for a piece that starts a line. A line can be as long as the
    file (a large bytea value in COPY data, or a crafted dump), so it is never read
    whole.
    """
    starts_line = True
    while piece := handle.readline(COPY_BYTES):
        yield piece, starts_line
        starts_line = piece.endswith(b"\n")


def _starts_copy(line: bytes) -> bool:
    """Return whether `line` is a `COPY ... FROM stdin;` line, followed by data."""
    return line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;")


def check_plain_dump(path: Path, described: str) -> None:
    """Check that a plain pg_dump file is complete and runs no psql meta-commands.

    pg_dump ends its plain output with a closing comment, so a file without it was
    cut off. Lines starting with a backslash outside COPY data would make psql
    run meta-commands (`\\!` runs a shell command); pg_dump writes none but
    `\\restrict`/`\\unrestrict`.
    Only meta-commands at the start of a line are found here; psql's restricted
    mode (`restricted_script`) rejects the others when the dump is loaded.
    NOTE: a plain dump is a script that runs with the importing role's rights, so
    import only trusted ones.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - TRAILER_WINDOW))
        tail = handle.read()
    if PLAIN_TRAILER not in tail:
        raise RejectedError(
            f"{described} is truncated: "
            "it lacks pg_dump's closing line '-- PostgreSQL database dump complete'",
            hint="the dump was cut off while it was written or copied; take the "
            "backup again or copy the complete file",
        )
    in_copy = False
    number = 0
    with open(path, "rb") as handle:
        for line, starts_line in _pieces(handle):
            if not starts_line:
                continue
            number += 1
            if in_copy:
                in_copy = line.rstrip(b"\r\n") != b"\\."
                continue
            if _starts_copy(line):
                in_copy = True
            elif line.lstrip().startswith(b"\\") and not line.startswith(
                ALLOWED_META_COMMANDS
            ):
                command = line.strip().split(b" ")[0].decode("utf-8", "replace")
                raise RejectedError(
                    f"{described} runs the psql meta-command {command} on line "
                    f"{number:,}, which pg_dump never writes",
                    hint="the dump was edited after pg_dump wrote it; import only "
                    "dumps from a trusted source",
                )


def restricted_script(path: Path, key: str) -> Iterator[bytes]:
    """Yield a plain dump as psql input in which psql runs no meta-command.

    The first line is psql's `\\restrict` with `key`, and only the same key lifts it.
    psql then rejects every meta-command of the dump, also one after a statement
    or one that a string containing `COPY ... FROM stdin;` hides from
    `check_plain_dump`. pg_dump's own `\\restrict` and `\\unrestrict` lines would
    fail in restricted mode, so they are left out.
    """
    yield b"\\restrict " + key.encode("ascii") + b"\n"
    in_copy = False
    with open(path, "rb") as handle:
        for line, starts_line in _pieces(handle):
            if starts_line and in_copy:
                in_copy = line.rstrip(b"\r\n") != b"\\."
            elif starts_line and _starts_copy(line):
                in_copy = True
            elif starts_line and line.startswith(ALLOWED_META_COMMANDS):
                continue
            yield line


def psql_restricts(version: str) -> bool:
    """Return whether psql of `version` has `\\restrict` (17.6, 16.10, 15.14 on)."""
    parts = [int(part) for part in version.split(".")[:2] if part.isdigit()]
    if not parts:
        return False
    major, minor = parts[0], (parts[1] if len(parts) > 1 else 0)
    if major >= 18:
        return True
    return minor >= RESTRICT_SINCE.get(major, 10**6)


def _list_custom_dump(checked: CheckedArchive) -> None:
    """Read the custom dump's table of contents with `pg_restore --list`."""
    tools = find_newest_tools(f"checking {checked.source.label}")
    result = subprocess.run(
        dying_with_parent([tools.pg_restore, "--list", str(checked.dump)]),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()
        raise RejectedError(
            f"{checked.dump.name} of {checked.source.label} cannot be read by "
            f"pg_restore {tools.version}: {message[0] if message else 'no message'}",
            hint="the dump is damaged, truncated or from a newer pg_dump; take the "
            "backup again or install a newer postgresql-client",
        )
    for line in result.stdout.splitlines()[:20]:
        text = line.lstrip(";").strip()
        if text.startswith("Archive created at "):
            created = _parse_archive_time(text.removeprefix("Archive created at "))
            if created is not None:
                checked.created_at = created
                checked.created_from = "creation time in the dump's header"
        elif text.startswith("dbname: "):
            checked.dump_database = text.removeprefix("dbname: ").strip()
        elif text.startswith("Dumped by pg_dump version: "):
            version = text.removeprefix("Dumped by pg_dump version: ")
            major = version.split(".")[0]
            checked.dump_major = int(major) if major.isdigit() else 0


def _parse_archive_time(text: str) -> datetime | None:
    """Parse pg_dump's `YYYY-MM-DD HH:MM:SS ZONE`; only UTC and this host's zone."""
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    zone = text[19:].strip()
    if zone in {"UTC", "GMT", "Z", "+00", "+0000"}:
        return moment.replace(tzinfo=UTC)
    local = moment.astimezone()
    if zone == local.tzname() or zone in os.environ.get("TZ", ""):
        return local.astimezone(UTC)
    log.info("time zone %r of the dump's creation time is unknown here", zone)
    return None
