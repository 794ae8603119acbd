"""The coverage service on both catalogues: image counts against brute-force footprint
searches, MOCs against the footprints, regions, the poles and RA = 0, bad regions."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from spherex_archive.ingest.coverage import COUNT_DEPTH
from spherex_archive.services.coverage import CoverageService, Region, UnknownCollection

CELL = np.degrees(np.sqrt(4 * np.pi / (12 * 4**COUNT_DEPTH)))
"""Side of a count-map cell (degrees)."""

FIXED = [(0.0, 90.0), (0.0, 1.0), (359.999, 1.0), (0.001, 0.9), (270.0, 66.56), (10.68, 41.27)]


@pytest.fixture
def service(catalogues, backend) -> CoverageService:
    return CoverageService(catalogues[backend])


def by_collection(catalogue, planeids: list[int]) -> dict[str, int]:
    if not planeids:
        return {}
    rows = catalogue.fetchall(
        f"SELECT obs_collection, COUNT(*) FROM {catalogue.dialect.public('spherex.obscore')} "
        f"WHERE _planeid IN ({', '.join('?' * len(planeids))}) GROUP BY obs_collection",
        planeids,
    )
    return {c: int(n) for c, n in rows}


def positions(catalogue) -> list[tuple[float, float]]:
    """Image centres and points between them, and the fixed awkward places."""
    centres = catalogue.fetchall(
        f"SELECT s_ra, s_dec FROM {catalogue.dialect.public('spherex.obscore')} "
        "WHERE s_ra IS NOT NULL ORDER BY obs_publisher_did"
    )
    shifted = [((ra + 0.03) % 360, min(dec + 0.02, 90.0)) for ra, dec in centres[::3]]
    return [*FIXED, *centres, *shifted]


def test_image_counts_bracket_the_footprints_containing_the_position(catalogues, service):
    """Never fewer than the images containing the position; never more than those within
    two cells of it. Every collection with an image there is in the answer."""
    catalogue = service.catalogue
    exact = 0
    checked = 0
    for ra, dec in positions(catalogue):
        answer = {c.collection: c for c in service.covering(Region.point(ra, dec))}
        containing = by_collection(catalogue, catalogue.planes_containing(ra, dec))
        near = by_collection(catalogue, catalogue.planes_intersecting_circle(ra, dec, 2 * CELL))
        assert set(containing) <= set(answer), (ra, dec)
        for name, c in answer.items():
            assert c.covered and c.fraction == 1.0
            assert containing.get(name, 0) <= c.images <= near.get(name, 0), (ra, dec, name)
            checked += 1
            exact += c.images == containing.get(name, 0)
    assert checked > 100 and exact > 0


def test_poles_and_ra_zero(service):
    catalogue = service.catalogue
    for ra, dec in [(0.0, 90.0), (123.0, 90.0), (0.0, 1.0), (360.0, 1.0), (359.9999, 1.0)]:
        answer = service.covering(Region.point(ra, dec))
        assert [c.collection for c in answer] == ["spherex_qr2"], (ra, dec)
        assert answer[0].images >= len(catalogue.planes_containing(ra % 360, dec)) > 0
    # a small circle and a polygon astride RA = 0 see both sides
    circle = service.covering(Region.circle(0.0, 1.0, 0.05))
    polygon = service.covering(
        Region.polygon([(359.95, 0.95), (0.05, 0.95), (0.05, 1.05), (359.95, 1.05)])
    )
    for answer in (circle, polygon):
        assert [c.collection for c in answer] == ["spherex_qr2"]
        assert 0 < answer[0].fraction <= 1
        assert answer[0].images >= service.covering(Region.point(0.0, 1.0))[0].images
    # a circle around the pole holds the pole's images
    cap = service.covering(Region.circle(0.0, 90.0, 0.5))[0]
    assert not cap.covered and 0 < cap.fraction < 1
    assert cap.images >= service.covering(Region.point(0.0, 90.0))[0].images


def test_regions(service):
    point = service.covering(Region.point(270.0, 66.56))
    assert [c.collection for c in point] == ["spherex_qr2_deep"]
    tiny = service.covering(Region.circle(270.0, 66.56, 1 / 3600))
    assert tiny == point  # inside the coverage: covered, whole, the same cell's count
    wide = service.covering(Region.circle(270.0, 66.56, 5.0))[0]
    assert not wide.covered and 0 < wide.fraction < 0.05
    assert wide.images >= point[0].images
    sky = {c.collection: c for c in service.covering(Region.range(0, 360, -90, 90))}
    assert set(sky) == {"spherex_qr2", "spherex_qr2_deep"}
    for name, c in sky.items():
        assert c.fraction == pytest.approx(service.moc(name).sky_fraction)
    across = service.covering(Region.range(359.0, 1.0, 0.0, 2.0))
    assert [c.collection for c in across] == ["spherex_qr2"]
    assert service.covering(Region.circle(180.0, -30.0, 1.0)) == []
    only = service.covering(Region.range(0, 360, -90, 90), ["spherex_qr2_deep"])
    assert [c.collection for c in only] == ["spherex_qr2_deep"]
    with pytest.raises(UnknownCollection):
        service.covering(Region.point(0, 90), ["no_such_collection"])


def test_mocs_hold_the_footprints_and_the_collections_their_planes(catalogues, service):
    catalogue = service.catalogue
    listed = {c.name: c for c in service.collections()}
    assert {n: c.planes for n, c in listed.items()} == catalogue.counts()
    assert listed["spherex_qr2_cal"].sky_fraction == 0.0
    assert service.moc("spherex_qr2_cal").empty()
    for name in ("spherex_qr2", "spherex_qr2_deep"):
        moc = service.moc(name)
        assert listed[name].sky_fraction == moc.sky_fraction > 0
        centres = np.array(
            catalogue.fetchall(
                f"SELECT s_ra, s_dec FROM {catalogue.dialect.public('spherex.obscore')} "
                "WHERE obs_collection = ?",
                [name],
            )
        )
        assert moc.contains_lonlat(centres[:, 0] * u.deg, centres[:, 1] * u.deg).all()
    with pytest.raises(UnknownCollection):
        service.moc("no_such_collection")


def test_parsed_mocs_are_cached_until_the_collection_changes(service, monkeypatch):
    service.collections()
    loads = []
    original = service._load
    monkeypatch.setattr(service, "_load", lambda name: loads.append(name) or original(name))
    service.covering(Region.point(0, 90))
    service.collections()
    assert loads == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: Region.point(0, 90.5),
        lambda: Region.point(-1, 0),
        lambda: Region.point(360.5, 0),
        lambda: Region.circle(10, 10, -1),
        lambda: Region.circle(10, 10, 181),
        lambda: Region.polygon([(0, 0), (1, 1)]),
        lambda: Region.polygon([(0, 0), (1, 1), (2, -91)]),
        lambda: Region.range(0, 10, 20, 10),
        lambda: Region.range(0, 10, 10, 10),
        lambda: Region.range(10, 10, 0, 10),
        lambda: Region.range(0, 400, 0, 10),
    ],
)
def test_bad_regions_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_region_text():
    assert str(Region.circle(10, 20, 0)) == "CIRCLE 10 20 0"
    assert str(Region.circle(370 - 10, -20, 0.5)) == "CIRCLE 0 -20 0.5"
    assert str(Region.range(-np.inf, np.inf, 89, np.inf)) == "RANGE 0 360 89 90"
