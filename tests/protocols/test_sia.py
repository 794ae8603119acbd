"""SIA 2.0 through HTTP, on both catalogues: the real clients (pyvo, astroquery), answers
checked against the files' own WCS, every parameter, the formats, votlint, and bad input."""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from urllib.parse import urlencode

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.io.votable import parse_single_table
from astropy.time import Time
from astropy.wcs import WCS

from spherex_archive.model import tables as model
from spherex_archive.synth.survey import DEEP_FIELDS
from tests.protocols.client import request
from tests.validators import STILTS, votlint, xsdvalidate


@dataclass
class Sia:
    base: str
    backend: str

    @property
    def url(self) -> str:
        return self.base + "/SIA"

    def get(self, **params) -> tuple[int, bytes, dict[str, str]]:
        query = urlencode([(k, v) for k, vs in params.items() for v in _list(vs)])
        reply = request(f"{self.url}?{query}")
        return reply.status, reply.body, reply.headers

    def dids(self, **params) -> set[str]:
        status, body, _ = self.get(RESPONSEFORMAT="csv", **params)
        assert status == 200, body
        return {row["obs_publisher_did"] for row in csv.DictReader(io.StringIO(body.decode()))}


def _list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


@pytest.fixture(scope="module")
def sia(archive_server) -> Sia:
    return Sia(archive_server.base, archive_server.backend)


# --------------------------------------------------------------------------------------------
# The truth: every image's own WCS


@dataclass
class Image:
    did: str
    wcs: WCS
    size: int
    collection: str
    detector: int
    t_min: float


@pytest.fixture(scope="module")
def images(small_release) -> list[Image]:
    found = []
    for path in sorted(small_release.glob("qr2/level2/**/*.fits")):
        with fits.open(path) as hdus:
            header = hdus["IMAGE"].header
            deep = str(header.get("SPS_FLAGS", "")).strip() == "deep"
            collection = "spherex_qr2_deep" if deep else "spherex_qr2"
            obsid = header["OBSID"]
            detector = header["DETECTOR"]
            found.append(
                Image(
                    f"ivo://irsa.ipac/{collection}?{obsid}/D{detector}",
                    WCS(header, relax=True),
                    header["NAXIS1"],
                    collection,
                    detector,
                    header["MJD-BEG"],
                )
            )
    assert found
    return found


def truth(images: list[Image], ra: float, dec: float, margin: float = 1.5):
    """(surely containing, surely not containing): image dids whose pixel coordinates of the
    position lie more than ``margin`` pixels inside / outside the frame. The archive's footprint
    has straight great-circle edges between the corners; the WCS edges curve a little."""
    inside, outside = set(), set()
    for image in images:
        with warnings.catch_warnings():  # positions far off the frame do not converge
            warnings.simplefilter("ignore", RuntimeWarning)
            x, y = image.wcs.all_world2pix([[ra, dec]], 0, quiet=True)[0]
        lo, hi = -0.5, image.size - 0.5
        if lo + margin < x < hi - margin and lo + margin < y < hi - margin:
            inside.add(image.did)
        elif not (lo - margin < x < hi + margin and lo - margin < y < hi + margin):
            outside.add(image.did)
    return inside, outside


def test_collection_names_of_truth_match_the_catalogue(sia, images):
    assert {i.did for i in images} <= sia.dids(MAXREC=1000)


def test_a_point_finds_exactly_the_images_containing_it(sia, images):
    rng = np.random.default_rng(4)
    positions = [DEEP_FIELDS["NEP"], (0.0, 90.0), (0.0, 1.0)]
    for image in rng.choice(images, 6, replace=False):  # near the centres of some images
        ra, dec = image.wcs.all_pix2world([[image.size / 2, image.size / 3]], 0)[0]
        positions.append((float(ra), float(dec)))
    for ra, dec in positions:
        inside, outside = truth(images, ra, dec)
        found = sia.dids(POS=f"CIRCLE {ra} {dec} 0")
        assert inside <= found, (ra, dec)
        assert not found & outside, (ra, dec)
        assert inside or (ra, dec) == (0.0, 90.0) or (ra, dec) == (0.0, 1.0)


def test_every_deep_exposure_covers_its_field_centre(sia, images):
    ra, dec = DEEP_FIELDS["NEP"]
    found = sia.dids(POS=f"CIRCLE {ra} {dec} 0", COLLECTION="spherex_qr2_deep")
    expected = {i.did for i in images if i.collection == "spherex_qr2_deep"}
    inside, _ = truth(images, ra, dec)
    assert found == inside & expected
    exposures = {did.split("?")[1].split("/")[0] for did in found}
    assert len(exposures) == 8  # NEP:8 in the small release


# --------------------------------------------------------------------------------------------
# The real clients


def test_pyvo_sia2_service(sia, images):
    from pyvo.dal import sia2

    service = sia2.SIA2Service(sia.url)
    ra, dec = DEEP_FIELDS["NEP"]
    results = service.search(pos=(ra, dec, 1e-4), collection="spherex_qr2_deep")
    table = results.to_table()
    assert list(table.colnames) == list(model.SPHEREX_OBSCORE_ORDER)
    inside, outside = truth(images, ra, dec, margin=3)
    dids = set(table["obs_publisher_did"])
    assert inside & {i.did for i in images if i.collection == "spherex_qr2_deep"} <= dids
    assert not dids & outside
    record = results[0]
    assert record.getdataurl().startswith(sia.base + "/ibe/data/spherex/qr2/level2/")
    assert record.access_format == "image/fits"
    with fits.open(io.BytesIO(request(record.getdataurl()).body)) as hdus:
        assert [h.name for h in hdus][:3] == ["PRIMARY", "IMAGE", "FLAGS"]


def test_pyvo_band_time_collection_and_maxrec(sia):
    from pyvo.dal import sia2
    from pyvo.dal.exceptions import DALOverflowWarning

    service = sia2.SIA2Service(sia.url)
    band = (2.5e-6, 2.6e-6)
    table = service.search(band=band, collection="spherex_qr2").to_table()
    assert len(table) > 0
    assert all(table["em_min"] <= band[1]) and all(table["em_max"] >= band[0])
    assert set(table["obs_collection"]) == {"spherex_qr2"}
    t0 = float(np.median(table["t_min"]))
    window = (Time(t0 - 0.01, format="mjd"), Time(t0 + 0.01, format="mjd"))
    in_time = service.search(time=window).to_table()
    assert len(in_time) > 0
    assert all(in_time["t_min"] <= t0 + 0.01) and all(in_time["t_max"] >= t0 - 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DALOverflowWarning)
        assert len(service.search(collection="spherex_qr2", maxrec=5)) == 5  # exactly as asked
        metadata = service.search(collection=["spherex_qr2", "spherex_qr2_deep"], maxrec=0)
    assert len(metadata) == 0 and len(metadata.fieldnames) == 51


def test_astroquery_irsa_query_sia(sia):
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astroquery.ipac.irsa import Irsa

    saved = Irsa.sia_url, Irsa._sia
    Irsa.sia_url, Irsa._sia = sia.url, None
    try:
        ra, dec = DEEP_FIELDS["NEP"]
        table = Irsa.query_sia(
            pos=(SkyCoord(ra, dec, unit="deg"), 1 * u.arcsec),
            collection="spherex_qr2_deep",
        )
    finally:
        Irsa.sia_url, Irsa._sia = saved
    assert len(table) == 16  # 8 exposures, two detectors of each over the centre
    cloud = json.loads(table["cloud_access"][0])
    assert cloud["aws"]["key"].startswith("qr2/level2/")
    assert set(table["dataproduct_subtype"]) == {"science"}


# --------------------------------------------------------------------------------------------
# Parameters


def test_repeats_are_ored_and_different_parameters_anded(sia):
    wide = sia.dids(COLLECTION="spherex_qr2")
    deep = sia.dids(COLLECTION="spherex_qr2_deep")
    assert wide and deep and not wide & deep
    assert sia.dids(COLLECTION=["spherex_qr2", "spherex_qr2_deep"]) == wide | deep
    d1 = sia.dids(COLLECTION="spherex_qr2", INSTRUMENT="SPHEREx", CALIB=2, DPTYPE="image")
    assert d1 == wide
    assert not sia.dids(COLLECTION="spherex_qr2", FACILITY="WISE")
    assert sia.dids(COLLECTION="spherex_qr2", FORMAT="image/fits") == wide
    assert not sia.dids(FORMAT="application/x-votable+xml")


def test_names_are_case_insensitive_and_post_works(sia):
    upper = sia.dids(COLLECTION="spherex_qr2_deep")
    status, body, _ = sia.get(collection="spherex_qr2_deep", responseformat="csv")
    assert status == 200
    assert {r["obs_publisher_did"] for r in csv.DictReader(io.StringIO(body.decode()))} == upper
    import urllib.request

    data = urlencode({"COLLECTION": "spherex_qr2_deep", "RESPONSEFORMAT": "csv"}).encode()
    with urllib.request.urlopen(urllib.request.Request(sia.url, data=data)) as reply:
        posted = {
            r["obs_publisher_did"] for r in csv.DictReader(io.StringIO(reply.read().decode()))
        }
    assert posted == upper


def test_id_is_case_insensitive(sia):
    (did, *_) = sorted(sia.dids(COLLECTION="spherex_qr2"))
    assert sia.dids(ID=did) == {did}
    assert sia.dids(ID=did.upper()) == {did}
    assert sia.dids(ID=[did, "ivo://nowhere/x"]) == {did}


def test_ranges_of_numeric_columns(sia):
    everything = sia.dids(COLLECTION=["spherex_qr2", "spherex_qr2_deep"])
    assert sia.dids(EXPTIME="0 +Inf", COLLECTION=["spherex_qr2", "spherex_qr2_deep"]) == everything
    assert (
        sia.dids(EXPTIME="-inf inf", COLLECTION=["spherex_qr2", "spherex_qr2_deep"]) == everything
    )
    assert not sia.dids(EXPTIME="0 1")
    assert sia.dids(SPATRES="3 3.1", COLLECTION="spherex_qr2") == sia.dids(COLLECTION="spherex_qr2")
    assert sia.dids(FOV="0 90", COLLECTION="spherex_qr2") == sia.dids(COLLECTION="spherex_qr2")
    assert not sia.dids(TIMERES="0 10")  # t_resolution is NULL: never matches
    assert not sia.dids(POL="I")  # no polarization states


def test_band_scalar_means_contained(sia):
    _status, body, _ = sia.get(BAND="1e-6", RESPONSEFORMAT="csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert rows
    assert all(float(r["em_min"]) <= 1e-6 <= float(r["em_max"]) for r in rows)
    assert {r["energy_bandpassname"] for r in rows} == {"SPHEREx-D1"}


def test_range_and_polygon_shapes(sia, images):
    # The north celestial pole from a polar cap, and RA = 0 from a box that wraps through it.
    pole = sia.dids(POS="RANGE 0 360 89.95 +Inf")
    inside, _ = truth(images, 0.0, 90.0)
    assert inside <= pole
    assert pole == sia.dids(POS="CIRCLE 0 90 0.05")
    wrap = sia.dids(POS="RANGE 359.9 0.1 0.9 1.1")
    inside, _outside = truth(images, 0.0, 1.0)
    assert inside <= wrap and wrap
    assert wrap <= sia.dids(POS="CIRCLE 0 1 0.2")
    everything = sia.dids(COLLECTION=["spherex_qr2", "spherex_qr2_deep"])
    assert sia.dids(POS="RANGE -Inf +Inf -Inf +Inf") == everything
    square = sia.dids(POS="POLYGON 359.9 0.9 0.1 0.9 0.1 1.1 359.9 1.1")
    assert inside <= square and square == sia.dids(
        POS="POLYGON 359.9 1.1 0.1 1.1 0.1 0.9 359.9 0.9"
    )
    # A non-convex polygon (an L shape) finds what its two rectangles find.
    ell = sia.dids(POS="POLYGON 359.8 0.8 0.2 0.8 0.2 0.9 359.9 0.9 359.9 1.2 359.8 1.2")
    parts = sia.dids(
        POS=[
            "POLYGON 359.8 0.8 0.2 0.8 0.2 0.9 359.8 0.9",
            "POLYGON 359.8 0.9 359.9 0.9 359.9 1.2 359.8 1.2",
        ]
    )
    assert ell == parts


# --------------------------------------------------------------------------------------------
# Answers


def test_votable_columns_and_self_description(sia):
    status, body, headers = sia.get(COLLECTION="spherex_qr2", MAXREC=3)
    assert status == 200 and headers["content-type"].startswith("application/x-votable+xml")
    document = parse_votable(io.BytesIO(body))
    table = document.get_first_table()
    assert [f.name for f in table.fields] == list(model.SPHEREX_OBSCORE_ORDER)
    fields = {f.name: f for f in table.fields}
    assert fields["s_ra"].ucd == "pos.eq.ra" and fields["s_ra"].unit == "deg"
    assert fields["em_min"].unit == "m" and fields["t_min"].unit == "d"
    assert fields["access_url"].utype.lower() == "obscore:access.reference"
    row = table.array[0]
    assert row["upload_row_id"] == 1
    assert row["access_url"].startswith(sia.base + "/ibe/data/spherex/qr2/level2/")
    meta = [r for r in document.resources if r.type == "meta"]
    (this,) = [r for r in meta if r.name == "this"]
    params = {p.name: p for p in this.params}
    assert params["standardID"].value == "ivo://ivoa.net/std/SIA#query-2.0"
    (inputs,) = this.groups
    collections = next(p for p in inputs.entries if p.name == "COLLECTION")
    assert [o[1] for o in collections.values.options] == [
        "spherex_qr2",
        "spherex_qr2_cal",
        "spherex_qr2_deep",
    ]


def test_maxrec_zero_is_the_metadata_and_marked_overflow(sia):
    status, body, _ = sia.get(MAXREC=0)
    assert status == 200
    table = parse_single_table(io.BytesIO(body))
    assert len(table.array) == 0 and len(table.fields) == 51
    assert body.count(b'name="QUERY_STATUS"') == 2 and b'value="OVERFLOW"' in body
    assert b'<OPTION value="spherex_qr2_cal"/>' in body


def test_overflow_is_marked_only_when_rows_were_cut(sia):
    wide = len(sia.dids(COLLECTION="spherex_qr2"))
    _, cut, _ = sia.get(COLLECTION="spherex_qr2", MAXREC=wide - 1)
    _, whole, _ = sia.get(COLLECTION="spherex_qr2", MAXREC=wide)
    assert b'value="OVERFLOW"' in cut and b'value="OVERFLOW"' not in whole
    _, huge, _ = sia.get(COLLECTION="spherex_qr2", MAXREC=10**12)  # capped, not refused
    assert len(parse_single_table(io.BytesIO(huge)).array) == wide


def test_csv_is_properly_quoted_and_html_is_a_page(sia):
    status, body, headers = sia.get(COLLECTION="spherex_qr2", RESPONSEFORMAT="csv", MAXREC=4)
    assert headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 4 and list(rows[0]) == list(model.SPHEREX_OBSCORE_ORDER)
    assert json.loads(rows[0]["cloud_access"])["aws"]["bucket_name"]
    assert rows[0]["s_region"].startswith("POLYGON")
    status, body, headers = sia.get(COLLECTION="spherex_qr2", RESPONSEFORMAT="html", MAXREC=4)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body.count(b"<tr") >= 5


def test_calibration_collection(sia):
    cal = sia.dids(COLLECTION="spherex_qr2_cal")
    assert len(cal) == 74
    # Calibration files have no footprint: positional searches never return them.
    assert not sia.dids(POS="RANGE -Inf +Inf -Inf +Inf", COLLECTION="spherex_qr2_cal")


@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
@pytest.mark.parametrize(
    "params",
    [
        {"COLLECTION": "spherex_qr2", "MAXREC": 20},
        {"MAXREC": 0},
        {"COLLECTION": "nowhere"},
        {"POS": "CIRCLE 10.68 41.27 0.5", "RESPONSEFORMAT": "votable/b2"},
    ],
)
def test_votlint_finds_nothing(sia, params, tmp_path):
    if sia.backend != "sqlite":
        pytest.skip("the documents do not depend on the catalogue")
    _, body, _ = sia.get(**params)
    assert votlint(body, tmp_path) == []


# --------------------------------------------------------------------------------------------
# Bad input: the standard error, never a 500


@pytest.mark.parametrize(
    "params, words",
    [
        ({"POS": "CIRCLE 10 20"}, "CIRCLE takes"),
        ({"POS": "CIRCLE ten 20 1"}, "not a number"),
        ({"POS": "CIRCLE 10 95 1"}, "outside"),
        ({"POS": "SQUARE 1 2 3"}, "unknown shape"),
        ({"POS": "POLYGON 1 2 3 4"}, "at least three"),
        ({"POS": "POLYGON 0 0 2 2 2 0 0 2"}, "crosses itself"),
        ({"POS": "RANGE 0 10 20 10"}, "above dec2"),
        ({"BAND": "2e-6 1e-6"}, "above the upper bound"),
        ({"BAND": "nan"}, "NaN"),
        ({"TIME": "1 2 3"}, "expected"),
        ({"CALIB": "7"}, "calibration level"),
        ({"POL": "Z"}, "POL"),
        ({"COLLECTION": "spherex_qr9"}, "unknown collection 'spherex_qr9'"),
        ({"MAXREC": "-1"}, "MAXREC"),
        ({"MAXREC": ["5", "6"]}, "given 2 times"),
        ({"RESPONSEFORMAT": "application/pdf"}, "not supported"),
    ],
)
def test_bad_input_is_a_usage_fault(sia, params, words):
    if sia.backend != "sqlite" and "POS" not in params:
        pytest.skip("refused before the catalogue is asked")
    status, body, headers = sia.get(**params)
    assert status == 400, body
    assert headers["content-type"].startswith("application/x-votable+xml")
    table_status = parse_votable(io.BytesIO(body)).resources[0].infos[0]
    assert table_status.value == "ERROR"
    assert table_status.content.startswith("UsageFault: ") and words in table_status.content


def test_errors_are_text_when_text_was_asked(sia):
    status, body, headers = sia.get(BAND="2 1", RESPONSEFORMAT="csv")
    assert status == 400 and headers["content-type"].startswith("text/plain")
    assert body.startswith(b"UsageFault: BAND")


def test_unknown_parameters_are_ignored(sia):
    assert sia.dids(COLLECTION="spherex_qr2_deep", DUMMY="ignore-me") == sia.dids(
        COLLECTION="spherex_qr2_deep"
    )


def test_pyvo_raises_the_usage_fault(sia):
    from pyvo.dal import sia2
    from pyvo.dal.exceptions import DALQueryError

    with pytest.raises(DALQueryError, match="unknown collection"):
        sia2.SIA2Service(sia.url).search(collection="spherex_qr9")


# --------------------------------------------------------------------------------------------
# VOSI


def test_capabilities_and_availability(sia):
    import xml.etree.ElementTree as ET

    reply = request(sia.url + "/capabilities")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(reply.body)
    ids = {c.get("standardID"): c for c in root.findall("capability")}
    assert set(ids) == {
        "ivo://ivoa.net/std/SIA#query-2.0",
        "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability",
    }
    (url,) = ids["ivo://ivoa.net/std/SIA#query-2.0"].iter("accessURL")
    assert url.text == sia.url
    reply = request(sia.url + "/availability")
    root = ET.fromstring(reply.body)
    ns = "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}"
    assert root.find(ns + "available").text == "true"
    assert root.find(ns + "upSince").text.endswith("Z")


@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_capabilities_pass_the_schema(sia, tmp_path):
    if sia.backend != "sqlite":
        pytest.skip("the documents do not depend on the catalogue")
    for name in ("capabilities", "availability"):
        body = request(f"{sia.url}/{name}").body
        assert xsdvalidate(body, tmp_path, name) == ""


def test_path_for_unknown_children_is_404(sia):
    assert request(sia.url + "/nothing").status == 404
