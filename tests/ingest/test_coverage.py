"""Coverage kept by ingest on both catalogues: incremental MOCs and image counts equal a rebuild
from the planes, re-ingests and new versions count a plane once, embargoed planes wait for
their date, and what an ingest commits is visible at once."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from mocpy import MOC

from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.coverage import poly_vertices
from spherex_archive.ingest.run import ingest
from spherex_archive.services.coverage import CoverageService, Region

BACKENDS = ["sqlite", "postgresql"]
QUIET = dict(workers=1, progress=False, log=lambda _: None)


def coverage_state(catalogue) -> tuple[dict, dict]:
    """({collection: (MOC, planes, pending_until)}, {(collection, cell): images})."""
    i = catalogue.dialect.internal
    mocs = {
        c: (MOC.from_string(m, format="ascii") if m else None, planes, pending)
        for c, m, planes, pending in catalogue.fetchall(
            f"SELECT collection, moc, planes, pending_until FROM {i('moc')}"
        )
    }
    counts = {
        (c, int(cell)): int(n)
        for c, cell, n in catalogue.fetchall(
            f"SELECT collection, cell, images FROM {i('coverage_count')}"
        )
    }
    return mocs, counts


def rebuilt(catalogue) -> tuple[dict, dict]:
    service = CoverageService(catalogue)
    for c in catalogue.collections():
        service.rebuild(c)
    return coverage_state(catalogue)


@pytest.fixture(params=BACKENDS)
def catalogue(request, new_catalogue_url):
    cat = open_catalogue(new_catalogue_url(request.param))
    yield cat
    cat.close()


def test_incremental_coverage_equals_a_rebuild_and_reingests_change_nothing(
    catalogue, small_release
):
    ingest(catalogue, str(small_release), **QUIET)
    first = coverage_state(catalogue)
    mocs, counts = first
    assert {c: m[1] for c, m in mocs.items()} == catalogue.counts()
    assert counts and min(counts.values()) >= 1
    assert rebuilt(catalogue) == first
    # files already held are skipped...
    ingest(catalogue, str(small_release), **QUIET)
    assert coverage_state(catalogue) == first
    # ...and files that look changed are written again, over planes already counted
    i = catalogue.dialect.internal
    with catalogue.writer() as w:
        w.execute(f"UPDATE {i('artifact')} SET contentlength = contentlength + 1")
    again = ingest(catalogue, str(small_release), **QUIET)
    assert again.files == 170 and again.planes == 0
    assert coverage_state(catalogue) == first


def version_copy(source: Path, root: Path, version: str, shift: float = 0.0) -> Path:
    """``source`` copied under ``root`` as product version ``version`` (``v23-2026-100``),
    its footprint moved ``shift`` degrees east."""
    rel = Path(*source.parts[-6:])  # qr2/level2/<period>/l2b-vNN-YYYY-DDD/<detector>/<name>
    old = rel.parts[3]
    target = root / str(rel).replace(old, f"l2b-{version}").replace(old[4:], version)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    if shift:
        with fits.open(target, mode="update") as hdus:
            hdus["IMAGE"].header["CRVAL1"] += shift
    return target


def test_a_new_version_replaces_the_count_of_the_old(catalogue, small_release, tmp_path):
    source = sorted(small_release.glob("qr2/level2/*/*/2/*.fits"))[0]
    root = tmp_path / "bucket"
    old = version_copy(source, root, "v20-2025-001")
    same = version_copy(source, root, "v21-2025-002")
    moved = version_copy(source, root, "v22-2025-003", shift=0.2)
    ingest(catalogue, str(old.parent.parent), **QUIET)
    mocs, counts = coverage_state(catalogue)
    assert set(counts.values()) == {1}
    ingest(catalogue, str(same.parent.parent), **QUIET)
    assert coverage_state(catalogue) == (mocs, counts)
    ingest(catalogue, str(moved.parent.parent), **QUIET)
    after_mocs, after_counts = coverage_state(catalogue)
    assert set(after_counts.values()) == {1} and after_counts != counts
    rebuilt_mocs, rebuilt_counts = rebuilt(catalogue)
    assert after_counts == rebuilt_counts
    # the MOC grew by the moved footprint (the old one's edge stays until a rebuild)
    (collection,) = rebuilt_mocs
    moc, planes, _ = after_mocs[collection]
    assert moc.union(rebuilt_mocs[collection][0]) == moc
    assert planes == rebuilt_mocs[collection][1] == 1


def make_released(catalogue) -> None:
    """Move every embargo into the past, as time passing would."""
    i, now = catalogue.dialect.internal, catalogue.dialect.now
    past = "2020-01-01 00:00:00"
    with catalogue.writer() as w:
        waiting = w.fetchall(
            f"SELECT planeid, poly FROM {i('plane')} WHERE release_date > {now} "
            "AND poly IS NOT NULL"
        )
        w.execute(f"UPDATE {i('plane')} SET release_date = ? WHERE release_date > {now}", [past])
        vertices = [poly_vertices(poly) for _, poly in waiting]
        # SQLite's R*Tree keeps its own copy of the release date
        w.set_footprints(
            [p for p, _ in waiting],
            np.array([v[0] for v in vertices]),
            np.array([v[1] for v in vertices]),
            [past] * len(waiting),
        )
        w.execute(
            f"UPDATE {i('moc')} SET pending_until = ? WHERE pending_until IS NOT NULL", [past]
        )


def centres(catalogue, delivery: Path) -> list[tuple[float, float]]:
    rows = catalogue.fetchall(
        f"SELECT p.s_ra, p.s_dec FROM {catalogue.dialect.internal('plane')} p "
        f"JOIN {catalogue.dialect.internal('artifact')} a ON a.planeid = p.planeid "
        "WHERE a.uri LIKE ? AND p.s_ra IS NOT NULL",
        [f"%{delivery.name}%"],
    )
    return [(float(ra), float(dec)) for ra, dec in rows]


def test_embargoed_images_wait_for_their_date_and_new_ingests_show_at_once(
    catalogue, small_release
):
    deliveries = sorted(small_release.glob("qr2/level2/2025W29_2A/l2b-*"))
    embargoed, public = deliveries[0], deliveries[1]
    service = CoverageService(catalogue)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    ingest(catalogue, str(embargoed), release_date=future, **QUIET)
    hidden = centres(catalogue, embargoed)
    assert hidden
    for ra, dec in hidden:
        assert service.covering(Region.point(ra, dec)) == []
    listed = service.collections()
    assert listed and all(c.planes == 0 and c.sky_fraction == 0 for c in listed)
    mocs, counts = coverage_state(catalogue)
    assert counts == {} and all(m[0] is None and m[2] for m in mocs.values())

    # the same service instance (MOCs cached) sees the next ingest at once
    ingest(catalogue, str(public), **QUIET)
    shown = centres(catalogue, public)
    for ra, dec in shown:
        answer = service.covering(Region.point(ra, dec))
        assert answer and answer[0].images >= len(catalogue.planes_containing(ra, dec)) > 0
    # the embargoed images are in neither the MOCs nor the counts
    assert coverage_state(catalogue) == rebuilt(catalogue)

    # once the date has passed, the next request rebuilds the collection's coverage
    make_released(catalogue)
    for ra, dec in hidden:
        answer = service.covering(Region.point(ra, dec))
        brute = len(catalogue.planes_containing(ra, dec))
        assert brute > 0 and answer and sum(c.images for c in answer) >= brute
    mocs, counts = coverage_state(catalogue)
    assert all(m[2] is None for m in mocs.values())
    assert {c: m[1] for c, m in mocs.items()} == catalogue.counts()
    assert (mocs, counts) == rebuilt(catalogue)
