"""The committed Data Explorer bundle (``src/spherex_archive/web/explorer``) matches its sources
(``web/explorer``) and reaches no host but the archive.

The build (``npm run build``) writes ``build-info.json`` with a SHA-256 of every source that
decides the bundle's bytes; ``source_hash`` below computes it the same way as
``web/explorer/plugins/offline.js`` (sorted POSIX paths; path, NUL, bytes, NUL)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from spherex_archive.products.detectors import DETECTORS

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "web" / "explorer"
BUNDLE = REPO / "src" / "spherex_archive" / "web" / "explorer"
HASHED = ("package.json", "package-lock.json", "index.html", "vite.config.js", "src", "plugins")

URL = re.compile(r"\bhttps?://([A-Za-z0-9.\-]+)")
ALLOWED_HOSTS = {
    "www.w3.org": "XML namespaces (SVG, XLink, XML Schema) in generated markup",
    "www.ivoa.net": "the UWS XML namespace the job parser matches",
    "localhost": "a development default inside Aladin Lite; never a remote host",
}
"""Hosts allowed to appear in the bundle's text, and why. Aladin Lite's own remote services
(CDS HiPS, Sesame, SIMBAD, its startup logger...) are rewritten at build time into the
reserved ``.invalid`` top-level domain (RFC 6761: it never resolves), so they are allowed too
and can never be reached."""


def source_hash(root: Path) -> str:
    files: list[str] = []
    for entry in HASHED:
        path = root / entry
        if path.is_dir():
            files += [p.relative_to(root).as_posix() for p in path.rglob("*") if p.is_file()]
        else:
            files.append(entry)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update((root / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def info() -> dict:
    path = BUNDLE / "build-info.json"
    assert path.is_file(), "no built bundle: cd web/explorer && npm ci && npm run build"
    return json.loads(path.read_text())


def test_bundle_is_built_from_the_current_sources(info):
    if not SOURCE.is_dir():
        pytest.skip("no web/explorer sources (an installed package)")
    assert info["source_sha256"] == source_hash(SOURCE), (
        "web/explorer changed since the bundle was built: "
        "cd web/explorer && npm ci && npm run build, and commit src/spherex_archive/web/explorer"
    )


def test_bundle_has_the_application_and_its_offline_sky():
    assert (BUNDLE / "index.html").is_file()
    html = (BUNDLE / "index.html").read_text()
    scripts = re.findall(r'src="/applications/spherex/assets/([^"]+\.js)"', html)
    assert scripts, "index.html loads no script from /applications/spherex/assets/"
    for name in scripts:
        assert (BUNDLE / "assets" / name).is_file()
    assert re.search(r"-[A-Za-z0-9_-]{8}\.js$", scripts[0]), "assets carry content hashes"
    hips = BUNDLE / "assets" / "hips" / "dark"
    assert "hips_order" in (hips / "properties").read_text()
    assert len(list((hips / "Norder0" / "Dir0").glob("Npix*.png"))) == 12


def test_bundle_reaches_no_remote_host():
    found: dict[str, set[str]] = {}
    for path in BUNDLE.rglob("*"):
        if path.suffix not in (".js", ".css", ".html"):
            continue
        for host in URL.findall(path.read_text(errors="replace")):
            if host in ALLOWED_HOSTS or host.endswith(".invalid"):
                continue
            found.setdefault(host, set()).add(path.name)
    assert not found, f"remote hosts referenced by the bundle: {found}"


def test_detector_bands_in_the_form_match_the_products():
    text = (SOURCE / "src" / "constants.js").read_text()
    bands = re.findall(r"number: (\d), min: ([\d.]+), max: ([\d.]+)", text)
    assert [(int(n), float(lo), float(hi)) for n, lo, hi in bands] == [
        (d.number, d.band_min_um, d.band_max_um) for d in DETECTORS.values()
    ]
