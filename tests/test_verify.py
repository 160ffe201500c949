"""`odoo-dr verify` on real backups: each kind of damage, rewrites, subsets.

Every case damages a copy of one repository holding two snapshots of the same
database, so most blobs are shared and each problem must name both snapshots.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import shutil
import uuid
from pathlib import Path

import pytest

from conftest import blob_path, clone_demo, damage_blob, drop_leftovers, run_cli
from odoo_dr.cli.verify import _as_json
from odoo_dr.engine.subset import SPACE, parse_subset
from odoo_dr.engine.verify import verify
from odoo_dr.errors import RejectedError
from odoo_dr.repository.store import Repository
from test_hardening import backup


def small_pack_repository(path: Path) -> Repository:
    """Return a new repository whose packs are 32 KiB, so a backup makes dozens."""
    Repository.init(str(path))
    config_path = path / "config.json"
    config = json.loads(config_path.read_text())
    config["pack_size"] = 32 * 1024
    config_path.write_text(json.dumps(config))
    return Repository.open(str(path))


def run_verify(cli, repository: Repository, *extra: str) -> tuple[int, dict]:
    result = cli("verify", "--json", "--repo", repository.location, *extra)
    assert result.returncode in {0, 5}, result.stderr
    return result.returncode, json.loads(result.stdout)


def verify_in_process(repository: Repository, *extra: str) -> tuple[int, dict]:
    """Return what `odoo-dr verify --json` would: its exit code and its JSON.

    It runs in this process, to keep the many cases fast on a busy machine.
    """
    report = verify(
        Repository.open(repository.location), read_data="--read-data" in extra
    )
    return (0 if report.ok else 5), _as_json(report)


def problems_of(report: dict) -> dict[str, list[str]]:
    return {item["id"]: item["problems"] for item in report["snapshots"]}


def shared_table_chunk(repository: Repository, first: str) -> tuple[str, str]:
    """Return a dump file of `first` other than toc.dat, and its first chunk."""
    manifest = repository.find_snapshot(first)
    table = max(
        (item for item in manifest.dump if item.name != "toc.dat"),
        key=lambda item: item.size,
    )
    return table.name, table.chunks[0]


@pytest.fixture(scope="module")
def pristine_two_snapshots(
    settings, small_template, tmp_path_factory
) -> tuple[Repository, str, str]:
    """A repository with two snapshots of one database, made once per module.

    Tests damage only copies of it (see `two_snapshots`).
    """
    folder = tmp_path_factory.mktemp("pristine")
    filestore_root = folder / "filestore"
    name = f"odoo_dr_verify_{uuid.uuid4().hex[:6]}"
    try:
        summary = clone_demo(settings, small_template, name, filestore_root)
        pristine = small_pack_repository(folder / "repo")
        first = backup(run_cli, pristine, summary.database, filestore_root)
        second = backup(run_cli, pristine, summary.database, filestore_root)
    finally:
        drop_leftovers([name])
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    return pristine, first.stdout.strip(), second.stdout.strip()


@pytest.fixture
def two_snapshots(pristine_two_snapshots, tmp_path):
    """The pristine repository's two snapshots; returns a factory of its copies."""
    pristine, first, second = pristine_two_snapshots
    assert first and second
    copies = iter(range(100))

    def copy() -> Repository:
        target = tmp_path / f"case-{next(copies)}"
        shutil.copytree(pristine.location, target)
        return Repository.open(str(target))

    return copy, first, second


def test_verify_reports_each_damage(cli, two_snapshots):
    copy, first, second = two_snapshots
    both = {first, second}

    clean = copy()
    code, report = verify_in_process(clean, "--read-data")
    assert code == 0, report
    assert report["packs_read"] == report["packs_total"] > 10
    assert all(not problems for problems in problems_of(report).values())

    # A missing pack: the structure check alone finds it.
    repository = copy()
    name, chunk = shared_table_chunk(repository, first)
    pack = repository.blobs.location(chunk).pack
    blob_path(repository, chunk)[0].unlink()
    code, report = run_verify(cli, repository)
    assert code == 5
    expected = f"dump file {name}: object {chunk} missing (its pack {pack} is gone)"
    for snapshot_id in both:
        assert expected in problems_of(report)[snapshot_id]

    # A truncated pack: its size shows it without reading, as in restic's check,
    # and reading names the pack and blobs.
    repository = copy()
    name, chunk = shared_table_chunk(repository, first)
    path, offset, length = blob_path(repository, chunk)
    with path.open("r+b") as handle:
        handle.truncate(offset + length // 2)
    code, report = verify_in_process(repository)
    assert code == 5
    structural = (
        f"dump file {name}: object {chunk} truncated (pack {path.name} has "
        f"{offset + length // 2:,} bytes, the object ends at byte {offset + length:,})"
    )
    for snapshot_id in both:
        assert structural in problems_of(report)[snapshot_id]
    code, report = verify_in_process(repository, "--read-data")
    assert code == 5
    pack = path.name
    assert "its bytes do not match its name" in report["damaged_packs"][pack]
    assert "break 2 snapshot(s)" in report["damaged_packs"][pack]
    expected = (
        f"dump file {name}: object {chunk} truncated (pack {pack} ends at byte "
        f"{offset + length // 2})"
    )
    for snapshot_id in both:
        assert expected in problems_of(report)[snapshot_id]

    # A flipped byte in a filestore file's blob.
    repository = copy()
    manifest = repository.find_snapshot(first)
    entry = json.loads(repository.blobs.read_blob(manifest.filestore.index))[0]
    damage_blob(repository, entry["chunks"][0], flip=0x01)
    code, report = verify_in_process(repository, "--read-data")
    assert code == 5
    for snapshot_id in both:
        problems = problems_of(report)[snapshot_id]
        assert problems == [
            f"filestore file {entry['path']}: object {entry['chunks'][0]} damaged "
            "(decompression error: Restored data doesn't match checksum)"
        ]

    # A damaged index file: named, and its packs are read from their headers.
    repository = copy()
    index_files = sorted((Path(repository.location) / "index").iterdir())
    index_files[0].write_text('{"format": "odoo-dr-index", "packs": [')
    code, report = verify_in_process(repository, "--read-data")
    assert code == 0, report
    assert list(report["damaged_index_files"]) == [f"index/{index_files[0].name}"]
    assert report["unindexed_packs"] > 0

    # A damaged manifest: its snapshot is named as unreadable, the other is fine.
    repository = copy()
    (Path(repository.location) / "snapshots" / f"{first}.json").write_text("{")
    code, report = verify_in_process(repository)
    assert code == 5
    assert list(report["unreadable_manifests"]) == [first]
    assert problems_of(report) == {second: []}

    # A manifest deleted, not pruned: the catalog still lists it.
    repository = copy()
    (Path(repository.location) / "snapshots" / f"{first}.json").unlink()
    code, report = verify_in_process(repository)
    assert code == 5
    assert list(report["unreadable_manifests"]) == [first]
    assert "is missing" in report["unreadable_manifests"][first]
    assert "no prune removed it" in report["unreadable_manifests"][first]
    assert problems_of(report) == {second: []}

    # A value changed in valid JSON: the SHA-256 the catalog recorded differs.
    repository = copy()
    path = Path(repository.location) / "snapshots" / f"{first}.json"
    changed = json.loads(path.read_bytes())
    changed["row_counts"]["res_partner"] += 1
    path.write_text(json.dumps(changed, indent=1))
    code, report = verify_in_process(repository)
    assert code == 5
    assert list(report["unreadable_manifests"]) == [first]
    assert "its SHA-256 differs from" in report["unreadable_manifests"][first]
    # Accepting the manifests as they are ends the report.
    repository.rebuild_catalog()
    code, report = verify_in_process(repository)
    assert code == 0, report

    # A missing file index: the snapshots cannot even list their files.
    repository = copy()
    index_blob = repository.find_snapshot(first).filestore.index.chunks[0]
    pack = repository.blobs.location(index_blob).pack
    blob_path(repository, index_blob)[0].unlink()
    code, report = verify_in_process(repository)
    assert code == 5
    for snapshot_id in both:
        problems = problems_of(report)[snapshot_id]
        assert problems[0].startswith("file index unreadable, so its files cannot")
        assert (
            f"file index: object {index_blob} missing (its pack {pack} is gone)"
            in problems
        )


def test_verify_after_rewrite(cli, tmp_path, odoo_database, filestore_root):
    """A damaged blob written again by a later backup breaks no snapshot any more."""
    summary = odoo_database()
    repository = small_pack_repository(tmp_path / "repo")
    first = backup(cli, repository, summary.database, filestore_root).stdout.strip()
    name, chunk = shared_table_chunk(repository, first)
    old_pack = repository.blobs.location(chunk).pack
    damage_blob(repository, chunk, flip=0x01)
    code, report = run_verify(cli, repository, "--read-data")
    assert code == 5
    assert problems_of(report)[first][0].startswith(f"dump file {name}: object {chunk}")

    rewrite = backup(cli, repository, summary.database, filestore_root)
    assert rewrite.returncode == 0, rewrite.stderr
    assert f"object {chunk} is damaged; rewriting it" in rewrite.stderr
    second = rewrite.stdout.strip()

    code, report = run_verify(cli, repository, "--read-data")
    assert code == 5
    assert problems_of(report) == {first: [], second: []}
    message = report["damaged_packs"][old_pack]
    assert "1 damaged object(s) that no snapshot needs from this pack" in message
    assert "no snapshot is broken by it" in message
    assert "break" not in message.replace("broken", "")
    structure, report = run_verify(cli, repository)
    assert structure == 0, report
    text = cli("verify", "--read-data", "--repo", repository.location)
    assert f"pack {old_pack} is damaged" in text.stdout
    assert "DAMAGED" not in text.stdout


def expected_packs(packs: set[str], percent: int, day: int) -> set[str]:
    """The packs day `day` reads, computed here from the documented rule."""
    width = math.ceil(percent * SPACE / 100)
    start = day * width % SPACE
    return {pack for pack in packs if (int(pack[:8], 16) - start) % SPACE < width}


def test_verify_rolling_subset(cli, two_snapshots):
    copy, first, _second = two_snapshots
    repository = copy()
    packs = {path.name for path in (Path(repository.location) / "packs").rglob("*")
             if path.is_file()}  # fmt: skip
    # The pack of a damaged blob is reported on exactly the days that read it.
    _name, chunk = shared_table_chunk(repository, first)
    damaged_pack = repository.blobs.location(chunk).pack
    damage_blob(repository, chunk, flip=0x01)

    # Twenty days of 5%, through the engine to keep the test fast.
    day0 = 20426  # 2025-12-04
    covered: set[str] = set()
    for day in range(day0, day0 + 20):
        subset = parse_subset("5%", str(day))
        report = verify(Repository.open(repository.location), subset=subset)
        expected = expected_packs(packs, 5, day)
        covered |= expected
        assert report.packs_read == len(expected), day
        assert report.packs_total == len(packs)
        assert (damaged_pack in report.damaged_packs) == (damaged_pack in expected)
        assert report.ok == (damaged_pack not in expected)
    assert covered == packs

    # The command line: a day given as a date, its exit code, then slices.
    hit = next(day for day in range(day0, day0 + 20)
               if damaged_pack in expected_packs(packs, 5, day))  # fmt: skip
    date = (datetime.date(1970, 1, 1) + datetime.timedelta(days=hit)).isoformat()
    code, report = run_verify(cli, repository, "--read-data-subset", "5",
                              "--subset-seed", date)  # fmt: skip
    assert code == 5
    assert report["packs_read"] == len(expected_packs(packs, 5, hit))
    assert report["subset"].startswith(f"5% for day {hit} ")
    assert damaged_pack in report["damaged_packs"]

    halves = [
        verify(repository, subset=parse_subset(part)).packs_read
        for part in ("1/2", "2/2")
    ]
    assert sum(halves) == len(packs)


@pytest.mark.parametrize("text", ["0%", "101%", "3/2", "0/2", "half", "-5%", ""])
def test_subset_rejects_values(text):
    with pytest.raises(RejectedError, match="invalid --read-data-subset"):
        parse_subset(text)


def test_subset_rejects_seed():
    with pytest.raises(RejectedError, match="invalid --subset-seed"):
        parse_subset("5%", "yesterday")


@pytest.mark.parametrize(
    "extra",
    [
        ("--read-data-subset", "5%", "--read-data"),
        ("--subset-seed", "3"),
        ("--read-data-subset", "7/3"),
    ],
)
def test_verify_subset_options(cli, repository, extra):
    result = cli("verify", "--repo", repository.location, *extra)
    assert result.returncode == 2, result.stderr
    assert "hint:" in result.stderr


def test_subset_covers_in_stated_days():
    ids = [hashlib.sha256(str(number).encode()).hexdigest() for number in range(2000)]
    for percent in ("5", "3.4", "10", "33", "100"):
        days = math.ceil(100 / float(percent))
        for first_day in (0, 20426):
            covered = set()
            for day in range(first_day, first_day + days):
                subset = parse_subset(f"{percent}%", str(day))
                covered.update(pack for pack in ids if subset.contains(pack))
            assert covered == set(ids), (percent, first_day)
            if days > 1:
                short = set()
                for day in range(first_day, first_day + days - 1):
                    subset = parse_subset(f"{percent}%", str(day))
                    short.update(pack for pack in ids if subset.contains(pack))
                assert short != set(ids), (percent, first_day)
    slices = [parse_subset(f"{n}/7") for n in range(1, 8)]
    for pack in ids:
        assert sum(subset.contains(pack) for subset in slices) == 1
