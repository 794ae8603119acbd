"""TAP 1.1 at ``/TAP`` (ivoa-services §4): ``/sync``, ``/capabilities`` (TAPRegExt),
``/availability``, ``/tables`` (VOSI-tables 1.1), ``/examples`` (DALI examples) and a page at the
base URL; ``/async`` is the UWS job list of :mod:`spherex_archive.protocols.uws`.

Queries run through :mod:`spherex_archive.services.tap`; this module holds the HTTP side:
parameters (FORMAT is a synonym of RESPONSEFORMAT), the error documents, and the metadata
documents, all generated from the model, so /tables, TAP_SCHEMA and every FIELD agree.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from spherex_archive.adql.errors import AdqlError
from spherex_archive.catalogue import CatalogueError, open_catalogue
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.config import Settings
from spherex_archive.formats import votable
from spherex_archive.formats.votable import xml_attr, xml_text
from spherex_archive.jobs import JobFailure, JobKind, Result, TaskContext
from spherex_archive.jobs.engine import durations
from spherex_archive.model import tables as model
from spherex_archive.model.schema import Column, Table
from spherex_archive.protocols import vosi
from spherex_archive.protocols.uws import uws_router
from spherex_archive.server.dali import (
    DaliError,
    ResponseFormat,
    dali_files,
    dali_params,
    error_response,
    maxrec,
    response_format,
    single,
    table_response,
)
from spherex_archive.services import tap
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.shapes import ValueProblem

BASE = "/TAP"
STANDARD_ID = "ivo://ivoa.net/std/TAP"
TABLES_ID = "ivo://ivoa.net/std/VOSI#tables-1.1"
EXAMPLES_ID = "ivo://ivoa.net/std/DALI#examples"
TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt"

router = APIRouter()


# --------------------------------------------------------------------------------------------
# Queries


def limits(settings) -> tap.Limits:
    return tap.Limits(settings.upload_max_bytes, settings.upload_max_rows)


def _answer(
    request: Request, params: dict, limit: int, fmt: ResponseFormat, inline: dict[str, bytes]
) -> Response:
    """Run the query and write its first megabyte, in a worker thread."""
    state = request.app.state
    settings = state.settings
    engine = QueryEngine(
        state.catalogue, timeout=settings.sync_timeout, max_rows=settings.max_maxrec
    )
    query = single(params, "QUERY")
    uploads = params.get("UPLOAD", [])
    answer = tap.run_query(
        engine, single(params, "LANG"), query, uploads, limit, inline.get, limits(settings)
    )
    owner = request.client.host if request.client else "-"
    answer = tap.logged(answer, owner, query, lambda n, s: state.metrics.query("tap-sync", n, s))
    return table_response(
        fmt, answer.columns, answer.rows, overflow=answer.overflow, infos={"QUERY": query}
    )


def output_format(params: dict[str, list[str]]) -> ResponseFormat:
    """RESPONSEFORMAT, or FORMAT (its TAP 1.0 name, which TAP 1.1 still takes)."""
    return response_format(single(params, "RESPONSEFORMAT") or single(params, "FORMAT"))


@router.api_route(BASE + "/sync", methods=["GET", "POST"], include_in_schema=False)
async def sync(request: Request) -> Response:
    params = await dali_params(request)
    files = await dali_files(request)
    fmt: ResponseFormat | None = None
    metrics = request.app.state.metrics
    try:
        fmt = output_format(params)
        settings = request.app.state.settings
        limit = maxrec(params, settings.default_maxrec, settings.max_maxrec)
        inline = {name: await part.read() for name, part in files.items()}
        return await run_in_threadpool(_answer, request, params, limit, fmt, inline)
    except DaliError as error:
        metrics.query("tap-sync", None, 0.0)
        return error_response(error.message, status=error.status, fmt=fmt)
    except (ValueProblem, AdqlError) as error:
        metrics.query("tap-sync", None, 0.0)
        return error_response(str(error), status=400, fmt=fmt)
    except QueryTimeout:
        metrics.query("tap-sync", None, 0.0)
        timeout = request.app.state.settings.sync_timeout
        return error_response(
            f"the query ran longer than {timeout:g} s, the limit of synchronous queries: "
            "run it asynchronously (/TAP/async) or narrow it",
            status=503,
            fmt=fmt,
        )


# --------------------------------------------------------------------------------------------
# Async: UWS jobs whose task runs the same query in a worker


def error_document(message: str) -> tuple[bytes, str]:
    """``{job}/error`` of a failed TAP job: a VOTable error document (TAP §2.2)."""
    return votable.error_document(message), votable.MEDIA_TYPE


JOBS = JobKind("tap", "spherex_archive.protocols.tap:run_job", error_document)


def run_job(ctx: TaskContext) -> list[Result]:
    """An async TAP query, in a worker process: parameters are checked now (TAP 1.1 §2.7),
    the answer is written to the job's directory while it streams from the database."""
    settings = Settings.model_validate(ctx.settings)
    params = ctx.parameters
    try:
        fmt = output_format(params)
        limit = maxrec(params, settings.default_maxrec, settings.max_maxrec)
        lang, query = single(params, "LANG"), single(params, "QUERY")
        catalogue = open_catalogue(settings.catalogue)
    except (DaliError, CatalogueError) as error:
        raise JobFailure(getattr(error, "message", str(error))) from None
    # The job's execution duration is the limit here (the executor stops the job).
    timeout = float(settings.job_max_duration or 10**9)
    engine = QueryEngine(catalogue, timeout=timeout, max_rows=settings.max_maxrec)

    def inline(name: str) -> bytes | None:
        path = ctx.uploads.get(name)
        return path.read_bytes() if path is not None else None

    def stoppable(rows: Iterator[tuple]) -> Iterator[tuple]:
        for i, row in enumerate(rows):
            if i % 10_000 == 0 and ctx.should_stop():
                raise JobFailure("the job was stopped")
            yield row

    filename = "result." + SUFFIXES[fmt.name]
    try:
        answer = tap.run_query(
            engine, lang, query, params.get("UPLOAD", []), limit, inline, limits(settings)
        )
        body = fmt.write(
            answer.columns,
            stoppable(answer.rows),
            overflow=answer.overflow,
            infos={"QUERY": query},
        )
        with (ctx.workdir / filename).open("wb") as out:
            for chunk in body:
                out.write(chunk)
    except (ValueProblem, AdqlError) as error:
        raise JobFailure(str(error)) from None
    except QueryTimeout:
        raise JobFailure(
            f"the query ran longer than this service's limit ({timeout:g} s)"
        ) from None
    finally:
        catalogue.close()
    return [Result("result", filename, fmt.media_type)]


SUFFIXES = {"votable": "xml", "csv": "csv", "tsv": "tsv", "fits": "fits", "html": "html"}

router.include_router(uws_router(BASE + "/async", JOBS))


# --------------------------------------------------------------------------------------------
# Capabilities (TAPRegExt)

FEATURES = {
    "adqlgeo": (
        "POINT CIRCLE BOX POLYGON REGION CENTROID CONTAINS INTERSECTS DISTANCE AREA COORD1 "
        "COORD2 COORDSYS"
    ),
    "adql-string": "LOWER UPPER ILIKE",
    "adql-offset": "OFFSET",
    "adql-type": "CAST",
    "adql-unit": "IN_UNIT",
    "adql-sets": "UNION EXCEPT INTERSECT",
    "adql-common-table": "WITH",
    "adql-bitwise": "BIT_AND BIT_OR BIT_XOR BIT_NOT",
}
"""Optional ADQL features by TAPRegExt group. The TAPRegExt spelling of the group IVOIDs (not
ADQL 2.1's lower-case one): STILTS 3.4.7 reports the latter as custom features."""

OUTPUTS = (
    ("application/x-votable+xml", "votable", "output-votable-td"),
    ("application/x-votable+xml;serialization=BINARY2", "votable/b2", "output-votable-binary2"),
    ("text/csv;header=present", "csv", None),
    ("text/tab-separated-values", "tsv", None),
    ("application/fits", "fits", None),
    ("text/html", "html", None),
)


def _element(tag: str, text: str, **attributes: str) -> str:
    attrs = "".join(f' {k.replace("_", "-")}="{xml_attr(v)}"' for k, v in attributes.items())
    return f"<{tag}{attrs}>{xml_text(text)}</{tag}>"


def _limits(tag: str, default: int, hard: int, unit: str | None = None) -> str:
    extra = {"unit": unit} if unit else {}
    return (
        f"<{tag}>{_element('default', str(int(default)), **extra)}"
        f"{_element('hard', str(int(hard)), **extra)}</{tag}>\n"
    )


def table_access(settings) -> str:
    """The TAPRegExt content of the TAP capability, in the schema's element order."""
    features = "".join(
        f'<languageFeatures type="{TAPREGEXT}#features-{group}">'
        + "".join(f"<feature><form>{form}</form></feature>" for form in forms.split())
        + "</languageFeatures>"
        for group, forms in FEATURES.items()
    )
    outputs = "".join(
        ("<outputFormat" + (f' ivo-id="{TAPREGEXT}#{ivo}"' if ivo else "") + ">")
        + f"{_element('mime', mime)}{_element('alias', alias)}</outputFormat>\n"
        for mime, alias, ivo in OUTPUTS
    )
    uploads = "".join(
        f'<uploadMethod ivo-id="{TAPREGEXT}#upload-{kind}"/>'
        for kind in ("inline", "http", "https")
    )
    return (
        _element("dataModel", "ObsCore-1.1", ivo_id=model.OBSCORE_DATA_MODEL)
        + "\n<language><name>ADQL</name>"
        + _element("version", "2.0", ivo_id="ivo://ivoa.net/std/ADQL#v2.0")
        + _element("version", "2.1", ivo_id="ivo://ivoa.net/std/ADQL#v2.1")
        + "<description>ADQL 2.1 with geometry (exact on the sphere), strings, OFFSET, CAST, "
        "IN_UNIT, set operators, WITH and bitwise operators (COALESCE too)</description>"
        + features
        + "</language>\n"
        + outputs
        + uploads
        + "\n"
        + _limits("retentionPeriod", settings.job_destruction, settings.job_destruction)
        + _limits("executionDuration", *durations(JOBS, settings))
        + _limits("outputLimit", settings.default_maxrec, settings.max_maxrec, "row")
        + _limits("uploadLimit", settings.upload_max_bytes, settings.upload_max_bytes, "byte")
    )


def capabilities(root: str, settings) -> list[vosi.Capability]:
    return [
        vosi.Capability(
            STANDARD_ID,
            root + BASE,
            use="base",
            role="std",
            version="1.1",
            xsi_type="tr:TableAccess",
            body=table_access(settings),
        ),
        vosi.Capability(TABLES_ID, f"{root}{BASE}/tables"),
        vosi.Capability(EXAMPLES_ID, f"{root}{BASE}/examples"),
    ]


vosi.add_routes(router, BASE, capabilities, "TAP 1.1")


# --------------------------------------------------------------------------------------------
# Tables (VOSI-tables 1.1)

TABLES_NAMESPACES = (
    'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
    'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def column_element(column: Column, primary: bool) -> str:
    parts = [_element("name", column.adql_name)]
    if column.description:
        parts.append(_element("description", column.description))
    for tag in ("unit", "ucd", "utype"):
        if getattr(column, tag):
            parts.append(_element(tag, getattr(column, tag)))
    attributes = ""
    if column.arraysize:
        attributes += f' arraysize="{xml_attr(column.arraysize)}"'
    if column.xtype:
        attributes += f' extendedType="{xml_attr(column.xtype)}"'
    parts.append(f'<dataType xsi:type="vs:VOTableType"{attributes}>{column.datatype}</dataType>')
    flags = [("indexed", column.indexed), ("primary", primary), ("nullable", column.nullable)]
    parts.extend(f"<flag>{name}</flag>" for name, wanted in flags if wanted)
    std = ' std="true"' if column.std else ""
    return f"<column{std}>{''.join(parts)}</column>"


def table_element(table: Table, tag: str = "table", detail: bool = True, extra: str = "") -> str:
    parts = [_element("name", table.qualified)]
    if table.description:
        parts.append(_element("description", table.description))
    if table.utype:
        parts.append(_element("utype", table.utype))
    if detail:
        parts.extend(column_element(c, c.name in table.primary_key) for c in table.columns)
        for key in table.foreign_keys:
            pairs = "".join(
                f"<fkColumn>{_element('fromColumn', a)}{_element('targetColumn', b)}</fkColumn>"
                for a, b in zip(key.columns, key.target_columns, strict=True)
            )
            described = _element("description", key.description) if key.description else ""
            parts.append(
                f"<foreignKey>{_element('targetTable', key.target)}{pairs}{described}</foreignKey>"
            )
    kind = "view" if table.kind == "view" else "base_table"
    return f'<{tag}{extra} type="{kind}">' + "".join(parts) + f"</{tag}>\n"


def tableset(detail: bool) -> bytes:
    schemas = []
    for schema in model.SCHEMAS:
        tables = [t for t in model.PUBLIC_TABLES if t.schema == schema.name]
        body = "".join(table_element(t, detail=detail) for t in tables)
        schemas.append(
            f"<schema>{_element('name', schema.name)}"
            f"{_element('description', schema.description)}\n{body}</schema>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<vosi:tableset {TABLES_NAMESPACES}>\n" + "".join(schemas) + "</vosi:tableset>\n"
    ).encode()


@router.get(BASE + "/tables", include_in_schema=False)
async def tables(request: Request) -> Response:
    detail = request.query_params.get("detail", "max").lower() != "min"
    return Response(tableset(detail), media_type="text/xml")


@router.get(BASE + "/tables/{name}", include_in_schema=False)
async def one_table(name: str) -> Response:
    found = [t for t in model.PUBLIC_TABLES if t.qualified.lower() == name.lower()]
    if not found:
        return Response(f"no table named {name}\n", status_code=404, media_type="text/plain")
    body = table_element(found[0], "vosi:table", extra=" " + TABLES_NAMESPACES)
    return Response(
        ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode(), media_type="text/xml"
    )


# --------------------------------------------------------------------------------------------
# Examples (DALI examples: XHTML with RDFa) and the base page

EXAMPLES = (
    (
        "cone",
        "Images containing a position",
        "Every spectral image whose footprint contains the north ecliptic pole.",
        "SELECT * FROM spherex.obscore\nWHERE CONTAINS(POINT('ICRS', 270.0, 66.56), s_region) = 1",
        "spherex.obscore",
    ),
    (
        "centre-cone",
        "Images centred near a position",
        "ObsCore's cone search: the images whose centre lies within half a degree of the "
        "north ecliptic pole, nearest first (an index on the centres serves it).",
        "SELECT obs_publisher_did, em_min, em_max,\n"
        "DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 270.0, 66.56)) AS dist\n"
        "FROM ivoa.obscore\n"
        "WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 270.0, 66.56, 0.5)) = 1\n"
        "ORDER BY dist",
        "ivoa.obscore",
    ),
    (
        "cutout-urls",
        "Cutout URLs built in the query",
        "File paths of the images of one detector over a position, with a 1-arcminute cutout "
        "suffix, oldest first (what IRSA's tutorials do).",
        "SELECT 'https://irsa.ipac.caltech.edu/' || a.uri || "
        "'?center=270.0,66.56&size=60arcsec' AS uri, p.time_bounds_lower\n"
        "FROM spherex.artifact a JOIN spherex.plane p ON a.planeid = p.planeid\n"
        "WHERE 1 = CONTAINS(POINT('ICRS', 270.0, 66.56), p.poly)\n"
        "AND p.energy_bandpassname = 'SPHEREx-D3'\nORDER BY time_bounds_lower",
        "spherex.plane",
    ),
    (
        "per-detector",
        "Images per detector",
        "How many images of the deep collection each detector took, and when.",
        "SELECT p.energy_bandpassname, COUNT(DISTINCT p.planeid) AS images,\n"
        "MIN(p.time_bounds_lower) AS first_mjd, MAX(p.time_bounds_lower) AS last_mjd\n"
        "FROM spherex.plane p JOIN spherex.observation o ON p.obsid = o.obsid\n"
        "WHERE o.collection = 'spherex_qr2_deep'\nGROUP BY p.energy_bandpassname",
        "spherex.plane",
    ),
    (
        "obscore-plane",
        "ObsCore rows with their CAOM planes",
        "Joins spherex.obscore to spherex.plane on the dataset id.",
        "SELECT TOP 10 o.obs_id, o.energy_bandpassname AS band, p.provenance_version\n"
        "FROM spherex.obscore o JOIN spherex.plane p ON o.obs_publisher_did = p.obs_publisher_did\n"
        "ORDER BY obs_id, band",
        "spherex.obscore",
    ),
    (
        "pipeline-versions",
        "Pipeline versions",
        "The pipeline versions of the released images.",
        "SELECT DISTINCT provenance_version FROM spherex.plane",
        "spherex.plane",
    ),
    (
        "level2-files",
        "Level-2 files of a release",
        "Artifacts of QR2 spectral images, by path.",
        "SELECT TOP 20 uri, contentlength FROM spherex.artifact\n"
        "WHERE uri LIKE '%/spherex/qr2/level2/%' ORDER BY uri",
        "spherex.artifact",
    ),
    (
        "collections",
        "Collections (astroquery's list_collections)",
        "The collections of images, as Irsa.list_collections() asks.",
        "SELECT DISTINCT o.collection FROM caom.observation o JOIN caom.plane p "
        "ON o.obsid = p.obsid\nWHERE (p.dataproducttype = 'image' OR p.dataproducttype = 'cube') "
        "ORDER BY collection",
        "caom.observation",
    ),
)
"""The queries real clients send (spherex-products §5.2), runnable as written."""


def examples_page() -> bytes:
    items = "".join(
        f'<div typeof="example" id="{key}" resource="#{key}">\n'
        f'<h2 property="name">{xml_text(name)}</h2>\n<p>{xml_text(text)}</p>\n'
        f'<pre property="query" class="dachs-ex-tapquery">{xml_text(query)}</pre>\n'
        f'<p>Table: <span property="table">{xml_text(table)}</span></p>\n</div>\n'
        for key, name, text, query, table in EXAMPLES
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">\n'
        "<head><title>SPHEREx archive TAP examples</title></head>\n"
        '<body vocab="http://www.ivoa.net/rdf/examples#">\n'
        "<h1>Example queries of the SPHEREx archive</h1>\n" + items + "</body>\n</html>\n"
    ).encode()


@router.get(BASE + "/examples", include_in_schema=False)
async def examples() -> Response:
    return Response(examples_page(), media_type="application/xhtml+xml")


@router.get(BASE, include_in_schema=False)
async def home(request: Request) -> HTMLResponse:
    base = html.escape(vosi.base_url(request) + BASE)
    links = "".join(
        f'<li><a href="{base}/{path}">{path}</a>: {html.escape(what)}</li>'
        for path, what in (
            ("sync", "synchronous queries (LANG=ADQL&QUERY=...)"),
            ("async", "asynchronous queries (UWS 1.1 jobs)"),
            ("capabilities", "what this service offers (TAPRegExt)"),
            ("tables", "the tables and columns"),
            ("examples", "example queries"),
            ("availability", "whether the service is up"),
        )
    )
    return HTMLResponse(
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>SPHEREx archive TAP"
        f"</title></head><body><h1>TAP 1.1 service</h1><p>Base URL: <code>{base}</code></p>"
        f"<ul>{links}</ul></body></html>"
    )
