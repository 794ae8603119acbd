"""The Data Explorer over HTTP: the whole archive on both catalogues (``archive_server``) for the
JSON endpoints, checked against SIA's answers and the files themselves; and an app over a small
bundle written here for the application's files (types, caching, HEAD, traversal, not built)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from PIL import Image

from spherex_archive.config import Settings
from spherex_archive.server.app import create_app
from spherex_archive.synth.survey import DEEP_FIELDS
from tests.protocols.client import Reply, raw_request, request
from tests.services.test_explorer import read_binary
from tests.serving import serving

API = "/applications/spherex/api"
NEP = DEEP_FIELDS["NEP"]


def get(base: str, path: str, params=None, headers=None) -> Reply:
    query = f"?{urlencode(params or {}, doseq=True)}" if params else ""
    return request(f"{base}{path}{query}", headers=headers)


def body(reply: Reply) -> dict:
    assert reply.headers["content-type"] == "application/json", reply.body[:300]
    return json.loads(reply.body)


def refused(reply: Reply, status: int, *words: str) -> str:
    assert reply.status == status, reply.body[:300]
    message = body(reply)["error"]
    for word in words:
        assert word in message, message
    assert "Traceback" not in message
    return message


def sia_ids(base: str, params: dict) -> set[str]:
    reply = get(base, "/SIA", params)
    assert reply.status == 200
    table = parse_single_table(io.BytesIO(reply.body)).to_table()
    return {str(v) for v in table["obs_publisher_did"]}


# --------------------------------------------------------------------------------------------
# Resolver


def test_resolve_built_in_names_and_coordinates(archive_server):
    base = archive_server.base
    reply = get(base, f"{API}/resolve", {"name": "m 31"})
    assert reply.status == 200
    assert body(reply) == {"name": "M31", "ra": 10.6847, "dec": 41.269, "resolver": "built-in"}
    found = body(get(base, f"{API}/resolve", {"name": "00:42:44.3 +41:16:09"}))
    assert found["resolver"] == "coordinates"
    assert (found["ra"], found["dec"]) == pytest.approx((10.684583, 41.269167), abs=1e-6)
    assert body(get(base, f"{API}/resolve", {"name": "NEP"}))["ra"] == NEP[0]
    refused(get(base, f"{API}/resolve", {"name": "10 95"}), 400, "Dec 95")
    refused(get(base, f"{API}/resolve"), 400, "name")


def test_names_for_autocomplete(archive_server):
    reply = get(archive_server.base, f"{API}/names")
    names = {n["name"]: n for n in body(reply)}
    assert {"M31", "NEP", "SEP", "COSMOS", "Lockman Hole", "LMC", "Vega"} <= set(names)
    assert "Andromeda" in names["M31"]["aliases"]


# --------------------------------------------------------------------------------------------
# Search


def test_search_agrees_with_sia(archive_server):
    base = archive_server.base
    for sr in (0, 0.5):
        found = body(
            get(base, f"{API}/search", {"ra": NEP[0], "dec": NEP[1], "sr": sr, "limit": 1000})
        )
        expected = sia_ids(base, {"POS": f"CIRCLE {NEP[0]} {NEP[1]} {sr}"})
        assert expected and {link["id"] for link in found["links"]} == expected
        assert found["total"] == len(expected)
    # query=contains ignores the radius; repeated targets are ORed; units on sr.
    contains = body(
        get(base, f"{API}/search", {"ra": NEP[0], "dec": NEP[1], "sr": 5, "query": "contains"})
    )
    assert contains["total"] == len(sia_ids(base, {"POS": f"CIRCLE {NEP[0]} {NEP[1]} 0"}))
    targets = [f"{NEP[0]},{NEP[1]}", "10.6847,41.269"]
    both = body(get(base, f"{API}/search", {"target": targets, "limit": 1000}))
    expected = sia_ids(base, {"POS": [f"CIRCLE {NEP[0]} {NEP[1]} 0", "CIRCLE 10.6847 41.269 0"]})
    assert {link["id"] for link in both["links"]} == expected
    minutes = body(
        get(base, f"{API}/search", {"ra": NEP[0], "dec": NEP[1], "sr": "30m", "limit": 1000})
    )
    assert minutes["total"] == len(sia_ids(base, {"POS": f"CIRCLE {NEP[0]} {NEP[1]} 0.5"}))


def test_detector_wavelength_time_and_collection_agree_with_sia(archive_server):
    base = archive_server.base
    params = {
        "detector": ["3", "D4"],
        "wl_min": 2.0,
        "wl_max": 3.0,
        "time_min": 60000,
        "collection": "spherex_qr2_deep",
        "limit": 1000,
    }
    found = body(get(base, f"{API}/search", params))
    expected = sia_ids(
        base,
        {
            "BAND": "2e-06 3e-06",
            "TIME": "60000 +Inf",
            "COLLECTION": "spherex_qr2_deep",
            "MAXREC": 100000,
        },
    )
    expected_by_detector = {i for i in expected if i.endswith(("/D3", "/D4"))}
    assert expected_by_detector and {link["id"] for link in found["links"]} == expected_by_detector


def test_post_gives_what_get_gives(archive_server):
    base = archive_server.base
    params = {"ra": NEP[0], "dec": NEP[1], "sr": 0.3, "sort": "obs_id", "order": "desc", "limit": 7}
    got = body(get(base, f"{API}/search", params))
    posted = request(
        f"{base}{API}/search",
        "POST",
        {"Content-Type": "application/x-www-form-urlencoded"},
        urlencode(params).encode(),
    )
    again = body(posted)
    for answer in (got, again):
        answer.pop("elapsed_ms")
    assert got == again
    ids = [row[2] for row in got["rows"]]
    assert ids == sorted(ids, reverse=True)


def test_paging_sorting_and_filters(archive_server):
    base = archive_server.base
    common = {"collection": "spherex_qr2_deep", "columns": "obs_publisher_did,t_min", "limit": 10}
    pages, offset = [], 0
    while True:
        page = body(get(base, f"{API}/search", {**common, "offset": offset}))
        assert (page["offset"], page["limit"]) == (offset, 10)
        pages += page["rows"]
        offset += 10
        if offset >= page["total"]:
            break
    assert len({r[0] for r in pages}) == len(pages) == page["total"]
    assert [r[1] for r in pages] == sorted(r[1] for r in pages)
    filtered = body(
        get(
            base,
            f"{API}/search",
            {**common, "limit": 1000, "filter": ["obs_id:like:W29", f"t_min:ge:{pages[5][1]}"]},
        )
    )
    assert {r[0] for r in filtered["rows"]} == {
        r[0] for r in pages if "W29" in r[0] and r[1] >= pages[5][1]
    }
    assert filtered["query"]["adql"].count("ILIKE") == 1


@pytest.mark.parametrize(
    "params, words",
    [
        ({}, "give a target"),
        ({"ra": 10}, "ra, dec"),
        ({"ra": "ten", "dec": 4}, "ra: 'ten' is not a number"),
        ({"ra": 10, "dec": 4, "columns": "obs_id,nope"}, "columns: there is no column 'nope'"),
        ({"ra": 10, "dec": 4, "sort": "nope"}, "sort: there is no column 'nope'"),
        ({"ra": 10, "dec": 4, "order": "up"}, "order"),
        ({"ra": 10, "dec": 4, "limit": 1001}, "limit"),
        ({"ra": 10, "dec": 4, "limit": "lots"}, "limit: 'lots'"),
        ({"ra": 10, "dec": 4, "sr": "far"}, "sr: 'far'"),
        ({"ra": 10, "dec": 4, "query": "near"}, "query"),
        ({"collection": "spherex_qr7"}, ("spherex_qr7", "spherex_qr2_deep")),
        ({"detector": "D9"}, "detector: 9"),
        ({"filter": "obs_id"}, "column:op:value"),
        ({"filter": "t_min:gt:soon"}, "t_min is a number"),
        ({"target": "10;4"}, "target"),
        ({"ra": 10, "dec": 4, "prefetch": "rows"}, "prefetch: 'rows'"),
    ],
)
def test_bad_searches_say_which_parameter(archive_server, params, words):
    refused(
        get(archive_server.base, f"{API}/search", params),
        400,
        *([words] if isinstance(words, str) else words),
    )


def test_unknown_api_paths_are_json_404(archive_server):
    refused(get(archive_server.base, f"{API}/nothing"), 404, "no Explorer endpoint")


def test_footprints(archive_server):
    base = archive_server.base
    params = {"ra": NEP[0], "dec": NEP[1], "sr": 0.5}
    found = body(get(base, f"{API}/footprints", params))
    table = body(
        get(base, f"{API}/search", {**params, "columns": "obs_publisher_did", "limit": 1000})
    )
    assert found["ids"] == [r[0] for r in table["rows"]]
    assert not found["truncated"] and found["total"] == len(found["ids"])
    assert all(len(p) == 8 for p in found["polygons"])
    assert set(found["detectors"]) == {1, 2, 3, 4, 5, 6}
    cut = body(get(base, f"{API}/footprints", {**params, "limit": 3}))
    assert cut["truncated"] and cut["total"] == found["total"] and cut["ids"] == found["ids"][:3]
    refused(get(base, f"{API}/footprints", {**params, "limit": 100001}), 400, "limit")
    refused(get(base, f"{API}/footprints", {**params, "format": "xml"}), 400, "format: 'xml'")


def test_binary_footprints(archive_server):
    base = archive_server.base
    params = {"ra": NEP[0], "dec": NEP[1], "sr": 0.5}
    found = body(get(base, f"{API}/footprints", params))
    reply = get(base, f"{API}/footprints", {**params, "format": "binary", "limit": 5})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/vnd.spherex.footprints"
    block = read_binary(reply.body)
    assert block["ids"] == found["ids"][:5] and block["detectors"] == found["detectors"][:5]
    assert block["truncated"] and block["total"] == found["total"]
    for a, b in zip(block["polygons"], found["polygons"], strict=False):
        assert a == pytest.approx(b, abs=1e-4)


def test_search_pages_carry_their_footprints(archive_server):
    base = archive_server.base
    params = {"ra": NEP[0], "dec": NEP[1], "sr": 0.2, "detector": 4}
    page = body(
        get(base, f"{API}/search", {**params, "columns": "obs_id", "prefetch": "footprints"})
    )
    every = body(get(base, f"{API}/footprints", params))
    assert page["rows"] and page["total"] == every["total"] == len(every["ids"])
    polygon = dict(zip(every["ids"], every["polygons"], strict=True))
    assert [polygon[link["id"]] for link in page["links"]] == page["footprints"]["polygons"]
    assert set(page["footprints"]["detectors"]) == {4}


# --------------------------------------------------------------------------------------------
# Image viewer and scripts


@pytest.fixture(scope="module")
def image(archive_server, small_release) -> tuple[str, Path]:
    """A spectral image at the NEP: its dataset id and its file."""
    found = body(
        get(
            archive_server.base,
            f"{API}/search",
            {"ra": NEP[0], "dec": NEP[1], "detector": 3, "limit": 1},
        )
    )
    link = found["links"][0]
    return link["id"], small_release / link["file"].split("/ibe/data/spherex/", 1)[1]


def test_image_info_plane_and_pixel(archive_server, image):
    base = archive_server.base
    did, path = image
    info = body(get(base, f"{API}/image/info", {"id": did}))
    with fits.open(path) as hdus:
        data = hdus["IMAGE"].data
        assert (info["width"], info["height"]) == (data.shape[1], data.shape[0])
        assert info["hdus"] == ["IMAGE", "FLAGS", "VARIANCE", "ZODI", "PSF"]
        assert info["detector"] == 3 and info["bunit"] == hdus["IMAGE"].header["BUNIT"]
        assert {b["name"] for b in info["flag_bits"]} == {
            k[3:] for k in hdus["FLAGS"].header if k.startswith("MP_")
        }
        pixel = body(get(base, f"{API}/image/pixel", {"id": did, "x": 5, "y": 9}))
        assert pixel["image"] == pytest.approx(float(data[8, 4]))
        assert pixel["flags"] == int(hdus["FLAGS"].data[8, 4])
    reply = get(base, f"{API}/image/plane.png", {"id": did, "hdu": "ZODI", "stretch": "zscale"})
    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    assert "max-age" in reply.headers["cache-control"]
    assert Image.open(io.BytesIO(reply.body)).size == (info["width"], info["height"])
    again = get(
        base,
        f"{API}/image/plane.png",
        {"id": did, "hdu": "ZODI", "stretch": "zscale"},
        {"If-None-Match": reply.headers["etag"]},
    )
    assert again.status == 304 and not again.body
    flags = get(base, f"{API}/image/plane.png", {"id": did, "hdu": "FLAGS"})
    assert Image.open(io.BytesIO(flags.body)).mode == "RGBA"
    refused(get(base, f"{API}/image/pixel", {"id": did, "x": 0, "y": 9}), 400, "outside the image")
    refused(get(base, f"{API}/image/plane.png", {"id": did, "hdu": "WCS-WAVE"}), 400, "hdu")
    refused(get(base, f"{API}/image/plane.png", {"id": did, "stretch": "sqrt"}), 400, "stretch")
    refused(
        get(base, f"{API}/image/info", {"id": "ivo://irsa.ipac/nothing"}),
        404,
        "ivo://irsa.ipac/nothing",
    )


def test_calibration_files_are_not_viewed(archive_server):
    base = archive_server.base
    found = body(get(base, f"{API}/search", {"collection": "spherex_qr2_cal", "limit": 1}))
    refused(
        get(base, f"{API}/image/info", {"id": found["links"][0]["id"]}), 404, "not a spectral image"
    )


def test_download_script(archive_server, image):
    base = archive_server.base
    did, path = image
    reply = get(base, f"{API}/script", {"kind": "curl", "id": did})
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/x-shellscript")
    assert reply.headers["content-disposition"] == 'attachment; filename="spherex-download.sh"'
    text = reply.body.decode()
    assert text.startswith("#!/bin/sh\n") and f"-o {path.name} " in text and " -C - " in text
    cutouts = get(
        base, f"{API}/script", {"kind": "wget", "id": did, "size": 30, "ra": NEP[0], "dec": NEP[1]}
    )
    assert "size=30arcsec" in cutouts.body.decode()
    refused(
        get(base, f"{API}/script", {"id": [did, "ivo://irsa.ipac/none"]}),
        404,
        "ivo://irsa.ipac/none",
    )
    refused(get(base, f"{API}/script", {"id": did, "size": 30}), 400, "ra, dec")
    refused(get(base, f"{API}/script", {"id": did, "kind": "ftp"}), 400, "kind")


# --------------------------------------------------------------------------------------------
# The application's files


INDEX = (
    b'<!doctype html><html><head><script type="module" '
    b'src="/applications/spherex/assets/app-1a2b.js"></script></head><body></body></html>'
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    (root / "assets").mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "app-1a2b.js").write_text("console.log('explorer');\n")
    (root / "assets" / "app-1a2b.css").write_text("body{margin:0}\n")
    (root / "assets" / "core-9f.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "assets" / "font.woff2").write_bytes(b"wOF2")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / ".env").write_text("SECRET=1\n")
    (root.parent / "outside.txt").write_text("not part of the bundle\n")
    return root


@pytest.fixture(scope="module")
def app_base(bundle, small_release, tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("explorer-app")
    settings = Settings(
        catalogue=f"sqlite:///{folder / 'catalogue.db'}",
        data=str(small_release),
        explorer_dir=str(bundle),
        resolver_network=False,
    )
    app = create_app(settings)
    with serving(app, lifespan="off") as base:
        yield base


def test_the_page_and_its_deep_links(app_base):
    for path in (
        "/applications/spherex",
        "/applications/spherex/",
        "/applications/spherex/?api=spectral-images&ra=270&dec=66.56&sr=30m&execute=true",
    ):
        reply = request(app_base + path)
        assert reply.status == 200 and reply.body == INDEX
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        assert reply.headers["cache-control"] == "no-cache"
    head = request(app_base + "/applications/spherex/", "HEAD")
    assert (
        head.status == 200 and not head.body and head.headers["content-length"] == str(len(INDEX))
    )


@pytest.mark.parametrize(
    "path, content_type, caching",
    [
        ("assets/app-1a2b.js", "application/javascript", "immutable"),
        ("assets/app-1a2b.css", "text/css; charset=utf-8", "immutable"),
        ("assets/core-9f.wasm", "application/wasm", "immutable"),
        ("assets/font.woff2", "font/woff2", "immutable"),
        ("favicon.svg", "image/svg+xml", "max-age=3600"),
    ],
)
def test_bundle_files(app_base, bundle, path, content_type, caching):
    reply = request(f"{app_base}/applications/spherex/{path}")
    assert reply.status == 200 and reply.body == (bundle / path).read_bytes()
    assert reply.headers["content-type"] == content_type
    assert caching in reply.headers["cache-control"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    again = request(
        f"{app_base}/applications/spherex/{path}", headers={"If-None-Match": reply.headers["etag"]}
    )
    assert again.status == 304
    head = request(f"{app_base}/applications/spherex/{path}", "HEAD")
    assert head.status == 200 and not head.body


@pytest.mark.parametrize(
    "target",
    [
        b"/applications/spherex/../outside.txt",
        b"/applications/spherex/assets/../../outside.txt",
        b"/applications/spherex/%2e%2e/outside.txt",
        b"/applications/spherex/assets/%2e%2e%2f%2e%2e%2foutside.txt",
        b"/applications/spherex/.env",
        b"/applications/spherex/assets/missing.js",
        b"/applications/spherex/assets/",
    ],
)
def test_nothing_outside_the_bundle_is_served(app_base, target):
    reply = raw_request(app_base, target)
    assert reply.status in (400, 404), (target, reply.status)
    assert b"not part of the bundle" not in reply.body and b"SECRET" not in reply.body


def test_a_server_without_the_bundle_says_how_to_build_it(small_release, tmp_path):
    settings = Settings(
        catalogue=f"sqlite:///{tmp_path / 'catalogue.db'}",
        data=str(small_release),
        explorer_dir=str(tmp_path / "not-built"),
    )
    with serving(create_app(settings), lifespan="off") as base:
        reply = request(base + "/applications/spherex/")
        assert reply.status == 503 and reply.headers["content-type"].startswith("text/html")
        assert (
            b"npm --prefix web/explorer ci &amp;&amp; npm --prefix web/explorer run build"
            in reply.body
        )


def test_network_resolvers_switched_off(app_base):
    refused(
        get(app_base, f"{API}/resolve", {"name": "Barnard's Star"}),
        404,
        "built-in list",
        "switched off",
    )


def test_the_landing_page_links_the_explorer(app_base):
    page = request(app_base + "/").body.decode()
    assert '<a href="applications/spherex">Data Explorer</a>' in page
