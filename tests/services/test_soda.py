"""The SODA service on both catalogues: every parameter rule, the ID lookup, the windows (BAND
against the files' own spectral WCS), and the one FITS file of many cutouts against the parent
files read by astropy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from spherex_archive.services.cutout import CutoutError, NoOverlap, Window, open_image
from spherex_archive.services.shapes import Shape
from spherex_archive.services.soda import (
    MAX_CUTOUTS,
    TOC_COLUMNS,
    Dataset,
    MultiValuedParamNotSupported,
    SodaError,
    UsageError,
    check_dataset,
    find_datasets,
    parse_request,
    toc_rows,
    window_for,
    write_cutouts,
)
from spherex_archive.store import FsspecStore, LocalStore
from tests.spectral_images import dataset_files, spectral_wcs, wavelengths

ID = "ivo://irsa.ipac/spherex_qr2?2025W51_1A_0684_2/D3"
CALIBRATION = "ivo://irsa.ipac/spherex_qr2_cal?dark_D2_spx_cal-drk-v4-2025-161"
PLANES = ("IMAGE", "FLAGS", "VARIANCE", "ZODI")


def parse(sync: bool = False, **params) -> object:
    """``parse_request`` on parameters given as keywords (lists for repeats)."""
    return parse_request(
        {k: v if isinstance(v, list) else [v] for k, v in params.items()}, sync=sync
    )


def refused(kind: type[SodaError], *words: str, sync: bool = False, **params) -> str:
    with pytest.raises(kind) as caught:
        parse(sync, **params)
    text = str(caught.value)
    assert text.startswith(f"{kind.name}: "), text
    for word in words:
        assert word in text, text
    return text


# --------------------------------------------------------------------------------------------
# Parameters


def test_ids_and_regions():
    request = parse(ID=[ID, "b", ID, "a"])
    assert request.ids == (ID, "b", "a")  # distinct, in the order sent
    assert [r.label for r in request.regions] == [None]  # no spatial value: the whole frame
    assert request.regions[0].shape is None
    assert (request.band_um, request.time_mjd, request.pol) == (None, None, ())
    request = parse(
        ID=ID,
        POS=["CIRCLE 10 20 0.5", "RANGE 10 11  20 21", "POLYGON 10 20 11 20 10.5 21"],
        CIRCLE=["10  20 0.5", "1 2 3"],
        POLYGON="1 2 3 4 5 6",
    )
    assert [r.label for r in request.regions] == [
        "CIRCLE 10 20 0.5",  # POS=CIRCLE and CIRCLE= are the same region: asked once
        "RANGE 10 11 20 21",
        "POLYGON 10 20 11 20 10.5 21",
        "CIRCLE 1 2 3",
        "POLYGON 1 2 3 4 5 6",
    ]
    assert request.regions[0].shape == Shape("CIRCLE", (10.0, 20.0, 0.5))
    assert request.regions[1].shape == Shape("RANGE", (10.0, 11.0, 20.0, 21.0))
    # Blank values are not given (a form's empty fields).
    assert parse(ID=ID, CIRCLE=" ", BAND="").regions[0].label is None


def test_range_infinities_and_wrap():
    (region,) = parse(ID=ID, POS="RANGE -Inf +inf -inf 10").regions
    assert region.shape == Shape("RANGE", (0.0, 360.0, -90.0, 10.0))
    (region,) = parse(ID=ID, POS="RANGE 350 10 -5 5").regions  # through RA 0, as in SIA
    assert region.shape == Shape("RANGE", (350.0, 370.0, -5.0, 5.0))
    assert region.label == "RANGE 350 10 -5 5"


def test_a_whole_sky_circle_is_no_region():
    (region,) = parse(ID=ID, CIRCLE="10 20 180").regions
    assert region.shape is None and region.label == "CIRCLE 10 20 180"


def test_band_time_pol():
    request = parse(ID=ID, BAND="7.5e-07 8.5E-07", TIME="60000 60001.5", POL=["I", "Q"])
    assert request.band_um == pytest.approx((0.75, 0.85))
    assert request.time_mjd == (60000.0, 60001.5)
    assert request.pol == ("I", "Q")
    assert parse(ID=ID, BAND="-inf 1e-6").band_um == (-math.inf, pytest.approx(1.0))
    assert parse(ID=ID, BAND="2e-6 +Inf").band_um == (pytest.approx(2.0), math.inf)
    assert parse(ID=ID, BAND="2e-6").band_um == pytest.approx((2.0, 2.0))  # a scalar


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"ID": []}, ["ID is required"]),
        ({"ID": " "}, ["ID is required"]),
        ({"CIRCLE": "10 20 0"}, ["CIRCLE", "radius", "not 0"]),
        ({"CIRCLE": "10 20 -1"}, ["radius", "not -1"]),
        ({"CIRCLE": "10 20 181"}, ["radius", "181"]),
        ({"CIRCLE": "10 20 nan"}, ["NaN"]),
        ({"CIRCLE": "10 20 abc"}, ["'abc' is not a number"]),
        ({"CIRCLE": "10 20"}, ["CIRCLE takes ra dec radius"]),
        ({"CIRCLE": "400 20 1"}, ["outside RA 0..360"]),
        ({"CIRCLE": "10 -91 1"}, ["Dec -90..90"]),
        ({"POLYGON": "1 2 3 4"}, ["three or more"]),
        ({"POLYGON": "1 2 3 4 5 6 7"}, ["three or more"]),
        ({"POLYGON": "1 2 3 4 5 95"}, ["outside"]),
        ({"POS": "BOX 1 2 3 4"}, ["unknown shape"]),
        ({"POS": "CIRCLE 1 2"}, ["CIRCLE takes"]),
        ({"POS": "CIRCLE 1 2 0"}, ["POS", "radius"]),
        ({"POS": "RANGE 1 2 3"}, ["RANGE takes"]),
        ({"POS": "RANGE 1 2 30 20"}, ["latitudes 30 > 20"]),
        ({"POS": "RANGE 1 400 3 4"}, ["longitude 400"]),
        ({"POS": "RANGE +inf 10 3 4"}, ["longitude inf"]),
        ({"POS": "RANGE 1 2 -95 4"}, ["latitude -95"]),
        ({"BAND": "6e-7 5e-7"}, ["lower bound", "above the upper bound"]),
        ({"BAND": "500 600"}, ["outside the wavelengths SPHEREx sees", "in metres"]),
        ({"BAND": "0.5 0.6"}, ["in metres"]),  # microns for metres
        ({"BAND": "1e-7 2e-7"}, ["in metres"]),
        ({"BAND": "-inf 1e-9"}, ["in metres"]),
        ({"BAND": "6e-6 inf"}, ["in metres"]),
        ({"BAND": "1 2 3"}, ["BAND"]),
        ({"BAND": "x 1"}, ["not a number"]),
        ({"TIME": "60001 60000"}, ["TIME", "above the upper bound"]),
        ({"POL": "Z"}, ["POL", "'Z'"]),
    ],
)
def test_bad_values_are_usage_errors(params, words):
    refused(UsageError, *words, **{"ID": ID, **params})


def test_single_valued_parameters():
    refused(MultiValuedParamNotSupported, "BAND", BAND=["1e-6 2e-6", "3e-6 4e-6"], ID=ID)
    refused(MultiValuedParamNotSupported, "TIME", TIME=["1 2", "3 4"], ID=ID)
    # Sync: one ID and at most one spatial value, repeats included (DALI §3.2).
    refused(MultiValuedParamNotSupported, "ID", "/soda/async", sync=True, ID=[ID, "x"])
    refused(MultiValuedParamNotSupported, "ID", sync=True, ID=[ID, ID])
    refused(
        MultiValuedParamNotSupported, "2 spatial values", sync=True, ID=ID, CIRCLE=["1 2 3"] * 2
    )
    refused(
        MultiValuedParamNotSupported,
        "2 spatial values",
        sync=True,
        ID=ID,
        CIRCLE="1 2 3",
        POS="RANGE 1 2 3 4",
    )
    assert len(parse(sync=True, ID=ID, POL=["I", "Q"]).pol) == 2  # POL is always multi-valued
    many = [f"CIRCLE 1 2 {r}" for r in range(1, 101)]
    ids = [f"id{i}" for i in range(MAX_CUTOUTS // 100 + 1)]
    refused(UsageError, "split it", ID=ids, POS=many)


# --------------------------------------------------------------------------------------------
# Datasets


@pytest.fixture(scope="module")
def images(small_release) -> dict[str, Path]:
    return dataset_files(small_release)


@pytest.fixture(scope="module")
def store(small_release) -> LocalStore:
    return LocalStore(small_release)


def test_ids_are_looked_up_in_one_query(engines, backend, images, small_release):
    wanted = list(images)[:20]
    odd = ["nothing", wanted[0].upper(), "x' OR '1'='1", CALIBRATION]
    found = find_datasets(engines[backend], wanted + odd)
    assert set(found) == {*wanted, CALIBRATION}  # exact matches only; values bound, not SQL
    for did in wanted:
        dataset = found[did]
        assert dataset.key == images[did].relative_to(small_release).as_posix()
        assert dataset.is_image and dataset.t_min < dataset.t_max
        with fits.open(images[did]) as hdus:
            assert dataset.t_min == pytest.approx(hdus["IMAGE"].header["MJD-BEG"], abs=1e-6)
    assert not found[CALIBRATION].is_image
    assert find_datasets(engines[backend], []) == {}


def test_what_is_known_before_reading_the_file():
    image = Dataset(ID, "qr2/x.fits", True, 60000.0, 60000.01)
    check_dataset(image, parse(ID=ID, TIME="59999 60000.005"))
    check_dataset(image, parse(ID=ID, TIME="-inf +inf"))
    with pytest.raises(NoOverlap, match=r"MJD 60000\.000000 to 60000\.010000, outside TIME"):
        check_dataset(image, parse(ID=ID, TIME="60001 60002"))
    with pytest.raises(NoOverlap, match="no polarisation"):
        check_dataset(image, parse(ID=ID, POL="I"))
    with pytest.raises(CutoutError, match="calibration file"):
        check_dataset(Dataset(CALIBRATION, "qr2/y.fits", False, None, None), parse(ID=ID))


# --------------------------------------------------------------------------------------------
# Windows


def test_band_keeps_the_rows_seeing_it(store, images, small_release):
    for did in list(images)[:12:3]:
        image = open_image(store, store.stat(images[did].relative_to(small_release).as_posix()))
        with fits.open(images[did]) as hdul:
            wl = wavelengths(hdul)
        low, high = np.percentile(wl, [40, 55])
        (region,) = parse(ID=did).regions
        window = window_for(image, region, (low, high))
        assert (window.x0, window.x1) == (0, image.shape[1])
        tolerance = 1e-6  # um: the engine's table lookup against astropy's
        seen = ((wl >= low - tolerance) & (wl <= high + tolerance)).any(axis=1)
        clear = ((wl >= low + tolerance) & (wl <= high - tolerance)).any(axis=1)
        kept = np.zeros(len(wl), bool)
        kept[window.y0 : window.y1] = True
        assert np.all(seen[kept]) and not np.any(clear[~kept])
        # A band SPHEREx sees but not this detector: no overlap, and the image's range said.
        other = (0.8, 0.9) if wl.min() > 1.5 else (4.5, 4.6)
        with pytest.raises(NoOverlap, match=r"the image sees \d\.\d{3} to \d\.\d{3} um"):
            window_for(image, region, other)


def test_regions_then_band(store, images, small_release):
    did = next(iter(images))
    image = open_image(store, store.stat(images[did].relative_to(small_release).as_posix()))
    ra, dec = image.world([30.0], [20.0])
    r = 6 * image.pixel_scale[0]
    (region,) = parse(ID=did, CIRCLE=f"{ra[0]} {dec[0]} {r}").regions
    window = window_for(image, region, None)
    assert window.x0 <= 30 < window.x1 and window.y0 <= 20 < window.y1
    assert abs(window.nx - 13) <= 1 and abs(window.ny - 13) <= 1
    low, high = image.wavelength_range()
    assert window_for(image, region, (low - 1, high + 1)) == window
    (far,) = parse(ID=did, CIRCLE=f"{(ra[0] + 180) % 360} {-dec[0]} 1").regions
    with pytest.raises(NoOverlap):
        window_for(image, far, None)


# --------------------------------------------------------------------------------------------
# Many cutouts in one file


def check_slices(hdul: fits.HDUList, number: int, parent: Path, window: Window) -> None:
    """Cutout ``number`` of a stacked file is the parent's window, spectral WCS included."""
    with fits.open(parent) as original:
        for plane in PLANES:
            got = hdul[f"{plane}{number}"].data
            want = original[plane].data[window.y0 : window.y1, window.x0 : window.x1]
            assert got.tobytes() == want.tobytes(), plane  # bit for bit, NaNs included
        assert np.array_equal(hdul[f"PSF{number}"].data, original["PSF"].data)
        got = spectral_wcs(hdul, f"IMAGE{number}").pixel_to_world(1, 2)[0]
        want = spectral_wcs(original).pixel_to_world(window.x0 + 1, window.y0 + 2)[0]
        assert abs(got.to_value("um") - want.to_value("um")) < 1e-9


def run(path: Path, store, engine, request, **kw):
    notes: list[tuple[int, int, int]] = []
    planned = write_cutouts(
        path,
        store,
        find_datasets(engine, request.ids),
        request,
        should_stop=kw.pop("should_stop", lambda: False),
        progress=lambda *a: notes.append(a),
        **kw,
    )
    return planned, notes


def test_one_file_with_every_cutout(engines, store, images, small_release, tmp_path):
    dids = list(images)[:5]
    first = open_image(store, store.stat(images[dids[0]].relative_to(small_release).as_posix()))
    ra, dec = first.world([10.0, 40.0, 25.0, 20.0], [12.0, 15.0, 44.0, 30.0])
    polygon = " ".join(f"{a} {b}" for a, b in zip(ra[:3], dec[:3], strict=True))
    request = parse(
        ID=[dids[0], "ivo://nowhere", *dids[1:], CALIBRATION],
        CIRCLE=f"{ra[3]} {dec[3]} {4 * first.pixel_scale[0]}",
        POLYGON=polygon,
        POS="RANGE 0 360 -90 90",
    )
    path = tmp_path / "cutouts.fits"
    planned, notes = run(path, store, engines["sqlite"], request)
    assert len(planned) == len(request.ids) * 3
    assert [(p.id, p.region.label) for p in planned] == [
        (i, r.label) for i in request.ids for r in request.regions
    ]
    made = [p for p in planned if p.number is not None]
    assert [p.number for p in made] == list(range(1, len(made) + 1))
    assert len(made) >= len(dids) + 2  # each image whole, the first one's circle and polygon
    assert notes[-1] == (len(request.ids), len(request.ids), len(made))
    for p in planned:
        if p.id == "ivo://nowhere":
            assert p.reason == "no released dataset has this ID"
        elif p.id == CALIBRATION:
            assert "calibration file" in p.reason
        else:
            assert (p.number is None) == (p.reason is not None)

    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names[:2] == ["PRIMARY", "TOC"] and hdul[0].header["NCUTOUT"] == len(made)
        parts = ("IMAGE", "FLAGS", "VARIANCE", "ZODI", "PSF", "WCS-WAVE")
        assert names[2:] == [f"{n}{p.number}" for p in made for n in parts]
        toc = hdul["TOC"]
        assert toc.header["TUCD1"] == "meta.number"
        rows = toc.data
        assert len(rows) == len(planned)
        for row, p in zip(rows, planned, strict=True):
            assert row["ID"] == p.id and row["region"] == (p.region.label or "")
            assert row["file"] == (p.key or "") and row["reason"] == (p.reason or "")[:160]
            if p.number is None:
                assert row["n"] == -(2**31) and row["hdus"] == ""
                continue
            w = p.window
            assert (row["n"], row["x0"], row["y0"], row["nx"], row["ny"]) == (
                p.number,
                w.x0,
                w.y0,
                w.nx,
                w.ny,
            )
            assert row["hdus"] == " ".join(f"{n}{p.number}" for n in parts)
            check_slices(hdul, p.number, small_release / p.key, w)
    # The same table as a VOTable (via the model columns); a whole frame has no region.
    assert [c.name for c in TOC_COLUMNS][:4] == ["n", "ID", "file", "region"]
    assert toc_rows(planned)[0][3] == "RANGE 0 360 -90 90"


def test_the_kernel_copy_and_the_python_copy_agree(engines, store, images, small_release, tmp_path):
    request = parse(ID=list(images)[:3])
    local, _ = run(tmp_path / "a.fits", store, engines["postgresql"], request)
    remote = FsspecStore(f"file://{small_release}")  # copy_range through Python
    other, _ = run(tmp_path / "b.fits", remote, engines["postgresql"], request, threads=2)
    assert toc_rows(local) == toc_rows(other)
    assert (tmp_path / "a.fits").read_bytes() == (tmp_path / "b.fits").read_bytes()
    with fits.open(tmp_path / "a.fits") as hdul:
        hdul.verify("exception")


def test_a_stop_ends_the_file_early(engines, store, images, tmp_path):
    request = parse(ID=list(images)[:10])
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    planned, _ = run(tmp_path / "c.fits", store, engines["sqlite"], request, should_stop=stop)
    assert planned is None
    assert (tmp_path / "c.fits").stat().st_size < 3 * 5_200_000


def test_a_job_with_nothing_to_cut(engines, store, tmp_path):
    request = parse(ID=["nothing", "else"], POL="I")
    planned, _ = run(tmp_path / "d.fits", store, engines["sqlite"], request)
    assert [p.number for p in planned] == [None, None]
    with fits.open(tmp_path / "d.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "TOC"] and hdul[0].header["NCUTOUT"] == 0
        assert list(hdul["TOC"].data["reason"]) == ["no released dataset has this ID"] * 2
