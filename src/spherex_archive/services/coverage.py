"""Coverage: each collection's MOC, and which collections cover a position or region with how
many images, answered from the MOCs and image-count maps that ingest keeps
(``ingest/coverage.py``), never from the planes.

A request costs one small SELECT (one row per collection, without the MOC): parsed MOCs are
cached in memory by (collection, updated_at), so a MOC is read and parsed again only after an
ingest changed it, and whatever an ingest committed shows in the next answer. When a
collection's embargo date passes (``pending_until``), the next request rebuilds its coverage
from the planes in a writer transaction, the one time coverage reads them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, Latitude, Longitude, SkyCoord
from mocpy import MOC

from spherex_archive.catalogue import Catalogue
from spherex_archive.ingest import coverage as store
from spherex_archive.ingest.coverage import COUNT_DEPTH, MOC_DEPTH

log = logging.getLogger(__name__)

SKY_DEG2 = 4 * math.pi * (180 / math.pi) ** 2
RANGES_PER_QUERY = 300
"""Cell ranges per count query (two parameters each), well within both databases' limits."""
RETRY_SECONDS = 60.0
"""After a failed rebuild (a read-only catalogue, say), answers use the MOCs as stored and
the rebuild is tried again after this long."""


class UnknownCollection(LookupError):
    """No collection of that name has coverage."""


@dataclass(frozen=True)
class Region:
    """A point, circle, polygon or RANGE on the sky (ICRS, degrees), validated on creation."""

    kind: str
    """``point``, ``circle``, ``polygon`` or ``range``."""
    values: tuple[float, ...]
    """ra dec (point), ra dec radius (circle), ra1 dec1 ra2 dec2 ... (polygon),
    ra1 ra2 dec1 dec2 (range)."""

    @classmethod
    def point(cls, ra: float, dec: float) -> Region:
        _check_position(ra, dec)
        return cls("point", (ra % 360.0, dec))

    @classmethod
    def circle(cls, ra: float, dec: float, radius: float) -> Region:
        """A circle; a radius of 0 is the point at its centre."""
        if not 0 <= radius <= 180:
            raise ValueError(f"the radius {radius:g} is not between 0 and 180 degrees")
        if radius == 0:
            return cls.point(ra, dec)
        _check_position(ra, dec)
        return cls("circle", (ra % 360.0, dec, radius))

    @classmethod
    def polygon(cls, vertices: Sequence[tuple[float, float]]) -> Region:
        """A polygon with great-circle edges; its inside is the smaller of its two sides."""
        if len(vertices) < 3:
            raise ValueError(f"a polygon needs at least 3 vertices, not {len(vertices)}")
        for ra, dec in vertices:
            _check_position(ra, dec)
        return cls("polygon", tuple(a for ra, dec in vertices for a in (ra % 360.0, dec)))

    @classmethod
    def range(cls, ra1: float, ra2: float, dec1: float, dec2: float) -> Region:
        """SIA's RANGE: ra from ``ra1`` east to ``ra2`` (across 0 when ``ra1 > ra2``), dec
        from ``dec1`` to ``dec2``; infinite bounds stand for the sky's limits."""
        ra1, ra2 = (0.0 if ra1 == -math.inf else ra1), (360.0 if ra2 == math.inf else ra2)
        dec1, dec2 = max(dec1, -90.0), min(dec2, 90.0)
        for ra in (ra1, ra2):
            if not 0 <= ra <= 360:
                raise ValueError(f"the RA {ra:g} is not between 0 and 360 degrees")
        for dec in (dec1, dec2):
            if not -90 <= dec <= 90:
                raise ValueError(f"the Dec {dec:g} is not between -90 and 90 degrees")
        if dec1 >= dec2 or ra1 == ra2:
            raise ValueError(f"the RANGE {ra1:g} {ra2:g} {dec1:g} {dec2:g} has no area")
        return cls("range", (ra1, ra2, dec1, dec2))

    def moc(self) -> MOC:
        """The region at the coverage MOCs' order (cells it touches)."""
        v = self.values
        if self.kind == "point":
            return MOC.from_lonlat(
                lon=Longitude([v[0]] * u.deg), lat=Latitude([v[1]] * u.deg), max_norder=MOC_DEPTH
            )
        if self.kind == "circle":
            return MOC.from_cone(
                lon=Longitude(v[0] * u.deg),
                lat=Latitude(v[1] * u.deg),
                radius=Angle(v[2], u.deg),
                max_depth=MOC_DEPTH,
            )
        if self.kind == "polygon":
            return MOC.from_polygons(np.array([v[0::2], v[1::2]]), max_depth=MOC_DEPTH)[0]
        corners = SkyCoord([[v[0], v[2]], [v[1], v[3]]], unit="deg")
        return MOC.from_zone(corners, max_depth=MOC_DEPTH)

    def __str__(self) -> str:
        numbers = " ".join(f"{x:.12g}" for x in self.values)
        shape = "CIRCLE" if self.kind == "point" else self.kind.upper()
        return f"{shape} {numbers}{' 0' if self.kind == 'point' else ''}"


def _check_position(ra: float, dec: float) -> None:
    if not 0 <= ra <= 360:
        raise ValueError(f"the RA {ra:g} is not between 0 and 360 degrees")
    if not -90 <= dec <= 90:
        raise ValueError(f"the Dec {dec:g} is not between -90 and 90 degrees")


@dataclass(frozen=True)
class CollectionCoverage:
    name: str
    planes: int
    """Released planes (images and, in calibration collections, files)."""
    sky_fraction: float
    updated_at: str
    """UTC, ``YYYY-MM-DD HH:MM:SS``."""

    @property
    def area_deg2(self) -> float:
        return self.sky_fraction * SKY_DEG2


@dataclass(frozen=True)
class Covering:
    """One collection's answer for a region."""

    collection: str
    covered: bool
    """The whole region lies inside the collection's MOC."""
    images: int
    """Released images touching the count-map cell (order ``COUNT_DEPTH``) of a point; for a
    larger region the largest such count over its cells inside the coverage. An image near a
    cell's edge may be counted without containing the point: never fewer, sometimes more."""
    fraction: float
    """Fraction of the region's area inside the MOC (at the MOC's order)."""


@dataclass(frozen=True)
class _Entry:
    updated_at: str
    planes: int
    moc: MOC


class CoverageService:
    """Coverage of the collections in ``catalogue``; safe to share between threads."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._retry_at = 0.0

    # --- answers ---------------------------------------------------------------------------

    def collections(self) -> list[CollectionCoverage]:
        return [
            CollectionCoverage(name, e.planes, e.moc.sky_fraction, e.updated_at[:19])
            for name, e in sorted(self._entries().items())
        ]

    def moc(self, collection: str) -> MOC:
        """The collection's MOC (empty when nothing of it with a footprint is released)."""
        entries = self._entries()
        if collection not in entries:
            raise UnknownCollection(collection)
        return entries[collection].moc

    def covering(self, region: Region, collections: Iterable[str] | None = None) -> list[Covering]:
        """The collections (all, or those named) whose coverage meets ``region``, by name."""
        entries = self._entries()
        names = sorted(entries) if collections is None else sorted(set(collections))
        for name in names:
            if name not in entries:
                raise UnknownCollection(name)
        shape = region.moc()
        area = shape.sky_fraction
        if not area:
            return []
        answer = []
        for name in names:
            moc = entries[name].moc
            common = shape.intersection(moc)
            if common.empty():
                continue
            answer.append(
                Covering(
                    collection=name,
                    covered=shape.difference(moc).empty(),
                    images=self._most_images(name, common),
                    fraction=min(common.sky_fraction / area, 1.0),
                )
            )
        return answer

    def rebuild(self, collection: str) -> None:
        """Recompute a collection's coverage from its planes now."""
        with self.catalogue.writer() as writer:
            store.rebuild(writer, collection)

    # --- the stored state ------------------------------------------------------------------

    def _rows(self) -> list[tuple]:
        return self.catalogue.fetchall(
            "SELECT collection, updated_at, pending_until "
            f"FROM {self.catalogue.dialect.internal('moc')}"
        )

    def _entries(self) -> dict[str, _Entry]:
        rows = self._rows()
        now = store.now_text()
        due = [c for c, _, pending in rows if pending is not None and pending <= now]
        if due and self._rebuild(due, lambda pending: pending is not None and pending <= now):
            rows = self._rows()
        entries = {}
        for collection, updated_at, _ in rows:
            entry = self._cache.get(collection)
            if entry is None or entry.updated_at != updated_at:
                entry = self._load(collection)
            entries[collection] = entry
        return entries

    def _load(self, collection: str) -> _Entry:
        i = self.catalogue.dialect.internal
        rows = self.catalogue.fetchall(
            f"SELECT moc, planes, updated_at FROM {i('moc')} WHERE collection = ?", [collection]
        )
        text, planes, updated_at = rows[0]
        # A catalogue made before the count map existed: build it once.
        if (
            text
            and not self.catalogue.fetchall(
                f"SELECT 1 FROM {i('coverage_count')} WHERE collection = ? LIMIT 1", [collection]
            )
            and self._rebuild([collection], lambda _: True)
        ):
            return self._load(collection)
        moc = MOC.from_string(text, format="ascii") if text else MOC.new_empty(MOC_DEPTH)
        entry = _Entry(updated_at, int(planes or 0), moc)
        self._cache[collection] = entry
        return entry

    def _rebuild(self, collections: list[str], still_due) -> bool:
        """Rebuild the collections for which ``still_due(pending_until)`` holds once the write
        lock is held (another worker may have done it meanwhile); False when it failed."""
        if time.monotonic() < self._retry_at:
            return False
        table = self.catalogue.dialect.internal("moc")
        try:
            with self._lock, self.catalogue.writer() as writer:
                for collection in collections:
                    pending = writer.fetchall(
                        f"SELECT pending_until FROM {table} WHERE collection = ?", [collection]
                    )
                    if pending and still_due(pending[0][0]):
                        log.info("rebuilding the coverage of %s", collection)
                        store.rebuild(writer, collection)
        except Exception:
            log.exception("rebuilding the coverage of %s failed", ", ".join(collections))
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        return True

    def _most_images(self, collection: str, region: MOC) -> int:
        """The largest image count over the count-map cells holding part of ``region``."""
        shift = np.uint64(2 * (29 - COUNT_DEPTH))
        ranges = (region.degrade_to_order(COUNT_DEPTH).to_depth29_ranges >> shift).tolist()
        table = self.catalogue.dialect.internal("coverage_count")
        most = 0
        for start in range(0, len(ranges), RANGES_PER_QUERY):
            chunk = ranges[start : start + RANGES_PER_QUERY]
            found = self.catalogue.fetchall(
                f"SELECT MAX(images) FROM {table} WHERE collection = ? AND ("
                + " OR ".join("(cell >= ? AND cell < ?)" for _ in chunk)
                + ")",
                [collection, *(int(x) for pair in chunk for x in pair)],
            )[0][0]
            most = max(most, int(found or 0))
        return most
