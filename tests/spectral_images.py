"""How the tests read spectral images the users' way: dataset ids from the files' headers, and
the per-pixel wavelength through astropy's ``-TAB`` spectral WCS (spec §2.7)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS


def dataset_files(release: Path, *, deep: bool = True) -> dict[str, Path]:
    """Dataset id -> file of the release's spectral images (the deep survey's too, or not)."""
    found = {}
    for path in sorted(release.glob("qr2/level2/*/*/*/level2_*.fits")):
        with fits.open(path) as hdus:
            header = hdus["IMAGE"].header
            is_deep = str(header.get("SPS_FLAGS", "")).strip() == "deep"
            if is_deep and not deep:
                continue
            collection = "spherex_qr2_deep" if is_deep else "spherex_qr2"
            found[f"ivo://irsa.ipac/{collection}?{header['OBSID']}/D{header['DETECTOR']}"] = path
    return found


def spectral_wcs(hdul: fits.HDUList, name: str = "IMAGE") -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        wcs = WCS(hdul[name].header, fobj=hdul, key="W")
    wcs.sip = None  # as users must (spec §2.7)
    return wcs


def wavelengths(hdul: fits.HDUList, name: str = "IMAGE") -> np.ndarray:
    """The wavelength (um) of every pixel, by astropy from the file's WCS-WAVE table."""
    ny, nx = hdul[name].data.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    return spectral_wcs(hdul, name).pixel_to_world(xx, yy)[0].to_value("um")
