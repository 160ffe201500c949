"""The filestore journal: every file a tenant's filestore held, and when.

`odoo-dr filestore sync` appends segments, small documents written with
`Repository.write_document` (so they are sealed in an encrypted repository):

    journal/<tenant hash>/<sequence>-<random>.json

The tenant hash is a keyed HMAC in an encrypted repository and a SHA-256 otherwise,
so the folder does not show the tenant's name when the repository is encrypted. A
segment lists the files that appeared (content stored as blobs, as snapshot file
indexes do), the files that disappeared, and the files whose content did not match
their name. Replaying the segments in sequence order gives each file's lifetimes.

A merged segment (compaction, or prune dropping old entries) lists in `replaces`
every segment it stands for. Readers skip a replaced segment, so the answer is
the same before the merged segment is written, after it, and at any point while
the replaced segments are deleted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from odoo_dr.errors import SnapshotDamaged
from odoo_dr.odoo.filestore import safe_relative
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.crypto import RepositoryKeys
from odoo_dr.repository.manifest import StoredBlob, Timestamp
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal/"
JOURNAL_VERSION = 1
_SEGMENT_NAME = re.compile(r"^(\d{12})-[0-9a-f]{8}\.json$")


class JournalEntry(StoredBlob):
    """One lifetime of one filestore file: its content and when it was there."""

    store_fname: str = Field(description="path below the tenant's folder, 'ab/ab12...'")
    sha1: str
    first_seen: Timestamp = Field(description="time of the sync that found it, UTC")
    mtime: Timestamp = Field(description="the file's modification time, UTC")
    gone_seen: Timestamp | None = Field(
        default=None, description="time of the first sync that missed it, UTC"
    )

    @field_validator("store_fname")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        safe_relative(value)
        return value

    @property
    def path(self) -> str:
        """The path below the tenant's folder, as `FilestoreEntry.path` names it."""
        return self.store_fname

    @property
    def present_since(self) -> datetime:
        """The earliest moment the file is known to exist."""
        return min(self.mtime, self.first_seen)

    def present_at(self, moment: datetime) -> bool:
        return self.present_since <= moment and (
            self.gone_seen is None or self.gone_seen > moment
        )


class GoneEntry(BaseModel):
    store_fname: str
    gone_seen: Timestamp


class JournalProblem(BaseModel):
    """A file in the tenant's folder that the journal could not record."""

    store_fname: str
    reason: Literal["checksum mismatch", "unexpected name", "not a regular file"]
    size: int
    mtime_ns: int
    found_sha1: str | None = None
    seen: Timestamp

    def describe(self) -> str:
        if self.reason == "checksum mismatch":
            return (
                f"{self.store_fname}: content does not match its name "
                f"(its SHA-1 is {self.found_sha1}, {self.size:,} bytes)"
            )
        if self.reason == "unexpected name":
            return f"{self.store_fname}: not named <xx>/<sha1> as Odoo names files"
        return f"{self.store_fname}: not a regular file (a symbolic link or device)"


class JournalSegment(BaseModel):
    format: Literal["odoo-dr-filestore-journal"] = "odoo-dr-filestore-journal"
    version: int = JOURNAL_VERSION
    tenant: str
    sequence: int
    written_at: Timestamp
    replaces: list[str] = Field(
        default_factory=list, description="names of the segments this one merges"
    )
    new: list[JournalEntry] = Field(default_factory=list)
    gone: list[GoneEntry] = Field(default_factory=list)
    problems: list[JournalProblem] = Field(default_factory=list)


def journal_folder(tenant: str, keys: RepositoryKeys | None) -> str:
    """Return the key prefix of a tenant's journal, ending with a slash."""
    if keys is not None:
        digest = keys.name("filestore journal", tenant)[:32]
    else:
        digest = hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:32]
    return f"{JOURNAL_PREFIX}{digest}/"


@dataclass
class JournalState:
    """A tenant's journal replayed: every lifetime of every file, in order."""

    tenant: str
    folder: str
    lifetimes: dict[str, list[JournalEntry]] = field(default_factory=dict)
    problems: dict[str, JournalProblem] = field(default_factory=dict)
    # Every segment name found, replaced ones included, and those replayed.
    listed: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    next_sequence: int = 1

    def apply(self, segment: JournalSegment) -> None:
        for entry in segment.new:
            self.lifetimes.setdefault(entry.store_fname, []).append(entry)
            self.problems.pop(entry.store_fname, None)
        for gone in segment.gone:
            lives = self.lifetimes.get(gone.store_fname)
            if lives and lives[-1].gone_seen is None:
                lives[-1] = lives[-1].model_copy(update={"gone_seen": gone.gone_seen})
            self.problems.pop(gone.store_fname, None)
        for problem in segment.problems:
            self.problems[problem.store_fname] = problem

    def present(self) -> dict[str, JournalEntry]:
        """Return the files the last sync found, by store_fname."""
        return {
            name: lives[-1]
            for name, lives in self.lifetimes.items()
            if lives[-1].gone_seen is None
        }

    def latest(self) -> dict[str, JournalEntry]:
        return {name: lives[-1] for name, lives in self.lifetimes.items()}

    def at(self, moment: datetime) -> dict[str, JournalEntry]:
        """Return the files present at `moment`: the latest lifetime covering it."""
        found = {}
        for name, lives in self.lifetimes.items():
            for entry in reversed(lives):
                if entry.present_at(moment):
                    found[name] = entry
                    break
        return found

    def entries(self) -> list[JournalEntry]:
        """Return every lifetime of every file, ordered by name and time."""
        return [
            entry for name in sorted(self.lifetimes) for entry in self.lifetimes[name]
        ]


class _SegmentVanished(Exception):
    """A listed segment was deleted before it was read."""


# Listings of a journal folder tried before a vanished segment is an error.
MAX_LISTINGS = 5


class JournalReader:
    """Reads a tenant's journal, keeping parsed segments for the next read.

    Segments are never rewritten under the same name, so the parsed copies stay
    valid; the listing is read again each time. The cache lives in memory only.
    """

    def __init__(self, repository: Repository, tenant: str) -> None:
        self.repository = repository
        self.tenant = tenant
        self.folder = journal_folder(tenant, repository.keys)
        self._parsed: dict[str, JournalSegment] = {}

    def load(self) -> JournalState:
        """Replay the segments; raise `SnapshotDamaged` if a needed one is damaged.

        A segment listed but gone when read was deleted by a merge that finished
        meanwhile, and the merged segment is missing from the listing, so the
        listing is read again.
        """
        for _attempt in range(MAX_LISTINGS - 1):
            try:
                return self._load_once()
            except _SegmentVanished:
                continue
        try:
            return self._load_once()
        except _SegmentVanished as exc:
            raise SnapshotDamaged(
                f"filestore journal segment {self.repository.location}/"
                f"{self.folder}{exc} disappeared while it was read, "
                f"{MAX_LISTINGS} times in a row",
                hint="run the command again once the journal's compaction or "
                "prune has finished",
            ) from None

    def _load_once(self) -> JournalState:
        state = JournalState(self.tenant, self.folder)
        names = []
        for key in self.repository.backend.list(self.folder):
            name = key.rsplit("/", 1)[-1]
            if _SEGMENT_NAME.match(name):
                names.append(name)
        names.sort()
        state.listed = names
        segments: dict[str, JournalSegment] = {}
        damaged: dict[str, str] = {}
        for name in names:
            try:
                segments[name] = self._read(name)
            except ObjectNotFound:
                raise _SegmentVanished(name) from None
            except SnapshotDamaged as exc:
                damaged[name] = exc.message
        replaced = {item for segment in segments.values() for item in segment.replaces}
        for name, message in damaged.items():
            if name not in replaced:
                raise SnapshotDamaged(
                    message,
                    hint="put the segment back from a copy of the repository, or move "
                    "it out of the journal folder to keep the rest of the journal",
                )
        for name in names:
            if name in segments and name not in replaced:
                state.apply(segments[name])
                state.live.append(name)
        if names:
            state.next_sequence = int(names[-1][:12]) + 1
        self._parsed = {name: segments[name] for name in segments}
        return state

    def _read(self, name: str) -> JournalSegment:
        if name in self._parsed:
            return self._parsed[name]
        key = self.folder + name
        raw = self.repository.read_document(key)
        try:
            segment = JournalSegment.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise SnapshotDamaged(
                f"filestore journal segment {self.repository.location}/{key} is "
                f"damaged: {error['msg']}" + (f" at {where}" if where else "")
            ) from None
        if segment.tenant != self.tenant:
            raise SnapshotDamaged(
                f"filestore journal segment {self.repository.location}/{key} "
                f"belongs to tenant {segment.tenant!r}, not {self.tenant!r}"
            )
        return segment


def segment_name(sequence: int) -> str:
    return f"{sequence:012d}-{uuid.uuid4().hex[:8]}.json"


def write_segment(repository: Repository, segment: JournalSegment) -> str:
    """Store `segment` durably under a new name in its tenant's folder; return it."""
    name = segment_name(segment.sequence)
    key = journal_folder(segment.tenant, repository.keys) + name
    repository.write_document(
        key, segment.model_dump_json(exclude_defaults=False).encode("utf-8")
    )
    log.debug("wrote journal segment %s tenant=%s", key, segment.tenant)
    return name


def merge(
    repository: Repository,
    state: JournalState,
    keep: list[JournalEntry] | None = None,
) -> str:
    """Replace every segment of `state` by one; return the new segment's name.

    The merged segment lists `keep` (default: every lifetime) and the open
    problems. It is written first and the old segments deleted after, so a kill
    at any point leaves a journal that reads the same (see the module docstring).
    """
    merged = JournalSegment(
        tenant=state.tenant,
        sequence=state.next_sequence,
        written_at=datetime.now(UTC),
        replaces=list(state.listed),
        new=state.entries() if keep is None else keep,
        problems=list(state.problems.values()),
    )
    name = write_segment(repository, merged)
    delete_replaced(repository, state.folder, merged.replaces)
    return name


def delete_replaced(repository: Repository, folder: str, names: list[str]) -> None:
    for name in names:
        repository.backend.delete(folder + name)


def journal_tenants(repository: Repository) -> tuple[dict[str, str], dict[str, str]]:
    """Return the tenant of each journal folder, and the folders that name none.

    The tenant name is read from a segment, because in an encrypted repository the
    folder's name does not show it.
    """
    names: dict[str, list[str]] = {}
    for key in repository.backend.list(JOURNAL_PREFIX):
        parts = key.split("/")
        if len(parts) == 3 and _SEGMENT_NAME.match(parts[2]):
            names.setdefault(f"{parts[0]}/{parts[1]}/", []).append(parts[2])
    tenants: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for folder, segments in sorted(names.items()):
        reason = "no segment"
        for name in sorted(segments, reverse=True):
            try:
                raw = repository.read_document(folder + name)
                segment = JournalSegment.model_validate_json(raw, strict=True)
                tenant = segment.tenant
            except ObjectNotFound:
                continue
            except (SnapshotDamaged, ValidationError) as exc:
                reason = exc.message if isinstance(exc, SnapshotDamaged) else str(exc)
                continue
            if journal_folder(tenant, repository.keys) == folder:
                tenants[folder] = tenant
                break
            reason = f"segment {name} names tenant {tenant!r} of another folder"
        else:
            unreadable[folder] = reason
    return tenants, unreadable
