"""Whole-release properties: determinism, full-size byte counts, survey geometry."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from spherex_archive.synth.release import SynthOptions, synthesise
from spherex_archive.synth.survey import DEEP_FIELDS


def manifests(root) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.glob("qr2/**/MD5SUMS"))}


def test_same_seed_gives_byte_identical_files_whatever_the_workers(tmp_path):
    options = dict(detector_size=32, fields=["M31"], exposures=2, deep_fields=[("SEP", 1)], seed=11)
    one = tmp_path / "one"
    two = tmp_path / "two"
    other = tmp_path / "other"
    synthesise(SynthOptions(out=one, workers=1, **options), progress=False, log=lambda _: None)
    synthesise(SynthOptions(out=two, workers=2, **options), progress=False, log=lambda _: None)
    synthesise(
        SynthOptions(out=other, workers=2, **{**options, "seed": 12}),
        progress=False,
        log=lambda _: None,
    )
    assert manifests(one) == manifests(two)
    assert (one / "truth/sources.ecsv").read_bytes() == (two / "truth/sources.ecsv").read_bytes()
    level2 = [k for k in manifests(one) if "level2" in k]
    assert all(manifests(one)[k] != manifests(other).get(k) for k in level2)


def footprint_contains(path, ra, dec) -> bool:
    wcs = WCS(fits.getheader(path, "IMAGE"))
    n = wcs.pixel_shape[0]
    x, y = wcs.wcs_world2pix(ra, dec, 0)  # SIP diverges far off the frame: look close first
    if not (-20 < x < n + 20 and -20 < y < n + 20):
        return False
    x, y = wcs.all_world2pix(ra, dec, 0)
    return bool(-0.5 <= x <= n - 0.5 and -0.5 <= y <= n - 0.5)


def test_every_deep_exposure_covers_its_field_centre(small_release):
    for path in small_release.glob("qr2/level2/*/*/2/*.fits"):
        header = fits.getheader(path, "IMAGE")
        if header["SPS_FLAGS"] != "deep":
            continue
        wcs = WCS(header)
        centre = SkyCoord(*wcs.wcs.crval, unit="deg")
        field = min(
            DEEP_FIELDS, key=lambda f: centre.separation(SkyCoord(*DEEP_FIELDS[f], unit="deg")).deg
        )
        ra, dec = DEEP_FIELDS[field]
        covering = [
            footprint_contains(p, ra, dec)
            for p in small_release.glob(f"qr2/level2/*/*/*/level2_{header['OBSID']}D*.fits")
        ]
        assert sum(covering) == 2, "one SWIR and one MWIR detector see the centre"


def test_footprints_over_the_pole_and_across_ra_zero(small_release):
    """The NCP field puts a footprint over the celestial pole, RA0 one across RA = 0."""
    corners_ra = []
    pole = 0
    for path in small_release.glob("qr2/level2/*/*/*/*.fits"):
        header = fits.getheader(path, "IMAGE")
        wcs = WCS(header)
        n = header["NAXIS1"]
        ra, _ = wcs.all_pix2world([-0.5, n - 0.5, n - 0.5, -0.5], [-0.5, -0.5, n - 0.5, n - 0.5], 0)
        corners_ra.append(ra)
        pole += footprint_contains(path, 0.0, 90.0)
    assert pole >= 1
    assert any(r.min() < 1 and r.max() > 359 for r in corners_ra)


@pytest.mark.slow
@pytest.mark.fullsize
def test_full_size_files_have_the_real_byte_counts(tmp_path):
    """71,634,240 bytes with a 7-block IMAGE header (v20), 71,637,120 with 8 blocks (v21+)."""
    synthesise(
        SynthOptions(
            out=tmp_path,
            detector_size=2040,
            fields=["M31", "NCP"],
            exposures=1,
            deep_fields=[],
            detectors=(4,),
            workers=2,
        ),
        progress=False,
        log=lambda _: None,
    )
    sizes = {}
    for path in tmp_path.glob("qr2/level2/*/*/4/*.fits"):
        version = int(path.name.split("-v")[1][:2])
        sizes[version] = path.stat().st_size
        with fits.open(path) as hdul:
            assert hdul["IMAGE"].data.shape == (2040, 2040)
            assert hdul["IMAGE"].header["CRPIX1"] == 1020.5
            blocks = [(len(h.header) + 1 + 35) // 36 for h in hdul]
            assert blocks == [1, 7 if version == 20 else 8, 5, 4, 4, 15, 1]
            assert np.isfinite(hdul["IMAGE"].section[1000:1010, 1000:1010]).any()
    assert sizes == {20: 71_634_240, 21: 71_637_120}


def test_covering_writes_exactly_the_images_on_a_position(tmp_path):
    ra, dec = DEEP_FIELDS["NEP"]
    options = dict(detector_size=64, fields=["M31"], exposures=1, deep_fields=[("NEP", 6)])
    everything = tmp_path / "all"
    synthesise(SynthOptions(out=everything, **options), progress=False, log=lambda _: None)
    stack = tmp_path / "stack"
    report = synthesise(
        SynthOptions(out=stack, covering=(ra, dec), **options), progress=False, log=lambda _: None
    )
    on_it = sorted(
        p.relative_to(everything)
        for p in everything.glob("qr2/level2/*/*/*/*.fits")
        if footprint_contains(p, ra, dec)
    )
    written = sorted(p.relative_to(stack) for p in stack.glob("qr2/level2/*/*/*/*.fits"))
    assert report.files == len(written) == 12  # two detectors of each deep exposure
    assert written == on_it
    for path in written:  # the same bytes as in the whole release
        assert (stack / path).read_bytes() == (everything / path).read_bytes()
