"""A model of the SPHEREx instrument good enough to make files worth testing on.

Each function is a smooth, deterministic model whose shape follows what is known of the real
instrument (spec §1-2); where the spec marks a fact as a guess, the docstring says so. A reduced
detector size keeps the 6.15 arcsec pixels and every structural rule: the wavelength model and
the PSF zones are laid over the smaller frame the way they are over the full one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import erf

from spherex_archive.products.detectors import DETECTORS, FULL_SIZE, PIXEL_SCALE_ARCSEC
from spherex_archive.products.wavelength import WaveTable

PSF_ZONES = 11
PSF_STAMP = 101
PSF_OVERSAMPLING = 10
PSF_CENTRE = PSF_STAMP // 2

ROW_CURVATURE = 0.0103
"""Relative rise of wavelength from the centre column to the edges (D1: 1.1146 -> 1.126 um)."""


# ---------------------------------------------------------------------------------------------
# Linear variable filter


def _full_frame(coord0: np.ndarray, size: int) -> np.ndarray:
    """0-based pixel on a ``size`` frame -> 0..1 across the frame (the LVF is laid over it)."""
    return np.asarray(coord0, dtype=float) / (size - 1)


def lvf_wavelength(det: int, x0: np.ndarray, y0: np.ndarray, size: int) -> np.ndarray:
    """Wavelength (um) at 0-based pixels: falling with y at constant resolving power, curved
    along rows (lowest at the centre column, about 1 % higher at both edges)."""
    d = DETECTORS[det]
    t = _full_frame(y0, size)
    u = 2.0 * _full_frame(x0, size) - 1.0
    long_centre = d.wave_long_um / (1.0 + ROW_CURVATURE)
    centre = long_centre * (d.wave_short_um / long_centre) ** t
    return centre * (1.0 + ROW_CURVATURE * u**2)


def lvf_bandwidth(det: int, x0: np.ndarray, y0: np.ndarray, size: int) -> np.ndarray:
    """Bandwidth (um), about lambda/R; collapses in the dichroic transition rows of D3 and D4."""
    d = DETECTORS[det]
    lam = lvf_wavelength(det, x0, y0, size)
    t = _full_frame(y0, size)
    u = 2.0 * _full_frame(x0, size) - 1.0
    ripple = 1.0 + 0.015 * np.sin(7.0 * t + 3.0 * u + det)
    bandwidth = lam / d.resolving_power * ripple
    if det == 3:  # long-wavelength edge of D3 (low y), spec §1.2
        bandwidth = bandwidth * (1.0 - 0.5 * np.exp(-t * FULL_SIZE / 60.0))
    elif det == 4:  # short-wavelength edge of D4 (high y)
        bandwidth = bandwidth * (1.0 - 0.5 * np.exp(-(1.0 - t) * FULL_SIZE / 80.0))
    return bandwidth


@cache
def wave_table(det: int, size: int) -> WaveTable:
    """The WCS-WAVE table of a detector: the real control grid (§2.7) scaled to ``size``."""
    d = DETECTORS[det]

    def scale(grid: tuple[int, ...]) -> np.ndarray:
        points = np.round(1 + (np.asarray(grid) - 1) * (size - 1) / (FULL_SIZE - 1))
        return np.unique(points.astype(int)).astype(float)

    x, y = scale(d.wave_grid_x), scale(d.wave_grid_y)
    xx, yy = np.meshgrid(x - 1.0, y - 1.0)
    values = np.stack(
        [lvf_wavelength(det, xx, yy, size), lvf_bandwidth(det, xx, yy, size)], axis=-1
    )
    return WaveTable(x, y, np.round(values, 6))


# ---------------------------------------------------------------------------------------------
# PSF


@dataclass(frozen=True)
class PsfZones:
    """Zone centres and widths over a detector of ``size`` pixels (0-based parent pixels)."""

    size: int

    @property
    def width(self) -> float:
        return self.size / PSF_ZONES

    def centre(self, index: int) -> float:
        """``XCTR(ix) = (ix + 0.5) * size / 11 + 0.5`` as in a real file (spec §2.6)."""
        return (index + 0.5) * self.width + 0.5

    def widths(self) -> list[float]:
        """The first zone is one pixel wider, as seen in a real file (last zone unconfirmed)."""
        return [self.width + 1.0] + [self.width] * (PSF_ZONES - 1)

    def zone_of(self, x0: np.ndarray, y0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The zone whose centre is nearest to each 0-based pixel: (ix, iy)."""
        ix = np.clip(np.floor((np.asarray(x0) - 0.5) / self.width), 0, PSF_ZONES - 1)
        iy = np.clip(np.floor((np.asarray(y0) - 0.5) / self.width), 0, PSF_ZONES - 1)
        return ix.astype(int), iy.astype(int)

    @staticmethod
    def plane(ix: np.ndarray | int, iy: np.ndarray | int) -> np.ndarray | int:
        """Plane index (0-based) of zone (ix, iy): x runs fastest."""
        return iy * PSF_ZONES + ix


@cache
def psf_cube(det: int) -> np.ndarray:
    """The (121, 101, 101) oversampled PSF cube of a detector, each plane summing to 1.

    A core Gaussian with a faint wide halo, growing, stretching and shifting (coma-like)
    toward the corners of the detector, so that using the wrong zone visibly biases a
    photometric fit. The real zone-to-zone variation is not documented: this is a guess of the
    right size.
    """
    d = DETECTORS[det]
    sigma0 = d.psf_fwhm_arcsec / PIXEL_SCALE_ARCSEC / 2.3548 * PSF_OVERSAMPLING
    grid = np.arange(PSF_STAMP, dtype=float) - PSF_CENTRE
    gx, gy = np.meshgrid(grid, grid)
    cube = np.empty((PSF_ZONES * PSF_ZONES, PSF_STAMP, PSF_STAMP), dtype=np.float64)
    for iy in range(PSF_ZONES):
        for ix in range(PSF_ZONES):
            rx = (ix - 5) / 5.0
            ry = (iy - 5) / 5.0
            r = min(np.hypot(rx, ry), 1.5)
            angle = np.arctan2(ry, rx)
            sigma_major = sigma0 * (1.0 + 0.25 * r)
            sigma_minor = sigma0 * (1.0 - 0.10 * r)
            shift = 3.0 * r  # oversampled pixels = 0.3 detector pixel at the corner
            cx, cy = shift * np.cos(angle), shift * np.sin(angle)
            dx, dy = gx - cx, gy - cy
            along = dx * np.cos(angle) + dy * np.sin(angle)
            across = -dx * np.sin(angle) + dy * np.cos(angle)
            core = np.exp(-0.5 * ((along / sigma_major) ** 2 + (across / sigma_minor) ** 2))
            halo = np.exp(-0.5 * (dx**2 + dy**2) / (3.0 * sigma0) ** 2)
            plane = 0.9 * core / core.sum() + 0.1 * halo / halo.sum()
            cube[PsfZones.plane(ix, iy)] = plane / plane.sum()
    return cube.astype(np.float32)


def render_psf(
    plane: np.ndarray, x0: float, y0: float, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate an oversampled PSF plane onto detector pixels for a source at (x0, y0).

    Every oversampled sample goes to the detector pixel that contains its centre. Returns the
    flat pixel indices, the fraction of flux each receives, and the (row, col) origin used; the
    same function builds the model in photometry, so injection and measurement agree.
    """
    offsets = (np.arange(PSF_STAMP) - PSF_CENTRE) / PSF_OVERSAMPLING
    cols = np.floor(x0 + offsets + 0.5).astype(np.int64)
    rows = np.floor(y0 + offsets + 0.5).astype(np.int64)
    ny, nx = shape
    col_ok = (cols >= 0) & (cols < nx)
    row_ok = (rows >= 0) & (rows < ny)
    sub = plane[np.ix_(row_ok, col_ok)]
    flat = (rows[row_ok][:, None] * nx + cols[col_ok][None, :]).ravel()
    unique, inverse = np.unique(flat, return_inverse=True)
    weights = np.bincount(inverse, weights=sub.ravel().astype(np.float64))
    return unique, weights, np.array([rows[0], cols[0]])


# ---------------------------------------------------------------------------------------------
# Optical distortion (SIP)


def sip_coefficients(det: int, size: int, jitter: np.ndarray) -> dict[str, float]:
    """Forward SIP ``A_p_q``/``B_p_q``: all ten terms with p + q <= 3, as in real files (the
    constant and linear ones included).

    The distortion field is defined on the full frame and evaluated in pixels of this frame, so
    a reduced detector sees the central part of the same field. ``jitter`` (2 values) moves the
    constant terms the way a per-exposure astrometric solution does.
    """
    half = FULL_SIZE / 2.0
    k = det - 3.5
    a = {
        (0, 0): -0.36 + jitter[0],
        (2, 0): 1.1 + 0.05 * k,
        (1, 1): -0.6,
        (0, 2): 0.4,
        (3, 0): -0.5,
        (2, 1): 0.3,
        (1, 2): -0.7 + 0.04 * k,
        (0, 3): 0.2,
    }
    b = {
        (0, 0): -1.11 + jitter[1],
        (2, 0): 0.3,
        (1, 1): 0.9 - 0.03 * k,
        (0, 2): -1.2,
        (3, 0): 0.25,
        (2, 1): -0.6,
        (1, 2): 0.35,
        (0, 3): -0.45,
    }
    coefficients: dict[str, float] = {}
    for name, table in (("A", a), ("B", b)):
        for p in range(4):
            for q in range(4 - p):
                value = table.get((p, q), 0.0) / half ** (p + q)
                coefficients[f"{name}_{p}_{q}"] = float(value)
    return coefficients


def sip_inverse(forward: dict[str, float], size: int) -> dict[str, float]:
    """Fit ``AP_p_q``/``BP_p_q`` so that the inverse is good to well under 0.01 pixel."""
    half = size / 2.0 + 1.0
    g = np.linspace(-half, half, 41)
    u, v = (a.ravel() for a in np.meshgrid(g, g))
    du = _poly(forward, "A", u, v)
    dv = _poly(forward, "B", u, v)
    big_u, big_v = u + du, v + dv
    terms = [(p, q) for p in range(4) for q in range(4 - p)]
    design = np.stack([big_u**p * big_v**q for p, q in terms], axis=1)
    inverse: dict[str, float] = {}
    for name, target in (("AP", u - big_u), ("BP", v - big_v)):
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        for (p, q), value in zip(terms, solution, strict=True):
            inverse[f"{name}_{p}_{q}"] = float(value)
    return inverse


def _poly(coefficients: dict[str, float], name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros_like(u)
    for p in range(4):
        for q in range(4 - p):
            out += coefficients.get(f"{name}_{p}_{q}", 0.0) * u**p * v**q
    return out


# ---------------------------------------------------------------------------------------------
# Zodiacal light and noise


def zodi_brightness(wavelength_um: np.ndarray, ecliptic_lat_deg: float) -> np.ndarray:
    """Zodiacal light (MJy/sr): scattered sunlight plus thermal emission, fainter toward the
    ecliptic poles. Smooth and of the right size (about 0.1-0.5 MJy/sr); not a fitted model."""
    lam = np.asarray(wavelength_um, dtype=float)
    latitude_factor = 0.35 + 0.65 * np.cos(np.radians(ecliptic_lat_deg)) ** 2
    scattered = 0.32 * (lam / 1.25) ** -0.6 * np.exp(-((lam - 0.9) ** 2) / 30.0)
    x = 14387.77 / (lam * 275.0)  # h c / (lambda k T) for dust at 275 K
    thermal = 2.6e3 * lam**-3 / np.expm1(x)
    return latitude_factor * (scattered + thermal)


READ_VARIANCE = {1: 9.0e-5, 2: 9.0e-5, 3: 1.0e-4, 4: 1.4e-4, 5: 4.0e-4, 6: 5.0e-4}
"""Per-pixel variance floor (MJy/sr)^2; the narrow MWIR bands D5-D6 are noisier."""
SHOT_GAIN = {1: 3.0e-4, 2: 3.0e-4, 3: 3.0e-4, 4: 3.5e-4, 5: 9.0e-4, 6: 1.0e-3}
"""Variance added per MJy/sr of signal."""


def variance_model(det: int, signal: np.ndarray) -> np.ndarray:
    return READ_VARIANCE[det] + SHOT_GAIN[det] * np.clip(signal, 0.0, None)


def gaussian_band_average(
    centre: np.ndarray, sigma: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Mean over [lo, hi] of a unit-area Gaussian: what a top-hat bandpass sees of a line."""
    s = np.sqrt(2.0) * sigma
    return 0.5 * (erf((hi - centre) / s) - erf((lo - centre) / s)) / (hi - lo)
