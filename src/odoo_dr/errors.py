"""Exception tree and process exit codes.

Every error that odoo-dr raises on purpose derives from `OdooDrError` and carries
the exit code the command line returns for it. The table in the README lists the
same codes, and a test asserts each one.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    WARNINGS = 1
    REJECTED = 2
    BACKUP_FAILED = 3
    RESTORE_FAILED = 4
    VERIFICATION_FAILED = 5


class OdooDrError(Exception):
    """Root of odoo-dr's errors. The optional `hint` names the user's next step."""

    exit_code: ExitCode = ExitCode.REJECTED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class RejectedError(OdooDrError):
    """Bad input or a failed pre-check, raised before anything was changed."""

    exit_code = ExitCode.REJECTED


class BackupFailed(OdooDrError):
    """A backup failed and published no snapshot."""

    exit_code = ExitCode.BACKUP_FAILED


class RestoreFailed(OdooDrError):
    """A restore failed. Its target was removed and the backup is unchanged."""

    exit_code = ExitCode.RESTORE_FAILED


class DamagedDataFound(RestoreFailed):
    """A restore stopped on damaged repository data and removed what it created."""


class VerificationFailed(OdooDrError):
    """The data was restored, but its checks found problems."""

    exit_code = ExitCode.VERIFICATION_FAILED


class RepositoryError(RejectedError):
    """The repository is missing, of an unknown format, or damaged."""


class StoreUnavailable(RepositoryError):
    """A failed object store request (unreachable, timed out, denied, or an error
    response after retries): the object itself may be intact."""


class KeyRejected(RepositoryError):
    """An encrypted repository got no key, or one that opens none of its key slots."""


class SnapshotDamaged(RepositoryError):
    """An object or manifest that a snapshot needs is missing or damaged."""


class CorruptObject(SnapshotDamaged):
    """An object's content does not match its name."""


class LockHeld(RejectedError):
    """Another process holds the lock this operation needs.

    `holder` is the content of the lock file (operation, host, pid, created_at)
    when it could be read.
    """

    def __init__(
        self, message: str, hint: str | None = None, holder: dict | None = None
    ) -> None:
        super().__init__(message, hint)
        self.holder = holder
