"""IRSA's file tree: ``/ibe/data/spherex/<key>`` browses folders and downloads files.

Scripts written for IRSA (wget mirrors, curl range reads, astropy/fsspec remote opens) work here
by changing the host. The store comes from ``request.app.state.store``; this module holds the
HTTP semantics only: folder listings, conditional requests and byte ranges (RFC 9110).

A file URL with ``?center=`` is a cutout request (spec §3), answered by the cutout engine
(``services/cutout.py``), as is ``/ibe/cutout?path=...``. Other query parameters are ignored on
files.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from spherex_archive.services.cutout import CutoutError, cut, open_image
from spherex_archive.store import Entry, NotFound, Store

PREFIX = "/ibe/data/spherex"

CHUNK_SIZE = 4 * 1024 * 1024
"""Bytes per body message when streaming a file. Each message costs a thread hop and a pass
through the ASGI server; benchmarks/bench_download.py measured 56 % of loopback TCP's ceiling
with 256 KiB, 68 % with 1 MiB, 80 % with 4 MiB and no gain beyond. Uvicorn waits for the socket
to drain before the next message, so a download holds about one chunk of memory."""

MAX_RANGES = 64
"""More ranges than this in one request are ignored (full 200 answer), as RFC 9110 §14.2 allows;
it keeps a request from asking for thousands of tiny parts."""

CONTENT_TYPES = {
    ".fits": "application/fits",
    ".gz": "application/gzip",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
"""A fixed table rather than the mimetypes module, whose answers depend on the machine's
/etc/mime.types; anything else is a download (octet-stream), never HTML the browser would run."""

NAMED_TYPES = {"MD5SUMS": "text/plain; charset=utf-8", "README": "text/plain; charset=utf-8"}

router = APIRouter()


def content_type(name: str) -> str:
    """The Content-Type of a file of this name. ``.fits.gz`` is ``application/gzip`` and is
    sent as is (no Content-Encoding), so clients save the compressed bytes."""
    if name in NAMED_TYPES:
        return NAMED_TYPES[name]
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


@router.api_route(PREFIX + "/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
def browse(request: Request, path: str) -> Response:
    """A folder listing, a file, or (``?center=``) a cutout of a file."""
    store: Store = request.app.state.store
    # An encoded slash would be decoded into a separator the client did not write.
    if b"%2f" in request.scope.get("raw_path", b"").lower():
        return _not_found()
    # Repeated slashes are merged (clients that join a base URL ending in "/" send them).
    key = "/".join(part for part in path.split("/") if part)
    try:
        entry = store.stat(key)
    except NotFound:
        return _not_found()
    canonical = f"{key}/" if entry.is_dir and key else key
    if path != canonical:
        if not entry.is_dir and path.endswith("/"):
            return _not_found()  # a file is not a folder
        return _redirect(request, canonical)
    if entry.is_dir:
        return serve_listing(request, store, entry)
    if any(name.lower() == "center" for name in request.query_params):
        return serve_cutout(request, store, entry)
    return serve_file(request, store, entry)


def _not_found() -> Response:
    return PlainTextResponse("Not found\n", status_code=404)


def _redirect(request: Request, canonical: str) -> Response:
    """301 to the canonical URL (folders end in "/"), absolute as clients and the IVOA
    validators expect; built from the request's own base URL so it follows the public host."""
    url = f"{str(request.base_url).rstrip('/')}{PREFIX}/{quote(canonical)}"
    if request.url.query:
        url += f"?{request.url.query}"
    return RedirectResponse(url, status_code=301)


def serve_cutout(request: Request, store: Store, entry: Entry) -> Response:
    """IRSA's cutout syntax on a file URL (``?center=<x>,<y>[units]&size=...``, spec §3)."""
    return _cutout_response(store, entry, request.query_params)


@router.api_route("/ibe/cutout", methods=["GET", "HEAD"], include_in_schema=False)
def cutout_endpoint(request: Request) -> Response:
    """The same cutout with the file as a parameter (``path=qr2/level2/...``, or the full
    ``/ibe/data/spherex/...`` path) and ``center=`` or ``ra=``/``dec=``: a form a DataLink
    service descriptor can describe, since its only fixed part is the path."""
    params = request.query_params
    path = _one(params, "path")
    if path is None:
        return _bad_request("path= (the file under /ibe/data/spherex/) is required")
    key = "/".join(part for part in path.removeprefix(PREFIX + "/").split("/") if part)
    try:
        entry = request.app.state.store.stat(key)
    except NotFound:
        return _not_found()
    if entry.is_dir:
        return _bad_request(f"{path} is a folder, not a file")
    return _cutout_response(request.app.state.store, entry, params)


def _cutout_response(store: Store, entry: Entry, params: Mapping[str, str]) -> Response:
    try:
        request = parse_cutout_request(params)
        image = open_image(store, entry)
        window = image.box(
            request.centre,
            request.size,
            pixel_centre=request.pixel_centre,
            pixel_size=request.pixel_size,
        )
        result = cut(store, image, window)
    except CutoutError as error:  # NoOverlap included: IRSA answers 400 (spec §3)
        return _bad_request(str(error))
    except NotFound:
        return _not_found()
    return StreamingResponse(
        result.iter_bytes(store),
        headers={"Content-Length": str(result.size), "X-Content-Type-Options": "nosniff"},
        media_type="application/fits",
    )


ANGLE_UNITS = {"": 1.0, "d": 1.0, "deg": 1.0, "arcmin": 1 / 60, "arcsec": 1 / 3600}
ANGLE_UNITS["rad"] = 180 / math.pi
PIXEL_UNITS = ("px", "pix", "pixels")
_VALUE = re.compile(r"^\s*([^,]+?)\s*(?:,\s*([^,]+?)\s*)?$")
_NUMBER_UNIT = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)$")


@dataclass(frozen=True)
class CutoutRequest:
    centre: tuple[float, float]
    """RA, Dec in degrees, or a 0-based pixel position with ``pixel_centre``."""
    size: tuple[float, float]
    """Width (along NAXIS1) and height in degrees, or in pixels with ``pixel_size``."""
    pixel_centre: bool
    pixel_size: bool


def parse_cutout_request(params: Mapping[str, str]) -> CutoutRequest:
    """``center=x,y[units]`` (or ``ra=``/``dec=`` in degrees), ``size=w[,h][units]`` and
    ``gzip=``, as IRSA's image server takes them; CutoutError says what is wrong.

    Pixel centres are FITS pixel coordinates (1-based, as IRSA's C service and every FITS
    tool count; unconfirmed for IRSA). ``gzip`` is accepted and the answer is plain FITS:
    IRSA's SPHEREx cutouts are reported never gzipped (spec §3), and astropy reads both."""
    centre_text = _one(params, "center")
    ra_text, dec_text = _one(params, "ra"), _one(params, "dec")
    if centre_text is None and ra_text is not None and dec_text is not None:
        centre_text = f"{ra_text},{dec_text}"
    if centre_text is None:
        raise CutoutError("center=<ra>,<dec>[units] (or ra= and dec=) is required")
    size_text = _one(params, "size")
    if size_text is None:
        raise CutoutError("size=<width>[,<height>][units] is required")
    gzip = _one(params, "gzip")
    if gzip is not None and gzip.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise CutoutError(f"gzip must be true or false, not {gzip!r}")

    (x, y), centre_unit = _pair(centre_text, "center", single=False)
    pixel_centre = centre_unit in PIXEL_UNITS
    if pixel_centre:
        centre = (x - 1.0, y - 1.0)
    else:
        factor = _angle_factor(centre_unit, "center")
        ra, dec = x * factor, y * factor
        if not -90.0 <= dec <= 90.0:
            raise CutoutError(f"center: declination {dec:g} deg is outside [-90, 90]")
        centre = (ra % 360.0, dec)
    (width, height), size_unit = _pair(size_text, "size", single=True)
    if width <= 0 or height <= 0:
        raise CutoutError(f"size must be positive, not {size_text!r}")
    pixel_size = size_unit in PIXEL_UNITS
    if not pixel_size:
        factor = _angle_factor(size_unit, "size")
        width, height = width * factor, height * factor
    return CutoutRequest(centre, (width, height), pixel_centre, pixel_size)


def _pair(text: str, name: str, *, single: bool) -> tuple[tuple[float, float], str]:
    """Two numbers (one, doubled, when ``single``) and their unit (lower case, "" for none)."""
    match = _VALUE.match(text)
    if match is None or (match.group(2) is None and not single):
        shape = "w[,h][units]" if single else "x,y[units]"
        raise CutoutError(f"{name} must look like {shape}, not {text!r}")
    pieces = [p for p in match.groups() if p is not None]
    values, units = [], []
    for piece in pieces:
        number = _NUMBER_UNIT.match(piece)
        if number is None:
            raise CutoutError(f"{name}: {piece!r} is not a number with an optional unit")
        values.append(float(number.group(1)))
        units.append(number.group(2).lower())
    # IRSA's form puts one unit after the last value; a unit on each value must agree.
    given = {u for u in units if u}
    if len(given) > 1 or (len(units) == 2 and units[0] and not units[1]):
        raise CutoutError(f"{name}: one unit for both values, not {text!r}")
    unit = given.pop() if given else ""
    if len(values) == 1:
        values.append(values[0])
    return (values[0], values[1]), unit


def _angle_factor(unit: str, name: str) -> float:
    if unit not in ANGLE_UNITS:
        known = ", ".join(sorted(u for u in ANGLE_UNITS if u) + list(PIXEL_UNITS))
        raise CutoutError(f"{name}: unknown unit {unit!r} (known: {known}; none means deg)")
    return ANGLE_UNITS[unit]


def _one(params: Mapping[str, str], name: str) -> str | None:
    """A parameter by case-insensitive name (IRSA's URLs use lower case)."""
    for key, value in params.items():
        if key.lower() == name:
            return value
    return None


def _bad_request(message: str) -> Response:
    return PlainTextResponse(f"{message}\n", status_code=400)


# ---------------------------------------------------------------------------------------------
# Files


def serve_file(request: Request, store: Store, entry: Entry) -> Response:
    """The file, whole or in ranges, honouring conditional requests (RFC 9110 §13, §14)."""
    ctype = content_type(entry.name)
    headers = {"Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff"}
    if entry.etag:
        headers["ETag"] = entry.etag
    if entry.mtime is not None:
        headers["Last-Modified"] = format_datetime(entry.mtime.astimezone(UTC), usegmt=True)

    precondition = _evaluate_preconditions(request, entry)
    if precondition == 304:
        return Response(status_code=304, headers=headers)
    if precondition == 412:
        return PlainTextResponse("Precondition failed\n", status_code=412, headers=headers)

    size = entry.size
    ranges = None
    if request.method == "GET" and _if_range_holds(request, entry):
        ranges = parse_range(request.headers.get("range"), size)
    if ranges is None:
        headers["Content-Length"] = str(size)
        if request.method == "HEAD":  # the same headers, and the file is not read
            return Response(status_code=200, headers=headers, media_type=ctype)
        return _stream(store, entry.key, 0, size, 200, headers, ctype)
    if not ranges:
        headers["Content-Range"] = f"bytes */{size}"
        return PlainTextResponse("Range not satisfiable\n", status_code=416, headers=headers)
    if len(ranges) == 1:
        start, end = ranges[0]
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        return _stream(store, entry.key, start, end, 206, headers, ctype)
    boundary = secrets.token_hex(16)
    heads = [
        f"--{boundary}\r\nContent-Type: {ctype}\r\n"
        f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n".encode("ascii")
        for start, end in ranges
    ]
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    # Each part after the first is preceded by the CRLF that belongs to its delimiter.
    length = sum(map(len, heads)) + sum(e - s for s, e in ranges) + 2 * (len(ranges) - 1)
    headers["Content-Length"] = str(length + len(tail))
    return StreamingResponse(
        _multipart_body(store, entry.key, ranges, heads, tail),
        status_code=206,
        headers=headers,
        media_type=f"multipart/byteranges; boundary={boundary}",
    )


def _stream(
    store: Store, key: str, start: int, end: int, status: int, headers: dict[str, str], ctype: str
) -> Response:
    try:
        body = store.iter_range(key, start, end, CHUNK_SIZE)
    except NotFound:  # removed since the stat
        return _not_found()
    return StreamingResponse(
        _read_ahead(body), status_code=status, headers=headers, media_type=ctype
    )


async def _read_ahead(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks``, each read in a worker thread while the one before it is sent: the disk (or
    the bucket) and the socket work at once, where reading a chunk only once the last one had
    gone let each wait for the other."""
    reading = asyncio.ensure_future(run_in_threadpool(next, chunks, None))
    try:
        while (chunk := await reading) is not None:
            reading = asyncio.ensure_future(run_in_threadpool(next, chunks, None))
            yield chunk
    finally:
        # The client may be gone mid-answer with a read under way: the file is closed once
        # that read has returned (a generator cannot be closed while it runs).
        close = getattr(chunks, "close", None)
        if close is not None:
            if reading.done():
                close()
            else:
                reading.add_done_callback(lambda _: close())


def _multipart_body(
    store: Store, key: str, ranges: list[tuple[int, int]], heads: list[bytes], tail: bytes
) -> Iterator[bytes]:
    for index, ((start, end), head) in enumerate(zip(ranges, heads, strict=True)):
        yield head if index == 0 else b"\r\n" + head
        yield from store.iter_range(key, start, end, CHUNK_SIZE)
    yield tail


_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The satisfiable ranges of a ``Range`` header as ``[start, end)`` pairs, in request order.

    None: no header, or one to ignore (another unit, bad syntax, too many or overlapping ranges
    adding up to more than the file), so the whole file is sent. ``[]``: valid but nothing
    satisfiable (416).
    """
    if not header:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    count = 0
    satisfiable = []
    for spec in specs.split(","):
        spec = spec.strip(" \t")
        if not spec:
            continue  # the list syntax tolerates empty elements
        match = _RANGE_SPEC.fullmatch(spec)
        if not match or not (match[1] or match[2]):
            return None
        count += 1
        if match[1]:
            first = int(match[1])
            last = int(match[2]) if match[2] else None
            if last is not None and last < first:
                return None
            if first < size:
                end = size if last is None else min(last + 1, size)
                satisfiable.append((first, end))
        else:
            suffix = int(match[2])
            if suffix > 0 and size > 0:
                satisfiable.append((max(0, size - suffix), size))
    if count == 0 or count > MAX_RANGES:
        return None
    if len(satisfiable) > 1 and sum(end - start for start, end in satisfiable) > size:
        return None
    return satisfiable


def _tags(header: str) -> list[str] | None:
    """The entity tags of an If-Match / If-None-Match header; None for ``*``."""
    if header.strip() == "*":
        return None
    return re.findall(r'(?:W/)?"[^"]*"', header)


def _weak_match(tag: str, tags: list[str]) -> bool:
    return any(t.removeprefix("W/") == tag.removeprefix("W/") for t in tags)


def _strong_match(tag: str, tags: list[str]) -> bool:
    return not tag.startswith("W/") and tag in tags


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def _seconds(mtime: datetime) -> datetime:
    """Last-Modified has one-second resolution: compare at that resolution."""
    return mtime.astimezone(UTC).replace(microsecond=0)


def _evaluate_preconditions(request: Request, entry: Entry) -> int | None:
    """412 or 304 when a precondition says so (the order of RFC 9110 §13.2.2), else None.
    Dates are ignored when the file has no time, as §13.1.3-4 require."""
    h = request.headers
    mtime = _seconds(entry.mtime) if entry.mtime is not None else None
    if "if-match" in h:
        tags = _tags(h["if-match"])
        if tags is not None and not (entry.etag and _strong_match(entry.etag, tags)):
            return 412
    elif (since := _http_date(h.get("if-unmodified-since"))) and mtime and mtime > since:
        return 412
    if "if-none-match" in h:
        tags = _tags(h["if-none-match"])
        if tags is None or (entry.etag and _weak_match(entry.etag, tags)):
            return 304
    elif (since := _http_date(h.get("if-modified-since"))) and mtime and mtime <= since:
        return 304
    return None


def _if_range_holds(request: Request, entry: Entry) -> bool:
    """False when If-Range names another version: then the Range is ignored and the whole
    current file is sent (RFC 9110 §13.1.5: strong comparison, or an exact date)."""
    value = request.headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', 'W/"')):
        return bool(entry.etag) and _strong_match(entry.etag, [value])
    date = _http_date(value)
    return date is not None and entry.mtime is not None and _seconds(entry.mtime) == date


# ---------------------------------------------------------------------------------------------
# Folder listings

SORTS = {
    "name": lambda e: e.name,
    "size": lambda e: (e.size, e.name),
    "date": lambda e: (e.mtime or datetime.min.replace(tzinfo=UTC), e.name),
}
COLUMNS = (("name", "Name", ""), ("size", "Size", "n"), ("date", "Last modified (UTC)", ""))

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:64rem;
padding:0 1rem;color:#1d1d1f;background:#fff}
h1{font-size:1.2rem;font-weight:600;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{padding:.35rem .7rem;text-align:left;border-bottom:1px solid #e5e5e5;white-space:nowrap}
td:first-child{white-space:normal;overflow-wrap:anywhere}
th{font-weight:600;border-bottom:2px solid #ccc}
.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#f3f7ff}
a{color:#0b57d0;text-decoration:none}
a:hover{text-decoration:underline}
th a{color:inherit}
footer{margin-top:1rem;color:#666;font-size:.85rem}
@media (prefers-color-scheme:dark){body{color:#e8e8e8;background:#161616}
th,td{border-color:#333}tbody tr:hover{background:#222a38}a{color:#8ab4f8}}
"""


def serve_listing(request: Request, store: Store, entry: Entry) -> Response:
    """An HTML index of a folder, folders first, sorted by ``?sort=name|size|date`` and
    ``&order=asc|desc`` (unknown values fall back to name, ascending)."""
    try:
        children = store.list(entry.key)
    except NotFound:  # removed since the stat
        return _not_found()
    sort = request.query_params.get("sort", "name")
    sort = sort if sort in SORTS else "name"
    descending = request.query_params.get("order") == "desc"
    ordered = sorted(children, key=SORTS[sort], reverse=descending)
    ordered.sort(key=lambda e: not e.is_dir)  # stable: keeps the order within each group
    return HTMLResponse(_listing_html(entry.key, ordered, sort, descending))


def _listing_html(key: str, entries: list[Entry], sort: str, descending: bool) -> str:
    parts = key.split("/") if key else []
    crumbs = [f'<a href="{"../" * len(parts) or "./"}">{html.escape(PREFIX)}</a>/']
    for depth, part in enumerate(parts, start=1):
        up = "../" * (len(parts) - depth) or "./"
        crumbs.append(f'<a href="{up}">{html.escape(part)}</a>/')
    path = html.escape(f"{PREFIX}/{key}/" if key else f"{PREFIX}/")

    heads = []
    for column, label, cls in COLUMNS:
        order = "desc" if column == sort and not descending else "asc"
        mark = (" ▼" if descending else " ▲") if column == sort else ""
        attr = f' class="{cls}"' if cls else ""
        aria = f' aria-sort="{"descending" if descending else "ascending"}"' if mark else ""
        heads.append(
            f'<th{attr}{aria}><a href="?sort={column}&amp;order={order}">{label}</a>{mark}</th>'
        )

    rows = []
    if parts:
        rows.append('<tr><td><a href="../">Parent folder</a></td><td class="n"></td><td></td></tr>')
    for e in entries:
        name = e.name + ("/" if e.is_dir else "")
        href = html.escape(quote(e.name, safe="") + ("/" if e.is_dir else ""))
        size = "-" if e.is_dir else f'<span title="{e.size} bytes">{_human(e.size)}</span>'
        date = e.mtime.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if e.mtime else "-"
        rows.append(
            f'<tr><td><a href="{href}">{html.escape(name)}</a></td>'
            f'<td class="n">{size}</td><td>{date}</td></tr>'
        )

    folders = sum(e.is_dir for e in entries)
    files = len(entries) - folders
    total = sum(e.size for e in entries)
    summary = f"{folders} folder{'s' * (folders != 1)}, {files} file{'s' * (files != 1)}" + (
        f", {_human(total)}" if files else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Index of {path}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Index of {''.join(crumbs)}</h1>\n"
        f"<table>\n<thead><tr>{''.join(heads)}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + f"\n</tbody>\n</table>\n<footer>{summary}</footer>\n</body>\n</html>\n"
    )


def _human(size: int) -> str:
    """Decimal units, as the archive's documentation quotes sizes ("71.6 MB")."""
    if size < 1000:
        return f"{size} B"
    value = size / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
