"""SODA 1.0 at ``/soda`` (ivoa-services §10, §12.5): ``/sync`` (GET and POST), ``/async`` (UWS
jobs), ``/capabilities`` and ``/availability``.

The HTTP side of :mod:`spherex_archive.services.soda`. Sync answers one cutout as a streamed
FITS file, 204 with an empty body when the request reaches no pixel of the image, and errors as
text/plain starting with SODA's error name. An async job cuts every ID with every region into one
FITS file (result ``cutouts``: PRIMARY, a ``TOC`` table, then each cutout's HDUs numbered) and
gives the same table of contents as a VOTable (result ``toc``).
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from spherex_archive.catalogue import CatalogueError, open_catalogue
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.config import Settings
from spherex_archive.formats import votable
from spherex_archive.jobs import JobFailure, JobKind, Result, TaskContext, text_error
from spherex_archive.protocols import vosi
from spherex_archive.protocols.uws import uws_router
from spherex_archive.server.dali import dali_params
from spherex_archive.services.cutout import NoOverlap
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.soda import (
    ERROR_NAMES,
    TOC_COLUMNS,
    SodaError,
    find_datasets,
    one_cutout,
    parse_request,
    toc_rows,
    write_cutouts,
)
from spherex_archive.store import open_store

log = logging.getLogger(__name__)

BASE = "/soda"
SYNC_ID = "ivo://ivoa.net/std/SODA#sync-1.0"
ASYNC_ID = "ivo://ivoa.net/std/SODA#async-1.0"
FITS = "application/fits"

router = APIRouter()


def _error(text: str, status: int) -> Response:
    return Response(text.rstrip() + "\n", status_code=status, media_type="text/plain")


# --------------------------------------------------------------------------------------------
# Sync


@router.api_route(BASE + "/sync", methods=["GET", "POST"], include_in_schema=False)
async def sync(request: Request) -> Response:
    params = await dali_params(request)
    try:
        return await run_in_threadpool(_answer, request, params)
    except SodaError as error:
        return _error(str(error), error.status)
    except QueryTimeout:
        return _error("ServiceUnavailable: the catalogue did not answer in time; try again", 503)
    except Exception:  # told without a trace; the log has it
        log.exception("SODA sync %s failed", dict(params))
        return _error("Error: the cutout could not be made; the failure is in the log", 500)


def _answer(request: Request, params: dict[str, list[str]]) -> Response:
    """Parameters, the dataset, the window and the pixel reads, in a worker thread; the copied
    HDUs (PSF, WCS-WAVE) are read from the store as the answer streams."""
    soda = parse_request(params, sync=True)
    state = request.app.state
    engine = QueryEngine(state.catalogue, timeout=state.settings.query_timeout)
    try:
        cutout = one_cutout(engine, state.store, soda)
    except NoOverlap:
        return Response(status_code=204)  # no overlap is no content, not an error
    name = cutout.image.key.rsplit("/", 1)[-1].removesuffix(".fits")
    headers = {
        "Content-Length": str(cutout.size),
        "Content-Disposition": f'attachment; filename="{name}_cutout.fits"',
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(cutout.iter_bytes(state.store), headers=headers, media_type=FITS)


# --------------------------------------------------------------------------------------------
# Async: one job, every ID with every region, one FITS file


def error_document(message: str) -> tuple[bytes, str]:
    """``{job}/error``: text/plain starting with a SODA error name, like the sync errors."""
    return text_error(message if message.startswith(ERROR_NAMES) else f"Error: {message}")


JOBS = JobKind("soda", "spherex_archive.protocols.soda:run_job", error_document)

PROGRESS_EVERY = 0.5
"""Seconds between two progress reports of a job."""


def run_job(ctx: TaskContext) -> list[Result]:
    """An async SODA job, in a worker process: it opens the catalogue and the store itself."""
    from spherex_archive.server.app import storage_options  # the app imports this module

    settings = Settings.model_validate(ctx.settings)
    try:
        soda = parse_request(ctx.parameters, sync=False)
        catalogue = open_catalogue(settings.catalogue)
    except SodaError as error:
        raise JobFailure(str(error)) from None
    except CatalogueError as error:
        raise JobFailure(f"Error: {error}") from None
    try:
        engine = QueryEngine(catalogue, timeout=settings.query_timeout)
        datasets = find_datasets(engine, soda.ids)
    except QueryTimeout:
        raise JobFailure(
            "ServiceUnavailable: the catalogue did not answer in time", transient=True
        ) from None
    finally:
        catalogue.close()
    store = open_store(settings.data, **storage_options(settings))
    last = 0.0

    def progress(done: int, total: int, written: int) -> None:
        nonlocal last
        if time.monotonic() - last > PROGRESS_EVERY:
            ctx.progress(done / total, f"{done} of {total} IDs read, {written} cutouts written")
            last = time.monotonic()

    planned = write_cutouts(
        ctx.workdir / "cutouts.fits",
        store,
        datasets,
        soda,
        should_stop=ctx.should_stop,
        progress=progress,
    )
    if planned is None:
        raise JobFailure("Error: the job was stopped")
    with (ctx.workdir / "toc.xml").open("wb") as out:
        out.writelines(votable.write_votable(TOC_COLUMNS, toc_rows(planned)))
    return [
        Result("cutouts", "cutouts.fits", FITS),
        Result("toc", "toc.xml", votable.MEDIA_TYPE),
    ]


router.include_router(uws_router(BASE + "/async", JOBS))


# --------------------------------------------------------------------------------------------
# VOSI


def capabilities(root: str, settings: Settings) -> list[vosi.Capability]:
    return [
        vosi.Capability(SYNC_ID, f"{root}{BASE}/sync", role="std", version="1.0"),
        vosi.Capability(ASYNC_ID, f"{root}{BASE}/async", role="std", version="1.0"),
    ]


vosi.add_routes(router, BASE, capabilities, "SODA 1.0")
