"""The suite's log of odoo-dr runs, and the scan of that log for secrets.

The controller names a session folder in `ODOO_DR_TEST_LOGS` before the workers
start. In every worker, each odoo-dr child process that a test starts through
`subprocess` has its command line, stdout and stderr appended to
`<worker>.log`, and the records of the `odoo_dr` logger of in-process calls go
there too. Tests register the secrets they hand to odoo-dr with `secret()`, which
appends them to `<worker>.secrets`, a file the scan skips. The scan also collects
the literal secrets written in the tests' source. When the session ends, the
controller fails it if any log contains any secret, naming the log file and the
secret's label, never the secret.

Known gaps: the stdout and stderr of an odoo-dr child are logged only when the
test reads them through `communicate()` (so `subprocess.run`) or through the
process's pipes, and output that an in-process CLI call prints straight to
`sys.stderr` is not logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LOG_FOLDER_VARIABLE = "ODOO_DR_TEST_LOGS"
SECRETS_SUFFIX = ".secrets"

# Values too common to prove a leak (the moto credentials, the word itself), and
# values in secret-looking places that name where a secret comes from.
COMMON_VALUES = frozenset(
    {"testing", "passphrase", "password", "secret", "False", "True", "setup"}
)
REFERENCES = frozenset({"secret odoo-db/password"})
MIN_SECRET_LENGTH = 8

_write_lock = threading.Lock()


def log_folder() -> Path | None:
    folder = os.environ.get(LOG_FOLDER_VARIABLE)
    return Path(folder) if folder else None


def worker_name() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "controller")


def _append(suffix: str, text: str) -> None:
    folder = log_folder()
    if folder is None:
        return
    with _write_lock, open(folder / f"{worker_name()}{suffix}", "a") as stream:
        stream.write(text)


def secret(value: str, label: str) -> str:
    """Register `value` as a secret under `label` for the session's scan; return it."""
    _append(SECRETS_SUFFIX, json.dumps({"label": label, "value": value}) + "\n")
    return value


def log_text(source: str, text: str) -> None:
    """Append `text` from `source` (a stream or logger name) to this worker's log."""
    if text:
        _append(".log", f"--- {source}\n{text}\n")


def _as_text(data: Any) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return str(data)


def is_odoo_dr_command(args: Any) -> bool:
    """Return whether a Popen `args` starts odoo-dr (`-m odoo_dr`, a script, `-c`)."""
    if isinstance(args, str | bytes | os.PathLike):
        words = shlex.split(os.fsdecode(args)) if isinstance(args, str | bytes) else []
        words = words or [os.fspath(args)]
    else:
        words = [os.fsdecode(word) for word in args]
    for index, word in enumerate(words):
        if word == "-m" and words[index + 1 : index + 2] == ["odoo_dr"]:
            return True
        if os.path.basename(word) == "odoo-dr":
            return True
        if word == "-c" and "odoo_dr.cli" in " ".join(words[index + 1 : index + 2]):
            return True
        if "-m odoo_dr" in word or "from odoo_dr.cli" in word:
            return True
    return False


class _TeeStream:
    """A read pipe of a child process that logs what the test reads from it."""

    def __init__(self, stream: Any, source: str) -> None:
        self._stream = stream
        self._source = source

    def _logged(self, data: Any) -> Any:
        log_text(self._source, _as_text(data))
        return data

    def read(self, *args: Any) -> Any:
        return self._logged(self._stream.read(*args))

    def readline(self, *args: Any) -> Any:
        return self._logged(self._stream.readline(*args))

    def readlines(self, *args: Any) -> Any:
        return self._logged(self._stream.readlines(*args))

    def __iter__(self):
        return self

    def __next__(self) -> Any:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def fileno(self) -> int:
        return self._stream.fileno()

    def close(self) -> None:
        self._stream.close()

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class LoggedPopen(subprocess.Popen):
    """Popen that logs the command line and output of odoo-dr child processes."""

    def __init__(self, args: Any, *rest: Any, **options: Any) -> None:
        super().__init__(args, *rest, **options)
        self._odoo_dr_log = is_odoo_dr_command(args)
        if not self._odoo_dr_log:
            return
        command_line = (
            args if isinstance(args, str) else shlex.join(map(os.fsdecode, args))
        )
        log_text(f"command of pid {self.pid}", command_line)
        # communicate() reads the pipes by their descriptors, so the wrappers only
        # see what a test reads from process.stdout and process.stderr itself.
        if self.stdout is not None:
            self.stdout = _TeeStream(self.stdout, f"stdout of pid {self.pid}")
        if self.stderr is not None:
            self.stderr = _TeeStream(self.stderr, f"stderr of pid {self.pid}")

    def communicate(self, *args: Any, **options: Any) -> tuple[Any, Any]:
        out, err = super().communicate(*args, **options)
        if self._odoo_dr_log:
            log_text(f"stdout of pid {self.pid}", _as_text(out))
            log_text(f"stderr of pid {self.pid}", _as_text(err))
        return out, err


class LogFileHandler(logging.Handler):
    """Append the records of in-process odoo-dr calls to this worker's log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log_text(f"log {record.name}", self.format(record))
        except Exception:  # noqa: BLE001 - a logging handler must not raise
            self.handleError(record)


# Literal secrets in the tests' source: environment values, assignments and
# configuration lines whose name marks them as secret.
_LITERAL_PATTERNS = (
    re.compile(
        r"""(?:PASSPHRASE|PASSWORD|TOKEN|SECRET_ACCESS_KEY)["']?\s*[:=]\s*"""
        r"""(?P<quote>["'])(?P<value>(?:(?!(?P=quote))[^\n{}])+)(?P=quote)"""
    ),
    re.compile(r"""(?:admin_passwd|db_password)\s*=\s*(?P<value>[^\s"'\\{}]+)"""),
    re.compile(r"""requirepass[,\s]+(?P<value>[A-Za-z0-9_-]+)"""),
)


def literal_secrets(sources: Iterable[Path], product: str = "") -> dict[str, str]:
    """Return label -> value for the literal secrets written in `sources`.

    A value that occurs in `product`, the text of odoo-dr's own source (such as
    "new passphrase" in a message), proves nothing when it shows up in a log.
    """
    found: dict[str, str] = {}
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in _LITERAL_PATTERNS:
            for match in pattern.finditer(text):
                value = match["value"]
                if is_distinctive(value) and value not in product:
                    line = text.count("\n", 0, match.start()) + 1
                    found.setdefault(value, f"{path.name}:{line}")
    return {label: value for value, label in found.items()}


def is_distinctive(value: str) -> bool:
    """Return whether `value` is long and rare enough that a match is a leak."""
    if len(value) < MIN_SECRET_LENGTH or value in COMMON_VALUES | REFERENCES:
        return False
    # Variable references ($DB_PASSWORD), placeholders (<secret:...>) and single
    # lowercase words such as "environment" are not secrets.
    return not (value[0] in "$<" or value.isalpha() and value.islower())


def registered_secrets(folder: Path) -> dict[str, str]:
    """Return label -> value of the secrets the workers registered in `folder`."""
    found: dict[str, str] = {}
    for path in sorted(folder.glob(f"*{SECRETS_SUFFIX}")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if is_distinctive(entry["value"]):
                found.setdefault(entry["value"], entry["label"])
    return {label: value for value, label in found.items()}


def scan(folder: Path, secrets: dict[str, str]) -> list[tuple[str, str]]:
    """Return (log file name, secret label) for each secret found in a log.

    Every file of `folder` but the secret registries is read as bytes, and each
    secret is looked for as UTF-8 and in its `repr` form (escaped quotes).
    """
    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.endswith(SECRETS_SUFFIX):
            continue
        data = path.read_bytes()
        for label, value in sorted(secrets.items()):
            forms = {value.encode(), repr(value)[1:-1].encode()}
            if any(form in data for form in forms):
                found.append((path.name, label))
    return found
