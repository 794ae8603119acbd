"""Real uvicorn servers on 127.0.0.1: a bare app with the IBE router, once over the local
release and once over the same release in moto's S3 server (``server``); and the whole archive
over the small release ingested into each catalogue backend (``archive_server``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest
from spherex_archive.protocols import ibe
from spherex_archive.server.app import create_app, publish_settings
from spherex_archive.store import FsspecStore, LocalStore, Store
from tests.protocols.client import running
from tests.serving import serving
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


@dataclass
class ServedArchive:
    base: str
    """``http://127.0.0.1:PORT``, also the archive's public base URL."""
    backend: str
    catalogue: str
    """The catalogue's URL."""


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def archive_server(request, small_release, tmp_path_factory) -> Iterator[ServedArchive]:
    """The whole archive (``create_app``) over the small release, ingested into each catalogue
    backend, served by uvicorn with its public URL set to the server's own address."""
    dropped = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('archive') / 'catalogue.db'}"
    else:
        from tests.conftest import PG_ADMIN, _pg_admin

        dropped = f"sxtest_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as admin:
            admin.execute(f"CREATE DATABASE {dropped}")
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{dropped}"
    catalogue = open_catalogue(url)
    ingest(catalogue, str(small_release), workers=2, progress=False, log=lambda _: None)
    catalogue.close()
    jobs = tmp_path_factory.mktemp(
        "jobs"
    )  # not ./jobs, where a PostgreSQL-backed server keeps them
    app = create_app(Settings(catalogue=url, data=str(small_release), jobs_dir=str(jobs)))
    with serving(app, lifespan="on", access_log=False) as base:
        app.state.settings.base_url = base
        publish_settings(app.state.catalogue, app.state.settings)  # ObsCore's links too
        yield ServedArchive(base, request.param, url)
    if dropped:
        from tests.conftest import _pg_admin

        with _pg_admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {dropped} WITH (FORCE)")
