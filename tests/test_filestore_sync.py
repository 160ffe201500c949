"""The filestore journal: sync, files at a moment, compaction, prune and verify.

Every test runs against a real repository (a local folder, an encrypted one, or
moto's S3 server) and real filestore folders, among them a copy of a real Odoo 16
deployment's filestore.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import PLAIN_BUCKET, damage_blob, delete_pack_of, run_cli
from odoo_dr.engine import filestore_sync
from odoo_dr.engine.filestore_sync import files_at, journal_entries, sync, write_files
from odoo_dr.engine.prune import prune
from odoo_dr.engine.retention import RetentionPolicy
from odoo_dr.engine.verify import verify
from odoo_dr.errors import LockHeld
from odoo_dr.repository.crypto import KdfParameters
from odoo_dr.repository.journal import JournalReader, journal_folder
from odoo_dr.repository.lock import FilestoreSyncLock, PruneLock
from odoo_dr.repository.store import Repository

SAMPLE = Path("/work/shared/real/odoo16-filestore-sample/bitnami_odoo")
FAST_KDF = KdfParameters(memory_cost=8 * 1024, iterations=1, lanes=1)
KEEP_ALL = [RetentionPolicy(keep_last=1)]


def add_file(folder: Path, content: bytes, mtime: datetime | None = None) -> str:
    """Write `content` where Odoo would store it; return its store_fname."""
    sha1 = hashlib.sha1(content).hexdigest()
    path = folder / sha1[:2] / sha1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        stamp = mtime.timestamp()
        os.utime(path, (stamp, stamp))
    return f"{sha1[:2]}/{sha1}"


def segments(repository: Repository, tenant: str) -> list[str]:
    return sorted(repository.backend.list(journal_folder(tenant, repository.keys)))


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the real Odoo 16 filestore folder, checklist markers included."""
    folder = tmp_path / "filestore" / "bitnami_odoo"
    shutil.copytree(SAMPLE, folder)
    return folder


def test_sync_real_filestore_once(repository, sample, tmp_path):
    first = sync(repository, "bitnami_odoo", sample)
    expected = {
        name: data for name, data in tree(sample).items() if "checklist" not in name
    }
    assert first.new_files == len(expected) == 96
    assert first.new_bytes == sum(len(data) for data in expected.values())
    assert first.problems == []
    assert first.segment is not None
    written = segments(repository, "bitnami_odoo")

    second = sync(repository, "bitnami_odoo", sample)
    assert second.new_files == 0
    assert second.segment is None
    assert segments(repository, "bitnami_odoo") == written

    entries = journal_entries(repository, "bitnami_odoo")
    assert sorted(entries) == sorted(expected)
    out = tmp_path / "out"
    files, size = write_files(repository, entries.values(), out, jobs=2)
    assert (files, size) == (96, first.new_bytes)
    assert tree(out) == expected


def test_only_new_files_are_read(repository, filestore_root):
    folder = filestore_root / "db"
    for number in range(20):
        add_file(folder, f"file {number}".encode())
    sync(repository, "db", folder)
    added = add_file(folder, b"one more")
    result = sync(repository, "db", folder)
    assert result.new_files == 1
    assert result.stats.new_objects == 1
    segment = JournalReader(repository, "db")._read(result.segment)
    assert [entry.store_fname for entry in segment.new] == [added]
    assert segment.gone == []


def test_gone_files_and_files_at(repository, filestore_root):
    folder = filestore_root / "db"
    old = datetime.now(UTC) - timedelta(days=3)
    kept = add_file(folder, b"kept", mtime=old)
    removed = add_file(folder, b"removed", mtime=old)
    first = sync(repository, "db", folder)
    entry = journal_entries(repository, "db")[removed]
    assert entry.first_seen > old
    assert entry.mtime == old.replace(microsecond=entry.mtime.microsecond)

    (folder / removed).unlink()
    time.sleep(0.01)
    second = sync(repository, "db", folder)
    assert second.gone_files == 1
    gone_seen = journal_entries(repository, "db")[removed].gone_seen
    assert gone_seen is not None

    # The mtime counts as presence before the first sync saw the file.
    assert set(files_at(repository, "db", old + timedelta(hours=1))) == {
        kept,
        removed,
    }
    assert files_at(repository, "db", old - timedelta(hours=1)) == {}
    assert set(files_at(repository, "db", gone_seen - timedelta(microseconds=1))) == {
        kept,
        removed,
    }
    assert set(files_at(repository, "db", gone_seen)) == {kept}
    assert first.segment != second.segment


def test_file_back_after_gone(repository, filestore_root):
    folder = filestore_root / "db"
    name = add_file(folder, b"comes back")
    sync(repository, "db", folder)
    content = (folder / name).read_bytes()
    (folder / name).unlink()
    sync(repository, "db", folder)
    gone_seen = journal_entries(repository, "db")[name].gone_seen
    time.sleep(0.01)
    (folder / name).write_bytes(content)
    sync(repository, "db", folder)
    latest = journal_entries(repository, "db")[name]
    assert latest.gone_seen is None
    assert latest.first_seen > gone_seen
    assert name in files_at(repository, "db", gone_seen - timedelta(microseconds=1))


def test_content_not_matching_name(repository, filestore_root):
    folder = filestore_root / "db"
    good = add_file(folder, b"good")
    wrong = hashlib.sha1(b"expected content").hexdigest()
    bad = folder / wrong[:2] / wrong
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"other content")
    stray = folder / "notes.txt"
    stray.write_bytes(b"not Odoo's")

    first = sync(repository, "db", folder)
    reasons = {problem.store_fname: problem.reason for problem in first.problems}
    assert reasons == {
        f"{wrong[:2]}/{wrong}": "checksum mismatch",
        "notes.txt": "unexpected name",
    }
    found = next(item for item in first.problems if item.reason == "checksum mismatch")
    assert found.found_sha1 == hashlib.sha1(b"other content").hexdigest()
    assert set(journal_entries(repository, "db")) == {good}

    # Reported once: an unchanged damaged file is neither read nor reported again.
    again = sync(repository, "db", folder)
    assert again.problems == []
    assert again.segment is None

    # Odoo finished writing it: the right content is recorded.
    bad.write_bytes(b"expected content")
    os.utime(bad, (time.time() + 5, time.time() + 5))
    fixed = sync(repository, "db", folder)
    assert fixed.new_files == 1
    assert f"{wrong[:2]}/{wrong}" in journal_entries(repository, "db")


def test_cli_reports_problem_with_exit_1(repository, filestore_root):
    folder = filestore_root / "db"
    add_file(folder, b"fine")
    wrong = hashlib.sha1(b"x").hexdigest()
    (folder / wrong[:2]).mkdir(exist_ok=True)
    (folder / wrong[:2] / wrong).write_bytes(b"y")
    result = run_cli(
        "filestore", "sync", "--repo", repository.location,
        "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "1 new file(s)" in result.stdout
    assert f"{wrong[:2]}/{wrong}: content does not match its name" in result.stderr


def test_odd_database_names(repository, filestore_root):
    names = ["Acme Prod 2024", "ÉtéDB", "UPPER", "upper"]
    contents = {}
    for name in names:
        contents[name] = add_file(filestore_root / name, f"file of {name}".encode())
    result = run_cli(
        "filestore", "sync", "--repo", repository.location,
        "--filestore-root", str(filestore_root), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["tenant"] for line in lines) == sorted(names)
    for name in names:
        assert set(journal_entries(repository, name)) == {contents[name]}

    # A named database syncs only the folder of that exact name.
    add_file(filestore_root / "upper", b"lower case only")
    named = run_cli(
        "filestore", "sync", "UPPER", "--repo", repository.location,
        "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert "tenant 'UPPER': 0 new file(s)" in named.stdout
    missing = run_cli(
        "filestore", "sync", "Upper", "--repo", repository.location,
        "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert missing.returncode == 2
    assert "'Upper'" in missing.stderr
    assert "not found" in missing.stderr


def test_names_that_are_paths_rejected(repository, filestore_root):
    add_file(filestore_root / "db", b"inside the root")
    outside = filestore_root.parent / "outside"
    add_file(outside, b"outside the root")
    add_file(filestore_root / ".snapshot", b"a storage snapshot folder")
    for name in ("..", "../outside", ".snapshot", "db/"):
        result = run_cli(
            "filestore", "sync", "--repo", repository.location,
            "--filestore-root", str(filestore_root), "--", name,
        )  # fmt: skip
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "invalid database name" in result.stderr, name
        assert journal_entries(repository, name) == {}, name

    # Without names, a hidden folder is no database and is left alone.
    every = run_cli(
        "filestore", "sync", "--repo", repository.location,
        "--filestore-root", str(filestore_root), "--json",
    )  # fmt: skip
    assert every.returncode == 0, every.stderr
    tenants = [json.loads(line)["tenant"] for line in every.stdout.splitlines()]
    assert tenants == ["db"]


def test_one_tenant_error_others_continue(repository, filestore_root):
    add_file(filestore_root / "alpha", b"alpha")
    add_file(filestore_root / "beta", b"beta")
    sync(repository, "alpha", filestore_root / "alpha")
    key = segments(repository, "alpha")[0]
    repository.backend.write(key, b"{not a segment")
    add_file(filestore_root / "beta", b"beta 2")
    result = run_cli(
        "filestore", "sync", "--repo", repository.location,
        "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert result.returncode == 2
    assert "tenant 'alpha'" in result.stderr
    assert "damaged" in result.stderr
    assert "tenant 'beta': 2 new file(s)" in result.stdout


def test_watch_stops_after_sigterm(repository, filestore_root):
    add_file(filestore_root / "db", b"watched")
    command = [
        sys.executable, "-m", "odoo_dr", "filestore", "sync", "--watch", "0.2",
        "--repo", repository.location, "--filestore-root", str(filestore_root),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = process.stdout.readline().decode()
        assert "tenant 'db': 1 new file(s)" in first
        add_file(filestore_root / "db", b"added while watching")
        second = process.stdout.readline().decode()
        while "0 new file(s)" in second:
            second = process.stdout.readline().decode()
        assert "tenant 'db': 1 new file(s)" in second
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped by SIGTERM" in err.decode()
    assert len(journal_entries(repository, "db")) == 2


def test_empty_folder_rejected(repository, filestore_root):
    folder = filestore_root / "db"
    name = add_file(folder, b"on a volume")
    sync(repository, "db", folder)
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(Exception, match="is empty") as raised:
        sync(repository, "db", folder)
    assert raised.value.exit_code == 2
    assert journal_entries(repository, "db")[name].gone_seen is None


def test_locks(repository, filestore_root):
    folder = filestore_root / "db"
    add_file(folder, b"locked")
    with FilestoreSyncLock(repository.backend, "db", repository.keys):
        with pytest.raises(LockHeld):
            sync(repository, "db", folder)
        with pytest.raises(LockHeld):
            prune(repository, KEEP_ALL)
    # A backup of the same tenant does not stop a sync, nor a sync a backup.
    with repository.lock_tenant("db", "backup"):
        assert sync(repository, "db", folder).new_files == 1
        with FilestoreSyncLock(repository.backend, "db", repository.keys):
            pass
    with PruneLock(repository.backend, repository.keys):
        with pytest.raises(LockHeld):
            sync(repository, "db", folder)


KILLER = """
import os, signal, sys
from odoo_dr.repository.store import Repository
from odoo_dr.repository.journal import JournalReader, merge
repository = Repository.open(sys.argv[1])
state = JournalReader(repository, sys.argv[2]).load()
kill_at = int(sys.argv[3])
delete = repository.backend.delete
count = 0
def deleting(key):
    global count
    if count == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    count += 1
    delete(key)
repository.backend.delete = deleting
merge(repository, state)
"""


@pytest.mark.parametrize("kill_at", [0, 2])
def test_compaction_killed_reads_the_same(repository, filestore_root, kill_at):
    folder = filestore_root / "db"
    names = []
    for number in range(5):
        names.append(add_file(folder, f"version {number}".encode()))
        if number % 2:
            (folder / names[number - 1]).unlink()
        sync(repository, "db", folder, compact_after=100)
    before_segments = segments(repository, "db")
    assert len(before_segments) == 5
    before = journal_entries(repository, "db")
    moments = [entry.first_seen for entry in before.values()]
    moments += [entry.gone_seen for entry in before.values() if entry.gone_seen]
    at_before = {moment: files_at(repository, "db", moment) for moment in moments}

    killed = subprocess.run(
        [sys.executable, "-c", KILLER, repository.location, "db", str(kill_at)],
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after_segments = segments(repository, "db")
    assert len(after_segments) == 6 - kill_at
    assert journal_entries(repository, "db") == before
    for moment, expected in at_before.items():
        assert files_at(repository, "db", moment) == expected

    # The next sync that compacts finishes the job.
    add_file(folder, b"after the kill")
    result = sync(repository, "db", folder, compact_after=1)
    assert result.compacted
    assert len(segments(repository, "db")) == 1
    for moment, expected in at_before.items():
        assert files_at(repository, "db", moment) == expected


def test_prune_keeps_journal_blobs(repository, filestore_root, tmp_path):
    folder = filestore_root / "db"
    stays = add_file(folder, os.urandom(4096))
    sync(repository, "db", folder)
    goes = add_file(folder, os.urandom(4096))
    sync(repository, "db", folder)
    (folder / goes).unlink()
    sync(repository, "db", folder)
    gone_seen = journal_entries(repository, "db")[goes].gone_seen

    # Without keep_since nothing of the journal goes, and no pack either.
    plan = prune(repository, KEEP_ALL, dry_run=True)
    assert plan.packs_to_delete == []
    assert [len(item.kept) for item in plan.journals] == [2]
    prune(repository, KEEP_ALL)
    assert set(journal_entries(repository, "db")) == {stays, goes}

    # keep_since before the file went keeps it too.
    early = prune(repository, KEEP_ALL, keep_since=gone_seen - timedelta(seconds=1))
    assert early.journals[0].dropped == []
    assert set(journal_entries(repository, "db")) == {stays, goes}

    later = Repository.open(repository.location)
    dry = prune(later, KEEP_ALL, dry_run=True, keep_since=gone_seen + timedelta(1))
    assert [entry.store_fname for entry in dry.journals[0].dropped] == [goes]
    assert len(dry.packs_to_delete) == 1
    done = prune(later, KEEP_ALL, keep_since=gone_seen + timedelta(seconds=1))
    assert done.journals_rewritten == 1
    assert done.packs_deleted == 1
    assert set(journal_entries(later, "db")) == {stays}
    assert len(segments(later, "db")) == 1

    fresh = Repository.open(repository.location)
    entries = journal_entries(fresh, "db")
    assert write_files(fresh, entries.values(), tmp_path / "out", jobs=1)[0] == 1
    assert verify(fresh).ok


def test_prune_cli_dry_run_counts(repository, filestore_root):
    folder = filestore_root / "db"
    add_file(folder, b"x" * 1000)
    goes = add_file(folder, b"y" * 500)
    sync(repository, "db", folder)
    (folder / goes).unlink()
    sync(repository, "db", folder)
    result = run_cli(
        "prune", "--keep-last", "1", "--dry-run", "--repo", repository.location,
        "--filestore-keep-since", "-1d", "--json",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--filestore-keep-since" in result.stderr
    result = run_cli(
        "prune", "--keep-last", "1", "--dry-run", "--repo", repository.location,
        "--filestore-keep-since", "2999-01-01T00:00:00Z", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    journal = json.loads(result.stdout)["journals"][0]
    assert journal == {
        "tenant": "db",
        "kept_entries": 1,
        "kept_bytes": 1000,
        "dropped_entries": 1,
        "dropped_bytes": 500,
    }


def test_verify_finds_missing_and_damaged_journal_pack(repository, filestore_root):
    first = filestore_root / "db"
    name = add_file(first, os.urandom(2048))
    sync(repository, "db", first)
    entry = journal_entries(repository, "db")[name]
    assert verify(repository).ok

    damage_blob(repository, entry.chunks[0])
    report = verify(Repository.open(repository.location), read_data=True)
    assert not report.ok
    assert report.journals[0].tenant == "db"
    assert f"journal file {name}" in report.journals[0].problems[0]

    delete_pack_of(repository, entry.chunks[0])
    result = run_cli("verify", "--repo", repository.location)
    assert result.returncode == 5
    assert f"journal file {name}: object {entry.chunks[0]} missing" in result.stdout
    assert "filestore journal  db" in result.stdout


def test_encrypted_journal_shows_no_names(tmp_path, filestore_root):
    location = str(tmp_path / "encrypted")
    repository = Repository.init(location, secret=b"journal secret", kdf=FAST_KDF)
    tenant = "Geheim Mandant Ü"
    folder = filestore_root / tenant
    names = [add_file(folder, os.urandom(1024)) for _ in range(3)]
    result = sync(repository, tenant, folder)
    assert result.new_files == 3
    (folder / names[0]).unlink()
    sync(repository, tenant, folder)

    needles = [tenant.encode(), tenant.encode("utf-16-le")]
    for name in names:
        needles += [name.encode(), name.split("/")[1].encode()]
    for path in Path(location).rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} in {path}"
            assert needle not in str(path.relative_to(location)).encode()

    reopened = Repository.open(location, secret=b"journal secret")
    assert set(journal_entries(reopened, tenant)) == set(names)
    out = tmp_path / "out"
    now = datetime.now(UTC)
    assert (
        write_files(reopened, files_at(reopened, tenant, now).values(), out, 1)[0] == 2
    )


def test_journal_on_s3(s3_endpoint, monkeypatch, unique, filestore_root, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    location = f"s3://{PLAIN_BUCKET}/journal-{unique}"
    repository = Repository.init(location)
    folder = filestore_root / "db"
    kept = add_file(folder, os.urandom(3000))
    content = os.urandom(3000)
    removed = add_file(folder, content)
    assert sync(repository, "db", folder).new_files == 2
    assert sync(repository, "db", folder).segment is None
    (folder / removed).unlink()
    assert sync(repository, "db", folder).gone_files == 1
    gone_seen = journal_entries(repository, "db")[removed].gone_seen
    before = files_at(repository, "db", gone_seen - timedelta(microseconds=1))
    assert set(before) == {kept, removed}
    out = tmp_path / "out"
    assert write_files(repository, before.values(), out, jobs=2) == (2, 6000)
    assert (out / removed).read_bytes() == content


def test_history_cli(repository, filestore_root):
    folder = filestore_root / "db"
    name = add_file(folder, b"history")
    sync(repository, "db", folder)
    result = run_cli(
        "filestore", "history", "db", "--at", datetime.now(UTC).isoformat(),
        "--json", "--repo", repository.location,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["present_files"] == 1
    assert [item["store_fname"] for item in shown["files_at"]] == [name]
    unknown = run_cli("filestore", "history", "nobody", "--repo", repository.location)
    assert unknown.returncode == 2
    assert "no filestore journal" in unknown.stderr


def test_moment_parsing():
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    parse = filestore_sync.parse_moment
    assert parse("2026-12-04T10:42:00Z", "--at") == datetime(
        2026, 12, 4, 10, 42, tzinfo=UTC
    )
    assert parse("2026-12-04 10:42", "--at") == datetime(
        2026, 12, 4, 10, 42, tzinfo=UTC
    )
    assert parse("2h", "--at", now) == datetime(2026, 12, 4, 10, tzinfo=UTC)
