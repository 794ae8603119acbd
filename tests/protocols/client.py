"""Test helpers: a real uvicorn server in a thread, and exact HTTP requests and answers (no
redirects followed, no client-side normalisation)."""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from fastapi import FastAPI

from spherex_archive.protocols import ibe
from spherex_archive.store import Store
from tests.serving import serving


class RequestLog:
    """ASGI middleware noting what clients sent: it observes, it changes nothing."""

    def __init__(self, app, log: list) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            range_header = headers.get(b"range")
            self.log.append(
                (scope["method"], scope["path"], range_header and range_header.decode("latin-1"))
            )
        await self.app(scope, receive, send)


@contextlib.contextmanager
def running(store: Store, log: list) -> Iterator[str]:
    """uvicorn on a free port of 127.0.0.1, in a thread, over a bare app with the IBE router;
    yields the base URL. ``log`` collects what clients sent."""
    app = FastAPI()
    app.state.store = store
    app.include_router(ibe.router)
    app.add_middleware(RequestLog, log=log)
    with serving(app, lifespan="off") as url:
        yield url


VOID = {"meta", "link", "br", "img", "input", "hr", "wbr", "col", "source"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> Reply:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        conn.close()


def raw_request(base: str, target: bytes, method: bytes = b"GET") -> Reply:
    """The request line exactly as given: no client-side normalisation or quoting."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            method
            + b" "
            + target
            + b" HTTP/1.1\r\nHost: "
            + parts.netloc.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


class Page(HTMLParser):
    """Checks that tags nest and close, and collects the links with their text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.rows: list[list[str]] = []
        self.titles: list[str] = []
        self._href: str | None = None
        self._text = ""
        self._cell: str | None = None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a":
            self._href, self._text = attributes["href"], ""
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self._cell = ""
        if tag == "span" and "title" in attributes:
            self.titles.append(attributes["title"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "a":
            self.links.append((self._href, self._text))
            self._href = None
        if tag == "td":
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._href is not None:
            self._text += data
        if self._cell is not None:
            self._cell += data
