"""Small or read-only file systems for one command, in a private mount namespace.

`unshare --mount --map-root-user` gives a shell its own view of the mounts: a tmpfs
or a read-only bind mount made there is seen by that shell and its children
(odoo-dr, pg_dump, pg_restore) only, and goes away with them. PostgreSQL, reached
over TCP, is outside and unchanged. Tests that need this are skipped where the
kernel does not allow user namespaces.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest


@functools.cache
def namespaces_available() -> bool:
    result = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "true"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def require_namespaces() -> None:
    if not namespaces_available():
        pytest.skip("unshare --mount --map-root-user is not allowed here")


def tmpfs(path: Path, size: int, inodes: int | None = None) -> str:
    """Return the shell line that mounts a tmpfs of `size` bytes on `path`."""
    options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
    return f"mount -t tmpfs -o {options} tmpfs {shlex.quote(str(path))}"


def read_only(path: Path) -> str:
    """Return the shell lines that make `path` read-only (a bind mount onto itself)."""
    quoted = shlex.quote(str(path))
    return f"mount --bind {quoted} {quoted}\nmount -o remount,bind,ro {quoted}"


def odoo_dr(*args: str) -> str:
    """Return the shell command line that runs odoo-dr with `args`."""
    return shlex.join([sys.executable, "-m", "odoo_dr", *args])


def run_in_namespace(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `script` with sh in a private mount namespace and return its result.

    The script should end with the command whose exit code the test checks, or
    save that code and `exit` with it after looking at the mounted folders (which
    vanish when the script ends).
    """
    require_namespaces()
    return subprocess.run(
        ["unshare", "--mount", "--map-root-user", "--propagation", "private",
         "sh", "-c", "set -e\n" + script],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
        check=False,
    )  # fmt: skip
