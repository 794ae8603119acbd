"""Coverage at ``/coverage/``: each collection's MOC (MOC 2.0: FITS, JSON, ASCII) and the
question "which collections cover this position or region, with how many images".

- ``/coverage/``: the collections with their MOCs (HTML; JSON with ``Accept: application/json``
  or ``?format=json``).
- ``/coverage/{collection}.fits`` / ``.json`` / ``.txt``: the collection's MOC.
- ``/coverage/search?POS=...`` (or ``RA``, ``DEC`` and optionally ``RADIUS``, degrees; also
  ``COLLECTION``, repeatable): one row per collection whose coverage meets the region:
  collection, covered, images, fraction. VOTable by default; CSV, TSV, HTML or JSON by
  RESPONSEFORMAT. POS takes SIA's syntax: ``CIRCLE ra dec r`` (``r`` = 0 is a point),
  ``POLYGON ra1 dec1 ra2 dec2 ra3 dec3 ...`` or ``RANGE ra1 ra2 dec1 dec2``.

The answers come from :mod:`spherex_archive.services.coverage`; errors are DALI error
documents starting with ``UsageFault`` (JSON ``{"error": ...}`` when JSON was asked for).
"""

from __future__ import annotations

import html
import io

import numpy as np
from astropy.io import fits
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from mocpy import MOC
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from spherex_archive import __version__
from spherex_archive.model.schema import Column
from spherex_archive.server import landing
from spherex_archive.server.dali import (
    VOTABLE,
    DaliError,
    ResponseFormat,
    dali_params,
    error_response,
    response_format,
    single,
    table_response,
)
from spherex_archive.services import shapes
from spherex_archive.services.coverage import (
    CollectionCoverage,
    CoverageService,
    Covering,
    Region,
    UnknownCollection,
)

PREFIX = "/coverage"
JSON = ResponseFormat("json", "application/json")
SUFFIXES = {
    "fits": "application/fits",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}

COLUMNS = (
    Column("collection", "char", "Collection (obs_collection)", ucd="meta.id;meta.dataset"),
    Column(
        "covered",
        "boolean",
        "True when the whole region lies inside the collection's coverage MOC",
        ucd="meta.code",
    ),
    Column(
        "images",
        "int",
        "Released images whose footprint touches the HEALPix order-10 cell of the position; "
        "for a region, the largest such count over its cells. Never fewer than the images "
        "containing the position, sometimes more near image edges.",
        ucd="meta.number",
    ),
    Column(
        "fraction",
        "double",
        "Fraction of the region's area inside the coverage MOC (HEALPix order 11)",
        ucd="arith.ratio",
    ),
)

router = APIRouter()


def service(request: Request) -> CoverageService:
    """The app's coverage service (created on first use: it holds the MOC cache)."""
    state = request.app.state
    current = getattr(state, "coverage", None)
    if current is None or current.catalogue is not state.catalogue:
        current = state.coverage = CoverageService(state.catalogue)
    return current


def _base(request: Request) -> str:
    return f"{request.app.state.settings.base_url.rstrip('/')}{PREFIX}"


# --------------------------------------------------------------------------------------------
# The list of collections


@router.get(PREFIX + "/", include_in_schema=False)
async def index(request: Request) -> Response:
    collections = await run_in_threadpool(service(request).collections)
    accept = request.headers.get("accept", "")
    wants_json = request.query_params.get("format", "").lower() == "json" or (
        "application/json" in accept and "text/html" not in accept
    )
    if wants_json:
        base = _base(request)
        return JSONResponse(
            {
                "collections": [_description(c, base) for c in collections],
                "search": f"{base}/search",
            }
        )
    return HTMLResponse(_page(collections))


def _description(c: CollectionCoverage, base: str) -> dict:
    return {
        "collection": c.name,
        "planes": c.planes,
        "sky_fraction": c.sky_fraction,
        "area_deg2": round(c.area_deg2, 6),
        "updated_at": c.updated_at.replace(" ", "T") + "Z",
        "moc": {suffix: f"{base}/{c.name}.{suffix}" for suffix in SUFFIXES},
    }


def _page(collections: list[CollectionCoverage]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td class=n>{c.planes:,}</td>"
        f"<td class=n>{c.area_deg2:,.3f}</td><td class=n>{c.sky_fraction:.3e}</td>"
        f"<td>{html.escape(c.updated_at)}</td><td>"
        + " ".join(f'<a href="{html.escape(c.name)}.{s}">{s.upper()}</a>' for s in SUFFIXES)
        + "</td></tr>"
        for c in collections
    )
    table = (
        "<table><thead><tr><th>Collection</th><th>Released planes</th><th>Area (deg²)</th>"
        "<th>Sky fraction</th><th>Updated (UTC)</th><th>MOC 2.0</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if collections
        else "<p>No collection yet: ingest a release with <code>spherex-archive ingest</code>.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>SPHEREx archive: coverage</title>\n<style>{landing.STYLE}</style>\n</head>\n"
        f"<body>\n<h1>Coverage</h1>\n<p>The sky each collection covers, as MOCs "
        "(HEALPix order 11, released images only).</p>\n"
        f"{table}\n<h2>Which collections cover a position or region?</h2>\n"
        '<form action="search" method="get"><input type="hidden" name="RESPONSEFORMAT" '
        'value="html"><input name="POS" size="40" value="CIRCLE 270.0 66.56 0.1"> '
        "<button>Search</button></form>\n<p><code>POS</code> takes <code>CIRCLE ra dec r"
        "</code> (r = 0 for a point), <code>POLYGON ra1 dec1 ra2 dec2 ...</code> or "
        "<code>RANGE ra1 ra2 dec1 dec2</code>, ICRS degrees; the answer is a VOTable unless "
        "<code>RESPONSEFORMAT</code> says csv, tsv, html or json.</p>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------
# Search


@router.api_route(PREFIX + "/search", methods=["GET", "POST"], include_in_schema=False)
async def search(request: Request) -> Response:
    fmt = VOTABLE
    try:
        params = await dali_params(request)
        fmt = _format(single(params, "RESPONSEFORMAT"))
        region = _region(params)
        wanted = params.get("COLLECTION")
        try:
            answer = await run_in_threadpool(service(request).covering, region, wanted)
        except UnknownCollection as error:
            raise DaliError(
                f"UsageFault: COLLECTION: no collection named {error.args[0]!r}"
            ) from None
    except DaliError as error:
        if fmt is JSON:
            return JSONResponse({"error": error.message}, status_code=error.status)
        return error_response(error.message, status=error.status, fmt=fmt)
    rows = [(c.collection, c.covered, c.images, c.fraction) for c in answer]
    if fmt is JSON:
        return JSONResponse({"region": str(region), "collections": [_row(c) for c in answer]})
    return table_response(fmt, COLUMNS, rows, infos={"POS": str(region)})


def _row(c: Covering) -> dict:
    return {
        "collection": c.collection,
        "covered": c.covered,
        "images": c.images,
        "fraction": c.fraction,
    }


def _format(value: str | None) -> ResponseFormat:
    if value is not None and value.split(";")[0].strip().lower() in ("json", "application/json"):
        return JSON
    return response_format(value)


def parse_pos(text: str) -> Region:
    """A POS value in SIA 2.0 syntax as a region."""
    shape = shapes.parse_pos(text)
    if shape.kind == "CIRCLE":
        return Region.circle(*shape.numbers)
    if shape.kind == "RANGE":
        return Region.range(*shape.numbers)
    return Region.polygon(shape.vertices)


def _region(params: dict[str, list[str]]) -> Region:
    pos = single(params, "POS")
    ra, dec, radius = (single(params, n) for n in ("RA", "DEC", "RADIUS"))
    try:
        if pos is not None:
            if ra is not None or dec is not None:
                raise DaliError("UsageFault: give either POS or RA and DEC, not both")
            return parse_pos(pos)
        if ra is None or dec is None:
            raise DaliError("UsageFault: give POS, or RA and DEC (degrees) and maybe RADIUS")
        numbers = [shapes.number(ra, "RA"), shapes.number(dec, "DEC")]
        if radius is None:
            return Region.point(*numbers)
        return Region.circle(*numbers, shapes.number(radius, "RADIUS"))
    except ValueError as error:
        raise DaliError(f"UsageFault: {error}") from None


# --------------------------------------------------------------------------------------------
# MOC files


@router.get(PREFIX + "/{name}", include_in_schema=False)
async def moc_file(request: Request, name: str) -> Response:
    collection, _, suffix = name.rpartition(".")
    if suffix not in SUFFIXES or not collection:
        return PlainTextResponse("Not found\n", status_code=404)
    try:
        moc = await run_in_threadpool(service(request).moc, collection)
    except UnknownCollection:
        return PlainTextResponse(f"No collection named {collection!r}\n", status_code=404)
    if suffix == "fits":
        body = await run_in_threadpool(moc_fits, moc)
    elif suffix == "json":
        body = moc.to_string(format="json").encode()
    else:
        body = (moc.to_string(format="ascii") + "\n").encode()
    disposition = "attachment" if suffix == "fits" else "inline"
    return Response(
        body,
        media_type=SUFFIXES[suffix],
        headers={"Content-Disposition": f'{disposition}; filename="{collection}.{suffix}"'},
    )


def moc_fits(moc: MOC) -> bytes:
    """MOC 2.0 FITS in NUNIQ packaging, written here rather than by mocpy, whose versions
    differ in packaging (RANGE or NUNIQ) and write MOC 1.x keywords (MOCORDER) with NUNIQ."""
    order = int(moc.max_order)
    # 32-bit integers hold every NUNIQ value below order 14, as MOC 2.0 asks.
    dtype, tform = (np.int32, "J") if order < 14 else (np.int64, "K")
    uniq = np.sort(moc.uniq_hpx.astype(np.int64)).astype(dtype)
    table = fits.BinTableHDU.from_columns([fits.Column(name="UNIQ", format=tform, array=uniq)])
    header = table.header
    for key, value, comment in (
        ("MOCVERS", "2.0", "MOC version"),
        ("MOCDIM", "SPACE", "Physical dimension"),
        ("ORDERING", "NUNIQ", "NUNIQ coding method"),
        ("COORDSYS", "C", "Space reference frame (ICRS)"),
        ("MOCORD_S", order, "MOC resolution (best order)"),
        ("MOCTOOL", f"spherex-archive {__version__}", "Name of the MOC generator"),
        ("MOCTYPE", "IMAGE", "Source type (IMAGE or CATALOG)"),
    ):
        header[key] = (value, comment)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()
