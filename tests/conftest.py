"""Shared fixtures: one small synthetic release per test session."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from spherex_archive.synth.release import SMALL_RELEASE, SynthOptions, synthesise


@pytest.fixture(scope="session")
def small_release(tmp_path_factory) -> Path:
    """A bucket root holding a small but complete QR2 release (64-pixel detectors)."""
    root = tmp_path_factory.mktemp("release")
    synthesise(SynthOptions(out=root, **SMALL_RELEASE), progress=False, log=lambda _: None)
    return root


PG_ADMIN = os.environ.get("SPHEREX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {error}")
        pytest.skip(f"no PostgreSQL server: {error}")


@pytest.fixture
def new_catalogue_url(request, tmp_path):
    """A factory of empty catalogues: ``new_catalogue_url('sqlite')`` or ``('postgresql')``;
    PostgreSQL databases are created for the test and dropped after it."""
    created: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'catalogue-{uuid.uuid4().hex[:8]}.db'}"
        name = f"sxtest_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as admin:
            admin.execute(f"CREATE DATABASE {name}")
        created.append(name)
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"

    yield make
    if created:
        with _pg_admin() as admin:
            for name in created:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
