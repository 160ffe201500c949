"""Damaged repository objects and manifests, in a folder and on S3.

One repository is built per worker: four snapshots of two tenants (a database
changed between its two backups), a filestore journal of two segments and a drill
record, in packs of 32 KiB so that it has dozens of them. Each trial damages one
copy of it: a new folder, or a new prefix of a bucket of moto's S3 server, written
through boto3. The damage is a byte flipped, or the object truncated or deleted, in
a pack, an index file, a manifest, a catalog segment, a journal segment, a drill
record or config.json.

The test works out on its own which snapshots the damage breaks, from the pristine
repository's manifests, file indexes, journal segments and pack headers, parsed here
without odoo-dr's code: a damaged chunk breaks every snapshot (and journal) that
lists it, a pack truncated at byte N the chunks that end after N, a deleted pack all
of its chunks, any change to a manifest (or its deletion) its snapshot, since the
catalog recorded each manifest's SHA-256 when it was written. Damage to an index
file, a catalog segment or a drill record breaks nothing: packs describe themselves
and the manifests stay readable. `odoo-dr verify --read-data --json` must name exactly
those snapshots, restoring or drilling a broken one must fail cleanly and leave
nothing behind, and an intact one must still restore.

What cannot be known, and is counted in the notes rather than as lost: an
unencrypted journal segment has no checksum of its own. A flipped bit that leaves
valid JSON with another value in a field that names no chunk reads as a valid
document, and a deleted journal segment leaves a journal that looks like one where
it was never written. An encrypted repository seals every document, so there
any flipped byte is damage (see `test_encrypted_flips_are_damage`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import boto3
import pytest
import zstandard

from conftest import (
    BUCKET_REGION,
    PLAIN_BUCKET,
    clone_demo,
    database_exists,
    drop_leftovers,
    query,
    run_cli,
)
from faults.conftest import FaultRecord, full_scale, trials

PACK_SIZE = 32 * 1024
TENANTS = ("alpha", "beta")
PASSPHRASE = "corruption test passphrase"
# The parts of the repository a trial damages, and the damage each can take.
KINDS = {
    "pack": ("flip", "truncate", "delete"),
    "index": ("flip", "truncate", "delete"),
    "manifest": ("flip", "truncate", "delete"),
    "catalog": ("flip", "truncate", "delete"),
    "journal": ("flip", "truncate", "delete"),
    "drill": ("flip", "truncate", "delete"),
    "config": ("flip", "truncate", "delete"),
}
# Packs are most of a repository's bytes, so they get about half of the trials.
WEIGHTS = {"pack": 6, "manifest": 2, "journal": 1, "index": 1, "catalog": 1}
PREFIXES = {
    "pack": "packs/",
    "index": "index/",
    "manifest": "snapshots/",
    "catalog": "catalog/",
    "journal": "journal/",
    "drill": "drills/",
}
JOURNAL = "filestore journal"
# A traceback, or the one line odoo-dr prints for an exception it did not expect.
CRASH = re.compile(r"Traceback|error: unexpected")
# Words of the error that a restore or drill of a broken snapshot prints.
CLEAR_ERROR = re.compile(r"damaged|missing|truncated|unreadable|could not be read")


def category(key: str) -> str | None:
    if key == "config.json":
        return "config"
    for name, prefix in PREFIXES.items():
        if key.startswith(prefix) and not key.endswith("/"):
            return name
    return None


# -- the pristine repository, read without odoo-dr


def pack_header(data: bytes) -> tuple[int, list[list]]:
    """Return a pack's header length and its blob entries [id, offset, length, size]."""
    magic, length = struct.unpack_from("<II", data)
    assert magic == 0x184D2A50
    payload = json.loads(data[8 : 8 + length])
    return 8 + length, payload["blobs"]


def unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@dataclass
class Pristine:
    """The pristine repository's files, and what each snapshot and journal needs."""

    folder: Path
    files: dict[str, bytes]
    # Snapshot id, or JOURNAL, to the chunks it needs.
    units: dict[str, set[str]] = field(default_factory=dict)
    # Chunk id to (pack, offset, length); pack id to its header's length.
    chunks: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    headers: dict[str, int] = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)

    def read(self) -> None:
        for key, data in self.files.items():
            if key.startswith("packs/"):
                length, entries = pack_header(data)
                pack = key.rsplit("/", 1)[-1]
                self.headers[pack] = length
                for blob_id, offset, size, _plain in entries:
                    self.chunks[blob_id] = (pack, offset, size)
        for key, data in self.files.items():
            if key.startswith("snapshots/"):
                manifest = json.loads(data)
                self.manifests[manifest["id"]] = manifest
                needed = {c for item in manifest["dump"] for c in item["chunks"]}
                index = manifest["filestore"]["index"]["chunks"]
                needed.update(index)
                listing = json.loads(b"".join(self.chunk(c) for c in index))
                needed.update(c for entry in listing for c in entry["chunks"])
                self.units[manifest["id"]] = needed
            elif key.startswith("journal/"):
                segment = json.loads(data)
                needed = {c for entry in segment["new"] for c in entry["chunks"]}
                self.units.setdefault(JOURNAL, set()).update(needed)
        # A tenant's latest snapshot is the one with the latest snapshot time, and
        # of equal times the last by id: two backups may share an id's second.
        by_time = sorted(
            self.manifests.items(),
            key=lambda item: (
                datetime.fromisoformat(item[1]["snapshot_time"]),
                item[0],
            ),
        )
        for snapshot_id, manifest in by_time:
            self.latest[manifest["tenant"]] = snapshot_id

    def chunk(self, blob_id: str) -> bytes:
        pack, offset, length = self.chunks[blob_id]
        data = self.files[f"packs/{pack[:2]}/{pack}"]
        return unzstd(data[offset : offset + length])

    def breaking(self, chunks: set[str]) -> set[str]:
        return {unit for unit, needed in self.units.items() if needed & chunks}


def read_tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and category(str(path.relative_to(folder))) is not None
    }


def ok(result) -> None:
    assert result.returncode == 0, result.stderr


def add_file(dbname: str, root: Path, content: bytes) -> None:
    """Give database `dbname` one more attachment and its file."""
    import hashlib

    sha1 = hashlib.sha1(content).hexdigest()
    store_fname = f"{sha1[:2]}/{sha1}"
    path = root / dbname / store_fname
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    query(
        dbname,
        "INSERT INTO ir_attachment (name, type, store_fname, checksum, file_size,"
        " res_model, res_id) VALUES ('added.bin', 'binary', %s, %s, %s,"
        " 'res.partner', 3)",
        (store_fname, sha1, len(content)),
    )


def change_database(dbname: str, root: Path) -> None:
    query(dbname, "UPDATE res_partner SET name = name || ' (moved)' WHERE id % 4 = 0")
    add_file(dbname, root, os.urandom(50_000))


def set_pack_size(folder: Path) -> None:
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["pack_size"] = PACK_SIZE
    config_path.write_text(json.dumps(config, indent=2))


@pytest.fixture(scope="module")
def pristine(settings, small_template, tmp_path_factory) -> Pristine:
    """Build the repository the trials damage copies of, once per worker."""
    folder = tmp_path_factory.mktemp("corruption")
    root = folder / "filestore"
    repo = folder / "repo"
    names = [f"odoo_dr_corrupt_{uuid.uuid4().hex[:6]}" for _tenant in TENANTS]
    try:
        for name in names:
            clone_demo(settings, small_template, name, root)
        ok(run_cli("init", "--repo", str(repo)))
        set_pack_size(repo)
        common = ("--repo", str(repo), "--filestore-root", str(root))
        for name, tenant in zip(names, TENANTS, strict=True):
            ok(run_cli("backup", name, "--tenant", tenant, *common))
            change_database(name, root)
            ok(run_cli("backup", name, "--tenant", tenant, *common))
        sync = ("filestore", "sync", names[0], "--tenant", TENANTS[0], *common)
        ok(run_cli(*sync))
        add_file(names[0], root, os.urandom(40_000))
        ok(run_cli(*sync))
        if full_scale():
            # A drill takes seconds: the short form damages no drill record.
            drill = (
                "drill",
                TENANTS[1],
                "--repo",
                str(repo),
                "--temp-dir",
                str(folder),
            )
            ok(run_cli(*drill))
    finally:
        drop_leftovers(names)
    base = Pristine(repo, read_tree(repo))
    base.read()
    assert len(base.manifests) == 4
    assert JOURNAL in base.units
    assert len(base.headers) > 10
    return base


# -- copies of the repository


class FolderCopy:
    def __init__(self, base: Pristine, folder: Path) -> None:
        shutil.copytree(base.folder, folder)
        self.folder = folder
        self.location = str(folder)

    def read(self, key: str) -> bytes:
        return (self.folder / key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        (self.folder / key).write_bytes(data)

    def delete(self, key: str) -> None:
        (self.folder / key).unlink()


class BucketCopy:
    def __init__(self, base: Pristine, client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.location = f"s3://{PLAIN_BUCKET}/{prefix}"
        for key, data in base.files.items():
            self.write(key, data)
        self.write("README.md", (base.folder / "README.md").read_bytes())

    def read(self, key: str) -> bytes:
        answer = self.client.get_object(Bucket=PLAIN_BUCKET, Key=f"{self.prefix}/{key}")
        return answer["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=PLAIN_BUCKET, Key=f"{self.prefix}/{key}", Body=data
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=PLAIN_BUCKET, Key=f"{self.prefix}/{key}")


# -- damage and what it breaks


@dataclass
class Damage:
    key: str
    kind: str
    part: str
    position: int = 0
    mask: int = 0
    before: bytes = b""
    after: bytes | None = None

    def __str__(self) -> str:
        if self.kind == "flip":
            return f"flip {self.mask:#04x} at byte {self.position} of {self.key}"
        if self.kind == "truncate":
            return f"truncate {self.key} to {self.position} bytes"
        return f"delete {self.key}"


def choose_damage(
    rng, files: dict[str, bytes], parts: dict[str, int], flips_only: bool = False
) -> Damage:
    present = {category(key) for key in files}
    names = sorted(name for name in parts if name in present)
    part = rng.choices(names, weights=[parts[name] for name in names])[0]
    key = rng.choice(sorted(k for k in files if category(k) == part))
    kind = "flip" if flips_only else rng.choice(KINDS[part])
    data = files[key]
    damage = Damage(key, kind, part, before=data)
    if kind == "flip":
        damage.position = rng.randrange(len(data))
        # Half of the flips change one bit, as bit rot does. The others change
        # several bits of the byte.
        damage.mask = (
            1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
        )
        changed = bytearray(data)
        changed[damage.position] ^= damage.mask
        damage.after = bytes(changed)
    elif kind == "truncate":
        damage.position = rng.randrange(len(data))
        damage.after = data[: damage.position]
    return damage


def apply(copy, damage: Damage) -> None:
    if damage.after is None:
        copy.delete(damage.key)
    else:
        copy.write(damage.key, damage.after)


@dataclass
class Expected:
    """What verify must report: units it must name, may name, and its exit codes."""

    broken: set[str]
    may: set[str] = field(default_factory=set)
    codes: frozenset[int] = frozenset({5})
    gone: set[str] = field(default_factory=set)
    # Why verify cannot see the damage, when it cannot.
    unknowable: str | None = None


def parsed(data: bytes) -> dict | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def expect(base: Pristine, damage: Damage) -> Expected:
    part = damage.part
    if part == "pack":
        pack = damage.key.rsplit("/", 1)[-1]
        held = {c for c, (p, _o, _n) in base.chunks.items() if p == pack}
        if damage.kind == "delete":
            broken = base.breaking(held)
            return Expected(broken, codes=frozenset({5 if broken else 0}))
        if damage.kind == "truncate":
            cut = {
                c
                for c in held
                if base.chunks[c][1] + base.chunks[c][2] > damage.position
            }
            return Expected(base.breaking(cut))
        if damage.position < base.headers[pack]:
            # The index still places every chunk, so a damaged header breaks
            # nothing, but the pack is reported damaged.
            return Expected(set())
        hit = {
            c
            for c in held
            if base.chunks[c][1]
            <= damage.position
            < base.chunks[c][1] + base.chunks[c][2]
        }
        assert len(hit) == 1, damage
        return Expected(base.breaking(hit))
    if part in ("index", "catalog", "drill"):
        return Expected(set(), codes=frozenset({0}))
    if part == "config":
        # A damaged config.json stops every command (exit 2) unless the damage
        # leaves a valid configuration.
        return Expected(set(), codes=frozenset({0, 2}))
    if part == "manifest":
        # The catalog recorded every manifest's SHA-256, and no prune removed one.
        snapshot_id = damage.key.removeprefix("snapshots/").removesuffix(".json")
        return Expected({snapshot_id})
    assert part == "journal"
    if damage.kind == "delete":
        return Expected(
            set(), codes=frozenset({0}), unknowable="deleted journal segment"
        )
    return expect_journal(json.loads(damage.before), damage)


def expect_journal(original: dict, damage: Damage) -> Expected:
    """Return what a damaged journal segment breaks: the journal, when the damage
    is visible."""
    after = parsed(damage.after or b"")
    if after is None:
        return Expected({JOURNAL})
    if after == original:
        # Whitespace changed into whitespace: the same document.
        return Expected(set(), codes=frozenset({0}))
    changed = [e.get("chunks") for e in after.get("new", [])] != [
        e["chunks"] for e in original["new"]
    ] or after.get("tenant") != original["tenant"]
    if changed:
        return Expected({JOURNAL})
    return Expected(
        set(),
        may={JOURNAL},
        codes=frozenset({0, 5}),
        unknowable="metadata of valid JSON",
    )


def named(report: dict) -> set[str]:
    found = {item["id"] for item in report["snapshots"] if not item["ok"]}
    found.update(report["unreadable_manifests"])
    if any(not item["ok"] for item in report["journals"]):
        found.add(JOURNAL)
    return found


# -- a trial


@dataclass
class Trial:
    base: Pristine
    copy: object
    damage: Damage
    expected: Expected
    seed: int
    work: Path

    def say(self, what: str) -> str:
        return f"{what}; damage: {self.damage}; seed {self.seed}"


def check_verify(trial: Trial, record: FaultRecord) -> dict | None:
    result = run_cli("verify", "--read-data", "--json", "--repo", trial.copy.location)
    expected = trial.expected
    assert not CRASH.search(result.stderr), trial.say(result.stderr)
    assert result.returncode in expected.codes, trial.say(
        f"exit {result.returncode}: {result.stderr[-2000:]}"
    )
    if result.returncode == 2:
        assert trial.damage.part == "config", trial.say(result.stderr)
        assert "config.json" in result.stderr, trial.say(result.stderr)
        return None
    report = json.loads(result.stdout)
    found = named(report)
    missed = expected.broken - found
    wrong = found - expected.broken - expected.may
    if missed or wrong:
        record.lost += len(missed)
    assert not missed, trial.say(f"verify missed {missed}: {report}")
    assert not wrong, trial.say(f"verify named intact {wrong}: {report}")
    listed = {item["id"] for item in report["snapshots"]}
    listed.update(report["unreadable_manifests"])
    assert listed == set(trial.base.manifests) - expected.gone, trial.say(str(report))
    return report


def check_refused(trial: Trial, snapshot_id: str, drill: bool) -> None:
    """Check that a restore (or drill) of a broken snapshot fails, leaving nothing."""
    target = f"odoo_dr_broken_{uuid.uuid4().hex[:8]}"
    root = trial.work / f"restore-{target}"
    root.mkdir(parents=True)
    try:
        if drill:
            result = run_cli(
                "drill", snapshot_id, "--repo", trial.copy.location,
                "--temp-dir", str(root),
            )  # fmt: skip
            codes = {2, 5}
        else:
            result = run_cli(
                "restore", snapshot_id, "--target", target, "--copy",
                "--filestore-root", str(root), "--repo", trial.copy.location,
            )  # fmt: skip
            codes = {2, 4}
        what = "drill" if drill else "restore"
        assert not CRASH.search(result.stderr), trial.say(result.stderr)
        assert result.returncode in codes, trial.say(
            f"{what} of {snapshot_id} exit {result.returncode}: {result.stderr[-2000:]}"
        )
        output = result.stdout + result.stderr
        assert CLEAR_ERROR.search(output), trial.say(output)
        assert not database_exists(target), trial.say(f"{target} left")
        assert not list(root.iterdir()), trial.say(
            f"{what} left {list(root.iterdir())}"
        )
    finally:
        drop_leftovers([target])


def check_restores(trial: Trial, snapshot_id: str) -> None:
    """Check that an intact snapshot restores with its manifest's row counts."""
    target = f"odoo_dr_intact_{uuid.uuid4().hex[:8]}"
    root = trial.work / f"restore-{target}"
    root.mkdir(parents=True)
    try:
        result = run_cli(
            "restore", snapshot_id, "--target", target, "--copy",
            "--filestore-root", str(root), "--repo", trial.copy.location,
        )  # fmt: skip
        assert result.returncode == 0, trial.say(result.stderr[-2000:])
        counts = trial.base.manifests[snapshot_id]["row_counts"]
        for table in ("res_partner", "ir_attachment"):
            (count,) = query(target, f"SELECT count(*) FROM {table}")[0]
            assert count == counts[table], trial.say(f"{table} of {snapshot_id}")
    finally:
        drop_leftovers([target])


def check_catalog(trial: Trial) -> None:
    """Check that a damaged catalog chooses the same snapshots, and that
    rebuild-catalog repairs it."""
    from odoo_dr.repository import catalog
    from odoo_dr.repository.store import Repository

    repository = Repository.open(trial.copy.location)
    for tenant, latest in trial.base.latest.items():
        chosen = repository.resolve_snapshot(tenant).id
        assert chosen == latest, trial.say(f"tenant {tenant} resolved to {chosen}")
        ids = {item.id for item in repository.snapshot_summaries(tenant)}
        mine = {i for i, m in trial.base.manifests.items() if m["tenant"] == tenant}
        assert ids == mine, trial.say(f"tenant {tenant} lists {ids}")
    ok(run_cli("repository", "rebuild-catalog", "--repo", trial.copy.location))
    contents = catalog.read_catalog(Repository.open(trial.copy.location))
    assert not contents.damaged, trial.say(str(contents.damaged))
    assert set(contents.entries) == set(trial.base.manifests), trial.say("rebuilt")


def run_trials(
    base, make_copy, count, rng, seed, record, work: Path, sealed: bool = False
) -> None:
    restores = 0
    parts = WEIGHTS | {"drill": 1, "config": 1}
    for number in range(count):
        damage = choose_damage(rng, base.files, parts, flips_only=sealed)
        copy = make_copy(number)
        apply(copy, damage)
        expected = expect_sealed(base, damage) if sealed else expect(base, damage)
        trial = Trial(base, copy, damage, expected, seed, work)
        record.trials += 1
        record.faults += 1
        record.inputs += 1
        if check_verify(trial, record) is None:
            # config.json unusable: every command stops with its name (exit 2).
            continue
        if trial.expected.unknowable:
            record.notes.append(
                f"not detectable ({trial.expected.unknowable}): {damage}"
            )
        broken = sorted(trial.expected.broken - {JOURNAL})
        if broken:
            victim = rng.choice(broken)
            check_refused(trial, victim, drill=False)
            if full_scale():
                # A drill takes seconds more: the short form only restores.
                check_refused(trial, victim, drill=True)
        if damage.part == "catalog":
            check_catalog(trial)
        intact = sorted(
            set(base.manifests)
            - trial.expected.broken
            - trial.expected.may
            - trial.expected.gone
        )
        # A restore takes seconds: one trial in four, and every catalog, index or
        # manifest trial in the full form, restores an intact snapshot.
        wanted = number % 4 == 0 or (
            full_scale() and damage.part in ("index", "catalog", "manifest")
        )
        if intact and wanted:
            check_restores(trial, rng.choice(intact))
            restores += 1
    record.notes.append(f"{restores} intact snapshots restored")


def test_local_damage_is_found(
    pristine, tmp_path, fault_random, fault_seed, fault_record
):
    def make_copy(number: int) -> FolderCopy:
        return FolderCopy(pristine, tmp_path / f"trial-{number}")

    run_trials(
        pristine, make_copy, trials(2, 100), fault_random, fault_seed, fault_record,
        tmp_path,
    )  # fmt: skip
    assert fault_record.lost == 0


def test_s3_damage_is_found(
    pristine, s3_endpoint, monkeypatch, tmp_path, fault_random, fault_seed, fault_record
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=BUCKET_REGION)
    run = uuid.uuid4().hex[:8]

    def make_copy(number: int) -> BucketCopy:
        return BucketCopy(pristine, client, f"corruption-{run}-{number}")

    run_trials(
        pristine, make_copy, trials(1, 100), fault_random, fault_seed, fault_record,
        tmp_path,
    )  # fmt: skip
    assert fault_record.lost == 0


def flip_json_digit(data: bytes, after: bytes) -> bytes:
    """Change the first digit after `after` in a JSON document, keeping it valid."""
    position = data.index(after) + len(after)
    while not chr(data[position]).isdigit():
        position += 1
    changed = bytearray(data)
    changed[position] = ord("1") if data[position] != ord("1") else ord("2")
    return bytes(changed)


def test_index_value_flip_breaks_nothing(pristine, tmp_path):
    """An index file whose JSON stays valid with a wrong chunk id is skipped."""
    copy = FolderCopy(pristine, tmp_path / "repo")
    key = sorted(k for k in pristine.files if k.startswith("index/"))[0]
    data = pristine.files[key]
    # A digit of the id of the first blob of the first pack.
    damaged = flip_json_digit(data, b'"blobs":[["')
    assert json.loads(damaged) != json.loads(data)
    copy.write(key, damaged)
    result = run_cli("verify", "--read-data", "--json", "--repo", copy.location)
    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads(result.stdout)
    assert named(report) == set()
    assert list(report["damaged_index_files"]) == [key]


def test_catalog_value_flip_keeps_choice(pristine, tmp_path):
    """A catalog segment whose JSON stays valid with another tenant is ignored."""
    from odoo_dr.repository.store import Repository

    copy = FolderCopy(pristine, tmp_path / "repo")
    latest = pristine.latest["alpha"]
    for key in sorted(k for k in pristine.files if k.startswith("catalog/")):
        data = pristine.files[key]
        entry = data.find(b'"id":"' + latest.encode())
        if entry < 0:
            continue
        tenant = data.index(b'"tenant":"alpha"', entry) + len(b'"tenant":"')
        changed = bytearray(data)
        changed[tenant] ^= 0x02  # "alpha" becomes "clpha"
        copy.write(key, bytes(changed))
    repository = Repository.open(copy.location)
    assert repository.resolve_snapshot("alpha").id == latest
    tenants = {item.id: item.tenant for item in repository.snapshot_summaries()}
    assert tenants[latest] == "alpha"


# -- an encrypted repository


def expect_sealed(base: Pristine, damage: Damage) -> Expected:
    """Return what a flipped byte in an encrypted repository breaks.

    Every document is sealed (AES-256-GCM), so unlike in an unencrypted one a
    flip cannot leave a valid document with another value.
    """
    if damage.part == "manifest":
        return Expected({damage.key.removeprefix("snapshots/").removesuffix(".json")})
    if damage.part == "journal":
        return Expected({JOURNAL})
    return expect(base, damage)


def read_sealed(base: Pristine, secret: bytes) -> None:
    """Fill in what each snapshot and the journal need, read with the key.

    The headers of sealed packs can only be read with the repository's key, so
    this uses odoo-dr's reader. What the damage breaks is still decided here.
    """
    from odoo_dr.repository.journal import JournalReader
    from odoo_dr.repository.manifest import FilestoreEntry
    from odoo_dr.repository.store import Repository

    repository = Repository.open(str(base.folder), secret)
    for blob_id, where in repository.blobs.index.locations().items():
        base.chunks[blob_id] = (where.pack, where.offset, where.length)
    for key, data in base.files.items():
        if key.startswith("packs/"):
            base.headers[key.rsplit("/", 1)[-1]] = (
                8 + struct.unpack_from("<I", data, 4)[0]
            )
    for manifest in repository.list_snapshots():
        needed = {c for item in manifest.dump for c in item.chunks}
        needed.update(manifest.filestore.index.chunks)
        listing = json.loads(repository.blobs.read_blob(manifest.filestore.index))
        for entry in listing:
            needed.update(FilestoreEntry.model_validate(entry).chunks)
        base.units[manifest.id] = needed
        base.manifests[manifest.id] = manifest.model_dump(mode="json")
        base.latest[manifest.tenant] = manifest.id
    state = JournalReader(repository, TENANTS[0]).load()
    base.units[JOURNAL] = {c for entry in state.entries() for c in entry.chunks}


@pytest.fixture(scope="module")
def sealed(settings, small_template, tmp_path_factory) -> Pristine:
    """An encrypted repository: two snapshots of one database and a journal."""
    folder = tmp_path_factory.mktemp("sealed")
    root = folder / "filestore"
    repo = folder / "repo"
    name = f"odoo_dr_sealed_{uuid.uuid4().hex[:6]}"
    env = {"ODOO_DR_PASSPHRASE": PASSPHRASE}
    try:
        clone_demo(settings, small_template, name, root)
        ok(run_cli("init", "--encrypt", "--repo", str(repo), env=env))
        set_pack_size(repo)
        common = ("--repo", str(repo), "--filestore-root", str(root))
        ok(run_cli("backup", name, "--tenant", TENANTS[0], *common, env=env))
        change_database(name, root)
        ok(run_cli("backup", name, "--tenant", TENANTS[0], *common, env=env))
        sync = ("filestore", "sync", name, "--tenant", TENANTS[0], *common)
        ok(run_cli(*sync, env=env))
    finally:
        drop_leftovers([name])
    base = Pristine(repo, read_tree(repo))
    read_sealed(base, PASSPHRASE.encode())
    assert len(base.manifests) == 2
    return base


def test_encrypted_flips_are_damage(
    sealed, monkeypatch, tmp_path, fault_random, fault_seed, fault_record
):
    monkeypatch.setenv("ODOO_DR_PASSPHRASE", PASSPHRASE)
    check_damaged_key_slot(sealed, tmp_path / "key-slot")
    fault_record.faults += 1
    fault_record.notes.append("a damaged key slot is named with config.json")

    def make_copy(number: int) -> FolderCopy:
        return FolderCopy(sealed, tmp_path / f"trial-{number}")

    run_trials(
        sealed, make_copy, trials(1, 40), fault_random, fault_seed, fault_record,
        tmp_path, sealed=True,
    )  # fmt: skip
    assert fault_record.lost == 0


def check_damaged_key_slot(sealed: Pristine, folder: Path) -> None:
    """Check that a key slot damaged in config.json is named as a possible cause."""
    copy = FolderCopy(sealed, folder)
    config = json.loads(copy.read("config.json"))
    wrapped = config["key_slots"][0]["wrapped_key"]
    config["key_slots"][0]["wrapped_key"] = (
        "B" if wrapped[0] != "B" else "C"
    ) + wrapped[1:]
    copy.write("config.json", json.dumps(config, indent=2).encode())
    env = {"ODOO_DR_PASSPHRASE": PASSPHRASE}
    result = run_cli("verify", "--json", "--repo", copy.location, env=env)
    assert result.returncode == 2, result.stderr
    assert "put back config.json" in result.stderr
    assert not CRASH.search(result.stderr)
