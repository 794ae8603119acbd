"""Spatial searches of both catalogues against brute force over every footprint.

Truth is computed independently of the catalogue code: each footprint's corners from the
file's own WCS, point-in-polygon in the gnomonic projection (where great circles are straight
lines), and the distance from a circle's centre to densely sampled footprint edges.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from spherex_archive.catalogue import open_catalogue, spatial
from spherex_archive.ingest.run import ingest
from tests.catalogue.test_spatial import gnomonic, planar_inside

FIXED = [
    (0.0, 90.0),
    (0.0, 1.0),
    (359.999, 1.0),
    (0.001, 0.9),
    (270.0, 66.56),
    (72.0, -71.4),
    (10.68, 41.27),
    (180.0, -90.0),
]


@pytest.fixture(scope="module")
def footprints(small_release):
    """{obs_publisher_did: (4, 3) unit vectors} from the files' own WCS."""
    out = {}
    for path in small_release.glob("qr2/level2/*/*/*/*.fits"):
        header = fits.getheader(path, "IMAGE")
        n = header["NAXIS1"]
        ra, dec = WCS(header).all_pix2world(
            [-0.5, n - 0.5, n - 0.5, -0.5], [-0.5, -0.5, n - 0.5, n - 0.5], 0
        )
        collection = "spherex_qr2_deep" if header["SPS_FLAGS"] == "deep" else "spherex_qr2"
        did = f"ivo://irsa.ipac/{collection}?{header['OBSID']}/D{header['DETECTOR']}"
        out[did] = spatial.unit_vectors(ra, dec)
    return out


def brute_contains(footprints, point) -> set[str]:
    found = set()
    for did, corners in footprints.items():
        centre = corners.sum(axis=0)
        centre /= np.linalg.norm(centre)
        if point @ centre <= 0.5:
            continue
        if planar_inside(gnomonic(point[None], centre), gnomonic(corners, centre))[0]:
            found.add(did)
    return found


def edge_samples(corners: np.ndarray, n: int = 400) -> np.ndarray:
    points = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        t = np.linspace(0, 1, n)[:, None]
        p = (1 - t) * a + t * b
        points.append(p / np.linalg.norm(p, axis=1, keepdims=True))
    return np.concatenate(points)


def brute_circle(footprints, centre, radius) -> tuple[set[str], set[str]]:
    """(surely inside the answer, grazing cases either answer may take)."""
    sure, unsure = set(), set()
    inside = brute_contains(footprints, centre)
    for did, corners in footprints.items():
        if did in inside:
            sure.add(did)
            continue
        distance = np.min(np.arccos(np.clip(edge_samples(corners) @ centre, -1, 1)))
        if abs(distance - radius) < 2e-5:
            unsure.add(did)
        elif distance < radius:
            sure.add(did)
    return sure, unsure


def test_points_and_circles_match_brute_force(small_release, footprints, new_catalogue_url):
    rng = np.random.default_rng(2026)
    dids = list(footprints)
    points = [spatial.unit_vectors(*p) for p in FIXED]
    for _ in range(150):
        corners = footprints[dids[rng.integers(len(dids))]]
        centre = corners.sum(axis=0) + rng.normal(0, 0.002, 3)
        points.append(centre / np.linalg.norm(centre))
    for backend in ("sqlite", "postgresql"):
        catalogue = open_catalogue(new_catalogue_url(backend))
        ingest(catalogue, str(small_release), workers=2, progress=False)
        by_id = dict(
            catalogue.fetchall(
                "SELECT planeid, obs_publisher_did FROM "
                + catalogue.dialect.public("spherex.plane")
            )
        )
        hits = 0
        for point in points:
            ra, dec = (float(v) for v in spatial.to_radec(point))
            got = {by_id[i] for i in catalogue.planes_containing(ra, dec)}
            truth = brute_contains(footprints, point)
            assert got == truth, (backend, ra, dec)
            hits += len(truth)
            radius = float(rng.uniform(0.001, 0.2))
            got = {by_id[i] for i in catalogue.planes_intersecting_circle(ra, dec, radius)}
            sure, unsure = brute_circle(footprints, point, np.radians(radius))
            assert sure <= got <= sure | unsure, (backend, ra, dec, radius)
        assert hits > 300
        # the pole and RA = 0 are covered, so those cases were really tested
        assert brute_contains(footprints, spatial.unit_vectors(0.0, 90.0))
        assert brute_contains(footprints, spatial.unit_vectors(359.999, 1.0))
        catalogue.close()
