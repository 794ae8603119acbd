"""Injected sources are found back where the WCS puts them, with their injected flux."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from spherex_archive.products.flags import flags_from_header, unusable_mask_value
from spherex_archive.synth.instrument import render_psf
from spherex_archive.synth.sky import TruthCatalogue

ARCSEC2_PER_SR = (180 / np.pi * 3600) ** 2


def fit_flux(hdul: fits.HDUList, sapm: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """PSF-weighted forced photometry at a known position, the way a user would do it: PSF
    plane of the nearest zone, ZODI as background, unusable flags masked, VARIANCE weights."""
    header = hdul["PSF"].header
    xctr = np.array([header[f"XCTR_{k}"] for k in range(1, 122)])
    yctr = np.array([header[f"YCTR_{k}"] for k in range(1, 122)])
    plane = hdul["PSF"].data[int(np.argmin((xctr - x) ** 2 + (yctr - y) ** 2))]
    shape = hdul["IMAGE"].data.shape
    index, weight, _ = render_psf(plane, x, y, shape)
    omega = sapm[round(y), round(x)] / ARCSEC2_PER_SR
    model = weight * 1e-12 / omega  # MJy/sr per uJy
    data = (hdul["IMAGE"].data - hdul["ZODI"].data).ravel()[index]
    variance = hdul["VARIANCE"].data.ravel()[index]
    bad = unusable_mask_value(flags_from_header(hdul["FLAGS"].header))
    good = ((hdul["FLAGS"].data.ravel()[index] & bad) == 0) & np.isfinite(data)
    m, d, v = model[good], data[good], variance[good]
    norm = np.sum(m * m / v)
    return float(np.sum(m * d / v) / norm), float(1 / np.sqrt(norm))


@pytest.fixture(scope="module")
def truth(small_release):
    return TruthCatalogue.read(small_release / "truth"), Table.read(
        small_release / "truth" / "injected.ecsv"
    )


def test_truth_files_are_documented_and_readable(small_release, truth):
    catalogue, injected = truth
    assert (small_release / "truth" / "README.md").exists()
    assert set(catalogue.sources["name"][catalogue.sources["source_id"] <= 5]) >= {
        "NEP-showcase",
        "SEP-showcase",
    }
    assert injected["flux"].unit == u.uJy
    # band fluxes in the table are what the catalogue's spectra give
    sample = injected[:50]
    again = catalogue.band_flux(sample["source_id"], sample["wavelength"], sample["bandwidth"])
    assert np.allclose(again, sample["flux"], rtol=1e-10)


def test_the_wcs_puts_sources_where_they_were_injected(small_release, truth):
    catalogue, injected = truth
    rows = {int(s): i for i, s in enumerate(catalogue.sources["source_id"])}
    for row in injected[:: max(1, len(injected) // 40)]:
        header = fits.getheader(small_release / row["key"], "IMAGE")
        source = catalogue.sources[rows[int(row["source_id"])]]
        x, y = WCS(header).all_world2pix(source["ra"], source["dec"], 0)
        assert abs(x - row["x"]) < 1e-3 and abs(y - row["y"]) < 1e-3


def test_the_nep_showcase_is_found_back_with_its_injected_flux(small_release, truth):
    catalogue, injected = truth
    sid = int(catalogue.sources["source_id"][catalogue.sources["name"] == "NEP-showcase"][0])
    seen = injected[injected["source_id"] == sid]
    assert len(seen) == 2 * 8, "every deep exposure sees the showcase on two detectors"
    pulls, wavelengths = [], []
    for row in seen:
        det = fits.getval(small_release / row["key"], "DETECTOR", "IMAGE")
        sapm = fits.getdata(
            next(small_release.glob(f"qr2/solid_angle_pixel_map/*/{det}/*.fits")), "IMAGE"
        )
        with fits.open(small_release / row["key"]) as hdul:
            flux, error = fit_flux(hdul, sapm, row["x"], row["y"])
            wcs = WCS(hdul["IMAGE"].header, fobj=hdul, key="W")
            wcs.sip = None
            lam = wcs.pixel_to_world(row["x"], row["y"])[0].to_value(u.um)
        pulls.append((flux - row["flux"]) / error)
        wavelengths.append(lam)
        # the table wavelength is the calibration map's to about a nanometre
        assert abs(lam - row["wavelength"]) < 2e-3
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls) < 5), pulls
    assert np.mean(pulls**2) < 3.0
    # the showcase is seen at many different wavelengths across the SPHEREx range
    assert min(wavelengths) < 1.5 and max(wavelengths) > 3.0


def test_bright_sources_are_found_back_within_their_noise(small_release, truth):
    _, injected = truth
    bright = injected[
        (injected["flux"] > 800)
        & (injected["x"] > 5)
        & (injected["x"] < 58)
        & (injected["y"] > 5)
        & (injected["y"] < 58)
    ]
    assert len(bright) >= 10
    pulls = []
    for row in bright[:60]:
        det = fits.getval(small_release / row["key"], "DETECTOR", "IMAGE")
        sapm = fits.getdata(
            next(small_release.glob(f"qr2/solid_angle_pixel_map/*/{det}/*.fits")), "IMAGE"
        )
        with fits.open(small_release / row["key"]) as hdul:
            flux, error = fit_flux(hdul, sapm, row["x"], row["y"])
        pulls.append((flux - row["flux"]) / error)
    # neighbours add a little, so allow a wide but finite tail
    assert np.median(np.abs(pulls)) < 1.5


@pytest.mark.parametrize("radius", [0.1, 2.7])  # a small frame's cone, a full-size frame's
def test_the_sky_near_a_position_is_the_sky_there(radius):
    """Sources drawn for a cone lie in it (give or take a cell), however large the cone: a
    full-size frame's sky is dense all over and holds the showcase at its centre."""
    from astropy.coordinates import SkyCoord

    from spherex_archive.synth.sky import Showcase, SkyModel

    ra, dec = 270.0, 66.56
    sky = SkyModel(42, [Showcase("NEP-showcase", ra, dec, "star", 5000.0, 2000.0)])
    sources = sky.sources_in_cells(sky.cells_near(ra, dec, radius)).sources
    assert 1 in set(sources["source_id"])
    distance = SkyCoord(sources["ra"], sources["dec"], unit="deg").separation(
        SkyCoord(ra, dec, unit="deg")
    )
    assert distance.max() < (radius + 0.5) * u.deg
    area = np.pi * radius**2
    assert len(sources) > 0.5 * area * len(
        sky.sources_in_cells(sky.cells_near(ra, dec, 0.5)).sources
    ) / (np.pi * 0.25)
