"""The pieces of the crash harness: commands killed with SIGKILL, and what must hold.

A command runs through odoo-dr's own entry point in a process forked from one that
imported odoo-dr once (see `Launcher`), in a session of its own, so that one
`os.killpg` kills it together with its pg_dump or pg_restore children. The checks
read the repository and the server the way a user would afterwards: the snapshot
listing, the catalog, `verify --read-data`, and restores compared with the source
as it was when each snapshot was taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import admin_connection, query
from odoo_dr.engine.swap import JOURNAL_PREFIX
from odoo_dr.pg.temporary import RESTORE_PREFIX
from odoo_dr.repository import catalog
from odoo_dr.repository.store import Repository

HOST = socket.gethostname()
# The label that names the state of the source database a snapshot was taken in.
GENERATION = "generation"


@dataclass(frozen=True)
class SourceState:
    """Row counts of every table and the content of every file, at one moment."""

    counts: dict[str, int]
    files: dict[str, str]


@dataclass
class Outcome:
    """How a run that the harness tried to kill ended."""

    pid: int
    returncode: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        """Whether the kill landed before the command ended by itself."""
        return self.returncode == -signal.SIGKILL


# A child process that imports odoo-dr once, then forks one command per request (a
# JSON line: the arguments, the files for stdout and stderr, and optionally a
# function "module:name" or "module:Class.name" whose call kills the command). It
# writes the child's pid at once, then its exit status when it ends: the negative
# signal number when it was killed. Each child starts a session of its own, so that
# killing its process group kills its pg_dump or pg_restore too.
LAUNCHER = """
import importlib, json, os, signal, sys
import odoo_dr.cli.app
import odoo_dr.engine.backup, odoo_dr.engine.copy, odoo_dr.engine.prune
import odoo_dr.engine.restore, odoo_dr.engine.verify
from odoo_dr.cli.app import main

answers = os.fdopen(os.dup(1), "w")
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            stream = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(stream, fd)
        if request.get("kill_at"):
            module_name, name = request["kill_at"].split(":")
            owner = importlib.import_module(module_name)
            *path, last = name.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, last, lambda *a, **k: os.killpg(0, signal.SIGKILL))
        sys.argv = ["odoo-dr", *request["args"]]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:
            code = 70
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, file=answers, flush=True)
    _pid, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(code, file=answers, flush=True)
"""


class Launcher:
    """A process that forks odoo-dr commands, so that each one starts without
    importing Python modules again (a second of CPU per command otherwise)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run_killed(
        self,
        args: list[str],
        delay: float,
        milestone: Callable[[], bool] | None = None,
        kill_at: str | None = None,
    ) -> Outcome:
        """Run `odoo-dr args` and return how it ended.

        Its process group is killed after `delay` seconds, or as soon as
        `milestone()` turns true, or when it calls the function `kill_at`
        ("module:name"), whichever comes first.
        """
        stdout = self.folder / "stdout"
        stderr = self.folder / "stderr"
        request = {
            "args": args,
            "stdout": str(stdout),
            "stderr": str(stderr),
            "kill_at": kill_at,
        }
        started = time.monotonic()
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answers = self.process.stdout
        pid = int(answers.readline())
        deadline = started + delay
        while not select.select([answers], [], [], 0.002)[0]:
            if time.monotonic() >= deadline or (milestone is not None and milestone()):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                break
        returncode = int(answers.readline())
        seconds = time.monotonic() - started
        return Outcome(pid, returncode, seconds, stdout.read_text(), stderr.read_text())

    def run(self, *args: str) -> Outcome:
        """Run `odoo-dr args` to its end."""
        return self.run_killed(list(args), 3600.0)

    def calibrate(self, *runs: list[str]) -> float:
        """Run each argument list of `runs` to its end; return the shortest wall time.

        The first run of a command pays for cold caches, so a command is timed
        more than once. Each run must succeed.
        """
        seconds = []
        for args in runs:
            outcome = self.run(*args)
            assert outcome.returncode == 0, outcome.stderr
            seconds.append(outcome.seconds)
        return min(seconds)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


# -- the source and what a restore must give back


def table_counts(dbname: str) -> dict[str, int]:
    """Return the exact row count of every table in the public schema."""
    tables = [
        row[0]
        for row in query(
            dbname,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " ORDER BY tablename",
        )
    ]
    counts = {}
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        counts[table] = query(dbname, f"SELECT count(*) FROM public.{quoted}")[0][0]
    return counts


def file_digest(folder: Path) -> dict[str, str]:
    """Return path -> SHA-256 of every file below `folder`."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            relative = str(path.relative_to(folder))
            digest[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def source_state(dbname: str, folder: Path) -> SourceState:
    return SourceState(table_counts(dbname), file_digest(folder))


def change_source(dbname: str, folder: Path, generation: int) -> None:
    """Make the next generation of the source: one more partner, one new file,
    and the file of the generation before it gone, so that pruning old snapshots
    frees packs."""
    query(
        dbname,
        "INSERT INTO res_partner (name, email) VALUES (%s, %s)",
        (f"Crash partner {generation}", f"crash{generation}@example.com"),
    )
    extra = folder / "zz"
    extra.mkdir(exist_ok=True)
    (extra / f"{generation - 1:040x}").unlink(missing_ok=True)
    (extra / f"{generation:040x}").write_bytes(os.urandom(300_000))


def restore_and_compare(
    launcher: Launcher,
    repo: str,
    snapshot_id: str,
    expected: SourceState,
    root: Path,
    database_names: list[str],
) -> list[str]:
    """Restore a snapshot as a copy and return how it differs from `expected`.

    The restored database and folder are removed again.
    """
    target = f"odoo_dr_crash_check_{uuid.uuid4().hex[:8]}"
    database_names.append(target)
    result = launcher.run(
        "restore", snapshot_id, "--target", target, "--copy",
        "--filestore-root", str(root), "--repo", repo,
    )  # fmt: skip
    if result.returncode != 0:
        return [f"restore of {snapshot_id} failed: {result.stderr[-2000:]}"]
    problems = []
    try:
        counts = table_counts(target)
        if counts != expected.counts:
            problems.append(f"{snapshot_id}: row counts differ from the source's")
        if file_digest(root / target) != expected.files:
            problems.append(f"{snapshot_id}: filestore differs from the source's")
    finally:
        drop_database(target)
        shutil.rmtree(root / target, ignore_errors=True)
    return problems


def drop_database(name: str) -> None:
    with admin_connection() as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        quoted = '"' + name.replace('"', '""') + '"'
        connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


# -- the repository as a user sees it


def manifest_ids(repo: Path) -> set[str]:
    return {path.stem for path in (repo / "snapshots").glob("*.json")}


def listed_snapshots(launcher: Launcher, repo: Path) -> dict[str, dict]:
    """Return the snapshots `odoo-dr snapshots --json` lists, by id."""
    result = launcher.run("snapshots", "--json", "--repo", str(repo))
    assert result.returncode == 0, result.stderr
    return {item["id"]: item for item in json.loads(result.stdout)}


def catalog_problems(repo: Path, listed: set[str], *, settled: bool) -> list[str]:
    """Return what the catalog shows that the manifests do not.

    Its listing must be the manifests'. When `settled` (after a run that ended by
    itself), it must hold no entry of a manifest that is gone either.
    """
    repository = Repository.open(str(repo))
    problems = []
    summaries = {summary.id for summary in repository.snapshot_summaries()}
    if summaries != listed:
        problems.append(f"catalog lists {sorted(summaries ^ listed)} unlike manifests")
    if settled:
        entries = set(catalog.read_catalog(repository).entries)
        extra = entries - manifest_ids(repo)
        if extra:
            problems.append(f"catalog entries without a manifest: {sorted(extra)}")
    return problems


def verify_problems(launcher: Launcher, repo: Path) -> list[str]:
    result = launcher.run("verify", "--read-data", "--repo", str(repo))
    if result.returncode != 0:
        return [f"verify --read-data failed: {result.stdout}{result.stderr}"[-3000:]]
    return []


def repository_problems(
    launcher: Launcher,
    repo: Path,
    states: dict[str, SourceState],
    restore: Callable[[str], bool],
    root: Path,
    database_names: list[str],
    *,
    settled: bool,
    compared: set[str] | None = None,
) -> list[str]:
    """Return what is wrong with the snapshots a repository lists.

    Every listed snapshot must have a manifest and a catalog entry, pass
    `verify --read-data`, and name a known generation. The newest, and those that
    `restore(id)` picks, must restore to the source's state of that generation.
    `compared` contains the ids already restored from this repository, which are not
    restored again, and gets those restored now.
    """
    listed = listed_snapshots(launcher, repo)
    problems = []
    manifests = manifest_ids(repo)
    if set(listed) != manifests:
        problems.append(
            f"listing {sorted(listed)} unlike manifests {sorted(manifests)}"
        )
    problems += catalog_problems(repo, set(listed), settled=settled)
    if listed:
        problems += verify_problems(launcher, repo)
    newest = max(listed, default=None)
    compared = set() if compared is None else compared
    for snapshot_id, item in sorted(listed.items()):
        generation = (item.get("labels") or {}).get(GENERATION)
        if generation not in states:
            problems.append(f"{snapshot_id}: unknown generation {generation!r}")
            continue
        if snapshot_id in compared:
            continue
        if snapshot_id == newest or restore(snapshot_id):
            problems += restore_and_compare(
                launcher,
                str(repo),
                snapshot_id,
                states[generation],
                root,
                database_names,
            )
            compared.add(snapshot_id)
    return problems


# -- what a killed run may leave, and what the next run must remove


def leftovers_of(pid: int, repo: Path | None, root: Path | None) -> list[str]:
    """Return what the killed process `pid` left that the next run should have
    removed: temporary files, locks, temporary databases, folders, swap journals."""
    found = []
    stem = f"{HOST}-{pid}-"
    for entry in Path(tempfile.gettempdir()).glob(f"odoo-dr-{stem}*"):
        found.append(f"temporary {entry}")
    if repo is not None:
        found += [f"temporary {entry}" for entry in (repo / "tmp").glob("*")]
        found += [f"lock {entry.name}" for entry in (repo / "locks").glob("*")]
    if root is not None and root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith((RESTORE_PREFIX, JOURNAL_PREFIX)):
                found.append(f"filestore leftover {entry.name}")
    rows = query(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE 'odoo-dr-%%'"
        " AND shobj_description(oid, 'pg_database') LIKE %s",
        (f"%pid {pid} on host {HOST}%",),
    )
    found += [f"database {row[0]}" for row in rows]
    return found
