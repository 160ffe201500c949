"""Build a `FleetStatus` from the inventory, repositories, pgBackRest and the review.

Snapshot manifests and drill records never change once written, so the collector
keeps a summary of each one by key. A refresh lists the keys, reads only the new
ones and drops the removed ones. A background thread refreshes every
`refresh_every` seconds, and readers get the last complete `FleetStatus`.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from odoo_dr.errors import OdooDrError
from odoo_dr.repository import catalog
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import (
    Disruption,
    Environment,
    Inventory,
    InventoryError,
    Tenant,
    effective_schedule,
    load_inventory,
)
from odoo_dr.status.model import (
    DamagedDocument,
    DrillPoint,
    FleetStatus,
    PitrStatus,
    RepositoryStatus,
    ScoreStatus,
    SnapshotPoint,
    TenantStatus,
)

log = logging.getLogger(__name__)

DEFAULT_REFRESH_EVERY = 60.0
DEFAULT_REVIEW_EVERY = 3600.0
# pgBackRest's status reads archived WAL (archive-get, pg_waldump), which costs
# more than listing a repository, so it is read less often than the repositories.
DEFAULT_PITR_EVERY = 300.0

_USERINFO = re.compile(r"(://)[^/@]*@")


def public_location(location: str) -> str:
    """Return `location` without a `user:password@` part, and without query
    parameters other than `as-of`, which could carry a presigned URL's credentials."""
    if "://" not in location:
        return location
    path, separator, query = _USERINFO.sub(r"\1", location).partition("?")
    kept = [item for item in query.split("&") if item.startswith("as-of=")]
    if not separator or not kept:
        return path
    return f"{path}?{'&'.join(kept)}"


@dataclass
class _Snapshot:
    tenant: str
    point: SnapshotPoint


@dataclass
class _Drill:
    tenant: str
    point: DrillPoint


def summarize_snapshot(manifest: SnapshotManifest) -> _Snapshot:
    size = sum(item.size for item in manifest.dump)
    size += manifest.filestore.referenced_bytes
    point = SnapshotPoint(
        id=manifest.id,
        snapshot_time=manifest.snapshot_time,
        size_bytes=size,
        new_bytes=manifest.stats.new_bytes,
        missing_files=len(manifest.filestore.problems),
    )
    return _Snapshot(manifest.tenant, point)


def summarize_drill(record: DrillRecord) -> _Drill:
    point = DrillPoint(
        id=record.id,
        finished_at=record.finished_at,
        passed=record.passed,
        kind=record.kind,
        rto_seconds=record.rto_seconds,
        rpo_seconds=record.rpo_seconds,
    )
    return _Drill(record.tenant, point)


@dataclass
class RepositoryCache:
    """The summaries the collector read from one repository, by key."""

    location: str
    repository: Repository | None = None
    snapshots: dict[str, _Snapshot] = field(default_factory=dict)
    drills: dict[str, _Drill] = field(default_factory=dict)
    # Keys that could not be read, with the reason. They are not read again
    # because a stored document never changes.
    damaged: dict[str, str] = field(default_factory=dict)
    stored_bytes: int = 0
    error: str | None = None
    # Whether its tenants are listed (False for offsite copies).
    lists_tenants: bool = True

    @property
    def public_location(self) -> str:
        if self.repository is not None:
            return public_location(self.repository.location)
        return public_location(self.location)

    def refresh(self, opener: Callable[[str], Repository]) -> None:
        """Read the keys added since the last refresh and forget the removed ones.

        Raises OdooDrError when the repository cannot be opened or listed; the
        summaries read before stay.
        """
        if self.repository is None:
            self.repository = opener(self.location)
        repository = self.repository
        backend = repository.backend
        snapshot_keys = {
            key for key in backend.list("snapshots/") if key.endswith(".json")
        }
        drill_keys = {key for key in backend.list("drills/") if key.endswith(".json")}
        for key in list(self.snapshots):
            if key not in snapshot_keys:
                del self.snapshots[key]
        for key in list(self.drills):
            if key not in drill_keys:
                del self.drills[key]
        for key in list(self.damaged):
            if key not in snapshot_keys and key not in drill_keys:
                del self.damaged[key]
        # One read of the catalog checks every new manifest against its entry and
        # finds the manifests deleted without a prune.
        contents = catalog.read_catalog(repository)
        listed = [Path(key).stem for key in snapshot_keys]
        for snapshot_id, message in repository.missing_manifests(
            contents, listed
        ).items():
            self.damaged[f"snapshots/{snapshot_id}.json"] = message
        for key in sorted(snapshot_keys - self.snapshots.keys() - self.damaged.keys()):
            try:
                manifest = repository.load_snapshot(Path(key).stem, contents.entries)
            except OdooDrError as exc:
                log.warning("skipping snapshot manifest %s: %s", key, exc.message)
                self.damaged[key] = exc.message
                continue
            self.snapshots[key] = summarize_snapshot(manifest)
        for key in sorted(drill_keys - self.drills.keys() - self.damaged.keys()):
            try:
                record = DrillRecord.model_validate_json(
                    repository.read_document(key), strict=True
                )
            except ValidationError as exc:
                message = exc.errors()[0]["msg"]
                log.warning("skipping damaged drill record %s: %s", key, message)
                self.damaged[key] = message
                continue
            except OdooDrError as exc:
                log.warning("skipping drill record %s: %s", key, exc.message)
                self.damaged[key] = exc.message
                continue
            self.drills[key] = summarize_drill(record)
        self.stored_bytes = _stored_bytes(repository)

    def status(self) -> RepositoryStatus:
        points = sorted(
            (item.point for item in self.snapshots.values()),
            key=lambda point: point.snapshot_time,
        )
        logical = sum(point.size_bytes for point in points)
        growth = []
        cumulative = 0
        for point in points:
            cumulative += point.new_bytes
            growth.append((point.snapshot_time, cumulative))
        return RepositoryStatus(
            location=self.public_location,
            snapshots=len(points),
            tenants=len({item.tenant for item in self.snapshots.values()}),
            stored_bytes=self.stored_bytes,
            logical_bytes=logical,
            dedup_ratio=logical / self.stored_bytes if self.stored_bytes else None,
            growth=growth,
            error=self.error,
            damaged=[
                DamagedDocument(key=key, error=error)
                for key, error in sorted(self.damaged.items())
            ],
        )


def _stored_bytes(repository: Repository) -> int:
    """Return the bytes of the repository's packs, from one listing with sizes."""
    list_sizes = getattr(repository.backend, "list_sizes", None)
    sizes = list_sizes("packs/") if list_sizes is not None else None
    if sizes is None:
        # NOTE: an S3 `?as-of=` view lists no sizes, so its packs count as 0 bytes.
        return 0
    return sum(sizes.values())


@dataclass
class _TenantHistory:
    snapshots: list[SnapshotPoint]
    drills: list[DrillPoint]

    def __post_init__(self) -> None:
        self.snapshots.sort(key=lambda point: point.snapshot_time)
        self.drills.sort(key=lambda point: point.finished_at)
        self._snapshot_times = [point.snapshot_time for point in self.snapshots]
        self._drill_times = [point.finished_at for point in self.drills]
        self._passing = [point for point in self.drills if point.passed]
        self._passing_times = [point.finished_at for point in self._passing]

    def last_snapshot(self, moment: datetime) -> SnapshotPoint | None:
        position = bisect.bisect_right(self._snapshot_times, moment)
        return self.snapshots[position - 1] if position else None

    def last_drill(self, moment: datetime) -> DrillPoint | None:
        position = bisect.bisect_right(self._drill_times, moment)
        return self.drills[position - 1] if position else None

    def last_passing_drill(self, moment: datetime) -> DrillPoint | None:
        position = bisect.bisect_right(self._passing_times, moment)
        return self._passing[position - 1] if position else None


@dataclass(frozen=True)
class _Targets:
    backup: int | None
    drill: int | None
    rto: int | None
    rpo: int | None


@dataclass(frozen=True)
class _State:
    backup_fresh: bool | None
    rpo_met: bool | None
    rto_met: bool | None
    drill_current: bool | None

    def overall(self) -> bool | None:
        """Return whether every measured objective is met; None if none is measured."""
        values = [
            value
            for value in (
                self.backup_fresh,
                self.rpo_met,
                self.rto_met,
                self.drill_current,
            )
            if value is not None
        ]
        if not values:
            return None
        return all(values)


def _age(moment: datetime, since: datetime) -> float:
    return max((moment - since).total_seconds(), 0.0)


def _state_at(
    history: _TenantHistory,
    targets: _Targets,
    moment: datetime,
    archive_age: float | None = None,
) -> _State:
    """Evaluate the tenant's objectives as they stood at `moment`."""
    snapshot = history.last_snapshot(moment)
    snapshot_age = _age(moment, snapshot.snapshot_time) if snapshot else None
    backup_fresh = None
    if targets.backup is not None:
        backup_fresh = snapshot_age is not None and snapshot_age <= targets.backup
    rpo_met = None
    if targets.rpo is not None:
        ages = [age for age in (snapshot_age, archive_age) if age is not None]
        rpo_met = bool(ages) and min(ages) <= targets.rpo
    rto_met = None
    passing = history.last_passing_drill(moment)
    if targets.rto is not None and passing is not None:
        rto_met = passing.rto_seconds <= targets.rto
    drill_current = None
    if targets.drill is not None:
        latest = history.last_drill(moment)
        # A failed drill after a passing one means recovery is broken now.
        drill_current = (
            latest is not None
            and latest.passed
            and _age(moment, latest.finished_at) <= targets.drill
        )
    return _State(backup_fresh, rpo_met, rto_met, drill_current)


def _met_since(
    history: _TenantHistory, targets: _Targets, now: datetime, current: bool | None
) -> datetime | None:
    """Return since when the overall state at `now` has held, from the history.

    The state only changes when a snapshot or drill happens, or when one grows
    older than an interval or objective, so it is evaluated at those moments.
    """
    if current is None:
        return None
    moments: set[datetime] = set()
    for point in history.snapshots:
        moments.add(point.snapshot_time)
        for limit in (targets.backup, targets.rpo):
            if limit is not None:
                moments.add(point.snapshot_time + timedelta(seconds=limit))
    for point in history.drills:
        moments.add(point.finished_at)
        if targets.drill is not None:
            moments.add(point.finished_at + timedelta(seconds=targets.drill))
    ordered = sorted(moment for moment in moments if moment <= now)
    since = None
    for moment in reversed(ordered):
        if _state_at(history, targets, moment).overall() != current:
            break
        since = moment
    return since


def tenant_status(
    *,
    environment: str | None,
    tenant: str,
    tier: str | None,
    repository: str,
    targets: _Targets,
    history: _TenantHistory,
    now: datetime,
    archive_age: float | None = None,
) -> TenantStatus:
    state = _state_at(history, targets, now, archive_age)
    overall = state.overall()
    met_since = _met_since(history, targets, now, overall)
    if (
        archive_age is not None
        and overall != _state_at(history, targets, now).overall()
    ):
        # NOTE: the WAL archive's past ages are unknown, so a state that only the
        # archive makes true has no start time.
        met_since = None
    last_drill = history.drills[-1] if history.drills else None
    passing = [point for point in history.drills if point.passed]
    return TenantStatus(
        environment=environment,
        tenant=tenant,
        tier=tier,
        repository=repository,
        backup_interval_seconds=targets.backup,
        drill_interval_seconds=targets.drill,
        objective_rto_seconds=targets.rto,
        objective_rpo_seconds=targets.rpo,
        snapshots=len(history.snapshots),
        last_snapshot=history.snapshots[-1] if history.snapshots else None,
        last_drill=last_drill,
        last_passing_drill=passing[-1] if passing else None,
        history=history.snapshots,
        drills=history.drills,
        backup_fresh=state.backup_fresh,
        rpo_met=state.rpo_met,
        rto_met=state.rto_met,
        drill_current=state.drill_current,
        met_since=met_since,
    )


def _targets(inventory: Inventory, tenant: Tenant) -> _Targets:
    schedule = effective_schedule(inventory, tenant)
    objective = inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
    return _Targets(
        backup=schedule.backup,
        drill=schedule.drill,
        rto=objective.rto if objective else None,
        rpo=objective.rpo if objective else None,
    )


def _read_pitr(environment: Environment, base: Path) -> PitrStatus:
    """Read the environment's pgBackRest stanza; a failure is an error entry."""
    from odoo_dr.engine import pitr
    from odoo_dr.pg.connection import PgSettings
    from odoo_dr.pg.pgbackrest import (
        DEFAULT_CONFIG_PATH,
        OsUser,
        PgBackRest,
        validate_stanza,
    )

    sources = environment.evidence
    stanza = sources.pgbackrest_stanza or ""
    try:
        config_path = (
            (base / sources.pgbackrest_config_path).absolute()
            if sources.pgbackrest_config_path
            else DEFAULT_CONFIG_PATH
        )
        backrest = PgBackRest(
            validate_stanza(stanza), config_path, OsUser.resolve(None)
        )
        settings = (
            PgSettings.from_options(sources.postgres_dsn)
            if sources.postgres_dsn
            else None
        )
        status = pitr.read_status(backrest, settings)
    except OdooDrError as exc:
        return PitrStatus(
            environment=environment.name,
            stanza=stanza,
            window_start=None,
            window_end=None,
            archive_age_seconds=None,
            gap=False,
            error=exc.message,
        )
    archiver = status.archiver
    newest_chain = status.chains[-1] if status.chains else None
    return PitrStatus(
        environment=environment.name,
        stanza=stanza,
        window_start=status.window.start if status.window else None,
        window_end=status.window.end if status.window else None,
        archive_age_seconds=archiver.age_seconds if archiver else None,
        last_archived_at=archiver.last_archived_at if archiver else None,
        gap=newest_chain is not None and not newest_chain.continuous,
        error=None,
    )


def _resolve_location(base: Path, location: str) -> str:
    if "://" in location:
        return location
    return str((base / location).expanduser().resolve())


class StatusCollector:
    """Collect the fleet's status and keep the last complete one for readers.

    `repositories` are locations given on the command line: tenants of an
    environment that names no repository of its own are looked for in the first.
    `open_repository` opens a location (tests wrap the backend it returns).
    """

    def __init__(
        self,
        *,
        inventory_path: Path | None = None,
        repositories: list[str] | None = None,
        refresh_every: float = DEFAULT_REFRESH_EVERY,
        review_every: float = DEFAULT_REVIEW_EVERY,
        pitr_every: float = DEFAULT_PITR_EVERY,
        open_repository: Callable[[str], Repository] = Repository.open,
    ) -> None:
        self.inventory_path = inventory_path
        # Folders are made absolute so that one given relative here and absolute
        # in the inventory is read once.
        self.repositories = [
            _resolve_location(Path.cwd(), location) for location in repositories or []
        ]
        self.refresh_every = refresh_every
        self.review_every = review_every
        self.pitr_every = pitr_every
        self._open_repository = open_repository
        self._caches: dict[str, RepositoryCache] = {}
        self._inventory: tuple[Inventory, Path] | None = None
        # The inventory file's (mtime_ns, size) when it was read.
        self._inventory_version: tuple[int, int] | None = None
        self._status: FleetStatus | None = None
        self._pitr: list[PitrStatus] = []
        self._pitr_read_at: float | None = None
        self._scorecard_lines: list = []
        self._reviewed_at: datetime | None = None
        self._review_read_at: float | None = None
        self._review_error: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_errors_total = 0
        self._logged_errors: set[str] = set()
        # Bumped on each new FleetStatus, so readers can cache what they derive.
        self.generation = 0

    # -- reading

    @property
    def status(self) -> FleetStatus:
        """Return the last complete status, collecting one first if there is none."""
        if self._status is None:
            self.refresh()
        assert self._status is not None
        return self._status

    # -- the background thread

    def start(self) -> None:
        """Collect once in this thread, then refresh in a background thread.

        The first collection runs here so that an encrypted repository can prompt
        for its passphrase on the terminal.
        """
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="odoo-dr-status", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                self.refresh()
            except Exception:
                # The thread must outlive any bug in one refresh; the last good
                # status stays served.
                log.exception("status refresh failed")
                self.refresh_errors_total += 1

    # -- collecting

    def refresh(self) -> FleetStatus:
        """Collect a new FleetStatus and make it the one served."""
        with self._refresh_lock:
            started = time.monotonic()
            status = self._collect()
            status.refresh_seconds = round(time.monotonic() - started, 6)
            self.refresh_errors_total += len(status.errors)
            self._log_errors(status.errors)
            self._status = status
            self.generation += 1
            return status

    def _log_errors(self, errors: list[str]) -> None:
        """Log each error when it first appears and when it is gone.

        A repository that stays unreachable would otherwise log the same line at
        every refresh.
        """
        current = set(errors)
        for message in errors:
            if message not in self._logged_errors:
                log.warning("status refresh: %s", message)
        for message in sorted(self._logged_errors - current):
            log.info("status refresh: resolved: %s", message)
        self._logged_errors = current

    def _cache(self, location: str, *, lists_tenants: bool = True) -> RepositoryCache:
        cache = self._caches.get(location)
        if cache is None:
            cache = RepositoryCache(location)
            self._caches[location] = cache
        cache.lists_tenants = lists_tenants
        return cache

    def _collect(self) -> FleetStatus:
        errors: list[str] = []
        inventory, base = self._load_inventory(errors)

        default_location = self.repositories[0] if self.repositories else None
        listed_locations: dict[str, bool] = {
            location: True for location in self.repositories
        }
        environment_location: dict[str, str | None] = {}
        if inventory is not None:
            for environment in inventory.environments:
                own = environment.evidence.repository
                location = _resolve_location(base, own) if own else default_location
                environment_location[environment.name] = location
                if location is not None:
                    listed_locations[location] = True
                offsite = (
                    environment.offsite.repository if environment.offsite else None
                )
                if offsite:
                    listed_locations.setdefault(_resolve_location(base, offsite), False)
        for location in list(self._caches):
            if location not in listed_locations:
                del self._caches[location]

        for location, lists_tenants in listed_locations.items():
            cache = self._cache(location, lists_tenants=lists_tenants)
            try:
                cache.refresh(self._open_repository)
                cache.error = None
            except OdooDrError as exc:
                cache.error = exc.message
                errors.append(f"repository {cache.public_location}: {exc.message}")
            except OSError as exc:
                cache.error = str(exc)
                errors.append(f"repository {cache.public_location}: {exc}")

        now = datetime.now(UTC)
        pitr = self._refresh_pitr(inventory, base)
        errors.extend(
            f"pgBackRest stanza {item.stanza} of {item.environment}: {item.error}"
            for item in pitr
            if item.error
        )
        tenants = self._tenants(inventory, environment_location, pitr, now)
        scorecard, reviewed_at = self._refresh_review(inventory, tenants)
        if self._review_error:
            errors.append(self._review_error)
        return FleetStatus(
            platform=inventory.platform if inventory else "odoo platform",
            generated_at=now,
            refresh_seconds=0.0,
            tenants=tenants,
            repositories=[cache.status() for cache in self._caches.values()],
            pitr=pitr,
            scorecard=scorecard,
            reviewed_at=reviewed_at,
            errors=errors,
        )

    def _load_inventory(self, errors: list[str]) -> tuple[Inventory | None, Path]:
        """Return the inventory, read again only when its file changed.

        An inventory that became unreadable is reported in `errors`, and the last
        one read stays in use.
        """
        if self.inventory_path is None:
            return None, Path.cwd()
        try:
            stat = self.inventory_path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
            if self._inventory is None or version != self._inventory_version:
                self._inventory = load_inventory(self.inventory_path)
                self._inventory_version = version
        except InventoryError as exc:
            errors.append(f"inventory {self.inventory_path}: {exc.problems[0]}")
        except OSError as exc:
            errors.append(f"inventory {self.inventory_path}: {exc.strerror}")
        if self._inventory is None:
            return None, Path.cwd()
        return self._inventory

    def _histories(self, cache: RepositoryCache) -> dict[str, _TenantHistory]:
        snapshots: dict[str, list[SnapshotPoint]] = {}
        drills: dict[str, list[DrillPoint]] = {}
        for item in cache.snapshots.values():
            snapshots.setdefault(item.tenant, []).append(item.point)
        for item in cache.drills.values():
            drills.setdefault(item.tenant, []).append(item.point)
        return {
            tenant: _TenantHistory(snapshots.get(tenant, []), drills.get(tenant, []))
            for tenant in snapshots.keys() | drills.keys()
        }

    def _tenants(
        self,
        inventory: Inventory | None,
        environment_location: dict[str, str | None],
        pitr: list[PitrStatus],
        now: datetime,
    ) -> list[TenantStatus]:
        histories = {
            location: self._histories(cache)
            for location, cache in self._caches.items()
            if cache.lists_tenants
        }
        archive_ages = {
            item.environment: item.archive_age_seconds
            for item in pitr
            if item.error is None and item.archive_age_seconds is not None
        }
        listed: set[tuple[str, str]] = set()
        result = []
        if inventory is not None:
            for environment in inventory.environments:
                location = environment_location.get(environment.name)
                cache = self._caches.get(location) if location else None
                by_tenant = histories.get(location, {}) if location else {}
                for tenant in environment.tenants:
                    history = by_tenant.get(tenant.name) or _TenantHistory([], [])
                    if location is not None:
                        listed.add((location, tenant.name))
                    result.append(
                        tenant_status(
                            environment=environment.name,
                            tenant=tenant.name,
                            tier=tenant.tier,
                            repository=cache.public_location if cache else "",
                            targets=_targets(inventory, tenant),
                            history=history,
                            now=now,
                            archive_age=archive_ages.get(environment.name),
                        )
                    )
        unknown = _Targets(None, None, None, None)
        for location, by_tenant in histories.items():
            cache = self._caches[location]
            for name in sorted(by_tenant):
                if (location, name) in listed:
                    continue
                result.append(
                    tenant_status(
                        environment=None,
                        tenant=name,
                        tier=None,
                        repository=cache.public_location,
                        targets=unknown,
                        history=by_tenant[name],
                        now=now,
                    )
                )
        return result

    def _refresh_pitr(
        self, inventory: Inventory | None, base: Path
    ) -> list[PitrStatus]:
        if inventory is None:
            return []
        due = (
            self._pitr_read_at is None
            or time.monotonic() - self._pitr_read_at >= self.pitr_every
        )
        if due:
            self._pitr = [
                _read_pitr(environment, base)
                for environment in inventory.environments
                if environment.evidence.pgbackrest_stanza
            ]
            self._pitr_read_at = time.monotonic()
        return self._pitr

    def _refresh_review(
        self, inventory: Inventory | None, tenants: list[TenantStatus]
    ) -> tuple[list[ScoreStatus], datetime | None]:
        if inventory is None or self.inventory_path is None:
            return [], None
        due = (
            self._review_read_at is None
            or time.monotonic() - self._review_read_at >= self.review_every
        )
        if due:
            from odoo_dr.review.engine import ReviewOptions, run_review

            self._review_read_at = time.monotonic()
            try:
                result = run_review(self.inventory_path, ReviewOptions(live=False))
            except (OdooDrError, InventoryError, OSError) as exc:
                self._review_error = f"review of {self.inventory_path}: {exc}"
            else:
                self._review_error = None
                self._scorecard_lines = result.scorecard
                self._reviewed_at = result.reviewed_at
        lines = [
            _score_status(line.environment, line.tier, line.score, line.grade, tenants)
            for line in self._scorecard_lines
        ]
        return lines, self._reviewed_at


def _score_status(
    environment: str,
    tier: str,
    score: float,
    grade: str,
    tenants: list[TenantStatus],
) -> ScoreStatus:
    """Set one scorecard line beside its tenants' current objectives.

    The review runs without live evidence, so whether the line's tenants meet
    their objectives comes from the collected repositories instead.
    """
    members = [
        item
        for item in tenants
        if item.environment == environment and item.tier == tier
    ]
    states = [(item.rto_met, item.rpo_met, item.drill_current) for item in members]
    objectives_met: bool | None
    if any(False in state for state in states):
        objectives_met = False
    elif members and all(None not in state for state in states):
        objectives_met = True
    else:
        objectives_met = None
    met_since = None
    if objectives_met is True:
        met_since = max(
            (item.met_since for item in members if item.met_since), default=None
        )
    elif objectives_met is False:
        failing = [
            item.met_since
            for item in members
            if False in (item.rto_met, item.rpo_met, item.drill_current)
            and item.met_since
        ]
        met_since = min(failing, default=None)
    return ScoreStatus(
        environment=environment,
        tier=tier,
        score=score,
        grade=grade,
        objectives_met=objectives_met,
        met_since=met_since,
    )
