"""``spherex-archive serve`` and ``spherex-archive config``: a manual for --help, one line for
bad settings, and a server that answers where it says it does."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.protocols.client import request
from tests.server.conftest import copy_catalogue


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spherex_archive.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean_env(), **(env or {})},
    )


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SPHEREX_ARCHIVE_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_help_is_a_manual():
    result = run("serve", "--help")
    assert result.returncode == 0
    words = ("--catalogue", "--data", "--workers", "--base-url", "SPHEREX_ARCHIVE_", "Examples")
    for word in words:
        assert word in result.stdout


def test_config_prints_toml_with_sources(tmp_path):
    import tomllib

    settings = tmp_path / "archive.toml"
    settings.write_text('catalogue = "sqlite:///from-file.db"\nauthority = "ivo://example"\n')
    result = run(
        "config", "--config", str(settings), env={"SPHEREX_ARCHIVE_AUTHORITY": "ivo://env"}
    )
    assert result.returncode == 0, result.stderr
    values = tomllib.loads(result.stdout)
    assert values["catalogue"] == "sqlite:///from-file.db"
    assert values["authority"] == "ivo://env"
    assert "s3_endpoint" not in values
    lines = result.stdout.splitlines()
    assert any(line.startswith("catalogue = ") and f"file {settings}" in line for line in lines)
    assert any("environment SPHEREX_ARCHIVE_AUTHORITY" in line for line in lines)
    assert any(line.startswith("data = ") and line.endswith("# default") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--catalogue", "mysql://x"], "unknown catalogue URL"),
        (["--data", "/no/such/folder"], "/no/such/folder"),
        (["--config", "/no/such/file.toml"], "cannot read settings file"),
    ],
)
def test_bad_settings_get_one_line(args, message, tmp_path):
    result = run("serve", "--catalogue", f"sqlite:///{tmp_path}/c.db", "--data", ".", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@contextlib.contextmanager
def serve(*args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "spherex_archive.cli", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {process.stdout.read()}")
            try:
                if request(base + "/health").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not answer /health")
            time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_serve_answers_and_says_where(ingested, small_release, tmp_path):
    catalogue = copy_catalogue(ingested, tmp_path / "catalogue.db")
    with serve("--catalogue", f"sqlite:///{catalogue}", "--data", str(small_release)) as (
        base,
        process,
    ):
        assert b"SPHEREx archive" in request(base + "/").body
        assert request(base + "/ibe/data/spherex/qr2/").status == 200
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"{base}/ibe/data/spherex/" in output
    assert f"{base}/health" in output
    assert "Traceback" not in output
    assert '"GET /ibe/data/spherex/qr2/" 200' in output  # the access log


@pytest.mark.slow
def test_serve_with_workers_shares_settings_and_metrics(ingested, small_release, tmp_path):
    catalogue = copy_catalogue(ingested, tmp_path / "catalogue.db")
    public = "https://archive.example.org"
    args = ("--catalogue", f"sqlite:///{catalogue}", "--data", str(small_release))
    with serve(*args, "--workers", "2", "--base-url", public) as (base, _):
        page = request(base + "/").body.decode()
        assert f"{public}/SIA" in page
        for _ in range(20):
            request(base + "/health")
        text = request(base + "/metrics").body.decode()
    health = [
        line
        for line in text.splitlines()
        if line.startswith('spherex_http_requests_total{endpoint="/health"')
    ]
    # Counted by whichever worker answered, summed over both at every scrape.
    assert sum(float(line.rsplit(" ", 1)[1]) for line in health) >= 20
