"""The FastAPI application: built from its parts, no globals (``create_app`` once per process or test)."""

from __future__ import annotations

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from api import hardening
from api.audit import routes as audit_routes
from api.auth import routes as auth_routes
from api.auth.deps import require_principal
from api.auth.security import Security
from api.console import pages as console_pages
from api.context import AppContext, CameraStatusProvider
from api.metrics import KhuphoMetrics
from api.reports.desk import ReportDesk
from api.reports.install import default_desk
from api.reports.install import install as install_reports
from api.review import routes as review_routes
from api.routes import cameras, events, health, prometheus, public, stream, traffic
from events.congestion import TrafficBoard
from events.storage.bus import EventBus
from events.storage.objects import ObjectNotFound, ObjectStore
from events.storage.store import EventStore, StorageError

log = logging.getLogger(__name__)


def create_app(
    store: EventStore,
    objects: ObjectStore,
    bus: EventBus,
    cameras_status_provider: CameraStatusProvider,
    metrics: KhuphoMetrics,
    *,
    security: Security,
    reports: ReportDesk | None = None,
    heartbeat_s: float = 15.0,
    presign_expiry: timedelta = timedelta(hours=1),
    sse_queue_size: int = 256,
    traffic_tz: str = "UTC",
    title: str = "khupho",
    traffic_board: TrafficBoard | None = None,
) -> FastAPI:
    """The HTTP API and the review console over the given components; OpenAPI docs at ``/docs``.

    Every route needs credentials (``security``: accounts, scopes, audit, review)
    except ``/healthz``, ``/auth/login``, the login page and static files, the
    residents' report routes (``/open311/v2/...``, ``/phan-anh...``), public by design
    and rate-limited (``reports`` is their desk, default: one on the security database),
    and the read-only traffic aggregates under ``/public/`` (signage and apps).

    The caller owns the components (starts and closes them); the app only reads the
    store and object store, subscribes to the bus, and renders the metrics.
    ``heartbeat_s``: SSE keep-alive comment interval; ``sse_queue_size``: transitions
    buffered per SSE client before its oldest are dropped (and a gap reported);
    ``presign_expiry``: lifetime of snapshot links on S3; ``traffic_tz``: IANA zone of
    ``/traffic`` hour and day buckets when the request names none; ``traffic_board``:
    the segment states behind the public ``/public/...`` routes (404 there without one).
    """
    ZoneInfo(traffic_tz)  # fail at start-up, not on the first request
    app = FastAPI(
        title=title,
        summary="Events, traffic counts, camera status and metrics of a khupho video-analytics node",
        version="0.1.0",
        # Served by hardening.install behind a login instead of FastAPI's public defaults.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.security = security
    app.state.khupho = AppContext(
        store=store,
        objects=objects,
        bus=bus,
        cameras=cameras_status_provider,
        metrics=metrics,
        heartbeat_s=heartbeat_s,
        presign_expiry=presign_expiry,
        sse_queue_size=sse_queue_size,
        traffic_tz=traffic_tz,
    )
    metrics.watch_bus(bus)
    app.state.traffic = traffic_board

    @app.exception_handler(ObjectNotFound)
    async def _not_found(request: Request, exc: ObjectNotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": "not found"})

    @app.exception_handler(StorageError)
    async def _unavailable(request: Request, exc: StorageError) -> JSONResponse:
        # Storage down is the server's state, not a bug: 503 tells clients and load balancers to retry.
        # The detail (server, key) goes to the log, not to the client.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=503, content={"detail": "storage unavailable, try again"})

    hardening.install(app)
    console_pages.install_login_redirect(app)
    authenticated = [Depends(require_principal)]
    app.include_router(health.router)  # public: liveness only
    app.include_router(public.router)  # public: traffic aggregates for signage and apps (/public/...)
    app.include_router(auth_routes.public_router)  # public: POST /auth/login
    app.include_router(console_pages.public_router)  # public: the login page and static files
    app.include_router(auth_routes.router, dependencies=authenticated)
    app.include_router(cameras.router, dependencies=authenticated)
    # The stream and count routes come before /events/{event_id}, which would otherwise match them.
    app.include_router(stream.router, dependencies=authenticated)
    app.include_router(events.router, dependencies=authenticated)
    app.include_router(traffic.router, dependencies=authenticated)
    app.include_router(review_routes.router, dependencies=authenticated)
    app.include_router(audit_routes.router, dependencies=authenticated)
    install_reports(app, reports or default_desk(security, store, objects))
    app.include_router(prometheus.router)  # an administrator or a metrics key (checked by the route)
    app.include_router(console_pages.router)  # pages redirect to the login page without a session
    return app
