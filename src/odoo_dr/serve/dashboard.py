"""The dashboard pages of `odoo-dr serve`: the fleet page with the scorecard, the
tenant table and charts, and one page per tenant.

Everything is rendered on the server: the table sorts and filters through query
parameters, charts are inline SVG, and the one stylesheet is served from
`/static`, so the pages need no script and nothing from the internet. Jinja2
autoescaping escapes every value, tenant names included.

In URLs and filters, `-` is the environment of a tenant found in a repository but
not in the inventory, and the tier of a tenant whose tier is unknown.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from odoo_dr import __version__
from odoo_dr.review.inventory import format_duration
from odoo_dr.serve import charts
from odoo_dr.status.model import FleetStatus, ScoreStatus, TenantStatus

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# The environment or tier, in URLs and filters, of a tenant that has none.
NONE_VALUE = "-"
# Tenant states, in the order the state column sorts them: problems first. The
# names are those of the JSON API's `state` filter.
STATES = ("not_met", "unknown", "met")
# The snapshots and drills listed on a tenant's page; its charts show them all.
LISTED = 50
# The tenants the fleet page's charts show, the first rows of the table: more
# bars make the age chart too tall to read, and more lines tangle the RTO chart.
AGE_CHART_TENANTS = 40
RTO_CHART_TENANTS = 8


class PageError(Exception):
    """A request the dashboard cannot serve, shown as an HTML error page."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


class StatusSource(Protocol):
    """The status source of the dashboard: `odoo_dr.status.collect.StatusCollector`
    or any object with the same property."""

    @property
    def status(self) -> FleetStatus: ...


@dataclass
class TenantRow:
    """One line of the tenant table: a tenant's status with its backup age
    measured when the page is rendered."""

    tenant: TenantStatus
    backup_age: float | None
    backup_fresh: bool | None

    @property
    def environment_value(self) -> str:
        return self.tenant.environment or NONE_VALUE

    @property
    def tier_value(self) -> str:
        return self.tenant.tier or NONE_VALUE

    @property
    def checks(self) -> list[bool | None]:
        tenant = self.tenant
        return [self.backup_fresh, tenant.rpo_met, tenant.rto_met, tenant.drill_current]

    @property
    def state(self) -> str:
        """`not_met` when any objective is missed, `met` when every measured one
        is met, `unknown` when none is measured."""
        measured = [check for check in self.checks if check is not None]
        if not measured:
            return "unknown"
        return "met" if all(measured) else "not_met"

    @property
    def rto(self) -> float | None:
        drill = self.tenant.last_passing_drill
        return drill.rto_seconds if drill else None

    @property
    def rpo(self) -> float | None:
        drill = self.tenant.last_passing_drill
        return drill.rpo_seconds if drill else None

    @property
    def rpo_within(self) -> bool | None:
        """Whether the last passing drill's RPO is inside the objective.

        `TenantStatus.rpo_met` is about the data at risk now, the age of the
        last backup, which the backup-age column shows."""
        objective = self.tenant.objective_rpo_seconds
        if self.rpo is None or objective is None:
            return None
        return self.rpo <= objective

    @property
    def url(self) -> str:
        return tenant_path(self.tenant)


def tenant_path(tenant: TenantStatus) -> str:
    environment = quote(tenant.environment or NONE_VALUE, safe="")
    return f"/tenants/{environment}/{quote(tenant.tenant, safe='')}"


def find_tenants(
    tenants: list[TenantStatus], scope: dict, prefix: str, path: str
) -> list[TenantStatus]:
    """Return the tenants that `path`, `ENVIRONMENT/TENANT` after `prefix`, names.

    Both names may contain `/`, sent as `%2F`, but the server decodes the path
    before routing. So the raw path, when it has exactly one unescaped `/` after
    `prefix`, gives the two names. Otherwise, such as for a client that sent a
    tenant's `/` unescaped, every tenant whose joined names equal `path` matches.
    """
    raw_path = scope.get("raw_path")
    if raw_path is not None:
        _before, found, raw_rest = raw_path.decode("latin-1").partition(prefix)
        parts = raw_rest.split("/")
        if found and len(parts) == 2:
            environment, name = (unquote(part) for part in parts)
            return [
                item
                for item in tenants
                if (item.environment or NONE_VALUE) == environment
                and item.tenant == name
            ]
    return [
        item
        for item in tenants
        if f"{item.environment or NONE_VALUE}/{item.tenant}" == path
    ]


def tenant_row(tenant: TenantStatus, now: datetime) -> TenantRow:
    """Measure the tenant's backup age at `now`, and its freshness against the
    backup interval, so a status collected a while ago does not show an old
    backup as fresh."""
    age = None
    fresh = tenant.backup_fresh
    if tenant.last_snapshot is not None:
        age = max((now - tenant.last_snapshot.snapshot_time).total_seconds(), 0.0)
        if tenant.backup_interval_seconds is not None:
            fresh = age <= tenant.backup_interval_seconds
    return TenantRow(tenant=tenant, backup_age=age, backup_fresh=fresh)


def _drill_key(row: TenantRow) -> int | None:
    drill = row.tenant.last_drill
    if drill is None:
        return None
    return 1 if drill.passed else 0


# Sortable columns: name in the `sort` parameter, header, and the value sorted on
# (None sorts last in either order).
COLUMNS: dict[str, tuple[str, Callable[[TenantRow], object]]] = {
    "environment": ("Environment", lambda row: row.tenant.environment),
    "tenant": ("Tenant", lambda row: row.tenant.tenant),
    "tier": ("Tier", lambda row: row.tenant.tier),
    "backup_age": ("Last backup", lambda row: row.backup_age),
    "size": (
        "Size",
        lambda row: (
            row.tenant.last_snapshot.size_bytes if row.tenant.last_snapshot else None
        ),
    ),
    "new_bytes": (
        "New bytes",
        lambda row: (
            row.tenant.last_snapshot.new_bytes if row.tenant.last_snapshot else None
        ),
    ),
    "missing_files": (
        "Missing files",
        lambda row: (
            row.tenant.last_snapshot.missing_files if row.tenant.last_snapshot else None
        ),
    ),
    "drill": ("Last drill", _drill_key),
    "rto": ("RTO", lambda row: row.rto),
    "rpo": ("RPO", lambda row: row.rpo),
    "state": ("State", lambda row: STATES.index(row.state)),
}
DEFAULT_SORT = "state"
# Rows of the tenant table per page: a fleet of a thousand tenants renders in
# pages, and the filters and sort apply to the whole fleet.
PAGE_SIZE = 100


@dataclass
class TableQuery:
    """The tenant table's sort and filters, read from the query string.

    Empty parameters count as absent, because the filter form submits every
    field.
    """

    sort: str = DEFAULT_SORT
    order: str = "asc"
    environment: str | None = None
    tier: str | None = None
    state: str | None = None
    q: str | None = None
    page: int = 1

    @classmethod
    def parse(cls, params: dict[str, str]) -> TableQuery:
        values: dict = {
            name: params[name].strip()
            for name in ("sort", "order", "environment", "tier", "state", "q")
            if params.get(name, "").strip()
        }
        page = params.get("page", "").strip()
        if page:
            if not page.isdigit() or int(page) < 1:
                raise _bad_query(f"invalid page {page!r}: expected 1 or more")
            values["page"] = int(page)
        query = cls(**values)
        if query.sort not in COLUMNS:
            raise _bad_query(
                f"invalid sort {_QUOTE.repr(query.sort)}: "
                f"expected one of {', '.join(COLUMNS)}"
            )
        if query.order not in ("asc", "desc"):
            raise _bad_query(
                f"invalid order {_QUOTE.repr(query.order)}: expected asc or desc"
            )
        if query.state is not None and query.state not in STATES:
            raise _bad_query(
                f"invalid state {_QUOTE.repr(query.state)}: "
                f"expected one of {', '.join(STATES)}"
            )
        return query

    def filters(self) -> dict[str, str]:
        return {
            name: value
            for name in ("environment", "tier", "state", "q")
            if (value := getattr(self, name)) is not None
        }

    def matches(self, row: TenantRow) -> bool:
        if self.environment is not None and row.environment_value != self.environment:
            return False
        if self.tier is not None and row.tier_value != self.tier:
            return False
        if self.state is not None and row.state != self.state:
            return False
        if self.q is not None:
            needle = self.q.casefold()
            haystack = (row.tenant.tenant, row.environment_value, row.tenant.repository)
            if not any(needle in text.casefold() for text in haystack):
                return False
        return True

    def apply(self, rows: list[TenantRow]) -> list[TenantRow]:
        """Filter `rows`, then sort them by the chosen column, by environment and
        tenant within equal values, with empty values last."""
        matching = [row for row in rows if self.matches(row)]
        matching.sort(key=lambda row: (row.environment_value, row.tenant.tenant))
        key = COLUMNS[self.sort][1]
        present = [row for row in matching if key(row) is not None]
        absent = [row for row in matching if key(row) is None]
        # list.sort is stable in reverse too, so ties keep environment and tenant
        # order either way.
        present.sort(key=key, reverse=self.order == "desc")  # type: ignore[arg-type]
        return present + absent

    def pages(self, rows: int) -> int:
        return max(1, -(-rows // PAGE_SIZE))

    def page_of(self, rows: list[TenantRow]) -> list[TenantRow]:
        """Return the rows of the current page (none past the last one)."""
        start = (self.page - 1) * PAGE_SIZE
        return rows[start : start + PAGE_SIZE]

    def page_link(self, page: int) -> str:
        """Return the query string of `page` with the same filters and sort."""
        return "?" + urlencode(
            {**self.filters(), "sort": self.sort, "order": self.order, "page": page}
        )

    def sort_link(self, column: str) -> str:
        """Return the query string that sorts by `column`: the opposite order
        when it is already the sort column, else ascending."""
        order = "asc"
        if column == self.sort and self.order == "asc":
            order = "desc"
        return "?" + urlencode({**self.filters(), "sort": column, "order": order})

    def aria_sort(self, column: str) -> str | None:
        if column != self.sort:
            return None
        return "ascending" if self.order == "asc" else "descending"


# Request values quoted in error pages and their log lines, cut to 80 characters,
# so that a long query string or path does not fill the log.
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = 80


def _bad_query(message: str) -> PageError:
    return PageError(400, "Invalid query", message)


@dataclass
class ScoreCard:
    """One environment and tier on the scorecard."""

    environment: str
    tier: str
    score: float | None
    grade: str | None
    objectives_met: bool | None
    met_since: datetime | None
    tenants: int


def group_objectives(rows: list[TenantRow]) -> tuple[bool | None, datetime | None]:
    """Return whether every tenant of `rows` meets its objectives, and since when.

    When all measured tenants meet them, that is since the last of them came to
    meet them. When some miss them, it is since the first of those missed.
    """
    states = [row for row in rows if row.state != "unknown"]
    if not states:
        return None, None
    missed = [row for row in states if row.state == "not_met"]
    if missed:
        times = [row.tenant.met_since for row in missed if row.tenant.met_since]
        return False, min(times, default=None)
    times = [row.tenant.met_since for row in states if row.tenant.met_since]
    if len(times) < len(states):
        return True, None
    return True, max(times)


def scorecard(status: FleetStatus, rows: list[TenantRow]) -> list[ScoreCard]:
    """Build the scorecard from the review's lines, or from the tenants per
    environment and tier when no review has run.

    A line without `met_since` takes it from its tenants."""

    def members(environment: str | None, tier: str | None) -> list[TenantRow]:
        return [
            row
            for row in rows
            if row.tenant.environment == environment
            and (tier is None or row.tenant.tier == tier)
        ]

    cards = []
    if status.scorecard:
        for line in status.scorecard:
            tier_rows = members(line.environment, line.tier)
            cards.append(_review_card(line, tier_rows))
        return cards
    groups = dict.fromkeys(
        (row.tenant.environment, row.tenant.tier)
        for row in rows
        if row.tenant.environment is not None
    )
    for environment, tier in groups:
        group = [row for row in members(environment, None) if row.tenant.tier == tier]
        met, since = group_objectives(group)
        cards.append(
            ScoreCard(
                environment=environment or NONE_VALUE,
                tier=tier or NONE_VALUE,
                score=None,
                grade=None,
                objectives_met=met,
                met_since=since,
                tenants=len(group),
            )
        )
    return cards


def _review_card(line: ScoreStatus, rows: list[TenantRow]) -> ScoreCard:
    since = line.met_since
    if since is None and line.objectives_met is not None:
        met, derived = group_objectives(rows)
        if met == line.objectives_met:
            since = derived
    return ScoreCard(
        environment=line.environment,
        tier=line.tier,
        score=line.score,
        grade=line.grade,
        objectives_met=line.objectives_met,
        met_since=since,
        tenants=len(rows),
    )


def format_age(seconds: float | None) -> str:
    return "never" if seconds is None else format_duration(seconds)


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def met_text(value: bool | None) -> str:
    return {True: "met", False: "missed", None: "unknown"}[value]


def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("odoo_dr.serve", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = format_duration
    environment.filters["age"] = format_age
    environment.filters["size"] = charts.format_size
    environment.filters["time"] = format_time
    environment.filters["met"] = met_text
    return environment


TEMPLATES = _templates()


def _render(
    request: Request, template_name: str, status_code: int = 200, **values
) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    template = TEMPLATES.get_template(template_name)
    html = template.render(root=root, version=__version__, **values)
    return HTMLResponse(html, status_code=status_code)


def _error_page(request: Request, error: PageError) -> HTMLResponse:
    path = _QUOTE.repr(request.url.path)
    log.info("dashboard %s %s: %s", error.status_code, path, error.message)
    return _render(
        request,
        "error.html.j2",
        status_code=error.status_code,
        title=error.title,
        message=error.message,
    )


def _fleet_charts(rows: list[TenantRow]) -> dict:
    # The tenant comes first, so a label shortened to fit keeps what tells the
    # rows apart.
    def label(row: TenantRow) -> str:
        return f"{row.tenant.tenant} ({row.environment_value})"

    ages = [
        charts.AgeBar(
            label=label(row),
            age=row.backup_age,
            interval=row.tenant.backup_interval_seconds,
        )
        for row in rows[:AGE_CHART_TENANTS]
    ]
    rto = [
        charts.Series(
            name=label(row),
            points=[
                charts.Point(drill.finished_at, drill.rto_seconds, not drill.passed)
                for drill in row.tenant.drills
            ],
        )
        for row in rows[:RTO_CHART_TENANTS]
    ]
    return {
        "backup_age": charts.backup_age_chart(ages),
        "rto": charts.time_chart(
            "Measured RTO of each drill over time, per tenant",
            rto,
            format_duration,
            charts.duration_step,
            failed_label="failed drill",
        ),
    }


def _growth_chart(status: FleetStatus) -> Markup | None:
    growth = [
        charts.Series(
            name=repository.location,
            points=[charts.Point(moment, value) for moment, value in repository.growth],
        )
        for repository in status.repositories
    ]
    return charts.time_chart(
        "Bytes stored in each repository over time",
        growth,
        charts.format_size,
        charts.size_step,
    )


def _snapshot_series(
    tenant: TenantStatus, field: str, name: str
) -> list[charts.Series]:
    points = [
        charts.Point(item.snapshot_time, getattr(item, field))
        for item in tenant.history
    ]
    return [charts.Series(name, points)]


def _drill_series(tenant: TenantStatus, field: str, name: str) -> list[charts.Series]:
    points = [
        charts.Point(item.finished_at, getattr(item, field), not item.passed)
        for item in tenant.drills
    ]
    return [charts.Series(name, points)]


def _tenant_charts(tenant: TenantStatus) -> dict:
    rto_objective = tenant.objective_rto_seconds
    rpo_objective = tenant.objective_rpo_seconds
    return {
        "size": charts.time_chart(
            f"Size of each snapshot of {tenant.tenant}",
            _snapshot_series(tenant, "size_bytes", "size"),
            charts.format_size,
            charts.size_step,
        ),
        # New bytes are a small share of the size, so they get a chart of their
        # own.
        "new_bytes": charts.time_chart(
            f"Compressed bytes each snapshot of {tenant.tenant} added",
            _snapshot_series(tenant, "new_bytes", "new bytes"),
            charts.format_size,
            charts.size_step,
        ),
        "rto": charts.time_chart(
            f"Measured RTO of each drill of {tenant.tenant}",
            _drill_series(tenant, "rto_seconds", "RTO"),
            format_duration,
            charts.duration_step,
            objective=("RTO objective", rto_objective) if rto_objective else None,
            failed_label="failed drill",
        ),
        "rpo": charts.time_chart(
            f"Measured RPO of each drill of {tenant.tenant}",
            _drill_series(tenant, "rpo_seconds", "RPO"),
            format_duration,
            charts.duration_step,
            objective=("RPO objective", rpo_objective) if rpo_objective else None,
            failed_label="failed drill",
        ),
    }


def _choices(values: list[str | None]) -> list[tuple[str, str]]:
    """Return (value, label) pairs of a filter's options, sorted, with the empty
    value as `-`."""
    present = sorted({value for value in values if value is not None})
    choices = [(value, value) for value in present]
    if any(value is None for value in values):
        choices.append((NONE_VALUE, "(none)"))
    return choices


def routes(
    collector: StatusSource, clock: Callable[[], datetime] | None = None
) -> list[BaseRoute]:
    """Return the dashboard's routes: `/`, `/tenants/{environment}/{tenant}` and
    the `/static` mount of its stylesheet.

    `collector.status` is read once per request. `clock` returns the moment
    that backup ages are measured at (now by default).
    """
    now = clock or (lambda: datetime.now(UTC))
    # The growth chart depends on the status only: drawn once per refresh. The
    # status it was drawn for is kept with it, so a new one is never mistaken
    # for it.
    drawn: list[tuple[FleetStatus, Markup | None]] = []

    def growth_chart(status: FleetStatus) -> Markup | None:
        if not drawn or drawn[0][0] is not status:
            drawn[:] = [(status, _growth_chart(status))]
        return drawn[0][1]

    def fleet(request: Request) -> HTMLResponse:
        try:
            query = TableQuery.parse(dict(request.query_params))
        except PageError as error:
            return _error_page(request, error)
        status = collector.status
        moment = now()
        rows = [tenant_row(tenant, moment) for tenant in status.tenants]
        filtered = query.apply(rows)
        return _render(
            request,
            "fleet.html.j2",
            status=status,
            now=moment,
            cards=scorecard(status, rows),
            rows=filtered,
            page_rows=query.page_of(filtered),
            pages=query.pages(len(filtered)),
            page_size=PAGE_SIZE,
            total=len(rows),
            query=query,
            columns={name: label for name, (label, _key) in COLUMNS.items()},
            environments=_choices([row.tenant.environment for row in rows]),
            tiers=_choices([row.tenant.tier for row in rows]),
            states=STATES,
            charts={**_fleet_charts(filtered), "growth": growth_chart(status)},
            age_chart_tenants=AGE_CHART_TENANTS,
            rto_chart_tenants=RTO_CHART_TENANTS,
        )

    def tenant(request: Request) -> HTMLResponse:
        environment = request.path_params["environment"]
        name = request.path_params["tenant"]
        status = collector.status
        moment = now()
        found = find_tenants(
            status.tenants, request.scope, "/tenants/", f"{environment}/{name}"
        )
        matches = [tenant_row(item, moment) for item in found]
        if not matches:
            error = PageError(
                404,
                "Tenant not found",
                f"tenant {_QUOTE.repr(name)} of environment "
                f"{_QUOTE.repr(environment)} not found",
            )
            return _error_page(request, error)
        sections = [
            {
                "row": row,
                "charts": _tenant_charts(row.tenant),
                "snapshots": list(reversed(row.tenant.history))[:LISTED],
                "drills": list(reversed(row.tenant.drills))[:LISTED],
            }
            for row in matches
        ]
        return _render(
            request,
            "tenant.html.j2",
            status=status,
            now=moment,
            environment=environment,
            name=name,
            sections=sections,
            listed=LISTED,
        )

    return [
        Route("/", fleet, methods=["GET"], name="dashboard"),
        Route(
            "/tenants/{environment}/{tenant:path}",
            tenant,
            methods=["GET"],
            name="dashboard_tenant",
        ),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
