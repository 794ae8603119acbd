"""Generated files open exactly as the real archive's users open them (spec §2, §8, §9)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.units import Unit
from astropy.wcs import WCS
from packaging.version import Version

from spherex_archive.products.detectors import DETECTORS
from spherex_archive.products.flags import flag_bits, flags_from_header
from spherex_archive.products.naming import parse_level2_filename

EXPECTED_HDUS = [
    ("PRIMARY", None, None),
    ("IMAGE", ">f4", "MJy / sr"),
    ("FLAGS", ">i4", ""),
    ("VARIANCE", ">f4", "MJy2 / sr2"),
    ("ZODI", ">f4", "MJy / sr"),
    ("PSF", ">f4", ""),
    ("WCS-WAVE", None, None),
]


def level2_files(root: Path) -> list[Path]:
    return sorted(root.glob("qr2/level2/*/*/*/level2_*.fits"))


@pytest.fixture(scope="module")
def files(small_release) -> list[Path]:
    found = level2_files(small_release)
    assert len(found) == 6 * (3 * 2 + 8 + 2)
    return found


def test_seven_hdus_in_order_with_dtypes_and_units(files):
    for path in files[::7]:
        with fits.open(path) as hdul:
            assert [h.name for h in hdul] == [name for name, _, _ in EXPECTED_HDUS]
            for hdu, (_, dtype, bunit) in zip(hdul, EXPECTED_HDUS, strict=True):
                if dtype:
                    assert hdu.data.dtype == np.dtype(dtype)
                if bunit is not None:
                    assert hdu.header["BUNIT"] == bunit
                    Unit(hdu.header["BUNIT"])  # parses
            assert hdul["PSF"].data.shape == (121, 101, 101)
            assert hdul["IMAGE"].data.shape == (64, 64)
            assert list(hdul[0].header) == ["SIMPLE", "BITPIX", "NAXIS", "EXTEND", "VERSION"]
            Version(hdul[0].header["VERSION"])


def test_name_header_and_directory_agree(files):
    for path in files:
        name = parse_level2_filename(path.name)
        header = fits.getheader(path, "IMAGE")
        assert header["OBSID"] == str(name.obsid)
        assert header["DETECTOR"] == name.detector
        assert path.parent.name == str(name.detector)
        assert path.parent.parent.name == str(name.product)
        assert path.parent.parent.parent.name == str(name.obsid.period)
        assert header["EXPIDN"] == name.obsid.expidn(name.detector)
        assert header["MJD-OBS"] == header["MJD-BEG"] < header["MJD-AVG"] < header["MJD-END"]
        assert header["XPOSURE"] == pytest.approx(113.5826)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", header["DATE-AVG"])


def test_celestial_wcs_with_sip_and_identical_blocks(files):
    path = files[0]
    with fits.open(path) as hdul:
        wcs = WCS(hdul["IMAGE"].header)
        assert wcs.sip is not None and wcs.sip.a_order == 3
        assert wcs.wcs.ctype[0] == "RA---TAN-SIP"
        # the same sky for every pixel plane
        for name in ("FLAGS", "VARIANCE", "ZODI"):
            other = WCS(hdul[name].header)
            assert np.allclose(other.all_pix2world([[5, 9]], 0), wcs.all_pix2world([[5, 9]], 0))
        # pixel scale 6.15 arcsec from the PC matrix
        scale = np.sqrt(abs(np.linalg.det(wcs.wcs.get_pc()))) * 3600
        assert scale == pytest.approx(6.15, rel=1e-6)
        # the 'A' WCS gives 0-based parent pixels
        pixel = WCS(hdul["IMAGE"].header, key="A")
        assert np.allclose(pixel.wcs_pix2world([[3.0, 7.0]], 0), [[3.0, 7.0]])


def test_wavelength_from_the_w_wcs_falls_with_y_and_stays_in_band(files):
    for path in files[::5]:
        with fits.open(path) as hdul:
            det = hdul["IMAGE"].header["DETECTOR"]
            wcs = WCS(hdul["IMAGE"].header, fobj=hdul, key="W")
            wcs.sip = None
            y = np.arange(0, 64, 7)
            x = np.full_like(y, 31)
            wavelength, bandwidth = wcs.pixel_to_world(x, y)
            lam = wavelength.to_value(u.um)
            assert np.all(np.diff(lam) < 0), "wavelength must fall with y"
            d = DETECTORS[det]
            assert d.wave_short_um - 1e-3 <= lam.min() and lam.max() <= d.wave_long_um + 1e-3
            # bandwidth about lambda / R
            ratio = (lam / bandwidth.to_value(u.um)) / d.resolving_power
            assert np.all((ratio > 0.9) & (ratio < 2.2))
            # rows are curved: the centre column is bluer than the edges
            edge, centre = wcs.pixel_to_world([0, 31], [20, 20])[0].to_value(u.um)
            assert edge > centre


def test_wcs_wave_table_layout(files):
    with fits.open(files[0]) as hdul:
        table = hdul["WCS-WAVE"]
        keys = list(table.header)
        assert keys.index("EXTNAME") == keys.index("TFIELDS") + 1
        assert len(table.header) == 18 and table.header["NAXIS2"] == 1
        values = table.data["VALUES"][0]
        assert values.shape == (len(table.data["Y"][0]), len(table.data["X"][0]), 2)
        assert table.data["X"][0][0] == 1 and table.data["X"][0][-1] == 64


def test_flags_cards_counts_and_rates(files):
    for path in files[::9]:
        with fits.open(path) as hdul:
            header = hdul["FLAGS"].header
            assert header["EXTTYPE"] == "MASK"
            version = parse_level2_filename(path.name).product.version
            bits = flags_from_header(header)
            assert bits == flag_bits(version)
            flags = hdul["FLAGS"].data
            for name, bit in bits.items():
                assert header[f"L2 N_{name}"] == np.count_nonzero(flags & (1 << bit))
            image = hdul["IMAGE"].data
            dead = (flags & (1 << bits["NONFUNC"])) != 0
            assert np.all(np.isnan(image[dead]))
            assert np.isfinite(image[flags == 0]).all()
            det = hdul["IMAGE"].header["DETECTOR"]
            dichroic = np.count_nonzero(flags & (1 << bits["DICHROIC"]))
            assert (dichroic > 0) == (det in (3, 4))


def test_psf_plane_for_a_position(files):
    with fits.open(files[0]) as hdul:
        header = hdul["PSF"].header
        assert header["OVERSAMP"] == 10
        xctr = np.array([header[f"XCTR_{k}"] for k in range(1, 122)])
        yctr = np.array([header[f"YCTR_{k}"] for k in range(1, 122)])
        # x runs fastest and zone (0, 0) is at the bottom left
        assert xctr[1] > xctr[0] and yctr[1] == yctr[0] and yctr[11] > yctr[0]
        x, y = 60.0, 2.0  # 0-based parent pixel
        k = int(np.argmin((xctr - x) ** 2 + (yctr - y) ** 2))
        assert k == 10
        plane = hdul["PSF"].data[k]
        assert plane.sum() == pytest.approx(1.0, rel=1e-4)
        assert np.unravel_index(np.argmax(plane), plane.shape) in {
            (50 + dy, 50 + dx) for dx in range(-4, 5) for dy in range(-4, 5)
        }


def test_calibration_history_names_files_of_the_release(small_release, files):
    uuids = {}
    for path in small_release.glob("qr2/*/*/*/*.fits"):
        if "/level2/" not in str(path):
            uuids[fits.getval(path, "CALUUID")] = path
    header = fits.getheader(files[0], "IMAGE")
    calib = [h.split()[1:] for h in header["HISTORY"] if h.startswith("[CALIB]")]
    assert [family for family, _ in calib][:3] == [
        "dichroic",
        "gain_factors",
        "initial_distortion_table",
    ]
    resolved = {family for family, uid in calib if uid in uuids}
    assert resolved == {
        "dichroic",
        "nonfunc",
        "spectral_wcs",
        "nonlinear_pars",
        "readnoise_pars",
        "abs_gain_matrix",
        "average_psf",
        "dark",
    }


def test_calibration_collection(small_release):
    files = [
        p
        for p in small_release.glob("qr2/*/**/*")
        if p.is_file() and "/level2/" not in str(p) and p.name != "MD5SUMS"
    ]
    assert len(files) == 74
    sapm = next(small_release.glob("qr2/solid_angle_pixel_map/*/1/*.fits"))
    with fits.open(sapm) as hdul:
        assert Unit(hdul["IMAGE"].header["BUNIT"]) == u.arcsec**2
        assert 37.0 < float(np.median(hdul["IMAGE"].data)) < 38.5
    channels = next(small_release.glob("qr2/spectral_channels/*/*.fits.gz"))
    with fits.open(channels) as hdul:
        assert len(hdul["SPECTRAL_CHANNELS"].data) == 102


def test_manifests_list_every_file_with_its_md5(small_release):
    import hashlib

    manifests = list(small_release.glob("qr2/**/MD5SUMS"))
    listed = 0
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            md5, name = line.split("  ", 1)
            assert hashlib.md5((manifest.parent / name).read_bytes()).hexdigest() == md5
            listed += 1
    assert listed == len(level2_files(small_release)) + 74
