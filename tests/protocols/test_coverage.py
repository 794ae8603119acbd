"""/coverage/ over HTTP: the collection list (HTML and JSON), MOC 2.0 files read back by mocpy
and astropy, the search in every format, and bad requests answered 400/404, never 500."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from fastapi import FastAPI
from mocpy import MOC

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest
from spherex_archive.protocols import coverage
from spherex_archive.services.coverage import CoverageService, Region
from tests.protocols.client import Reply, request
from tests.serving import serving
from tests.validators import STILTS, votlint

PUBLIC_URL = "https://archive.example.org/spherex/"
COLLECTIONS = ["spherex_qr2", "spherex_qr2_cal", "spherex_qr2_deep"]


@pytest.fixture(scope="module")
def catalogue(small_release, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('coverage') / 'catalogue.db'}"
    cat = open_catalogue(url)
    ingest(cat, str(small_release), workers=2, progress=False, log=lambda _: None)
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def base(catalogue) -> Iterator[str]:
    app = FastAPI()
    app.state.catalogue = catalogue
    app.state.settings = Settings(catalogue=catalogue.url, base_url=PUBLIC_URL)
    app.include_router(coverage.router)
    with serving(app, lifespan="off") as url:
        yield url


def get(base: str, path: str, **params) -> Reply:
    query = f"?{urlencode(params, quote_via=quote)}" if params else ""
    return request(f"{base}/coverage/{path}{query}")


def test_the_list_links_every_collection(base):
    page = get(base, "")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    text = page.body.decode()
    for name in COLLECTIONS:
        for suffix in ("fits", "json", "txt"):
            assert f'href="{name}.{suffix}"' in text
    assert 'action="search"' in text
    for reply in (
        get(base, "", format="json"),
        request(f"{base}/coverage/", headers={"Accept": "application/json"}),
    ):
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        listed = json.loads(reply.body)
        assert [c["collection"] for c in listed["collections"]] == COLLECTIONS
        wide = listed["collections"][0]
        assert wide["planes"] == 36 and 0 < wide["sky_fraction"] < 1e-4
        assert wide["moc"]["fits"] == f"{PUBLIC_URL}coverage/spherex_qr2.fits"
        assert wide["updated_at"].endswith("Z")
        assert listed["search"] == f"{PUBLIC_URL}coverage/search"


def test_moc_fits_is_moc_2_in_nuniq(base, catalogue, tmp_path):
    expected = CoverageService(catalogue).moc("spherex_qr2")
    reply = get(base, "spherex_qr2.fits")
    assert reply.status == 200 and reply.headers["content-type"] == "application/fits"
    assert 'filename="spherex_qr2.fits"' in reply.headers["content-disposition"]
    with fits.open(io.BytesIO(reply.body)) as hdus:
        header, data = hdus[1].header, hdus[1].data
        assert header["MOCVERS"] == "2.0" and header["MOCDIM"] == "SPACE"
        assert header["ORDERING"] == "NUNIQ" and header["COORDSYS"] == "C"
        assert header["MOCORD_S"] == 11 and header["TFORM1"] == "J"
        assert "MOCORDER" not in header and "PIXTYPE" not in header
        uniq = list(data["UNIQ"])
    assert uniq == sorted(uniq) and len(uniq) == len(set(uniq))
    path = tmp_path / "moc.fits"
    path.write_bytes(reply.body)
    assert MOC.from_fits(path) == expected
    empty = tmp_path / "empty.fits"
    empty.write_bytes(get(base, "spherex_qr2_cal.fits").body)
    assert MOC.from_fits(empty).empty()


def test_moc_json_and_ascii_round_trip(base, catalogue):
    for name in COLLECTIONS:
        expected = CoverageService(catalogue).moc(name)
        reply = get(base, f"{name}.json")
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        document = json.loads(reply.body)
        assert all(k.isdigit() and isinstance(v, list) for k, v in document.items())
        assert MOC.from_json(document) == expected
        text = get(base, f"{name}.txt")
        assert text.headers["content-type"].startswith("text/plain")
        assert MOC.from_string(text.body.decode(), format="ascii") == expected
    assert json.loads(get(base, "spherex_qr2_cal.json").body) == {"11": []}


def test_search_answers_a_votable_by_default(base, catalogue, tmp_path):
    reply = get(base, "search", POS="CIRCLE 270.0 66.56 0")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/x-votable+xml"
    table = parse_single_table(io.BytesIO(reply.body)).to_table()
    assert table.colnames == ["collection", "covered", "images", "fraction"]
    assert list(table["collection"]) == ["spherex_qr2_deep"]
    assert bool(table["covered"][0]) and table["fraction"][0] == 1.0
    expected = CoverageService(catalogue).covering(Region.point(270.0, 66.56))[0].images
    assert table["images"][0] == expected >= len(catalogue.planes_containing(270.0, 66.56))
    if STILTS:
        assert votlint(reply.body, tmp_path) == []


def test_search_formats_and_parameter_forms(base):
    csv = get(base, "search", ra="0", dec="90", RESPONSEFORMAT="csv")
    assert csv.headers["content-type"].startswith("text/csv")
    header, row, *rest = csv.body.decode().splitlines()
    assert header == "collection,covered,images,fraction" and rest == []
    assert row.startswith("spherex_qr2,true,")
    as_json = json.loads(get(base, "search", POS="CIRCLE 0 90 0", responseformat="json").body)
    assert as_json["region"] == "CIRCLE 0 90 0"
    (answer,) = as_json["collections"]
    assert answer["collection"] == "spherex_qr2" and answer["covered"] is True
    assert row == f"spherex_qr2,true,{answer['images']},1.0"
    circle = json.loads(
        get(base, "search", RA="270", DEC="66.56", RADIUS="3", RESPONSEFORMAT="json").body
    )
    assert [c["collection"] for c in circle["collections"]] == ["spherex_qr2_deep"]
    assert not circle["collections"][0]["covered"] and circle["collections"][0]["fraction"] < 1
    polygon = get(
        base,
        "search",
        POS="POLYGON 359.9 0.9 0.1 0.9 0.1 1.1 359.9 1.1",
        COLLECTION="spherex_qr2",
        RESPONSEFORMAT="application/json",
    )
    assert [c["collection"] for c in json.loads(polygon.body)["collections"]] == ["spherex_qr2"]
    sky = json.loads(
        get(base, "search", POS="RANGE -Inf +Inf -Inf +Inf", RESPONSEFORMAT="json").body
    )
    assert [c["collection"] for c in sky["collections"]] == ["spherex_qr2", "spherex_qr2_deep"]
    nothing = get(base, "search", POS="CIRCLE 180 -30 1", RESPONSEFORMAT="csv")
    assert nothing.status == 200 and nothing.body.decode().splitlines()[1:] == []
    html = get(base, "search", POS="CIRCLE 0 1 0", RESPONSEFORMAT="html")
    assert html.status == 200 and b"spherex_qr2" in html.body
    posted = request(
        f"{base}/coverage/search",
        "POST",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status == 400  # no region given: a usage error, not a 405


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "give POS"),
        ({"POS": "CIRCLE 1 2"}, "CIRCLE takes"),
        ({"POS": "CIRCLE 10 95 1"}, "Dec 95"),
        ({"POS": "CIRCLE 400 10 1"}, "RA 400"),
        ({"POS": "CIRCLE 10 10 -1"}, "radius"),
        ({"POS": "CIRCLE a b c"}, "not a number"),
        ({"POS": "CIRCLE nan 1 1"}, "NaN"),
        ({"POS": "BOX 1 2 3 4"}, "unknown shape"),
        ({"POS": "POLYGON 1 2 3 4"}, "at least three"),
        ({"POS": "RANGE 0 10 20 10"}, "no area"),
        ({"POS": "RANGE 0 360 90 90"}, "no area"),
        ({"POS": ""}, "empty"),
        ({"ra": "10"}, "give POS"),
        ({"ra": "10", "dec": "-91"}, "Dec -91"),
        ({"ra": "10", "dec": "inf"}, "Dec inf"),
        ({"POS": "CIRCLE 1 2 3", "ra": "1", "dec": "2"}, "not both"),
        ({"POS": "CIRCLE 1 2 3", "COLLECTION": "nope"}, "no collection named 'nope'"),
        ({"POS": "CIRCLE 1 2 3", "RESPONSEFORMAT": "fits/x"}, "RESPONSEFORMAT"),
    ],
)
def test_bad_searches_are_usage_faults(base, params, says):
    reply = get(base, "search", **params)
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/x-votable+xml"
    assert b'value="ERROR">UsageFault: ' in reply.body and says.encode() in reply.body
    if "RESPONSEFORMAT" not in params:
        as_json = get(base, "search", **params, RESPONSEFORMAT="json")
        assert as_json.status == 400
        assert json.loads(as_json.body)["error"].startswith("UsageFault: ")
        text = get(base, "search", **params, RESPONSEFORMAT="csv")
        assert text.status == 400 and text.headers["content-type"].startswith("text/plain")


def test_repeated_pos_is_refused(base):
    reply = request(f"{base}/coverage/search?POS=CIRCLE%201%202%203&POS=CIRCLE%201%202%203")
    assert reply.status == 400 and b"UsageFault" in reply.body


@pytest.mark.parametrize(
    "path", ["nope.fits", "nope.json", "spherex_qr2.xml", "spherex_qr2", ".fits", "a/b.fits"]
)
def test_unknown_files_are_not_found(base, path):
    assert get(base, path).status == 404
