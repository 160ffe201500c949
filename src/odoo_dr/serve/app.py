"""The HTTP application of `odoo-dr serve`: Prometheus metrics, a JSON API and
the dashboard pages (`odoo_dr.serve.dashboard`).

Every route is read-only: a method other than GET or HEAD gets 405. With a token,
every request must carry it, else it gets 401: as `Authorization: Bearer <token>`
(Prometheus, curl), or as the password of HTTP Basic authentication with any user
name, which a browser prompts for by itself. The
OpenAPI description is at /openapi.json; the interactive docs pages are off
because they load their scripts from a CDN.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from odoo_dr import __version__
from odoo_dr.serve import dashboard
from odoo_dr.status.collect import StatusCollector
from odoo_dr.status.metrics import MetricsRenderer
from odoo_dr.status.model import (
    FleetStatus,
    RepositoryStatus,
    ScoreStatus,
    TenantStatus,
)

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD"})
# The path segment that stands for "no environment" in /api/tenants/{env}/{tenant}.
NO_ENVIRONMENT = "-"
# Tenant fields left out of lists, where every tenant's whole history would make
# the response grow with the repository.
HISTORY_FIELDS = {"history", "drills"}
# A status older than this many refresh intervals means the refresh thread is
# stuck, so /healthz fails.
STALE_REFRESHES = 3


class TenantState(StrEnum):
    met = "met"
    not_met = "not_met"
    unknown = "unknown"


class TenantSort(StrEnum):
    environment = "environment"
    tenant = "tenant"
    tier = "tier"
    last_snapshot = "last_snapshot"
    last_drill = "last_drill"
    met_since = "met_since"


class Scorecard(BaseModel):
    reviewed_at: datetime | None
    lines: list[ScoreStatus]


class Health(BaseModel):
    status: str
    generated_at: datetime
    age_seconds: float
    errors: int


def tenant_state(tenant: TenantStatus) -> TenantState:
    """Return whether every measured objective of `tenant` is met."""
    values = [
        value
        for value in (
            tenant.backup_fresh,
            tenant.rpo_met,
            tenant.rto_met,
            tenant.drill_current,
        )
        if value is not None
    ]
    if not values:
        return TenantState.unknown
    return TenantState.met if all(values) else TenantState.not_met


def _sort_key(sort: TenantSort) -> Any:
    oldest = datetime.min.replace(tzinfo=UTC)
    if sort is TenantSort.last_snapshot:
        return lambda item: (
            item.last_snapshot.snapshot_time if item.last_snapshot else oldest
        )
    if sort is TenantSort.last_drill:
        return lambda item: item.last_drill.finished_at if item.last_drill else oldest
    if sort is TenantSort.met_since:
        return lambda item: item.met_since or oldest
    return lambda item: (
        getattr(item, sort.value) or "",
        item.environment or "",
        item.tenant,
    )


class ReadOnlyGuard:
    """ASGI middleware: the bearer token check, then GET and HEAD only.

    HEAD is passed on as GET; uvicorn drops the body of a response to HEAD.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None and not self._authorized(scope):
            response = JSONResponse(
                {"detail": "missing or invalid token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="odoo-dr"'},
            )
            # A second challenge, so that a browser opens its login prompt.
            response.raw_headers.append(
                (b"www-authenticate", b'Basic realm="odoo-dr", charset="UTF-8"')
            )
            await response(scope, receive, send)
            return
        method = scope["method"]
        if method not in READ_METHODS:
            response = JSONResponse(
                {"detail": f"method {method} not allowed: this server is read-only"},
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            await response(scope, receive, send)
            return
        if method == "HEAD":
            scope = dict(scope, method="GET")
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                scheme = scheme.lower()
                if scheme == b"basic":
                    credential = _basic_password(credential.strip())
                elif scheme != b"bearer":
                    return False
                return hmac.compare_digest(credential.strip(), self.token)
        return False


def _basic_password(credential: bytes) -> bytes:
    """Return the password of HTTP Basic credentials, or b"" when malformed."""
    try:
        decoded = base64.b64decode(credential, validate=True)
    except binascii.Error:
        return b""
    _user, separator, password = decoded.partition(b":")
    return password if separator else b""


def create_app(collector: StatusCollector, token: str | None = None) -> FastAPI:
    """Build the application over `collector`; with `token`, require it."""
    app = FastAPI(
        title="odoo-dr",
        version=__version__,
        description="Backup, drill and objective status of an Odoo platform.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    renderer = MetricsRenderer(collector)
    # /api/status serialised once per refresh: (generation, body).
    status_body: list[tuple[int, bytes]] = []

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def metrics() -> Response:
        """Return the Prometheus metrics in the text exposition format."""
        return Response(renderer.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/status", response_model=FleetStatus)
    def status() -> Response:
        """Return the whole status, without tenant histories and repository growth."""
        generation = collector.generation
        current = collector.status
        if not status_body or status_body[0][0] != generation:
            body = current.model_dump_json(
                exclude={
                    "tenants": {"__all__": HISTORY_FIELDS},
                    "repositories": {"__all__": {"growth"}},
                }
            ).encode("utf-8")
            status_body[:] = [(generation, body)]
        return Response(status_body[0][1], media_type="application/json")

    @app.get("/api/tenants", response_model=list[TenantStatus])
    def tenants(
        environment: Annotated[
            str | None,
            Query(description=f"environment name; '{NO_ENVIRONMENT}' for none"),
        ] = None,
        tier: str | None = None,
        state: Annotated[
            TenantState | None,
            Query(description="whether every measured objective is met"),
        ] = None,
        sort: TenantSort = TenantSort.environment,
        descending: bool = False,
    ) -> Response:
        """Return the tenants without their history, filtered and sorted."""
        selected = []
        for item in collector.status.tenants:
            if (
                environment is not None
                and (item.environment or NO_ENVIRONMENT) != environment
            ):
                continue
            if tier is not None and item.tier != tier:
                continue
            if state is not None and tenant_state(item) is not state:
                continue
            selected.append(item)
        selected.sort(key=_sort_key(sort), reverse=descending)
        body = (
            b"["
            + b",".join(
                item.model_dump_json(exclude=HISTORY_FIELDS).encode("utf-8")
                for item in selected
            )
            + b"]"
        )
        return Response(body, media_type="application/json")

    # `{tenant:path}`, because tenant names such as `eu-prod/odoo` contain `/`.
    @app.get("/api/tenants/{environment}/{tenant:path}", response_model=TenantStatus)
    def tenant(request: Request, environment: str, tenant: str) -> TenantStatus:
        """Return one tenant with its snapshots and drills, oldest first."""
        found = dashboard.find_tenants(
            collector.status.tenants,
            request.scope,
            "/api/tenants/",
            f"{environment}/{tenant}",
        )
        if found:
            return found[0]
        raise HTTPException(
            status_code=404,
            detail=f"tenant {tenant!r} of environment {environment!r} not found",
        )

    @app.get("/api/repositories", response_model=list[RepositoryStatus])
    def repositories() -> list[RepositoryStatus]:
        """Return the repositories with their sizes and growth."""
        return collector.status.repositories

    @app.get("/api/scorecard", response_model=Scorecard)
    def scorecard() -> Scorecard:
        """Return the review's scorecard and whether each line meets its objectives."""
        current = collector.status
        return Scorecard(reviewed_at=current.reviewed_at, lines=current.scorecard)

    @app.get("/healthz", response_model=Health)
    def healthz() -> JSONResponse:
        """Return 200 while the status is refreshed on time, 503 once it is stale."""
        current = collector.status
        age = (datetime.now(UTC) - current.generated_at).total_seconds()
        limit = STALE_REFRESHES * collector.refresh_every + current.refresh_seconds
        stale = age > limit
        health = Health(
            status="stale" if stale else "ok",
            generated_at=current.generated_at,
            age_seconds=round(age, 3),
            errors=len(current.errors),
        )
        return JSONResponse(
            health.model_dump(mode="json"), status_code=503 if stale else 200
        )

    # The HTML pages, after the API so that its paths match first.
    app.router.routes.extend(dashboard.routes(collector))

    app.add_middleware(ReadOnlyGuard, token=token)
    return app
