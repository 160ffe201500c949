"""Fuzzing of the repository's documents, the inventory and odoo.conf.

Every parser gets generated valid documents (which must round-trip), mutated ones
(flipped, inserted and deleted bytes, wrong types, huge numbers, deep nesting, huge
strings) and random bytes. It must raise only odoo-dr's documented damage error for
that document, and a mutated document it accepts must hold values of the schema's
own types: never a value coerced from another type, never NaN or an infinity.
"""

from __future__ import annotations

import json
import math
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import strategies as st

from faults.conftest import FaultRecord
from faults.fuzzing import Tally, explore, mutated_json
from odoo_dr.errors import RejectedError, RepositoryError, SnapshotDamaged
from odoo_dr.odoo.config import read_odoo_config
from odoo_dr.repository import catalog, packs
from odoo_dr.repository.index import BlobIndex
from odoo_dr.repository.journal import (
    JournalEntry,
    JournalReader,
    JournalSegment,
    write_segment,
)
from odoo_dr.repository.manifest import (
    BackupStats,
    CheckResult,
    DatabaseInfo,
    DrillRecord,
    DumpFile,
    FileProblem,
    FilestoreSummary,
    LocationStock,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
    StockTotals,
    StoredBlob,
)
from odoo_dr.repository.store import Repository

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
SNAPSHOT_ID = "20260101-020000-0a1b2c3d"
# Paths of values that examples replace with one of another type.
DUMP_SIZE = ("dump", 0, "size")
PASSED = ("passed",)

# -- strategies of valid models

texts = st.text(max_size=40)
names = st.text(min_size=1, max_size=20)
counts = st.integers(0, 2**63 - 1)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
# odoo-dr writes UTC times only, and reads a time without zone as UTC.
moments = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9998, 12, 31),
    timezones=st.just(UTC),
)
chunk_ids = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
blobs = st.builds(StoredBlob, size=counts, chunks=st.lists(chunk_ids, max_size=3))
dump_names = st.from_regex(r"\A[A-Za-z0-9_]{1,8}(\.[A-Za-z0-9_]{1,4}){0,2}\Z")
path_parts = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(lambda part: part not in {".", ".."})
relative_paths = st.lists(path_parts, min_size=1, max_size=4).map("/".join)


def dump_files() -> st.SearchStrategy[list[DumpFile]]:
    toc = st.builds(DumpFile, name=st.just("toc.dat"), size=counts, chunks=st.just([]))
    others = st.builds(DumpFile, name=dump_names, size=counts, chunks=st.just([]))
    return st.tuples(toc, st.lists(others, max_size=3)).map(
        lambda pair: [pair[0], *pair[1]]
    )


problems = st.builds(
    FileProblem,
    store_fname=texts,
    reason=st.sampled_from(
        ["missing", "checksum mismatch", "size mismatch", "invalid path"]
    ),
    checksum=st.none() | texts,
    file_size=st.none() | counts,
    attachments=st.lists(texts, max_size=2),
)
manifests = st.builds(
    SnapshotManifest,
    id=names,
    tenant=names,
    started_at=moments,
    snapshot_time=moments,
    finished_at=moments,
    lsn=st.none() | texts,
    database=st.builds(
        DatabaseInfo,
        name=names,
        encoding=texts,
        collate=texts,
        ctype=texts,
        size_bytes=counts,
    ),
    postgres=st.builds(
        PostgresInfo,
        server_version=texts,
        server_major=counts,
        pg_dump_version=texts,
        pg_dump_major=counts,
    ),
    odoo=st.builds(
        OdooInfo,
        version=st.none() | texts,
        uuid=st.none() | texts,
        modules=st.dictionaries(names, st.none() | texts, max_size=3),
    ),
    row_counts=st.dictionaries(names, counts, max_size=3),
    dump=dump_files(),
    filestore=st.builds(
        FilestoreSummary,
        index=blobs,
        referenced_files=counts,
        problems=st.lists(problems, max_size=2),
    ),
    stats=st.builds(
        BackupStats,
        seconds=numbers,
        dump_bytes=counts,
        files_read=counts,
        files_reused=counts,
        bytes_read=counts,
        new_objects=counts,
        new_bytes=counts,
    ),
    warnings=st.lists(texts, max_size=2),
    tool_version=texts,
    labels=st.dictionaries(names, texts, max_size=3),
    residency=st.none() | texts,
    stock_totals=st.none()
    | st.builds(
        StockTotals,
        quants=counts,
        quantity=numbers,
        locations=st.lists(
            st.builds(
                LocationStock,
                id=counts,
                name=st.none() | texts,
                quants=counts,
                quantity=numbers,
            ),
            max_size=2,
        ),
    ),
)
drill_records = st.builds(
    DrillRecord,
    id=names,
    snapshot_id=names,
    tenant=names,
    started_at=moments,
    finished_at=moments,
    scratch_database=texts,
    scratch_filestore=texts,
    kept=st.booleans(),
    passed=st.booleans(),
    error=st.none() | texts,
    rto_seconds=numbers,
    rpo_seconds=numbers,
    steps=st.dictionaries(names, numbers, max_size=3),
    checks=st.lists(
        st.builds(
            CheckResult,
            name=texts,
            passed=st.booleans(),
            summary=texts,
            problems=st.lists(texts, max_size=2),
            seconds=numbers,
        ),
        max_size=3,
    ),
    tool_version=texts,
    kind=st.sampled_from(["snapshot", "pitr"]),
    target_time=st.none() | moments,
)


def base_manifest() -> SnapshotManifest:
    chunk = "ab" * 32
    return SnapshotManifest(
        id=SNAPSHOT_ID,
        tenant="acme",
        started_at=START,
        snapshot_time=START,
        finished_at=START + timedelta(seconds=30),
        lsn="0/1A2B3C4",
        database=DatabaseInfo(
            name="acme", encoding="UTF8", collate="C", ctype="C", size_bytes=9000
        ),
        postgres=PostgresInfo(
            server_version="15.10",
            server_major=15,
            pg_dump_version="15.10",
            pg_dump_major=15,
        ),
        odoo=OdooInfo(version="17.0", uuid="u-1", modules={"base": "17.0.1.3"}),
        row_counts={"res_partner": 10},
        dump=[
            DumpFile(name="toc.dat", size=100, chunks=[chunk]),
            DumpFile(name="3456.dat", size=7, chunks=[chunk]),
        ],
        filestore=FilestoreSummary(
            index=StoredBlob(size=2, chunks=[chunk]),
            referenced_files=3,
            problems=[FileProblem(store_fname="ab/cd", reason="missing")],
        ),
        stats=BackupStats(
            seconds=30.5,
            dump_bytes=4096,
            files_read=4,
            files_reused=0,
            bytes_read=100,
            new_objects=1,
            new_bytes=2048,
        ),
        tool_version="0.1.0",
        labels={"environment": "production"},
        stock_totals=StockTotals(
            quants=2,
            quantity=5.5,
            locations=[LocationStock(id=8, name="WH/Stock", quants=2, quantity=5.5)],
        ),
    )


def base_drill() -> DrillRecord:
    return DrillRecord(
        id="20260101-030000-0a1b2c3d",
        snapshot_id=SNAPSHOT_ID,
        tenant="acme",
        started_at=START,
        finished_at=START + timedelta(minutes=5),
        scratch_database="odoo_dr_drill_x",
        scratch_filestore="/tmp/x",
        kept=False,
        passed=False,
        rto_seconds=300.25,
        rpo_seconds=3600.0,
        steps={"restore": 200.0, "checks": 100.25},
        checks=[CheckResult(name="login", passed=False, summary="no admin")],
        tool_version="0.1.0",
    )


# -- what an accepted mutation may hold


def _same_json(left: object, right: object) -> bool:
    """Return whether two JSON values are equal with the same JSON types.

    Integers and floats are one JSON type (numbers), but booleans are not numbers.
    A number read into a float field is the double nearest to it, as in any JSON
    reader, so an integer beyond 2**53 equals the double it rounds to.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        if isinstance(left, int) and isinstance(right, int):
            return left == right
        try:
            return float(left) == float(right)
        except OverflowError:
            return False
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(
            _same_json(left[key], right[key]) for key in left
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(
            _same_json(a, b) for a, b in zip(left, right, strict=True)
        )
    return left == right


def _floats(value: object) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [item for part in value.values() for item in _floats(part)]
    if isinstance(value, list):
        return [item for part in value for item in _floats(part)]
    return []


def accepted_problem(
    parsed: object, base: object, kind: str, data: bytes, path: tuple | None
) -> str | None:
    """Return why accepting a mutated document is wrong, or None if it is right.

    `parsed` and `base` are pydantic models; an accepted wrong-type value must read
    back with the type the mutation wrote (so pydantic coerced nothing).
    """
    if parsed == base:
        return None
    dumped = json.loads(parsed.model_dump_json())
    if any(not math.isfinite(item) for item in _floats(parsed.model_dump())):
        return "a float field holds NaN or an infinity"
    if kind == "wrong type" and path is not None:
        written = json.loads(data)
        for part in path:
            written = written[part]
        here = dumped
        try:
            for part in path:
                here = here[part]
        except (KeyError, IndexError, TypeError):
            return f"the value at {path} went missing"
        if not _same_json(here, written):
            return f"{written!r} at {path} was coerced to {here!r}"
    return None


# -- round trips


def test_manifest_round_trip(fault_record: FaultRecord, fault_seed: int):
    tally = Tally()

    def check(manifest: SnapshotManifest) -> None:
        tally.count("generated", hostile=False)
        document = manifest.model_dump_json(indent=1).encode()
        parsed = SnapshotManifest.model_validate_json(document, strict=True)
        assert parsed == manifest, (
            f"seed {fault_seed}: manifest changed in a round trip"
        )
        summary = catalog.SnapshotSummary.of(manifest, document, len(document), None)
        segment = catalog.decode_segment(catalog.encode_segment([summary]))
        assert segment.snapshots == [summary], f"seed {fault_seed}: summary changed"

    explore(manifests, check, fault_seed, tally, fault_record)


def test_drill_record_round_trip(fault_record: FaultRecord, fault_seed: int):
    tally = Tally()

    def check(record: DrillRecord) -> None:
        tally.count("generated", hostile=False)
        document = record.model_dump_json(indent=1).encode()
        parsed = DrillRecord.model_validate_json(document, strict=True)
        assert parsed == record, f"seed {fault_seed}: drill record changed"

    explore(drill_records, check, fault_seed, tally, fault_record)


def test_pack_header_round_trip(fault_record: FaultRecord, fault_seed: int):
    tally = Tally()
    entries = st.lists(st.tuples(chunk_ids, counts, counts, counts), max_size=20)

    def check(items: list[tuple[str, int, int, int]]) -> None:
        tally.count("generated", hostile=False)
        header = packs.encode_header(items)
        assert packs.decode_header(header) == items, f"seed {fault_seed}"

    explore(entries, check, fault_seed, tally, fault_record)


# -- mutated documents


def _fail(tally: Tally, fault_seed: int, kind: str, message: str) -> None:
    tally.lost += 1
    raise AssertionError(f"seed {fault_seed}: {kind}: {message}"[:600])


def test_manifest_mutations_rejected(
    fault_record: FaultRecord, fault_seed: int, tmp_path: Path
):
    repository = Repository.init(str(tmp_path / "repo"))
    base = base_manifest()
    document = base.model_dump_json(indent=1).encode()
    manifest_file = tmp_path / "repo" / "snapshots" / f"{SNAPSHOT_ID}.json"
    tally = Tally()

    def check(case: tuple[str, bytes, tuple | None]) -> None:
        kind, data, path = case
        tally.count(kind)
        manifest_file.write_bytes(data)
        try:
            parsed = repository.load_snapshot(SNAPSHOT_ID)
        except RepositoryError as exc:
            assert SNAPSHOT_ID in exc.message, f"seed {fault_seed}: {exc.message}"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
        problem = accepted_problem(parsed, base, kind, data, path)
        if problem is not None:
            _fail(tally, fault_seed, kind, f"accepted: {problem}")
        if parsed != base:
            tally.accepted_changed += 1
        assert parsed.id == SNAPSHOT_ID, f"seed {fault_seed}: id {parsed.id!r}"

    explore(
        mutated_json(document),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(
            (
                "wrong type",
                document.replace(b'"size": 100', b'"size": true'),
                DUMP_SIZE,
            ),
            (
                "wrong type",
                document.replace(b'"size": 100', b'"size": "100"'),
                DUMP_SIZE,
            ),
            ("flip", document.replace(b'"seconds": 30.5', b'"seconds": NaN'), None),
        ),
    )


def test_drill_record_mutations_skipped(
    fault_record: FaultRecord, fault_seed: int, tmp_path: Path
):
    repository = Repository.init(str(tmp_path / "repo"))
    base = base_drill()
    document = base.model_dump_json(indent=1).encode()
    record_file = tmp_path / "repo" / "drills" / f"{base.id}.json"
    record_file.parent.mkdir(exist_ok=True)
    tally = Tally()

    def check(case: tuple[str, bytes, tuple | None]) -> None:
        kind, data, path = case
        tally.count(kind)
        record_file.write_bytes(data)
        try:
            records = repository.list_drills()
        except Exception as exc:  # noqa: BLE001 - damaged records are skipped
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
        if not records:
            return
        problem = accepted_problem(records[0], base, kind, data, path)
        if problem is not None:
            _fail(tally, fault_seed, kind, f"accepted: {problem}")
        if records[0] != base:
            tally.accepted_changed += 1

    passed = b'"passed": false,\n "error"'
    explore(
        mutated_json(document),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(
            ("wrong type", document.replace(passed, b'"passed": 1,\n "error"'), PASSED),
            ("wrong type", document.replace(b"300.25", b"NaN"), None),
            ("wrong type", document.replace(b"300.25", b"-Infinity"), None),
            # An integer a double cannot hold exactly, in a float field.
            (
                "wrong type",
                document.replace(b"300.25", str(2**70 - 1).encode()),
                ("rto_seconds",),
            ),
            (
                "wrong type",
                document.replace(b'"target_time": null', b'"target_time": "12"'),
                ("target_time",),
            ),
        ),
    )


def test_catalog_segment_mutations(fault_record: FaultRecord, fault_seed: int):
    base = base_manifest()
    document = base.model_dump_json(indent=1).encode()
    summary = catalog.SnapshotSummary.of(base, document, len(document), "stamp")
    segment = catalog.decode_segment(catalog.encode_segment([summary]))
    tally = Tally()

    def check(case: tuple[str, bytes, tuple | None]) -> None:
        kind, data, path = case
        tally.count(kind)
        try:
            parsed = catalog.decode_segment(data)
        except ValueError as exc:
            assert str(exc), f"seed {fault_seed}: empty message"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
        problem = accepted_problem(parsed, segment, kind, data, path)
        if problem is not None:
            _fail(tally, fault_seed, kind, f"accepted: {problem}")
        if parsed != segment:
            tally.accepted_changed += 1

    explore(
        mutated_json(segment.model_dump_json().encode()),
        check,
        fault_seed,
        tally,
        fault_record,
    )


def test_journal_segment_mutations(
    fault_record: FaultRecord, fault_seed: int, tmp_path: Path
):
    repository = Repository.init(str(tmp_path / "repo"))
    segment = JournalSegment(
        tenant="acme",
        sequence=1,
        written_at=START,
        new=[
            JournalEntry(
                store_fname="ab/ab12",
                sha1="ab12",
                size=4,
                chunks=["cd" * 32],
                first_seen=START,
                mtime=START,
            )
        ],
    )
    name = write_segment(repository, segment)
    key_file = next((tmp_path / "repo" / "journal").rglob(name))
    document = key_file.read_bytes()
    tally = Tally()

    def check(case: tuple[str, bytes, tuple | None]) -> None:
        kind, data, path = case
        tally.count(kind)
        key_file.write_bytes(data)
        try:
            state = JournalReader(repository, "acme").load()
        except SnapshotDamaged as exc:
            assert name in exc.message, f"seed {fault_seed}: {exc.message}"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
        for entry in state.entries():
            assert ".." not in entry.store_fname.split("/"), f"seed {fault_seed}"

    explore(mutated_json(document), check, fault_seed, tally, fault_record)


def test_index_file_mutations(
    fault_record: FaultRecord, fault_seed: int, tmp_path: Path
):
    repository = Repository.init(str(tmp_path / "repo"))
    index_file = tmp_path / "repo" / "index" / "20260101T000000000000Z-0.json"
    document = json.dumps(
        {
            "format": "odoo-dr-index",
            "version": 1,
            "packs": [
                {
                    "id": "ef" * 32,
                    "blobs": [["ab" * 32, 40, 12, 30], ["cd" * 32, 52, 9, 9]],
                }
            ],
        },
        indent=1,
    ).encode()
    tally = Tally()

    def check(case: tuple[str, bytes, tuple | None]) -> None:
        kind, data, _path = case
        tally.count(kind)
        index_file.write_bytes(data)
        index = BlobIndex(repository.backend)
        try:
            index.load()
        except Exception as exc:  # noqa: BLE001 - damaged index files are skipped
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
        for blob_id, where in index.locations().items():
            valid = (
                isinstance(blob_id, str)
                and isinstance(where.pack, str)
                and all(
                    type(number) is int and number >= 0
                    for number in (where.offset, where.length, where.size)
                )
            )
            if not valid:
                _fail(tally, fault_seed, kind, f"accepted entry {blob_id!r}: {where}")

    explore(
        mutated_json(document),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(
            ("wrong type", b"[]", None),
            ("deep nesting", b"[" * 50_000 + b"]" * 50_000, None),
            ("huge number", document.replace(b"40", b"1e400"), None),
            ("huge number", document.replace(b"40", b"-40"), None),
        ),
    )


def test_pack_header_mutations(fault_record: FaultRecord, fault_seed: int):
    header = packs.encode_header([("ab" * 32, 200, 12, 30), ("cd" * 32, 212, 9, 9)])
    payload = header[8:]
    tally = Tally()

    def check(case: tuple[str, bytes, tuple | None]) -> None:
        kind, data, _path = case
        tally.count(kind)
        frame = header[:4] + len(data).to_bytes(4, "little") + data
        for candidate in (frame, data):
            try:
                entries = packs.decode_header(candidate)
            except ValueError:
                continue
            except Exception as exc:  # noqa: BLE001 - any other exception is the fault
                _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
            for blob_id, *numbers in entries:
                if not isinstance(blob_id, str) or min(numbers, default=0) < 0:
                    _fail(tally, fault_seed, kind, f"accepted {blob_id!r} {numbers}")

    explore(
        mutated_json(payload),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(
            ("wrong type", b"[]", None),
            ("huge number", payload.replace(b"200", b"1e400"), None),
            ("deep nesting", b"[" * 50_000 + b"]" * 50_000, None),
            ("truncate", b"", None),
        ),
    )


# -- odoo.conf

VALID_CONF = """[options]
addons_path = /opt/odoo/addons
data_dir = /var/lib/odoo
db_host = 127.0.0.1
db_port = 5432
db_user = odoo
db_password = s3cret-pass
db_sslmode = prefer
admin_passwd = admin-secret
"""

conf_lines = st.one_of(
    st.just(VALID_CONF),
    st.lists(
        st.one_of(
            st.sampled_from(
                ["[options]", "[other]", "", "; comment", "  indented = x", "[", "="]
            ),
            st.tuples(
                st.sampled_from(
                    ["db_port", "db_host", "data_dir", "db_user", "db_password", "x"]
                ),
                st.sampled_from([" = ", "=", ": ", " "]),
                st.one_of(
                    st.sampled_from(
                        ["5432", "-1", "70000", "0", "1_0", "False", "", "%(x)s"]
                    ),
                    st.text(max_size=30),
                ),
            ).map("".join),
        ),
        max_size=12,
    ).map("\n".join),
)


@st.composite
def conf_texts(draw) -> tuple[str, bytes]:
    text = draw(conf_lines)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and data:
        kind, data, _path = draw(mutated_bytes(data))
        return kind, data
    return "generated", data


@st.composite
def mutated_bytes(draw, data: bytes) -> tuple[str, bytes, None]:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "random"]))
    position = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        changed = bytearray(data)
        changed[position] ^= 1 << draw(st.integers(0, 7))
        return kind, bytes(changed), None
    if kind == "insert":
        extra = draw(st.binary(min_size=1, max_size=8))
        return kind, data[:position] + extra + data[position:], None
    if kind == "delete":
        return kind, data[:position] + data[position + 8 :], None
    if kind == "truncate":
        return kind, data[:position], None
    return kind, draw(st.binary(max_size=256)), None


def test_odoo_conf_mutations(fault_record: FaultRecord, fault_seed: int, tmp_path):
    path = tmp_path / "odoo.conf"
    tally = Tally()

    def check(case: tuple[str, bytes]) -> None:
        kind, data = case
        tally.count(kind, hostile=kind != "generated")
        path.write_bytes(data)
        try:
            config = read_odoo_config(path)
        except RejectedError as exc:
            assert str(path) in exc.message, f"seed {fault_seed}: {exc.message}"
            assert "s3cret-pass" not in str(exc), f"seed {fault_seed}: password shown"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")
        assert "db_password=" not in repr(config), f"seed {fault_seed}: password shown"
        if config.db_port is not None and not 0 < config.db_port < 65536:
            _fail(tally, fault_seed, kind, f"accepted db_port {config.db_port}")

    explore(
        conf_texts(),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(
            ("generated", b"[options]\ndb_port = 70000\n"),
            ("generated", b"[options]\ndb_port = -1\n"),
        ),
    )


def test_odoo_conf_folder_rejected(tmp_path: Path):
    with pytest.raises(RejectedError) as caught:
        read_odoo_config(tmp_path)
    assert str(tmp_path) in caught.value.message


# -- random bytes for every parser at once

PRINTABLE = string.printable.encode()


def test_random_bytes_rejected(fault_record: FaultRecord, fault_seed: int, tmp_path):
    repository = Repository.init(str(tmp_path / "repo"))
    manifest_file = tmp_path / "repo" / "snapshots" / f"{SNAPSHOT_ID}.json"
    tally = Tally()
    inputs = st.one_of(
        st.binary(max_size=2048),
        st.lists(st.sampled_from(list(PRINTABLE)), max_size=512).map(bytes),
    )

    def check(data: bytes) -> None:
        tally.count("random bytes")
        manifest_file.write_bytes(data)
        with pytest.raises(RepositoryError):
            repository.load_snapshot(SNAPSHOT_ID)
        with pytest.raises(ValueError):
            catalog.decode_segment(data)
        try:
            packs.decode_header(data)
        except ValueError:
            pass
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            _fail(tally, fault_seed, "random bytes", f"{type(exc).__name__}: {exc}")

    explore(inputs, check, fault_seed, tally, fault_record)


# -- inventories

INVENTORY = Path(__file__).parents[2] / "examples" / "3pl-provider" / "inventory.yaml"
LAUGHS = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    b"%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n"
    % ((ord("a") + level + 1,) * 2 + (ord("a") + level,) * 9)
    for level in range(8)
)


@st.composite
def mutated_yaml(draw, text: bytes) -> tuple[str, bytes]:
    """Return (kind, YAML bytes): lines dropped, repeated, re-indented or replaced."""
    kind = draw(st.sampled_from(["bytes", "drop", "repeat", "indent", "value"]))
    if kind == "bytes":
        kind, data, _path = draw(mutated_bytes(text))
        return kind, data
    lines = text.split(b"\n")
    index = draw(st.integers(0, len(lines) - 1))
    if kind == "drop":
        del lines[index]
    elif kind == "repeat":
        lines.insert(index, lines[index])
    elif kind == "indent":
        lines[index] = b" " * draw(st.integers(1, 3)) + lines[index]
    else:
        head = lines[index].split(b":", 1)[0]
        value = draw(
            st.sampled_from(
                [
                    b"",
                    b"[]",
                    b"{}",
                    b"null",
                    b"-1",
                    b"1e999",
                    b"*nothing",
                    b"&x 1",
                    b"!!python/object:os.system",
                    b"'",
                    b"|",
                    b"9" * 5000,
                ]
            )
            | st.binary(max_size=20)
        )
        lines[index] = head + b": " + value
    return kind, b"\n".join(lines)


def test_inventory_mutations(fault_record: FaultRecord, fault_seed: int, tmp_path):
    from odoo_dr.review.inventory import InventoryError, load_inventory

    text = INVENTORY.read_bytes()
    path = tmp_path / "inventory.yaml"
    tally = Tally()

    def check(case: tuple[str, bytes]) -> None:
        kind, data = case
        tally.count(kind, hostile=kind != "valid")
        path.write_bytes(data)
        try:
            load_inventory(path)
        except InventoryError as exc:
            for problem in exc.problems:
                assert str(path) in problem, f"seed {fault_seed}: {problem}"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            _fail(tally, fault_seed, kind, f"raised {type(exc).__name__}: {exc}")

    explore(
        st.just(("valid", text)) | mutated_yaml(text),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(
            (
                "billion laughs",
                b"environments: []\nbomb:\n  " + LAUGHS.replace(b"\n", b"\n  "),
            ),
            ("billion laughs", LAUGHS),
            ("deep nesting", b"environments: " + b"[" * 100_000 + b"]" * 100_000),
            (
                "deep nesting",
                b"environments:\n"
                + b"".join(b" " * level + b"- \n" for level in range(0, 20_000, 1)),
            ),
            ("huge number", b"environments: []\ntiers: " + b"9" * 5000),
            ("huge number", b"environments: []\ntiers: 0x" + b"f" * 5000),
            ("sexagesimal", b"environments: []\ntiers: 1:30"),
            ("random", b"0"),
            ("random", b"1.5\n---\ntrue"),
            ("huge file", b"environments: []\n" + b"# padding\n" * 500_000),
            ("huge file", b"environments: ['" + b"x" * 5_000_000 + b"']\n"),
        ),
    )
