"""SIA 2.0 image search (SIA §2, ivoa-services §7, spherex-products §5.1): the parameters of one
request become one ADQL query on ``spherex.obscore``, run by the query engine.

Going through ADQL keeps this module free of SQL dialects and spatial indexes: the translator
already turns INTERSECTS and CONTAINS with constant shapes into index lookups on both catalogues.
Repeats of a parameter are ORed, different parameters ANDed, and a NULL column never matches.

The answer has IRSA's 51 columns in IRSA's order. Unlike ``spherex.obscore``, where access_url is
the DataLink document (ObsTAP convention), the SIA answer links the file itself, as IRSA does.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from spherex_archive.adql import tree as t
from spherex_archive.adql.parser import parse
from spherex_archive.catalogue import spatial
from spherex_archive.catalogue.base import Catalogue
from spherex_archive.formats.cells import compile_function
from spherex_archive.model import tables as model
from spherex_archive.model.schema import Column
from spherex_archive.services.query import QueryAnswer, QueryEngine
from spherex_archive.services.shapes import ValueProblem, number, parse_pos

FILE_FORMAT = "image/fits"
"""IRSA's access_format for SPHEREx files in SIA answers (spec §5.1), calibration files too."""

POL_STATES = ("I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI", "POLA")

RANGE_TOLERANCE_DEG = 3 / 3600
"""RANGE boxes have parallels for edges, which polygons (great-circle edges) only approximate:
the pieces are made narrow enough that the answer may include images up to this far outside a
parallel edge, and never misses one inside."""

MAX_SHAPES = 2000
"""Convex pieces one request may produce (a RANGE over most of the sky at mid latitude is
about 800); beyond that the request is refused rather than run for minutes."""

_ACCESS_URL = model.SPHEREX_OBSCORE_ORDER.index("access_url")
_ACCESS_FORMAT = model.SPHEREX_OBSCORE_ORDER.index("access_format")

STRING_PARAMETERS = {
    "COLLECTION": "obs_collection",
    "FACILITY": "facility_name",
    "INSTRUMENT": "instrument_name",
    "DPTYPE": "dataproduct_type",
    "TARGET": "target_name",
}
RANGE_PARAMETERS = {
    "FOV": "s_fov",
    "SPATRES": "s_resolution",
    "SPECRP": "em_res_power",
    "EXPTIME": "t_exptime",
    "TIMERES": "t_resolution",
}
INTERVAL_PARAMETERS = {"BAND": ("em_min", "em_max"), "TIME": ("t_min", "t_max")}
QUERY_PARAMETERS = (
    "POS",
    *INTERVAL_PARAMETERS,
    "POL",
    *RANGE_PARAMETERS,
    "ID",
    *STRING_PARAMETERS,
    "CALIB",
    "FORMAT",
)
"""Every SIA 2.0 query parameter this service answers (others are ignored, as SIA allows)."""


class SiaUsageError(ValueProblem):
    """A parameter the service cannot take (answered as a UsageFault)."""


def _columns() -> list[Column]:
    columns = list(model.SPHEREX_OBSCORE.columns)
    columns[_ACCESS_URL] = dataclasses.replace(
        columns[_ACCESS_URL], description="URL of the file (its DataLink document: obscore)"
    )
    columns[_ACCESS_FORMAT] = dataclasses.replace(
        columns[_ACCESS_FORMAT], description="Content type of the file at access_url"
    )
    return columns


COLUMNS = _columns()
"""The 51 columns of the answer, in IRSA's order, with ObsCore types, units and UCDs."""


# --------------------------------------------------------------------------------------------
# Values


def interval(text: str, name: str) -> tuple[float, float]:
    """``lo hi`` (both included, ``-Inf``/``+Inf`` for open ends) or one value (both ends)."""
    words = text.split()
    if len(words) not in (1, 2):
        raise SiaUsageError(f"{name}: expected 'lo hi' or one value, not {text!r}")
    lo, hi = (number(w, name) for w in (words * 2)[:2])
    if lo > hi:
        raise SiaUsageError(f"{name}: the lower bound {lo:g} is above the upper bound {hi:g}")
    return lo, hi


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _real(value: float) -> str:
    return repr(float(value))


# --------------------------------------------------------------------------------------------
# Shapes (POS)


def _check_position(ra: float, dec: float, name: str = "POS") -> None:
    if not 0 <= ra <= 360 or not -90 <= dec <= 90:
        raise SiaUsageError(
            f"{name}: position ({ra:g}, {dec:g}) is outside RA 0..360, Dec -90..90 degrees"
        )


def pos_condition(text: str) -> str:
    """The ADQL condition for one POS value: the shape intersects the footprint."""
    shape = parse_pos(text)
    numbers = shape.numbers
    if shape.kind == "CIRCLE":
        ra, dec, radius = numbers
        _check_position(ra, dec)
        if not 0 <= radius <= 180:
            raise SiaUsageError(f"POS: the radius {radius:g} is not between 0 and 180 degrees")
        if radius == 0:  # a point: the images that contain it
            return f"CONTAINS(POINT('ICRS', {_real(ra)}, {_real(dec)}), s_region) = 1"
        if radius >= 90:  # the translator's circles stay within a hemisphere
            return _outside_cap((ra + 180) % 360, -dec, 180 - radius)
        return (
            f"INTERSECTS(s_region, CIRCLE('ICRS', {_real(ra)}, {_real(dec)}, {_real(radius)})) = 1"
        )
    if shape.kind == "RANGE":
        return range_condition(*numbers)
    for ra, dec in shape.vertices:
        _check_position(ra, dec)
    return _any_polygon(convex_pieces(shape.vertices))


def _outside_cap(ra: float, dec: float, radius: float) -> str:
    """Footprints not wholly inside the cap: those meeting the rest of the sphere."""
    if radius <= 0:
        return "s_region IS NOT NULL"
    return (
        f"(s_region IS NOT NULL AND CONTAINS(s_region, CIRCLE('ICRS', {_real(ra)}, "
        f"{_real(dec)}, {_real(radius)})) = 0)"
    )


def _polygon(vertices: Sequence[tuple[float, float]]) -> str:
    numbers = ", ".join(f"{_real(ra % 360)}, {_real(dec)}" for ra, dec in vertices)
    return f"INTERSECTS(s_region, POLYGON('ICRS', {numbers})) = 1"


def _any_polygon(pieces: list[list[tuple[float, float]]]) -> str:
    if len(pieces) > MAX_SHAPES:
        raise SiaUsageError(f"POS: the region needs {len(pieces)} pieces; split the request")
    return "(" + " OR ".join(_polygon(p) for p in pieces) + ")"


def range_condition(ra1: float, ra2: float, dec1: float, dec2: float) -> str:
    """RANGE ra1 ra2 dec1 dec2: meridians and parallels for edges; infinite bounds open;
    ra1 > ra2 wraps through RA 0."""
    for value, name, low, high in ((dec1, "dec1", -90, 90), (dec2, "dec2", -90, 90)):
        if math.isfinite(value) and not low <= value <= high:
            raise SiaUsageError(f"POS: RANGE {name} {value:g} is outside -90..90")
    for value, name in ((ra1, "ra1"), (ra2, "ra2")):
        if math.isfinite(value) and not 0 <= value <= 360:
            raise SiaUsageError(f"POS: RANGE {name} {value:g} is outside 0..360")
    south, north = max(dec1, -90.0), min(dec2, 90.0)
    if south > north:
        raise SiaUsageError(f"POS: RANGE dec1 {dec1:g} is above dec2 {dec2:g}")
    if not (math.isfinite(ra1) and math.isfinite(ra2)) or abs(ra2 - ra1) >= 360:
        return _all_longitudes(south, north)
    if south == north and abs(south) == 90:  # a pole
        return f"CONTAINS(POINT('ICRS', 0.0, {_real(south)}), s_region) = 1"
    width = (ra2 - ra1) % 360
    # Each piece lies in one hemisphere, so its polygon stays convex and small.
    spans = [(south, min(north, 0.0))] if south < 0 else []
    if north > 0 or not spans:
        spans.append((max(south, 0.0), north))
    return _any_polygon([p for lo, hi in spans for p in _range_pieces(ra1, width, lo, hi)])


def _all_longitudes(south: float, north: float) -> str:
    """A band of declination all around the sky: it meets a footprint when the cap north of
    ``south`` and the cap south of ``north`` both do (a footprint is connected)."""
    conditions = []
    if south > -90:  # meets the sky north of `south`
        conditions.append(
            f"INTERSECTS(s_region, CIRCLE('ICRS', 0.0, 90.0, {_real(90 - south)})) = 1"
            if south >= 0
            else _outside_cap(0.0, -90.0, 90 + south)
        )
    if north < 90:
        conditions.append(
            f"INTERSECTS(s_region, CIRCLE('ICRS', 0.0, -90.0, {_real(90 + north)})) = 1"
            if north <= 0
            else _outside_cap(0.0, 90.0, 90 - north)
        )
    return "(" + " AND ".join(conditions) + ")" if conditions else "s_region IS NOT NULL"


def _range_pieces(
    ra1: float, width: float, lo: float, hi: float
) -> list[list[tuple[float, float]]]:
    """Convex quadrilaterals (triangles at a pole) covering RA [ra1, ra1+width] x Dec [lo, hi],
    in one hemisphere. A great circle through two points of a parallel bulges poleward of it,
    so the equator-side corners are moved toward the equator until the chord's highest point
    touches the parallel: the pieces cover the box and exceed it by at most the tolerance."""
    equator_side = lo if hi > 0 else hi
    pole_side = hi if hi > 0 else lo
    worst = max(abs(math.sin(2 * math.radians(d))) for d in (lo, hi))
    tolerance = math.radians(RANGE_TOLERANCE_DEG)
    half = math.sqrt(4 * tolerance / worst) if worst > 0 else math.pi
    step = min(math.degrees(2 * half), 60.0, width) if width > 0 else 0.0
    count = max(1, math.ceil(width / step)) if step else 1
    if count > MAX_SHAPES:
        raise SiaUsageError("POS: the RANGE is too large for one request; split it")
    edges = np.linspace(ra1, ra1 + width, count + 1)
    pieces = []
    for a, b in itertools.pairwise(edges):
        h = math.radians(b - a) / 2
        inner = math.degrees(math.atan(math.tan(math.radians(equator_side)) * math.cos(h)))
        if width == 0:  # a meridian segment: a thin sliver of the tolerance's width
            a, b = a - RANGE_TOLERANCE_DEG, b + RANGE_TOLERANCE_DEG
        if abs(pole_side) >= 90:
            corners = [(a, inner), (b, inner), (0.0, pole_side)]
        else:
            corners = [(a, inner), (b, inner), (b, pole_side), (a, pole_side)]
        if lo == hi:  # a parallel: widen it by the tolerance on both sides
            corners = [
                (a, inner - RANGE_TOLERANCE_DEG),
                (b, inner - RANGE_TOLERANCE_DEG),
                (b, min(90.0, pole_side + RANGE_TOLERANCE_DEG)),
                (a, min(90.0, pole_side + RANGE_TOLERANCE_DEG)),
            ]
        pieces.append(corners)
    return pieces


def convex_pieces(vertices: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """The polygon as convex pieces: itself when convex, else triangles (ear clipping in the
    gnomonic projection at its centre, where great-circle edges are straight lines). The inside
    is the smaller of the two sides (SIA §2.1), i.e. the side around the vertices' mean."""
    v = spatial.unit_vectors([p[0] for p in vertices], [p[1] for p in vertices])
    centre = v.sum(axis=0)
    if np.linalg.norm(centre) < 1e-9:
        raise SiaUsageError("POS: the POLYGON has no smaller side (it splits the sky in halves)")
    if spatial.is_convex(v):
        return [vertices]
    centre /= np.linalg.norm(centre)
    if np.any(v @ centre <= 0.01):
        raise SiaUsageError(
            "POS: a non-convex POLYGON must lie within about 89 degrees of its centre"
        )
    east = np.cross([0.0, 0.0, 1.0], centre)
    if np.linalg.norm(east) < 1e-9:
        east = np.array([0.0, 1.0, 0.0])
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    projected = v / (v @ centre)[:, None]
    xy = np.column_stack([projected @ east, projected @ north])
    return [[vertices[i] for i in tri] for tri in _ear_clip(xy)]


def _ear_clip(xy: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles of a simple plane polygon (either orientation); SiaUsageError if it crosses
    itself."""

    def cross(o: int, a: int, b: int) -> float:
        return float(
            (xy[a, 0] - xy[o, 0]) * (xy[b, 1] - xy[o, 1])
            - (xy[a, 1] - xy[o, 1]) * (xy[b, 0] - xy[o, 0])
        )

    n = len(xy)
    for i in range(n):  # a simple polygon: no two edges that do not share a corner may meet
        for j in range(i + 2, n - (i == 0)):
            a, b, c, d = i, (i + 1) % n, j, (j + 1) % n
            if cross(a, b, c) * cross(a, b, d) < 0 and cross(c, d, a) * cross(c, d, b) < 0:
                raise SiaUsageError("POS: the POLYGON crosses itself")
    order = list(range(n))
    area = sum(cross(0, order[i], order[i + 1]) for i in range(1, len(order) - 1))
    if area < 0:
        order.reverse()
    triangles = []
    while len(order) > 3:
        for k in range(len(order)):
            a, b, c = order[k - 1], order[k], order[(k + 1) % len(order)]
            if cross(a, b, c) <= 0:
                continue
            others = (p for p in order if p not in (a, b, c))
            if any(
                cross(a, b, p) >= 0 and cross(b, c, p) >= 0 and cross(c, a, p) >= 0 for p in others
            ):
                continue
            triangles.append((a, b, c))
            order.remove(b)
            break
        else:
            raise SiaUsageError("POS: the POLYGON crosses itself")
    triangles.append(tuple(order))
    return triangles


# --------------------------------------------------------------------------------------------
# The query


def build_adql(params: Mapping[str, Sequence[str]], collections: Sequence[str]) -> str:
    """The ADQL for a request's parameters (names upper case); ``collections`` are the ones
    this archive holds: naming another is a usage error, not an empty answer."""
    conditions = []

    def any_of(parts: list[str]) -> None:
        if parts:
            conditions.append(parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")")

    any_of([pos_condition(v) for v in params.get("POS", ())])
    for name, (low_column, high_column) in INTERVAL_PARAMETERS.items():
        parts = []
        for value in params.get(name, ()):
            lo, hi = interval(value, name)
            if name == "BAND" and hi < 0:
                raise SiaUsageError("BAND: wavelengths are positive (metres)")
            terms = [f"{low_column} <= {_real(hi)}"] if math.isfinite(hi) else []
            terms += [f"{high_column} >= {_real(lo)}"] if math.isfinite(lo) else []
            parts.append(" AND ".join(terms) or f"{low_column} IS NOT NULL")
        any_of([f"({p})" for p in parts])
    for name, column in RANGE_PARAMETERS.items():
        parts = []
        for value in params.get(name, ()):
            lo, hi = interval(value, name)
            terms = [f"{column} >= {_real(lo)}"] if math.isfinite(lo) else []
            terms += [f"{column} <= {_real(hi)}"] if math.isfinite(hi) else []
            parts.append(" AND ".join(terms) or f"{column} IS NOT NULL")
        any_of([f"({p})" for p in parts])
    states = []
    for value in params.get("POL", ()):
        if value not in POL_STATES:
            raise SiaUsageError(f"POL: {value!r} is not one of {' '.join(POL_STATES)}")
        states.append(f"pol_states LIKE {_literal('%/' + value + '/%')}")
    any_of(states)
    any_of([f"LOWER(obs_publisher_did) = {_literal(v.lower())}" for v in params.get("ID", ())])
    for value in params.get("COLLECTION", ()):
        if value not in collections:
            raise SiaUsageError(
                f"COLLECTION: unknown collection {value!r}; this archive holds "
                + (", ".join(collections) or "no collections yet")
            )
    for name, column in STRING_PARAMETERS.items():
        values = params.get(name, ())
        if values:
            conditions.append(f"{column} IN ({', '.join(_literal(v) for v in values)})")
    levels = []
    for value in params.get("CALIB", ()):
        if value.strip() not in ("0", "1", "2", "3", "4"):
            raise SiaUsageError(f"CALIB: {value!r} is not a calibration level 0-4")
        levels.append(value.strip())
    if levels:
        conditions.append(f"calib_level IN ({', '.join(levels)})")
    formats = params.get("FORMAT", ())
    if formats and FILE_FORMAT not in formats:
        conditions.append("1 = 0")  # every file here is FITS
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT * FROM spherex.obscore{where}"


FETCHED = tuple(
    name
    for name in model.SPHEREX_OBSCORE_ORDER
    if name not in model.SPHEREX_OBSCORE_CONSTANTS and name not in ("access_url", "access_format")
)
"""The columns asked from the database (with the file path after them): the others are the
same for every image, and reading them costs as much as the rest of the answer."""


@lru_cache(maxsize=1)
def _select() -> t.Select:
    """The select list, parsed once: parsing thirty names costs a millisecond per request."""
    names = ", ".join([*FETCHED, '"_uri"'])
    return parse(f"SELECT {names} FROM spherex.obscore").body


def search_tree(adql: str) -> t.Query:
    """``build_adql``'s query with the fetched columns in place of ``*``."""
    where = parse(adql).body.where
    return t.Query(dataclasses.replace(_select(), where=where))


def _widener() -> str:
    """Source of ``widen(row, prefix)``: a fetched row -> the 51 cells of the answer, the
    constants filled in and access_url the file's URL (compiled: it runs once per row)."""
    cells = []
    for name in model.SPHEREX_OBSCORE_ORDER:
        if name == "access_url":
            cells.append(f"_prefix + row[{len(FETCHED)}]")
        elif name == "access_format":
            cells.append(repr(FILE_FORMAT))
        elif name == "upload_row_id":
            cells.append("1")  # IRSA's answers carry 1 (spec §5.1)
        elif name in model.SPHEREX_OBSCORE_CONSTANTS:
            cells.append(repr(model.SPHEREX_OBSCORE_CONSTANTS[name]))
        else:
            cells.append(f"row[{FETCHED.index(name)}]")
    return f"def widen(row, _prefix):\n    return ({', '.join(cells)},)\n"


class SiaService:
    """SIA 2.0 searches on one catalogue; files are linked under ``base_url``."""

    def __init__(self, engine: QueryEngine, base_url: str) -> None:
        self.engine = engine
        self.base_url = base_url.rstrip("/")

    @property
    def catalogue(self) -> Catalogue:
        return self.engine.catalogue

    def collections(self) -> list[str]:
        return self.catalogue.collections()

    def search(
        self,
        params: Mapping[str, Sequence[str]],
        maxrec: int,
        collections: Sequence[str] | None = None,
    ) -> QueryAnswer:
        """The images matching ``params``, at most ``maxrec`` of them (0: none, the metadata
        only). ``collections``: this archive's, when the caller has them already. Raises
        SiaUsageError for a bad parameter."""
        if collections is None:
            collections = self.collections()
        tree = search_tree(build_adql(params, collections))
        answer = self.engine.run(tree, maxrec=maxrec, internal=True)
        answer.columns = COLUMNS
        answer.rows = map(_WIDEN, answer.rows, itertools.repeat(self.base_url + "/"))
        return answer


_WIDEN = compile_function("widen", _widener(), {})
