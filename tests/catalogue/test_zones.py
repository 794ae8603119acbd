"""The SQLite zones index against brute force over every footprint, sizes mixed, at the poles
and across RA = 0; and the move of an R*Tree catalogue's footprints into it."""

from __future__ import annotations

import sqlite3

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from spherex_archive.catalogue import open_catalogue, spatial, zones
from spherex_archive.catalogue.sqlite import LEGACY_RTREE
from tests.catalogue.test_spatial import random_footprint

SIZES = [0.02, 0.22, 3.5, 25.0]  # degrees: tiny, demo frame, full frame, huge
HOT_SPOTS = [(0.0, 90.0), (0.0, 0.0), (359.99, -30.0), (123.0, -89.9), (270.0, 66.56)]
RELEASED = "2020-01-01 00:00:00"


def sky(rng, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n footprints of mixed sizes, half of them crowded around the awkward places, a third
    of them parallelograms (acute corners, where an edge's great circle passes the cap beside
    the edge itself)."""
    ras, decs = [], []
    for k in range(n):
        if k % 2:
            ra0, dec0 = HOT_SPOTS[k % len(HOT_SPOTS)]
            ra0, dec0 = ra0 + rng.normal(0, 2), np.clip(dec0 + rng.normal(0, 2), -89.99, 89.99)
        else:
            ra0, dec0 = rng.uniform(0, 360), np.degrees(np.arcsin(rng.uniform(-1, 1)))
        shear = 0.8 if k % 3 == 0 else 0.0
        ra, dec = random_footprint(rng, ra0 % 360, dec0, SIZES[k % len(SIZES)], shear)
        ras.append(ra)
        decs.append(dec)
    records = spatial.footprint_records(np.array(ras), np.array(decs))
    return np.array(ras), np.array(decs), records


def queries(rng, n: int) -> list[tuple[float, float]]:
    out = [(ra, dec) for ra, dec in HOT_SPOTS]
    for _ in range(n):
        ra0, dec0 = HOT_SPOTS[rng.integers(len(HOT_SPOTS))]
        out.append(
            ((ra0 + rng.normal(0, 3)) % 360, float(np.clip(dec0 + rng.normal(0, 3), -90, 90)))
        )
        out.append((rng.uniform(0, 360), float(np.degrees(np.arcsin(rng.uniform(-1, 1))))))
    return out


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    rng = np.random.default_rng(2026)
    ras, decs, records = sky(rng, 1200)
    catalogue = open_catalogue(f"sqlite:///{tmp_path_factory.mktemp('zones') / 'z.db'}")
    catalogue.create()
    ids = list(range(1, len(records) + 1))
    with catalogue.writer() as w:
        w.set_footprints(ids, ras, decs, [RELEASED] * len(ids))
    yield catalogue, np.array(ids), records
    catalogue.close()


def test_point_search_is_exact(filled):
    catalogue, ids, records = filled
    rng = np.random.default_rng(1)
    hits = 0
    for k, (ra, dec) in enumerate(queries(rng, 150)):
        truth = set(ids[spatial.contains_point(records, spatial.unit_vectors(ra, dec))])
        if k % 2:  # positions straight from numpy arrays work as well
            ra, dec = np.float64(ra), np.float64(dec)
        assert set(catalogue.planes_containing(ra, dec)) == truth, (ra, dec)
        hits += len(truth)
    assert hits > 300  # the places asked about are crowded: the comparison means something


@pytest.mark.parametrize("one_select", [False, True], ids=["union", "or"])
@pytest.mark.parametrize("radius", [0.001, 0.3, 4.0, 40.0])
def test_circle_search_is_exact(filled, radius, one_select, monkeypatch):
    if one_select:  # the form used when a search has too many ranges for UNION ALL
        monkeypatch.setattr(zones, "MAX_UNION", 0)
    catalogue, ids, records = filled
    rng = np.random.default_rng(int(radius * 1000))
    for ra, dec in queries(rng, 60):
        centre = spatial.unit_vectors(ra, dec)
        truth = set(ids[spatial.intersects_circle(records, centre, np.radians(radius))])
        assert set(catalogue.planes_intersecting_circle(ra, dec, radius)) == truth, (ra, dec)


def test_ranges_hold_every_footprint_near_the_cap():
    """Independent of the SQL: the key ranges hold each footprint whose circumscribed cap
    meets the query's cap."""
    rng = np.random.default_rng(7)
    _, _, records = sky(rng, 400)
    placement = zones.place(list(range(len(records))), records, [RELEASED] * len(records))
    index = zones.ZoneIndex(placement.class_radius)
    vertices = records[:, :12].reshape(-1, 4, 3)
    centres = vertices.sum(axis=1)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    radii = np.arccos(np.clip(np.einsum("nvk,nk->nv", vertices, centres).min(axis=1), -1, 1))
    for ra, dec in queries(rng, 80):
        for radius in (0.0, 1.0, 10.0):
            q = spatial.unit_vectors(ra, dec)
            near = np.arccos(np.clip(centres @ q, -1, 1)) <= radii + np.radians(radius)
            ranges = index.ranges(ra, dec, radius)
            for row, must in zip(placement.rows, near, strict=True):
                zone, centre_ra = row[0], row[1]
                found = any(z0 <= zone <= z1 and lo <= centre_ra <= hi for z0, z1, lo, hi in ranges)
                assert found or not must, (ra, dec, radius, row[2])


def test_centre_ranges_hold_every_centre_in_the_cap():
    """The centre index's key ranges, with the zones as SQLite computes them from the index's
    own expression, hold every centre within the cap: at the poles, across RA = 0, on zone
    edges, for caps from a point to most of the sky."""
    rng = np.random.default_rng(11)
    conn = sqlite3.connect(":memory:")
    zone_of = f"SELECT {zones.centre_zone_sql('?')}"
    edges = (np.arange(-90.0, 90.0, 0.09375)[:, None] + [-1e-12, 0.0, 1e-12]).ravel()
    for ra, dec in queries(rng, 60):
        for radius in (0.0, 0.01, 0.1, 1.0, 10.0, 100.0):
            # Points the cap holds by construction: at random bearings and distances up to
            # the radius (a sixth of them on the rim), and on the centre's meridian at every
            # zone edge in reach.
            bearing = rng.uniform(0, 360, 300) * u.deg
            reach = radius * np.sqrt(rng.uniform(0, 1, 300))
            reach[:50] = radius
            held = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(bearing, reach * u.deg)
            ras, decs = held.ra.deg, held.dec.deg
            on_edges = edges[np.abs(edges - dec) <= radius]
            ras = np.concatenate([ras, np.full(len(on_edges), ra)])
            decs = np.concatenate([decs, on_edges])
            ranges = zones.centre_ranges(ra, dec, radius)
            for a, d in zip(ras, decs, strict=True):
                (zone,) = conn.execute(zone_of, (float(d),)).fetchone()
                held = any(z0 <= zone <= z1 and lo <= a <= hi for z0, z1, lo, hi in ranges)
                assert held, (ra, dec, radius, a, d)


def test_a_search_reads_few_more_rows_than_it_answers():
    """Full-size frames seen from one place: the zones hold the candidates close together."""
    rng = np.random.default_rng(3)
    ra0, dec0 = 150.0, 2.0
    centres = [(ra0 + rng.normal(0, 2), dec0 + rng.normal(0, 2)) for _ in range(3000)]
    ras, decs = zip(*(random_footprint(rng, r, d, 3.5) for r, d in centres), strict=True)
    records = spatial.footprint_records(np.array(ras), np.array(decs))
    placement = zones.place(list(range(len(records))), records, [RELEASED] * len(records))
    ranges = zones.ZoneIndex(placement.class_radius).ranges(ra0, dec0, 0.0)
    candidates = sum(
        any(z0 <= r[0] <= z1 and lo <= r[1] <= hi for z0, z1, lo, hi in ranges)
        for r in placement.rows
    )
    answer = spatial.contains_point(records, spatial.unit_vectors(ra0, dec0)).sum()
    assert answer > 500 and candidates < 2.5 * answer


def test_a_replaced_footprint_is_found_only_where_it_now_is(tmp_path):
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'z.db'}")
    catalogue.create()
    for ra in (10.0, 200.0):
        corners_ra, corners_dec = random_footprint(np.random.default_rng(0), ra, 0.0, 1.0)
        with catalogue.writer() as w:
            w.set_footprints([42], corners_ra[None], corners_dec[None], [RELEASED])
    assert catalogue.planes_containing(200.0, 0.0) == [42]
    assert catalogue.planes_containing(10.0, 0.0) == []


def test_unreleased_footprints_are_not_found(tmp_path):
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'z.db'}")
    catalogue.create()
    ra, dec = random_footprint(np.random.default_rng(0), 30.0, 30.0, 1.0)
    with catalogue.writer() as w:
        w.set_footprints([1, 2], np.array([ra, ra]), np.array([dec, dec]), [RELEASED, "2999-01-01"])
    assert catalogue.planes_containing(30.0, 30.0) == [1]
    assert catalogue.planes_intersecting_circle(30.0, 30.0, 0.1) == [1]


def test_an_rtree_catalogue_is_moved_to_the_zones_index(tmp_path):
    """A catalogue made by the version with the R*Tree index keeps its footprints."""
    path = tmp_path / "old.db"
    catalogue = open_catalogue(f"sqlite:///{path}")
    catalogue.create()
    rng = np.random.default_rng(5)
    _, _, records = sky(rng, 200)
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP TABLE {zones.TABLE}")
        conn.execute(f"DELETE FROM {zones.CLASSES}")
        conn.execute(
            f"CREATE VIRTUAL TABLE {LEGACY_RTREE} USING rtree("
            "id, minx, maxx, miny, maxy, minz, maxz, +footprint BLOB, +release_date TEXT)"
        )
        conn.executemany(
            f"INSERT INTO {LEGACY_RTREE} VALUES (?, -1, 1, -1, 1, -1, 1, ?, ?)",
            [(i + 1, spatial.record_bytes(r), RELEASED) for i, r in enumerate(records)],
        )
    catalogue.create()
    tables = {r[0] for r in catalogue.fetchall("SELECT name FROM sqlite_master")}
    assert LEGACY_RTREE not in tables and zones.TABLE in tables
    ids = np.arange(1, len(records) + 1)
    for ra, dec in queries(rng, 30):
        truth = set(ids[spatial.contains_point(records, spatial.unit_vectors(ra, dec))])
        assert set(catalogue.planes_containing(ra, dec)) == truth
