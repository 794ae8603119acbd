"""The cutout engine against the parent files, read by astropy: pixels bit for bit, WCS on the
same sky, spectral WCS on the same wavelengths, the spec's header example, the bytes read."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from spherex_archive.services.cutout import (
    CutoutError,
    NoOverlap,
    Window,
    cut,
    open_image,
    shape_window,
)
from spherex_archive.services.shapes import parse_pos
from spherex_archive.store import LocalStore
from spherex_archive.synth.release import SynthOptions, synthesise
from tests.spectral_images import spectral_wcs

PLANES = ("IMAGE", "FLAGS", "VARIANCE", "ZODI")
ORDER = ["PRIMARY", *PLANES, "PSF", "WCS-WAVE"]


def level2_keys(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("qr2/level2/*/*/*/*.fits"))


def open_cutout(store, image, window) -> fits.HDUList:
    return fits.open(io.BytesIO(cut(store, image, window).to_bytes(store)))


def check_cutout(hdul: fits.HDUList, parent: fits.HDUList, window: Window) -> None:
    """Everything §3 promises of a cutout, against the parent."""
    assert [h.name for h in hdul] == ORDER
    x0, y0 = window.x0, window.y0
    for name in PLANES:
        expected = parent[name].data[window.y0 : window.y1, window.x0 : window.x1]
        got = hdul[name].data
        assert got.dtype == expected.dtype
        assert got.tobytes() == expected.tobytes(), name  # bit for bit, NaNs included
        header, original = hdul[name].header, parent[name].header
        for key in ("CRPIX1", "CRPIX1A", "CRPIX1W"):
            assert header[key] == original[key] - x0
        for key in ("CRPIX2", "CRPIX2A", "CRPIX2W"):
            assert header[key] == original[key] - y0
        untouched = (
            set(original)
            - {"NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2"}
            - {f"CRPIX{i}{k}" for i in "12" for k in "AW"}
        )
        assert list(header) == list(original)  # every card, in order
        assert all(header[k] == original[k] for k in untouched if k not in ("HISTORY", "COMMENT"))
    assert hdul["PRIMARY"].header["VERSION"] == parent["PRIMARY"].header["VERSION"]
    assert np.array_equal(hdul["PSF"].data, parent["PSF"].data)
    assert hdul["PSF"].header == parent["PSF"].header
    assert hdul["WCS-WAVE"].data.tobytes() == parent["WCS-WAVE"].data.tobytes()
    # A sky position lands on the same pixel through both WCSs (SIP included).
    rng = np.random.default_rng(window.x0 * 7919 + window.y0)
    xs = window.x0 + rng.uniform(-0.5, window.nx - 0.5, 5)
    ys = window.y0 + rng.uniform(-0.5, window.ny - 0.5, 5)
    ra, dec = WCS(parent["IMAGE"].header).all_pix2world(xs, ys, 0)
    cx, cy = WCS(hdul["IMAGE"].header).all_world2pix(ra, dec, 0)
    assert np.abs(cx - (xs - x0)).max() < 1e-6
    assert np.abs(cy - (ys - y0)).max() < 1e-6
    # The user's recipe for a cutout's parent pixel: 1 + x_cutout - CRPIX1A.
    assert 1 + 0 - hdul["IMAGE"].header["CRPIX1A"] == x0
    # The spectral WCS gives the parent's wavelength at the same pixel.
    px, py = rng.integers(0, window.nx), rng.integers(0, window.ny)
    got_wl = spectral_wcs(hdul).pixel_to_world(px, py)[0]
    want_wl = spectral_wcs(parent).pixel_to_world(px + x0, py + y0)[0]
    assert abs(got_wl.to_value("um") - want_wl.to_value("um")) < 1e-9


@pytest.fixture(scope="module")
def store(small_release) -> LocalStore:
    return LocalStore(small_release)


def test_random_windows_on_every_detector(store, small_release):
    rng = np.random.default_rng(11)
    keys = level2_keys(small_release)
    for key in rng.choice(keys, 12, replace=False):
        image = open_image(store, store.stat(key))
        height, width = image.shape
        with fits.open(small_release / key) as parent:
            for _ in range(3):
                centre = (rng.uniform(-5, width + 5), rng.uniform(-5, height + 5))
                size = (rng.integers(1, 40), rng.integers(1, 40))
                try:
                    window = image.box(centre, size, pixel_centre=True, pixel_size=True)
                except NoOverlap:
                    continue
                x0 = max(math.floor(centre[0] + 1 - size[0] / 2), 0)
                assert window.x0 == x0
                assert window.nx == min(
                    math.floor(centre[0] + 1 - size[0] / 2) + size[0], width
                ) - max(math.floor(centre[0] + 1 - size[0] / 2), 0)
                check_cutout(open_cutout(store, image, window), parent, window)


def test_sky_centre_and_angular_size(store, small_release):
    key = level2_keys(small_release)[0]
    image = open_image(store, store.stat(key))
    ra, dec = image.world([20.3], [30.8])
    scale = image.pixel_scale
    window = image.box((ra[0], dec[0]), (10 * scale[0], 6 * scale[1]))
    assert (window.nx, window.ny) == (10, 6)
    # floor(c + 1 - n/2) with c the target's 0-based pixel (SIP applied)
    assert (window.x0, window.y0) == (math.floor(20.3 + 1 - 5), math.floor(30.8 + 1 - 3))
    with fits.open(small_release / key) as parent:
        check_cutout(open_cutout(store, image, window), parent, window)


def test_only_the_needed_bytes_are_read(small_release):
    store = LocalStore(small_release)
    key = level2_keys(small_release)[3]
    image = open_image(store, store.stat(key))
    window = Window(5, 7, 25, 19)
    store.bytes_read = 0
    result = cut(store, image, window)
    pixels = store.bytes_read
    assert pixels == 4 * window.nx * window.ny * 4
    # The copied PSF and table are read only while the answer streams (the PRIMARY, a header
    # only, was read with the layout).
    psf = next(h for h in image.hdus if h.name == "PSF")
    table = next(h for h in image.hdus if h.name == "WCS-WAVE")
    copied = (psf.end - psf.header_start) + (table.end - table.header_start)
    assert result.size == sum(len(p) for p in result.iter_bytes(store))
    assert store.bytes_read == pixels + copied


def test_no_overlap_and_bad_windows(store, small_release):
    key = level2_keys(small_release)[0]
    image = open_image(store, store.stat(key))
    height, width = image.shape
    with pytest.raises(NoOverlap):
        image.box((width + 30, 5), (10, 10), pixel_centre=True, pixel_size=True)
    ra, dec = image.world([width / 2], [height / 2])
    with pytest.raises(NoOverlap):  # the other side of the sky
        image.box(((ra[0] + 180) % 360, -dec[0]), (0.1, 0.1))
    with pytest.raises(CutoutError):
        cut(store, image, Window(0, 0, width + 1, 4))


def test_clipped_at_the_edge(store, small_release):
    key = level2_keys(small_release)[1]
    image = open_image(store, store.stat(key))
    window = image.box((0, 0), (10, 10), pixel_centre=True, pixel_size=True)
    assert (window.x0, window.y0, window.nx, window.ny) == (0, 0, 6, 6)
    with fits.open(small_release / key) as parent:
        check_cutout(open_cutout(store, image, window), parent, window)


def test_sky_shapes_become_the_pixels_they_cover(store, small_release):
    key = level2_keys(small_release)[2]
    image = open_image(store, store.stat(key))
    height, width = image.shape
    ra, dec = image.world([30.0], [25.0])
    r = 8 * image.pixel_scale[0]
    window = shape_window(image, parse_pos(f"CIRCLE {ra[0]} {dec[0]} {r}"))
    assert abs(window.nx - 17) <= 1 and abs(window.ny - 17) <= 1
    assert window.x0 <= 22 <= 38 <= window.x1
    # A polygon: the box of its vertices' pixels.
    px = np.array([10.0, 40.0, 25.0])
    py = np.array([12.0, 15.0, 44.0])
    pra, pdec = image.world(px, py)
    polygon = " ".join(f"{a} {b}" for a, b in zip(pra, pdec, strict=True))
    window = shape_window(image, parse_pos(f"POLYGON {polygon}"))
    assert (window.x0, window.y0, window.x1, window.y1) == (10, 12, 41, 45)
    # Regions that hold the whole frame, and regions elsewhere on the sky.
    whole = Window(0, 0, width, height)
    assert shape_window(image, parse_pos("RANGE -inf inf -90 90")) == whole
    assert shape_window(image, parse_pos(f"CIRCLE {ra[0]} {dec[0]} 30")) == whole
    for far in (f"CIRCLE {(ra[0] + 180) % 360} {-dec[0]} 1", "RANGE 0 360 -90 -89.99"):
        if dec[0] > -80:
            with pytest.raises(NoOverlap):
                shape_window(image, parse_pos(far))


def test_band_keeps_the_rows_that_see_it(store, small_release):
    key = level2_keys(small_release)[0]
    image = open_image(store, store.stat(key))
    height, width = image.shape
    whole = Window(0, 0, width, height)
    low, high = image.wavelength_range()
    middle = (low + high) / 2
    band = (middle - (high - low) / 10, middle + (high - low) / 10)
    window = image.band_rows(whole, *band)
    assert 0 < window.ny < height and window.nx == width
    with fits.open(small_release / key) as parent:
        hdul = open_cutout(store, image, window)
        check_cutout(hdul, parent, window)
        yy, xx = np.mgrid[0 : window.ny, 0:width]
        wavelength = spectral_wcs(hdul).pixel_to_world(xx, yy)[0].to_value("um")
    rows_in = ((wavelength >= band[0] - 1e-6) & (wavelength <= band[1] + 1e-6)).any(axis=1)
    assert rows_in.all()  # no row without light of the band
    outside = Window(0, 0, width, window.y0)  # the rows below it see none of it
    if outside.ny:
        with pytest.raises(NoOverlap):
            image.band_rows(outside, *band)
    with pytest.raises(NoOverlap):
        image.band_rows(whole, 6.0, 7.0)


def test_stacked_cutouts_are_renamed_and_keep_their_spectral_wcs(store, small_release):
    keys = level2_keys(small_release)[:2]
    hdus = [fits.PrimaryHDU()]
    data = fits.PrimaryHDU().header.tostring().encode()
    windows = []
    for number, key in enumerate(keys, start=1):
        image = open_image(store, store.stat(key))
        window = Window(3, 4, 20, 30)
        windows.append(window)
        data += cut(store, image, window, number=number).to_bytes(store)
    hdul = fits.open(io.BytesIO(data))
    names = [h.name for h in hdul]
    assert names == ["PRIMARY"] + [f"{n}{i}" for i in (1, 2) for n in ORDER[1:]]
    del hdus
    for number, key in enumerate(keys, start=1):
        with fits.open(small_release / key) as parent:
            assert hdul[f"FLAGS{number}"].data.tobytes() == (
                parent["FLAGS"].data[4:30, 3:20].tobytes()
            )
            got = spectral_wcs(hdul, f"IMAGE{number}").pixel_to_world(2, 5)[0]
            want = spectral_wcs(parent).pixel_to_world(5, 9)[0]
            assert abs(got.to_value("um") - want.to_value("um")) < 1e-9


def test_calibration_maps_are_cut_by_pixels(store, small_release):
    path = next(small_release.glob("qr2/dark/*/*/*.fits"))
    key = path.relative_to(small_release).as_posix()
    image = open_image(store, store.stat(key))
    window = image.box((10, 10), (8, 8), pixel_centre=True, pixel_size=True)
    hdul = fits.open(io.BytesIO(cut(store, image, window).to_bytes(store)))
    with fits.open(path) as parent:
        grid = next(h for h in parent if h.data is not None and h.data.ndim == 2)
        assert hdul[grid.name].data.tobytes() == grid.data[7:15, 7:15].tobytes()


@pytest.fixture(scope="module")
def full_size(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fullsize")
    synthesise(
        SynthOptions(
            out=root,
            detector_size=2040,
            fields=["M31"],
            exposures=1,
            deep_fields=[],
            detectors=(4,),
            workers=2,
        ),
        progress=False,
        log=lambda _: None,
    )
    return root


@pytest.mark.slow
@pytest.mark.fullsize
def test_full_size_window_rule_and_header_example(full_size):
    store = LocalStore(full_size)
    key = level2_keys(full_size)[0]
    image = open_image(store, store.stat(key))
    assert store.bytes_read < 400_000  # the seven headers of a 72 MB file, not its data
    # Spec §3: 0.2 deg gives 117 x 117 pixels, 0.01 deg 6 x 6.
    ra, dec = image.world([1019.5], [1019.5])
    assert image.box((ra[0], dec[0]), (0.2, 0.2)).nx == 117
    assert image.box((ra[0], dec[0]), (0.01, 0.01)).ny == 6
    # Spec §3's header example: x0 = 1292 from a parent centred at 1020.5 gives CRPIX1 -271.5
    # and CRPIX1A = CRPIX1W = -1291.
    window = image.box((1350.0, 1350.0), (117, 117), pixel_centre=True, pixel_size=True)
    assert window.x0 == 1292
    with fits.open(full_size / key) as parent:
        hdul = open_cutout(store, image, window)
        header = hdul["IMAGE"].header
        assert header["CRPIX1"] == -271.5
        assert header["CRPIX1A"] == header["CRPIX1W"] == -1291
        check_cutout(hdul, parent, window)
        assert len(hdul["WCS-WAVE"].data["X"][0]) == 13  # the D4 table, copied whole
    # The pixel rows read: the window's rows of each plane and nothing else.
    store.bytes_read = 0
    cut(store, image, image.box((ra[0], dec[0]), (0.1, 0.1)))
    assert store.bytes_read == 4 * 59 * 59 * 4
