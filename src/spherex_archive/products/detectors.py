"""The six SPHEREx detectors and their linear-variable-filter bands (spec §1.1)."""

from __future__ import annotations

from dataclasses import dataclass

FULL_SIZE = 2040
"""Active pixels per side of a delivered Level-2 image (``JACTIVE = KACTIVE = 2040``)."""

PIXEL_SCALE_ARCSEC = 6.15
PIXEL_SOLID_ANGLE_ARCSEC2 = 37.86
"""Median pixel solid angle (``OMEGA_MEDIAN``); differs from 6.15**2 by the SIP distortion."""

CHANNELS_PER_DETECTOR = 17


@dataclass(frozen=True)
class Detector:
    """One H2RG detector behind its linear variable filter."""

    number: int
    band_min_um: float
    """Band edges of the IRSA user guide."""
    band_max_um: float
    resolving_power: float
    """SIA ``em_res_power``."""
    em_min_m: float
    """SIA ``em_min``, identical for every row of a detector."""
    em_max_m: float
    wave_short_um: float
    """Shortest wavelength in the WCS-WAVE table (top row, centre column)."""
    wave_long_um: float
    """Longest wavelength in the WCS-WAVE table (bottom row, edge columns)."""
    psf_fwhm_arcsec: float
    wave_grid_x: tuple[int, ...]
    """1-based full-frame control-point columns of the WCS-WAVE table."""
    wave_grid_y: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"D{self.number}"

    @property
    def bandpass_name(self) -> str:
        return f"SPHEREx-D{self.number}"

    @property
    def focal_plane(self) -> str:
        return "SWIR" if self.number <= 3 else "MWIR"

    @property
    def partner(self) -> int:
        """The detector of the other focal plane that sees the same sky (D1+D4, D2+D5, D3+D6)."""
        return self.number + 3 if self.number <= 3 else self.number - 3

    @property
    def slot(self) -> int:
        """Position in the focal plane along the LVF (y) axis: 0 bottom, 1 middle, 2 top."""
        return {1: 2, 2: 1, 3: 0, 4: 2, 5: 1, 6: 0}[self.number]


def _uniform(n: int) -> tuple[int, ...]:
    step = (FULL_SIZE - 1) / (n - 1)
    return tuple(round(1 + i * step) for i in range(n))


# Control grids as seen in real QR2 files (spec §2.7); D3 and D4 have extra rows where the
# dichroic makes the bandwidth collapse.
DETECTORS: dict[int, Detector] = {
    d.number: d
    for d in (
        Detector(
            1,
            0.75,
            1.09,
            39.1,
            7.4550e-07,
            1.11670e-06,
            0.735,
            1.126,
            4.6,
            _uniform(9),
            _uniform(9),
        ),
        Detector(
            2,
            1.10,
            1.62,
            41.4,
            1.10330e-06,
            1.64990e-06,
            1.086,
            1.668,
            4.84,
            _uniform(11),
            _uniform(11),
        ),
        Detector(
            3,
            1.63,
            2.41,
            40.6,
            1.63010e-06,
            2.43460e-06,
            1.616,
            2.439,
            5.22,
            _uniform(9),
            (1, 36, 71, 105, 140, 141, 379, 617, 855, 1091, 1326, 1564, 1802, 2040),
        ),
        Detector(
            4,
            2.42,
            3.82,
            34.9,
            2.40270e-06,
            3.84730e-06,
            2.398,
            3.863,
            6.02,
            _uniform(13),
            (
                1,
                151,
                301,
                451,
                601,
                751,
                901,
                1050,
                1200,
                1350,
                1500,
                1650,
                1800,
                1801,
                1841,
                1881,
                1921,
                1960,
                2000,
                2040,
            ),
        ),
        Detector(
            5,
            3.83,
            4.41,
            111.6,
            3.81130e-06,
            4.43000e-06,
            3.792,
            4.436,
            6.06,
            _uniform(11),
            _uniform(11),
        ),
        Detector(
            6,
            4.42,
            5.00,
            127.8,
            4.41150e-06,
            5.00960e-06,
            4.395,
            5.018,
            6.5,
            _uniform(9),
            _uniform(9),
        ),
    )
}


def detector(number: int) -> Detector:
    """The detector ``number`` (1-6); a clear error for anything else."""
    try:
        return DETECTORS[int(number)]
    except (KeyError, ValueError):
        raise ValueError(f"no SPHEREx detector {number!r}: detectors are 1 to 6") from None
