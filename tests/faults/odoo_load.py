"""A busy Odoo, played by threads on the real PostgreSQL and filestore folder.

One writer thread commits, one transaction each, what Odoo's users do: it adds
attachments, deletes them, replaces their content and moves stock from one warehouse
to another. A second thread runs Odoo's filestore garbage collector
(`ir.attachment._gc_file_store` of Odoo 16/17) over and over. Both keep to the
statements and file operations of Odoo, with one exception, the writer's order of the
INSERT and the file write (see `_add`).

The writer commits one change at a time, so the database goes through the states
its event list gives, in that order, and a consistent snapshot shows one of them.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg

# The origin of the writer's stock moves, to tell them from the demo's.
MOVE_ORIGIN = "odoo-dr concurrency writer"
CHECKLIST = "checklist"
# Odoo's `split_for_in_conditions` size, by which its collector reads the checklist.
GC_BATCH = 1000
# Large files are written in pieces, with a pause between them, as an upload
# streamed to disk would be, so that a backup can find one half written.
PIECE = 32 * 1024

ATTACHMENT_QUERY = (
    "SELECT id, store_fname FROM ir_attachment WHERE type = 'binary'"
    " AND store_fname IS NOT NULL AND store_fname <> ''"
)


def odoo_fname(content: bytes) -> tuple[str, str]:
    """Return the SHA-1 of `content` and the `store_fname` Odoo gives it."""
    sha1 = hashlib.sha1(content).hexdigest()
    return sha1, f"{sha1[:2]}/{sha1}"


@dataclass
class Baseline:
    """The database's attachments and quants before the load starts."""

    attachments: dict[int, str]
    quants: dict[tuple[int, int], Decimal]


def read_baseline(database: str) -> Baseline:
    with psycopg.connect(dbname=database, autocommit=True) as connection:
        attachments = dict(connection.execute(ATTACHMENT_QUERY).fetchall())
        rows = connection.execute(
            "SELECT product_id, location_id, quantity FROM stock_quant"
        ).fetchall()
    return Baseline(
        attachments, {(product, location): qty for product, location, qty in rows}
    )


@dataclass
class Events:
    """The writer's committed changes, in commit order, shared between threads."""

    items: list[tuple] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, event: tuple) -> None:
        with self.lock:
            self.items.append(event)

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


def replay(
    baseline: Baseline, events: list[tuple]
) -> Iterator[tuple[int, dict[int, str], set[int]]]:
    """Yield `(n, attachments, moves)`: the state after the first n events.

    The same dict and set are yielded each time, changed in place.
    """
    attachments = dict(baseline.attachments)
    moves: set[int] = set()
    yield 0, attachments, moves
    for number, event in enumerate(events, start=1):
        kind = event[0]
        if kind in ("add", "update"):
            attachments[event[1]] = event[2]
        elif kind == "delete":
            del attachments[event[1]]
        elif kind == "move":
            moves.add(event[1])
        yield number, attachments, moves


class BusyOdoo:
    """The writer and garbage-collector threads over one database and its folder."""

    def __init__(self, database: str, folder: Path, baseline: Baseline, seed: int):
        self.database = database
        self.folder = folder
        self.events = Events()
        self.live = dict(baseline.attachments)
        self.quant_pairs = _transfer_pairs(baseline.quants)
        self.deleted_contents: list[bytes] = []
        self.writer_random = random.Random(seed)
        self.gc_random = random.Random(seed ^ 0x5F5F)
        self.stopping = threading.Event()
        # Odd while a backup runs; an operation overlaps a backup when it starts at
        # an odd epoch or the epoch changes while it runs.
        self.epoch = 0
        self.during_backups: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._guard, args=(self._write_loop,), daemon=True),
            threading.Thread(target=self._guard, args=(self._gc_loop,), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads and raise the first error either met."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in self.threads), "load hangs"
        if self.errors:
            raise self.errors[0]

    def backup_starts(self) -> int:
        """Mark a backup as running; return how many changes were committed."""
        self.epoch += 1
        return len(self.events)

    def backup_ends(self) -> None:
        self.epoch += 1

    def _guard(self, loop) -> None:
        try:
            loop()
        except BaseException as exc:  # re-raised by stop()
            self.errors.append(exc)
            self.stopping.set()

    def _count(self, kind: str, started_epoch: int) -> None:
        self.totals[kind] += 1
        if started_epoch % 2 == 1 or self.epoch != started_epoch:
            self.during_backups[kind] += 1

    # The writer.

    def _write_loop(self) -> None:
        rng = self.writer_random
        operations = [
            (self._add, 30),
            (self._add_deleted_content, 8),
            (self._delete, 20),
            (self._update, 10),
            (self._move_stock, 32),
        ]
        actions = [action for action, _weight in operations]
        weights = [weight for _action, weight in operations]
        with psycopg.connect(dbname=self.database) as connection:
            # Odoo's cursors are REPEATABLE READ.
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            while not self.stopping.is_set():
                action = rng.choices(actions, weights)[0]
                started = self.epoch
                kind = action(connection, rng)
                if kind is not None:
                    self._count(kind, started)
                self.stopping.wait(rng.uniform(0, 0.01))

    def _random_content(self, rng: random.Random) -> bytes:
        roll = rng.random()
        if roll < 0.6:
            size = rng.randint(1, 32 * 1024)
        elif roll < 0.9:
            size = rng.randint(32 * 1024, 512 * 1024)
        else:
            size = rng.randint(1024 * 1024, 3 * 1024 * 1024)
        return rng.randbytes(size)

    def _add(self, connection: psycopg.Connection, rng: random.Random) -> str:
        return self._insert(connection, rng, self._random_content(rng))

    def _add_deleted_content(
        self, connection: psycopg.Connection, rng: random.Random
    ) -> str | None:
        """Upload again the content of a deleted attachment, whose file may still
        wait for the garbage collector: Odoo then keeps the file as it is."""
        if not self.deleted_contents:
            return None
        return self._insert(connection, rng, rng.choice(self.deleted_contents))

    def _insert(
        self, connection: psycopg.Connection, rng: random.Random, content: bytes
    ) -> str:
        # Odoo writes the file before its INSERT, and its own collector may delete
        # the file in between. The writer inserts first, so that every file found
        # missing is the backup's doing.
        sha1, fname = odoo_fname(content)
        with connection.transaction():
            attachment = connection.execute(
                "INSERT INTO ir_attachment (name, type, store_fname, checksum,"
                " file_size, mimetype, res_model, res_id, create_date, write_date)"
                " VALUES (%s, 'binary', %s, %s, %s, 'application/octet-stream',"
                " 'res.partner', %s, now(), now()) RETURNING id",
                (f"upload-{sha1[:8]}", fname, sha1, len(content), rng.randint(1, 50)),
            ).fetchone()[0]
            self._write_file(fname, content, rng)
        self.live[attachment] = fname
        self.events.append(("add", attachment, fname))
        return "add"

    def _delete(self, connection: psycopg.Connection, rng: random.Random) -> str | None:
        if not self.live:
            return None
        attachment = rng.choice(sorted(self.live))
        fname = self.live[attachment]
        content = self._read_file(fname)
        with connection.transaction():
            connection.execute("DELETE FROM ir_attachment WHERE id = %s", (attachment,))
            self._mark_for_gc(fname)
        del self.live[attachment]
        if content is not None and len(self.deleted_contents) < 50:
            self.deleted_contents.append(content)
        self.events.append(("delete", attachment))
        return "delete"

    def _update(self, connection: psycopg.Connection, rng: random.Random) -> str | None:
        """Replace an attachment's content, as writing its `datas` does."""
        if not self.live:
            return None
        attachment = rng.choice(sorted(self.live))
        old = self.live[attachment]
        content = self._random_content(rng)
        sha1, fname = odoo_fname(content)
        with connection.transaction():
            connection.execute(
                "UPDATE ir_attachment SET store_fname = %s, checksum = %s,"
                " file_size = %s, write_date = now() WHERE id = %s",
                (fname, sha1, len(content), attachment),
            )
            self._write_file(fname, content, rng)
            self._mark_for_gc(old)
        self.live[attachment] = fname
        self.events.append(("update", attachment, fname))
        return "update"

    def _move_stock(self, connection: psycopg.Connection, rng: random.Random) -> str:
        """Move a quantity of one product between two internal locations.

        The done move and both quants change in one transaction, so any consistent
        copy has quants equal to their baseline plus its writer moves.
        """
        product, source, destination = rng.choice(self.quant_pairs)
        quantity = rng.randint(1, 40)
        with connection.transaction():
            move = connection.execute(
                "INSERT INTO stock_move (name, reference, state, product_id,"
                " product_uom_qty, quantity, location_id, location_dest_id, origin,"
                " date, company_id, create_date, write_date)"
                " VALUES ('Internal transfer', 'WH/INT', 'done', %s, %s, %s, %s, %s,"
                " %s, now(), 1, now(), now()) RETURNING id",
                (product, quantity, quantity, source, destination, MOVE_ORIGIN),
            ).fetchone()[0]
            for location, delta in ((source, -quantity), (destination, quantity)):
                connection.execute(
                    "UPDATE stock_quant SET quantity = quantity + %s,"
                    " write_date = now() WHERE product_id = %s AND location_id = %s",
                    (delta, product, location),
                )
        self.events.append(("move", move))
        return "move"

    def _write_file(self, fname: str, content: bytes, rng: random.Random) -> None:
        """Write a new file and mark it for the collector, as `_file_write` does.

        An existing file is left alone: same name, same content.
        """
        path = self.folder / fname
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as stream:
            for start in range(0, len(content), PIECE):
                stream.write(content[start : start + PIECE])
                stream.flush()
                if len(content) > PIECE:
                    self.stopping.wait(rng.uniform(0, 0.008))
        self._mark_for_gc(fname)

    def _mark_for_gc(self, fname: str) -> None:
        """Add `fname` to the collector's checklist, as `_mark_for_gc` does."""
        marker = self.folder / CHECKLIST / fname
        marker.parent.mkdir(parents=True, exist_ok=True)
        open(marker, "ab").close()

    def _read_file(self, fname: str) -> bytes | None:
        try:
            return (self.folder / fname).read_bytes()
        except FileNotFoundError:
            return None

    # The garbage collector.

    def _gc_loop(self) -> None:
        rng = self.gc_random
        with psycopg.connect(dbname=self.database) as connection:
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            while not self.stopping.wait(rng.uniform(0, 0.4)):
                started = self.epoch
                try:
                    with connection.transaction():
                        # The LOCK is the transaction's first statement, so its
                        # snapshot is taken once the lock is held.
                        connection.execute("SET LOCAL lock_timeout TO '10s'")
                        connection.execute("LOCK ir_attachment IN SHARE MODE")
                        self._collect(connection)
                except psycopg.errors.LockNotAvailable:
                    self._count("gc lock timeout", started)
                    continue
                self._count("gc", started)

    def _collect(self, connection: psycopg.Connection) -> None:
        """Delete the checklist's files that no attachment uses, as Odoo's
        `_gc_file_store_unsafe` does, and the checklist entries."""
        checklist = {}
        for folder, _folders, names in os.walk(self.folder / CHECKLIST):
            prefix = os.path.basename(folder)
            for name in names:
                checklist[f"{prefix}/{name}"] = os.path.join(folder, name)
        fnames = sorted(checklist)
        for start in range(0, len(fnames), GC_BATCH):
            batch = fnames[start : start + GC_BATCH]
            in_use = {
                row[0]
                for row in connection.execute(
                    "SELECT store_fname FROM ir_attachment WHERE store_fname = ANY(%s)",
                    (batch,),
                )
            }
            for fname in batch:
                if fname not in in_use:
                    try:
                        os.unlink(self.folder / fname)
                    except OSError:
                        pass
                    else:
                        self.totals["files collected"] += 1
                try:
                    os.unlink(checklist[fname])
                except OSError:
                    pass


def _transfer_pairs(
    quants: dict[tuple[int, int], Decimal],
) -> list[tuple[int, int, int]]:
    """Return `(product, source, destination)` for every product with two quants."""
    locations: dict[int, list[int]] = {}
    for product, location in sorted(quants):
        locations.setdefault(product, []).append(location)
    pairs = [
        (product, source, destination)
        for product, found in locations.items()
        for source in found
        for destination in found
        if source != destination
    ]
    assert pairs, "the demo database has no product in two locations"
    return pairs
