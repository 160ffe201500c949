"""Hostile and mutated archives given to `odoo-dr import`.

Hostile zips (path traversal, links and devices, zip bombs, huge or duplicate
names, a huge or deeply nested manifest.json) must be rejected with exit code 2
and a one-line error before anything is written outside the import's temporary
folder. Each runs in a child process whose address space is capped at 1 GiB, with
a timeout, so a bomb that got through would end in a MemoryError or a kill, not
in exit code 2. Mutated zips, click-odoo-contrib folders and custom dumps are
checked in this process: only `RejectedError` may come out.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import strategies as st

from faults.conftest import FaultRecord
from faults.fuzzing import Tally, explore
from odoo_dr.errors import RejectedError
from odoo_dr.odoo import archives
from odoo_dr.odoo.archives import PLAIN_HEADER, PLAIN_TRAILER
from odoo_dr.repository.store import Repository

MEMORY_LIMIT = 1024**3
DUMP = PLAIN_HEADER + b"\nCREATE TABLE t (a int);\n" + PLAIN_TRAILER + b"\n"
MANIFEST = json.dumps({"odoo_dump": "1", "db_name": "acme", "version": "17.0"})
FILE_NAME = "filestore/ab/ab12cd"


def _zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _member(name: str, mode: int = 0, compression: int = zipfile.ZIP_DEFLATED):
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = compression
    if mode:
        info.external_attr = mode << 16
    return info


def valid_zip() -> bytes:
    return _zip([("dump.sql", DUMP), ("manifest.json", MANIFEST), (FILE_NAME, b"x")])


def _with_dump(*members: tuple) -> bytes:
    return _zip([("dump.sql", DUMP), *members])


def _overlapping_zip() -> bytes:
    """Return a zip whose second member's central entry points at the first's data."""
    data = bytearray(_with_dump((FILE_NAME, b"y" * 1000)))
    end = data.rindex(b"PK\x05\x06")
    directory = struct.unpack_from("<I", data, end + 16)[0]
    second = data.index(b"PK\x01\x02", directory + 4)
    struct.pack_into("<I", data, second + 42, 0)
    return bytes(data)


def _bzip2_bomb() -> bytes:
    """Return a valid backup zip with a filestore file that expands 20 MB of zeros
    from a few bytes (bzip2)."""
    bomb = _member("filestore/ab/zeros", compression=zipfile.ZIP_BZIP2)
    return _with_dump((bomb, b"\0" * 20_000_000))


def _nested_zip(depth: int, copies: int) -> bytes:
    """Return a 42.zip-style nest: zips of copies of zips, without a dump.sql."""
    inner = _zip([("filestore/zeros", b"\0" * 1_000_000)])
    for _level in range(depth):
        inner = _zip([(f"{index}.zip", inner) for index in range(copies)])
    return inner


def _many_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"filestore/{index:x}", b"")
    return buffer.getvalue()


def _encrypted_flag() -> bytes:
    data = bytearray(_with_dump())
    directory = data.index(b"PK\x01\x02")
    data[directory + 8] |= 1
    return bytes(data)


def _unsupported_method() -> bytes:
    """Return a zip whose filestore member names compression method 99."""
    data = bytearray(_with_dump((FILE_NAME, b"x")))
    for marker in (b"PK\x03\x04", b"PK\x01\x02"):
        start = 0
        while (start := data.find(marker, start)) != -1:
            offset = 26 if marker == b"PK\x03\x04" else 28
            name_at = 30 if marker == b"PK\x03\x04" else 46
            length = struct.unpack_from("<H", data, start + offset)[0]
            if data[start + name_at : start + name_at + length] == FILE_NAME.encode():
                method_at = 8 if marker == b"PK\x03\x04" else 10
                struct.pack_into("<H", data, start + method_at, 99)
            start += 4
    return bytes(data)


def _patched(data: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    """Return `data` with `value` written at `offset` of every `marker` record."""
    changed = bytearray(data)
    start = 0
    while (start := changed.find(marker, start)) != -1:
        changed[start + offset : start + offset + len(value)] = value
        start += len(marker)
    return bytes(changed)


def _damaged_stream(compression: int) -> bytes:
    """Return a zip whose filestore member's compressed bytes are overwritten."""
    content = bytes(range(256)) * 400
    data = _with_dump((_member(FILE_NAME, compression=compression), content))
    # The first copy of the name is the local header's; the data follows it.
    start = data.index(FILE_NAME.encode()) + len(FILE_NAME) + 10
    return data[:start] + b"\xff" * 64 + data[start + 64 :]


HOSTILE = {
    "parent traversal": lambda: _with_dump(("../evil.txt", b"x")),
    "filestore traversal": lambda: _with_dump(("filestore/../../evil.txt", b"x")),
    "absolute path": lambda: _with_dump(("/tmp/evil.txt", b"x")),
    "backslash traversal": lambda: _with_dump(("filestore\\..\\..\\evil.txt", b"x")),
    "drive letter": lambda: _with_dump(("C:/evil.txt", b"x")),
    "symbolic link": lambda: _with_dump(
        (_member("filestore/ab/link", stat.S_IFLNK | 0o777), b"/etc/passwd")
    ),
    "named pipe": lambda: _with_dump(
        (_member("filestore/ab/pipe", stat.S_IFIFO | 0o644), b"")
    ),
    "character device": lambda: _with_dump(
        (_member("filestore/ab/dev", stat.S_IFCHR | 0o644), b"")
    ),
    "duplicate dump": lambda: _zip([("dump.sql", DUMP), ("dump.sql", b"DROP")]),
    "duplicate by dot": lambda: _with_dump(
        (FILE_NAME, b"a"), ("filestore/./ab/ab12cd", b"b")
    ),
    "duplicate by slash": lambda: _with_dump(
        (FILE_NAME, b"a"), ("filestore//ab/ab12cd", b"b")
    ),
    "file and folder": lambda: _with_dump(("filestore/ab", b"a"), (FILE_NAME, b"b")),
    "huge member name": lambda: _with_dump(("filestore/" + "n" * 60_000, b"x")),
    "huge manifest": lambda: _with_dump(("manifest.json", b" " * 17_000_000 + b"{}")),
    "nested manifest": lambda: _with_dump(
        ("manifest.json", b"[" * 200_000 + b"]" * 200_000)
    ),
    "manifest not object": lambda: _with_dump(("manifest.json", b"[1, 2]")),
    "overlapping members": _overlapping_zip,
    "bzip2 bomb": _bzip2_bomb,
    "nested zips": lambda: _nested_zip(depth=3, copies=10),
    "many members": lambda: _many_members(20_000),
    "encrypted member": _encrypted_flag,
    "unsupported method": _unsupported_method,
    "zip version 17": lambda: _patched(valid_zip(), b"PK\x01\x02", 6, b"\xaa\x00"),
    "bad utf-8 name": lambda: _patched(
        _with_dump(("filestore/ab/\u00e9", b"x")).replace(
            "\u00e9".encode(), b"\xff\xfe"
        ),
        b"PK\x01\x02",
        8,
        b"\x00\x08",
    ),
    "damaged bzip2": lambda: _damaged_stream(zipfile.ZIP_BZIP2),
    "damaged lzma": lambda: _damaged_stream(zipfile.ZIP_LZMA),
    "damaged deflate": lambda: _damaged_stream(zipfile.ZIP_DEFLATED),
    "truncated": lambda: valid_zip()[:-30],
    "no dump": lambda: _zip([(FILE_NAME, b"x"), ("manifest.json", MANIFEST)]),
    "truncated dump": lambda: _zip([("dump.sql", PLAIN_HEADER + b"\nCREATE")]),
    "shell in dump": lambda: _zip(
        [("dump.sql", PLAIN_HEADER + b"\n\\! touch /tmp/x\n" + PLAIN_TRAILER + b"\n")]
    ),
}


# A process that imports odoo-dr once and runs each `odoo-dr` command line it
# reads in a forked child, whose address space is capped and which SIGALRM ends
# after the timeout. It prints the child's exit code (negative: the signal that
# ended it). Forking saves the command line's start-up time on every case.
RUNNER = r"""
import json, os, resource, signal, sys
from odoo_dr.cli.app import main
limit, timeout = int(sys.argv[1]), int(sys.argv[2])
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        signal.alarm(timeout)
        output = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.environ.update(request["env"])
        sys.argv = ["odoo-dr", *request["args"]]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""
TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def limited_cli() -> Iterator[Callable[..., tuple[int, str]]]:
    """Yield a function that runs `odoo-dr ARGS` under the memory limit and
    returns its exit code and output."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(MEMORY_LIMIT), str(TIMEOUT_SECONDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None

    def run(output: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
        request = {"args": list(args), "env": env, "output": str(output)}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        code = json.loads(process.stdout.readline())
        return code, output.read_text(errors="replace")

    yield run
    process.stdin.close()
    process.wait(timeout=60)


def _tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_zip_rejected(
    case: str, fault_record: FaultRecord, tmp_path: Path, limited_cli
):
    archive = tmp_path / "in" / "backup.zip"
    archive.parent.mkdir()
    archive.write_bytes(HOSTILE[case]())
    repository = Repository.init(str(tmp_path / "repo"))
    before = _tree(tmp_path)
    fault_record.trials = 1
    fault_record.inputs = 1
    fault_record.faults = 1
    fault_record.notes.append(case)

    # PGPORT names a closed port: a case that reached PostgreSQL would fail with
    # another message rather than load anything.
    env = {"ODOO_DR_REPO": repository.location, "PGPORT": "1"}
    output = tmp_path.parent / f"{tmp_path.name}.output"
    code, text = limited_cli(output, env, "import", str(archive), "--tenant", "t")
    if code != 2 or "unexpected" in text:
        fault_record.lost = 1
    assert code == 2, f"{case}: exit {code}: {text}"
    assert "odoo-dr: error: " in text, f"{case}: {text}"
    assert "unexpected" not in text, f"{case}: {text}"
    assert "connect" not in text.lower(), f"{case}: {text}"
    assert _tree(tmp_path) == before, f"{case}: files left behind"
    assert not Path("/tmp/evil.txt").exists(), f"{case}: wrote /tmp/evil.txt"


# -- mutated archives, checked in this process


@st.composite
def mutated_zips(draw) -> tuple[str, bytes]:
    """Return (kind, zip bytes): a valid Odoo zip mutated in bytes or members."""
    data = valid_zip()
    kind = draw(
        st.sampled_from(["flip", "insert", "delete", "truncate", "rename", "mode"])
    )
    if kind in {"rename", "mode"}:
        names = ["dump.sql", "manifest.json", FILE_NAME]
        target = draw(st.sampled_from(names))
        name = target
        mode = 0
        if kind == "rename":
            name = draw(
                st.sampled_from(
                    [
                        "../x",
                        "/x",
                        "filestore/../../x",
                        "C:x",
                        "a\\b",
                        "filestore/",
                        "dump.sql/",
                        "filestore/ab/../../dump.sql",
                        "filestore/\x00x",
                        "filestore/" + "n" * 300,
                        "manifest.json",
                        "dump.sql",
                    ]
                )
                | st.text(min_size=1, max_size=30)
            )
        else:
            mode = draw(st.integers(0, 0xFFFF))
        members = []
        for member in names:
            content = {"dump.sql": DUMP, "manifest.json": MANIFEST.encode()}.get(
                member, b"x"
            )
            if member == target:
                info = _member(name, mode)
                members.append((info, content))
            else:
                members.append((member, content))
        return kind, _zip(members)
    size = len(data)
    position = draw(st.integers(0, size - 1))
    if kind == "flip":
        changed = bytearray(data)
        changed[position] ^= 1 << draw(st.integers(0, 7))
        return kind, bytes(changed)
    if kind == "insert":
        return kind, data[:position] + draw(st.binary(min_size=1, max_size=8)) + data[
            position:
        ]
    if kind == "delete":
        return kind, data[:position] + data[position + draw(st.integers(1, 16)) :]
    return kind, data[:position]


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def test_mutated_zips_rejected(
    fault_record: FaultRecord, fault_seed: int, tmp_path: Path
):
    archive = tmp_path / "backup.zip"
    tally = Tally()

    def check(case: tuple[str, bytes]) -> None:
        kind, data = case
        tally.count(kind)
        archive.write_bytes(data)
        work = tmp_path / "work"
        work.mkdir()
        try:
            source = archives.identify(archive, None)
            checked = archives.check(source, work)
        except RejectedError as exc:
            assert exc.message, f"seed {fault_seed}: empty message"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            tally.lost += 1
            raise AssertionError(
                f"seed {fault_seed}: {kind}: {type(exc).__name__}: {exc}"[:600]
            ) from None
        finally:
            outside = set(_tree(tmp_path)) - {"backup.zip", "work"}
            outside = {name for name in outside if not name.startswith("work/")}
            shutil.rmtree(work)
        assert not outside, f"seed {fault_seed}: {kind}: wrote {outside}"
        assert _inside(checked.dump, work), f"seed {fault_seed}: {checked.dump}"

    # The dump's date as month 13 (bits 5-8 of the DOS date field).
    bad_date = _patched(valid_zip(), b"PK\x01\x02", 14, b"\xa1\x51")
    explore(
        mutated_zips(),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(("flip", bad_date),),
    )


@pytest.fixture(scope="module")
def custom_dump(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Return a real pg_dump custom-format dump of a small database."""
    from odoo_dr.pg.binaries import find_newest_tools

    tools = find_newest_tools("dumping a sample")
    path = tmp_path_factory.mktemp("dump") / "db.dump"
    env = {**os.environ, "PGHOST": os.environ.get("PGHOST", "127.0.0.1")}
    env.setdefault("PGUSER", "postgres")
    subprocess.run(
        [tools.pg_dump, "--format=c", f"--file={path}", "postgres"],
        env=env,
        check=True,
        timeout=60,
    )
    return path.read_bytes()


@st.composite
def mutated_folders(draw, dump: bytes) -> tuple[str, bytes, bytes]:
    """Return (kind, db.dump, manifest.json) of a mutated click-odoo-contrib folder."""
    kind = draw(
        st.sampled_from(["dump flip", "dump truncate", "dump insert", "manifest"])
    )
    manifest = MANIFEST.encode()
    if kind == "manifest":
        manifest = draw(
            st.binary(max_size=64)
            | st.sampled_from([b"[" * 100_000, b"null", b"1e400", b'{"db_name": 5}'])
        )
        return kind, dump, manifest
    position = draw(st.integers(0, len(dump) - 1))
    if kind == "dump flip":
        changed = bytearray(dump)
        changed[position] ^= 1 << draw(st.integers(0, 7))
        return kind, bytes(changed), manifest
    if kind == "dump insert":
        extra = draw(st.binary(min_size=1, max_size=8))
        return kind, dump[:position] + extra + dump[position:], manifest
    return kind, dump[:position], manifest


def test_mutated_folders_rejected(
    fault_record: FaultRecord, fault_seed: int, tmp_path: Path, custom_dump: bytes
):
    folder = tmp_path / "backup"
    (folder / "filestore").mkdir(parents=True)
    tally = Tally()

    def check(case: tuple[str, bytes, bytes]) -> None:
        kind, dump, manifest = case
        tally.count(kind)
        (folder / "db.dump").write_bytes(dump)
        (folder / "manifest.json").write_bytes(manifest)
        work = tmp_path / "work"
        work.mkdir()
        try:
            for source in (
                archives.identify(folder, None),
                archives.identify(folder / "db.dump", None),
            ):
                archives.check(source, work)
        except RejectedError as exc:
            assert exc.message, f"seed {fault_seed}: empty message"
        except Exception as exc:  # noqa: BLE001 - any other exception is the fault
            tally.lost += 1
            raise AssertionError(
                f"seed {fault_seed}: {kind}: {type(exc).__name__}: {exc}"[:600]
            ) from None
        finally:
            shutil.rmtree(work)

    explore(
        mutated_folders(custom_dump),
        check,
        fault_seed,
        tally,
        fault_record,
        examples=(("manifest", custom_dump, b"[" * 100_000),),
        short_examples=40,
    )


def test_bzip2_bomb_small_on_disk():
    """The bomb case is a bomb: its declared size is far above its own."""
    data = _bzip2_bomb()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("filestore/ab/zeros")
    assert info.file_size > archives.MAX_RATIO * info.compress_size
    assert len(data) < 10_000


def test_deflate_member_accepted_below_ratio(tmp_path: Path):
    """Zeros deflated reach about 1000:1, below the limit, and are extracted."""
    archive = tmp_path / "backup.zip"
    archive.write_bytes(_with_dump(("filestore/ab/zeros", b"\0" * 5_000_000)))
    work = tmp_path / "work"
    work.mkdir()
    checked = archives.check(archives.identify(archive, None), work)
    assert checked.filestore is not None
    assert (checked.filestore / "ab" / "zeros").stat().st_size == 5_000_000
