"""Run one command and write its wall time, CPU time and peak memory as JSON.

Usage: python child_usage.py RESULT_FILE COMMAND [ARGUMENT ...]

A child's peak resident set size (`ru_maxrss`) includes the peak of the process it
was started from. A child started by `subprocess` (with `vfork` or `fork`) begins
with its parent's memory, and Linux keeps the high-water mark of that memory when
the child calls `exec`. So a benchmark that generated a large platform, or parsed
a large report, would pass its own peak on to every review it starts. This small
launcher starts the command with `fork` from a fresh interpreter, so the peak it
reports is the command's own, or this launcher's resident size when the command
uses less (7 MB with Python 3.11 on Linux 6.18).

The command's standard streams are this launcher's. The launcher exits with the
command's exit code.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    result_file, command = argv[0], argv[1:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _pid, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(result_file, "w") as handle:
        json.dump(
            {
                "exit_code": code,
                "seconds": round(seconds, 3),
                "user_seconds": round(usage.ru_utime, 3),
                "system_seconds": round(usage.ru_stime, 3),
                # Linux reports ru_maxrss in KiB.
                "peak_rss_bytes": usage.ru_maxrss * 1024,
            },
            handle,
        )
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
