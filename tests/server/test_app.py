"""The application as deployed: create_app over an ingested SQLite catalogue and the release
folder, served by uvicorn. Landing page, health, metrics, the file tree, and no stack traces."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.responses import StreamingResponse

from spherex_archive.catalogue import open_catalogue
from spherex_archive.server import landing
from spherex_archive.server.app import GC_YOUNG_THRESHOLD, SERVER, create_app, route_paths
from tests.protocols.client import Page, request
from tests.server.conftest import PUBLIC_URL, copy_catalogue, serving, settings_for


@dataclass
class Archive:
    base: str
    app: FastAPI
    catalogue_path: Path
    release: Path


def _boom() -> None:
    raise RuntimeError("secret internals")


def _boom_midway() -> StreamingResponse:
    def body() -> Iterator[bytes]:
        yield b"first part\n"
        raise RuntimeError("failed while streaming")

    return StreamingResponse(body(), media_type="text/plain")


@pytest.fixture(scope="module")
def archive(ingested, small_release, tmp_path_factory) -> Iterator[Archive]:
    path = copy_catalogue(ingested, tmp_path_factory.mktemp("served") / "catalogue.db")
    app = create_app(settings_for(path, small_release, base_url=PUBLIC_URL + "/"))
    app.add_api_route("/boom", _boom)
    app.add_api_route("/boom-midway", _boom_midway)
    with serving(app) as base:
        yield Archive(base, app, path, small_release)


def test_startup_publishes_the_settings_into_the_catalogue(archive):
    catalogue = open_catalogue(f"sqlite:///{archive.catalogue_path}")
    assert catalogue.config()["base_url"] == PUBLIC_URL  # trailing slash dropped
    (url,) = catalogue.fetchall("SELECT access_url FROM ivoa__obscore LIMIT 1")[0]
    assert url.startswith(PUBLIC_URL + "/datalink/links/spherex?ID=ivo://irsa.ipac/")
    assert archive.app.state.store is not None


def test_landing_page(archive):
    reply = request(archive.base + "/")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["server"] == SERVER
    text = reply.body.decode()
    page = Page(text)  # tags nest and close
    counts = open_catalogue(f"sqlite:///{archive.catalogue_path}").counts()
    assert set(counts) == {"spherex_qr2", "spherex_qr2_cal", "spherex_qr2_deep"}
    table = {row[0]: row[1] for row in page.rows if len(row) == 2}
    for collection, count in counts.items():
        assert table[collection] == f"{count:,}"
    links = dict(page.links)
    # Services that are registered are links; the others are listed as not there yet.
    assert "ibe/data/spherex/" in links
    assert "health" in links and "metrics" in links
    assert "SIA" in links and "coverage/" in links and "TAP" in links
    assert "datalink/links/spherex" in links and "soda/sync" in links
    assert links["applications/spherex"] == "Data Explorer"
    assert text.count("not on this server yet") == sum(
        not landing.available(s.path, route_paths(archive.app)) for s in landing.SERVICES
    )
    assert "ibe/data/spherex/qr2/" in links  # the release folder
    # Examples use the public URL, never the bind address.
    assert f"SIA2Service(&quot;{PUBLIC_URL}/SIA&quot;)" in text
    assert f"pyvo.dal.TAPService(&quot;{PUBLIC_URL}/TAP&quot;)" in text
    assert f"Irsa.sia_url = &quot;{PUBLIC_URL}/SIA&quot;" in text
    assert f"Irsa.tap_url = &quot;{PUBLIC_URL}/TAP&quot;" in text
    assert "127.0.0.1" not in text


def test_landing_page_knows_routes_added_later(archive, small_release, ingested, tmp_path):
    """Availability is read from the app's routes: a new protocol router shows up by itself."""
    path = copy_catalogue(ingested, tmp_path / "catalogue.db")
    app = create_app(settings_for(path, small_release))
    app.add_api_route("/SIA", lambda: "sia")
    with serving(app) as base:
        links = dict(Page(request(base + "/").body.decode()).links)
    assert "SIA" in links


def test_health(archive):
    reply = request(archive.base + "/health")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    body = json.loads(reply.body)
    assert body["status"] == "ok"
    assert body["checks"] == {"catalogue": "ok", "store": "ok"}


@pytest.mark.parametrize("damage", ["removed", "garbage"])
def test_health_is_503_when_the_catalogue_is_gone(damage, ingested, small_release, tmp_path):
    path = copy_catalogue(ingested, tmp_path / "catalogue.db")
    app = create_app(settings_for(path, small_release))
    with serving(app) as base:
        assert request(base + "/health").status == 200
        moved = tmp_path / "moved.db"
        path.rename(moved)
        if damage == "garbage":
            path.write_bytes(b"this is not a database" * 1000)
        reply = request(base + "/health")
        assert reply.status == 503
        body = json.loads(reply.body)
        assert body["status"] == "unavailable"
        assert body["checks"]["catalogue"] != "ok"
        assert body["checks"]["store"] == "ok"
        path.unlink(missing_ok=True)
        moved.rename(path)
        assert request(base + "/health").status == 200


def test_files_are_served_through_the_app(archive):
    reply = request(archive.base + "/ibe/data/spherex/")
    assert reply.status == 200
    assert "qr2/" in dict(Page(reply.body.decode()).links)
    manifest = next(archive.release.glob("qr2/level2/*/*/MD5SUMS"))
    key = manifest.relative_to(archive.release).as_posix()
    reply = request(f"{archive.base}/ibe/data/spherex/{key}", headers={"Range": "bytes=0-9"})
    assert reply.status == 206
    assert reply.body == manifest.read_bytes()[:10]
    assert request(archive.base + "/ibe/data/spherex/truth/").status == 404


def test_repeated_slashes_are_merged(archive):
    assert request(archive.base + "//health").status == 200
    assert request(archive.base + "///metrics").status == 200


def test_unknown_paths_are_404(archive):
    reply = request(archive.base + "/no/such/thing")
    assert reply.status == 404
    assert reply.headers["content-type"]


def test_exceptions_never_reach_the_client(archive, caplog):
    with caplog.at_level(logging.ERROR, logger="spherex_archive.server"):
        reply = request(archive.base + "/boom")
    assert reply.status == 500
    assert reply.headers["content-type"].startswith("text/plain")
    body = reply.body.decode()
    assert "Traceback" not in body and "secret internals" not in body
    assert "Internal server error" in body
    (record,) = [r for r in caplog.records if "/boom" in r.getMessage()]
    assert record.exc_info and "secret internals" in str(record.exc_info[1])


def test_an_exception_mid_answer_cuts_the_connection(archive):
    with pytest.raises(Exception):  # noqa: B017 (http.client: IncompleteRead or a reset)
        request(archive.base + "/boom-midway")


def _samples(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_metrics(archive):
    key = next(archive.release.glob("qr2/level2/*/*/MD5SUMS")).relative_to(archive.release)
    for _ in range(3):
        request(f"{archive.base}/ibe/data/spherex/{key.as_posix()}")
    request(archive.base + "/no/such/page")
    request(archive.base + "/boom")
    reply = request(archive.base + "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    requests = _samples(text, "spherex_http_requests_total")
    ibe = 'spherex_http_requests_total{endpoint="/ibe/data/spherex/{path:path}",method="GET",'
    assert requests[ibe + 'status="200"}'] >= 3
    assert (
        requests['spherex_http_requests_total{endpoint="<unmatched>",method="GET",status="404"}']
        >= 1
    )
    assert requests['spherex_http_requests_total{endpoint="/boom",method="GET",status="500"}'] >= 1
    assert not any("MD5SUMS" in k or "no/such" in k for k in requests)  # templates, not URLs
    durations = _samples(text, "spherex_http_request_duration_seconds_count")
    assert (
        durations[
            'spherex_http_request_duration_seconds_count{endpoint="/ibe/data/spherex/{path:path}",'
            'method="GET"}'
        ]
        >= 3
    )
    errors = _samples(text, "spherex_http_exceptions_total")
    assert errors['spherex_http_exceptions_total{endpoint="/boom",exception="RuntimeError"}'] >= 1
    counts = open_catalogue(f"sqlite:///{archive.catalogue_path}").counts()
    planes = _samples(text, "spherex_catalogue_planes")
    for collection, count in counts.items():
        assert planes[f'spherex_catalogue_planes{{collection="{collection}"}}'] == count
    assert _samples(text, "spherex_catalogue_up")["spherex_catalogue_up"] == 1


def test_serving_collects_young_objects_less_often(ingested, small_release, tmp_path):
    """While the app serves, the youngest GC generation waits for GC_YOUNG_THRESHOLD
    allocations; the thresholds the process had come back when it stops."""
    path = copy_catalogue(ingested, tmp_path / "catalogue.db")
    app = create_app(settings_for(path, small_release))
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        with serving(app):
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
