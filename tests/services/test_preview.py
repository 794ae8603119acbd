"""PNG quicklooks: the plane read from the store is the file's, blocks are averaged, the PNG
is the right size and way up, blanks have their own colour, and the cache follows the file."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from spherex_archive.services.preview import (
    BLANK_COLOUR,
    NoImage,
    PreviewService,
    block_mean,
    quicklook,
    read_plane,
)
from spherex_archive.store import LocalStore, NotFound


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


def _write(root, key: str, hdus: list) -> str:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return key


def test_the_plane_of_a_spectral_image_is_the_files_image(small_release):
    store = LocalStore(small_release)
    path = sorted(small_release.glob("qr2/level2/*/*/*/level2_*.fits"))[0]
    key = path.relative_to(small_release).as_posix()
    with fits.open(path) as hdus:
        expected = hdus["IMAGE"].data.astype(np.float64)
    got = read_plane(store, key)
    assert got.shape == expected.shape == (64, 64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=1e-6)


def test_large_images_are_block_averaged(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(10.0, 1.0, (700, 1100)).astype(np.float32)
    data[5, 7] = np.nan
    data[0:3, 0:3] = np.nan  # a whole block without a value
    key = _write(tmp_path, "qr2/big.fits", [fits.PrimaryHDU(), fits.ImageHDU(data, name="IMG")])
    got = read_plane(LocalStore(tmp_path), key)
    assert got.shape == (234, 367)  # 1100 / 512 -> blocks of 3, the last ones partial
    assert np.isnan(got[0, 0]) and np.isfinite(got[1, 2])
    block = data[3:6, 6:9]
    assert got[1, 2] == pytest.approx(np.nanmean(block), rel=1e-6)
    assert got[-1, -1] == pytest.approx(data[699:, 1098:].mean(), rel=1e-6)


def test_block_mean_leaves_blanks_out():
    values = np.array([[1, 2, np.nan, np.nan], [3, 4, np.nan, np.nan], [5, 6, 7, 8]], np.float32)
    np.testing.assert_array_equal(block_mean(values, 2), [[2.5, np.nan], [5.5, 7.5]])
    assert block_mean(values, 1) is values


def test_scaled_integers_cubes_and_files_without_images(tmp_path):
    raw = np.arange(100, dtype=np.int16).reshape(10, 10)
    raw[2, 3] = -999
    scaled = fits.ImageHDU(raw)
    scaled.header["BSCALE"] = 0.5
    scaled.header["BZERO"] = 10.0
    scaled.header["BLANK"] = -999
    key = _write(tmp_path, "qr2/ints.fits", [fits.PrimaryHDU(), scaled])
    got = read_plane(LocalStore(tmp_path), key)
    assert np.isnan(got[2, 3]) and got[4, 5] == 45 * 0.5 + 10.0

    cube = np.stack([np.full((8, 6), float(k)) for k in range(5)]).astype(np.float32)
    table = fits.BinTableHDU.from_columns([fits.Column("X", "E", array=[1.0])])
    key = _write(tmp_path, "qr2/cube.fits", [fits.PrimaryHDU(), table, fits.ImageHDU(cube)])
    got = read_plane(LocalStore(tmp_path), key)
    assert got.shape == (8, 6) and np.all(got == 2.0)  # the middle plane

    key = _write(tmp_path, "qr2/table.fits", [fits.PrimaryHDU(), table])
    with pytest.raises(NoImage):
        read_plane(LocalStore(tmp_path), key)
    (tmp_path / "qr2/notes.yaml").write_text("gains: [1, 2]\n")
    with pytest.raises(NoImage):
        read_plane(LocalStore(tmp_path), "qr2/notes.yaml")


def test_the_png_is_upright_with_blanks_in_their_colour():
    values = np.zeros((40, 30))
    values[0, :] = 100.0  # FITS row 1: the bottom of the picture
    values[20, 10] = np.nan
    values += np.random.default_rng(2).normal(0, 1, values.shape)
    image = _png(quicklook(values))
    assert image.size == (30, 40) and image.mode == "P"
    rgb = np.asarray(image.convert("RGB"))
    assert rgb[-1].min() == 255 and rgb[:-1].mean() < 200
    assert tuple(rgb[40 - 1 - 20, 10]) == BLANK_COLOUR
    grey = rgb[np.all(rgb != BLANK_COLOUR, axis=-1)]
    assert np.all(grey[:, 0] == grey[:, 1]) and np.all(grey[:, 1] == grey[:, 2])


def test_flat_and_empty_images_still_draw():
    assert _png(quicklook(np.full((5, 5), 3.0))).size == (5, 5)
    blank = np.asarray(_png(quicklook(np.full((4, 6), np.nan))).convert("RGB"))
    assert blank.shape == (4, 6, 3) and np.all(blank == BLANK_COLOUR)


def test_previews_differ_and_the_cache_follows_the_file(small_release, tmp_path):
    store = LocalStore(small_release)
    keys = [
        p.relative_to(small_release).as_posix()
        for p in sorted(small_release.glob("qr2/level2/*/*/*/level2_*.fits"))[:2]
    ]
    service = PreviewService(store, cache_size=1)
    first, second = (service.preview(k) for k in keys)
    assert first.png != second.png and first.etag != second.etag
    assert _png(first.png).size == (64, 64)
    assert service.preview(keys[1]) is second  # cached
    assert service.preview(keys[0]) is not first and service.preview(keys[0]).png == first.png

    own = LocalStore(tmp_path)
    key = _write(tmp_path, "qr2/changing.fits", [fits.PrimaryHDU(np.ones((4, 4), np.float32))])
    before = PreviewService(own).preview(key)
    service = PreviewService(own)
    assert service.preview(key).etag == before.etag
    _write(tmp_path, key, [fits.PrimaryHDU(np.arange(20, dtype=np.float32).reshape(4, 5))])
    os.utime(tmp_path / key, (1e9, 1e9))  # a new file, whatever the clock's resolution
    after = service.preview(key)
    assert after.etag != before.etag and _png(after.png).size == (5, 4)
    with pytest.raises(NotFound):
        service.preview("qr2/missing.fits")
