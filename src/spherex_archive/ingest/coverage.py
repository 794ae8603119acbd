"""Per-collection coverage, kept up to date by every ingest transaction: a MOC of the sky each
collection covers and a map of how many images touch each HEALPix cell.

Both hold only released planes. Embargoed ones are remembered in ``pending_until`` (the
earliest release date not yet reached), and the coverage service calls :func:`rebuild` once
that date passes, so coverage never reveals an embargoed footprint. Ingest adds to both
incrementally: a plane new to the catalogue counts once, a new version of a plane replaces the
old version's count, and a re-ingest changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from mocpy import MOC

from spherex_archive.catalogue.base import Writer
from spherex_archive.catalogue.spatial import polygon_arrays
from spherex_archive.ingest.rows import FileRows

MOC_DEPTH = 11
"""1.7 arcmin cells: finer than the smallest (reduced-size) footprints."""

COUNT_DEPTH = 10
"""HEALPix NESTED order of the image-count map: 3.4 arcmin cells, a quarter of a demo image
(13 arcmin across) and 1/60 of a real one (3.5 deg), so a count overstates only within a cell
of an image's edge. Order 11 would quadruple the rows (a real image touches ~15 000 cells
instead of ~3 700; a whole-sky collection would need 50 million rows instead of 12.6) for
little gain; order 9 (6.9 arcmin) would be coarser than a demo image."""

CHUNK = 1000
"""Footprints per mocpy call: bounds the memory of their per-image cell lists."""

PAGE = 20000
"""Planes read per query when a collection is rebuilt."""


@dataclass
class Written:
    """A plane an ingest transaction wrote (the newest version of it), and what it replaced."""

    row: FileRows
    before: tuple[str, str | None] | None
    """(release date, ``poly``) of the version held before; None for a plane new to the
    catalogue."""


def now_text() -> str:
    """Now (UTC) as stored timestamps are written, comparable with them as text."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def timestamp_text(value) -> str | None:
    """A stored timestamp (text on SQLite, datetime on PostgreSQL) as ``now_text`` writes it."""
    return None if value is None else str(value)[:19]


def _stamp() -> str:
    # Microseconds: the coverage service caches a collection's MOC by this value.
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def polys_vertices(polys: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RA, Dec) vertices of stored ``POLYGON ICRS ra1 dec1 ... ra1 dec1`` footprints, each
    without its closing repeat."""
    _, counts, vertices = polygon_arrays(polys)
    if not len(counts):
        return []
    return [(v[:, 0], v[:, 1]) for v in np.split(vertices, np.cumsum(counts)[:-1])]


def poly_vertices(poly: str) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) vertices of one stored footprint (see :func:`polys_vertices`)."""
    return polys_vertices([poly])[0]


def footprint_mocs(footprints: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MOC]:
    """One MOC per footprint (ra and dec of its vertices)."""
    mocs: list[MOC] = []
    for start in range(0, len(footprints), CHUNK):
        chunk = footprints[start : start + CHUNK]
        vertices = np.array([axis for ra, dec in chunk for axis in (ra, dec)], dtype=float)
        mocs += MOC.from_polygons(vertices, max_depth=MOC_DEPTH)
    return mocs


def union(mocs: Sequence[MOC], base: MOC | None = None) -> MOC | None:
    everything = [m for m in (base, *mocs) if m is not None]
    if not everything:
        return None
    return everything[0].union(*everything[1:]) if len(everything) > 1 else everything[0]


def cell_counts(mocs: Iterable[MOC]) -> tuple[np.ndarray, np.ndarray]:
    """Count-map cells touched by the MOCs, and how many MOCs touch each. A cell is counted
    when any of its MOC cells is: a position in a MOC always has a count."""
    cells = [m.degrade_to_order(COUNT_DEPTH).flatten() for m in mocs]
    if not cells:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    found, counts = np.unique(np.concatenate(cells), return_counts=True)
    return found.astype(np.int64), counts.astype(np.int64)


def merge_counts(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum (cells, counts) pairs cell by cell; cells whose sum is zero are dropped."""
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    cells, inverse = np.unique(np.concatenate([p[0] for p in parts]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([p[1] for p in parts])).astype(np.int64)
    keep = counts != 0
    return cells[keep], counts[keep]


def _count_rows(collection: str, cells: np.ndarray, counts: np.ndarray) -> list[tuple]:
    """(collection, cell, images) rows of the count map."""
    return list(zip(repeat(collection), cells.tolist(), counts.tolist()))


def _add_counts(writer: Writer, collection: str, cells: np.ndarray, counts: np.ndarray) -> None:
    if not len(cells):
        return
    writer.add_to(
        "coverage_count", ["collection", "cell"], "images", _count_rows(collection, cells, counts)
    )
    if (counts < 0).any():
        table = writer.dialect.internal("coverage_count")
        writer.execute(f"DELETE FROM {table} WHERE collection = ? AND images <= 0", [collection])


def _stored(writer: Writer, collection: str) -> tuple[MOC | None, str | None, int]:
    """(MOC, pending_until, planes) of a collection as stored."""
    rows = writer.fetchall(
        f"SELECT moc, pending_until, planes FROM {writer.dialect.internal('moc')} "
        "WHERE collection = ?",
        [collection],
    )
    if not rows:
        return None, None, 0
    text, pending, planes = rows[0]
    return (MOC.from_string(text, format="ascii") if text else None), pending, int(planes or 0)


def _store(
    writer: Writer, collection: str, moc: MOC | None, planes: int, pending: str | None
) -> None:
    writer.upsert(
        "moc",
        {
            "collection": collection,
            "moc": moc.to_string(format="ascii") if moc is not None else None,
            "planes": planes,
            "updated_at": _stamp(),
            "pending_until": pending,
        },
        ["collection"],
    )


def update(writer: Writer, written: Sequence[Written]) -> None:
    """Bring the coverage of the collections of ``written`` up to date, in the ingest's
    transaction: released planes enter the MOC and the count map, embargoed ones the
    collection's ``pending_until``; ``planes`` counts released planes."""
    now = now_text()
    by_collection: dict[str, list[Written]] = defaultdict(list)
    for w in written:
        by_collection[w.row.observation["collection"]].append(w)
    for collection, items in by_collection.items():
        moc, pending, planes = _stored(writer, collection)
        added, removed = [], []
        for w in items:
            release = w.row.plane["release_date"]
            public = release <= now
            before = timestamp_text(w.before[0]) if w.before else None
            was_public = before is not None and before <= now
            planes += int(public) - int(was_public)
            if not public:
                pending = min(pending or release, release)
            old_poly = w.before[1] if w.before else None
            if public == was_public and old_poly == w.row.plane.get("poly"):
                continue  # the same footprint, counted already (or not yet released)
            if public and w.row.footprint is not None:
                added.append(w.row.footprint)
            if was_public and old_poly:
                # Counted, unless released after its ingest with the collection's rebuild
                # still due: that rebuild recounts everything anyway.
                removed.append(poly_vertices(old_poly))
        new_mocs = footprint_mocs(added)
        old_mocs = footprint_mocs(removed)
        plus, minus = cell_counts(new_mocs), cell_counts(old_mocs)
        cells, counts = merge_counts([plus, (minus[0], -minus[1])])
        _add_counts(writer, collection, cells, counts)
        # A MOC only grows here: a replaced footprint's edge may stay until a rebuild.
        _store(writer, collection, union(new_mocs, moc), planes, pending)


def register(writer: Writer, collection: str, planes: int) -> None:
    """Name a collection without computing its coverage (synthetic benchmark catalogues of
    millions of planes): services that list collections see it; its MOC is empty until a
    :func:`rebuild`."""
    _store(writer, collection, None, planes, None)


def rebuild(writer: Writer, collection: str) -> None:
    """Recompute a collection's MOC, count map, planes and pending_until from its planes:
    the one place coverage reads the planes table (when an embargo ends, or for a catalogue
    that predates the count map)."""
    i = writer.dialect.internal
    released = f"p.release_date <= {writer.dialect.now}"
    source = (
        f"FROM {i('plane')} p JOIN {i('observation')} o ON o.obsid = p.obsid WHERE o.collection = ?"
    )
    planes, pending = writer.fetchall(
        f"SELECT SUM(CASE WHEN {released} THEN 1 ELSE 0 END), "
        f"MIN(CASE WHEN {released} THEN NULL ELSE p.release_date END) {source}",
        [collection],
    )[0]
    moc: MOC | None = None
    parts = []
    last = -1
    while True:
        page = writer.fetchall(
            f"SELECT p.planeid, p.poly {source} AND {released} AND p.poly IS NOT NULL "
            "AND p.planeid > ? ORDER BY p.planeid LIMIT ?",
            [collection, last, PAGE],
        )
        if not page:
            break
        last = page[-1][0]
        mocs = footprint_mocs(polys_vertices([poly for _, poly in page]))
        moc = union(mocs, moc)
        parts.append(cell_counts(mocs))
    cells, counts = merge_counts(parts)
    writer.execute(
        f"DELETE FROM {i('coverage_count')} WHERE collection = ?",
        [collection],
    )
    writer.bulk_insert(
        "coverage_count",
        ["collection", "cell", "images"],
        _count_rows(collection, cells, counts),
    )
    _store(writer, collection, moc, int(planes or 0), timestamp_text(pending))
