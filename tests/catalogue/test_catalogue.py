"""The catalogue interface on both backends: schema, read-only queries, limits, MOCs."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from mocpy import MOC

from spherex_archive.catalogue import CatalogueError, open_catalogue
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.ingest.run import ingest
from spherex_archive.model import tables as model

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=BACKENDS)
def catalogue(request, small_release, tmp_path_factory):
    import uuid

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('cat') / 'c.db'}"
        yield_and_drop = None
    else:
        from tests.conftest import PG_ADMIN, _pg_admin

        name = f"sxtest_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as admin:
            admin.execute(f"CREATE DATABASE {name}")
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        yield_and_drop = name
    cat = open_catalogue(url)
    ingest(cat, str(small_release), workers=2, progress=False)
    yield cat
    cat.close()
    if yield_and_drop:
        from tests.conftest import _pg_admin

        with _pg_admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {yield_and_drop} WITH (FORCE)")


def test_unknown_url_is_a_clear_error():
    with pytest.raises(CatalogueError, match="unknown catalogue URL"):
        open_catalogue("mysql://somewhere/db")


def test_tap_schema_describes_every_public_table(catalogue):
    pub = catalogue.dialect.public
    tables = {
        r[0] for r in catalogue.fetchall(f"SELECT table_name FROM {pub('tap_schema.tables')}")
    }
    assert tables == set(model.TABLES)
    columns = catalogue.fetchall(
        f"SELECT column_name, datatype, unit, ucd FROM {pub('tap_schema.columns')} "
        "WHERE table_name = 'ivoa.obscore' ORDER BY column_index"
    )
    assert [c[0] for c in columns][:5] == [
        "dataproduct_type",
        "calib_level",
        "obs_collection",
        "obs_id",
        "obs_publisher_did",
    ]
    assert ("access_estsize", "long", "kbyte", "phys.size;meta.file") in columns
    # every view answers with exactly the columns TAP_SCHEMA declares for it
    for table in model.VIEWS:
        result = catalogue.query(f"SELECT * FROM {pub(table.qualified)} LIMIT 1")
        list(result.rows)
        public = [c for c in result.columns if not c.startswith("_")]
        assert public == table.column_names, table.qualified


def test_row_limit_marks_overflow(catalogue):
    result = catalogue.query(
        f"SELECT * FROM {catalogue.dialect.public('spherex.obscore')}", max_rows=10
    )
    assert len(list(result.rows)) == 10 and result.overflow
    result = catalogue.query(
        f"SELECT * FROM {catalogue.dialect.public('spherex.obscore')}", max_rows=1000
    )
    assert len(list(result.rows)) == 170 and not result.overflow


def test_queries_are_read_only(catalogue):
    with pytest.raises(Exception, match=r"(?i)read.only|readonly|syntax error"):
        list(catalogue.query(f"DELETE FROM {catalogue.dialect.internal('plane')}").rows)
    assert sum(catalogue.counts().values()) == 170
    if catalogue.dialect.name == "postgresql":  # even a SELECT cannot write there
        with pytest.raises(Exception, match="read-only"):
            list(catalogue.query("SELECT planeid FROM archive.plane FOR UPDATE").rows)


def test_slow_queries_are_stopped(catalogue):
    pub = catalogue.dialect.public("spherex.obscore")
    slow = (
        f"SELECT COUNT(*) FROM {pub} a, {pub} b, {pub} c, {pub} d "
        "WHERE a.s_ra + b.s_ra + c.s_ra > d.s_dec"
    )
    with pytest.raises(QueryTimeout):
        list(catalogue.query(slow, timeout=0.5).rows)
    # the catalogue still answers afterwards
    assert sum(catalogue.counts().values()) == 170


def test_mocs_cover_every_footprint(catalogue, small_release):
    mocs = dict(
        catalogue.fetchall(f"SELECT collection, moc FROM {catalogue.dialect.internal('moc')}")
    )
    assert mocs["spherex_qr2_cal"] is None  # calibration files have no footprint
    wide = MOC.from_string(mocs["spherex_qr2"], format="ascii")
    deep = MOC.from_string(mocs["spherex_qr2_deep"], format="ascii")
    for path in list(small_release.glob("qr2/level2/*/*/*/*.fits"))[::5]:
        header = fits.getheader(path, "IMAGE")
        ra, dec = WCS(header).all_pix2world([31.5], [31.5], 0)
        moc = deep if header["SPS_FLAGS"] == "deep" else wide
        assert moc.contains_lonlat(ra * u.deg, dec * u.deg)[0]
    assert not wide.contains_lonlat([180.0] * u.deg, [-30.0] * u.deg)[0]
    assert deep.contains_lonlat([270.0] * u.deg, [66.56] * u.deg)[0]
    assert wide.contains_lonlat([0.0] * u.deg, [90.0] * u.deg)[0]
    assert np.isclose(wide.sky_fraction, wide.sky_fraction)
