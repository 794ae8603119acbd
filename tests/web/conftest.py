"""The Data Explorer in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright for Python, no browser download) against the whole archive over the small release.

Every page the tests open refuses requests to any host but the archive's and records them;
the ``page`` fixture fails the test that made one. Screenshots go to
``test-artifacts/explorer/`` (CI keeps the folder)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest
from spherex_archive.server.app import create_app, publish_settings
from tests.serving import serving

CHROMIUM = os.environ.get("SPHEREX_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "explorer"
APP = "/applications/spherex/"


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Playwright for Python is required in CI (pip install -e '.[dev]')")
        pytest.skip("Playwright for Python is not installed")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI ({CHROMIUM})")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    return sync_playwright


@dataclass
class Explorer:
    base: str
    """``http://127.0.0.1:PORT``: the archive, also its public base URL."""
    release: Path

    @property
    def url(self) -> str:
        return self.base + APP


@pytest.fixture(scope="package")
def explorer_server(small_release, tmp_path_factory) -> Iterator[Explorer]:
    """The whole archive over the small release (SQLite), with the network resolver off."""
    url = f"sqlite:///{tmp_path_factory.mktemp('explorer') / 'catalogue.db'}"
    catalogue = open_catalogue(url)
    ingest(catalogue, str(small_release), workers=2, progress=False, log=lambda _: None)
    catalogue.close()
    jobs = tmp_path_factory.mktemp("explorer-jobs")
    settings = Settings(
        catalogue=url, data=str(small_release), jobs_dir=str(jobs), resolver_network=False
    )
    app = create_app(settings)
    with serving(app, lifespan="on", access_log=False) as base:
        app.state.settings.base_url = base
        publish_settings(app.state.catalogue, app.state.settings)
        yield Explorer(base, small_release)


@pytest.fixture(scope="package")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            # WebGL 2 (Aladin Lite) through SwiftShader on machines without a GPU
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        yield browser
        browser.close()


@dataclass
class Guard:
    """Requests the page tried to send anywhere but the archive (refused)."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def route(self, route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort("blockedbyclient")


@pytest.fixture
def page(browser, explorer_server):
    """A fresh 1280x800 page that may talk to the archive only; the test fails if the page
    asked for anything else or threw an uncaught error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    guard = Guard(explorer_server.base)
    context.route("**/*", guard.route)
    page = context.new_page()
    page.on("pageerror", lambda error: guard.errors.append(str(error)))
    page.set_default_timeout(20_000)
    page.guard = guard
    yield page
    context.close()
    assert not guard.foreign, f"requests to other hosts than the archive: {guard.foreign}"
    assert not guard.errors, f"uncaught errors in the page: {guard.errors}"


def shot(page, step: str) -> Path:
    """Screenshot of a step: test-artifacts/explorer/<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
