"""A real uvicorn server on 127.0.0.1 over a bare FastAPI app with the IBE router, once over the
local release and once over the same release in moto's S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spherex_archive.protocols import ibe
from spherex_archive.store import FsspecStore, LocalStore, Store
from tests.protocols.client import running
from tests.store.fixtures import BUCKET, CREDENTIALS, release, s3_endpoint  # noqa: F401


@dataclass
class Server:
    base: str
    """``http://127.0.0.1:PORT``"""
    store: Store
    release: Path
    """The release on local disk, to compare answers with."""
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Range header) of every request, in order."""

    def url(self, key: str = "") -> str:
        return f"{self.base}{ibe.PREFIX}/{key}"


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def server(request, release) -> Iterator[Server]:  # noqa: F811 (the fixture imported above)
    if request.param == "local":
        store: Store = LocalStore(release)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        store = FsspecStore(f"s3://{BUCKET}", endpoint_url=endpoint, **CREDENTIALS)
    log: list = []
    with running(store, log) as base:
        yield Server(base=base, store=store, release=release, requests=log)
