"""Backups taken while Odoo is at work, each restored and checked.

A writer and Odoo's filestore garbage collector (see `odoo_load`) change the
database and its filestore folder while `odoo-dr backup` runs several times in a
row. Every snapshot is then restored as a copy, and the copy must be one state the
writer committed, no older than the backup's start, with every attachment's file
intact unless the snapshot reported it. Every other backup runs as a read-only
role, which cannot hold the collector off: a file it deletes during the backup may
then be reported missing, but only if its attachment was deleted after the
snapshot.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import admin_connection, drop_leftovers, query, run_cli
from faults.conftest import trials
from faults.odoo_load import (
    ATTACHMENT_QUERY,
    MOVE_ORIGIN,
    Baseline,
    BusyOdoo,
    odoo_fname,
    read_baseline,
    replay,
)
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.restore_plan import load_index
from odoo_dr.engine.stock_totals import read_stock_totals
from odoo_dr.odoo import filestore
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.repository.store import Repository

# A file named as Odoo names it, `<first 2 or 3 hex digits>/<SHA-1>`.
ODOO_NAME = re.compile(r"(?P<prefix>[0-9a-f]{2,3})/(?P<sha1>[0-9a-f]{40})")
LOCK_WARNING = "could not hold off Odoo's filestore garbage collector"


@pytest.fixture
def read_only_role(unique):
    role = f"odoo_dr_reader_{unique}"
    with admin_connection() as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        connection.execute(
            sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role))
        )
    yield role
    with admin_connection() as connection:
        connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@dataclass
class BackupRun:
    """One backup run under load."""

    number: int
    # The role the backup connected as, None for the database owner.
    role: str | None
    committed_before: int
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Findings:
    """What one restored snapshot showed."""

    files_checked: int = 0
    reported: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


def test_backups_under_odoo_load(
    odoo_database,
    filestore_root,
    database_names,
    read_only_role,
    unique,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    snapshots = trials(2, 100)
    # A session is one database, repository and load, backed up several times.
    per_session = trials(2, 3)
    during = Counter()
    totals = Counter()
    for session in range(math.ceil(snapshots / per_session)):
        first = session * per_session
        count = min(per_session, snapshots - first)
        # Every other backup runs as the read-only role, the short form's second.
        roles = [
            read_only_role if number % 2 == 1 else None
            for number in range(first, first + count)
        ]
        summary = odoo_database(f"odoo_dr_conc_{unique}_{session}")
        repository = Repository.init(str(tmp_path / f"repo{session}"))
        baseline = read_baseline(summary.database)
        load = BusyOdoo(
            summary.database, summary.filestore, baseline, fault_random.getrandbits(32)
        )
        runs = run_backups(load, repository, summary.database, filestore_root, roles,
                           fault_random)  # fmt: skip
        during.update(load.during_backups)
        totals.update(load.totals)
        record_load(fault_record, during, totals)
        events = list(load.events.items)
        for backup in runs:
            where = f"seed {fault_seed}, session {session}, backup {backup.number}"
            manifest = check_backup_output(backup, repository, where)
            target = f"{summary.database}_r{backup.number}"
            database_names.append(target)
            restored_root = tmp_path / "restored"
            restored_root.mkdir(exist_ok=True)
            restore_checked(repository, manifest, target, restored_root, where)
            findings = check_restored(target, restored_root / target, manifest,
                                      baseline, events, backup.committed_before,
                                      lock_held=backup.role is None)  # fmt: skip
            drop_leftovers([target])
            shutil.rmtree(restored_root / target)
            fault_record.trials += 1
            fault_record.inputs += findings.files_checked
            fault_record.lost += len(findings.lost)
            assert findings.lost == [], f"{where}: {findings.lost}"
            if backup.role is None:
                assert findings.reported == [], f"{where}: {findings.reported}"
            totals["reported missing"] += len(findings.reported)
            record_load(fault_record, during, totals)
        drop_leftovers([summary.database])
        shutil.rmtree(summary.filestore)
    assert during["add"] > 0, f"seed {fault_seed}: no attachment added during a backup"
    assert during["move"] > 0, f"seed {fault_seed}: no stock moved during a backup"


def record_load(record, during: Counter, totals: Counter) -> None:
    """Set the record's faults (changes and collections during backups) and notes."""
    record.faults = sum(during.values())
    record.notes = [
        f"{kind} during backups: {during[kind]} of {totals[kind]}"
        for kind in sorted(during)
    ] + [
        f"files collected: {totals['files collected']}",
        f"reported missing (read-only role): {totals['reported missing']}",
    ]


def run_backups(
    load: BusyOdoo,
    repository: Repository,
    database: str,
    filestore_root: Path,
    roles: list[str | None],
    rng,
) -> list[BackupRun]:
    """Run one backup per role in a row while the load runs (None: the owner)."""
    runs = []
    load.start()
    try:
        # Let the load warm up, so that the first backup runs among changes.
        load.stopping.wait(rng.uniform(0.2, 0.5))
        for number, role in enumerate(roles):
            env = {"PGUSER": role} if role else None
            committed = load.backup_starts()
            result = run_cli("backup", database, "--repo", repository.location,
                             "--filestore-root", str(filestore_root), "--json",
                             env=env)  # fmt: skip
            load.backup_ends()
            runs.append(BackupRun(number, role, committed, result.returncode,
                                  result.stdout, result.stderr))  # fmt: skip
            load.stopping.wait(rng.uniform(0, 0.3))
    finally:
        load.stop()
    return runs


def check_backup_output(
    backup: BackupRun, repository: Repository, where: str
) -> SnapshotManifest:
    """Check the exit code and warnings; return the published manifest."""
    if backup.role is None:
        assert backup.returncode == 0, f"{where}: {backup.stderr}"
    else:
        # The role may not lock ir_attachment, and the backup warns of it.
        assert backup.returncode == 1, f"{where}: {backup.stderr}"
        assert LOCK_WARNING in backup.stderr, f"{where}: {backup.stderr}"
    manifest = repository.find_snapshot(json.loads(backup.stdout)["id"])
    for problem in manifest.filestore.problems:
        # Each reported file is named in the warnings, with its reason.
        reported = f"filestore file {problem.store_fname} {problem.reason}"
        assert reported in backup.stderr, f"{where}: {backup.stderr}"
    return manifest


def restore_checked(
    repository: Repository,
    manifest: SnapshotManifest,
    target: str,
    root: Path,
    where: str,
) -> None:
    """Restore `manifest` as a copy; it warns (exit 1) only of reported files."""
    result = run_cli("restore", manifest.id, "--target", target, "--copy",
                     "--filestore-root", str(root),
                     "--repo", repository.location)  # fmt: skip
    expected = 1 if manifest.filestore.problems else 0
    assert result.returncode == expected, f"{where}: {result.stderr}"


def check_restored(
    target: str,
    folder: Path,
    manifest: SnapshotManifest,
    baseline: Baseline,
    events: list[tuple],
    committed_before: int,
    lock_held: bool,
) -> Findings:
    """Compare the restored copy `target` with the states the writer committed."""
    findings = Findings()
    problems = {
        problem.store_fname: problem.reason for problem in manifest.filestore.problems
    }
    rows = query(
        target,
        "SELECT id, store_fname, checksum, file_size FROM ir_attachment"
        " WHERE type = 'binary' AND store_fname IS NOT NULL AND store_fname <> ''",
    )
    for attachment, fname, checksum, file_size in rows:
        findings.files_checked += 1
        wrong = _file_fault(folder / fname, checksum, file_size)
        if wrong is None:
            continue
        if fname in problems:
            findings.reported.append(f"{fname}: {problems[fname]}")
        else:
            findings.lost.append(f"attachment {attachment} file {fname}: {wrong}")

    # Odoo trusts a file named after a SHA-1 to have that content, and writes no
    # new upload over it. A half-written file must not be restored under its name.
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        match = ODOO_NAME.fullmatch(relative)
        if not path.is_file() or match is None:
            continue
        found = hashlib.sha1(path.read_bytes()).hexdigest()
        if found != match["sha1"]:
            findings.lost.append(f"file {relative} restored with content {found}")

    attachments = dict(query(target, ATTACHMENT_QUERY))
    moves = query(
        target,
        "SELECT id, product_id, location_id, location_dest_id, quantity"
        " FROM stock_move WHERE origin = %s",
        (MOVE_ORIGIN,),
    )
    state = _matching_state(baseline, events, attachments, {row[0] for row in moves})
    if state is None:
        findings.lost.append("the copy matches no state the writer committed")
    elif state < committed_before:
        findings.lost.append(
            f"the copy shows state {state}, older than the backup's start "
            f"({committed_before} changes committed)"
        )
    else:
        findings.lost.extend(
            _unexplained_reports(baseline, events, state, problems, lock_held)
        )
    findings.lost.extend(_quant_faults(target, baseline, moves, manifest))
    return findings


def _file_fault(path: Path, checksum: str, file_size: int) -> str | None:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    found = hashlib.sha1(content).hexdigest()
    if found != checksum:
        return f"sha1 {found}, expected {checksum}"
    if len(content) != file_size:
        return f"{len(content)} bytes, expected {file_size}"
    return None


def _matching_state(
    baseline: Baseline,
    events: list[tuple],
    attachments: dict[int, str],
    moves: set[int],
) -> int | None:
    """Return the number of writer changes the copy shows, or None if no state."""
    for number, expected, expected_moves in replay(baseline, events):
        if expected_moves == moves and expected == attachments:
            return number
    return None


def _unexplained_reports(
    baseline: Baseline,
    events: list[tuple],
    state: int,
    problems: dict[str, str],
    lock_held: bool,
) -> list[str]:
    """Return the reported files that the backup should have had.

    While the collector is held off no file goes. Without the lock, the collector
    may delete a file whose last attachment the writer deleted after the snapshot.
    """
    if lock_held:
        return [f"{fname} reported {reason}" for fname, reason in problems.items()]
    pending = set(problems)
    for number, attachments, _moves in replay(baseline, events):
        if number > state:
            in_use = set(attachments.values())
            pending = {fname for fname in pending if fname in in_use}
    return [f"{fname} reported {problems[fname]} while in use" for fname in pending]


def _quant_faults(
    target: str,
    baseline: Baseline,
    moves: list[tuple],
    manifest: SnapshotManifest,
) -> list[str]:
    expected = dict(baseline.quants)
    for _move, product, source, destination, quantity in moves:
        expected[product, source] -= quantity
        expected[product, destination] += quantity
    rows = query(target, "SELECT product_id, location_id, quantity FROM stock_quant")
    found = {(product, location): quantity for product, location, quantity in rows}
    faults = [
        f"quant of product {key[0]} in location {key[1]}: {found.get(key)}, "
        f"expected {quantity} from the copy's moves"
        for key, quantity in sorted(expected.items())
        if found.get(key) != Decimal(quantity)
    ]
    with psycopg.connect(dbname=target, autocommit=True) as connection:
        totals = read_stock_totals(connection.cursor())
    if totals != manifest.stock_totals:
        faults.append(
            f"stock totals {totals}, the snapshot recorded {manifest.stock_totals}"
        )
    return faults


def test_half_written_upload_left_out(
    repository, odoo_database, filestore_root, settings
):
    summary = odoo_database()
    content = b"an upload of two halves" * 1000
    sha1, fname = odoo_fname(content)
    half = summary.filestore / fname
    half.parent.mkdir(exist_ok=True)
    half.write_bytes(content[: len(content) // 2])
    # Complete unreferenced files stay: Odoo may still commit their attachment.
    whole_content = b"a complete upload"
    _sha1, whole_fname = odoo_fname(whole_content)
    whole = summary.filestore / whole_fname
    whole.parent.mkdir(exist_ok=True)
    whole.write_bytes(whole_content)
    manifest = run_backup(
        repository, settings, BackupOptions(summary.database, filestore_root)
    )
    paths = {entry.path for entry in load_index(repository, manifest)}
    assert fname not in paths
    assert whole_fname in paths
    assert manifest.filestore.extra_files == 1
    assert manifest.filestore.problems == []


def test_file_collected_during_walk(tmp_path, monkeypatch):
    folder = tmp_path / "tenant"
    (folder / "ab").mkdir(parents=True)
    collected = folder / "ab" / "collected"
    collected.write_bytes(b"garbage")
    (folder / "ab" / "kept").write_bytes(b"in use")
    listing = os.scandir

    def scandir_then_collect(path):
        # Odoo's garbage collector deletes a file between the listing and its stat.
        entries = list(listing(path))
        if Path(path) == folder / "ab":
            collected.unlink()
        return entries

    monkeypatch.setattr(os, "scandir", scandir_then_collect)
    found = dict(filestore.walk(folder))
    assert "ab/kept" in found
    assert "ab/collected" not in found
