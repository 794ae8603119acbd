"""The image viewer's planes and readouts checked against the files as astropy reads them: PNG
orientation (FITS row 1 at the bottom) and levels, the FLAGS mask's colours pixel by pixel, the
PSF zones' places, and the readout's sky position (SIP included) and wavelength (the spectral WCS
read the users' way, spec §2.7)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from spherex_archive.config import Settings
from spherex_archive.products.flags import INFORMATIONAL
from spherex_archive.services.explorer import DatasetFile, ExplorerService, Page, Search
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.viewer import (
    COLOURS,
    PSF_GAP,
    NotAnImage,
    OutsideImage,
    ViewerService,
    psf_mosaic,
)
from spherex_archive.store import LocalStore
from spherex_archive.synth.survey import DEEP_FIELDS


@pytest.fixture(scope="module")
def explorer(catalogues) -> ExplorerService:
    return ExplorerService(QueryEngine(catalogues["sqlite"]), Settings())


@pytest.fixture(scope="module")
def viewer(small_release) -> ViewerService:
    return ViewerService(LocalStore(small_release))


@pytest.fixture(scope="module", params=[3, 4])
def dataset(request, explorer) -> DatasetFile:
    """A spectral image at the NEP (D3 and D4: the dichroic flags)."""
    search = Search(targets=[DEEP_FIELDS["NEP"]], radius=1.0, detectors=[request.param])
    did = explorer.search(search, Page(limit=1))["links"][0]["id"]
    return explorer.dataset(did)


@pytest.fixture(scope="module")
def hdus(dataset, small_release) -> fits.HDUList:
    with fits.open(Path(small_release) / dataset.key) as opened:
        opened.readall()
        yield opened


def png_array(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_info(viewer, dataset, hdus):
    info = viewer.info(dataset)
    ny, nx = hdus["IMAGE"].data.shape
    assert (info["width"], info["height"], info["detector"]) == (nx, ny, dataset.detector)
    assert info["hdus"] == ["IMAGE", "FLAGS", "VARIANCE", "ZODI", "PSF"]
    assert info["bunit"] == hdus["IMAGE"].header["BUNIT"]
    bits = {k[3:]: v for k, v in hdus["FLAGS"].header.items() if k.startswith("MP_")}
    assert {b["name"]: b["bit"] for b in info["flag_bits"]} == bits
    for b in info["flag_bits"]:
        assert b["unusable"] == (b["name"] not in INFORMATIONAL)
        assert b["colour"] == COLOURS[b["bit"]] and b["description"]
    assert len({b["colour"] for b in info["flag_bits"]}) == len(bits)


def test_planes_are_drawn_with_row_1_at_the_bottom(viewer, dataset, hdus):
    for name in ("IMAGE", "VARIANCE", "ZODI"):
        data = hdus[name].data.astype(float)
        png = viewer.plane(dataset, name, "linear")
        levels = png_array(png.png)[::-1].astype(int)  # back to FITS order
        assert levels.shape == data.shape
        finite = np.isfinite(data)
        assert np.all(levels[~finite] == 0)  # the blank colour
        # Full-range linear levels rise with the values, pixel for pixel.
        order = np.argsort(data[finite], kind="stable")
        assert np.all(np.diff(levels[finite][order]) >= 0)
        assert levels[finite].min() == 1 and levels[finite].max() == 255
    for stretch in ("asinh", "zscale", "log"):
        drawn = viewer.plane(dataset, "IMAGE", stretch)
        assert png_array(drawn.png).shape == hdus["IMAGE"].data.shape
    tags = {viewer.plane(dataset, "IMAGE", s).etag for s in ("asinh", "zscale", "log", "linear")}
    assert len(tags) == 4
    assert viewer.plane(dataset, "IMAGE", "asinh") is viewer.plane(dataset, "IMAGE", "asinh")


def test_flags_mask_colours(viewer, dataset, hdus):
    flags = hdus["FLAGS"].data.astype(np.int64)
    bits = {k[3:]: v for k, v in hdus["FLAGS"].header.items() if k.startswith("MP_")}
    unusable = [b for n, b in bits.items() if n not in INFORMATIONAL]
    rgba = png_array(viewer.plane(dataset, "FLAGS", "asinh").png)[::-1]
    assert rgba.shape == (*flags.shape, 4)
    assert flags.any()
    for (y, x), value in np.ndenumerate(flags):
        if value == 0:
            assert rgba[y, x, 3] == 0
            continue
        set_bits = [b for b in range(32) if value >> b & 1]
        bad = [b for b in set_bits if b in unusable]
        bit = max(bad) if bad else min(set_bits)
        colour = COLOURS[bit]
        assert tuple(rgba[y, x]) == (*(int(colour[i : i + 2], 16) for i in (1, 3, 5)), 255)


def test_psf_zones_lie_as_on_the_detector(viewer, dataset, hdus):
    cube = hdus["PSF"].data
    _, ny, nx = cube.shape
    mosaic = psf_mosaic(cube)
    assert mosaic.shape == (11 * ny + 10 * PSF_GAP, 11 * nx + 10 * PSF_GAP)
    for k in (0, 1, 11, 60, 120):
        iy, ix = divmod(k, 11)
        y0, x0 = iy * (ny + PSF_GAP), ix * (nx + PSF_GAP)
        assert np.array_equal(mosaic[y0 : y0 + ny, x0 : x0 + nx], cube[k])
    assert np.isnan(mosaic[ny, :]).all()  # the gap above the first row of zones
    png = png_array(viewer.plane(dataset, "PSF", "log").png)
    assert png.shape == mosaic.shape


def test_pixel_readout(viewer, dataset, hdus):
    header = hdus["IMAGE"].header
    celestial = WCS(header)
    spectral = WCS(header, fobj=hdus, key="W")
    spectral.sip = None  # as spec §2.7 says users must
    ny, nx = hdus["IMAGE"].data.shape
    for x, y in ((1, 1), (nx, ny), (17, 40), (33.3, 5.6)):
        found = viewer.pixel(dataset, x, y)
        column, row = round(x) - 1, round(y) - 1
        ra, dec = celestial.all_pix2world([[x - 1, y - 1]], 0)[0]
        assert (found["ra"], found["dec"]) == pytest.approx((ra, dec), abs=1e-9)
        wavelength, bandwidth = spectral.pixel_to_world(x - 1, y - 1)
        assert found["wavelength_um"] == pytest.approx(wavelength.to_value("um"), abs=1e-5)
        assert found["bandwidth_um"] == pytest.approx(bandwidth.to_value("um"), abs=1e-5)
        for key, name in (("image", "IMAGE"), ("variance", "VARIANCE"), ("zodi", "ZODI")):
            expected = float(hdus[name].data[row, column])
            assert found[key] == (pytest.approx(expected) if np.isfinite(expected) else None)
        flags = int(hdus["FLAGS"].data[row, column])
        assert found["flags"] == flags
        bits = {k[3:]: v for k, v in hdus["FLAGS"].header.items() if k.startswith("MP_")}
        assert set(found["flag_names"]) == {n for n, b in bits.items() if flags >> b & 1}
        assert (found["column"], found["row"], found["unit"]) == (
            column + 1,
            row + 1,
            header["BUNIT"],
        )
    for x, y in ((0.4, 3), (3, ny + 0.6), (-2, -2)):
        with pytest.raises(OutsideImage, match="outside the image"):
            viewer.pixel(dataset, x, y)


def test_calibration_files_are_not_images(viewer, explorer):
    did = explorer.search(Search(collections=["spherex_qr2_cal"]), Page(limit=1))["links"][0]["id"]
    with pytest.raises(NotAnImage):
        viewer.info(explorer.dataset(did))
