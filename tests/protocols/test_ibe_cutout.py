"""IRSA's cutout syntaxes (``file.fits?center=...&size=...`` and ``/ibe/cutout?path=...``)
through a real server, over a local folder and over an S3 bucket (moto's server), read back
with astropy the way users read them."""

from __future__ import annotations

import io
import math
from urllib.parse import urlencode

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tests.protocols.client import request
from tests.store.fixtures import manifest

PLANES = ("IMAGE", "FLAGS", "VARIANCE", "ZODI")


def level2_keys(server) -> list[str]:
    return [k for k in sorted(manifest(server.release)) if "/level2/" in k]


def parent(server, key: str) -> fits.HDUList:
    return fits.open(server.release / key)


def get(server, key: str, **params) -> tuple[int, dict, bytes]:
    reply = request(f"{server.url(key)}?{urlencode(params)}")
    return reply.status, reply.headers, reply.body


def window_of(hdul: fits.HDUList) -> tuple[int, int, int, int]:
    """x0, y0, nx, ny of a cutout in its parent, from the user's recipe (spec §3)."""
    header = hdul["IMAGE"].header
    return (
        int(1 - header["CRPIX1A"]),
        int(1 - header["CRPIX2A"]),
        header["NAXIS1"],
        header["NAXIS2"],
    )


def assert_slice_of_parent(body: bytes, original: fits.HDUList) -> tuple[int, int, int, int]:
    hdul = fits.open(io.BytesIO(body))
    assert [h.name for h in hdul] == [h.name for h in original]
    x0, y0, nx, ny = window_of(hdul)
    for name in PLANES:
        want = original[name].data[y0 : y0 + ny, x0 : x0 + nx]
        assert hdul[name].data.tobytes() == want.tobytes(), name
    assert hdul["PSF"].data.tobytes() == original["PSF"].data.tobytes()
    return x0, y0, nx, ny


def sky_of(original: fits.HDUList, x: float, y: float) -> tuple[float, float]:
    ra, dec = WCS(original["IMAGE"].header).all_pix2world([x], [y], 0)
    return float(ra[0]), float(dec[0])


@pytest.mark.parametrize(
    ("size", "pixels"),
    [
        ("{d}", 10),
        ("{d}d", 10),
        ("{d}deg", 10),
        ("{arcmin}arcmin", 10),
        ("{arcsec}arcsec", 10),
        ("{rad}rad", 10),
        ("10px", 10),
        ("10,6pix", (10, 6)),
        ("7 pixels", 7),
    ],
)
def test_units_of_size(server, size, pixels):
    key = level2_keys(server)[0]
    with parent(server, key) as original:
        wcs = WCS(original["IMAGE"].header)
        scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))))
        d = 10 * scale
        text = size.format(d=d, arcmin=d * 60, arcsec=d * 3600, rad=math.radians(d))
        ra, dec = sky_of(original, 15.2, 16.7)
        status, headers, body = get(server, key, center=f"{ra},{dec}", size=text, gzip="false")
        assert status == 200, body
        assert headers["content-type"] == "application/fits"
        assert int(headers["content-length"]) == len(body)
        x0, _, nx, ny = assert_slice_of_parent(body, original)
        want = pixels if isinstance(pixels, tuple) else (pixels, pixels)
        assert (nx, ny) == want
        assert x0 == math.floor(15.2 + 1 - want[0] / 2)


def test_centre_units_and_pixel_centres(server):
    key = level2_keys(server)[1]
    with parent(server, key) as original:
        ra, dec = sky_of(original, 12.3, 20.4)
        bodies = {
            get(server, key, center=f"{ra},{dec}", size="8px")[2],
            get(server, key, center=f"{ra},{dec}d", size="8px")[2],
            get(server, key, center=f"{ra},{dec}deg", size="8px")[2],
            get(server, key, center=f"{math.radians(ra)},{math.radians(dec)}rad", size="8px")[2],
            get(server, key, center=f"{ra + 360},{dec}", size="8px")[2],  # RA range-reduced
            get(server, key, center="13.3,21.4px", size="8px")[2],  # FITS pixel = 0-based + 1
        }
        assert len(bodies) == 1
        assert window_of(fits.open(io.BytesIO(bodies.pop())))[:2] == (9, 17)


def test_cutout_endpoint_takes_the_path_and_ra_dec(server):
    key = level2_keys(server)[-1]
    with parent(server, key) as original:
        ra, dec = sky_of(original, 10.0, 10.0)
        direct = get(server, key, center=f"{ra},{dec}", size="0.01")[2]
        for params in (
            {"path": key, "center": f"{ra},{dec}", "size": "0.01"},
            {"path": f"/ibe/data/spherex/{key}", "ra": ra, "dec": dec, "size": "0.01"},
        ):
            reply = request(f"{server.base}/ibe/cutout?{urlencode(params)}")
            assert reply.status == 200, reply.body
            assert reply.body == direct
        assert_slice_of_parent(direct, original)


def test_astropy_reads_cutouts_and_sections_from_the_server(server):
    key = level2_keys(server)[0]
    with parent(server, key) as original:
        ra, dec = sky_of(original, 16.0, 16.0)
        url = f"{server.url(key)}?center={ra},{dec}&size=12px"
        with fits.open(url, cache=False) as hdul:
            assert hdul["IMAGE"].data.shape == (12, 12)
            assert len(hdul) == 7
        with fits.open(server.url(key), use_fsspec=True) as remote:
            section = remote["VARIANCE"].section[3:9, 4:11]
            assert np.array_equal(section, original["VARIANCE"].data[3:9, 4:11])


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"center": "{far}", "size": "0.01"}, "overlap"),
        ({"center": "40,40px", "size": "4px"}, "overlap"),
        ({"center": "{on}", "size": "0"}, "positive"),
        ({"center": "{on}", "size": "-3px"}, "positive"),
        ({"center": "{on}", "size": "3furlongs"}, "unknown unit"),
        ({"center": "{on}", "size": "1,2,3"}, "size must look like"),
        ({"center": "10", "size": "0.1"}, "center must look like"),
        ({"center": "10,95", "size": "0.1"}, "outside [-90, 90]"),
        ({"center": "abc,def", "size": "0.1"}, "not a number"),
        ({"center": "{on}"}, "size="),
        ({"center": "{on}", "size": "0.1", "gzip": "maybe"}, "gzip"),
    ],
)
def test_bad_requests_are_400_with_a_reason(server, params, says):
    key = level2_keys(server)[0]
    with parent(server, key) as original:
        ra, dec = sky_of(original, 16.0, 16.0)
    values = {
        k: v.format(on=f"{ra},{dec}", far=f"{(ra + 180) % 360},{-dec}") for k, v in params.items()
    }
    status, headers, body = get(server, key, **values)
    assert status == 400
    assert headers["content-type"].startswith("text/plain")
    assert says in body.decode()


def test_paths_outside_the_data_are_not_found(server):
    for path in ("../truth/truth.fits", "/etc/passwd", "qr2/etc_passwd", "qr2/nothing.fits"):
        params = urlencode({"path": path, "center": "10,10px", "size": "4px"})
        assert request(f"{server.base}/ibe/cutout?{params}").status == 404
    reply = request(f"{server.base}/ibe/cutout?center=10,10px&size=4px")
    assert reply.status == 400
    folder = "/".join(level2_keys(server)[0].split("/")[:3])
    params = urlencode({"path": folder, "center": "10,10px", "size": "4px"})
    assert request(f"{server.base}/ibe/cutout?{params}").status == 400
