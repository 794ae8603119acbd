"""File names, directories and identifiers of SPHEREx products (spec §4 and §9).

The same functions build names in the generator and parse them at ingest, so a name that one
side writes is a name the other side reads.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

RELEASES = ("qr2",)
"""Releases whose layout this package writes and reads."""

COLLECTIONS = {
    "wide": "spherex_{release}",
    "deep": "spherex_{release}_deep",
    "cal": "spherex_{release}_cal",
}

LEVEL2_NAME = re.compile(
    r"^level2_(?P<period>\d{4}W\d{2}_\d[A-Z])_(?P<large>\d{4})_(?P<small>\d)D(?P<det>\d)"
    r"_spx_l2b-v(?P<version>\d+)-(?P<year>\d{4})-(?P<doy>\d{3})\.fits$"
)
PLANNING_PERIOD = re.compile(r"^(?P<year>\d{4})W(?P<week>\d{2})_(?P<plan>\d)(?P<rev>[A-Z])$")


def collection_name(kind: str, release: str = "qr2") -> str:
    """``spherex_qr2`` (wide), ``spherex_qr2_deep`` or ``spherex_qr2_cal``."""
    return COLLECTIONS[kind].format(release=release)


@dataclass(frozen=True, order=True)
class PlanningPeriod:
    """A survey plan of about 3.5 days, ``YYYYWww_<d><L>``.

    The digit is taken to number the plans of one week (two per week) and the letter to be the
    plan's revision: the spec marks both as a guess (§4.2).
    """

    year: int
    week: int
    plan: int = 1
    revision: str = "A"

    def __str__(self) -> str:
        return f"{self.year}W{self.week:02d}_{self.plan}{self.revision}"

    @classmethod
    def parse(cls, text: str) -> PlanningPeriod:
        match = PLANNING_PERIOD.match(text)
        if not match:
            raise ValueError(f"not a planning period: {text!r} (expected e.g. 2025W51_1A)")
        return cls(int(match["year"]), int(match["week"]), int(match["plan"]), match["rev"])

    @property
    def start(self) -> dt.datetime:
        """When the plan starts: the ISO week's Monday, plus 3.5 days for the second plan."""
        monday = dt.datetime.fromisocalendar(self.year, self.week, 1)
        return monday.replace(tzinfo=dt.UTC) + dt.timedelta(days=3.5 * (self.plan - 1))


@dataclass(frozen=True)
class ObservationId:
    """``OBSID``: planning period, large-slew counter and small-slew counter."""

    period: PlanningPeriod
    large_slew: int
    small_slew: int

    def __str__(self) -> str:
        return f"{self.period}_{self.large_slew:04d}_{self.small_slew}"

    @classmethod
    def parse(cls, text: str) -> ObservationId:
        period, large, small = text.rsplit("_", 2)
        return cls(PlanningPeriod.parse(period), int(large), int(small))

    def expidn(self, detector: int) -> int:
        """The integer exposure id: ``YYYY WW d LL NNNN s D`` with LL the revision letter index.

        Inferred from one real example (``2025W51_1A_0684_2`` D3 -> 202551101068423).
        """
        p = self.period
        letter = ord(p.revision) - ord("A") + 1
        return int(
            f"{p.year:04d}{p.week:02d}{p.plan:d}{letter:02d}{self.large_slew:04d}"
            f"{self.small_slew:d}{detector:d}"
        )


@dataclass(frozen=True)
class ProductVersion:
    """``l2b-v<NN>-<YYYY>-<DDD>``: the L2 product version and its processing day."""

    version: int
    processed: dt.date

    def __str__(self) -> str:
        day = self.processed.timetuple().tm_yday
        return f"l2b-v{self.version:02d}-{self.processed.year}-{day:03d}"


def level2_filename(obsid: ObservationId, detector: int, product: ProductVersion) -> str:
    """``level2_2025W51_1A_0684_2D3_spx_l2b-v21-2025-354.fits``."""
    return f"level2_{obsid}D{detector}_spx_{product}.fits"


def level2_key(release: str, obsid: ObservationId, detector: int, product: ProductVersion) -> str:
    """The path of a spectral image below the bucket root (= the S3 key)."""
    return (
        f"{release}/level2/{obsid.period}/{product}/{detector}/"
        f"{level2_filename(obsid, detector, product)}"
    )


@dataclass(frozen=True)
class Level2Name:
    """What a Level-2 file name says."""

    obsid: ObservationId
    detector: int
    product: ProductVersion


def parse_level2_filename(name: str) -> Level2Name:
    """Parse a Level-2 file name; ``ValueError`` if it is not one."""
    match = LEVEL2_NAME.match(name)
    if not match:
        raise ValueError(f"not a SPHEREx Level-2 file name: {name!r}")
    period = PlanningPeriod.parse(match["period"])
    processed = dt.date(int(match["year"]), 1, 1) + dt.timedelta(days=int(match["doy"]) - 1)
    return Level2Name(
        ObservationId(period, int(match["large"]), int(match["small"])),
        int(match["det"]),
        ProductVersion(int(match["version"]), processed),
    )


def publisher_did(authority: str, collection: str, obsid: str, detector: int) -> str:
    """``ivo://irsa.ipac/spherex_qr2?2025W51_1A_0684_2/D3``."""
    return f"{authority}/{collection}?{obsid}/D{detector}"
