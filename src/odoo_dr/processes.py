"""This host's processes: liveness of a pid, and children that die with odoo-dr."""

from __future__ import annotations

import os
import shutil
import socket

HOST = socket.gethostname()


def process_alive(pid: int) -> bool:
    """Return whether process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dying_with_parent(command: list[str]) -> list[str]:
    """Return `command` wrapped so the child is killed when odoo-dr dies.

    util-linux's `setpriv --pdeathsig KILL` sets the Linux parent-death signal, so a
    pg_dump or pg_restore never outlives an odoo-dr killed with SIGKILL. Without
    setpriv the command runs as it is.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return command
    return [setpriv, "--pdeathsig", "KILL", "--", *command]
