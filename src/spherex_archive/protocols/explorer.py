"""The SPHEREx Data Explorer at ``/applications/spherex``: the browser application's files and
the JSON endpoints it calls under ``/applications/spherex/api/`` (documented in
``docs/explorer.md``).

- ``api/resolve?name=``: a target name or coordinates -> RA, Dec; ``api/names``: the built-in
  names.
- ``api/search`` (GET or POST): a page of matching images with total, columns, links, their
  footprints and ADQL; ``api/footprints``: the footprints of the whole answer as polygons (JSON)
  or as one binary block of typed arrays (``format=binary``).
- ``api/image/info``, ``api/image/plane.png``, ``api/image/pixel``: the image viewer.
- ``api/script``: a wget or curl script downloading files or cutouts.

Errors are ``{"error": "<what was wrong, naming the parameter>"}`` with 400 (bad input), 404
(unknown id or name) or 503 (a resolver or the catalogue not answering in time).

The application itself is a built bundle (``web/explorer`` built into the package's
``web/explorer`` folder, or the ``explorer_dir`` setting): ``index.html`` at the root, never
cached, and ``assets/`` with hashed names, cached for good.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, HTMLResponse, Response

from spherex_archive.adql.errors import AdqlError
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.server import landing
from spherex_archive.server.dali import Params, dali_params
from spherex_archive.services.explorer import (
    DEFAULT_COLUMNS,
    DEFAULT_LIMIT,
    FOOTPRINT_LIMIT,
    BadParameter,
    ExplorerService,
    Filter,
    Page,
    Search,
    UnknownDataset,
)
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.resolver import (
    BadCoordinates,
    NameNotFound,
    Resolver,
    ResolverUnavailable,
)
from spherex_archive.services.shapes import ValueProblem
from spherex_archive.services.viewer import (
    PLANES,
    STRETCHES,
    NotAnImage,
    OutsideImage,
    ViewerService,
)
from spherex_archive.store import NotFound

PREFIX = "/applications/spherex"
API = PREFIX + "/api"
PACKAGED = Path(__file__).resolve().parent.parent / "web" / "explorer"
"""Where the built bundle ships inside the package."""

IMAGE_CACHE_CONTROL = "public, max-age=3600"
"""Viewer planes: a dataset's newer product version has another entity tag within the hour."""
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
"""Bundle assets carry a hash of their content in their names."""
FILE_CACHE_CONTROL = "public, max-age=3600"

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript",
    ".mjs": "application/javascript",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".txt": "text/plain; charset=utf-8",
    ".fits": "application/fits",
}
"""A fixed table (the mimetypes module answers from the machine's /etc/mime.types)."""

router = APIRouter()


# --------------------------------------------------------------------------------------------
# Services of the app (made on first use: they hold caches)


def explorer(request: Request) -> ExplorerService:
    state = request.app.state
    found = getattr(state, "explorer", None)
    if found is None or found.engine.catalogue is not state.catalogue:
        settings = state.settings
        engine = QueryEngine(state.catalogue, timeout=settings.query_timeout)
        found = state.explorer = ExplorerService(engine, settings)
    return found


def resolver(request: Request) -> Resolver:
    state = request.app.state
    network = state.settings.resolver_network
    found = getattr(state, "resolver", None)
    if found is None or found.network != network:
        found = state.resolver = Resolver(network)
    return found


def viewer(request: Request) -> ViewerService:
    state = request.app.state
    found = getattr(state, "viewer", None)
    if found is None or found.store is not state.store:
        found = state.viewer = ViewerService(state.store)
    return found


# --------------------------------------------------------------------------------------------
# Answers and errors


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


async def answer(request: Request, work: Callable[[], Response]) -> Response:
    """``work`` run in a worker thread, its refusals turned into JSON errors."""
    try:
        return await run_in_threadpool(work)
    except (BadParameter, ValueProblem, BadCoordinates, OutsideImage) as problem:
        return error(str(problem))
    except (UnknownDataset, NameNotFound) as problem:
        return error(str(problem), 404)
    except NotAnImage as problem:
        return error(str(problem), 404)
    except NotFound:
        return error("The file of this dataset is missing from the archive's store.", 404)
    except ResolverUnavailable as problem:
        return error(str(problem), 503)
    except QueryTimeout:
        seconds = request.app.state.settings.query_timeout
        return error(f"The search ran longer than the {seconds:g} s allowed: narrow it.", 503)
    except AdqlError as problem:  # the query is the Explorer's own: a value the database refused
        return error(f"The catalogue could not run this search: {problem.message}")


# --------------------------------------------------------------------------------------------
# Parameters (names case-insensitive, as everywhere in the archive)


def _one(params: Params, name: str) -> str | None:
    values = [v for v in params.get(name.upper(), []) if v.strip()]
    if len(values) > 1:
        raise BadParameter(f"{name}: given {len(values)} times; it takes one value")
    return values[0].strip() if values else None


def _many(params: Params, name: str) -> list[str]:
    """Every value of a repeatable parameter, comma lists split."""
    return [w.strip() for v in params.get(name.upper(), []) for w in v.split(",") if w.strip()]


def _float(params: Params, name: str) -> float | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadParameter(f"{name}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadParameter(f"{name}: {text!r} is not a finite number")
    return value


def _int(params: Params, name: str, default: int) -> int:
    text = _one(params, name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadParameter(f"{name}: {text!r} is not a whole number") from None


ANGLE_UNITS = {"": 1.0, "d": 1.0, "deg": 1.0, "°": 1.0, "m": 1 / 60, "arcmin": 1 / 60, "'": 1 / 60}
ANGLE_UNITS |= {"s": 1 / 3600, "arcsec": 1 / 3600, '"': 1 / 3600}
_ANGLE = re.compile(r"^\s*([+\-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+\-]?\d+)?)\s*([a-z°'\"]*)\s*$")


def _radius(params: Params) -> float:
    """``sr`` in degrees; ``30m``, ``30arcmin``, ``10s``, ``10arcsec``, ``0.5d`` as IRSA's deep
    links write it."""
    text = _one(params, "sr")
    if text is None:
        return 0.0
    found = _ANGLE.match(text.lower())
    if not found or found.group(2) not in ANGLE_UNITS:
        raise BadParameter(
            f"sr: {text!r} is not a radius; give degrees (0.5) or 30arcmin, 10arcsec"
        )
    return float(found.group(1)) * ANGLE_UNITS[found.group(2)]


def _pair(text: str, name: str) -> tuple[float, float]:
    words = text.replace(",", " ").split()
    try:
        if len(words) == 2:
            return float(words[0]), float(words[1])
    except ValueError:
        pass
    raise BadParameter(f"{name}: {text!r} is not 'ra,dec' in degrees")


def parse_search(params: Params) -> Search:
    """The search form's constraints (400 with the parameter's name for a bad one)."""
    search = Search()
    ra, dec = _float(params, "ra"), _float(params, "dec")
    if (ra is None) != (dec is None):
        raise BadParameter("ra, dec: give both, in degrees")
    if ra is not None and dec is not None:
        search.targets.append((ra, dec))
    search.targets += [_pair(v, "target") for v in params.get("TARGET", []) if v.strip()]
    kind = (_one(params, "query") or "").lower()
    if kind not in ("", "contains", "intersects"):
        raise BadParameter(f"query: {kind!r} is neither 'contains' nor 'intersects'")
    search.radius = 0.0 if kind == "contains" else _radius(params)
    search.time = (_float(params, "time_min"), _float(params, "time_max"))
    search.wavelength = (_float(params, "wl_min"), _float(params, "wl_max"))
    for value in _many(params, "detector"):
        number = value.upper().removeprefix("SPHEREX-").removeprefix("D")
        if not number.isdigit():
            raise BadParameter(f"detector: {value!r} is not a detector number (1 to 6)")
        search.detectors.append(int(number))
    search.collections = _many(params, "collection")
    for value in params.get("FILTER", []):
        parts = value.split(":", 2)
        if len(parts) != 3 or not parts[0].strip():
            raise BadParameter(f"filter: {value!r} is not column:op:value (e.g. t_exptime:gt:100)")
        search.filters.append(Filter(parts[0].strip(), parts[1].strip().lower(), parts[2]))
    constrained = (
        search.time != (None, None)
        or search.wavelength != (None, None)
        or search.detectors
        or search.collections
        or search.filters
    )
    if not search.targets and not constrained:
        raise BadParameter(
            "give a target (ra and dec, or target=ra,dec) or at least one other constraint "
            "(time, detector, wavelength, collection, filter)"
        )
    return search


def parse_page(params: Params) -> Page:
    order = (_one(params, "order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise BadParameter(f"order: {order!r} is neither 'asc' nor 'desc'")
    columns = _many(params, "columns") or list(DEFAULT_COLUMNS)
    return Page(
        columns=columns,
        sort=_one(params, "sort") or "t_min",
        descending=order == "desc",
        offset=_int(params, "offset", 0),
        limit=_int(params, "limit", DEFAULT_LIMIT),
    )


# --------------------------------------------------------------------------------------------
# Resolver


@router.get(API + "/resolve", include_in_schema=False)
async def resolve(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        name = _one(params, "name")
        if name is None:
            raise BadParameter("name: give an object name (M31) or coordinates (10.68 41.27)")
        return json_response(resolver(request).resolve(name).to_json())

    return await answer(request, work)


@router.get(API + "/names", include_in_schema=False)
async def names(request: Request) -> Response:
    body = [known.to_json() for known in Resolver.names()]
    return json_response(body, headers={"Cache-Control": "public, max-age=3600"})


# --------------------------------------------------------------------------------------------
# Search and footprints


@router.api_route(API + "/search", methods=["GET", "POST"], include_in_schema=False)
async def search(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        service, wanted = explorer(request), parse_search(params)
        prefetch = (_one(params, "prefetch") or "").lower()
        if prefetch not in ("", "footprints"):
            raise BadParameter(f"prefetch: {prefetch!r} is not 'footprints'")
        response = json_response(service.search(wanted, parse_page(params)))
        if prefetch:
            # started once the page is sent: the reading's Python half would otherwise take
            # the interpreter from the page's sending
            response.background = BackgroundTask(service.prefetch_footprints, wanted)
        return response

    return await answer(request, work)


FOOTPRINT_FORMATS = ("json", "binary")
BINARY_TYPE = "application/vnd.spherex.footprints"
"""The binary footprint block (``Footprints.to_binary``); not octet-stream, so that nothing
takes it for a file to save."""


@router.api_route(API + "/footprints", methods=["GET", "POST"], include_in_schema=False)
async def footprints(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        limit = _int(params, "limit", FOOTPRINT_LIMIT)
        kind = (_one(params, "format") or "json").lower()
        if kind not in FOOTPRINT_FORMATS:
            raise BadParameter(f"format: {kind!r} is neither 'json' nor 'binary'")
        found = explorer(request).footprint_set(parse_search(params), limit)
        if kind == "binary":
            return Response(found.to_binary(), media_type=BINARY_TYPE)
        return json_response(found.to_json())

    return await answer(request, work)


# --------------------------------------------------------------------------------------------
# Image viewer


def _image_id(params: Params) -> str:
    did = _one(params, "id")
    if did is None:
        raise BadParameter("id: give the dataset id (obs_publisher_did) of an image")
    return did


@router.get(API + "/image/info", include_in_schema=False)
async def image_info(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        dataset = explorer(request).dataset(_image_id(params))
        return json_response(viewer(request).info(dataset))

    return await answer(request, work)


@router.get(API + "/image/plane.png", include_in_schema=False)
async def image_plane(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        hdu = (_one(params, "hdu") or "IMAGE").upper()
        if hdu not in PLANES:
            raise BadParameter(f"hdu: {hdu!r} is not one of {', '.join(PLANES)}")
        stretch = (_one(params, "stretch") or "asinh").lower()
        if stretch not in STRETCHES:
            raise BadParameter(f"stretch: {stretch!r} is not one of {', '.join(STRETCHES)}")
        dataset = explorer(request).dataset(_image_id(params))
        drawn = viewer(request).plane(dataset, hdu, stretch)
        headers = {"ETag": drawn.etag, "Cache-Control": IMAGE_CACHE_CONTROL}
        if _matches(request, drawn.etag):
            return Response(status_code=304, headers=headers)
        return Response(drawn.png, media_type="image/png", headers=headers)

    return await answer(request, work)


@router.get(API + "/image/pixel", include_in_schema=False)
async def image_pixel(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        x, y = _float(params, "x"), _float(params, "y")
        if x is None or y is None:
            raise BadParameter("x, y: give the pixel's column and row (FITS, 1-based)")
        dataset = explorer(request).dataset(_image_id(params))
        return json_response(viewer(request).pixel(dataset, x, y))

    return await answer(request, work)


def _matches(request: Request, etag: str) -> bool:
    asked = request.headers.get("if-none-match", "")
    return etag in (tag.strip().removeprefix("W/") for tag in asked.split(","))


# --------------------------------------------------------------------------------------------
# Download scripts


@router.api_route(API + "/script", methods=["GET", "POST"], include_in_schema=False)
async def script(request: Request) -> Response:
    params = await dali_params(request)

    def work() -> Response:
        kind = (_one(params, "kind") or "wget").lower()
        ids = [v.strip() for v in params.get("ID", []) if v.strip()]
        size = _float(params, "size")
        cutout = None
        if size is not None:
            ra, dec = _float(params, "ra"), _float(params, "dec")
            if ra is None or dec is None:
                raise BadParameter("ra, dec: a cutout script needs the centre (degrees)")
            if not 0 < size <= 36000:
                raise BadParameter(f"size: {size:g} arcsec is not a cutout size (0 to 36000)")
            if not (0 <= ra <= 360 and -90 <= dec <= 90):
                raise BadParameter(f"ra, dec: ({ra:g}, {dec:g}) is off the sky")
            cutout = (ra, dec, size)
        text = explorer(request).script(kind, ids, cutout)
        return Response(
            text,
            media_type="text/x-shellscript",
            headers={"Content-Disposition": 'attachment; filename="spherex-download.sh"'},
        )

    return await answer(request, work)


# --------------------------------------------------------------------------------------------
# The application's files


def bundle_dir(request: Request) -> Path:
    configured = request.app.state.settings.explorer_dir
    return Path(configured) if configured else PACKAGED


def _not_built(root: Path) -> Response:
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>SPHEREx Data Explorer: not built</title>\n<style>{landing.STYLE}</style>\n"
        "</head>\n<body>\n<h1>The Data Explorer is not built on this server</h1>\n"
        f"<p>Its files are not in <code>{html.escape(str(root))}</code>. Build them from a "
        "source checkout (Node.js 18 or later):</p>\n"
        "<pre>npm --prefix web/explorer ci &amp;&amp; npm --prefix web/explorer run build</pre>\n"
        "<p>then restart the server. The archive's services work without it: see the "
        '<a href="/">landing page</a>.</p>\n</body>\n</html>\n'
    )
    return HTMLResponse(page, status_code=503, headers={"Cache-Control": "no-store"})


def _file(request: Request, path: Path, cache_control: str) -> Response:
    stat = path.stat()
    etag = '"' + hashlib.md5(f"{stat.st_mtime_ns}-{stat.st_size}".encode()).hexdigest() + '"'
    suffix = path.suffix.lower()
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "X-Content-Type-Options": "nosniff",
    }
    if _matches(request, etag):
        return Response(status_code=304, headers=headers)
    media_type = STATIC_TYPES.get(suffix, "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=headers, stat_result=stat)


@router.api_route(PREFIX, methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route(PREFIX + "/", methods=["GET", "HEAD"], include_in_schema=False)
async def index(request: Request) -> Response:
    root = bundle_dir(request)
    page = root / "index.html"
    if not page.is_file():
        return _not_built(root)
    return _file(request, page, "no-cache")


@router.api_route(PREFIX + "/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def bundle_file(request: Request, path: str) -> Response:
    if path == "api" or path.startswith("api/"):
        return error(f"There is no Explorer endpoint {path!r}.", 404)
    root = bundle_dir(request).resolve()
    parts = path.split("/")
    missing = error(f"The Explorer has no file {path!r}.", 404)
    if any(not p or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return missing
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return missing
    if parts[0] == "assets":
        return _file(request, target, ASSET_CACHE_CONTROL)
    return _file(request, target, "no-cache" if target.suffix == ".html" else FILE_CACHE_CONTROL)
