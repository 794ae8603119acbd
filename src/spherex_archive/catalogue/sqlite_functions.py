"""SQL functions the translator's SQLite output calls: exact spherical tests on the footprint
records of catalogue/spatial.py, and the mathematical functions a SQLite build may lack.

Constant shapes reach these functions as blobs of unit vectors made by ``vertices_blob`` (the
translator does the trigonometry once, in Python); per-row shapes come as degrees.
"""

from __future__ import annotations

import math
import random
import sqlite3
from functools import lru_cache

import numpy as np

from spherex_archive.catalogue import spatial


def vertices_blob(vertices: np.ndarray) -> bytes:
    """(k, 3) unit vectors of a convex polygon, as passed to the ``sx_*polygon`` functions."""
    return np.ascontiguousarray(vertices, dtype="<f8").tobytes()


@lru_cache(maxsize=64)
def _polygon(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.frombuffer(blob, dtype="<f8").reshape(-1, 3)
    return spatial.polygon_normals(vertices)


def _record(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").reshape(1, 24)


def _vector(ra: float, dec: float) -> np.ndarray:
    return spatial.unit_vectors(ra, dec)


def contains_radec(blob: bytes | None, ra: float | None, dec: float | None) -> int | None:
    if blob is None or ra is None or dec is None:
        return None
    x, y, z = _vector(ra, dec)
    return spatial.contains_point_scalar(blob, x, y, z)


def intersects_circle(blob, x, y, z, radius_rad) -> int | None:
    if blob is None or radius_rad is None:
        return None
    return spatial.intersects_circle_scalar(blob, x, y, z, radius_rad)


def intersects_circle_radec(blob, ra, dec, radius_deg) -> int | None:
    if None in (ra, dec, radius_deg):
        return None
    return intersects_circle(blob, *_vector(ra, dec), math.radians(radius_deg))


def intersects_polygon(blob, polygon: bytes) -> int | None:
    if blob is None:
        return None
    vertices, _ = _polygon(polygon)
    return int(spatial.intersects_polygon(_record(blob), vertices)[0])


def intersects_records(blob, other) -> int | None:
    if blob is None or other is None:
        return None
    vertices = np.frombuffer(other, dtype="<f8")[:12].reshape(4, 3)
    return int(spatial.intersects_polygon(_record(blob), vertices)[0])


def within_circle(blob, x, y, z, cos_radius) -> int | None:
    """Every vertex of the footprint in the cap: the whole footprint is (both are convex)."""
    if blob is None:
        return None
    v = np.frombuffer(blob, dtype="<f8")[:12].reshape(4, 3)
    return int(np.all(v @ np.array([x, y, z]) >= cos_radius - 1e-15))


def within_polygon(blob, polygon: bytes) -> int | None:
    if blob is None:
        return None
    _, normals = _polygon(polygon)
    v = np.frombuffer(blob, dtype="<f8")[:12].reshape(4, 3)
    return int(np.all(v @ normals.T >= -1e-15))


def contains_circle(blob, x, y, z, radius_rad) -> int | None:
    if blob is None:
        return None
    centre = np.array([x, y, z])
    record = _record(blob)
    if not spatial.contains_point(record, centre)[0]:
        return 0
    return int(spatial.distance_to_boundary(record, centre)[0] >= radius_rad)


def contains_polygon(blob, polygon: bytes) -> int | None:
    if blob is None:
        return None
    vertices, _ = _polygon(polygon)
    return int(all(spatial.contains_point_scalar(blob, *v) for v in vertices))


def polygon_contains_radec(polygon: bytes, ra, dec) -> int | None:
    if ra is None or dec is None:
        return None
    _, normals = _polygon(polygon)
    return int(np.all(normals @ _vector(ra, dec) >= -1e-15))


def distance(ra1, dec1, ra2, dec2) -> float | None:
    """Angular distance in degrees (atan2 form: accurate at 0 and 180 degrees)."""
    if None in (ra1, dec1, ra2, dec2):
        return None
    a, b = _vector(ra1, dec1), _vector(ra2, dec2)
    return math.degrees(math.atan2(np.linalg.norm(np.cross(a, b)), float(a @ b)))


SPATIAL = {
    "sx_contains_radec": (3, contains_radec),
    "sx_intersects_circle": (5, intersects_circle),
    "sx_intersects_circle_radec": (4, intersects_circle_radec),
    "sx_intersects_polygon": (2, intersects_polygon),
    "sx_intersects_records": (2, intersects_records),
    "sx_within_circle": (5, within_circle),
    "sx_within_polygon": (2, within_polygon),
    "sx_contains_circle": (5, contains_circle),
    "sx_contains_polygon": (2, contains_polygon),
    "sx_polygon_contains_radec": (3, polygon_contains_radec),
    "sx_distance": (4, distance),
}


def _math(function, domain_error=None):
    def call(*args):
        if any(a is None for a in args):
            return None
        try:
            return function(*map(float, args))
        except (ValueError, ZeroDivisionError, OverflowError):
            return domain_error  # SQLite's own math functions give NULL outside the domain

    return call


# name -> (number of arguments, Python version used when the SQLite build lacks it)
MATH = {
    "acos": (1, math.acos),
    "asin": (1, math.asin),
    "atan": (1, math.atan),
    "atan2": (2, math.atan2),
    "cos": (1, math.cos),
    "sin": (1, math.sin),
    "tan": (1, math.tan),
    "cot": (1, lambda x: 1.0 / math.tan(x)),
    "degrees": (1, math.degrees),
    "radians": (1, math.radians),
    "exp": (1, math.exp),
    "ln": (1, math.log),
    "log10": (1, math.log10),
    "power": (2, math.pow),
    "sqrt": (1, math.sqrt),
    "floor": (1, lambda x: float(math.floor(x))),
    "ceiling": (1, lambda x: float(math.ceil(x))),
    "pi": (0, lambda: math.pi),
    "trunc": (1, lambda x: float(math.trunc(x))),
}


def _truncate(x, digits=0):
    if x is None or digits is None:
        return None
    scale = 10.0 ** int(digits)
    return math.trunc(float(x) * scale) / scale


def register(conn: sqlite3.Connection) -> None:
    """Add the translator's functions to a connection; math functions only where missing."""
    for name, (n, function) in SPATIAL.items():
        conn.create_function(name, n, function, deterministic=True)
    conn.create_function("sx_truncate", 2, _truncate, deterministic=True)
    conn.create_function("sx_rand", 0, random.random)
    for name, (n, function) in MATH.items():
        try:
            conn.execute(f"SELECT {name}({', '.join(['0.5'] * n)})")
        except sqlite3.OperationalError:
            conn.create_function(name, n, _math(function), deterministic=True)
