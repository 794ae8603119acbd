"""What every request goes through: repeated slashes merged, a ``Server`` header, metrics, an
access log line, and no exception ever shown to a client as a stack trace.

Pure ASGI (not Starlette's BaseHTTPMiddleware), so streamed answers pass through untouched and
their duration is measured to the last byte.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spherex_archive.protocols import ibe
from spherex_archive.server.metrics import UNMATCHED, Metrics

access_log = logging.getLogger("spherex_archive.access")
error_log = logging.getLogger("spherex_archive.server")

_SLASHES = re.compile(r"//+")


class ArchiveMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, server: str) -> None:
        self.app = app
        self.metrics = metrics
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        # pyvo appends "/sync" to a base URL that may end in "/" (ivoa-services §2.6). The file
        # tree is left alone: it redirects such URLs to their canonical form itself.
        if "//" in path and not path.startswith(ibe.PREFIX + "/"):
            scope = dict(scope, path=_SLASHES.sub("/", path))
        started = time.perf_counter()
        status: int | None = None
        sent = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["Server"] = self.server
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as error:
            endpoint = _endpoint(scope)
            self.metrics.exception(endpoint, error)
            error_log.exception(
                "%s %s failed%s", scope["method"], path, "" if status is None else " mid-answer"
            )
            if status is not None:
                # Part of the answer is out: nothing sensible can follow. Returning closes the
                # connection and the client sees a truncated body, not a trace.
                return
            response = PlainTextResponse(
                "Internal server error: the archive could not answer this request; "
                "the details are in its log.\n",
                status_code=500,
            )
            await response(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe(scope["method"], _endpoint(scope), status or 500, seconds)
            client = scope.get("client")
            query = scope.get("query_string", b"")
            access_log.info(
                '%s "%s %s%s" %s %d %.1fms',
                client[0] if client else "-",
                scope["method"],
                path,
                "?" + query.decode("latin-1") if query else "",
                status or "-",
                sent,
                seconds * 1000,
            )


def _endpoint(scope: Scope) -> str:
    """The path template of the route that answered (FastAPI puts the route in the scope)."""
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED
