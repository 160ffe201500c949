"""Per-tenant locks, so two backups of one tenant never run at once, and the prune
lock, so no blob is deleted while a run may still refer to it.

A lock is a small JSON file created only if absent. Its holder rewrites it every
minute. A lock counts as stale when its process is gone from this host, or when it
was not rewritten for ten minutes (a holder on another host that died).

In an encrypted repository the lock's name is a keyed hash of the tenant and its
content is sealed, so neither shows which tenant is being backed up.

A tenant lock is also the shared position against prune, which deletes blobs:
every run that writes blobs takes one. Each side creates its own lock first and
then looks for the other's (a tenant lock looks for the prune lock, prune for any
tenant lock) and gives up if it finds one. Since both create before they look, when a
backup and a prune start together at least one of them finds the other's lock.

Taking over a stale lock is a race when several runs find it at once: a run that
deletes the lock may delete the fresh lock another run has just created in its
place. So a run first creates a takeover marker named after the stale lock's token
(create-if-absent, as the lock itself). Only the run that creates the marker deletes
the lock, and only if it still carries that token. Every run then creates the lock
again if absent, and the runs that lose back off with `LockHeld`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta

from odoo_dr.errors import LockHeld, OdooDrError
from odoo_dr.processes import process_alive
from odoo_dr.repository import crypto
from odoo_dr.repository.backend import Backend, ObjectNotFound

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60
STALE_AFTER = timedelta(minutes=10)
PRUNE_LOCK_KEY = "locks/prune.json"
TENANT_LOCK_PREFIX = "locks/tenant-"
RUN_LOCK_PREFIX = "locks/run-"
TAKEOVER_PREFIX = "locks/takeover-"
# Markers tried per stale lock: a marker whose run died turns stale in its turn,
# and the next number is tried. The run that wins a takeover deletes the stale
# markers it passed, so they do not pile up over crashes.
TAKEOVER_ATTEMPTS = 64


def read_lock(
    backend: Backend, key: str, keys: crypto.RepositoryKeys | None = None
) -> dict | None:
    """Return the content of the lock file `key`, {} if it is damaged, else None."""
    try:
        raw = backend.read(key)
        if keys is not None:
            raw = keys.open(raw, crypto.LOCK + key.encode("ascii"))
        return json.loads(raw)
    except ObjectNotFound:
        return None
    except ValueError:
        # A lock file that is not JSON (or fails to open) was cut short by a crash:
        # treat it as stale.
        return {}


def is_stale(holder: dict) -> bool:
    """Return whether a lock's holder is gone: dead on this host, or silent."""
    try:
        refreshed = datetime.fromisoformat(holder["refreshed_at"])
        host = holder["host"]
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return True
    if host == socket.gethostname() and not process_alive(pid):
        return True
    return datetime.now(UTC) - refreshed > STALE_AFTER


def _identity(holder: dict) -> str:
    return str(holder.get("token") or "damaged")


def describe_holder(holder: dict) -> str:
    return (
        f"{holder.get('operation')} by pid {holder.get('pid')} on host "
        f"{holder.get('host')} since {holder.get('created_at')}"
    )


class TenantLock:
    def __init__(
        self,
        backend: Backend,
        tenant: str,
        operation: str,
        keys: crypto.RepositoryKeys | None = None,
    ) -> None:
        self.backend = backend
        self.tenant = tenant
        self.operation = operation
        self.keys = keys
        if keys is not None:
            digest = keys.name("tenant lock", tenant)[:32]
        else:
            digest = hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:32]
        self.key = f"locks/tenant-{digest}.json"
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._created_at = datetime.now(UTC)

    def _payload(self, key: str | None = None) -> bytes:
        key = key or self.key
        payload = json.dumps(
            {
                "tenant": self.tenant,
                "operation": self.operation,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "created_at": self._created_at.isoformat(),
                "refreshed_at": datetime.now(UTC).isoformat(),
                "token": self.token,
            },
            indent=1,
        ).encode("utf-8")
        if self.keys is not None:
            return self.keys.seal(payload, crypto.LOCK + key.encode("ascii"))
        return payload

    def _read(self) -> dict | None:
        return read_lock(self.backend, self.key, self.keys)

    def _is_stale(self, holder: dict) -> bool:
        return is_stale(holder)

    def _subject(self) -> str:
        return f"tenant {self.tenant!r}"

    def acquire(self) -> None:
        for _attempt in range(3):
            if self.backend.create_exclusive(self.key, self._payload()):
                self._start_refresh()
                log.debug("locked %s operation=%s", self._subject(), self.operation)
                self._after_acquire()
                return
            holder = self._read()
            if holder is None:
                continue
            if not self._is_stale(holder):
                raise LockHeld(
                    f"{self._subject()} is locked: {describe_holder(holder)}",
                    hint="wait for that run to finish; if its process is gone, "
                    f"remove {self.backend.describe()}/{self.key}",
                    holder=holder,
                )
            if "pid" in holder and "host" in holder:
                log.warning(
                    "removing stale lock of %s left by pid %s on host %s",
                    self._subject(),
                    holder["pid"],
                    holder["host"],
                )
            else:
                log.warning(
                    "removing damaged lock of %s: %s/%s is not a lock file that "
                    "names its process",
                    self._subject(),
                    self.backend.describe(),
                    self.key,
                )
            if not self._take_over(holder):
                raise LockHeld(
                    f"cannot lock {self._subject()}: another run is taking over its "
                    "stale lock",
                    hint="run the command again once the other run has finished",
                )
        raise LockHeld(
            f"cannot lock {self._subject()}: another run took the lock first",
            hint="run the command again once the other run has finished",
        )

    def _take_over(self, stale: dict) -> bool:
        """Delete the stale lock `stale` unless another run is deleting it.

        Returns False when a live run holds the takeover marker of this stale
        lock, and True when the caller may try to create the lock again (the
        stale lock is gone, or another run has replaced it).
        """
        identity = _identity(stale)
        lock_digest = hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:32]
        token_digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        prefix = f"{TAKEOVER_PREFIX}{lock_digest}-{token_digest}-"
        passed: list[str] = []
        for number in range(TAKEOVER_ATTEMPTS):
            marker = f"{prefix}{number}.json"
            if self.backend.create_exclusive(marker, self._payload(marker)):
                try:
                    current = self._read()
                    # Only this run can delete a lock that still has the stale
                    # token, so the lock deleted here is never a fresh one.
                    if current is not None and _identity(current) == identity:
                        self.backend.delete(self.key)
                finally:
                    self.backend.delete(marker)
                self._delete_dead_markers(passed)
                return True
            owner = read_lock(self.backend, marker, self.keys)
            if owner is None:
                # That takeover has finished: create the lock if still absent.
                return True
            if not is_stale(owner):
                return False
            # The run that created this marker died during its takeover: try
            # the next number.
            passed.append(marker)
        return False

    def _delete_dead_markers(self, markers: list[str]) -> None:
        """Delete takeover markers whose runs died.

        Safe against a run that reads one meanwhile: a missing marker only
        sends that run to create the lock if absent, and it deletes no lock
        unless it holds a marker and the lock still has the stale token.
        """
        for marker in markers:
            try:
                self.backend.delete(marker)
            except OdooDrError as exc:
                log.warning(
                    "cannot remove the takeover marker %s/%s: %s",
                    self.backend.describe(),
                    marker,
                    exc.message,
                )

    def _after_acquire(self) -> None:
        """Give up the new lock if a prune runs, which may delete any blob."""
        holder = read_lock(self.backend, PRUNE_LOCK_KEY, self.keys)
        if holder is None or is_stale(holder):
            return
        self.release()
        raise LockHeld(
            f"cannot {self.operation} {self._subject()} while the repository is "
            f"being pruned: {describe_holder(holder)}",
            hint="run the command again once the prune has finished; if its "
            f"process is gone, remove {self.backend.describe()}/{PRUNE_LOCK_KEY}",
        )

    def _start_refresh(self) -> None:
        self._thread = threading.Thread(
            target=self._refresh_loop, name="odoo-dr-lock", daemon=True
        )
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                holder = self._read()
                if not holder or holder.get("token") != self.token:
                    log.error("lost the lock of %s to another run", self._subject())
                    return
                self.backend.write(self.key, self._payload())
            except (OdooDrError, OSError) as exc:
                # The storage may come back before the lock turns stale, and the run
                # itself meets the same fault and reports it.
                reason = exc.message if isinstance(exc, OdooDrError) else str(exc)
                log.warning(
                    "cannot refresh the lock of %s: %s", self._subject(), reason
                )

    def release(self) -> None:
        """Remove the lock if this run still holds it.

        A lock that cannot be removed (the storage went away) is left with a
        warning, not an error, because the command reports the run's own outcome
        (a published snapshot, or the error that stopped it). The next run takes
        the lock over once it is stale.
        """
        self._stop.set()
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join()
        try:
            holder = self._read()
            if holder and holder.get("token") == self.token:
                self.backend.delete(self.key)
        except (OdooDrError, OSError) as exc:
            reason = exc.message if isinstance(exc, OdooDrError) else str(exc)
            log.warning(
                "cannot remove the lock %s/%s of %s: %s; the next run takes it "
                "over once it is stale (its process gone from this host, or not "
                "refreshed for %d minutes)",
                self.backend.describe(),
                self.key,
                self._subject(),
                reason,
                STALE_AFTER.total_seconds() // 60,
            )

    def __enter__(self) -> TenantLock:
        try:
            self.acquire()
        except BaseException:
            # SIGINT or SIGTERM right after the lock file appeared: remove it, since
            # __exit__ is not called when __enter__ raises.
            self.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class PruneLock(TenantLock):
    """The exclusive lock of the whole repository that prune holds.

    Prune takes it only when no tenant lock is held, and a tenant lock taken
    afterwards is given up at once (see `TenantLock._after_acquire`).
    """

    def __init__(
        self, backend: Backend, keys: crypto.RepositoryKeys | None = None
    ) -> None:
        super().__init__(backend, "", "prune", keys)
        self.key = PRUNE_LOCK_KEY

    def _subject(self) -> str:
        return f"repository {self.backend.describe()} (prune)"

    def _after_acquire(self) -> None:
        held = []
        for key in sorted(self.backend.list("locks/")):
            if not key.startswith(TENANT_LOCK_PREFIX):
                continue
            holder = read_lock(self.backend, key, self.keys)
            if holder is not None and not is_stale(holder):
                held.append(
                    f"tenant {holder.get('tenant')!r}: {describe_holder(holder)}"
                )
        if held:
            self.release()
            raise LockHeld(
                "cannot prune while tenants are locked, since their runs may refer "
                "to blobs that prune would delete: " + "; ".join(held),
                hint="run prune again once those backups have finished",
            )


class FilestoreSyncLock(TenantLock):
    """The lock of one tenant's filestore sync.

    Its file is not the tenant's backup lock, so a sync and a backup of the same
    tenant run side by side. Its name starts like every tenant lock's, so prune
    waits for it, and it gives way to a running prune as a backup's lock does.
    """

    def __init__(
        self, backend: Backend, tenant: str, keys: crypto.RepositoryKeys | None = None
    ) -> None:
        super().__init__(backend, tenant, "sync", keys)
        if keys is not None:
            digest = keys.name("filestore sync lock", tenant)[:32]
        else:
            text = f"filestore sync\n{tenant}".encode()
            digest = hashlib.sha256(text).hexdigest()[:32]
        self.key = f"{TENANT_LOCK_PREFIX}sync-{digest}.json"

    def _subject(self) -> str:
        return f"the filestore of tenant {self.tenant!r}"


class RunLock(TenantLock):
    """The lock of one environment's scheduled run (`odoo-dr run`).

    It keeps two runs of an environment from starting the same tasks. Its name does
    not start like a tenant lock's, so the prune a run performs does not wait for
    the run's own lock. It does not give way to a prune either, because the backups
    inside the run take their tenant locks, which do.
    """

    def __init__(
        self,
        backend: Backend,
        environment: str,
        keys: crypto.RepositoryKeys | None = None,
    ) -> None:
        super().__init__(backend, environment, "run", keys)
        if keys is not None:
            digest = keys.name("run lock", environment)[:32]
        else:
            text = f"run\n{environment}".encode()
            digest = hashlib.sha256(text).hexdigest()[:32]
        self.key = f"{RUN_LOCK_PREFIX}{digest}.json"

    def _subject(self) -> str:
        return f"the scheduled run of environment {self.tenant!r}"

    def _after_acquire(self) -> None:
        return
