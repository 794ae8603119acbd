"""One ingested catalogue per backend for the query-engine tests (ingested once per module)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest
from spherex_archive.services.query import QueryEngine

RELEASED = dt.datetime(2026, 1, 27, 19, 52, 50, tzinfo=dt.UTC)


def _url(backend: str, tmp_path_factory) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('cat') / 'c.db'}", None
    from tests.conftest import PG_ADMIN, _pg_admin

    name = f"sxtest_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


@pytest.fixture(scope="package")
def catalogues(small_release, tmp_path_factory):
    """{backend: catalogue} for SQLite and PostgreSQL, both holding the small release."""
    made, dropped = {}, []
    for backend in ("sqlite", "postgresql"):
        url, db = _url(backend, tmp_path_factory)
        cat = open_catalogue(url)
        # One release date for both, so that every column of both catalogues can agree.
        ingest(cat, str(small_release), workers=2, progress=False, release_date=RELEASED)
        made[backend] = cat
        if db:
            dropped.append(db)
    yield made
    for cat in made.values():
        cat.close()
    if dropped:
        from tests.conftest import _pg_admin

        with _pg_admin() as admin:
            for name in dropped:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="package")
def engines(catalogues) -> dict[str, QueryEngine]:
    return {b: QueryEngine(c, timeout=30) for b, c in catalogues.items()}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param
