"""SODA 1.0 through HTTP, on both catalogues: sync cutouts against the parent files (CIRCLE,
POLYGON, POS RANGE, BAND against the files' own spectral WCS), 204, every bad input's status
and text, an async job's one FITS file and its table of contents, ABORT, the capabilities
against their schema, and pyvo's SodaQuery."""

from __future__ import annotations

import io
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
import requests
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.wcs import WCS

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest
from spherex_archive.server.app import create_app
from spherex_archive.services.cutout import Window, open_image, shape_window
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.shapes import parse_pos
from spherex_archive.store import LocalStore
from tests.jobs.service import wait_for
from tests.protocols.client import Reply, request
from tests.serving import serving
from tests.spectral_images import dataset_files, spectral_wcs, wavelengths
from tests.validators import STILTS, votlint, xsdvalidate

PLANES = ("IMAGE", "FLAGS", "VARIANCE", "ZODI")
PARTS = (*PLANES, "PSF", "WCS-WAVE")
CALIBRATION = "ivo://irsa.ipac/spherex_qr2_cal?dark_D2_spx_cal-drk-v4-2025-161"
DONE = {"COMPLETED", "ERROR", "ABORTED"}


@dataclass
class Soda:
    base: str
    backend: str

    @property
    def url(self) -> str:
        return self.base + "/soda"

    def get(self, *pairs: tuple[str, str], **params: str) -> Reply:
        query = urlencode([*pairs, *params.items()])
        return request(f"{self.url}/sync?{query}")

    def submit(self, *pairs: tuple[str, str]) -> str:
        """A job created and run at once; its URL."""
        reply = requests.post(
            self.url + "/async", data=[*pairs, ("PHASE", "RUN")], allow_redirects=False
        )
        assert reply.status_code == 303, reply.text
        return reply.headers["Location"]


@pytest.fixture(scope="module")
def soda(archive_server) -> Soda:
    return Soda(archive_server.base, archive_server.backend)


@pytest.fixture(scope="module")
def images(small_release) -> dict[str, Path]:
    """Dataset id -> file of the wide survey's spectral images."""
    return dataset_files(small_release, deep=False)


@pytest.fixture(scope="module")
def store(small_release) -> LocalStore:
    return LocalStore(small_release)


def engine_image(store: LocalStore, path: Path, release: Path):
    return open_image(store, store.stat(path.relative_to(release).as_posix()))


def cutout_of(reply: Reply, parent: Path) -> Window:
    """The window a sync answer holds, from its headers (spec §3: x0 = 1 - CRPIX1A), after
    checking that every plane is the parent's slice and the copies are whole."""
    assert reply.status == 200, reply.body[:300]
    assert reply.headers["content-type"] == "application/fits"
    assert int(reply.headers["content-length"]) == len(reply.body)
    stem = parent.name.removesuffix(".fits")
    assert reply.headers["content-disposition"] == f'attachment; filename="{stem}_cutout.fits"'
    with fits.open(io.BytesIO(reply.body)) as hdul, fits.open(parent) as original:
        assert [h.name for h in hdul] == ["PRIMARY", *PARTS]
        header = hdul["IMAGE"].header
        x0, y0 = 1 - int(header["CRPIX1A"]), 1 - int(header["CRPIX2A"])
        ny, nx = hdul["IMAGE"].data.shape
        window = Window(x0, y0, x0 + nx, y0 + ny)
        for plane in PLANES:
            want = original[plane].data[window.y0 : window.y1, window.x0 : window.x1]
            assert hdul[plane].data.tobytes() == want.tobytes(), plane
        assert np.array_equal(hdul["PSF"].data, original["PSF"].data)
        assert hdul["WCS-WAVE"].data.tobytes() == original["WCS-WAVE"].data.tobytes()
    return window


# --------------------------------------------------------------------------------------------
# Sync


def test_circle_polygon_and_range(soda, images, store, small_release):
    did, path = next(iter(images.items()))
    with fits.open(path) as hdul:
        wcs = WCS(hdul["IMAGE"].header)
    image = engine_image(store, path, small_release)
    scale = image.pixel_scale[0]
    ra, dec = wcs.all_pix2world([30.0], [20.0], 0)
    circle = f"{ra[0]} {dec[0]} {6 * scale}"
    window = cutout_of(soda.get(ID=did, CIRCLE=circle), path)
    assert window == shape_window(image, parse_pos(f"CIRCLE {circle}"))
    assert window.x0 <= 30 < window.x1 and window.y0 <= 20 < window.y1
    assert abs(window.nx - 13) <= 1 and abs(window.ny - 13) <= 1
    assert cutout_of(soda.get(ID=did, POS=f"CIRCLE {circle}"), path) == window

    px, py = np.array([10.0, 40.0, 25.0]), np.array([12.0, 15.0, 44.0])
    pra, pdec = wcs.all_pix2world(px, py, 0)
    polygon = " ".join(f"{a} {b}" for a, b in zip(pra, pdec, strict=True))
    assert cutout_of(soda.get(ID=did, POLYGON=polygon), path) == Window(10, 12, 41, 45)

    box = f"{pra.min()} {pra.max()} {pdec.min()} {pdec.max()}"
    window = cutout_of(soda.get(ID=did, POS=f"RANGE {box}"), path)
    assert window == shape_window(image, parse_pos(f"RANGE {box}"))
    assert window.x0 <= 10 and window.x1 > 40 and window.y0 <= 12 and window.y1 > 44

    height, width = image.shape
    whole = cutout_of(soda.get(ID=did, POS="RANGE -inf +inf -90 90"), path)
    assert whole == Window(0, 0, width, height) == cutout_of(soda.get(ID=did), path)


def test_band_alone_keeps_the_rows_that_see_it(soda, images):
    for did, path in list(images.items())[1:12:5]:
        with fits.open(path) as hdul:
            wl = wavelengths(hdul)
        low, high = (float(v) for v in np.percentile(wl, [30, 45]))
        window = cutout_of(soda.get(ID=did, BAND=f"{low * 1e-6!r} {high * 1e-6!r}"), path)
        assert (window.x0, window.nx) == (0, wl.shape[1]) and 0 < window.ny < wl.shape[0]
        tolerance = 1e-6  # um: the engine's table lookup against astropy's
        seen = ((wl >= low - tolerance) & (wl <= high + tolerance)).any(axis=1)
        clear = ((wl >= low + tolerance) & (wl <= high - tolerance)).any(axis=1)
        kept = np.zeros(len(wl), bool)
        kept[window.y0 : window.y1] = True
        assert np.all(seen[kept]) and not np.any(clear[~kept])
        # An open end, with a region: the rows of the region that see some of it.
        band = f"-inf {high * 1e-6!r}"
        below = cutout_of(soda.get(ID=did, BAND=band, POS="RANGE 0 360 -90 90"), path)
        kept = np.zeros(len(wl), bool)
        kept[below.y0 : below.y1] = True
        assert np.all((wl <= high + tolerance).any(axis=1)[kept])
        assert not np.any((wl <= high - tolerance).any(axis=1)[~kept])


def test_no_overlap_is_204(soda, images):
    did, path = next(iter(images.items()))
    with fits.open(path) as hdul:
        header = hdul["IMAGE"].header
        ra, dec = WCS(header).all_pix2world([30.0], [30.0], 0)
        wl = wavelengths(hdul)
    other = "8e-07 9e-07" if wl.min() > 1.5 else "4.5e-06 4.6e-06"  # another detector's
    for params in (
        {"CIRCLE": f"{(ra[0] + 180) % 360} {-dec[0]} 0.5"},
        {"BAND": other},
        {"TIME": f"{header['MJD-END'] + 1} {header['MJD-END'] + 2}"},
        {"POL": "I"},
    ):
        reply = soda.get(ID=did, **params)
        assert (reply.status, reply.body) == (204, b""), params
    reply = soda.get(ID=did, TIME=f"{header['MJD-BEG'] - 1} {header['MJD-END'] + 1}")
    assert reply.status == 200


@pytest.mark.parametrize(
    ("pairs", "status", "text"),
    [
        ([("CIRCLE", "10 20 0")], 400, "UsageError: CIRCLE: the radius must be above 0"),
        ([("CIRCLE", "10 20 -0.1")], 400, "UsageError: CIRCLE: the radius must be above 0"),
        ([("CIRCLE", "10 20 x")], 400, "UsageError: CIRCLE: 'x' is not a number"),
        ([("CIRCLE", "10 20")], 400, "UsageError: CIRCLE takes ra dec radius"),
        ([("POLYGON", "10 20 11 20")], 400, "UsageError: POLYGON takes three or more"),
        ([("POS", "ELLIPSE 1 2 3 4")], 400, "UsageError: POS: unknown shape 'ELLIPSE'"),
        ([("POS", "RANGE 1 2 5 4")], 400, "UsageError: POS: RANGE latitudes 5 > 4"),
        ([("BAND", "500 600")], 400, "UsageError: BAND 500 600 is outside the wavelengths"),
        ([("BAND", "2e-6 1e-6")], 400, "UsageError: BAND: the lower bound 2e-06 is above"),
        ([("TIME", "2 1")], 400, "UsageError: TIME: the lower bound 2 is above"),
        ([("POL", "XYZ")], 400, "UsageError: POL: 'XYZ' is not one of"),
        ([("BAND", "1e-6 2e-6"), ("BAND", "3e-6 4e-6")], 400, "MultiValuedParamNotSupported: BAND"),
        ([("CIRCLE", "1 2 3"), ("CIRCLE", "1 2 4")], 400, "MultiValuedParamNotSupported: 2 "),
        ([("CIRCLE", "1 2 3"), ("POS", "RANGE 1 2 3 4")], 400, "MultiValuedParamNotSupported"),
        ([("ID", "other")], 400, "MultiValuedParamNotSupported: ID was given 2 times"),
    ],
)
def test_bad_input(soda, images, pairs, status, text):
    reply = soda.get(("ID", next(iter(images))), *pairs)
    assert reply.status == status
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.body.decode().startswith(text), reply.body
    assert b"Traceback" not in reply.body


def test_ids_that_cannot_be_cut(soda, images):
    reply = soda.get(ID="ivo://irsa.ipac/spherex_qr2?2099W01_1A_0001_1/D1")
    assert reply.status == 404  # a resource that is not here (or not yet released)
    assert reply.body.decode().startswith("UsageError: no released dataset has the ID")
    assert soda.get(ID=next(iter(images)).lower()).status == 404  # ids are exact
    reply = soda.get(ID=CALIBRATION, CIRCLE="10 20 1")
    assert reply.status == 400 and b"UsageError: " in reply.body and b"calibration" in reply.body
    required = b"UsageError: ID is required: the dataset id (obs_publisher_did) of an image\n"
    for params in ({}, {"ID": ""}, {"CIRCLE": "10 20 1"}):
        assert (soda.get(**params).status, soda.get(**params).body) == (400, required)


def test_post_and_names_in_any_case(soda, images):
    did, path = next(iter(images.items()))
    with fits.open(path) as hdul:
        ra, dec = WCS(hdul["IMAGE"].header).all_pix2world([20.0], [25.0], 0)
    circle = f"{ra[0]} {dec[0]} 0.01"
    got = soda.get(id=did, Circle=circle)
    body = urlencode({"iD": did, "circle": circle}).encode()
    posted = request(
        soda.url + "/sync",
        "POST",
        {"Content-Type": "application/x-www-form-urlencoded"},
        body,
    )
    assert posted.status == got.status == 200 and posted.body == got.body
    cutout_of(posted, path)


def test_a_failure_of_the_archive_is_an_error_without_a_trace(small_release, tmp_path):
    """A catalogued file missing from the store: 500, SODA's ``Error:``, and no trace."""
    delivery = next(small_release.glob("qr2/level2/*/*/"))
    root = tmp_path / "release"
    for path in delivery.rglob("*"):
        target = root / path.relative_to(small_release)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)  # the files themselves, for free
    url = f"sqlite:///{tmp_path / 'c.db'}"
    catalogue = open_catalogue(url)
    ingest(
        catalogue,
        str(root / delivery.relative_to(small_release)),
        progress=False,
        log=lambda _: None,
    )
    catalogue.close()
    lost = next(root.glob("qr2/level2/*/*/*/level2_*.fits"))
    with fits.open(lost) as hdus:
        header = hdus["IMAGE"].header
    engine = QueryEngine(open_catalogue(url))
    query = f"SELECT obs_publisher_did FROM spherex.obscore WHERE obs_id = '{header['OBSID']}'"
    did = next(d for (d,) in engine.run(query).rows if d.endswith(f"/D{header['DETECTOR']}"))
    engine.catalogue.close()
    lost.unlink()
    app = create_app(Settings(catalogue=url, data=str(root)))
    with serving(app, lifespan="off") as base:
        reply = request(f"{base}/soda/sync?{urlencode({'ID': did})}")
    assert reply.status == 500
    assert reply.body.decode().startswith(f"Error: the file of {did} cannot be read")
    assert b"Traceback" not in reply.body and str(root).encode() not in reply.body


def test_pyvo_soda_query(soda, images, store, small_release):
    from pyvo.dal.adhoc import SodaQuery

    did, path = list(images.items())[3]
    image = engine_image(store, path, small_release)
    ra, dec = image.world([32.0], [32.0])
    query = SodaQuery(soda.url + "/sync", circle=(ra[0], dec[0], 0.01))
    query["ID"] = did
    with fits.open(io.BytesIO(query.execute_stream().read())) as hdul:
        x0, y0 = 1 - int(hdul["IMAGE"].header["CRPIX1A"]), 1 - int(hdul["IMAGE"].header["CRPIX2A"])
        ny, nx = hdul["IMAGE"].data.shape
    window = shape_window(image, parse_pos(f"CIRCLE {ra[0]} {dec[0]} 0.01"))
    assert Window(x0, y0, x0 + nx, y0 + ny) == window
    low, high = image.wavelength_range()
    middle = (low + high) / 2 * 1e-6
    band = SodaQuery(soda.url + "/sync", band=(middle - 1e-8, middle + 1e-8))
    band["ID"] = did
    assert [float(x) for x in band["BAND"].split()] == pytest.approx([middle - 1e-8, middle + 1e-8])
    with fits.open(io.BytesIO(band.execute_stream().read())) as hdul:
        kept = hdul["IMAGE"].data.shape[0]
        assert 0 < kept < image.shape[0] and hdul["IMAGE"].data.shape[1] == image.shape[1]


# --------------------------------------------------------------------------------------------
# Async


def test_a_job_cuts_every_id_with_every_region(soda, images, store, small_release, tmp_path):
    dids = list(images)[:4]
    first = engine_image(store, images[dids[0]], small_release)
    ra, dec = first.world([10.0, 40.0, 25.0, 20.0], [12.0, 15.0, 44.0, 30.0])
    regions = [
        ("CIRCLE", f"{ra[3]} {dec[3]} {5 * first.pixel_scale[0]}"),
        ("POLYGON", " ".join(f"{a} {b}" for a, b in zip(ra[:3], dec[:3], strict=True))),
        ("POS", "RANGE 0 360 -90 90"),
    ]
    asked = [*dids[:2], "ivo://nowhere", *dids[2:]]
    job = soda.submit(*(("ID", d) for d in asked), *regions, ("BAND", "-inf +inf"))
    assert wait_for(job, DONE, timeout=120) == "COMPLETED"
    document = ET.fromstring(requests.get(job, timeout=30).content)
    ns = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
    results = {
        r.get("id"): r.get("{http://www.w3.org/1999/xlink}href")
        for r in document.iterfind("uws:results/uws:result", ns)
    }
    assert set(results) == {"cutouts", "toc"}
    cutouts = requests.get(results["cutouts"], timeout=60)
    assert cutouts.headers["content-type"] == "application/fits"
    toc_reply = requests.get(results["toc"], timeout=30)
    assert toc_reply.headers["content-type"].startswith("application/x-votable+xml")
    assert votlint(toc_reply.content, tmp_path) == []
    toc = parse_single_table(io.BytesIO(toc_reply.content)).to_table()

    order = ["POS", "CIRCLE", "POLYGON"]  # POS, then CIRCLE, then POLYGON
    labels = [
        v if name == "POS" else f"{name} {v}"
        for name, v in sorted(regions, key=lambda r: order.index(r[0]))
    ]
    assert list(toc["ID"]) == [d for d in asked for _ in labels]
    assert list(toc["region"]) == labels * len(asked)
    with fits.open(io.BytesIO(cutouts.content)) as hdul:
        rows = hdul["TOC"].data
        assert len(rows) == len(toc)
        made = [r for r in toc if not np.ma.is_masked(r["n"])]
        assert [int(r["n"]) for r in made] == list(range(1, len(made) + 1))
        assert len(made) >= len(dids) + 2
        assert [h.name for h in hdul] == ["PRIMARY", "TOC"] + [
            f"{part}{r['n']}" for r in made for part in PARTS
        ]
        for fits_row, row in zip(rows, toc, strict=True):
            for name in ("ID", "file", "region", "hdus"):
                assert fits_row[name] == ("" if np.ma.is_masked(row[name]) else row[name])
            if np.ma.is_masked(row["n"]):
                assert row["reason"] and fits_row["n"] == -(2**31)
                if row["ID"] == "ivo://nowhere":
                    assert row["reason"] == "no released dataset has this ID"
                continue
            n = int(row["n"])
            assert row["hdus"] == " ".join(f"{p}{n}" for p in PARTS)
            window = Window(row["x0"], row["y0"], row["x0"] + row["nx"], row["y0"] + row["ny"])
            image = engine_image(store, small_release / row["file"], small_release)
            label = row["region"]
            shape = parse_pos(label) if label != "RANGE 0 360 -90 90" else None
            height, width = image.shape
            assert window == (
                Window(0, 0, width, height) if shape is None else shape_window(image, shape)
            )
            with fits.open(small_release / row["file"]) as parent:
                for plane in PLANES:
                    want = parent[plane].data[window.y0 : window.y1, window.x0 : window.x1]
                    assert hdul[f"{plane}{n}"].data.tobytes() == want.tobytes()
                assert np.array_equal(hdul[f"PSF{n}"].data, parent["PSF"].data)
                got = spectral_wcs(hdul, f"IMAGE{n}").pixel_to_world(0, 1)[0]
                want = spectral_wcs(parent).pixel_to_world(window.x0, window.y0 + 1)[0]
                assert abs(got.to_value("um") - want.to_value("um")) < 1e-9
    requests.delete(job, timeout=30)


def test_a_bad_job_ends_in_error(soda):
    job = soda.submit(("ID", "x"), ("CIRCLE", "10 20 0"))
    assert wait_for(job, DONE, timeout=60) == "ERROR"
    error = requests.get(job + "/error", timeout=30)
    assert error.status_code == 200 and error.headers["content-type"].startswith("text/plain")
    assert error.text.startswith("UsageError: CIRCLE: the radius must be above 0")
    document = requests.get(job, timeout=30).text
    assert "UsageError: CIRCLE: the radius" in document
    job = soda.submit(("CIRCLE", "10 20 1"))
    assert wait_for(job, DONE, timeout=60) == "ERROR"
    assert requests.get(job + "/error", timeout=30).text.startswith("UsageError: ID is required")


def test_abort_stops_a_job(soda, images):
    # Every image whole, 25 times over: about 2,400 cutouts and 12 GB if it ran to the end.
    regions = [("POS", f"RANGE 0 360 -90 {90 - k / 100}") for k in range(25)]
    job = soda.submit(*(("ID", d) for d in images), *regions)
    assert wait_for(job, {"EXECUTING", *DONE}, timeout=60) == "EXECUTING"
    time.sleep(0.5)
    reply = requests.post(job + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert reply.status_code == 303
    assert wait_for(job, DONE, timeout=30) == "ABORTED"
    document = requests.get(job, timeout=30).text
    assert "<uws:result " not in document
    requests.delete(job, timeout=30)


# --------------------------------------------------------------------------------------------
# VOSI


def test_capabilities_and_availability(soda):
    reply = request(soda.url + "/capabilities")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(reply.body)
    urls = {c.get("standardID"): c.find("interface/accessURL").text for c in root}
    assert urls == {
        "ivo://ivoa.net/std/SODA#sync-1.0": soda.url + "/sync",
        "ivo://ivoa.net/std/SODA#async-1.0": soda.url + "/async",
        "ivo://ivoa.net/std/VOSI#capabilities": soda.url + "/capabilities",
        "ivo://ivoa.net/std/VOSI#availability": soda.url + "/availability",
    }
    root = ET.fromstring(request(soda.url + "/availability").body)
    assert root.find("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available").text == "true"


@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_capabilities_pass_the_schema(soda, tmp_path):
    if soda.backend != "sqlite":
        pytest.skip("the documents do not depend on the catalogue")
    for name in ("capabilities", "availability"):
        body = request(f"{soda.url}/{name}").body
        assert xsdvalidate(body, tmp_path, name) == ""
