"""A small synthetic release ingested into SQLite once per module, and the archive's app
(``create_app``) served by a real uvicorn in a thread."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest
from tests.serving import serving as run_server

PUBLIC_URL = "https://archive.example.org/spherex"
"""A base URL unlike the bind address: whatever the server hands out must use it."""


@pytest.fixture(scope="session")
def ingested(small_release, tmp_path_factory) -> Path:
    """The small release ingested into a SQLite catalogue file (do not modify: copy it)."""
    path = tmp_path_factory.mktemp("catalogue") / "catalogue.db"
    catalogue = open_catalogue(f"sqlite:///{path}")
    ingest(catalogue, str(small_release), progress=False, log=lambda _: None)
    catalogue.close()
    return path


def copy_catalogue(source: Path, target: Path) -> Path:
    """A consistent copy of a SQLite catalogue (WAL mode: the file alone may lack the latest
    transactions), which tests may modify or damage."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def settings_for(catalogue: Path, data: Path, **extra) -> Settings:
    return Settings(catalogue=f"sqlite:///{catalogue}", data=str(data), **extra)


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """uvicorn on a free port of 127.0.0.1 in a thread, lifespan on; yields the base URL."""
    with run_server(app, server_header=False, access_log=False) as url:
        yield url
