"""Footprint geometry against independent brute force, at the poles and across RA = 0."""

from __future__ import annotations

import numpy as np
import pytest

from spherex_archive.catalogue import spatial


def gnomonic(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Project onto the plane tangent at ``centre``: great circles become straight lines."""
    east = np.cross([0.0, 0.0, 1.0], centre)
    if np.linalg.norm(east) < 1e-9:
        east = np.array([0.0, 1.0, 0.0])
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    d = vectors @ centre
    return np.stack([(vectors @ east) / d, (vectors @ north) / d], axis=-1)


def planar_inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Point in convex planar polygon, either winding."""
    signs = []
    for i in range(len(polygon)):
        a, b = polygon[i], polygon[(i + 1) % len(polygon)]
        signs.append((b[0] - a[0]) * (points[:, 1] - a[1]) - (b[1] - a[1]) * (points[:, 0] - a[0]))
    signs = np.array(signs)
    return np.all(signs >= 0, axis=0) | np.all(signs <= 0, axis=0)


def random_footprint(rng, centre_ra, centre_dec, size_deg, shear=0.0):
    """A rotated square footprint (vertices in ra/dec) like an SPHEREx detector image; with
    ``shear``, a parallelogram (two acute corners)."""
    centre = spatial.unit_vectors(centre_ra, centre_dec)
    east = np.cross([0.0, 0.0, 1.0], centre)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-9 else np.array([0, 1.0, 0])
    north = np.cross(centre, east)
    angle = rng.uniform(0, 2 * np.pi)
    h = np.tan(np.radians(size_deg / 2))
    corners = []
    for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h)):
        dx += shear * dy
        x = dx * np.cos(angle) - dy * np.sin(angle)
        y = dx * np.sin(angle) + dy * np.cos(angle)
        v = centre + x * east + y * north
        corners.append(v / np.linalg.norm(v))
    ra, dec = spatial.to_radec(np.array(corners))
    if rng.random() < 0.5:
        ra, dec = ra[::-1], dec[::-1]
    return ra, dec


CENTRES = [
    (0.0, 0.0),
    (359.99, 1.0),
    (0.01, -30.0),
    (120.0, 89.9),
    (33.0, 90.0),
    (200.0, -89.95),
    (270.0, 66.56),
    (180.0, 45.0),
]


@pytest.mark.parametrize(("ra0", "dec0"), CENTRES)
def test_contains_point_matches_gnomonic_brute_force(ra0, dec0):
    rng = np.random.default_rng(int(ra0 * 10 + dec0 * 100) % 2**31)
    for size in (0.2, 3.5):
        ra, dec = random_footprint(rng, ra0, dec0, size)
        record = spatial.footprint_records(ra[None], dec[None])
        centre = spatial.unit_vectors(ra0, dec0)
        offsets = rng.normal(0, np.radians(size), (4000, 3))
        points = centre + offsets
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        truth = planar_inside(
            gnomonic(points, centre), gnomonic(spatial.unit_vectors(ra, dec), centre)
        )
        got = np.array([spatial.contains_point(record, p)[0] for p in points])
        assert np.array_equal(got, truth)
        scalar = np.array(
            [spatial.contains_point_scalar(spatial.record_bytes(record[0]), *p) for p in points]
        )
        assert np.array_equal(scalar.astype(bool), truth)
        assert truth.sum() > 100


@pytest.mark.parametrize(("ra0", "dec0"), CENTRES)
def test_circle_intersection_matches_sampling(ra0, dec0):
    rng = np.random.default_rng(11)
    ra, dec = random_footprint(rng, ra0, dec0, 1.0)
    record = spatial.footprint_records(ra[None], dec[None])
    centre0 = spatial.unit_vectors(ra0, dec0)
    for _ in range(60):
        c = centre0 + rng.normal(0, np.radians(1.2), 3)
        c /= np.linalg.norm(c)
        r = np.radians(rng.uniform(0.01, 0.8))
        # sample the cap densely (rings) and ask the point test
        ring_axes = np.cross(c, [0.0, 0.0, 1.0] if abs(c[2]) < 0.9 else [1.0, 0.0, 0.0])
        ring_axes /= np.linalg.norm(ring_axes)
        other = np.cross(c, ring_axes)
        samples = [c]
        for rho in np.linspace(0, r, 25)[1:]:
            for phi in np.linspace(0, 2 * np.pi, 180, endpoint=False):
                samples.append(
                    np.cos(rho) * c + np.sin(rho) * (np.cos(phi) * ring_axes + np.sin(phi) * other)
                )
        samples = np.array(samples)
        sampled = any(spatial.contains_point(record, s)[0] for s in samples)
        exact = spatial.intersects_circle(record, c, r)[0]
        margin = abs(spatial.distance_to_boundary(record, c)[0] - r)
        if margin > np.radians(0.01):  # sampling resolves all but grazing cases
            assert exact == sampled


def test_polygon_intersection():
    rng = np.random.default_rng(3)
    for ra0, dec0 in CENTRES:
        ra, dec = random_footprint(rng, ra0, dec0, 1.0)
        record = spatial.footprint_records(ra[None], dec[None])
        for _ in range(30):
            qra, qdec = random_footprint(rng, ra0 + rng.normal(0, 1), dec0, rng.uniform(0.05, 2))
            qdec = np.clip(qdec, -90, 90)
            query = spatial.unit_vectors(qra, qdec)
            # brute force: sample both polygons' interiors and test membership
            centre = spatial.unit_vectors(ra0, dec0)
            pts = centre + rng.normal(0, np.radians(1.5), (6000, 3))
            pts /= np.linalg.norm(pts, axis=1, keepdims=True)
            in_a = np.array([spatial.contains_point(record, p)[0] for p in pts])
            qrec = spatial.footprint_records(qra[None], qdec[None])
            in_b = np.array([spatial.contains_point(qrec, p)[0] for p in pts])
            sampled = bool(np.any(in_a & in_b))
            exact = bool(spatial.intersects_polygon(record, query)[0])
            if sampled:
                assert exact
            if not exact:
                assert not sampled


def test_scalar_circle_test_agrees_with_the_vectorised_one():
    rng = np.random.default_rng(12)
    for _ in range(3000):
        ra0, dec0 = rng.uniform(0, 360), np.degrees(np.arcsin(rng.uniform(-1, 1)))
        size = rng.uniform(0.01, 4)
        corners = [
            (ra0 + dx * size, np.clip(dec0 + dy * size, -89.9, 89.9))
            for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))
        ]
        record = spatial.footprint_records(
            np.array([[c[0] % 360 for c in corners]]), np.array([[c[1] for c in corners]])
        )
        centre = spatial.unit_vectors(
            ra0 + rng.normal(0, 3), np.clip(dec0 + rng.normal(0, 3), -90, 90)
        )
        radius = np.radians(rng.uniform(0.001, 5))
        exact = bool(spatial.intersects_circle(record, centre, radius)[0])
        scalar = spatial.intersects_circle_scalar(
            record[0].astype("<f8").tobytes(), *centre, radius
        )
        assert bool(scalar) == exact


def test_polygons_are_parsed_in_one_go():
    """Stored STC-S regions -> vertex arrays (the Explorer's footprints, DataLink's limits)."""
    kept, counts, vertices = spatial.polygon_arrays(
        [
            "POLYGON ICRS 1 2 3 4 5 6 1 2",  # closed: the repeat goes
            None,
            "CIRCLE ICRS 10 20 1",  # not a polygon
            "POLYGON  10 20 30 40 50 60 70 80",  # no frame, two spaces: open, kept whole
            "POLYGON ICRS 1 2 3",  # odd
            "POLYGON ICRS 1 2 3 4",  # a segment
            "Polygon FK5 359.5 -89.5 0.5 -89.5 180 -89.9 ",
        ]
    )
    assert kept.tolist() == [0, 3, 6]
    assert counts.tolist() == [3, 4, 3]
    assert vertices.tolist() == [
        [1, 2], [3, 4], [5, 6],
        [10, 20], [30, 40], [50, 60], [70, 80],
        [359.5, -89.5], [0.5, -89.5], [180, -89.9],
    ]  # fmt: skip
    kept, counts, vertices = spatial.polygon_arrays([])
    assert (len(kept), len(counts), vertices.shape) == (0, 0, (0, 2))
