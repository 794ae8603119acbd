"""``spherex-archive serve`` in its own process, for the benchmarks that go through HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def archive(catalogue: str, data: Path, jobs: Path) -> Iterator[str]:
    """The archive over ``catalogue`` and ``data`` on a free port, its jobs under ``jobs``;
    yields its base URL once /health answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "spherex_archive.cli", "serve", "--catalogue", catalogue),
            *("--data", str(data), "--port", str(port), "--base-url", base),
        ],
        env={**os.environ, "SPHEREX_ARCHIVE_JOBS_DIR": str(jobs)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(base + "/health", timeout=5).ok:
                    break
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(10)


UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


def finished_job(service: str, data) -> tuple[str, ET.Element]:
    """POST ``data`` (with PHASE=RUN) to a UWS service and block until the job ends; its URL
    and final job document."""
    reply = requests.post(service, data=data, allow_redirects=False, timeout=60)
    job = reply.headers["Location"]
    phase = ""
    while phase not in ("COMPLETED", "ERROR", "ABORTED"):
        doc = ET.fromstring(requests.get(job, params={"WAIT": 30}, timeout=60).content)
        phase = doc.findtext(f"{UWS}phase")
    return job, doc
