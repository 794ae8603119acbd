"""VOSI 1.1 documents every service publishes (ivoa-services §3): capabilities and availability.

Each protocol module lists its capabilities and mounts these resources as children of its base
URL with :func:`add_routes`; the TAP module adds ``/tables`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from spherex_archive.config import Settings
from spherex_archive.formats.votable import xml_attr, xml_text

CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"
MEDIA_TYPE = "text/xml"

_NAMESPACES = (
    'xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" '
    'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
    'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0"'
)


@dataclass(frozen=True)
class Capability:
    """One ``capability`` element: a standard, and the URL that implements it."""

    standard_id: str
    access_url: str
    use: str = "full"
    """``full`` (the URL as is) or ``base`` (TAP: resources are appended to it)."""
    role: str | None = None
    """``std`` on the interface of the standard's own protocol."""
    version: str | None = None
    xsi_type: str | None = None
    """A capability subtype such as ``tr:TableAccess``."""
    body: str = ""
    """XML after the interface (TAPRegExt's languages, formats and limits)."""

    def element(self) -> str:
        subtype = f' xsi:type="{xml_attr(self.xsi_type)}"' if self.xsi_type else ""
        role = f' role="{xml_attr(self.role)}"' if self.role else ""
        version = f' version="{xml_attr(self.version)}"' if self.version else ""
        return (
            f'<capability standardID="{xml_attr(self.standard_id)}"{subtype}>\n'
            f'<interface xsi:type="vs:ParamHTTP"{role}{version}>'
            f'<accessURL use="{xml_attr(self.use)}">{xml_text(self.access_url)}</accessURL>'
            f"</interface>\n{self.body}</capability>\n"
        )


def capabilities_document(capabilities: Sequence[Capability]) -> bytes:
    """The root is namespaced and its children are not, as the VOSI schema wants."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<vosi:capabilities {_NAMESPACES}>\n"
        + "".join(c.element() for c in capabilities)
        + "</vosi:capabilities>\n"
    ).encode()


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def availability_document(available: bool, up_since: datetime | None, note: str) -> bytes:
    since = f"<upSince>{_timestamp(up_since)}</upSince>" if up_since else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<availability xmlns="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
        f"<available>{'true' if available else 'false'}</available>{since}"
        f"<note>{xml_text(note)}</note></availability>\n"
    ).encode()


def base_url(request: Request) -> str:
    return str(request.app.state.settings.base_url).rstrip("/")


def _catalogue_answers(request: Request) -> str | None:
    """None when the catalogue answers a trivial query, else why not."""
    try:
        request.app.state.catalogue.config()
    except Exception as error:
        return f"the catalogue does not answer: {type(error).__name__}"
    return None


def add_routes(
    router: APIRouter,
    base: str,
    capabilities: Callable[[str, Settings], list[Capability]],
    name: str,
) -> None:
    """``{base}/capabilities`` and ``{base}/availability`` for the service called ``name``;
    ``capabilities(public base URL, settings)`` lists what it offers besides these two."""

    def own(root: str, settings: Settings) -> list[Capability]:
        return [
            *capabilities(root, settings),
            Capability(CAPABILITIES, f"{root}{base}/capabilities"),
            Capability(AVAILABILITY, f"{root}{base}/availability"),
        ]

    async def capabilities_page(request: Request) -> Response:
        document = capabilities_document(own(base_url(request), request.app.state.settings))
        return Response(document, media_type=MEDIA_TYPE)

    async def availability_page(request: Request) -> Response:
        problem = await run_in_threadpool(_catalogue_answers, request)
        note = problem or f"The {name} service is accepting queries."
        started = getattr(request.app.state, "started", None)
        body = availability_document(problem is None, started, note)
        return Response(body, media_type=MEDIA_TYPE)

    router.add_api_route(
        f"{base}/capabilities", capabilities_page, methods=["GET"], include_in_schema=False
    )
    router.add_api_route(
        f"{base}/availability", availability_page, methods=["GET"], include_in_schema=False
    )
