"""Ingest of the small synthetic release into both catalogues."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.wcs import WCS

from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest

BACKENDS = ["sqlite", "postgresql"]
QUIET = dict(progress=False, log=lambda _: None)


def obscore(catalogue, where: str = "1 = 1", params=()) -> list[dict]:
    result = catalogue.query(
        f"SELECT * FROM {catalogue.dialect.public('spherex.obscore')} WHERE {where}", params
    )
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def dump(catalogue) -> dict[str, list]:
    """Every stored row, without the columns that record when things happened."""
    out = {}
    for table in ("observation", "plane", "artifact", "provenance_input"):
        result = catalogue.query(f"SELECT * FROM {catalogue.dialect.internal(table)}")
        keep = [
            i
            for i, c in enumerate(result.columns)
            if c not in ("ingest_date", "release_date", "footprint")
        ]
        out[table] = sorted(tuple(str(row[i]) for i in keep) for row in result.rows)
    return out


@pytest.fixture(params=BACKENDS)
def ingested(request, small_release, new_catalogue_url):
    catalogue = open_catalogue(new_catalogue_url(request.param))
    report = ingest(catalogue, str(small_release), workers=2, progress=False)
    yield catalogue, report
    catalogue.close()


def test_row_counts_per_collection(ingested):
    catalogue, report = ingested
    assert not report.rejected and not report.skipped
    assert catalogue.counts() == {"spherex_qr2": 36, "spherex_qr2_cal": 74, "spherex_qr2_deep": 60}
    ivoa = catalogue.fetchall(f"SELECT COUNT(*) FROM {catalogue.dialect.public('ivoa.obscore')}")
    assert ivoa[0][0] == 170


def test_postgresql_planner_statistics_are_fresh_after_an_ingest(small_release, new_catalogue_url):
    """Without them PostgreSQL planned a fresh catalogue's joins from empty tables (at ten
    million planes, a cone search hashed every artifact: 2.8 s)."""
    catalogue = open_catalogue(new_catalogue_url("postgresql"))
    try:
        ingest(catalogue, str(small_release), workers=2, progress=False)
        analysed = catalogue.fetchall(
            "SELECT relname FROM pg_stat_user_tables "
            "WHERE schemaname = 'archive' AND last_analyze IS NOT NULL"
        )
        assert {"observation", "plane", "artifact", "provenance_input"} <= {r[0] for r in analysed}
    finally:
        catalogue.close()


def test_obscore_columns_follow_the_rules_for_a_known_file(ingested, small_release):
    catalogue, _ = ingested
    path = sorted(small_release.glob("qr2/level2/*/*/3/*.fits"))[0]
    key = path.relative_to(small_release).as_posix()
    header = fits.getheader(path, "IMAGE")
    rows = obscore(
        catalogue, "obs_id = ? AND energy_bandpassname = ?", (header["OBSID"], "SPHEREx-D3")
    )
    assert len(rows) == 1
    row = rows[0]
    collection = "spherex_qr2_deep" if header["SPS_FLAGS"] == "deep" else "spherex_qr2"
    did = f"ivo://irsa.ipac/{collection}?{header['OBSID']}/D3"
    wcs = WCS(header)
    ra, dec = wcs.all_pix2world([31.5], [31.5], 0)
    expected = {
        "facility_name": "SPHEREx",
        "instrument_name": "SPHEREx",
        "dataproduct_subtype": "science",
        "calib_level": 2,
        "dataproduct_type": "image",
        "energy_emband": "Infrared",
        "s_resolution": 3.075,
        "em_min": 1.63010e-06,
        "em_max": 2.43460e-06,
        "em_res_power": 40.6,
        "proposal_title": "SPHEREx LVF Survey Data",
        "access_url": f"http://127.0.0.1:8000/datalink/links/spherex?ID={did}",
        "access_format": "application/x-votable+xml;content=datalink",
        "access_estsize": round(path.stat().st_size / 1000),
        "t_exptime": 113.5826,
        "obs_collection": collection,
        "obs_intent": "science",
        "algorithm_name": "exposure",
        "proposal_project": "SPHEREx",
        "target_name": f"SPS_{header['SPS_TARGET']}",
        "target_type": "field",
        "target_standard": 0,
        "target_moving": 0,
        "s_xel1": 64,
        "s_xel2": 64,
        "s_pixel_scale": 6.15,
        "position_timedependent": 0,
        "t_min": round(header["MJD-BEG"], 6),
        "t_max": round(header["MJD-END"], 6),
        "obs_publisher_did": did,
    }
    for name, value in expected.items():
        assert (
            row[name] == pytest.approx(value) if isinstance(value, float) else row[name] == value
        ), name
    assert row["s_ra"] == pytest.approx(float(ra[0]), abs=1e-9)
    assert row["s_dec"] == pytest.approx(float(dec[0]), abs=1e-9)
    assert row["s_fov"] == pytest.approx(64 * 6.15 / 3600, rel=1e-4)
    cloud = json.loads(row["cloud_access"])
    assert cloud == {"aws": {"bucket_name": "nasa-irsa-spherex", "key": key, "region": "us-east-1"}}
    assert '"key":"' in row["cloud_access"]  # IRSA writes no space after "key":
    region = row["s_region"].split()
    assert region[:2] == ["POLYGON", "ICRS"] and len(region) == 12 and region[2:4] == region[10:]
    for name in ("facility_keywords", "proposal_id", "t_resolution", "em_xel", "o_ucd"):
        assert row[name] is None
    assert str(row["obs_release_date"])[:4] == str(dt.date.today().year)


def test_reingest_changes_nothing(ingested, small_release):
    catalogue, first = ingested
    before = dump(catalogue)
    dates = catalogue.fetchall(
        f"SELECT MAX(ingest_date) FROM {catalogue.dialect.internal('artifact')}"
    )
    again = ingest(catalogue, str(small_release), workers=1, progress=False)
    assert again.files == 0 and again.unchanged == first.files
    assert dump(catalogue) == before
    assert (
        catalogue.fetchall(f"SELECT MAX(ingest_date) FROM {catalogue.dialect.internal('artifact')}")
        == dates
    )


def test_provenance_links_images_to_calibration_files(ingested):
    catalogue, _ = ingested
    i = catalogue.dialect.internal
    rows = catalogue.fetchall(
        f"SELECT v.family, COUNT(*), COUNT(v.input_planeid) FROM {i('provenance_input')} v "
        "GROUP BY v.family ORDER BY v.family"
    )
    linked = {family: (total, resolved) for family, total, resolved in rows}
    assert linked["initial_distortion_table"] == (96, 0)  # cited, never delivered
    assert linked["dark"] == (96, 96)
    assert linked["gain_factors"] == (96, 96)


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_product_version_replaces_the_old_in_the_views(
    backend, small_release, tmp_path, new_catalogue_url
):
    catalogue = open_catalogue(new_catalogue_url(backend))
    source = sorted(small_release.glob("qr2/level2/*/*/2/*.fits"))[0]
    old_key = source.relative_to(small_release)
    newer = (
        str(old_key)
        .replace(old_key.parts[3], "l2b-v23-2026-100")
        .replace(old_key.parts[3][4:], "v23-2026-100")
    )
    root = tmp_path / "bucket"
    for key in (old_key, Path(newer)):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / key)
    # the newer version first, then the older: the views must still show the newer
    ingest(catalogue, str(root / Path(newer).parent.parent), workers=1, progress=False)
    ingest(catalogue, str(root / old_key.parent.parent), workers=1, progress=False)
    i = catalogue.dialect.internal
    artifacts = catalogue.fetchall(
        f"SELECT uri, is_current, product_version FROM {i('artifact')} ORDER BY product_version"
    )
    assert [(a[1], a[2]) for a in artifacts] == [
        (0, 20 if "v20" in str(old_key) else int(old_key.parts[3][5:7])),
        (1, 23),
    ]
    rows = obscore(catalogue)
    assert len(rows) == 1 and "v23" in rows[0]["cloud_access"]
    plane = catalogue.fetchall(f"SELECT product_version FROM {i('plane')}")
    assert plane == [(23,)]
    catalogue.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_embargoed_planes_are_invisible(backend, small_release, new_catalogue_url):
    catalogue = open_catalogue(new_catalogue_url(backend))
    delivery = sorted(small_release.glob("qr2/level2/*/l2b-*"))[0]
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    ingest(catalogue, str(delivery), release_date=future, progress=False)
    stored = catalogue.fetchall(f"SELECT COUNT(*) FROM {catalogue.dialect.internal('plane')}")
    assert stored[0][0] > 0
    assert catalogue.counts() == {}
    pub = catalogue.dialect.public
    for table in (
        "spherex.plane",
        "spherex.artifact",
        "spherex.observation",
        "spherex.provenance_input",
        "ivoa.obscore",
        "caom.plane",
        "caom.observation",
    ):
        assert catalogue.fetchall(f"SELECT COUNT(*) FROM {pub(table)}") == [(0,)], table
    header = fits.getheader(next(delivery.glob("*/*.fits")), "IMAGE")
    ra, dec = WCS(header).all_pix2world([31.5], [31.5], 0)
    assert catalogue.planes_containing(float(ra[0]), float(dec[0])) == []
    moc = catalogue.fetchall(f"SELECT moc, pending_until FROM {catalogue.dialect.internal('moc')}")
    assert moc and all(m[0] is None and m[1] for m in moc)
    catalogue.close()


def corrupt_delivery(small_release: Path, target: Path) -> dict[str, str]:
    """Copy one delivery and break some of its files; return {name fragment: reason}."""
    source = sorted(small_release.glob("qr2/level2/*/l2b-*"))[0]
    rel = source.relative_to(small_release)
    shutil.copytree(source, target / rel)
    files = sorted((target / rel).glob("*/*.fits"))
    broken = {}
    # truncated
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) - 5000])
    broken[files[0].name] = "truncated"
    # not FITS at all
    files[1].write_bytes(b"this is not a FITS file\n" * 200)
    broken[files[1].name] = "not FITS"
    # a required keyword gone (OBSID card turned into a COMMENT of the same length)
    data = bytearray(files[2].read_bytes())
    at = data.find(b"OBSID   =")
    data[at : at + 80] = b"COMMENT".ljust(80)
    files[2].write_bytes(bytes(data))
    broken[files[2].name] = "lacks OBSID"
    # header and name disagree: the file of one exposure under another's name
    other = files[3].name.replace("_1D", "_9D") if "_1D" in files[3].name else None
    if other is None:
        other = files[3].name.replace("_2D", "_9D")
    files[3].rename(files[3].with_name(other))
    broken[other] = "name says OBSID"
    # unreadable WCS: an unknown projection
    data = bytearray(files[4].read_bytes())
    at = data.find(b"'RA---TAN-SIP'")
    data[at : at + 14] = b"'RA---QQQ-SIP'"
    files[4].write_bytes(bytes(data))
    broken[files[4].name] = "unreadable WCS"
    (target / rel / "notes.txt").write_text("a stray file")
    return broken


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_are_rejected_with_reasons_and_the_rest_ingested(
    backend, small_release, tmp_path, new_catalogue_url
):
    broken = corrupt_delivery(small_release, tmp_path / "bucket")
    url = new_catalogue_url(backend)
    report_file = tmp_path / "report.txt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spherex_archive.cli",
            "ingest",
            str(tmp_path / "bucket"),
            "--catalogue",
            url,
            "--quiet",
            "--report",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = report_file.read_text()
    for name, reason in broken.items():
        line = next(line for line in report.splitlines() if name in line)
        assert line.startswith("REJECTED") and reason in line, line
    assert "SKIPPED" in report and "notes.txt" in report
    catalogue = open_catalogue(url)
    total = len(list((tmp_path / "bucket").glob("qr2/level2/*/*/*/*.fits")))
    assert sum(catalogue.counts().values()) == total - len(broken)
    catalogue.close()


def ingest_in_background(root: Path, url: str) -> subprocess.Popen:
    """``spherex-archive ingest`` in another process, one worker (so it takes a while)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spherex_archive.cli",
            "ingest",
            str(root),
            "--catalogue",
            url,
            "--quiet",
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_ingest_leaves_whole_deliveries_and_a_rerun_completes(
    backend, small_release, new_catalogue_url
):
    url = new_catalogue_url(backend)
    catalogue = open_catalogue(url)
    catalogue.create()
    process = ingest_in_background(small_release, url)
    table = catalogue.dialect.internal("delivery")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if catalogue.fetchall(f"SELECT COUNT(*) FROM {table}")[0][0] >= 3:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = catalogue.fetchall(f"SELECT path, files FROM {table}")
    total = (
        len(list(small_release.glob("qr2/**/*.fits")))
        + len(list(small_release.glob("qr2/**/*.yaml")))
        + len(list(small_release.glob("qr2/**/*.gz")))
    )
    assert 0 < sum(f for _, f in partial) < total, "the kill must land mid-ingest"
    # every committed delivery is whole: all its files are in the catalogue
    for path, files in partial:
        held = catalogue.fetchall(
            f"SELECT COUNT(*) FROM {catalogue.dialect.internal('artifact')} WHERE uri LIKE ?",
            [f"ibe/data/spherex/{path}/%"],
        )[0][0]
        assert held == files
    ingest(catalogue, str(small_release), workers=1, progress=False)
    clean = open_catalogue(new_catalogue_url(backend))
    ingest(clean, str(small_release), workers=1, progress=False)
    assert dump(catalogue) == dump(clean)
    catalogue.close()
    clean.close()


@pytest.mark.slow
def test_readers_are_never_blocked_by_an_ingest(small_release, new_catalogue_url):
    """SQLite in WAL mode: queries keep answering, with whole deliveries only, while another
    process ingests."""
    url = new_catalogue_url("sqlite")
    catalogue = open_catalogue(url)
    catalogue.create()
    process = ingest_in_background(small_release, url)
    seen, slowest = set(), 0.0
    table = catalogue.dialect.internal("delivery")
    while process.poll() is None:
        started = time.perf_counter()
        # one statement, one snapshot
        planes, files = catalogue.fetchall(
            f"SELECT (SELECT COUNT(*) FROM {catalogue.dialect.public('spherex.obscore')}), "
            f"(SELECT COALESCE(SUM(files), 0) FROM {table})"
        )[0]
        slowest = max(slowest, time.perf_counter() - started)
        assert planes == files  # a delivery is seen whole or not at all
        seen.add(planes)
    assert process.returncode == 0
    assert len(seen) > 3, "the queries ran during the ingest"
    assert slowest < 1.0
    catalogue.close()
