"""The survey pattern: where and when SPHEREx points, and how its detectors lie on the sky.

SPHEREx flies a Sun-synchronous polar orbit and, each orbit, scans the great circle through the
ecliptic poles that is perpendicular to the Sun: the ecliptic meridians at the Sun's longitude
plus and minus 90 degrees. The circle turns about 1 degree a day, so the whole sky is covered
every six months (one "survey"). Exposures come as one large slew followed by up to four small
slews that step the sky along the focal-plane y axis (the linear-variable-filter axis), so a
source is seen at several wavelengths. The two deep fields, at the ecliptic poles, lie on every
scan circle and are observed every orbit at an orientation that turns with the circle.

The focal-plane layout (D3, D2, D1 stacked along y, no overlap, a small gap) is a guess the spec
records (§1.1); D4-D6 see the same sky through the dichroic, flipped in x to share orientation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord
from astropy.time import Time
from astropy.wcs import WCS

from spherex_archive.products.detectors import PIXEL_SCALE_ARCSEC
from spherex_archive.products.naming import ObservationId, PlanningPeriod

XPOSURE = 113.5826
TELAPSE = 118.1873
EXPOSURE_SPAN_S = 115.1
"""MJD-END - MJD-BEG of a real exposure."""
SMALL_SLEW_CADENCE_S = 128.0
ORBIT_S = 98.0 * 60.0
ORBIT_RADIUS_KM = 7030.0
ORBIT_SPEED_KMS = 7.53

SURVEY_START = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
SURVEY_LENGTH_DAYS = 182.6

DEEP_FIELDS = {
    "NEP": (270.0, 66.56),
    "SEP": (72.0, -71.4),
}
"""Deep-field centres (RA, Dec); the southern one converted from ecliptic (-44.8, -82)."""

WIDE_FIELDS: dict[str, tuple[float, float, int]] = {
    "M31": (10.6847, 41.2690, 1),
    "NCP": (0.0, 90.0, 1),
    "RA0": (0.0, 1.0, 2),
    "M81": (148.8882, 69.0653, 1),
    "LOCKMAN": (161.25, 58.0, 1),
    "COSMOS": (150.1191, 2.2058, 2),
    "ORION": (83.8221, -5.3911, 1),
    "GALCEN": (266.4168, -29.0078, 1),
}
"""Named wide-survey fields: (RA, Dec, survey in which the demo observes them). NCP puts a
footprint over the celestial pole and RA0 one across RA = 0, the cases spatial code gets wrong."""

DEMO_FIELDS = ("M31", "NCP", "RA0")
DEMO_DEEP = (("NEP", 50), ("SEP", 2))


def sun_longitude(mjd: np.ndarray | float) -> np.ndarray:
    """Apparent ecliptic longitude of the Sun (deg), good to 0.01 deg: enough for a survey plan."""
    d = np.asarray(mjd, dtype=float) - 51544.5
    mean = 280.460 + 0.9856474 * d
    anomaly = np.radians(357.528 + 0.9856003 * d)
    return (mean + 1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly)) % 360.0


def mjd_of(when: dt.datetime) -> float:
    return Time(when).mjd


def survey_number(mjd: float) -> int:
    days = mjd - mjd_of(SURVEY_START)
    return int(days // SURVEY_LENGTH_DAYS) + 1


def scan_pa(ra: np.ndarray, dec: np.ndarray, mjd: np.ndarray, epa: np.ndarray) -> np.ndarray:
    """Position angle (deg E of N) of the focal-plane +y axis: along the scan circle, heading
    toward the north ecliptic pole on the near side when ``epa`` is 0, away when it is 180."""
    ra, dec, mjd, epa = (np.atleast_1d(a) for a in np.broadcast_arrays(ra, dec, mjd, epa))
    point = SkyCoord(ra * u.deg, dec * u.deg).transform_to(BarycentricMeanEcliptic())
    b = np.atleast_2d(point.cartesian.xyz.value.T)
    sun = np.radians(sun_longitude(mjd))
    # The scan circle's pole points at the Sun; its tangent at b runs through the poles.
    pole = np.stack([np.cos(sun), np.sin(sun), np.zeros_like(sun)], axis=1)
    tangent = np.cross(pole, b)
    # Orient the tangent toward +z (the NEP) where that is defined, then apply the survey's flip.
    flip = np.where(tangent[:, 2] < 0, -1.0, 1.0) * np.where(epa == 180, -1.0, 1.0)
    ahead = b + 1e-4 * tangent * flip[:, None]
    ahead_sky = SkyCoord(
        x=ahead[:, 0],
        y=ahead[:, 1],
        z=ahead[:, 2],
        representation_type="cartesian",
        frame=BarycentricMeanEcliptic(),
    ).icrs
    here = SkyCoord(ra * u.deg, dec * u.deg)
    return here.position_angle(ahead_sky).deg


def pc_matrix(pa_deg: float) -> np.ndarray:
    """PC (scale in degrees, sky parity) putting pixel +y at position angle ``pa_deg``."""
    s = PIXEL_SCALE_ARCSEC / 3600.0
    p = np.radians(pa_deg)
    return s * np.array([[-np.cos(p), np.sin(p)], [np.sin(p), np.cos(p)]])


def tangent_wcs(ra: float, dec: float, pa: float) -> WCS:
    """A pixel grid centred (pixel 0, 0) on (ra, dec), without distortion."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [1.0, 1.0]  # so that 0-based pixel (0, 0) is the tangent point
    w.wcs.pc = pc_matrix(pa)
    w.wcs.cdelt = [1.0, 1.0]
    return w


def place(ra: float, dec: float, pa: float, x: float, y: float) -> tuple[float, float, float]:
    """Boresight (ra, dec, pa) that puts the sky position (ra, dec) at focal-plane pixel (x, y)
    with the focal plane's +y at position angle ``pa`` there.

    The orientation is carried to the boresight along the focal plane itself, which stays
    right where "north" turns fast or is undefined (at and near the celestial poles).
    """
    grid = tangent_wcs(ra, dec, pa)
    (b_ra, b_dec), (a_ra, a_dec) = grid.wcs_pix2world([[-x, -y], [-x, -y + 10.0]], 0)
    bore = SkyCoord(b_ra * u.deg, b_dec * u.deg)
    bore_pa = bore.position_angle(SkyCoord(a_ra * u.deg, a_dec * u.deg)).deg
    return float(b_ra % 360.0), float(b_dec), float(bore_pa % 360.0)


@dataclass(frozen=True)
class FocalPlane:
    """Where each detector's centre lies relative to the boresight, in pixels."""

    size: int

    @property
    def gap(self) -> int:
        return max(1, round(0.04 * self.size))

    @property
    def height(self) -> int:
        return 3 * self.size + 2 * self.gap

    def offset(self, det: int) -> tuple[float, float]:
        slot = {1: 2, 2: 1, 3: 0, 4: 2, 5: 1, 6: 0}[det]
        dy = (slot - 1) * (self.size + self.gap)
        # The MWIR array sits a fraction of a pixel off the SWIR one behind the dichroic.
        return (0.8, dy + 0.5) if det >= 4 else (0.0, float(dy))


@dataclass(frozen=True)
class Exposure:
    """One exposure of the six detectors."""

    obsid: ObservationId
    survey: str
    """``wide`` or ``deep``."""
    field: str
    ra: float
    """Boresight (centre of D2/D5)."""
    dec: float
    pa: float
    mjd_beg: float
    sps_target: int
    epa: int
    version: int
    """L2 product version ``v<NN>``."""
    processed: dt.date
    jitter: tuple[float, float] = (0.0, 0.0)

    @property
    def mjd_end(self) -> float:
        return self.mjd_beg + EXPOSURE_SPAN_S / 86400.0

    @property
    def mjd_avg(self) -> float:
        return 0.5 * (self.mjd_beg + self.mjd_end)

    def detector_centre(self, det: int, size: int) -> tuple[float, float]:
        dx, dy = FocalPlane(size).offset(det)
        ra, dec = tangent_wcs(self.ra, self.dec, self.pa).wcs_pix2world([[dx, dy]], 0)[0]
        return float(ra % 360.0), float(dec)

    def detector_pa(self, det: int) -> float:
        # The MWIR array is rotated by a few hundredths of a degree against the SWIR one.
        return self.pa + (0.03 if det >= 4 else 0.0)

    def detector_covers(self, det: int, size: int, ra: float, dec: float) -> bool:
        """Whether the sky position falls on the detector (to within a pixel or two: the
        undistorted grid stands in for the SIP one)."""
        centre = self.detector_centre(det, size)
        grid = tangent_wcs(*centre, self.detector_pa(det))
        x, y = grid.wcs_world2pix([[ra, dec]], 0)[0]
        return bool(np.isfinite(x) and max(abs(x), abs(y)) <= size / 2 + 2)


PIPELINE_VERSIONS = {20: "6.4+psffix1", 21: "6.5.4", 22: "6.5.6"}


def product_version_for(observed: dt.date) -> int:
    """v20 for the first months (pipeline 6.4), v21 then v22 (6.5.x) later (spec §2.2)."""
    if observed < dt.date(2025, 8, 1):
        return 20
    if observed < dt.date(2025, 11, 1):
        return 21
    return 22


@dataclass
class SurveyPlan:
    """Which fields to observe and how often; ``exposures()`` lays them out in time."""

    seed: int
    size: int
    wide_fields: list[tuple[str, float, float, int]] = field(default_factory=list)
    """(name, ra, dec, survey number)."""
    exposures_per_field: int = 3
    deep_fields: list[tuple[str, int]] = field(default_factory=list)
    """(name, number of exposures)."""
    periods: list[PlanningPeriod] | None = None
    """Restrict to these planning periods (default: the ones the wide fields fall in)."""

    def exposures(self) -> list[Exposure]:
        rng = np.random.default_rng([self.seed, 0xA11])
        groups = [
            group
            for name, ra, dec, survey in self.wide_fields
            for group in self._wide_visit(name, ra, dec, survey, rng)
        ]
        periods = sorted({g[0][0] for g in groups} | set(self.periods or []))
        if self.periods is not None:
            groups = [g for g in groups if g[0][0] in self.periods]
        if not periods:
            raise ValueError("no planning period to observe in: give wide fields or --weeks")
        for name, count in self.deep_fields:
            groups.extend(self._deep_visits(name, count, periods, rng))
        return self._number(groups, rng)

    # Each group is one large slew: a list of (period, time, field, survey, ra, dec, pa, epa).

    def _wide_visit(self, name, ra, dec, survey, rng) -> list[list[tuple]]:
        target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(BarycentricMeanEcliptic())
        lon = target.lon.deg
        start = mjd_of(SURVEY_START) + (survey - 1) * SURVEY_LENGTH_DAYS
        # When does the scan circle (Sun longitude +/- 90) pass over the target?
        days = np.arange(0.0, SURVEY_LENGTH_DAYS, 0.01)
        mismatch = np.abs(((sun_longitude(start + days) - lon) % 180.0) - 90.0)
        mjd = start + days[int(np.argmin(mismatch))] + rng.uniform(0.0, 0.02)
        epa = 0 if survey % 2 else 180
        plane = FocalPlane(self.size)
        groups: list[list[tuple]] = []
        for k in range(self.exposures_per_field):
            large, small = divmod(k, 4)
            # Put the target at successive heights of the focal plane, a little off-centre in x.
            y_target = -plane.height / 2 + (small + 0.5) * plane.height / 4
            x_target = rng.uniform(-self.size / 6, self.size / 6)
            bore = place(ra, dec, float(scan_pa(ra, dec, mjd, epa)[0]), x_target, y_target)
            t = mjd + (large * 4 + small) * SMALL_SLEW_CADENCE_S / 86400.0 + large * 0.002
            entry = (_period_at(t, self.seed), t, name, "wide", *bore, epa)
            if small == 0:
                groups.append([])
            groups[-1].append(entry)
        return groups

    def _deep_visits(self, name, count, periods, rng) -> list[list[tuple]]:
        try:
            ra, dec = DEEP_FIELDS[name]
        except KeyError:
            raise ValueError(
                f"unknown deep field {name!r}: choose from {', '.join(DEEP_FIELDS)}"
            ) from None
        plane = FocalPlane(self.size)
        groups: list[list[tuple]] = []
        for index, period in enumerate(periods):
            share = count // len(periods) + (1 if index < count % len(periods) else 0)
            for first in range(0, share, 4):
                # One deep visit (a large slew and up to four small ones) per orbit, starting
                # a few hours into the plan.
                orbit = first // 4
                t0 = mjd_of(period.start) + 0.15 + orbit * ORBIT_S / 86400.0
                t0 += rng.uniform(0, 0.01)
                epa = 0 if survey_number(t0) % 2 else 180
                pa = float(scan_pa(ra, dec, t0, epa)[0])
                group = []
                for _ in range(min(4, share - first)):
                    # The field centre lands inside a detector at a random height, so every
                    # deep exposure sees it, through a different part of the filter.
                    det_slot = rng.integers(0, 3)
                    y_in = rng.uniform(-0.45, 0.45) * self.size
                    y_target = (det_slot - 1) * (self.size + plane.gap) + y_in
                    x_target = rng.uniform(-0.35, 0.35) * self.size
                    bore = place(ra, dec, pa, x_target, y_target)
                    group.append((period, t0, name, "deep", *bore, epa))
                groups.append(group)
        return groups

    def _number(self, groups: list[list[tuple]], rng) -> list[Exposure]:
        """Give each large slew its counter and each exposure its small-slew counter, in time
        order within each planning period; assign product versions per large slew."""
        exposures: list[Exposure] = []
        by_period: dict[PlanningPeriod, list[list[tuple]]] = {}
        for group in groups:
            by_period.setdefault(group[0][0], []).append(group)
        for period in sorted(by_period):
            counter = int(rng.integers(1, 60))
            for group in sorted(by_period[period], key=lambda g: g[0][1]):
                counter += int(rng.integers(1, 9))
                first_time = group[0][1]
                observed = Time(first_time, format="mjd").to_datetime().date()
                version = product_version_for(observed)
                processed = observed + dt.timedelta(days=int(rng.integers(35, 75)))
                sps_target = int(rng.integers(10000, 99999))
                for small, (_, t, name, survey, ra, dec, pa, epa) in enumerate(group, start=1):
                    t = first_time + (small - 1) * SMALL_SLEW_CADENCE_S / 86400.0
                    exposures.append(
                        Exposure(
                            obsid=ObservationId(period, counter, small),
                            survey=survey,
                            field=name,
                            ra=float(ra),
                            dec=float(dec),
                            pa=float(pa) % 360.0,
                            mjd_beg=float(t),
                            sps_target=sps_target,
                            epa=int(epa),
                            version=version,
                            processed=processed,
                            jitter=(float(rng.normal(0, 0.03)), float(rng.normal(0, 0.03))),
                        )
                    )
        return exposures


def _period_at(mjd: float, seed: int) -> PlanningPeriod:
    """The planning period running at ``mjd``: two plans a week, mostly revision A."""
    when = Time(mjd, format="mjd").to_datetime()
    year, week, weekday = when.isocalendar()
    hours = (weekday - 1) * 24 + when.hour + when.minute / 60
    plan = 1 if hours < 84 else 2
    revision = "A" if np.random.default_rng([seed, year, week, plan]).random() < 0.7 else "B"
    return PlanningPeriod(year, week, plan, revision)
