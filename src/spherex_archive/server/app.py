"""The archive's web application: one FastAPI app over one catalogue and one file store.

``create_app(settings)`` is all a deployment needs: ``spherex-archive serve`` calls it once per
worker. Protocol routers (``protocols/``) find the catalogue and the store on ``app.state``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from spherex_archive import __version__, jobs
from spherex_archive.catalogue import Catalogue, open_catalogue
from spherex_archive.config import Settings, load_settings
from spherex_archive.protocols import coverage, datalink, explorer, ibe, sia, soda, tap
from spherex_archive.protocols import spectrophotometry as spectrophotometry_protocol
from spherex_archive.server import landing, metrics
from spherex_archive.server.middleware import ArchiveMiddleware
from spherex_archive.store import Store, StoreError, open_store

log = logging.getLogger(__name__)

SERVER = f"spherex-archive/{__version__} (python)"
"""The HTTP Server header: taplint warns when it does not name the VO software."""

HEALTH_TIMEOUT = 10.0
"""Seconds /health waits for the catalogue and the store before calling them down."""

PUBLISHED_SETTINGS = ("base_url", "authority", "s3_bucket", "s3_region")
"""Settings the catalogue's views build answers from (access_url, dataset ids, cloud_access)."""

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation while serving (Python's
default is 700). An answer of a few hundred rows allocates thousands of tuples and lists that
reference counting frees at its end; at 700 a collection runs in the middle of nearly every
answer and walks them all (0.2-0.5 ms of CPU per TAP query), at 10,000 a typical answer is
written before one does."""


def create_app(settings: Settings) -> FastAPI:
    """The application: catalogue and store opened, the catalogue told this deployment's
    public URL and bucket, every router and the landing, health and metrics pages added.
    Errors in the settings (no catalogue, no data folder) are raised here, before serving."""
    catalogue = open_catalogue(settings.catalogue)
    publish_settings(catalogue, settings)
    try:
        store = open_store(settings.data, **storage_options(settings))
    except OSError as error:  # a local folder that is missing or unreadable
        raise StoreError(f"cannot open the data at {settings.data}: {error}") from None
    app_metrics = metrics.Metrics(catalogue.counts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        thresholds = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
        try:
            async with jobs.lifespan(app):  # the UWS job engine, app.state.jobs
                yield
        finally:
            if gc.get_threshold()[0] == GC_YOUNG_THRESHOLD:  # unless another app changed it
                gc.set_threshold(*thresholds)
        catalogue.close()

    # No OpenAPI pages: the services are described by their IVOA capabilities.
    app = FastAPI(
        title="SPHEREx archive",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.catalogue = catalogue
    app.state.store = store
    app.state.metrics = app_metrics
    app.state.started = datetime.now(UTC)
    app.include_router(ibe.router)
    app.include_router(sia.router)
    app.include_router(coverage.router)
    app.include_router(tap.router)
    app.include_router(datalink.router)
    app.include_router(soda.router)
    app.include_router(spectrophotometry_protocol.router)
    app.include_router(explorer.router)
    app.add_api_route("/", landing_page, methods=["GET", "HEAD"], response_class=HTMLResponse)
    app.add_api_route("/health", health, methods=["GET", "HEAD"])
    app.add_api_route("/metrics", metrics_page, methods=["GET"])
    app.add_middleware(ArchiveMiddleware, metrics=app_metrics, server=SERVER)
    return app


def create_app_from_env() -> FastAPI:
    """The app from the environment (``SPHEREX_ARCHIVE_*``): the factory uvicorn calls in each
    worker process when serving with several workers."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return create_app(load_settings())


def route_paths(app: FastAPI) -> list[str]:
    """Path templates of every registered route, included routers expanded (recent FastAPI
    wraps an included router in one route object; older versions list its routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [getattr(r, "path", "") for r in app.routes]
    return [context.path for context in iter_route_contexts(app.routes)]


def storage_options(settings: Settings) -> dict[str, Any]:
    """Options for ``open_store``: an S3-compatible endpoint applies to s3:// data only."""
    if settings.data.startswith("s3://") and settings.s3_endpoint:
        return {"client_kwargs": {"endpoint_url": settings.s3_endpoint}}
    return {}


def publish_settings(catalogue: Catalogue, settings: Settings) -> None:
    """Write the public base URL, authority and bucket into the catalogue, whose views build
    access_url and cloud_access from them. Nothing is written when they already match, so
    workers with read-only database access start too; a missing schema is created."""
    wanted = {name: str(getattr(settings, name)) for name in PUBLISHED_SETTINGS}
    wanted["base_url"] = wanted["base_url"].rstrip("/")
    try:
        current = catalogue.config()
    except Exception:  # no schema yet (new file or database): create() says if it cannot
        catalogue.create()
        current = catalogue.config()
    if not catalogue.is_current():  # made by another version: bring its views up to date
        try:
            catalogue.create()
            log.info("catalogue views and TAP_SCHEMA updated to this version's model")
        except Exception as error:  # a read-only account serves what it has
            log.warning("catalogue made by another version, cannot update it: %s", error)
    if any(current.get(k) != v for k, v in wanted.items()):
        catalogue.set_config(**wanted)
        log.info("catalogue settings: %s", ", ".join(f"{k}={v}" for k, v in wanted.items()))


# --------------------------------------------------------------------------------------------
# Pages


def landing_page(request: Request) -> HTMLResponse:
    from spherex_archive.synth.survey import DEEP_FIELDS  # the examples point at the NEP field

    state = request.app.state
    try:
        counts: dict[str, int] | None = state.catalogue.counts()
    except Exception:
        log.exception("counting planes for the landing page failed")
        counts = None
    try:
        releases = sorted(e.name for e in state.store.list("") if e.is_dir)
    except Exception:
        log.exception("listing the store for the landing page failed")
        releases = []
    routes = route_paths(request.app)
    page = landing.render(state.settings.base_url, routes, counts, releases, DEEP_FIELDS["NEP"])
    return HTMLResponse(page)


def _check_catalogue(catalogue: Catalogue) -> None:
    """The serving catalogue answers a trivial query, and so does a fresh connection: a
    SQLite file removed under a running server still answers through an open connection,
    but no new worker could start."""
    catalogue.config()
    probe = open_catalogue(catalogue.url)
    try:
        probe.config()
    finally:
        probe.close()


def _check_store(store: Store) -> None:
    store.stat("")


async def health(request: Request) -> JSONResponse:
    """200 when the catalogue and the store answer, 503 when either does not (with why)."""
    state = request.app.state
    started = time.perf_counter()
    checks = {}
    for name, check, target in (
        ("catalogue", _check_catalogue, state.catalogue),
        ("store", _check_store, state.store),
    ):
        try:
            await asyncio.wait_for(run_in_threadpool(check, target), HEALTH_TIMEOUT)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"no answer within {HEALTH_TIMEOUT:g} s"
        except Exception as error:
            checks[name] = f"{type(error).__name__}: {error}"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        log.warning("health check failed: %s", checks)
    body = {
        "status": "ok" if ok else "unavailable",
        "version": __version__,
        "checks": checks,
        "seconds": round(time.perf_counter() - started, 4),
    }
    return JSONResponse(body, status_code=200 if ok else 503)


def metrics_page(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=metrics.MEDIA_TYPE)
