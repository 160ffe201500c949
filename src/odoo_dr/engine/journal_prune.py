"""What prune keeps of the filestore journals, and the rewrite that drops the rest.

Every blob a journal entry refers to stays. With `keep_since`, the entries of
files that disappeared before that moment may go: a point-in-time restore to a
moment after `keep_since` does not need them. Prune then replaces the tenant's
segments by one merged segment without them (written first, the old segments
deleted after, see `repository.journal.merge`), before it rewrites the index and
deletes packs, so a kill at any point leaves every remaining entry restorable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from odoo_dr.errors import RepositoryError
from odoo_dr.repository.journal import (
    JournalEntry,
    JournalReader,
    JournalState,
    journal_tenants,
    merge,
)
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)


@dataclass
class JournalPlan:
    """One tenant's journal: the entries that stay and those that go."""

    tenant: str
    state: JournalState
    kept: list[JournalEntry] = field(default_factory=list)
    dropped: list[JournalEntry] = field(default_factory=list)

    @property
    def kept_bytes(self) -> int:
        return sum(entry.size for entry in self.kept)

    @property
    def dropped_bytes(self) -> int:
        return sum(entry.size for entry in self.dropped)


def plan_journals(
    repository: Repository,
    tenant: str | None,
    keep_since: datetime | None,
    damaged: dict[str, str],
) -> tuple[list[JournalPlan], set[str]]:
    """Return each journal's plan and the blobs its kept entries need.

    Only the journal of `tenant` (when given) drops entries. A journal that cannot
    be read is added to `damaged`, by folder, and plans nothing.
    """
    tenants, unreadable = journal_tenants(repository)
    damaged.update(unreadable)
    plans = []
    marked: set[str] = set()
    for folder, name in sorted(tenants.items(), key=lambda item: item[1]):
        try:
            state = JournalReader(repository, name).load()
        except RepositoryError as exc:
            damaged[folder] = exc.message
            continue
        plan = JournalPlan(name, state)
        may_drop = keep_since is not None and (tenant is None or tenant == name)
        for entry in state.entries():
            if (
                may_drop
                and entry.gone_seen is not None
                and entry.gone_seen < keep_since
            ):
                plan.dropped.append(entry)
            else:
                plan.kept.append(entry)
                marked.update(entry.chunks)
        plans.append(plan)
    return plans, marked


def damaged_journals_error(
    repository: Repository, damaged: dict[str, str]
) -> RepositoryError:
    listed = "; ".join(
        f"{repository.location}/{folder}: {message}"
        for folder, message in sorted(damaged.items())[:10]
    )
    return RepositoryError(
        f"cannot prune: {len(damaged)} filestore journal(s) cannot be read, so prune "
        f"cannot tell which packs they need: {listed}",
        hint="run 'odoo-dr verify' to see what is damaged; move the damaged segments "
        "out of the journal folder, or run prune with --ignore-damaged to delete "
        "what they may need",
    )


def rewrite_journals(repository: Repository, plans: list[JournalPlan]) -> int:
    """Replace the segments of each journal that drops entries; return how many."""
    rewritten = 0
    for plan in plans:
        if not plan.dropped:
            continue
        merge(repository, plan.state, keep=plan.kept)
        rewritten += 1
        log.info(
            "dropped %d filestore journal entries (%d bytes) of tenant %r",
            len(plan.dropped),
            plan.dropped_bytes,
            plan.tenant,
        )
    return rewritten
