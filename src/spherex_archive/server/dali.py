"""HTTP helpers every DALI service shares (SIA, TAP, DataLink, SODA): parameters, row limits,
response formats, table answers and error documents (DALI 1.1 §3-4, ivoa-services §2).

Parameter names are case-insensitive and values case-sensitive; GET query strings and POST
bodies (url-encoded or multipart) are merged, so a protocol module sees one dictionary whatever
the client sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response, StreamingResponse

from spherex_archive.formats import fits, tabular, votable
from spherex_archive.model.schema import Column

Params = dict[str, list[str]]
"""Parameter name (upper case) -> its values, in the order sent."""

FORM_FIELDS = 200_000
"""Fields a POST body may hold (Starlette allows 1000): pyvo's iter_datalinks() posts the ID
of every row of an answer at once, and a default SIA answer has up to 100,000 rows."""


class DaliError(Exception):
    """A request the service refuses: answered as an error document with ``status``. The
    message should start with the fault name its standard asks for (``UsageFault: ...``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def dali_params(request: Request) -> Params:
    """The request's parameters: query string and form fields merged, names upper-cased.
    Files of a multipart body are left to :func:`dali_files`."""
    params: Params = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name.upper(), []).append(value)
    if request.method != "POST":
        return params
    media_type = _media_type(request)
    if media_type == "application/x-www-form-urlencoded":
        # Decoded as Starlette's form parser does (bytes as Latin-1, %-escapes as UTF-8), by
        # the standard library in C where python-multipart's parser costs a Python call per
        # field event (0.2 ms for a TAP query).
        try:
            fields = parse_qsl(
                (await request.body()).decode("latin-1"),
                keep_blank_values=True,
                max_num_fields=FORM_FIELDS,
            )
        except ValueError:
            raise HTTPException(400, f"more than {FORM_FIELDS} form fields") from None
        for name, value in fields:
            params.setdefault(name.upper(), []).append(value)
    elif media_type == "multipart/form-data":
        form = await request.form(max_fields=FORM_FIELDS)
        for name, value in form.multi_items():
            if isinstance(value, str):
                params.setdefault(name.upper(), []).append(value)
    return params


async def dali_files(request: Request) -> dict[str, UploadFile]:
    """Files posted in a multipart body, by part name as sent: ``UPLOAD=t,param:x`` names the
    part ``x``, and that reference is case-sensitive."""
    if request.method != "POST" or _media_type(request) != "multipart/form-data":
        return {}
    form = await request.form(max_fields=FORM_FIELDS)  # parsed once; Starlette keeps it
    return {k: v for k, v in form.multi_items() if isinstance(v, UploadFile)}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def single(params: Mapping[str, list[str]], name: str, default: str | None = None) -> str | None:
    """The one value of a single-valued parameter; repeating it is an error (DALI §3.2)."""
    values = params.get(name.upper())
    if not values:
        return default
    if len(values) > 1:
        raise DaliError(f"UsageFault: {name.upper()} was given {len(values)} times; it takes one")
    return values[0]


def maxrec(params: Mapping[str, list[str]], default: int, limit: int) -> int:
    """Rows to return: MAXREC (0 is valid: metadata only) capped by the service's limit."""
    text = single(params, "MAXREC")
    if text is None:
        return min(default, limit)
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise DaliError(f"UsageFault: MAXREC must be a whole number of rows, not {text!r}")
    return min(value, limit)


# --------------------------------------------------------------------------------------------
# Response formats


@dataclass(frozen=True)
class ResponseFormat:
    """An output format: how to write a table, and the Content-Type to send."""

    name: str
    """``votable``, ``csv``, ``tsv``, ``fits`` or ``html``."""
    media_type: str
    serialization: str = "TABLEDATA"
    """For VOTable: TABLEDATA or BINARY2."""

    @property
    def is_text(self) -> bool:
        """DALI: errors are text/plain when a text format was asked for."""
        return self.name in ("csv", "tsv")

    def write(
        self,
        columns: Sequence[Column],
        rows: Iterable[tuple],
        *,
        overflow: Callable[[], bool] | None = None,
        infos: Mapping[str, str] | None = None,
        resources: Sequence[str] = (),
    ) -> Iterable[bytes]:
        if self.name == "votable":
            return votable.write_votable(
                columns,
                rows,
                serialization=self.serialization,
                infos=infos,
                overflow=overflow,
                resources=resources,
            )
        if self.name == "csv":
            return tabular.write_csv(columns, rows)
        if self.name == "fits":
            return fits.write_fits(columns, rows)
        if self.name == "tsv":
            return tabular.write_tsv(columns, rows)
        return tabular.write_html(columns, rows, overflow=overflow)


VOTABLE = ResponseFormat("votable", votable.MEDIA_TYPE)
FORMATS = {
    "votable": VOTABLE,
    "votable/td": VOTABLE,
    "votable/b2": ResponseFormat("votable", votable.MEDIA_TYPE, "BINARY2"),
    "votable/binary2": ResponseFormat("votable", votable.MEDIA_TYPE, "BINARY2"),
    "application/x-votable+xml": VOTABLE,
    "text/xml": ResponseFormat("votable", "text/xml"),
    "csv": ResponseFormat("csv", tabular.CSV_MEDIA_TYPE),
    "text/csv": ResponseFormat("csv", tabular.CSV_MEDIA_TYPE),
    "tsv": ResponseFormat("tsv", tabular.TSV_MEDIA_TYPE),
    "text/tab-separated-values": ResponseFormat("tsv", tabular.TSV_MEDIA_TYPE),
    "fits": ResponseFormat("fits", fits.MEDIA_TYPE),
    "application/fits": ResponseFormat("fits", fits.MEDIA_TYPE),
    "html": ResponseFormat("html", tabular.HTML_MEDIA_TYPE),
    "text/html": ResponseFormat("html", tabular.HTML_MEDIA_TYPE),
}
"""Short forms (DALI §3.4.2, TAPRegExt aliases) and MIME types, lower case, without
parameters."""


def response_format(value: str | None) -> ResponseFormat:
    """The format a RESPONSEFORMAT value asks for (None: VOTable). A full MIME type is echoed
    as the Content-Type, as DALI asks; ``serialization=BINARY2`` picks BINARY2."""
    if value is None or not value.strip():
        return VOTABLE
    base, _, parameters = value.partition(";")
    found = FORMATS.get(base.strip().lower())
    if found is None:
        known = ", ".join(FORMATS)
        raise DaliError(
            f"UsageFault: RESPONSEFORMAT {value!r} is not supported; use one of {known}"
        )
    if "/" not in base or base.strip().lower().startswith("votable"):
        return found
    serialization = found.serialization
    for parameter in parameters.split(";"):
        key, _, setting = parameter.partition("=")
        if key.strip().lower() == "serialization" and setting.strip().upper() in (
            votable.SERIALIZATIONS
        ):
            serialization = setting.strip().upper()
    return ResponseFormat(found.name, value.strip(), serialization)


def table_response(
    fmt: ResponseFormat,
    columns: Sequence[Column],
    rows: Iterable[tuple],
    *,
    overflow: Callable[[], bool] | None = None,
    infos: Mapping[str, str] | None = None,
    resources: Sequence[str] = (),
) -> Response:
    """A table answer (200 even when cut short: DALI overflow is in the document);
    ``resources`` are VOTable RESOURCE elements after the results (other formats omit them).

    Call it from a worker thread: it runs the query and writes up to ``WHOLE_ANSWER`` bytes
    there, so a typical answer leaves in one piece with no thread hop per chunk; a longer one
    streams the rest."""
    body = iter(fmt.write(columns, rows, overflow=overflow, infos=infos, resources=resources))
    head, size = [], 0
    for chunk in body:
        head.append(chunk)
        size += len(chunk)
        if size >= WHOLE_ANSWER:
            return StreamingResponse(itertools.chain(head, body), media_type=fmt.media_type)
    return Response(b"".join(head), media_type=fmt.media_type)


WHOLE_ANSWER = 1 << 20
"""Bytes of an answer written before it is sent: below this an answer is one response."""


def error_response(
    message: str, *, status: int = 400, fmt: ResponseFormat | None = None
) -> Response:
    """A DALI error: a VOTable error document, or text/plain when a text format was asked."""
    if fmt is not None and fmt.is_text:
        return Response(message.rstrip() + "\n", status_code=status, media_type="text/plain")
    return Response(
        votable.error_document(message), status_code=status, media_type=votable.MEDIA_TYPE
    )
