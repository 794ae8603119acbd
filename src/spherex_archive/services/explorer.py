"""The Data Explorer's searches: a form (targets, radius, time, detectors, wavelengths,
collections, column filters) becomes one ADQL query on ``spherex.obscore``, run by the query
engine that serves SIA and TAP, so the three can never disagree and the embargo views apply.

The position, time, wavelength and collection constraints are SIA's own conditions (the form is
translated into SIA parameters and given to :func:`~spherex_archive.services.sia.build_adql`);
detectors and the results table's column filters are ANDed on top. The first page of a search
reads the whole order of its dataset ids once and keeps it (the total is its length); later pages
are a slice of it and a lookup by id. Beyond :data:`MAX_ORDERED` matches a page is ``TOP`` rows
after ``OFFSET`` in a stable order (the chosen column, then the dataset id) and the total a COUNT.
Orders and counts are kept in small caches keyed by the conditions and by the catalogue's state
(the collections' plane counts, update times and embargo dates), so turning pages never recounts
and an ingest or an ended embargo does.

Footprints (:meth:`ExplorerService.footprint_set`) take their total from the same kept order
and are parsed for all images at once with numpy; they are answered as JSON or as one compact
binary block (:meth:`Footprints.to_binary`) that the browser reads without parsing.
"""

from __future__ import annotations

import math
import shlex
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import numpy as np
import orjson

from spherex_archive.catalogue.spatial import polygon_arrays
from spherex_archive.config import Settings
from spherex_archive.ingest.coverage import now_text
from spherex_archive.ingest.rows import URI_PREFIX
from spherex_archive.model import tables as model
from spherex_archive.model.schema import Column
from spherex_archive.products.detectors import DETECTORS
from spherex_archive.services.datalink import LINKS_PATH, PREVIEW_PATH
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.shapes import ValueProblem
from spherex_archive.services.sia import build_adql

DEFAULT_COLUMNS = (
    "obs_publisher_did",
    "obs_collection",
    "obs_id",
    "energy_bandpassname",
    "t_min",
    "t_exptime",
    "em_min",
    "em_max",
    "s_ra",
    "s_dec",
    "access_estsize",
)
"""The results table's columns unless the request names others (the detector is
``energy_bandpassname``: ``instrument_name`` is SPHEREx for every image)."""

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
FOOTPRINT_LIMIT = 20_000
MAX_FOOTPRINT_LIMIT = 100_000
MAX_TARGETS = 1000
"""Positions one multi-object search may OR together."""

OPERATORS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
"""Filter operators, and ``like``: a case-insensitive substring of a text column."""

COLUMNS: dict[str, Column] = {c.name: c for c in model.SPHEREX_OBSCORE.columns}
_NUMERIC = ("short", "int", "long", "float", "double")
_LINKED = ("obs_publisher_did", "dataproduct_type", '"_uri"', "s_region", "energy_bandpassname")
"""Columns every page also reads (``_uri`` hidden), for each row's links and footprint."""

COUNT_CACHE_SIZE = 256
MAX_ORDERED = 200_000
"""Matches up to which a search's whole order of ids is kept (about 20 MB at the most)."""
ORDER_CACHE_SIZE = 4
FOOTPRINT_CACHE_SIZE = 4
DATASET_SECONDS = 30.0
"""How long a dataset id's current file is trusted before the catalogue is asked again."""


class BadParameter(ValueProblem):
    """A parameter the Explorer cannot take; the message names it (answered 400)."""


class UnknownDataset(LookupError):
    """Dataset ids that are not released here (answered 404)."""


@dataclass(frozen=True)
class Filter:
    """``column:op:value`` from the results table."""

    column: str
    op: str
    value: str


@dataclass
class Search:
    """What to find: the form's constraints, all optional (but not all absent)."""

    targets: list[tuple[float, float]] = field(default_factory=list)
    radius: float = 0.0
    """Degrees; 0: the images whose footprint contains the target."""
    time: tuple[float | None, float | None] = (None, None)
    """MJD."""
    detectors: list[int] = field(default_factory=list)
    wavelength: tuple[float | None, float | None] = (None, None)
    """Microns; an image matches when its [em_min, em_max] overlaps this."""
    collections: list[str] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)


@dataclass
class Page:
    columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))
    sort: str = "t_min"
    descending: bool = False
    offset: int = 0
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class DatasetFile:
    """A released dataset and its current file."""

    did: str
    obs_id: str
    t_min: float | None
    bandpass: str | None
    product_type: str | None
    uri: str

    @property
    def key(self) -> str:
        """The file's key in the store and in the S3 mirror."""
        return self.uri.removeprefix(URI_PREFIX)

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def detector(self) -> int | None:
        return detector_number(self.bandpass)


def detector_number(bandpass: str | None) -> int | None:
    """3 for ``SPHEREx-D3``; None for a file of no detector."""
    if bandpass and bandpass.startswith("SPHEREx-D") and bandpass[9:].isdigit():
        return int(bandpass[9:])
    return None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _real(value: float) -> str:
    return repr(float(value))


def _bound(value: float | None, infinity: str) -> str:
    return infinity if value is None else _real(value)


def column(name: str, parameter: str) -> Column:
    """The ``spherex.obscore`` column ``name``; BadParameter naming ``parameter`` if none."""
    found = COLUMNS.get(name.strip())
    if found is None:
        raise BadParameter(
            f"{parameter}: there is no column {name!r}; the columns are "
            + ", ".join(model.SPHEREX_OBSCORE_ORDER)
        )
    return found


def filter_condition(f: Filter) -> str:
    """The ADQL condition of one results-table filter."""
    col = column(f.column, "filter")
    numeric = col.datatype in _NUMERIC
    if f.op == "like":
        if numeric:
            raise BadParameter(
                f"filter: 'like' looks for text, and {col.name} is a number: use eq, lt, gt ..."
            )
        pattern = "%" + f.value + "%"
        return f"{col.name} ILIKE {_literal(pattern)}"
    if f.op not in OPERATORS:
        raise BadParameter(
            f"filter: unknown operator {f.op!r} for {col.name}; use one of "
            + ", ".join([*OPERATORS, "like"])
        )
    if not numeric:
        return f"{col.name} {OPERATORS[f.op]} {_literal(f.value)}"
    try:
        value = float(f.value)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadParameter(f"filter: {col.name} is a number, and {f.value!r} is not one")
    return f"{col.name} {OPERATORS[f.op]} {_real(value)}"


def where_clause(search: Search, collections: Sequence[str]) -> str:
    """The ADQL conditions of a search (without ``WHERE``; empty when it has none)."""
    for ra, dec in search.targets:
        if not (0 <= ra <= 360 and -90 <= dec <= 90):
            raise BadParameter(
                f"target: ({ra:g}, {dec:g}) is off the sky: RA 0..360, Dec -90..90 degrees"
            )
    if not 0 <= search.radius <= 180:
        raise BadParameter(f"sr: the radius {search.radius:g} is not between 0 and 180 degrees")
    if len(search.targets) > MAX_TARGETS:
        raise BadParameter(f"target: at most {MAX_TARGETS} targets in one search")
    for name, (lo, hi) in (("time", search.time), ("wl", search.wavelength)):
        if lo is not None and hi is not None and lo > hi:
            raise BadParameter(f"{name}_min ({lo:g}) is above {name}_max ({hi:g})")
    for detector in search.detectors:
        if detector not in DETECTORS:
            raise BadParameter(f"detector: {detector} is not a SPHEREx detector (1 to 6)")
    for name in search.collections:
        if name not in collections:
            raise BadParameter(
                f"collection: this archive holds no collection {name!r}; it holds "
                + (", ".join(collections) or "none yet")
            )
    sia: dict[str, list[str]] = {
        "POS": [f"CIRCLE {ra!r} {dec!r} {search.radius!r}" for ra, dec in search.targets],
        "COLLECTION": list(dict.fromkeys(search.collections)),
    }
    if search.time != (None, None):
        sia["TIME"] = [f"{_bound(search.time[0], '-Inf')} {_bound(search.time[1], '+Inf')}"]
    lo, hi = search.wavelength
    if (lo, hi) != (None, None):
        metres = [None if v is None else v * 1e-6 for v in (lo, hi)]
        sia["BAND"] = [f"{_bound(metres[0], '-Inf')} {_bound(metres[1], '+Inf')}"]
    adql = build_adql(sia, collections)
    head, _, where = adql.partition(" WHERE ")
    assert head == "SELECT * FROM spherex.obscore"
    conditions = [where] if where else []
    if search.detectors:
        names = ", ".join(_literal(f"SPHEREx-D{d}") for d in sorted(set(search.detectors)))
        conditions.append(f"energy_bandpassname IN ({names})")
    conditions += [filter_condition(f) for f in search.filters]
    return " AND ".join(conditions)


def _with_where(select: str, where: str) -> str:
    return f"{select} WHERE {where}" if where else select


def order_clause(sort: Column, descending: bool) -> str:
    """`` ORDER BY`` the column, then the dataset id: a stable order, so pages never overlap."""
    order = f" ORDER BY {sort.adql_name} {'DESC' if descending else 'ASC'}"
    if sort.name != "obs_publisher_did":
        order += ", obs_publisher_did ASC"
    return order


DEFAULT_ORDER = order_clause(COLUMNS["t_min"], False)
"""The results' default order, and the footprints' order."""


def rounded_polygons(counts: np.ndarray, vertices: np.ndarray) -> list[list[float]]:
    """Each polygon as a flat ``ra, dec, ...`` list rounded to 1e-4 deg (0.36 arcsec)."""
    if not len(counts):
        return []
    flat = np.round(vertices, 4).ravel()
    return [part.tolist() for part in np.split(flat, np.cumsum(counts)[:-1] * 2)]


FOOTPRINTS_MAGIC = b"SXF1"
"""First bytes of a binary footprint answer (the 1 is its layout's version)."""


@dataclass
class Footprints:
    """The footprints of the first images of a search, in the default order: ``ids[i]`` has
    ``counts[i]`` vertices, the next ones of ``vertices``; ``detectors[i]`` is 1-6 (0: none)."""

    total: int
    """Every image matching the search, with a footprint or not (the results table's total)."""
    truncated: bool
    """Whether images beyond the first ``limit`` were left out."""
    ids: list[str]
    detectors: np.ndarray
    counts: np.ndarray
    vertices: np.ndarray

    def to_json(self) -> dict:
        """Polygons as flat ``ra, dec, ...`` lists rounded to 1e-4 deg (0.36 arcsec)."""
        return {
            "total": self.total,
            "truncated": self.truncated,
            "ids": self.ids,
            "detectors": [int(d) or None for d in self.detectors],
            "polygons": rounded_polygons(self.counts, self.vertices),
        }

    def to_binary(self) -> bytes:
        """One block the browser maps onto typed arrays (little-endian): ``SXF1``, the length H
        of a JSON header (UTF-8, space-padded to a multiple of 4), the header ``{"total",
        "truncated", "count", "vertices", "ids"}``, then float32 ``ra, dec`` of every vertex,
        uint16 vertex counts and uint8 detectors. Float32 keeps 0.1 arcsec at RA 360, and
        the coordinates are a third of the size of their JSON text."""
        header = orjson.dumps(
            {
                "total": self.total,
                "truncated": self.truncated,
                "count": len(self.ids),
                "vertices": int(self.counts.sum()),
                "ids": self.ids,
            }
        )
        header += b" " * (-len(header) % 4)  # the float32 array must start 4-byte aligned
        return b"".join(
            (
                FOOTPRINTS_MAGIC,
                struct.pack("<I", len(header)),
                header,
                self.vertices.astype("<f4").tobytes(),
                self.counts.astype("<u2").tobytes(),
                self.detectors.astype("u1").tobytes(),
            )
        )


class ExplorerService:
    """The Explorer's searches over one catalogue; links under ``settings.base_url``. Shared
    by the requests of an app: it holds the cache of totals."""

    def __init__(self, engine: QueryEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._counts: OrderedDict[tuple[str, tuple], int] = OrderedDict()
        self._datasets: dict[str, tuple[float, DatasetFile]] = {}
        self._orders: OrderedDict[tuple[str, str, tuple], list[str] | None] = OrderedDict()
        self._footprints: OrderedDict[tuple[str, int, tuple], Future[Footprints]] = OrderedDict()
        self._workers: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/")

    def collections(self) -> list[str]:
        return self.engine.catalogue.collections()

    # ---- the catalogue's state, for the cache of totals

    def _state(self) -> tuple:
        """What changes when the answer to a count can: a collection's released planes or
        last update, and which embargo dates have passed."""
        catalogue = self.engine.catalogue
        rows = catalogue.fetchall(
            "SELECT collection, planes, updated_at, pending_until "
            f"FROM {catalogue.dialect.internal('moc')} ORDER BY collection"
        )
        now = now_text()
        return tuple(
            (c, planes, updated, pending is not None and pending <= now)
            for c, planes, updated, pending in rows
        )

    def count(self, where: str) -> int:
        """Released planes matching ``where`` (cached while the catalogue stays as it is)."""
        key = (where, self._state())
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
                return found
        answer = self.engine.run(_with_where("SELECT COUNT(*) FROM spherex.obscore", where))
        ((total,),) = answer.rows  # read to the end, so that the cursor closes
        with self._lock:
            self._counts[key] = int(total)
            while len(self._counts) > COUNT_CACHE_SIZE:
                self._counts.popitem(last=False)
        return int(total)

    def _ordered(self, where: str, order: str) -> list[str] | None:
        """Every matching dataset id in ``order``, or None when there are more than
        :data:`MAX_ORDERED`. Kept while the catalogue stays as it is: any page is then a slice
        and a lookup of its ids, where OFFSET would walk the view's joins up to the page
        (hundreds of ms at page 500 of 100 000 rows) on every request."""
        key = (where, order, self._state())
        with self._lock:
            if key in self._orders:
                self._orders.move_to_end(key)
                return self._orders[key]
        adql = f"SELECT TOP {MAX_ORDERED + 1} obs_publisher_did FROM spherex.obscore"
        ids: list[str] | None = [
            row[0] for row in self.engine.run(_with_where(adql, where) + order).rows
        ]
        if ids is not None and len(ids) > MAX_ORDERED:
            ids = None
        with self._lock:
            self._orders[key] = ids
            while len(self._orders) > ORDER_CACHE_SIZE:
                self._orders.popitem(last=False)
            if ids is not None:  # the count of the same conditions, for the footprints
                self._counts[(where, key[2])] = len(ids)
        return ids

    def _rows_by_id(self, selected: str, ids: Sequence[str]) -> dict[str, tuple]:
        """The ``selected`` columns (``obs_publisher_did`` among them) of ``ids``, by id."""
        if not ids:
            return {}
        adql = (
            f"SELECT {selected} FROM spherex.obscore WHERE obs_publisher_did IN "
            f"({', '.join(_literal(i) for i in ids)})"
        )
        index = [c.strip() for c in selected.split(",")].index("obs_publisher_did")
        return {row[index]: row for row in self.engine.run(adql, internal=True).rows}

    # ---- searches

    def search(self, search: Search, page: Page) -> dict:
        """A page of results with its total, column descriptions, links and the ADQL."""
        started = time.perf_counter()
        where = where_clause(search, self.collections())
        if not 1 <= page.limit <= MAX_LIMIT:
            raise BadParameter(f"limit: give 1 to {MAX_LIMIT} rows, not {page.limit}")
        if page.offset < 0:
            raise BadParameter(f"offset: {page.offset} is negative")
        if not page.columns:
            raise BadParameter("columns: name at least one column")
        columns = [column(name, "columns") for name in page.columns]
        sort = column(page.sort, "sort")
        if sort.is_region:
            raise BadParameter(f"sort: {sort.name} is a region: results cannot be sorted by it")
        order = order_clause(sort, page.descending)
        offset = f" OFFSET {page.offset}" if page.offset else ""
        names = [c.adql_name for c in columns]
        extra = [n for n in _LINKED if n not in names]
        selected = ", ".join([*names, *extra])
        top = f"SELECT TOP {page.limit} "
        shown = _with_where(f"{top}{', '.join(names)} FROM spherex.obscore", where) + order + offset
        ordered = self._ordered(where, order)
        if ordered is not None:
            # The page's ids from the cached order, then their rows by id (an index lookup).
            wanted = ordered[page.offset : page.offset + page.limit]
            found = self._rows_by_id(selected, wanted)
            fetched = [found[i] for i in wanted if i in found]
            total = len(ordered)
        else:
            internal = _with_where(f"{top}{selected} FROM spherex.obscore", where) + order + offset
            fetched = list(self.engine.run(internal, internal=True).rows)
            total = None
        width = len(names)
        where_of = {n: (names + extra).index(n) for n in _LINKED}
        rows, links = [], []
        for row in fetched:
            rows.append(list(row[:width]))
            links.append(
                self.links(
                    row[where_of["obs_publisher_did"]],
                    row[where_of["dataproduct_type"]],
                    row[where_of['"_uri"']],
                )
            )
        # Each row's own footprint, so that the sky view shows and links the rows on screen
        # whatever part of a large answer its footprint layer holds.
        polygons: list[list[float] | None] = [None] * len(fetched)
        kept, counts, vertices = polygon_arrays([row[where_of["s_region"]] for row in fetched])
        for i, polygon in zip(kept.tolist(), rounded_polygons(counts, vertices), strict=True):
            polygons[i] = polygon
        detectors = [detector_number(row[where_of["energy_bandpassname"]]) for row in fetched]
        if total is None:
            total = self.count(where) if page.offset or len(rows) == page.limit else len(rows)
        return {
            "total": total,
            "offset": page.offset,
            "limit": page.limit,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            "columns": [_describe(c) for c in columns],
            "rows": rows,
            "links": links,
            "footprints": {"detectors": detectors, "polygons": polygons},
            "query": {"adql": shown},
        }

    def links(self, did: str, product_type: str | None, uri: str) -> dict:
        file = f"{self.base_url}/{uri}"
        escaped = quote(did, safe="")
        return {
            "id": did,
            "file": file,
            "datalink": f"{self.base_url}{LINKS_PATH}?ID={escaped}",
            "preview": f"{self.base_url}{PREVIEW_PATH}?ID={escaped}",
            # IRSA's cutout syntax: the file's URL takes ?center=ra,dec&size=...
            "cutout": file if product_type == "image" else None,
            "s3": f"s3://{self.settings.s3_bucket}/{uri.removeprefix(URI_PREFIX)}",
        }

    def footprint_set(self, search: Search, limit: int = FOOTPRINT_LIMIT) -> Footprints:
        """The footprints of the first ``limit`` images with one, in the default order; read
        once per search (and catalogue state) and kept, as the orders are. The total is the
        search's: from the order its first page kept (no second count), else one COUNT kept
        the same way."""
        where = self._footprint_where(search, limit)
        return self._footprint_future(where, limit, background=False).result()

    def prefetch_footprints(self, search: Search, limit: int = FOOTPRINT_LIMIT) -> None:
        """Start reading the footprints of ``search`` in a worker thread. The Explorer asks for
        them once the first page is painted; started as that page is answered, the second
        spatial pass runs while the browser paints the rows instead of after."""
        where = self._footprint_where(search, limit)
        self._footprint_future(where, limit, background=True)

    def _footprint_where(self, search: Search, limit: int) -> str:
        if not 1 <= limit <= MAX_FOOTPRINT_LIMIT:
            raise BadParameter(f"limit: give 1 to {MAX_FOOTPRINT_LIMIT} footprints, not {limit}")
        return where_clause(search, self.collections())

    def _footprint_future(self, where: str, limit: int, *, background: bool) -> Future:
        """The footprints of ``where``, read by whichever request asked first (requests that
        ask meanwhile wait for the same reading)."""
        key = (where, limit, self._state())
        with self._lock:
            found = self._footprints.get(key)
            if found is not None:
                self._footprints.move_to_end(key)
                return found
            future: Future[Footprints] = Future()
            self._footprints[key] = future
            while len(self._footprints) > FOOTPRINT_CACHE_SIZE:
                self._footprints.popitem(last=False)
            if background and self._workers is None:
                self._workers = ThreadPoolExecutor(1, thread_name_prefix="explorer-footprints")
            workers = self._workers
        if background and workers is not None:
            workers.submit(self._read_into, future, key)
        else:
            self._read_into(future, key)
        return future

    def _read_into(self, future: Future, key: tuple[str, int, tuple]) -> None:
        where, limit, state = key
        try:
            future.set_result(self._read_footprints(where, limit, state))
        except BaseException as error:  # given to whoever waits; the next request tries again
            with self._lock:
                if self._footprints.get(key) is future:
                    del self._footprints[key]
            future.set_exception(error)

    def _read_footprints(self, where: str, limit: int, state: tuple) -> Footprints:
        drawn = f"({where}) AND s_region IS NOT NULL" if where else "s_region IS NOT NULL"
        select = "obs_publisher_did, energy_bandpassname, s_region FROM spherex.obscore"
        with self._lock:
            ordered = self._orders.get((where, DEFAULT_ORDER, state))
        if ordered is not None and len(ordered) <= limit:
            # All of them, in the order the search kept: the database need not sort the
            # regions again (a tenth of the reading for 11 000 of them).
            position = {did: k for k, did in enumerate(ordered)}
            rows = list(self.engine.run(f"SELECT {select} WHERE {drawn}").rows)
            rows.sort(key=lambda row: position.get(row[0], len(position)))
            truncated = False
        else:
            adql = f"SELECT TOP {limit + 1} {select} WHERE {drawn}{DEFAULT_ORDER}"
            rows = list(self.engine.run(adql).rows)
            truncated = len(rows) > limit
            del rows[limit:]
        kept, counts, vertices = polygon_arrays([row[2] for row in rows])
        return Footprints(
            total=self.count(where),
            truncated=truncated,
            ids=[rows[i][0] for i in kept],
            detectors=np.fromiter(
                (detector_number(rows[i][1]) or 0 for i in kept), dtype=np.uint8, count=len(kept)
            ),
            counts=counts,
            vertices=vertices,
        )

    def footprints(self, search: Search, limit: int = FOOTPRINT_LIMIT) -> dict:
        """:meth:`footprint_set` as JSON."""
        return self.footprint_set(search, limit).to_json()

    # ---- datasets by id (the viewer, download scripts)

    def datasets(self, ids: Sequence[str]) -> dict[str, DatasetFile]:
        """The released datasets among ``ids`` (matched exactly), by id."""
        ids = list(dict.fromkeys(i for i in ids if i and "\x00" not in i))
        found: dict[str, DatasetFile] = {}
        for start in range(0, len(ids), MAX_LIMIT):
            chunk = ids[start : start + MAX_LIMIT]
            adql = (
                "SELECT obs_publisher_did, obs_id, t_min, energy_bandpassname, "
                'dataproduct_type, "_uri" FROM spherex.obscore WHERE obs_publisher_did IN '
                f"({', '.join(_literal(i) for i in chunk)})"
            )
            for row in self.engine.run(adql, internal=True).rows:
                found[row[0]] = DatasetFile(*row)
        return found

    def dataset(self, did: str) -> DatasetFile:
        """One released dataset (UnknownDataset if none). Kept for a few seconds: the viewer
        asks for the same id on every mouse move, and a released id stays released."""
        now = time.monotonic()
        with self._lock:
            found = self._datasets.get(did)
        if found is not None and now - found[0] < DATASET_SECONDS:
            return found[1]
        dataset = self.datasets([did]).get(did)
        if dataset is None:
            raise UnknownDataset(f"No released dataset has the id {did!r}.")
        with self._lock:
            if len(self._datasets) > 4096:
                self._datasets.clear()
            self._datasets[did] = (now, dataset)
        return dataset

    def script(
        self,
        kind: str,
        ids: Sequence[str],
        cutout: tuple[float, float, float] | None = None,
    ) -> str:
        """A shell script downloading the files of ``ids`` (in that order), or with ``cutout``
        (RA, Dec in degrees, size in arcsec) their cutouts in IRSA's ``center``/``size``
        syntax. Whole files resume where an interrupted run stopped."""
        if kind not in ("wget", "curl"):
            raise BadParameter(f"kind: {kind!r} is not a download tool; use wget or curl")
        if not ids:
            raise BadParameter("id: name at least one dataset")
        found = self.datasets(ids)
        missing = [i for i in dict.fromkeys(ids) if i not in found]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise UnknownDataset(f"No released dataset has the id {shown}{more}.")
        files = [found[i] for i in dict.fromkeys(ids)]
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = "cutouts of " if cutout else ""
        lines = [
            "#!/bin/sh",
            f"# {what}{len(files)} SPHEREx file(s) from {self.base_url}, listed {when}.",
            "# Run it with: sh spherex-download.sh  (run it again to finish an interrupted"
            " download)",
        ]
        if cutout:
            ra, dec, size = cutout
            lines.append(f"# Cutouts {size:g} arcsec wide centred on RA {ra:g}, Dec {dec:g}.")
        for dataset in files:
            url = f"{self.base_url}/{dataset.uri}"
            name = dataset.name
            if cutout and dataset.product_type == "image":
                ra, dec, size = cutout
                url += f"?center={ra!r},{dec!r}&size={size:g}arcsec"
                name = name.removesuffix(".fits") + "_cutout.fits"
                # A cutout is made afresh on each request: fetched whole, unless already here.
                get = (
                    f"wget -O {shlex.quote(name)} {shlex.quote(url)}"
                    if kind == "wget"
                    else f"curl -f -o {shlex.quote(name)} {shlex.quote(url)}"
                )
                lines.append(f"[ -s {shlex.quote(name)} ] || {get}")
            elif kind == "wget":
                lines.append(f"wget -c -O {shlex.quote(name)} {shlex.quote(url)}")
            else:
                lines.append(f"curl -f -C - -o {shlex.quote(name)} {shlex.quote(url)}")
        return "\n".join(lines) + "\n"


def _describe(c: Column) -> dict:
    return {
        "name": c.name,
        "datatype": c.datatype,
        "unit": c.unit,
        "ucd": c.ucd,
        "description": c.description,
    }
