"""The DataLink service on both catalogues: the links of real spectral images and calibration
files checked against the files themselves, unknown and embargoed ids, many ids, the cap."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from spherex_archive.catalogue import open_catalogue, spatial
from spherex_archive.config import Settings
from spherex_archive.ingest.run import ingest
from spherex_archive.products.detectors import DETECTORS
from spherex_archive.services.datalink import (
    COLUMNS,
    SODA_STANDARD_ID,
    DataLinkService,
    covering_circle,
    polygon_vertices,
)

BASE = "https://archive.example.org/sx"
CAL_CARD = re.compile(r"^\[CALIB\]\s+(\S+)\s+(\S+)\s*$")


def _settings(**kw) -> Settings:
    return Settings(base_url=BASE, **kw)


@pytest.fixture(scope="module")
def services(catalogues) -> dict[str, DataLinkService]:
    return {b: DataLinkService(c, _settings()) for b, c in catalogues.items()}


@pytest.fixture(scope="module")
def image(small_release) -> Path:
    """A wide-survey spectral image of detector 3."""
    return sorted(small_release.glob("qr2/level2/*/*/3/level2_*.fits"))[0]


def _did(path: Path) -> str:
    with fits.open(path) as hdus:
        header = hdus["IMAGE"].header
        return f"ivo://irsa.ipac/spherex_qr2?{header['OBSID']}/D{header['DETECTOR']}"


def _key(path: Path, release: Path) -> str:
    return path.relative_to(release).as_posix()


def test_links_of_a_spectral_image(services, backend, image, small_release):
    links = services[backend]
    did = _did(image)
    key = _key(image, small_release)
    answer = links.links([did])
    assert not answer.overflow
    rows = [link.row() for link in answer.links]
    assert all(len(r) == len(COLUMNS) for r in rows)
    assert {r[0] for r in rows} == {did}
    assert all(sum(x is not None for x in r[1:4]) == 1 for r in rows)  # url, service or error
    semantics = [link.semantics for link in answer.links]
    assert semantics[:4] == ["#this", "#cutout", "#cutout", "#preview"]
    assert semantics[-1] == "#auxiliary"

    this = answer.links[0]
    assert this.access_url == f"{BASE}/ibe/data/spherex/{key}"
    assert this.content_type == "application/fits"
    assert this.content_length == image.stat().st_size
    assert this.content_qualifier == "#image"

    # Every calibration file the image cites and the release holds, and nothing else.
    with fits.open(image) as hdus:
        cited = {m[1] for line in hdus["IMAGE"].header["HISTORY"] if (m := CAL_CARD.match(line))}
    calibrations = [link for link in answer.links if link.semantics == "#calibration"]
    held = {link.description.split()[1] for link in calibrations}
    assert held <= cited and len(held) == len(calibrations) >= 8
    for link in calibrations:
        path = small_release / link.access_url.removeprefix(f"{BASE}/ibe/data/spherex/")
        assert path.is_file() and link.content_length == path.stat().st_size
        assert path.name in link.description

    auxiliary = answer.links[-1]
    assert auxiliary.access_url == f"https://nasa-irsa-spherex.s3.us-east-1.amazonaws.com/{key}"
    assert f"s3://nasa-irsa-spherex/{key}" in auxiliary.description

    preview = answer.links[3]
    assert preview.content_type == "image/png"
    assert preview.access_url.startswith(f"{BASE}/datalink/preview/spherex?ID=ivo%3A%2F%2F")


def test_cutout_descriptors_bound_the_image(services, backend, image, small_release):
    answer = services[backend].links([_did(image)])
    soda, ibe = answer.descriptors
    cutouts = [link for link in answer.links if link.semantics == "#cutout"]
    assert [c.service_def for c in cutouts] == [soda.name, ibe.name]
    assert cutouts[1].local_semantics == "ibe-cutout"

    assert soda.standard_id == SODA_STANDARD_ID and soda.access_url == f"{BASE}/soda/sync"
    inputs = {p.column.name: p for p in soda.inputs}
    assert list(inputs) == ["ID", "CIRCLE", "POLYGON", "POS", "BAND"]
    assert inputs["ID"].value == _did(image)
    with fits.open(image) as hdus:
        header = hdus["IMAGE"].header
        detector = DETECTORS[header["DETECTOR"]]
        ny, nx = hdus["IMAGE"].data.shape
    assert (inputs["BAND"].minimum, inputs["BAND"].maximum) == (
        detector.em_min_m,
        detector.em_max_m,
    )
    # The footprint's corners are the image's outer pixel corners, inside the covering circle.
    polygon = np.reshape(inputs["POLYGON"].maximum, (-1, 2))
    assert len(polygon) == 4
    corners = spatial.unit_vectors(
        *WCS(header).all_pix2world(
            [-0.5, nx - 0.5, nx - 0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5], 0
        )
    )
    vertices = spatial.unit_vectors(polygon[:, 0], polygon[:, 1])
    apart = np.degrees(np.arccos(np.clip(corners @ vertices.T, -1.0, 1.0)))
    assert apart.min(axis=1).max() < 2 / 3600
    ra, dec, radius = inputs["CIRCLE"].maximum
    centre = spatial.unit_vectors([ra], [dec])[0]
    assert np.degrees(np.arccos(vertices @ centre)).max() <= radius < 0.2

    assert ibe.standard_id is None and ibe.access_url == f"{BASE}/ibe/cutout"
    fixed = {p.column.name: p.value for p in ibe.inputs}
    assert fixed["path"] == _key(image, small_release)
    assert fixed["center"] is None and fixed["size"] is None
    assert soda.description != ibe.description


def test_both_catalogues_give_the_same_links(services, image):
    ids = [_did(image), "ivo://irsa.ipac/spherex_qr2?nothing/D1"]
    sqlite, postgres = (services[b].links(ids) for b in ("sqlite", "postgresql"))
    assert [link.row() for link in sqlite.links] == [link.row() for link in postgres.links]
    assert sqlite.descriptors == postgres.descriptors


def test_unknown_ids_are_echoed_with_a_not_found_fault(services, backend, image):
    did = _did(image)
    odd = [did.upper(), did + " ", "", "nul\x00id", "ivo://x?'; DROP TABLE plane;--"]
    answer = services[backend].links(odd)
    assert [link.id for link in answer.links] == odd  # as sent, never normalised
    for link in answer.links:
        assert link.semantics == "#this" and link.access_url is None
        assert link.error_message.startswith("NotFoundFault: ")
    assert answer.descriptors == []


def test_many_ids_in_the_order_asked_each_once(services, backend, small_release):
    paths = sorted(small_release.glob("qr2/level2/*/*/*/level2_*.fits"))[:7]
    ids = [_did(p) for p in paths]
    ids = [ids[3], "nope", *ids, ids[0]]  # repeats and an unknown one in between
    answer = services[backend].links(ids)
    seen = [link.id for link in answer.links]
    groups = [i for n, i in enumerate(seen) if n == 0 or seen[n - 1] != i]
    assert groups == list(dict.fromkeys(ids))  # consecutive rows per id, each id once
    assert len({d.name for d in answer.descriptors}) == len(answer.descriptors) == 14
    assert len({d.description for d in answer.descriptors}) == 14  # datalinklint: distinct


def test_the_cap_leaves_whole_ids_for_the_next_request(catalogues, backend, small_release):
    links = DataLinkService(catalogues[backend], _settings(), max_ids=3)
    ids = [_did(p) for p in sorted(small_release.glob("qr2/level2/*/*/*/level2_*.fits"))[:5]]
    answer = links.links(ids)
    assert answer.overflow
    assert list(dict.fromkeys(link.id for link in answer.links)) == ids[:3]
    full = DataLinkService(catalogues[backend], _settings()).links(ids[:3])
    assert [link.row() for link in answer.links] == [link.row() for link in full.links]
    assert not links.links(ids[:3]).overflow


def test_calibration_files(services, backend):
    links = services[backend]
    dark = "ivo://irsa.ipac/spherex_qr2_cal?dark_D1_spx_cal-drk-v4-2025-161"
    gains = "ivo://irsa.ipac/spherex_qr2_cal?gain_factors_spx_base-2025-158"
    answer = links.links([dark, gains])
    by_id = {i: [link for link in answer.links if link.id == i] for i in (dark, gains)}
    assert [link.semantics for link in by_id[dark]] == ["#this", "#preview", "#auxiliary"]
    assert [link.semantics for link in by_id[gains]] == ["#this", "#auxiliary"]
    this = by_id[dark][0]
    assert this.access_url.endswith(
        "/qr2/dark/cal-drk-v4-2025-161/1/dark_D1_spx_cal-drk-v4-2025-161.fits"
    )
    assert this.content_type == "application/fits" and this.content_qualifier == "#measurements"
    assert by_id[gains][0].content_type == "application/yaml"
    assert answer.descriptors == []  # no cutouts of calibration files


def test_an_s3_endpoint_names_the_mirror(catalogues, backend, image, small_release):
    settings = _settings(s3_endpoint="http://minio.local:9000/", s3_bucket="mirror")
    answer = DataLinkService(catalogues[backend], settings).links([_did(image)])
    key = _key(image, small_release)
    assert answer.links[-1].access_url == f"http://minio.local:9000/mirror/{key}"
    assert f"s3://mirror/{key}" in answer.links[-1].description


def test_embargoed_datasets_are_not_found(small_release, new_catalogue_url, backend):
    url = new_catalogue_url(backend)
    catalogue = open_catalogue(url)
    try:
        delivery = sorted(small_release.glob("qr2/level2/*/*"))[0]
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        ingest(catalogue, str(delivery), progress=False, log=lambda _: None, release_date=soon)
        image = sorted(delivery.glob("*/level2_*.fits"))[0]
        answer = DataLinkService(catalogue, _settings()).links([_did(image)])
        assert [link.semantics for link in answer.links] == ["#this"]
        assert answer.links[0].error_message.startswith("NotFoundFault: ")
    finally:
        catalogue.close()


def test_footprint_polygons_and_their_circles():
    region = "POLYGON ICRS 359.9 -0.1 0.1 -0.1 0.1 0.1 359.9 0.1 359.9 -0.1"
    vertices = polygon_vertices(region)
    assert vertices == [(359.9, -0.1), (0.1, -0.1), (0.1, 0.1), (359.9, 0.1)]
    # Given clockwise, they come back counter-clockwise in (RA, Dec), as SODA's examples are.
    assert polygon_vertices("POLYGON ICRS 359.9 0.1 0.1 0.1 0.1 -0.1 359.9 -0.1") == vertices
    ra, dec, radius = covering_circle(vertices)
    assert min(ra, 360 - ra) < 1e-6 and abs(dec) < 1e-6
    assert math.hypot(0.1, 0.1) <= radius < math.hypot(0.1, 0.1) + 1e-6
    polar = polygon_vertices("POLYGON ICRS 0 89.9 90 89.9 180 89.9 270 89.9")
    ra, dec, radius = covering_circle(polar)
    assert dec > 89.9999 and 0.1 <= radius < 0.1 + 1e-6
    assert polygon_vertices(None) is None and polygon_vertices("POLYGON ICRS 1 2 3 4") is None
