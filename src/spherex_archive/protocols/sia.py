"""SIA 2.0 at ``/SIA`` (GET and POST), with ``/SIA/capabilities`` and ``/SIA/availability``.

The HTTP side of :mod:`spherex_archive.services.sia`: DALI parameters in, a streamed VOTable
(or CSV, TSV, HTML) out, errors as DALI error documents whose text starts with the SIA fault
name. Every answer ends with the service's self-description (``RESOURCE name="this"``): its
input parameters with units, and the collections a COLLECTION may name.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from spherex_archive.adql.errors import AdqlError
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.config import Settings
from spherex_archive.formats.votable import IdentifiedColumn, Param, param_element
from spherex_archive.model.schema import Column
from spherex_archive.protocols import datalink, vosi
from spherex_archive.server.dali import (
    DaliError,
    ResponseFormat,
    dali_params,
    error_response,
    maxrec,
    response_format,
    single,
    table_response,
)
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.shapes import ValueProblem
from spherex_archive.services.sia import COLUMNS, POL_STATES, SiaService

BASE = "/SIA"
STANDARD_ID = "ivo://ivoa.net/std/SIA#query-2.0"

router = APIRouter()


def service(request: Request) -> SiaService:
    state = request.app.state
    settings = state.settings
    engine = QueryEngine(
        state.catalogue, timeout=settings.query_timeout, max_rows=settings.max_maxrec
    )
    return SiaService(engine, settings.base_url)


def _answer(
    sia: SiaService, params: dict[str, list[str]], limit: int, fmt: ResponseFormat, base: str
) -> Response:
    """The whole answer, made in one worker thread: search, self-description, and the first
    megabyte of the document (so that a database error is an error document, not a broken
    stream)."""
    collections = tuple(sia.collections())
    answer = sia.search(params, limit, collections)
    return table_response(
        fmt,
        LINKED_COLUMNS,
        answer.rows,
        overflow=answer.overflow,
        resources=_resources(base, collections),
    )


@lru_cache(maxsize=64)
def _resources(base: str, collections: tuple[str, ...]) -> tuple[str, str]:
    """The RESOURCEs after the results (self-description, DataLink descriptor), made once per
    base URL and list of collections: escaping their twenty PARAMs costs as much as writing
    a hundred rows."""
    description = self_description(base + BASE, list(collections))
    return description, datalink.discovery_descriptor(base, DATASET_ID)


DATASET_ID = "obs_publisher_did"
LINKED_COLUMNS = [
    IdentifiedColumn(**dataclasses.asdict(c), xml_id=DATASET_ID) if c.name == DATASET_ID else c
    for c in COLUMNS
]
"""The answer's columns, the dataset ids' FIELD with an XML ID: the DataLink descriptor's ``ref``
names it, so that pyvo's iter_datalinks() finds every row's links (access_url is the file here,
as at IRSA, not the links document)."""


@router.api_route(BASE, methods=["GET", "POST"], include_in_schema=False)
async def query(request: Request) -> Response:
    params = await dali_params(request)
    fmt: ResponseFormat | None = None
    try:
        fmt = response_format(single(params, "RESPONSEFORMAT"))
        settings = request.app.state.settings
        limit = maxrec(params, settings.default_maxrec, settings.max_maxrec)
        base = vosi.base_url(request)
        return await run_in_threadpool(_answer, service(request), params, limit, fmt, base)
    except DaliError as error:
        return error_response(error.message, status=error.status, fmt=fmt)
    except (ValueProblem, AdqlError) as error:
        return error_response(f"UsageFault: {error}", status=400, fmt=fmt)
    except QueryTimeout:
        return error_response(
            "TransientFault: the search ran longer than the service allows "
            f"({request.app.state.settings.query_timeout:g} s); narrow it",
            status=503,
            fmt=fmt,
        )


def _input(name: str, datatype: str, description: str, **extra) -> Column:
    return Column(name, datatype, description, **extra)


INPUTS = (
    _input(
        "POS",
        "char",
        "CIRCLE ra dec radius, RANGE ra1 ra2 dec1 dec2 or POLYGON ra dec ...",
        ucd="pos.outline;obs",
        unit="deg",
    ),
    _input(
        "BAND",
        "double",
        "Wavelength interval (metres) overlapping em_min..em_max",
        unit="m",
        arraysize="2",
        xtype="interval",
    ),
    _input(
        "TIME",
        "double",
        "MJD interval overlapping t_min..t_max",
        unit="d",
        arraysize="2",
        xtype="interval",
    ),
    _input("POL", "char", "Polarization state: " + " ".join(POL_STATES)),
    _input("FOV", "double", "Range of s_fov", unit="deg", arraysize="2", xtype="interval"),
    _input(
        "SPATRES", "double", "Range of s_resolution", unit="arcsec", arraysize="2", xtype="interval"
    ),
    _input("SPECRP", "double", "Range of em_res_power", arraysize="2", xtype="interval"),
    _input("EXPTIME", "double", "Range of t_exptime", unit="s", arraysize="2", xtype="interval"),
    _input("TIMERES", "double", "Range of t_resolution", unit="s", arraysize="2", xtype="interval"),
    _input("ID", "char", "obs_publisher_did (case-insensitive)"),
    _input("FACILITY", "char", "facility_name"),
    _input("INSTRUMENT", "char", "instrument_name"),
    _input("DPTYPE", "char", "dataproduct_type"),
    _input("CALIB", "int", "calib_level (0-4)"),
    _input("TARGET", "char", "target_name"),
    _input("FORMAT", "char", "access_format"),
    _input("MAXREC", "int", "Most rows to return (0: the metadata only)"),
    _input("RESPONSEFORMAT", "char", "votable (default), csv, tsv or html"),
)


def self_description(access_url: str, collections: list[str]) -> str:
    """``RESOURCE type="meta" utype="adhoc:service" name="this"``: the standard, the URL and
    the inputs. Intervals are double[2] with xtype interval, POS plain text: the SIA 2.0
    document's example uses xtypes that votlint rejects (ivoa-services §7.3)."""
    inputs = [param_element(Param(c)) for c in INPUTS]
    collection = Column("COLLECTION", "char", "obs_collection: one of the options")
    inputs.insert(10, param_element(Param(collection, options=tuple(collections))))
    text = Column("standardID", "char", "")
    return (
        '<RESOURCE type="meta" utype="adhoc:service" name="this">\n'
        + param_element(Param(text, STANDARD_ID))
        + "\n"
        + param_element(Param(Column("accessURL", "char", ""), access_url))
        + '\n<GROUP name="inputParams">\n'
        + "\n".join(inputs)
        + "\n</GROUP>\n</RESOURCE>\n"
    )


def capabilities(root: str, settings: Settings) -> list[vosi.Capability]:
    return [vosi.Capability(STANDARD_ID, root + BASE, role="std", version="2.0")]


vosi.add_routes(router, BASE, capabilities, "SIA 2.0")
