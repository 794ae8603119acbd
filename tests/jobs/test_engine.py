"""The job engine behind the UWS resources, through HTTP against real servers: aborted and overdue
jobs really stop, running jobs fail with a reason when their server stops or dies, queued jobs
survive a restart, per-owner limits, two servers over one catalogue, destruction, owners."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from pyvo.io import uws as pyvo_uws
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware

from spherex_archive.jobs.engine import SERVER_STOPPED
from tests.jobs.service import (
    Service,
    catalogue_url,
    job_settings,
    make_app,
    phase,
    served,
    uws_service,
    wait_for,
)
from tests.serving import serving

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "sx": "urn:spherex-archive:uws"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def uws(request, tmp_path_factory) -> Iterator[Service]:
    yield from uws_service(request.param, tmp_path_factory)


def document(job_url: str) -> ET.Element:
    return ET.fromstring(requests.get(job_url, timeout=30).content)


def abort(job_url: str) -> None:
    reply = requests.post(job_url + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert reply.status_code == 303


def test_abort_stops_the_work(uws, tmp_path):
    """A job that honours should_stop, one that does not (killed after the grace time), and
    one aborted at once. Their work outlasts the kill's grace time (2 s) with room to spare,
    so a loaded machine cannot let a stubborn job finish before it is killed."""
    work = "6"
    markers = {mode: tmp_path / f"{mode}.done" for mode in ("sleep", "stubborn")}
    urls = {
        mode: uws.create(MODE=mode, SECONDS=work, MARKER=str(marker), PHASE="RUN")
        for mode, marker in markers.items()
    }
    for url in urls.values():
        wait_for(url, {"EXECUTING"})
    started = time.monotonic()
    for url in urls.values():
        abort(url)
        root = document(url)  # aborted before the 303 went out
        assert root.find("uws:phase", NS).text == "ABORTED"
        assert root.find("uws:endTime", NS).text.endswith("Z")
        assert root.find("uws:errorSummary", NS) is None
    # Aborted as it starts: whatever step it is at (queued, being claimed, its process
    # starting), it never runs to its end.
    markers["early"] = tmp_path / "early.done"
    urls["early"] = uws.create(
        MODE="stubborn", SECONDS=work, MARKER=str(markers["early"]), PHASE="RUN"
    )
    abort(urls["early"])
    time.sleep(max(0.0, float(work) + 1 - (time.monotonic() - started)))  # past their end
    assert not any(marker.exists() for marker in markers.values())
    assert all(phase(url) == "ABORTED" for url in urls.values())


def test_an_overdue_job_is_aborted_and_stopped(uws, tmp_path):
    marker = tmp_path / "overdue.done"
    job_url = uws.create(
        MODE="stubborn", SECONDS="4", MARKER=str(marker), EXECUTIONDURATION="1", PHASE="RUN"
    )
    wait_for(job_url, {"EXECUTING"})
    started = time.monotonic()
    assert wait_for(job_url, {"ABORTED", "COMPLETED", "ERROR"}) == "ABORTED"
    assert time.monotonic() - started < 2.5
    reply = requests.get(job_url, timeout=30)
    root = ET.fromstring(reply.content)
    assert root.find("uws:errorSummary", NS) is None  # UWS: overdue jobs are aborted
    reason = root.find("uws:jobInfo/sx:reason", NS).text
    assert reason == "the job ran longer than its execution duration (1 s)"
    assert pyvo_uws.parse_job(BytesIO(reply.content)).phase == "ABORTED"
    time.sleep(4)
    assert not marker.exists()


def test_progress_is_shown_while_executing(uws):
    job_url = uws.create(MODE="sleep", SECONDS="2", PHASE="RUN")
    wait_for(job_url, {"EXECUTING"})
    deadline = time.monotonic() + 10
    while (progress := document(job_url).find("uws:jobInfo/sx:progress", NS)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert progress.text == "sleeping" and 0 < float(progress.get("fraction")) < 1
    assert wait_for(job_url, {"COMPLETED"}) == "COMPLETED"
    assert document(job_url).find("uws:jobInfo", NS) is None


def test_expired_jobs_are_destroyed_with_their_files(uws):
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    job_url = uws.create(MODE="sleep", SECONDS="0", PHASE="RUN", DESTRUCTION=soon)
    wait_for(job_url, {"COMPLETED"})
    workdir = uws.workdir(job_url)
    job_id = job_url.rsplit("/", 1)[1]
    assert (workdir / "result.xml").exists()
    deadline = time.monotonic() + 5
    while uws.engine.store.get(job_id) is not None or workdir.exists():  # nobody asks for it
        assert time.monotonic() < deadline, "the job outlived its destruction time"
        time.sleep(0.1)
    assert requests.get(job_url, timeout=30).status_code == 404
    listed = requests.get(uws.jobs, timeout=30).text
    assert job_id not in listed


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_restart_fails_running_jobs_and_keeps_queued_ones(backend, tmp_path):
    """With one job per owner, the second job waits in QUEUED; the server stops; the running
    job ends in ERROR with the reason, the queued one runs on the next server."""
    marker = tmp_path / "running.done"
    with catalogue_url(backend, tmp_path) as url:
        settings = job_settings(url, tmp_path, job_owner_limit=1)
        with served(settings) as first:
            running = first.create(MODE="sleep", SECONDS="30", MARKER=str(marker), PHASE="RUN")
            wait_for(running, {"EXECUTING"})
            queued = first.create(MODE="sleep", SECONDS="0.1", PHASE="RUN")
            time.sleep(1.5)
            assert phase(queued) == "QUEUED"
            path = urlsplit(running).path
        with served(settings) as second:
            running, queued = second.base + path, second.base + urlsplit(queued).path
            root = document(running)
            assert root.find("uws:phase", NS).text == "ERROR"
            summary = root.find("uws:errorSummary", NS)
            assert summary.find("uws:message", NS).text == SERVER_STOPPED
            assert summary.get("type") == "transient"
            assert wait_for(queued, {"COMPLETED", "ERROR"}) == "COMPLETED"
    assert not marker.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_killed_outright_takes_its_jobs_along(tmp_path):
    """SIGKILL to the server: its job process ends too, and the next server says why the job
    failed."""
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.server_process", url, str(tmp_path), str(port)],
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/TEST/async", timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        reply = requests.post(
            base + "/TEST/async",
            data={"MODE": "sleep", "SECONDS": "60", "PHASE": "RUN"},
            allow_redirects=False,
        )
        job_url = reply.headers["location"]
        wait_for(job_url, {"EXECUTING"})
        progress = tmp_path / "jobs" / job_url.rsplit("/", 1)[1] / ".progress.json"
        while not progress.exists():  # it works
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    time.sleep(1)  # the worker sees its pipe close and kills itself
    written = progress.stat().st_mtime_ns
    time.sleep(0.5)
    assert progress.stat().st_mtime_ns == written  # nobody works on it any more
    with served(job_settings(url, tmp_path)) as second:
        root = document(second.base + urlsplit(job_url).path)
        assert root.find("uws:phase", NS).text == "ERROR"
        assert root.find("uws:errorSummary/uws:message", NS).text == SERVER_STOPPED


def _post_from(address: str, url: str, params: dict[str, str]) -> str:
    """POST from another local address (another client, as the server sees it)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, source_address=(address, 0))
    try:
        conn.request(
            "POST",
            parts.path,
            urlencode(params),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        reply = conn.getresponse()
        assert reply.status == 303
        return reply.getheader("Location")
    finally:
        conn.close()


def test_one_owner_waits_for_its_own_jobs_only(tmp_path):
    with (
        catalogue_url("sqlite", tmp_path) as url,
        served(job_settings(url, tmp_path, job_owner_limit=1)) as svc,
    ):
        first = svc.create(MODE="sleep", SECONDS="1.5", PHASE="RUN")
        wait_for(first, {"EXECUTING"})
        second = svc.create(MODE="sleep", SECONDS="0.1", PHASE="RUN")
        other = _post_from("127.0.0.2", svc.jobs, {"MODE": "sleep", "PHASE": "RUN"})
        assert wait_for(other, {"EXECUTING", "COMPLETED"})  # another client: at once
        assert phase(second) == "QUEUED" and phase(first) == "EXECUTING"
        assert wait_for(first, {"COMPLETED"}) == "COMPLETED"
        assert wait_for(second, {"COMPLETED"}) == "COMPLETED"
        first_end = document(first).find("uws:endTime", NS).text
        assert document(second).find("uws:startTime", NS).text >= first_end


def test_two_servers_over_one_catalogue_share_their_jobs(tmp_path):
    """As uvicorn workers do: a job runs where it was claimed, and the other server aborts it,
    waits on it and deletes it through the database."""
    marker = tmp_path / "shared.done"
    with catalogue_url("sqlite", tmp_path) as url:
        settings = job_settings(url, tmp_path)
        with served(settings) as one, served(settings) as two:
            job_url = one.create(MODE="sleep", SECONDS="3", MARKER=str(marker), PHASE="RUN")
            path = urlsplit(job_url).path
            wait_for(job_url, {"EXECUTING"})
            started = time.monotonic()
            abort(two.base + path)
            assert phase(job_url) == "ABORTED"
            assert wait_for(job_url, {"ABORTED"}) == "ABORTED"

            waited = one.create(MODE="sleep", SECONDS="1", PHASE="RUN")
            wait_for(waited, {"EXECUTING"})
            moment = time.monotonic()
            root = document(two.base + urlsplit(waited).path + "?WAIT=-1")
            assert root.find("uws:phase", NS).text == "COMPLETED"
            assert time.monotonic() - moment < 3  # noticed within a poll

            deleted = one.create(MODE="sleep", SECONDS="30", PHASE="RUN")
            wait_for(deleted, {"EXECUTING"})
            workdir = one.workdir(deleted)
            reply = requests.delete(two.base + urlsplit(deleted).path, allow_redirects=False)
            assert reply.status_code == 303
            deadline = time.monotonic() + 10
            while workdir.exists():  # the running server stops it, then removes its files
                assert time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
            assert not marker.exists()


class HeaderUser(AuthenticationBackend):
    """Whoever the X-User header names (a stand-in for a real login)."""

    async def authenticate(self, conn):
        if name := conn.headers.get("x-user"):
            return AuthCredentials(["authenticated"]), SimpleUser(name)
        return None


def test_jobs_of_authenticated_owners_are_theirs(tmp_path):
    with catalogue_url("sqlite", tmp_path) as url:
        app = make_app(job_settings(url, tmp_path))
        app.add_middleware(AuthenticationMiddleware, backend=HeaderUser())
        with serving(app) as base:
            app.state.settings = app.state.settings.model_copy(update={"base_url": base})
            alice, bob = {"X-User": "alice"}, {"X-User": "bob"}
            reply = requests.post(
                base + "/TEST/async", data={"MODE": "sleep"}, headers=alice, allow_redirects=False
            )
            job_url = reply.headers["location"]
            root = ET.fromstring(requests.get(job_url, headers=alice).content)
            assert root.find("uws:ownerId", NS).text == "alice"
            assert requests.get(job_url + "/owner", headers=alice).text == "alice"
            assert requests.get(job_url, headers=bob).status_code == 403
            assert requests.get(job_url).status_code == 403
            job_id = job_url.rsplit("/", 1)[1]
            assert job_id in requests.get(base + "/TEST/async", headers=alice).text
            assert job_id not in requests.get(base + "/TEST/async", headers=bob).text
            assert job_id not in requests.get(base + "/TEST/async").text
            record = app.state.jobs.store.get(job_id)
            assert record.owner == "alice" and record.client == "alice"


def test_a_catalogue_made_before_jobs_gets_their_tables(tmp_path):
    """An existing catalogue has no job tables: the engine adds them when it starts."""
    from spherex_archive.catalogue import open_catalogue

    url = f"sqlite:///{tmp_path / 'old.db'}"
    catalogue = open_catalogue(url)
    catalogue.create()
    with catalogue.writer() as w:
        w.execute("DROP TABLE archive_job")
        w.execute("DROP TABLE archive_job_runner")
    catalogue.close()
    with served(job_settings(url, tmp_path)) as svc:
        job_url = svc.create(MODE="sleep", SECONDS="0", PHASE="RUN")
        assert wait_for(job_url, {"COMPLETED"}) == "COMPLETED"
