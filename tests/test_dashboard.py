"""The dashboard pages of `odoo-dr serve`, over real HTTP with uvicorn.

The fleet comes from the 3pl-provider example: its review's scorecard, and its
tenants with made-up snapshot and drill histories, plus a tenant found in a
repository but not in the inventory whose name is an HTML script element. One
test runs the real status collector on a copy of the example, and one loads the
pages in Debian's Chromium through Playwright.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn

from odoo_dr.repository.store import Repository
from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.serve import charts
from odoo_dr.serve.app import create_app
from odoo_dr.serve.dashboard import PAGE_SIZE
from odoo_dr.status.collect import StatusCollector, _score_status
from odoo_dr.status.model import DrillPoint, FleetStatus, SnapshotPoint, TenantStatus

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "3pl-provider"
ARTEFACTS = ROOT / "tests" / "artefacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT_NAME = '<script>alert("tenant")</script>'
DAY = 86400


# -- the fleet


def _history(
    index: int, now: datetime, interval: int, stale: bool
) -> list[SnapshotPoint]:
    """Return 30 snapshots, one per interval, the last one 3 intervals old when
    `stale`, else an hour old."""
    last = now - (timedelta(seconds=3 * interval) if stale else timedelta(hours=1))
    points = []
    for number in range(30):
        moment = last - timedelta(seconds=interval * (29 - number))
        points.append(
            SnapshotPoint(
                id=f"s{index:02d}{number:03d}",
                snapshot_time=moment,
                size_bytes=(index + 1) * 200 * 2**20 + number * 3 * 2**20,
                new_bytes=(index + 1) * 2**20 + number * 1024,
                missing_files=1 if (index == 2 and number == 29) else 0,
            )
        )
    return points


def _drills(index: int, now: datetime, failing: bool) -> list[DrillPoint]:
    """Return six weekly drills whose RTO grows; the last one fails when
    `failing`."""
    drills = []
    for number in range(6):
        drills.append(
            DrillPoint(
                id=f"d{index:02d}{number}",
                finished_at=now - timedelta(days=7 * (5 - number), hours=2),
                passed=not (failing and number == 5),
                rto_seconds=600.0 + index * 300 + number * 60,
                rpo_seconds=1800.0 + index * 120,
            )
        )
    return drills


def _tenant(
    environment: str | None,
    name: str,
    tier: str | None,
    objectives: tuple[int | None, int | None, int],
    index: int,
    now: datetime,
) -> TenantStatus:
    rto, rpo, drill_window = objectives
    interval = 7 * DAY if environment == "partner-sandbox" else DAY

    # Every third tenant has a stale backup and every fourth a failed last
    # drill, so the state and sort columns have both values to order.
    stale = index % 3 == 1
    failing = index % 4 == 2
    history = _history(index, now, interval, stale)
    drills = _drills(index, now, failing)

    last = history[-1]
    passing = [drill for drill in drills if drill.passed]
    age = (now - last.snapshot_time).total_seconds()
    return TenantStatus(
        environment=environment,
        tenant=name,
        tier=tier,
        repository="/srv/odoo-dr",
        backup_interval_seconds=interval,
        drill_interval_seconds=drill_window,
        objective_rto_seconds=rto,
        objective_rpo_seconds=rpo,
        snapshots=len(history),
        last_snapshot=last,
        last_drill=drills[-1],
        last_passing_drill=passing[-1],
        history=history,
        drills=drills,
        backup_fresh=age <= interval,
        rpo_met=None if rpo is None else age <= rpo,
        rto_met=None if rto is None else passing[-1].rto_seconds <= rto,
        drill_current=drills[-1].passed,
        met_since=now - timedelta(days=index + 1),
    )


@pytest.fixture(scope="module")
def fleet() -> FleetStatus:
    now = datetime.now(UTC)
    result = run_review(EXAMPLE, ReviewOptions(live=False))
    tenants = []
    for line in result.scorecard:
        for item in line.tenants:
            objectives = (item.declared_rto, item.declared_rpo, item.drill_window)
            tenants.append(
                _tenant(
                    line.environment,
                    item.tenant,
                    line.tier,
                    objectives,
                    len(tenants),
                    now,
                )
            )
    stray = _tenant(None, SCRIPT_NAME, None, (None, None, 0), len(tenants), now)
    tenants.append(stray)
    scorecard = [
        _score_status(line.environment, line.tier, line.score, line.grade, tenants)
        for line in result.scorecard
    ]
    growth = []
    total = 0
    for item in sorted(
        (point for tenant in tenants for point in tenant.history),
        key=lambda point: point.snapshot_time,
    ):
        total += item.new_bytes
        growth.append((item.snapshot_time, total))
    return FleetStatus.model_validate(
        {
            "platform": result.platform,
            "generated_at": now,
            "refresh_seconds": 0.25,
            "tenants": tenants,
            "repositories": [
                {
                    "location": "/srv/odoo-dr",
                    "snapshots": sum(len(tenant.history) for tenant in tenants),
                    "tenants": len(tenants),
                    "stored_bytes": total,
                    "logical_bytes": 4 * total,
                    "dedup_ratio": 4.0,
                    "growth": growth,
                }
            ],
            "scorecard": scorecard,
            "reviewed_at": result.reviewed_at,
        }
    )


class FixedCollector(StatusCollector):
    """The status collector serving a status made by the test."""

    def __init__(self, status: FleetStatus) -> None:
        super().__init__()
        self.fixed = status

    def _collect(self) -> FleetStatus:
        return self.fixed.model_copy(update={"generated_at": datetime.now(UTC)})


# -- the server


class Served:
    def __init__(self, app) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.sock.close()

    def get(self, path: str) -> tuple[int, str, str]:
        """Return the status, content type and body of a GET of `path`."""
        try:
            with urllib.request.urlopen(self.url + path) as response:
                body = response.read().decode("utf-8")
                return response.status, response.headers["content-type"], body
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8")
            return error.code, error.headers["content-type"], body


@pytest.fixture(scope="module")
def served(fleet: FleetStatus) -> Iterator[Served]:
    with Served(create_app(FixedCollector(fleet))) as server:
        yield server


def table_tenants(page: str) -> list[str]:
    """Return the tenant names of the tenant table, in row order."""
    table = page[page.index('id="tenant-table"') :]
    table = table[: table.index("</table>")]
    names = re.findall(r'<th scope="row"><a href="[^"]*">(.*?)</a></th>', table)
    return [html.unescape(name) for name in names]


def query(**params: str) -> str:
    return "/?" + urllib.parse.urlencode(params)


# -- the fleet page


def test_fleet_page_scorecard(served: Served, fleet: FleetStatus) -> None:
    status, content_type, page = served.get("/")
    assert status == 200
    assert content_type.startswith("text/html")
    assert '<link rel="stylesheet" href="/static/dashboard.css">' in page
    assert "https://" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for line in fleet.scorecard:
        heading = f"<h3>{line.environment} · {line.tier}</h3>"
        assert heading in page
        card = page[page.index(heading) :]
        card = card[: card.index("</li>")]
        assert f"{line.score:.0f}" in card
        assert f"grade {line.grade}" in card
        if line.objectives_met is True:
            assert "objectives met" in card
        if line.objectives_met is False:
            assert "objectives missed" in card
        if line.met_since is not None:
            assert f"since {line.met_since.strftime('%Y-%m-%d %H:%M')} UTC" in card
    assert page.count('<svg class="chart"') == 3
    # Nine tenants: all of them have a bar, and the RTO chart shows the first
    # eight rows.
    assert "The first 40 of" not in page
    assert "The first 8 of 9 tenants: filter the table to see others." in page
    last = table_tenants(page)[-1]
    rto_chart = page[page.index("Measured RTO of each drill over time") :]
    rto_chart = rto_chart[: rto_chart.index("</svg>")]
    assert table_tenants(page)[0] in rto_chart
    assert last not in rto_chart


def test_stylesheet_served_locally(served: Served) -> None:
    status, content_type, body = served.get("/static/dashboard.css")
    assert status == 200
    assert content_type.startswith("text/css")
    assert "font-family" in body
    assert "@import" not in body
    assert "url(" not in body


def test_tenant_table_columns(served: Served, fleet: FleetStatus) -> None:
    _status, _type, page = served.get(query(sort="tenant"))
    assert sorted(table_tenants(page)) == sorted(item.tenant for item in fleet.tenants)
    table = page[page.index('id="tenant-table"') :]
    header = table[: table.index("</thead>")]
    for label in (
        "Environment",
        "Tenant",
        "Tier",
        "Last backup",
        "Size",
        "New bytes",
        "Missing files",
        "Last drill",
        "RTO",
        "RPO",
        "State",
    ):
        assert f">{label}</a>" in header
    assert "<caption>" in table
    row = table[table.index(">acme_retail</a>") :]
    row = row[: row.index("</tr>")]
    assert "of 1d" in row
    assert "of 4h" in row
    assert "MiB" in row
    assert "passed" in row


def test_sort_by_tenant(served: Served, fleet: FleetStatus) -> None:
    names = sorted(item.tenant for item in fleet.tenants)
    _status, _type, ascending = served.get(query(sort="tenant", order="asc"))
    assert table_tenants(ascending) == names
    assert 'aria-sort="ascending"' in ascending
    _status, _type, descending = served.get(query(sort="tenant", order="desc"))
    assert table_tenants(descending) == list(reversed(names))
    assert 'aria-sort="descending"' in descending


def test_sort_by_backup_age(served: Served, fleet: FleetStatus) -> None:
    _status, _type, page = served.get(query(sort="backup_age", order="desc"))
    shown = table_tenants(page)
    ages = {
        item.tenant: item.last_snapshot.snapshot_time
        for item in fleet.tenants
        if item.last_snapshot
    }
    # The oldest last snapshot comes first.
    times = [ages[name] for name in shown]
    assert times == sorted(times)
    assert fleet.tenants[-1].tenant in shown


def test_sort_by_state(served: Served, fleet: FleetStatus) -> None:
    _status, _type, page = served.get(query(sort="state"))
    shown = table_tenants(page)
    table = page[page.index('id="tenant-table"') :]
    states = re.findall(r'<span class="badge (\w+)">', table)
    assert len(states) == len(shown)
    order = {"not_met": 0, "unknown": 1, "met": 2}
    assert [order[state] for state in states] == sorted(order[s] for s in states)
    assert states[0] == "not_met"
    assert states[-1] == "met"


def test_sort_link_keeps_filters(served: Served) -> None:
    _status, _type, page = served.get(
        query(environment="production", sort="tenant", order="asc")
    )
    links = re.findall(r'<th scope="col"[^>]*><a href="([^"]*)">Tenant</a>', page)
    assert len(links) == 1
    params = urllib.parse.parse_qs(html.unescape(links[0])[1:])
    assert params == {
        "environment": ["production"],
        "sort": ["tenant"],
        "order": ["desc"],
    }


def test_filter_by_environment(served: Served, fleet: FleetStatus) -> None:
    _status, _type, page = served.get(query(environment="partner-sandbox"))
    expected = {
        item.tenant for item in fleet.tenants if item.environment == "partner-sandbox"
    }
    assert expected
    assert set(table_tenants(page)) == expected
    assert '<option value="partner-sandbox" selected>' in page


def test_filter_tenant_outside_inventory(served: Served) -> None:
    _status, _type, page = served.get(query(environment="-"))
    assert table_tenants(page) == [SCRIPT_NAME]


def test_filter_by_tier_and_state(served: Served, fleet: FleetStatus) -> None:
    _status, _type, page = served.get(query(tier="high"))
    high = {item.tenant for item in fleet.tenants if item.tier == "high"}
    assert set(table_tenants(page)) == high
    _status, _type, page = served.get(query(state="not_met"))
    shown = table_tenants(page)
    assert shown
    table = page[page.index('id="tenant-table"') :]
    assert set(re.findall(r'<span class="badge (\w+)">', table)) == {"not_met"}
    _status, _type, page = served.get(query(state="met"))
    assert not set(shown) & set(table_tenants(page))


def test_filter_by_search(served: Served) -> None:
    _status, _type, page = served.get(query(q="ACME"))
    assert set(table_tenants(page)) == {"acme_retail", "sandbox_acme"}
    _status, _type, page = served.get(query(q="acme", environment="production"))
    assert table_tenants(page) == ["acme_retail"]
    _status, _type, page = served.get(query(q="no such tenant"))
    assert table_tenants(page) == []
    assert "No tenant matches these filters." in page


def test_empty_parameters_ignored(served: Served, fleet: FleetStatus) -> None:
    _status, _type, page = served.get(
        query(environment="", tier="", state="", q="", sort="tenant", order="asc")
    )
    assert len(table_tenants(page)) == len(fleet.tenants)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": "password"}, "invalid sort 'password'"),
        ({"order": "sideways"}, "invalid order 'sideways'"),
        ({"state": "broken"}, "invalid state 'broken'"),
    ],
)
def test_invalid_query_rejected(served: Served, params: dict, message: str) -> None:
    status, content_type, body = served.get(query(**params))
    assert status == 400
    assert content_type.startswith("text/html")
    assert message in html.unescape(body)


def test_tenant_name_escaped(served: Served) -> None:
    _status, _type, page = served.get("/")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#34;tenant&#34;)&lt;/script&gt;" in page
    link = "/tenants/-/" + urllib.parse.quote(SCRIPT_NAME, safe="")
    assert f'href="{link}"' in page
    status, _type, tenant_page = served.get(link)
    assert status == 200
    assert "<script" not in tenant_page
    assert "<h1>&lt;script&gt;alert(&#34;tenant&#34;)&lt;/script&gt;" in tenant_page


def test_write_methods_rejected(served: Served) -> None:
    request = urllib.request.Request(served.url + "/", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert raised.value.code == 405


# -- the tenant page


def test_tenant_page(served: Served, fleet: FleetStatus) -> None:
    tenant = next(item for item in fleet.tenants if item.tenant == "acme_retail")
    status, _type, page = served.get("/tenants/production/acme_retail")
    assert status == 200
    assert "<h1>acme_retail" in page
    assert page.count('<svg class="chart"') == 4
    newest = tenant.history[-1]
    oldest = tenant.history[0]
    assert f"<code>{newest.id}</code>" in page
    assert f"<code>{oldest.id}</code>" in page
    assert page.index(newest.id) < page.index(oldest.id)
    for drill in tenant.drills:
        assert f"<code>{drill.id}</code>" in page
    assert "RTO objective" in page
    assert "Snapshots: 30 most recent of 30, newest first" in page


def test_tenant_page_not_found(served: Served) -> None:
    status, _type, body = served.get("/tenants/production/no_such_tenant")
    assert status == 404
    assert "tenant &#39;no_such_tenant&#39; of environment" in body
    status, _type, _body = served.get("/tenants/staging/acme_retail")
    assert status == 404


# -- the real collector on the example


def test_collector_on_example(tmp_path: Path) -> None:
    """Serve the status that StatusCollector collects from a copy of the
    example, whose repositories exist and are empty."""
    folder = tmp_path / "3pl-provider"
    shutil.copytree(EXAMPLE, folder)
    inventory = folder / "inventory.yaml"
    text = inventory.read_text()
    for location in ("/mnt/backup01/odoo-dr", "/srv/odoo-dr"):
        local = tmp_path / location.strip("/").replace("/", "-")
        Repository.init(str(local))
        assert location in text
        text = text.replace(location, str(local))
    inventory.write_text(text)
    review = run_review(folder, ReviewOptions(live=False))
    collector = StatusCollector(inventory_path=inventory)

    with Served(create_app(collector)) as server:
        status, _type, page = server.get(query(sort="tenant"))

    assert status == 200
    for line in review.scorecard:
        heading = f"<h3>{line.environment} · {line.tier}</h3>"
        assert heading in page
        card = page[page.index(heading) :]
        assert f"grade {line.grade}" in card[: card.index("</li>")]
    expected = sorted(item.tenant for line in review.scorecard for item in line.tenants)
    assert table_tenants(page) == expected
    assert "No drill recorded." in page
    assert "Errors of the last refresh" not in page


# -- in a browser


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_large_fleet_in_pages(fleet: FleetStatus) -> None:
    template = fleet.tenants[0]
    tenants = [
        template.model_copy(update={"tenant": f"tenant_{number:03d}"})
        for number in range(2 * PAGE_SIZE + 5)
    ]
    large = fleet.model_copy(update={"tenants": tenants})
    with Served(create_app(FixedCollector(large))) as server:
        _status, _type, first = server.get(query(sort="tenant"))
        assert f"{len(tenants)} of {len(tenants)} tenants, page 1 of 3" in first
        assert table_tenants(first) == [item.tenant for item in tenants[:PAGE_SIZE]]
        # The page links keep the sort, and the sort links go back to page 1.
        assert 'href="?sort=tenant&amp;order=asc&amp;page=2" rel="next"' in first
        assert (
            "page="
            not in re.findall(r'<th scope="col"[^>]*><a href="([^"]*)"', first)[0]
        )
        _status, _type, last = server.get(query(sort="tenant", page="3"))
        assert table_tenants(last) == [item.tenant for item in tenants[2 * PAGE_SIZE :]]
        assert 'rel="prev"' in last
        assert 'rel="next"' not in last
        _status, _type, past = server.get(query(page="9"))
        assert table_tenants(past) == []
        assert "the last page is 3" in past
        status, _type, _page = server.get(query(page="0"))
        assert status == 400


def test_long_history_drawn_in_bounded_points() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [
        charts.Point(start + timedelta(minutes=number), number, number % 997 == 0)
        for number in range(30_000)
    ]
    chart = charts.time_chart(
        "growth", [charts.Series("repo", points)], str, charts.size_step
    )
    drawn = chart.count("<title>")
    assert (
        drawn <= (charts.PLOT_RIGHT - charts.PLOT_LEFT) / charts.PIXELS_PER_POINT + 40
    )
    # Every failed point is kept.
    assert chart.count("(failed)") == len([item for item in points if item.failed])
    # The newest value is drawn.
    assert f"repo: {points[-1].value} at" in chart


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: install Debian's chromium package",
)
def test_dashboard_in_chromium(served: Served, fleet: FleetStatus) -> None:
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(served.url + "/")

            scorecard = page.locator("#scorecard .card")
            assert scorecard.count() == len(fleet.scorecard)
            assert scorecard.first.is_visible()
            table = page.locator("#tenant-table")
            assert table.is_visible()
            assert table.locator("tbody tr").count() == len(fleet.tenants)
            # The stylesheet applied: the header cells have their background.
            background = page.locator("#tenant-table thead th").first.evaluate(
                "cell => getComputedStyle(cell).backgroundColor"
            )
            assert background == "rgb(237, 242, 247)"
            page.screenshot(path=ARTEFACTS / "fleet.png", full_page=True)
            page.screenshot(path=ARTEFACTS / "fleet-top.png")

            page.get_by_role("link", name="Tenant", exact=True).click()
            page.wait_for_url("**/?*sort=tenant*")
            names = page.locator("#tenant-table tbody th[scope=row]").all_inner_texts()
            assert names == sorted(item.tenant for item in fleet.tenants)
            header = page.locator("#tenant-table thead th[aria-sort]")
            assert header.get_attribute("aria-sort") == "ascending"
            page.get_by_role("link", name="Tenant", exact=True).click()
            page.wait_for_url("**/?*order=desc*")
            names = page.locator("#tenant-table tbody th[scope=row]").all_inner_texts()
            expected = sorted((item.tenant for item in fleet.tenants), reverse=True)
            assert names == expected
            page.screenshot(path=ARTEFACTS / "fleet-sorted.png", full_page=True)

            page.get_by_label("Environment").select_option("partner-sandbox")
            page.get_by_role("button", name="Filter").click()
            page.wait_for_url("**/?*environment=partner-sandbox*")
            rows = page.locator("#tenant-table tbody tr")
            assert rows.count() == 3

            page.get_by_role("link", name="sandbox_acme").click()
            page.wait_for_url("**/tenants/partner-sandbox/sandbox_acme")
            assert page.locator("h1").inner_text().startswith("sandbox_acme")
            page.screenshot(path=ARTEFACTS / "tenant.png", full_page=True)

            page.goto(served.url + "/")
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            stray = page.get_by_role("link", name=SCRIPT_NAME)
            assert stray.is_visible()
            stray.click()
            page.wait_for_url("**/tenants/-/**")
            assert page.locator("h1").inner_text().startswith(SCRIPT_NAME)
            assert dialogs == []
        finally:
            browser.close()

    outside = [url for url in requests if not url.startswith(served.url)]
    assert outside == []
    print(f"dashboard screenshots in {ARTEFACTS}")
    # The README's picture changes only on request, so a test run leaves the
    # work tree clean.
    if os.environ.get("ODOO_DR_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(ARTEFACTS / "fleet-top.png", ROOT / "docs" / "dashboard.png")


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: install Debian's chromium package",
)
def test_browser_logs_in_with_token(fleet: FleetStatus) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    token = "dashboard-token-0123456789"
    with (
        Served(create_app(FixedCollector(fleet), token=token)) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
        )
        try:
            # Headless Chromium replies to the Basic challenge with the credentials
            # of its context; with none it gives up at once.
            anonymous = browser.new_page()
            with pytest.raises(PlaywrightError, match="INVALID_AUTH_CREDENTIALS"):
                anonymous.goto(server.url + "/")
            wrong = browser.new_context(
                http_credentials={"username": "viewer", "password": "not-the-token"}
            ).new_page()
            assert wrong.goto(server.url + "/").status == 401
            viewer = browser.new_context(
                http_credentials={"username": "viewer", "password": token}
            ).new_page()
            assert viewer.goto(server.url + "/").status == 200
            assert viewer.locator("#scorecard .card").count() == len(fleet.scorecard)
            # The stylesheet comes with the same credentials.
            background = viewer.locator("#tenant-table thead th").first.evaluate(
                "cell => getComputedStyle(cell).backgroundColor"
            )
            assert background == "rgb(237, 242, 247)"
        finally:
            browser.close()
