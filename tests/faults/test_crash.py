"""backup, prune, copy and restore killed with SIGKILL at random moments.

Each test times its command once, then kills it again and again after a delay drawn
uniformly from zero to that time (and sometimes as soon as a milestone appears).
After each kill, every snapshot the repository lists must verify and restore to the
source as it was, and nothing may be half-visible. The next run of the same command
must succeed by itself and leave nothing of the killed one behind.
"""

from __future__ import annotations

import itertools
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import clone_demo, drop_leftovers, query, run_cli
from faults.conftest import FaultRecord, full_scale, trials
from faults.crash import (
    GENERATION,
    Launcher,
    SourceState,
    catalog_problems,
    change_source,
    file_digest,
    leftovers_of,
    manifest_ids,
    repository_problems,
    restore_and_compare,
    source_state,
    table_counts,
    verify_problems,
)
from odoo_dr.engine.copy import CopyOptions, run_copy
from odoo_dr.engine.swap import JOURNAL_PREFIX
from odoo_dr.repository.store import Repository

GENERATIONS = 3
KEEP = ("--keep-last", "1")
# The chance that the full form restores a listed snapshot other than the newest
# after a kill. The short form restores every one.
RESTORE_SHARE = 0.1


@dataclass
class Base:
    """A repository of several snapshots of one database, and its states."""

    repo: Path
    database: str
    root: Path
    # By generation; and the generation of each snapshot, by id.
    states: dict[str, SourceState]
    generations: dict[str, str]


def backup_args(repo: Path, database: str, root: Path, generation: int) -> list[str]:
    return [
        "backup", database, "--repo", str(repo), "--filestore-root", str(root),
        "--label", f"{GENERATION}={generation}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def base(settings, small_template, tmp_path_factory) -> Iterator[Base]:
    """Back up three generations of a small database, once per module and worker."""
    folder = tmp_path_factory.mktemp("crash-base")
    root = folder / "filestore"
    name = f"odoo_dr_crash_{uuid.uuid4().hex[:6]}"
    repo = folder / "repo"
    Repository.init(str(repo))
    states = {}
    generations = {}
    try:
        clone_demo(settings, small_template, name, root)
        for generation in range(1, GENERATIONS + 1):
            change_source(name, root / name, generation)
            states[str(generation)] = source_state(name, root / name)
            result = run_cli(*backup_args(repo, name, root, generation))
            assert result.returncode == 0, result.stderr
            generations[result.stdout.strip()] = str(generation)
        yield Base(repo, name, root, states, generations)
    finally:
        drop_leftovers([name])


@pytest.fixture
def launcher(tmp_path) -> Iterator[Launcher]:
    runner = Launcher(tmp_path)
    yield runner
    runner.close()


def chooser(rng: random.Random):
    """Return which listed snapshots, besides the newest, a check restores."""
    if not full_scale():
        return lambda _snapshot_id: True
    return lambda _snapshot_id: rng.random() < RESTORE_SHARE


def settle(record: FaultRecord, problems: list[str], seed: int, trial: int) -> None:
    """Count a trial's problems as lost and fail on the first."""
    if problems:
        record.lost += 1
    assert not problems, f"seed {seed}, trial {trial}: {problems}"


def note_phases(record: FaultRecord, phases: Counter) -> None:
    record.notes.append(
        "kills by phase: " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items()))
    )


def test_backup_killed_anywhere(
    odoo_database, filestore_root, tmp_path, database_names, launcher,
    fault_random, fault_seed, fault_record,
):  # fmt: skip
    summary = odoo_database()
    name = summary.database
    folder = filestore_root / name
    repo = tmp_path / "repo"
    Repository.init(str(repo))
    restored = tmp_path / "restored"
    states = {"0": source_state(name, folder)}
    # Timed in a repository of its own, whose snapshots are not checked.
    timed = tmp_path / "timed"
    Repository.init(str(timed))
    duration = launcher.calibrate(*[backup_args(timed, name, filestore_root, 0)] * 2)
    shutil.rmtree(timed)
    phases: Counter = Counter()
    restore = chooser(fault_random)
    compared: set[str] = set()

    for trial in range(1, trials(3, 100) + 1):
        change_source(name, folder, trial)
        states[str(trial)] = source_state(name, folder)
        before = manifest_ids(repo)
        packs = sum(1 for _ in (repo / "packs").rglob("*"))
        args = backup_args(repo, name, filestore_root, trial)
        delay = fault_random.uniform(0, duration)
        outcome = launcher.run_killed(args, delay)
        fault_record.trials += 1
        fault_record.inputs += 1
        fault_record.faults += outcome.killed
        published = manifest_ids(repo) - before
        if not outcome.killed:
            phases["after the end"] += 1
        elif published:
            phases["after publishing"] += 1
        elif sum(1 for _ in (repo / "packs").rglob("*")) > packs:
            phases["storing packs"] += 1
        elif any((repo / "locks").iterdir()):
            phases["locked, nothing stored"] += 1
        else:
            phases["before the lock"] += 1
        assert outcome.killed or outcome.returncode == 0, outcome.stderr

        problems = repository_problems(
            launcher, repo, states, lambda i, new=published: i in new or restore(i),
            restored, database_names, settled=False, compared=compared,
        )  # fmt: skip
        # The next backup takes over the killed one's lock and temporary files.
        again = launcher.run(*args)
        if again.returncode != 0:
            problems.append(f"next backup failed: {again.stderr[-2000:]}")
        else:
            newest = again.stdout.strip()
            problems += restore_and_compare(
                launcher, str(repo), newest, states[str(trial)], restored,
                database_names,
            )  # fmt: skip
            compared.add(newest)
        problems += leftovers_of(outcome.pid, repo, None)
        settle(fault_record, problems, fault_seed, trial)

    settle(fault_record, verify_problems(launcher, repo), fault_seed, 0)
    note_phases(fault_record, phases)


# Functions whose call kills a backup: after the files are stored and before the
# dump is, before the last pack and the index files are written, and after the
# manifest is published but before the catalog lists it.
BACKUP_STEPS = (
    "odoo_dr.engine.backup:_Backup._store_dump",
    "odoo_dr.repository.blobs:BlobStore.flush",
    "odoo_dr.repository.catalog:write_segment",
)


def test_backup_killed_at_each_step(
    odoo_database, filestore_root, tmp_path, database_names, launcher
):
    name = odoo_database().database
    folder = filestore_root / name
    repo = tmp_path / "repo"
    Repository.init(str(repo))
    restored = tmp_path / "restored"
    states = {"0": source_state(name, folder)}
    first = launcher.run(*backup_args(repo, name, filestore_root, 0))
    assert first.returncode == 0, first.stderr
    compared: set[str] = set()

    for generation, step in enumerate(BACKUP_STEPS, start=1):
        change_source(name, folder, generation)
        states[str(generation)] = source_state(name, folder)
        args = backup_args(repo, name, filestore_root, generation)
        killed = launcher.run_killed(args, 3600.0, kill_at=step)
        assert killed.killed, (step, killed.stderr)
        problems = repository_problems(
            launcher, repo, states, lambda _id: True, restored, database_names,
            settled=False, compared=compared,
        )  # fmt: skip
        assert problems == [], step

        again = launcher.run(*args)
        assert again.returncode == 0, (step, again.stderr)
        assert leftovers_of(killed.pid, repo, None) == [], step
        problems = repository_problems(
            launcher, repo, states, lambda _id: True, restored, database_names,
            settled=True, compared=compared,
        )  # fmt: skip
        assert problems == [], step


def prune_args(repo: Path, repack: bool) -> list[str]:
    return ["prune", "--repo", str(repo), *KEEP, *(("--repack", "0") if repack else ())]


def test_prune_killed_anywhere(
    base, tmp_path, database_names, launcher, fault_random, fault_seed, fault_record
):
    reference = tmp_path / "reference"
    shutil.copytree(base.repo, reference)
    timed = tmp_path / "timed"
    shutil.copytree(base.repo, timed)
    duration = launcher.calibrate(
        prune_args(timed, False), prune_args(reference, False)
    )
    shutil.rmtree(timed)
    kept = manifest_ids(reference)
    assert len(kept) == 1
    packs = {path.name for path in (reference / "packs").rglob("*") if path.is_file()}
    phases: Counter = Counter()
    restore = chooser(fault_random)
    restored = tmp_path / "restored"

    for trial in range(1, trials(3, 100) + 1):
        repo = tmp_path / f"trial-{trial}"
        shutil.copytree(base.repo, repo)
        repack = fault_random.random() < 0.5
        args = prune_args(repo, repack)
        outcome = launcher.run_killed(args, fault_random.uniform(0, duration))
        fault_record.trials += 1
        fault_record.inputs += 1
        fault_record.faults += outcome.killed
        remaining = manifest_ids(repo)
        if not outcome.killed:
            phases["after the end"] += 1
        elif remaining == kept:
            phases["after the manifests went"] += 1
        elif remaining == manifest_ids(base.repo):
            phases["before any manifest went"] += 1
        else:
            phases["among the manifests"] += 1
        assert outcome.killed or outcome.returncode == 0, outcome.stderr

        compared: set[str] = set()
        problems = repository_problems(
            launcher, repo, base.states, restore, restored, database_names,
            settled=False, compared=compared,
        )  # fmt: skip
        if not kept <= remaining:
            problems.append(f"prune removed kept snapshots {sorted(kept - remaining)}")
        again = launcher.run(*args)
        if again.returncode != 0:
            problems.append(f"next prune failed: {again.stderr[-2000:]}")
        if manifest_ids(repo) != kept:
            problems.append(f"next prune kept {sorted(manifest_ids(repo))}")
        files = {path.name for path in (repo / "packs").rglob("*") if path.is_file()}
        if not repack and files != packs:
            problems.append("next prune left other packs than an uninterrupted one")
        problems += leftovers_of(outcome.pid, repo, None)
        problems += repository_problems(
            launcher, repo, base.states, lambda _id: False, restored,
            database_names, settled=True, compared=compared,
        )  # fmt: skip
        settle(fault_record, problems, fault_seed, trial)
        shutil.rmtree(repo)
    note_phases(fault_record, phases)


def test_prune_killed_before_compaction(base, tmp_path, launcher):
    repo = tmp_path / "repo"
    shutil.copytree(base.repo, repo)
    args = prune_args(repo, False)
    step = "odoo_dr.repository.store:Repository.compact_catalog"
    killed = launcher.run_killed(args, 3600.0, kill_at=step)
    assert killed.killed, killed.stderr
    assert len(manifest_ids(repo)) == 1

    again = launcher.run(*args)
    assert again.returncode == 0, again.stderr
    assert catalog_problems(repo, manifest_ids(repo), settled=True) == []


def test_prune_killed_after_marking_removed(base, tmp_path, launcher):
    """Killed after the catalog names the manifests to delete, before any goes:
    every snapshot is still whole, and the next prune removes them."""
    repo = tmp_path / "repo"
    shutil.copytree(base.repo, repo)
    before = manifest_ids(repo)
    args = prune_args(repo, False)
    step = "odoo_dr.engine.prune:_delete_manifests"
    killed = launcher.run_killed(args, 3600.0, kill_at=step)
    assert killed.killed, killed.stderr
    assert manifest_ids(repo) == before
    verified = launcher.run("verify", "--repo", str(repo))
    assert verified.returncode == 0, verified.stderr

    again = launcher.run(*args)
    assert again.returncode == 0, again.stderr
    assert len(manifest_ids(repo)) == 1
    assert catalog_problems(repo, manifest_ids(repo), settled=True) == []
    verified = launcher.run("verify", "--repo", str(repo))
    assert verified.returncode == 0, verified.stderr


def test_copy_killed_anywhere(
    base, tmp_path, database_names, launcher, fault_random, fault_seed, fault_record
):
    source = Repository.open(str(base.repo))
    all_ids = manifest_ids(base.repo)
    oldest = min(all_ids)
    args = ["copy", "--repo", str(base.repo), "--to"]
    references = [tmp_path / "timed", tmp_path / "reference"]
    for reference in references:
        Repository.init(str(reference))
    duration = launcher.calibrate(*([*args, str(path)] for path in references))
    phases: Counter = Counter()
    restore = chooser(fault_random)
    restored = tmp_path / "restored"

    for trial in range(1, trials(3, 100) + 1):
        target = tmp_path / f"trial-{trial}"
        seeded = fault_random.random() < 0.5
        Repository.init(str(target))
        if seeded:
            # A target that already contains the oldest snapshot, from an earlier copy.
            run_copy(source, Repository.open(str(target)), CopyOptions(snapshot=oldest))
        before = manifest_ids(target)
        command = [*args, str(target)]
        outcome = launcher.run_killed(command, fault_random.uniform(0, duration))
        fault_record.trials += 1
        fault_record.inputs += 1
        fault_record.faults += outcome.killed
        copied = manifest_ids(target) - before
        if not outcome.killed:
            phases["after the end"] += 1
        else:
            phases[f"after {len(copied)} of {len(all_ids - before)} copied"] += 1
        assert outcome.killed or outcome.returncode == 0, outcome.stderr

        compared: set[str] = set()
        problems = repository_problems(
            launcher, target, base.states, restore, restored, database_names,
            settled=False, compared=compared,
        )  # fmt: skip
        again = launcher.run(*command)
        if again.returncode != 0:
            problems.append(f"next copy failed: {again.stderr[-2000:]}")
        if manifest_ids(target) != all_ids:
            problems.append(f"next copy left {sorted(manifest_ids(target))}")
        problems += leftovers_of(outcome.pid, target, None)
        problems += repository_problems(
            launcher, target, base.states, lambda _id: False, restored,
            database_names, settled=True, compared=compared,
        )  # fmt: skip
        settle(fault_record, problems, fault_seed, trial)
        shutil.rmtree(target)
    note_phases(fault_record, phases)


def target_state(
    name: str, folder: Path, states: dict[str | None, SourceState | None]
) -> tuple[str | None, str | None, list[str]]:
    """Return which state the restored database and folder are in (a key of
    `states`, "none" when absent, "hidden" for a database no one may open yet),
    and the problems: a part that looks finished but is in none of them."""
    rows = query(
        "postgres",
        "SELECT datallowconn AND NOT datistemplate FROM pg_database WHERE datname = %s",
        (name,),
    )
    problems = []
    database = "none"
    if rows and not rows[0][0]:
        database = "hidden"
    elif rows:
        counts = table_counts(name)
        matches = [
            key for key, state in states.items() if state and state.counts == counts
        ]
        database = matches[0] if matches else None
        if database is None:
            problems.append(f"database {name} looks finished but is incomplete")
    files = "none"
    if folder.exists():
        digest = file_digest(folder)
        matches = [
            key for key, state in states.items() if state and state.files == digest
        ]
        files = matches[0] if matches else None
        if files is None:
            problems.append(f"folder {folder} looks finished but is incomplete")
    return database, files, problems


def test_restore_killed_anywhere(
    base, tmp_path, database_names, launcher, fault_random, fault_seed, fault_record
):
    ids = sorted(manifest_ids(base.repo))
    generations = base.generations
    root = tmp_path / "filestore"
    target = f"odoo_dr_crash_target_{uuid.uuid4().hex[:6]}"
    database_names.append(target)

    def args(snapshot_id: str) -> list[str]:
        return [
            "restore", snapshot_id, "--target", target, "--copy", "--force",
            "--filestore-root", str(root), "--repo", str(base.repo),
        ]  # fmt: skip

    duration = launcher.calibrate(args(ids[-1]), args(ids[0]))
    current = generations[ids[0]]
    phases: Counter = Counter()

    for trial in range(1, trials(3, 100) + 1):
        snapshot_id = fault_random.choice(ids)
        new = generations[snapshot_id]
        milestone = None
        if fault_random.random() < 0.25:
            # The short window of the renames, which uniform delays rarely hit.
            def milestone() -> bool:
                return any(root.glob(JOURNAL_PREFIX + "*"))

        delay = fault_random.uniform(0, duration)
        outcome = launcher.run_killed(args(snapshot_id), delay, milestone)
        fault_record.trials += 1
        fault_record.inputs += 1
        fault_record.faults += outcome.killed
        assert outcome.killed or outcome.returncode == 0, outcome.stderr

        journal = any(root.glob(JOURNAL_PREFIX + "*"))
        known = {"old": base.states[current], "new": base.states[new]}
        database, files, problems = target_state(target, root / target, known)
        if not outcome.killed:
            phases["after the end"] += 1
        elif journal:
            phases["in the renames"] += 1
        elif leftovers_of(outcome.pid, None, root):
            phases["restoring into temporary names"] += 1
        else:
            phases[
                "before any change" if database == "old" else "after the renames"
            ] += 1
        if not journal and database != files:
            problems.append(f"database is {database} but folder is {files}")
        again = launcher.run(*args(snapshot_id))
        if again.returncode != 0:
            problems.append(f"next restore failed: {again.stderr[-2000:]}")
        else:
            state = base.states[new]
            if table_counts(target) != state.counts:
                problems.append("row counts differ after the next restore")
            if file_digest(root / target) != state.files:
                problems.append("filestore differs after the next restore")
        problems += leftovers_of(outcome.pid, None, root)
        settle(fault_record, problems, fault_seed, trial)
        current = new
    note_phases(fault_record, phases)


# Functions whose call kills a restore: the last of its work before the renames,
# then each step of the renames. The short form tries the two around the swap
# journal's write.
RESTORE_STEPS = (
    "odoo_dr.engine.restore:_swap_into_place",
    "odoo_dr.engine.swap:_write",
    "odoo_dr.engine.swap:_swap_folder",
    "odoo_dr.engine.swap:_swap_database",
    "odoo_dr.pg.temporary:finish",
    "odoo_dr.engine.swap:_clean_up",
)


def test_restore_killed_at_each_step(base, tmp_path, database_names, launcher):
    ids = sorted(manifest_ids(base.repo))
    root = tmp_path / "filestore"
    target = f"odoo_dr_crash_step_{uuid.uuid4().hex[:6]}"
    database_names.append(target)

    def args(snapshot_id: str) -> list[str]:
        return [
            "restore", snapshot_id, "--target", target, "--copy", "--force",
            "--filestore-root", str(root), "--repo", str(base.repo),
        ]  # fmt: skip

    first = launcher.run(*args(ids[0]))
    assert first.returncode == 0, first.stderr
    steps = RESTORE_STEPS if full_scale() else RESTORE_STEPS[1:4]
    for step, snapshot_id in zip(steps, itertools.cycle(reversed(ids)), strict=False):
        killed = launcher.run_killed(args(snapshot_id), 3600.0, kill_at=step)
        assert killed.killed, (step, killed.stderr)

        # Without --force, the next restore finishes the killed one's renames,
        # then finds the target there.
        plain = launcher.run(*[arg for arg in args(snapshot_id) if arg != "--force"])
        assert plain.returncode == 2, (step, plain.stderr)
        assert "already exists" in plain.stderr, step
        assert not any(root.glob(JOURNAL_PREFIX + "*")), step
        database, files, problems = target_state(target, root / target, base.states)
        assert problems == [], step
        assert database == files, step

        again = launcher.run(*args(snapshot_id))
        assert again.returncode == 0, (step, again.stderr)
        state = base.states[base.generations[snapshot_id]]
        assert table_counts(target) == state.counts, step
        assert file_digest(root / target) == state.files, step
        assert leftovers_of(killed.pid, None, root) == [], step
