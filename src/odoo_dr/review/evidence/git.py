"""Whether an evidence file is tracked by Git, asked of the `git` command."""

from __future__ import annotations

import logging
import subprocess
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)


@cache
def tracked_by_git(file: str) -> bool:
    """Return True when `file` is tracked in the Git work tree that contains it.

    Returns False when it is not, when it is outside any work tree, or when `git`
    cannot be run (which is logged).
    """
    path = Path(file).resolve()
    try:
        result = subprocess.run(
            ["git", "-C", str(path.parent), "ls-files", "--error-unmatch", path.name],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot ask git whether %s is tracked: %s", file, exc)
        return False
    return result.returncode == 0
