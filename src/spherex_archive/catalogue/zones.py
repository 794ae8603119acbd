"""The SQLite catalogue's spatial index: footprints stored in declination zones, sorted by RA.

This is the zones algorithm of the SDSS SkyServer (Gray, Szalay et al. 2006, MSR-TR-2006-52),
extended from points to footprints. Every footprint is one row of a clustered table whose key
is (zone of its centre, RA of its centre, plane id), carrying its inward edge normals as plain
columns. A search for the footprints near a cap is then a few key ranges, one per zone that the
cap (grown by the largest footprint radius) crosses, each a contiguous run of rows that SQLite
tests with four dot products in C, without a Python call per row.

Why not SQLite's R*Tree: at 10 million full-size (3.5 degree) footprints a point lies under
some 1 800 of them; the R*Tree's overlapping boxes made it walk many nodes and then fetch every
candidate's footprint from a random page (planes ids are hashes), some 30 ms a search. Here the
candidates lie side by side and their number is within a quarter of the answer's.

Footprints of very different sizes would force every search to reach as far as the largest:
each footprint is filed in a size class (radius within a factor of two), each class with zones
a quarter of its size and its own largest radius, and a search visits every class there is.

Image centres (``s_ra``, ``s_dec``: ObsCore's own cone search is ``CONTAINS(POINT(s_ra, s_dec),
CIRCLE(...))``) are zoned the same way without a table of their own: an index on the plane
table's expression ``centre_zone_sql(s_dec), s_ra`` (``ddl.py``), searched with the key ranges
of one fixed class of points (:func:`centre_ranges`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from spherex_archive.catalogue import spatial

TABLE = "archive_footprint"
CLASSES = "archive_footprint_class"

SMALLEST_RADIUS = 3.0 / 4096
"""Class 0 holds footprints of radius up to this (degrees); class n up to 2**n times it. The
scale makes full-size SPHEREx frames (radius 2.47 degrees) and the demo's 128-pixel ones
(0.155 degrees) fill about 80 % of their class's reach."""

ZONES_PER_CLASS_RADIUS = 4
ZONE_BITS = 24
MAX_ZONE_RANGES = 64
MAX_UNION = 400
"""More ranges than this are searched as one OR (SQLite joins at most 500 SELECTs)."""
MARGIN = 1e-7
"""Degrees added to every reach: rounding in the stored centres must never lose a footprint."""

NORMALS = [f"n{i}{axis}" for i in range(4) for axis in "xyz"]

DDL = [
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "zone INTEGER NOT NULL, ra REAL NOT NULL, planeid INTEGER NOT NULL, "
    "release_date TEXT NOT NULL, "
    + "".join(f"{n} REAL NOT NULL, " for n in NORMALS)
    + "footprint BLOB NOT NULL, PRIMARY KEY (zone, ra, planeid)) WITHOUT ROWID",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_plane ON {TABLE} (planeid)",
    f"CREATE TABLE IF NOT EXISTS {CLASSES} (class INTEGER PRIMARY KEY, max_radius REAL NOT NULL)",
]

INSERT = f"INSERT INTO {TABLE} VALUES ({', '.join('?' * (5 + len(NORMALS)))})"


def _class_radius(size_class: int) -> float:
    return SMALLEST_RADIUS * 2.0**size_class


def _zone_height(size_class: int) -> float:
    return _class_radius(size_class) / ZONES_PER_CLASS_RADIUS


def _zone(size_class: int, dec: float) -> int:
    last = math.ceil(180.0 / _zone_height(size_class)) - 1
    index = min(int((dec + 90.0) // _zone_height(size_class)), last)
    return (size_class << ZONE_BITS) | max(index, 0)


@dataclass(frozen=True)
class Placement:
    """Where footprints go in the index: one row each, and the radius of each class met."""

    rows: list[tuple]
    class_radius: dict[int, float]


def place(planeids: Sequence[int], records: np.ndarray, release_dates: Sequence[str]) -> Placement:
    """Index rows for footprint records (``spatial.footprint_records``)."""
    vertices = records[:, :12].reshape(-1, spatial.VERTICES, 3)
    centres = vertices.sum(axis=1)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cosines = np.einsum("nvk,nk->nv", vertices, centres).min(axis=1)
    radii = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
    classes = np.maximum(np.ceil(np.log2(np.maximum(radii, 1e-300) / SMALLEST_RADIUS)), 0)
    ra, dec = spatial.to_radec(centres)
    rows = []
    class_radius: dict[int, float] = {}
    for planeid, rec, c, r, a, d, released in zip(
        planeids, records, classes.astype(int), radii, ra, dec, release_dates, strict=True
    ):
        c = int(c)
        class_radius[c] = max(class_radius.get(c, 0.0), float(r))
        rows.append(
            (
                _zone(c, float(d)),
                float(a),
                int(planeid),
                str(released),
                *map(float, rec[12:]),
                spatial.record_bytes(rec),
            )
        )
    return Placement(rows, class_radius)


CENTRE_CLASS = 9
"""The class whose zones the centre index uses: 0.09375 degrees high. At ten million planes a
zone of it holds some 23 centres per degree of RA: a 0.1-degree cone reads three short runs.
SQLite floors the rounded quotient where Python floors the exact one, so a centre within a
rounding error below a zone's edge may be filed one zone up; the searches' MARGIN covers it."""

_CENTRE_BASE = CENTRE_CLASS << ZONE_BITS
_CENTRE_LAST = _zone(CENTRE_CLASS, 90.0) - _CENTRE_BASE


def centre_zone_sql(dec: str) -> str:
    """SQL of the centre zone of declination ``dec`` (a column): the first column of the
    plane table's centre index. Searches must write it exactly so for SQLite to use the index;
    ``dec + 90`` is never negative, so the cast floors."""
    return f"min(CAST(({dec} + 90.0) / {_zone_height(CENTRE_CLASS)!r} AS INTEGER), {_CENTRE_LAST})"


def centre_ranges(ra: float, dec: float, radius: float) -> list[tuple]:
    """(first zone, last zone, ra low, ra high) of the centre index holding every position
    within ``radius`` degrees of (ra, dec)."""
    reach = float(radius) + MARGIN
    return [
        (z0 - _CENTRE_BASE, z1 - _CENTRE_BASE, lo, hi)
        for z0, z1, lo, hi in _class_ranges(CENTRE_CLASS, float(ra) % 360.0, float(dec), reach)
    ]


def centre_near_sql(ra_column: str, dec_column: str, ra: float, dec: float, radius: float) -> str:
    """SQL true for every row whose centre (``ra_column``, ``dec_column``, degrees in [0, 360)
    and [-90, 90]) may lie within ``radius`` degrees of (ra, dec): an OR of the centre index's
    key ranges, which SQLite searches one by one (a cheap prefilter; the exact distance test
    comes after)."""
    keys = _range_terms(centre_zone_sql(dec_column), ra_column, centre_ranges(ra, dec, radius))
    return _balanced_or(keys)


def _range_terms(zone: str, ra: str, ranges: list[tuple]) -> list[str]:
    """SQL of each key range: ``zone`` and ``ra`` are the SQL of the key's two columns."""
    return [
        f"{zone} {f'= {z0}' if z0 == z1 else f'BETWEEN {z0} AND {z1}'} "
        f"AND {ra} BETWEEN {lo!r} AND {hi!r}"
        for z0, z1, lo, hi in ranges
    ]


def _ra_halfwidth(dec0: float, reach: float, low: float, high: float) -> float:
    """Largest RA offset (degrees) of the cap (dec0, reach) at declinations in [low, high];
    the cap holds no pole. The offset peaks where the cap's edge runs north-south, at
    sin(dec) = sin(dec0) / cos(reach), and falls off monotonically either side."""
    d0, q = math.radians(dec0), math.radians(reach)
    peak = math.degrees(math.asin(max(-1.0, min(1.0, math.sin(d0) / math.cos(q)))))
    if low <= peak <= high:
        return math.degrees(math.asin(min(math.sin(q) / math.cos(d0), 1.0)))
    d = math.radians(low if peak < low else high)
    cosine = (math.cos(q) - math.sin(d) * math.sin(d0)) / (math.cos(d) * math.cos(d0))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def _class_ranges(size_class: int, ra: float, dec: float, reach: float) -> list[tuple]:
    """(first zone, last zone, ra low, ra high) ranges holding every centre of this class
    within ``reach``. A cap much wider than the class's zones is searched in blocks of zones
    (a block's rows are scanned whole, the RA bound then only filters): thousands of
    one-zone ranges would cost more to plan than the extra rows cost to read."""
    first, last = size_class << ZONE_BITS, _zone(size_class, 90.0)
    if reach >= 90.0:
        return [(first, last, 0.0, 360.0)]
    low, high = max(dec - reach, -90.0), min(dec + reach, 90.0)
    holds_pole = dec + reach >= 90.0 or dec - reach <= -90.0
    h = _zone_height(size_class)
    south_zone, north_zone = _zone(size_class, low), _zone(size_class, high)
    block = -(-(north_zone - south_zone + 1) // MAX_ZONE_RANGES)
    ranges = []
    for start in range(south_zone, north_zone + 1, block):
        end = min(start + block - 1, north_zone)
        south = -90.0 + (start - first) * h
        north = -90.0 + (end - first + 1) * h
        half = 180.0
        if not holds_pole:
            half = _ra_halfwidth(dec, reach, max(low, south), min(high, north)) + MARGIN
        if half >= 180.0:
            ranges.append((start, end, 0.0, 360.0))
        elif ra - half < 0.0:
            ranges += [(start, end, 0.0, ra + half), (start, end, ra - half + 360.0, 360.0)]
        elif ra + half > 360.0:
            ranges += [(start, end, 0.0, ra + half - 360.0), (start, end, ra - half, 360.0)]
        else:
            ranges.append((start, end, ra - half, ra + half))
    return ranges


@dataclass(frozen=True)
class ZoneIndex:
    """The index as a search needs it: each size class present and its largest radius."""

    class_radius: dict[int, float]

    def ranges(self, ra: float, dec: float, radius: float, *, grow: bool = True) -> list[tuple]:
        """Key ranges holding every footprint that may meet the cap of ``radius`` degrees
        around (ra, dec); ``grow=False`` for footprints that must lie inside the cap, whose
        centres then do too."""
        out = []
        ra, dec = float(ra) % 360.0, float(dec)  # numpy scalars would print as np.float64(...)
        for size_class, largest in sorted(self.class_radius.items()):
            reach = float(radius) + (largest if grow else 0.0) + MARGIN
            out += _class_ranges(size_class, ra, dec, reach)
        return out

    def select(
        self,
        columns: str,
        condition: str,
        ra: float,
        dec: float,
        radius: float,
        *,
        grow: bool = True,
    ) -> str:
        """SQL selecting ``columns`` of the index rows near the cap that meet ``condition``.

        One SELECT per key range, joined by UNION ALL: the ranges never overlap, and SQLite's
        OR of ranges would spend more time proving that than reading the rows (a third of a
        search at 10 million planes)."""
        ranges = self.ranges(ra, dec, radius, grow=grow)
        if not ranges:
            return f"SELECT {columns} FROM {TABLE} WHERE 0"
        keys = _range_terms("zone", "ra", ranges)
        if len(keys) > MAX_UNION:
            return f"SELECT {columns} FROM {TABLE} WHERE {_balanced_or(keys)} AND {condition}"
        return " UNION ALL ".join(
            f"SELECT {columns} FROM {TABLE} WHERE {key} AND {condition}" for key in keys
        )


def _balanced_or(terms: list[str]) -> str:
    """``a OR b OR ...`` nested as a balanced tree: SQLite refuses expressions nested more
    than 1000 deep (its planner flattens the tree again and searches each range by the key)."""
    if len(terms) == 1:
        return f"({terms[0]})"
    middle = len(terms) // 2
    return f"({_balanced_or(terms[:middle])} OR {_balanced_or(terms[middle:])})"


def contains_sql(point: Iterable[float]) -> str:
    """SQL true where the row's footprint holds the unit vector ``point`` (boundary included),
    the same test as :func:`spatial.contains_point`, evaluated by SQLite itself."""
    x, y, z = (repr(float(c)) for c in point)
    return " AND ".join(
        f"n{i}x * {x} + n{i}y * {y} + n{i}z * {z} >= -1e-15" for i in range(spatial.VERTICES)
    )


def crosses_one_edge_sql(point: Iterable[float]) -> str:
    """SQL true where the unit vector ``point`` lies outside exactly one edge's great circle of
    a footprint with no acute corner (adjacent inward normals at 90 degrees or less apart).
    Then the point nearest to it on that great circle lies on the edge itself (moving toward
    the edge, it stays inside both neighbours), so with :func:`near_edges_sql` true the
    footprint meets the cap: an exact proof in SQL for most footprints a cap's rim crosses,
    which would otherwise each cost a Python call."""
    x, y, z = (repr(float(c)) for c in point)
    n = spatial.VERTICES
    outside = " + ".join(f"(n{i}x * {x} + n{i}y * {y} + n{i}z * {z} < 0)" for i in range(n))
    square = " AND ".join(
        f"n{i}x * n{j}x + n{i}y * n{j}y + n{i}z * n{j}z >= 0"
        for i, j in ((i, (i + 1) % n) for i in range(n))
    )
    return f"({outside}) = 1 AND {square}"


def meets_circle_sql(point: Iterable[float], radius_rad: float) -> str:
    """SQL true where the row's footprint meets the cap of ``radius_rad`` around the unit
    vector ``point``. In a WHERE clause SQLite evaluates each term only while the answer is
    open, so the order is the cost: most footprints met hold the centre (four dot products,
    settled); of the rest, those a cap's rim crosses with one edge are proved in SQL
    (:func:`crosses_one_edge_sql`), and only the few near a corner call the exact test
    (``sx_intersects_circle``)."""
    x, y, z = (repr(float(c)) for c in point)
    return (
        f"({contains_sql(point)} OR ({near_edges_sql(point, radius_rad)} AND "
        f"({crosses_one_edge_sql(point)} "
        f"OR sx_intersects_circle(footprint, {x}, {y}, {z}, {float(radius_rad)!r}) = 1)))"
    )


def near_edges_sql(point: Iterable[float], radius_rad: float) -> str:
    """SQL true where the unit vector ``point`` lies within ``radius_rad`` of the inner side of
    every edge's great circle: true of every footprint that meets the cap, so a cheap first
    test before the exact one."""
    if radius_rad >= math.pi / 2:
        return "1"
    x, y, z = (repr(float(c)) for c in point)
    limit = repr(-math.sin(radius_rad) - 1e-15)
    return " AND ".join(
        f"n{i}x * {x} + n{i}y * {y} + n{i}z * {z} >= {limit}" for i in range(spatial.VERTICES)
    )
