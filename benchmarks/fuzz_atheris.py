"""Coverage-guided fuzzing of odoo-dr's parsers with atheris, for a given time.

    .venv/bin/pip install -e '.[test,fuzz]'
    .venv/bin/python benchmarks/fuzz_atheris.py manifest --seconds 60

Each target feeds libFuzzer's inputs to one parser, starting from a valid
document, and treats the parser's documented error as a rejection. Any other
exception ends the run, and libFuzzer writes the input as `crash-<sha1>` in the
working folder. The script is not part of the test command: tests/faults/
test_fuzz.py and test_hostile_archives.py run the same parsers with Hypothesis.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from odoo_dr.errors import RejectedError, RepositoryError, SnapshotDamaged
    from odoo_dr.odoo import archives
    from odoo_dr.odoo.config import read_odoo_config
    from odoo_dr.repository import catalog, packs
    from odoo_dr.repository.index import BlobIndex
    from odoo_dr.repository.journal import JournalReader, journal_folder
    from odoo_dr.repository.store import Repository
    from odoo_dr.review.inventory import InventoryError, load_inventory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from faults.test_fuzz import (  # noqa: E402 - needs the tests folder on the path
    SNAPSHOT_ID,
    VALID_CONF,
    base_drill,
    base_manifest,
)
from faults.test_hostile_archives import valid_zip  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="odoo-dr-atheris-"))
REPOSITORY = Repository.init(str(WORK / "repo"))


def fuzz_manifest(data: bytes) -> None:
    (WORK / "repo" / "snapshots" / f"{SNAPSHOT_ID}.json").write_bytes(data)
    try:
        REPOSITORY.load_snapshot(SNAPSHOT_ID)
    except RepositoryError:
        pass


def fuzz_drill(data: bytes) -> None:
    folder = WORK / "repo" / "drills"
    folder.mkdir(exist_ok=True)
    (folder / "record.json").write_bytes(data)
    REPOSITORY.list_drills()


def fuzz_catalog(data: bytes) -> None:
    try:
        catalog.decode_segment(data)
    except ValueError:
        pass


def fuzz_journal(data: bytes) -> None:
    folder = WORK / "repo" / journal_folder("acme", None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "000000000001-0a1b2c3d.json").write_bytes(data)
    try:
        JournalReader(REPOSITORY, "acme").load()
    except SnapshotDamaged:
        pass


def fuzz_index(data: bytes) -> None:
    folder = WORK / "repo" / "index"
    (folder / "20260101T000000000000Z-0.json").write_bytes(data)
    BlobIndex(REPOSITORY.backend).load()


def fuzz_pack_header(data: bytes) -> None:
    try:
        packs.decode_header(data)
    except ValueError:
        pass


def fuzz_odoo_conf(data: bytes) -> None:
    path = WORK / "odoo.conf"
    path.write_bytes(data)
    try:
        read_odoo_config(path)
    except RejectedError:
        pass


def fuzz_inventory(data: bytes) -> None:
    path = WORK / "inventory.yaml"
    path.write_bytes(data)
    try:
        load_inventory(path)
    except InventoryError:
        pass


def fuzz_zip(data: bytes) -> None:
    path = WORK / "backup.zip"
    path.write_bytes(data)
    work = Path(tempfile.mkdtemp(dir=WORK))
    try:
        archives.check(archives.identify(path, None), work)
    except RejectedError:
        pass
    finally:
        shutil.rmtree(work)


def _index_seed() -> bytes:
    entries = [["ab" * 32, 40, 12, 30]]
    document = {"format": "odoo-dr-index", "version": 1, "packs": []}
    document["packs"].append({"id": "ef" * 32, "blobs": entries})
    return json.dumps(document).encode()


def _catalog_seed() -> bytes:
    manifest = base_manifest()
    document = manifest.model_dump_json().encode()
    summary = catalog.SnapshotSummary.of(manifest, document, len(document), None)
    return catalog.encode_segment([summary])


def _journal_seed() -> bytes:
    return json.dumps(
        {"tenant": "acme", "sequence": 1, "written_at": "2026-01-01T00:00:00Z"}
    ).encode()


TARGETS = {
    "manifest": (fuzz_manifest, lambda: base_manifest().model_dump_json().encode()),
    "drill": (fuzz_drill, lambda: base_drill().model_dump_json().encode()),
    "catalog": (fuzz_catalog, _catalog_seed),
    "journal": (fuzz_journal, _journal_seed),
    "index": (fuzz_index, _index_seed),
    "pack-header": (fuzz_pack_header, lambda: packs.encode_header([("ab", 8, 1, 1)])),
    "odoo-conf": (fuzz_odoo_conf, VALID_CONF.encode),
    "inventory": (
        fuzz_inventory,
        (ROOT / "examples" / "3pl-provider" / "inventory.yaml").read_bytes,
    ),
    "zip": (fuzz_zip, valid_zip),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument(
        "--seconds", type=int, default=60, help="how long to fuzz, in seconds"
    )
    options, rest = parser.parse_known_args()
    function, seed = TARGETS[options.target]
    corpus = WORK / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(seed())
    atheris.Setup(
        [sys.argv[0], f"-max_total_time={options.seconds}", *rest, str(corpus)],
        function,
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main()
