"""The snapshot catalog: summaries of the snapshot manifests, read in a few files.

Listing snapshots by reading every `snapshots/<id>.json` costs one read (one S3
GET) per snapshot. The catalog keeps, per snapshot, the fields that listings,
schedules and snapshot choices need, in segments:

    catalog/<time>-<random>-<hash>.json   a CatalogSegment: summaries of some
                                          snapshots

A reader lists `snapshots/` (one LIST), reads every segment, and uses a summary
only for a manifest that is listed with the change stamp the summary recorded
(size and mtime in a folder, size and ETag on S3). It reads the other manifests
themselves.

The catalog is also the record of every manifest written. Manifests are written
once, so a manifest whose SHA-256 differs from the one its entry recorded was
changed after the backup. An entry whose manifest is gone names a deleted
manifest, unless a segment lists the snapshot under `removed`, which prune writes
before it deletes a manifest. Both count as damage. A merge keeps such entries
until `odoo-dr repository rebuild-catalog` accepts the manifests as they are.

A segment is written once under a unique name and never changed, so two writers
never collide. A merge writes the merged segment first and then deletes the
segments it replaces, so a reader finds every summary at any moment, or reads
the manifest when a segment vanished between its listing and its read. In an
encrypted repository segments are sealed documents, like manifests, and their
names carry only the time of writing. Elsewhere the name ends with the first 16 hex
digits of the segment's SHA-256, so a damaged segment whose JSON is still valid is
skipped rather than trusted; segments named without it (by earlier versions) are
read unchecked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from odoo_dr.errors import OdooDrError, RepositoryError, StoreUnavailable
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.manifest import SnapshotManifest, Timestamp

if TYPE_CHECKING:
    from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

CATALOG_PREFIX = "catalog/"
CATALOG_VERSION = 1

# More segments than this are merged into one by the next listing that may
# write and delete. Each segment costs one read per listing.
# NOTE: the merged segment contains every snapshot (about 0.6 KB of JSON each), so
# with tens of thousands of snapshots each merge rewrites several megabytes.
MAX_SEGMENTS = 16

# How long a merge keeps a removed id that no listed manifest and no entry needs.
# A listing that read a manifest before prune deleted it may add its entry later,
# and the removed id must outlive that listing.
REMOVED_KEEP = timedelta(days=7)


class SnapshotSummary(BaseModel):
    """The fields of a snapshot manifest that listings and schedules use."""

    id: str
    tenant: str
    database: str
    started_at: Timestamp
    snapshot_time: Timestamp
    finished_at: Timestamp
    dump_bytes: int
    new_bytes: int
    referenced_files: int
    referenced_bytes: int
    extra_files: int
    extra_bytes: int
    problems: int
    warnings: int
    labels: dict[str, str]
    residency: str | None
    odoo_version: str | None
    postgres_major: int
    tool_version: str
    manifest_sha256: str
    manifest_size: int
    manifest_stamp: str | None = Field(
        default=None,
        description="the manifest's change stamp from the backend's listing (size "
        "and mtime in a folder, size and ETag on S3), or None if unknown",
    )

    @property
    def files(self) -> int:
        return self.referenced_files + self.extra_files

    @property
    def file_bytes(self) -> int:
        return self.referenced_bytes + self.extra_bytes

    @classmethod
    def of(
        cls,
        manifest: SnapshotManifest,
        document: bytes,
        stored_size: int,
        stamp: str | None,
    ) -> SnapshotSummary:
        """Summarize `manifest`, whose plain JSON is `document`.

        `stored_size` is the size of the stored object (sealed in an encrypted
        repository), and `stamp` its change stamp from the backend, if known.
        """
        filestore = manifest.filestore
        return cls(
            id=manifest.id,
            tenant=manifest.tenant,
            database=manifest.database.name,
            started_at=manifest.started_at,
            snapshot_time=manifest.snapshot_time,
            finished_at=manifest.finished_at,
            dump_bytes=manifest.stats.dump_bytes,
            new_bytes=manifest.stats.new_bytes,
            referenced_files=filestore.referenced_files,
            referenced_bytes=filestore.referenced_bytes,
            extra_files=filestore.extra_files,
            extra_bytes=filestore.extra_bytes,
            problems=len(filestore.problems),
            warnings=len(manifest.warnings),
            labels=manifest.labels,
            residency=manifest.residency,
            odoo_version=manifest.odoo.version,
            postgres_major=manifest.postgres.server_major,
            tool_version=manifest.tool_version,
            manifest_sha256=hashlib.sha256(document).hexdigest(),
            manifest_size=stored_size,
            manifest_stamp=stamp,
        )


class CatalogSegment(BaseModel):
    format: Literal["odoo-dr-catalog"] = "odoo-dr-catalog"
    version: int = CATALOG_VERSION
    written_at: Timestamp
    snapshots: list[SnapshotSummary]
    removed: dict[str, Timestamp] = Field(
        default_factory=dict,
        description="by id, the snapshots whose manifests prune deletes or deleted, "
        "with the time prune listed them",
    )
    published: list[str] = Field(
        default_factory=list,
        description="ids of snapshots whose manifests the writer published, which "
        "ends an earlier removal of the same id (a copy brings a pruned one back)",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed_as_list(cls, data: object) -> object:
        """Read `removed` written as a list of ids, with the segment's time."""
        if not isinstance(data, dict) or not isinstance(data.get("removed"), list):
            return data
        removed = data["removed"]
        if not all(isinstance(item, str) for item in removed):
            return data
        return {**data, "removed": dict.fromkeys(removed, data.get("written_at"))}


@dataclass
class CatalogContents:
    """The result of reading every catalog segment."""

    entries: dict[str, SnapshotSummary] = field(default_factory=dict)
    removed: dict[str, datetime] = field(default_factory=dict)
    segments: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)


# A segment name's hash: the first 16 hex digits of the SHA-256 of its content.
_NAMED_HASH = re.compile(r"-[0-9a-f]{32}-(?P<hash>[0-9a-f]{16})\.json$")


def new_segment_key(now: datetime | None = None, data: bytes | None = None) -> str:
    """Return a segment name no other writer uses: the time and a random tail,
    then the hash of `data` when it is given (unencrypted repositories)."""
    moment = now or datetime.now(UTC)
    digest = "" if data is None else "-" + hashlib.sha256(data).hexdigest()[:16]
    return (
        f"{CATALOG_PREFIX}{moment.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex}"
        f"{digest}.json"
    )


def check_named_hash(key: str, data: bytes) -> None:
    """Raise ValueError when `key` names a hash that `data` does not have."""
    named = _NAMED_HASH.search(key)
    if named and hashlib.sha256(data).hexdigest()[:16] != named["hash"]:
        raise ValueError("its content does not match the hash in its name")


def encode_segment(
    summaries: list[SnapshotSummary],
    removed: Mapping[str, datetime] | None = None,
    published: Iterable[str] = (),
) -> bytes:
    segment = CatalogSegment(
        written_at=datetime.now(UTC),
        snapshots=sorted(summaries, key=lambda item: item.id),
        removed=dict(sorted((removed or {}).items())),
        published=sorted(published),
    )
    return segment.model_dump_json().encode("utf-8")


def decode_segment(data: bytes) -> CatalogSegment:
    """Parse a segment, raising ValueError when it is damaged or of a newer version."""
    try:
        segment = CatalogSegment.model_validate_json(data, strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(error["msg"] + (f" at {where}" if where else "")) from None
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
    return segment


def read_catalog(repository: Repository) -> CatalogContents:
    """Read every catalog segment; log and skip the damaged ones.

    A segment deleted since the listing was merged by a compaction that wrote
    its replacement first, and the snapshots it listed are read from their
    manifests if that replacement was not listed either.
    """
    contents = CatalogContents()
    published: dict[str, datetime] = {}
    for key in sorted(repository.backend.list(CATALOG_PREFIX)):
        if not key.endswith(".json"):
            continue
        try:
            data = repository.read_document(key)
            if repository.keys is None:
                check_named_hash(key, data)
            segment = decode_segment(data)
        except ObjectNotFound:
            continue
        except StoreUnavailable:
            # Not a damaged segment: a merge must not delete it.
            raise
        except (ValueError, RepositoryError) as exc:
            reason = exc.message if isinstance(exc, RepositoryError) else str(exc)
            log.warning(
                "ignoring damaged catalog segment %s/%s: %s; the snapshots it "
                "lists are read from their manifests",
                repository.location,
                key,
                reason,
            )
            contents.damaged[key] = reason
            continue
        if segment.version > CATALOG_VERSION:
            # A newer odoo-dr wrote it: leave it for that version, unmerged.
            log.info("ignoring catalog segment %s of version %d", key, segment.version)
            continue
        contents.segments.append(key)
        # Segment names sort by the time of writing, so a later summary of the
        # same snapshot (one written to correct an entry) replaces an earlier one.
        for summary in segment.snapshots:
            contents.entries[summary.id] = summary
        for snapshot_id, moment in segment.removed.items():
            known = contents.removed.get(snapshot_id)
            contents.removed[snapshot_id] = (
                moment if known is None else max(known, moment)
            )
        for snapshot_id in segment.published:
            known = published.get(snapshot_id)
            moment = segment.written_at
            published[snapshot_id] = moment if known is None else max(known, moment)
    # A manifest published again after its removal (by a copy) is no longer removed.
    for snapshot_id, moment in published.items():
        if snapshot_id in contents.removed and moment > contents.removed[snapshot_id]:
            del contents.removed[snapshot_id]
    return contents


def write_segment(
    repository: Repository,
    summaries: list[SnapshotSummary],
    removed: Mapping[str, datetime] | None = None,
    published: Iterable[str] = (),
) -> str:
    """Write `summaries`, the `removed` snapshot ids and the `published` ones as a
    new segment, and return its key."""
    data = encode_segment(summaries, removed, published)
    # A sealed segment is checked when it is opened, and its name is bound into
    # the seal, so it cannot carry the hash of its sealed bytes.
    key = new_segment_key(data=None if repository.keys is not None else data)
    repository.write_document(key, data)
    return key


def replace_segments(
    repository: Repository,
    summaries: list[SnapshotSummary],
    old_keys: list[str],
    removed: Mapping[str, datetime] | None = None,
) -> str:
    """Write one segment with `summaries` and `removed`, then delete the segments
    `old_keys`.

    The order keeps every summary readable at every moment. A segment another
    writer adds meanwhile is not in `old_keys` and stays. Deletes that fail (an
    append-only credential, an Object Lock) leave segments that duplicate the
    new one, which readers tolerate.
    """
    key = write_segment(repository, summaries, removed)
    for old_key in old_keys:
        if old_key == key:
            continue
        try:
            repository.backend.delete(old_key)
        except OdooDrError as exc:
            log.info("left catalog segment %s: %s", old_key, exc.message)
    log.info(
        "wrote catalog segment %s with %d snapshots, merging %d segments",
        key,
        len(summaries),
        len(old_keys),
    )
    return key
