"""Calibration product families of a release (spec §4.3): names, directories and tokens."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CalibrationFamily:
    name: str
    token: str
    """``cal-agm`` style for versioned products, ``base`` for the pre-launch baselines."""
    per_detector: bool = True
    suffix: str = ".fits"


FAMILIES: dict[str, CalibrationFamily] = {
    f.name: f
    for f in (
        CalibrationFamily("abs_gain_matrix", "cal-agm"),
        CalibrationFamily("average_psf", "cal-psf"),
        CalibrationFamily("dark", "cal-drk"),
        CalibrationFamily("dichroic", "base"),
        CalibrationFamily("gain_factors", "base", per_detector=False, suffix=".yaml"),
        CalibrationFamily("nonfunc", "base"),
        CalibrationFamily("nonlinear_pars", "base"),
        CalibrationFamily("readnoise_pars", "base"),
        CalibrationFamily("solid_angle_pixel_map", "cal-sapm"),
        CalibrationFamily("spectral_wcs", "cal-wcs"),
        CalibrationFamily("spectral_channels", "cal-sch", per_detector=False, suffix=".fits.gz"),
    )
}

PIPELINE_FAMILIES = (
    "dichroic",
    "gain_factors",
    "initial_distortion_table",
    "nonfunc",
    "spectral_wcs",
    "nonlinear_pars",
    "readnoise_pars",
    "abs_gain_matrix",
    "average_psf",
    "dark",
    "sip",
)
"""Families named by ``HISTORY [CALIB]`` cards of a Level-2 image, in the order real files list
them. ``initial_distortion_table`` and ``sip`` are named there but not delivered to the archive."""

CAL_NAME = re.compile(
    r"^(?P<family>[a-z_]+?)(?:_D(?P<det>\d))?_spx_(?P<token>(?:cal-[a-z]+-v(?P<version>\d+)|base)"
    r"-(?P<year>\d{4})-(?P<doy>\d{3}))(?P<suffix>\.fits(?:\.gz)?|\.yaml)$"
)


@dataclass(frozen=True)
class CalibrationProduct:
    """One calibration file: family, version (0 for a ``base`` product), date and detector."""

    family: str
    version: int
    date: dt.date
    detector: int | None

    @property
    def token(self) -> str:
        fam = FAMILIES[self.family]
        day = f"{self.date.year}-{self.date.timetuple().tm_yday:03d}"
        if fam.token == "base":
            return f"base-{day}"
        return f"{fam.token}-v{self.version}-{day}"

    @property
    def filename(self) -> str:
        fam = FAMILIES[self.family]
        det = f"_D{self.detector}" if self.detector is not None else ""
        return f"{self.family}{det}_spx_{self.token}{fam.suffix}"

    def key(self, release: str) -> str:
        """Path below the bucket root: ``qr2/dark/cal-drk-v4-2025-161/3/dark_D3_spx_…fits``."""
        det = f"{self.detector}/" if self.detector is not None else ""
        return f"{release}/{self.family}/{self.token}/{det}{self.filename}"


def parse_calibration_filename(name: str) -> CalibrationProduct:
    """Parse a calibration file name; ``ValueError`` if it is not one."""
    match = CAL_NAME.match(name)
    if not match or match["family"] not in FAMILIES:
        raise ValueError(f"not a SPHEREx calibration file name: {name!r}")
    date = dt.date(int(match["year"]), 1, 1) + dt.timedelta(days=int(match["doy"]) - 1)
    det = int(match["det"]) if match["det"] else None
    return CalibrationProduct(match["family"], int(match["version"] or 0), date, det)
