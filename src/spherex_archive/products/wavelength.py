"""The WCS-WAVE lookup table: per-pixel wavelength and bandwidth of a spectral image (§2.7).

Reading goes through astropy's ``-TAB`` support in the tests (the users' way); this module
evaluates the same bilinear interpolation directly, which is what the generator needs for the
truth and what the services need when they have the table but not a full header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits


@dataclass(frozen=True)
class WaveTable:
    """Control points (1-based parent pixels) and the (m, n, 2) wavelength/bandwidth grid in um."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.y), len(self.x), 2):
            raise ValueError(
                f"VALUES shape {self.values.shape} does not match {len(self.y)} x {len(self.x)}"
            )

    def evaluate(self, x0: np.ndarray | float, y0: np.ndarray | float) -> np.ndarray:
        """Wavelength and bandwidth (um) at 0-based parent pixels: array (..., 2).

        Bilinear between the four nearest control points, clamped at the edges, as WCSLIB does
        for a ``-TAB`` axis with index vectors.
        """
        x1 = np.asarray(x0, dtype=float) + 1.0
        y1 = np.asarray(y0, dtype=float) + 1.0
        ix, fx = _locate(self.x, x1)
        iy, fy = _locate(self.y, y1)
        v = self.values
        fx = fx[..., None]
        fy = fy[..., None]
        return (
            v[iy, ix] * (1 - fx) * (1 - fy)
            + v[iy, ix + 1] * fx * (1 - fy)
            + v[iy + 1, ix] * (1 - fx) * fy
            + v[iy + 1, ix + 1] * fx * fy
        )

    def to_hdu(self) -> fits.BinTableHDU:
        """The ``WCS-WAVE`` extension as astropy builds it (for files astropy writes)."""
        n, m = len(self.x), len(self.y)
        cols = fits.ColDefs(
            [
                fits.Column("X", f"{n}J", dim=f"({n})", array=self.x[None, :].astype(">i4")),
                fits.Column("Y", f"{m}J", dim=f"({m})", array=self.y[None, :].astype(">i4")),
                fits.Column(
                    "VALUES",
                    f"{2 * n * m}E",
                    dim=f"(2,{n},{m})",
                    array=self.values[None].astype(">f4"),
                ),
            ]
        )
        return fits.BinTableHDU.from_columns(cols, name="WCS-WAVE")

    def header(self) -> fits.Header:
        """The 18-card header of a real file: EXTNAME right after TFIELDS, then TTYPE, TFORM
        and TDIM per column (astropy would move EXTNAME to the end)."""
        built = self.to_hdu().header
        header = fits.Header()
        for key in (
            "XTENSION",
            "BITPIX",
            "NAXIS",
            "NAXIS1",
            "NAXIS2",
            "PCOUNT",
            "GCOUNT",
            "TFIELDS",
        ):
            header.append(built.cards[key])
        header.append(fits.Card("EXTNAME", "WCS-WAVE", "Extension name"))
        for i in (1, 2, 3):
            for key in ("TTYPE", "TFORM", "TDIM"):
                header.append(built.cards[f"{key}{i}"])
        return header

    def row_bytes(self) -> bytes:
        """The single table row: X, Y, then VALUES in FITS order (k fastest, then x, then y)."""
        return (
            self.x.astype(">i4").tobytes()
            + self.y.astype(">i4").tobytes()
            + self.values.astype(">f4").tobytes()
        )

    @classmethod
    def from_hdu(cls, hdu: fits.BinTableHDU) -> WaveTable:
        row = hdu.data[0]
        return cls(
            np.asarray(row["X"], dtype=float),
            np.asarray(row["Y"], dtype=float),
            np.asarray(row["VALUES"], dtype=float),
        )


def _locate(nodes: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval index and fraction of ``value`` among increasing ``nodes`` (clamped)."""
    i = np.clip(np.searchsorted(nodes, value, side="right") - 1, 0, len(nodes) - 2)
    lo, hi = nodes[i], nodes[i + 1]
    return i, np.clip((value - lo) / (hi - lo), 0.0, 1.0)
