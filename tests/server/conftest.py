"""A small synthetic release ingested into SQLite once per module, and the archive's app
(``create_app``) served by a real uvicorn in a thread."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest

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
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", server_header=False, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
