"""Per-tenant locks, so two backups of one tenant never run at once.

A lock is a small JSON file created only if absent. Its holder rewrites it every
minute. A lock counts as stale when its process is gone from this host, or when it
was not rewritten for ten minutes (a holder on another host that died).

In an encrypted repository the lock's name is a keyed hash of the tenant and its
content is sealed, so neither shows which tenant is being backed up.
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

from odoo_dr.errors import LockHeld
from odoo_dr.processes import process_alive
from odoo_dr.repository import crypto
from odoo_dr.repository.backend import Backend, ObjectNotFound

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60
STALE_AFTER = timedelta(minutes=10)


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

    def _payload(self) -> bytes:
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
            return self.keys.seal(payload, crypto.LOCK + self.key.encode("ascii"))
        return payload

    def _read(self) -> dict | None:
        try:
            raw = self.backend.read(self.key)
            if self.keys is not None:
                raw = self.keys.open(raw, crypto.LOCK + self.key.encode("ascii"))
            return json.loads(raw)
        except ObjectNotFound:
            return None
        except ValueError:
            # A lock file that is not JSON (or fails to open) was cut short by a
            # crash: treat it as stale.
            return {}

    def _is_stale(self, holder: dict) -> bool:
        try:
            refreshed = datetime.fromisoformat(holder["refreshed_at"])
            host = holder["host"]
            pid = int(holder["pid"])
        except (KeyError, TypeError, ValueError):
            return True
        if host == socket.gethostname() and not process_alive(pid):
            return True
        return datetime.now(UTC) - refreshed > STALE_AFTER

    def acquire(self) -> None:
        for _attempt in range(2):
            if self.backend.create_exclusive(self.key, self._payload()):
                self._start_refresh()
                log.debug("locked tenant=%s operation=%s", self.tenant, self.operation)
                return
            holder = self._read()
            if holder is None:
                continue
            if not self._is_stale(holder):
                raise LockHeld(
                    f"tenant {self.tenant!r} is locked: {holder.get('operation')} by "
                    f"pid {holder.get('pid')} on host {holder.get('host')} since "
                    f"{holder.get('created_at')}",
                    hint="wait for that run to finish; if its process is gone, "
                    f"remove {self.backend.describe()}/{self.key}",
                )
            log.warning(
                "removing stale lock of tenant %r left by pid %s on host %s",
                self.tenant,
                holder.get("pid"),
                holder.get("host"),
            )
            self.backend.delete(self.key)
        raise LockHeld(
            f"cannot lock tenant {self.tenant!r}: another run took the lock first",
            hint="run the command again once the other run has finished",
        )

    def _start_refresh(self) -> None:
        self._thread = threading.Thread(
            target=self._refresh_loop, name="odoo-dr-lock", daemon=True
        )
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            holder = self._read()
            if not holder or holder.get("token") != self.token:
                log.error("lost the lock of tenant %r to another run", self.tenant)
                return
            self.backend.write(self.key, self._payload())

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join()
        holder = self._read()
        if holder and holder.get("token") == self.token:
            self.backend.delete(self.key)

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
