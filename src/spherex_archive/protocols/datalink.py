"""DataLink 1.1 at ``/datalink/links/spherex`` (GET and POST), with ``/datalink/capabilities`` and
``/datalink/availability`` (also beside the links resource, at ``/datalink/links/...``), and the
PNG quicklooks its ``#preview`` links lead to, at ``/datalink/preview/spherex?ID=<dataset id>``.

The HTTP side of :mod:`spherex_archive.services.datalink`: ``ID`` (repeatable) and
``RESPONSEFORMAT`` in, the links document out with DataLink's own Content-Type, its service
descriptors after the results; whole-request failures as DALI error documents whose text starts
with the fault name. :func:`discovery_descriptor` is the DataLink service descriptor that search
answers (SIA) carry, so that clients can ask for the links of all their rows in one request.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from spherex_archive.adql.errors import AdqlError
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.config import Settings
from spherex_archive.formats import votable
from spherex_archive.formats.votable import Param, param_element, xml_attr, xml_text
from spherex_archive.model.schema import Column
from spherex_archive.protocols import vosi
from spherex_archive.server.dali import DaliError, Params, dali_params, error_response, single
from spherex_archive.services.datalink import (
    COLUMNS,
    LINKS_PATH,
    MEDIA_TYPE,
    PREVIEW_PATH,
    STANDARD_ID,
    DataLinkService,
    ServiceDescriptor,
)
from spherex_archive.services.preview import NoImage, PreviewService
from spherex_archive.store import NotFound

BASE = "/datalink"

RESPONSE_FORMATS = ("votable", "application/x-votable+xml")
"""What RESPONSEFORMAT may ask for (MIME parameters aside): the links document itself."""

PREVIEW_CACHE_CONTROL = "public, max-age=3600"
"""A dataset's newer product version is drawn anew (another entity tag) within the hour."""

router = APIRouter()


def service(request: Request) -> DataLinkService:
    state = request.app.state
    return DataLinkService(state.catalogue, state.settings)


def previews(request: Request) -> PreviewService:
    """The app's preview service, made on first use: its cache lives as long as the app."""
    state = request.app.state
    found = getattr(state, "previews", None)
    if found is None:
        found = state.previews = PreviewService(state.store)
    return found


# --------------------------------------------------------------------------------------------
# Links


def _check_format(value: str | None) -> None:
    if value is None or not value.strip():
        return
    if value.split(";")[0].strip().lower() not in RESPONSE_FORMATS:
        raise DaliError(
            f"UsageFault: RESPONSEFORMAT {value!r} is not supported; DataLink answers "
            "application/x-votable+xml;content=datalink (votable)"
        )


def _ids(params: Params) -> list[str]:
    ids = params.get("ID", [])
    if any(not i for i in ids):
        raise DaliError("UsageFault: an ID parameter is empty; give a dataset id")
    return ids


def links_document(links: DataLinkService, ids: list[str]) -> bytes:
    """The links document of ``ids`` (an empty table when there are none)."""
    answer = links.links(ids)
    return b"".join(
        votable.write_votable(
            COLUMNS,
            (link.row() for link in answer.links),
            infos={"standardID": STANDARD_ID},
            overflow=lambda: answer.overflow,
            resources=[descriptor_element(d) for d in answer.descriptors],
        )
    )


@router.api_route(LINKS_PATH, methods=["GET", "POST"], include_in_schema=False)
async def links(request: Request) -> Response:
    params = await dali_params(request)
    try:
        _check_format(single(params, "RESPONSEFORMAT"))
        body = await run_in_threadpool(links_document, service(request), _ids(params))
    except DaliError as error:
        return error_response(error.message, status=error.status)
    except QueryTimeout:
        return error_response(
            "TransientFault: the catalogue took longer than the service allows; "
            "ask for fewer ids at once",
            status=503,
        )
    except AdqlError as error:  # the query is the archive's own: the database failed
        return error_response(f"FatalFault: {error}", status=500)
    return Response(body, media_type=MEDIA_TYPE)


# --------------------------------------------------------------------------------------------
# Service descriptors


def _text_param(name: str, value: str) -> str:
    return param_element(Param(Column(name, "char", ""), value))


def descriptor_element(descriptor: ServiceDescriptor) -> str:
    """The descriptor's RESOURCE: DESCRIPTION, the PARAMs that locate the service, then its
    inputs in ``GROUP name="inputParams"`` (DataLink §4)."""
    name = xml_attr(descriptor.name)
    identity = f' ID="{name}"' if descriptor.referenced else ""
    located = [_text_param("accessURL", descriptor.access_url)]
    if descriptor.standard_id:
        located.insert(0, _text_param("standardID", descriptor.standard_id))
    return (
        f'<RESOURCE type="meta" utype="adhoc:service"{identity} name="{name}">\n'
        f"<DESCRIPTION>{xml_text(descriptor.description)}</DESCRIPTION>\n"
        + "\n".join(located)
        + '\n<GROUP name="inputParams">\n'
        + "\n".join(param_element(p) for p in descriptor.inputs)
        + "\n</GROUP>\n</RESOURCE>\n"
    )


def discovery_descriptor(base_url: str, ref: str) -> str:
    """The DataLink service for the rows of a search answer: its ID input comes from the
    FIELD whose XML ID is ``ref`` (the dataset ids), so pyvo's ``iter_datalinks()`` posts all
    of an answer's ids in one request."""
    dataset_id = Column("ID", "char", "The dataset id of a row", ucd="meta.id;meta.main")
    return descriptor_element(
        ServiceDescriptor(
            name="datalink",
            description="DataLink: each dataset's file, cutout services, preview, "
            "calibration files and S3 location",
            access_url=base_url.rstrip("/") + LINKS_PATH,
            inputs=(Param(dataset_id, ref=ref),),
            standard_id=STANDARD_ID,
            referenced=False,
        )
    )


# --------------------------------------------------------------------------------------------
# Previews


def _preview(request: Request, did: str) -> Response:
    dataset = service(request).datasets([did]).get(did)
    if dataset is None:
        return PlainTextResponse(f"No released dataset has the id {did!r}.\n", status_code=404)
    if not dataset.has_preview:
        return PlainTextResponse(f"{did} is not an image: it has no preview.\n", status_code=404)
    try:
        made = previews(request).preview(dataset.key)
    except (NotFound, NoImage):
        return PlainTextResponse(f"{did} has no image to draw.\n", status_code=404)
    headers = {"ETag": made.etag, "Cache-Control": PREVIEW_CACHE_CONTROL}
    asked = request.headers.get("if-none-match", "")
    if made.etag in (tag.strip().removeprefix("W/") for tag in asked.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(made.png, media_type="image/png", headers=headers)


@router.get(PREVIEW_PATH, include_in_schema=False)
async def preview(request: Request) -> Response:
    """The PNG quicklook of one dataset: ``?ID=<dataset id>``."""
    ids = (await dali_params(request)).get("ID", [])
    if len(ids) != 1 or not ids[0]:
        return PlainTextResponse("Give one dataset id: ?ID=<id>.\n", status_code=400)
    return await run_in_threadpool(_preview, request, ids[0])


def capabilities(root: str, settings: Settings) -> list[vosi.Capability]:
    return [vosi.Capability(STANDARD_ID, root + LINKS_PATH, role="std", version="1.1")]


vosi.add_routes(router, BASE, capabilities, "DataLink")
# And beside the links resource, where DALI puts them and pyvo's DatalinkService looks.
vosi.add_routes(router, LINKS_PATH.rsplit("/", 1)[0], capabilities, "DataLink")
