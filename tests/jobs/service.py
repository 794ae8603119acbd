"""Test helpers for jobs: the archive's app (``create_app``) with UWS job lists of test kinds,
whose real task (``tests/jobs/tasks.py``) runs in real worker processes, served by a real
uvicorn over a SQLite or a PostgreSQL catalogue; and the ``uws`` fixture (one per backend)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from fastapi import FastAPI

from spherex_archive import jobs
from spherex_archive.config import Settings
from spherex_archive.formats import votable
from spherex_archive.protocols.uws import uws_router
from spherex_archive.server.app import create_app
from tests.serving import serving

PREFIX = "/TEST/async"


def votable_error(message: str) -> tuple[bytes, str]:
    return votable.error_document(message), votable.MEDIA_TYPE


KIND = jobs.JobKind(
    name="test",
    task="tests.jobs.tasks:run",
    error_document=votable_error,
    duration=60,
    max_duration=120,
)
OTHER_KIND = jobs.JobKind(name="other", task="tests.jobs.tasks:run")


def make_app(settings: Settings) -> FastAPI:
    """``create_app`` with the test kinds' job lists, and the job engine in its lifespan."""
    app = create_app(settings)
    app.include_router(uws_router(PREFIX, KIND))
    app.include_router(uws_router("/OTHER/async", OTHER_KIND))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async with inner(app), jobs.lifespan(app):
            yield

    app.router.lifespan_context = lifespan
    return app


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A new PostgreSQL database (dropped afterwards); skips when there is no server."""
    from tests.conftest import PG_ADMIN, _pg_admin

    name = f"sxtest_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with _pg_admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def catalogue_url(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'catalogue.db'}"
    else:
        with pg_database() as url:
            yield url


def job_settings(url: str, folder: Path, **extra) -> Settings:
    values = {"data": str(folder), "jobs_dir": str(folder / "jobs"), "job_workers": 3}
    return Settings(catalogue=url, **{**values, **extra})


@dataclass
class Service:
    """A served app: ``base`` is where it listens, and also its public base URL."""

    base: str
    app: FastAPI
    settings: Settings

    @property
    def jobs(self) -> str:
        return self.base + PREFIX

    @property
    def engine(self) -> jobs.JobEngine:
        return self.app.state.jobs

    def create(self, **params: str) -> str:
        """A new job of the test kind; its URL."""
        reply = requests.post(self.jobs, data=params, allow_redirects=False, timeout=30)
        assert reply.status_code == 303, reply.text
        return reply.headers["location"]

    def workdir(self, job_url: str) -> Path:
        return self.engine.workdir(job_url.rsplit("/", 1)[1])


@contextlib.contextmanager
def served(settings: Settings) -> Iterator[Service]:
    """The app over ``settings``, its public base URL set to where it listens."""
    app = make_app(settings)
    with serving(app) as base:
        app.state.settings = settings.model_copy(update={"base_url": base})
        yield Service(base, app, app.state.settings)


def uws_service(backend: str, tmp_path_factory) -> Iterator[Service]:
    """A served app over a new catalogue of ``backend``: what a module's ``uws`` fixture
    yields for the tests that do not restart it."""
    folder = tmp_path_factory.mktemp(f"uws-{backend}")
    with catalogue_url(backend, folder) as url, served(job_settings(url, folder)) as svc:
        yield svc


def phase(job_url: str) -> str:
    reply = requests.get(job_url + "/phase", timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.text


def wait_for(job_url: str, phases: set[str], timeout: float = 30) -> str:
    """Poll the phase until it is one of ``phases``; the phase."""
    deadline = time.monotonic() + timeout
    while (current := phase(job_url)) not in phases:
        assert time.monotonic() < deadline, f"{job_url} stays {current}"
        time.sleep(0.05)
    return current
