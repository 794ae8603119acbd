"""TAP 1.1 through HTTP on both catalogues: pyvo and astroquery as clients, the formats, uploads,
metadata documents, errors, fuzzing through the sync endpoint, the query log and metrics."""

from __future__ import annotations

import io
import logging
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spherex_archive.adql import to_adql
from spherex_archive.model import tables as model
from spherex_archive.protocols.tap import EXAMPLES
from spherex_archive.synth.survey import DEEP_FIELDS
from tests.adql import strategies
from tests.protocols.client import request
from tests.validators import STILTS, votlint

RA, DEC = DEEP_FIELDS["NEP"]
CONE = f"SELECT * FROM spherex.obscore WHERE CONTAINS(POINT('ICRS', {RA}, {DEC}), s_region) = 1"


@pytest.fixture(scope="module")
def tap(archive_server) -> str:
    return archive_server.base + "/TAP"


def sync(tap: str, method: str = "GET", **params):
    body = urlencode(params)
    if method == "GET":
        return request(f"{tap}/sync?{body}")
    return request(
        f"{tap}/sync",
        "POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body.encode(),
    )


# --------------------------------------------------------------------------------------------
# pyvo and astroquery


def test_pyvo_run_sync_matches_sia(tap, archive_server):
    import pyvo

    service = pyvo.dal.TAPService(tap)
    table = service.run_sync(CONE).to_table()
    assert list(table.colnames) == list(model.SPHEREX_OBSCORE_ORDER)
    reply = request(
        f"{archive_server.base}/SIA?" + urlencode({"POS": f"CIRCLE {RA} {DEC} 0", "MAXREC": 1000})
    )
    sia = parse_single_table(io.BytesIO(reply.body)).to_table()
    assert set(table["obs_publisher_did"]) == set(sia["obs_publisher_did"])
    for url, did in zip(table["access_url"], table["obs_publisher_did"], strict=True):
        assert url == f"{archive_server.base}/datalink/links/spherex?ID={did}"  # ObsTAP: DataLink


def test_pyvo_maxrec_and_overflow(tap):
    import pyvo

    service = pyvo.dal.TAPService(tap)
    result = service.run_sync("SELECT TOP 50 obs_id FROM ivoa.obscore", maxrec=7)
    assert len(result) == 7  # pyvo warns only when the rows differ from MAXREC
    assert len(service.run_sync("SELECT TOP 3 obs_id FROM ivoa.obscore", maxrec=7)) == 3


def test_pyvo_tables_and_examples(tap):
    import pyvo

    service = pyvo.dal.TAPService(tap)
    names = {t.name for t in service.tables}
    assert {"ivoa.obscore", "spherex.obscore", "spherex.plane", "tap_schema.columns"} <= names
    columns = {c.name for c in service.tables["spherex.plane"].columns}
    assert {"planeid", "poly", "energy_bandpassname"} <= columns
    examples = service.examples
    assert len(examples) == len(EXAMPLES)
    for example in examples:
        example.execute()  # every example runs as written


def test_pyvo_upload_join(tap):
    import pyvo

    positions = Table({"id": [1, 2], "ra": [RA, 10.0], "dec": [DEC, -45.0]})
    result = pyvo.dal.TAPService(tap).run_sync(
        "SELECT u.id, o.obs_publisher_did FROM TAP_UPLOAD.pos AS u "
        "JOIN ivoa.obscore AS o ON CONTAINS(POINT('ICRS', u.ra, u.dec), o.s_region) = 1",
        uploads={"pos": positions},
    )
    found = result.to_table()
    assert set(found["id"]) == {1}
    assert len(found) == 16  # the NEP centre lies in 16 images of the small release


def test_astroquery_query_tap_and_list_collections(tap):
    from astroquery.ipac.irsa import Irsa

    saved = Irsa.tap_url, Irsa._tap
    Irsa.tap_url, Irsa._tap = tap, None
    try:
        table = Irsa.query_tap("SELECT TOP 5 obs_id, s_ra FROM spherex.obscore").to_table()
        collections = Irsa.list_collections()
        images = Irsa.list_collections(servicetype="SIA")
    finally:
        Irsa.tap_url, Irsa._tap = saved
    assert len(table) == 5
    assert list(collections["collection"]) == ["spherex_qr2", "spherex_qr2_cal", "spherex_qr2_deep"]
    assert list(images["collection"]) == ["spherex_qr2", "spherex_qr2_deep"]


@pytest.mark.parametrize("key", [e[0] for e in EXAMPLES])
def test_the_queries_real_clients_send(tap, key):
    (query,) = [e[3] for e in EXAMPLES if e[0] == key]
    reply = sync(tap, "POST", LANG="ADQL", QUERY=query)
    assert reply.status == 200, reply.body
    table = parse_single_table(io.BytesIO(reply.body)).to_table()
    assert len(table) > 0


# --------------------------------------------------------------------------------------------
# Formats


def test_formats(tap):
    query = "SELECT TOP 4 obs_id, s_ra, t_min, obs_release_date, calib_level FROM ivoa.obscore"
    csv = sync(tap, LANG="ADQL", QUERY=query, RESPONSEFORMAT="csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.body.decode().splitlines()[0] == "obs_id,s_ra,t_min,obs_release_date,calib_level"
    tsv = sync(tap, LANG="ADQL", QUERY=query, FORMAT="tsv")
    assert tsv.headers["content-type"].startswith("text/tab-separated-values")
    assert len(tsv.body.decode().splitlines()) == 5
    binary2 = sync(tap, LANG="ADQL", QUERY=query, RESPONSEFORMAT="votable/b2")
    assert b"<BINARY2>" in binary2.body
    assert len(parse_single_table(io.BytesIO(binary2.body)).array) == 4
    mime = "application/x-votable+xml;serialization=BINARY2"
    echoed = sync(tap, LANG="ADQL", QUERY=query, RESPONSEFORMAT=mime)
    assert echoed.headers["content-type"] == mime
    fitsfile = sync(tap, LANG="ADQL", QUERY=query, RESPONSEFORMAT="fits")
    assert fitsfile.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(fitsfile.body)) as hdus:
        data = hdus["RESULTS"].data
        assert list(data.columns.names) == [
            "obs_id",
            "s_ra",
            "t_min",
            "obs_release_date",
            "calib_level",
        ]
        assert len(data) == 4


def test_maxrec_zero_and_overflow_marker(tap):
    zero = sync(tap, LANG="ADQL", QUERY="SELECT obs_id FROM ivoa.obscore", MAXREC=0)
    assert b'value="OVERFLOW"' in zero.body and b"<TR>" not in zero.body
    cut = sync(tap, LANG="ADQL", QUERY="SELECT TOP 10 obs_id FROM ivoa.obscore", MAXREC=9)
    assert cut.body.count(b"<TR>") == 9 and b'value="OVERFLOW"' in cut.body
    whole = sync(tap, LANG="ADQL", QUERY="SELECT TOP 9 obs_id FROM ivoa.obscore", MAXREC=9)
    assert whole.body.count(b"<TR>") == 9 and b'value="OVERFLOW"' not in whole.body


@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_votlint_on_answers(tap, archive_server, tmp_path):
    if archive_server.backend != "sqlite":
        pytest.skip("the documents do not depend on the catalogue")
    for params in (
        {"QUERY": "SELECT TOP 20 * FROM spherex.plane"},
        {"QUERY": "SELECT TOP 20 * FROM ivoa.obscore", "RESPONSEFORMAT": "votable/b2"},
        {"QUERY": "DUFF QUERY"},
    ):
        assert votlint(sync(tap, LANG="ADQL", **params).body, tmp_path) == [], params


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "params, words",
    [
        ({"QUERY": "SELECT 1"}, "LANG is missing"),
        ({"LANG": "OOBLECK", "QUERY": "SELECT 1"}, "unknown query language"),
        ({"LANG": "ADQL"}, "QUERY is missing"),
        ({"LANG": "ADQL", "QUERY": "DUFF QUERY"}, "line 1"),
        ({"LANG": "ADQL", "QUERY": "SELECT * FROM nowhere"}, "unknown table"),
        ({"LANG": "ADQL", "QUERY": "SELECT x FROM ivoa.obscore"}, "x"),
        ({"LANG": "ADQL", "QUERY": "SELECT 1; DROP TABLE archive_plane"}, ""),
        ({"LANG": "ADQL", "QUERY": "SELECT pg_sleep(10) FROM ivoa.obscore"}, "pg_sleep"),
        ({"LANG": "ADQL", "QUERY": "SELECT load_extension('x') FROM ivoa.obscore"}, ""),
        ({"LANG": "ADQL", "QUERY": "SELECT * FROM archive_plane"}, "unknown table"),
        ({"LANG": "ADQL", "QUERY": "SELECT 1", "MAXREC": "-3"}, "MAXREC"),
        ({"LANG": "ADQL", "QUERY": "SELECT 1", "RESPONSEFORMAT": "pdf"}, "RESPONSEFORMAT"),
        ({"LANG": "ADQL", "QUERY": "SELECT 1", "UPLOAD": "t,ftp://x/y"}, "UPLOAD"),
        ({"LANG": "ADQL", "QUERY": "SELECT 1", "UPLOAD": "t,param:missing"}, "no part named"),
    ],
)
def test_errors_are_votable_error_documents(tap, params, words):
    for method in ("GET", "POST"):
        reply = sync(tap, method, **params)
        assert reply.status == 400, reply.body
        root = ET.fromstring(reply.body)
        ns = "{http://www.ivoa.net/xml/VOTable/v1.3}"
        (info,) = root.iter(ns + "INFO")
        assert info.get("value") == "ERROR"
        assert words in info.text


def test_unknown_parameters_are_ignored(tap):
    plain = sync(tap, LANG="ADQL", QUERY="SELECT TOP 3 obs_id FROM ivoa.obscore ORDER BY obs_id")
    dummy = sync(
        tap, LANG="ADQL", QUERY="SELECT TOP 3 obs_id FROM ivoa.obscore ORDER BY obs_id", DUMMY="x"
    )
    assert plain.body == dummy.body


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.text(max_size=60),
        strategies.queries.map(to_adql),
    )
)
def test_fuzzing_never_gets_a_500(tap, query):
    reply = sync(tap, "POST", LANG="ADQL", QUERY=query, MAXREC=5)
    assert reply.status in (200, 400, 503), reply.body
    assert reply.headers["content-type"].startswith("application/x-votable+xml")


# --------------------------------------------------------------------------------------------
# Metadata


def test_tables_detail_and_single_table(tap):
    minimal = ET.fromstring(request(f"{tap}/tables?detail=min").body)
    assert not list(minimal.iter("column"))
    full = ET.fromstring(request(f"{tap}/tables").body)
    names = {t.findtext("name") for t in full.iter("table")}
    assert names == {t.qualified for t in model.PUBLIC_TABLES}
    one = request(f"{tap}/tables/ivoa.ObsCore")
    assert one.status == 200 and b"<vosi:table" in one.body
    assert request(f"{tap}/tables/nowhere.nothing").status == 404
    sizes = [c for c in full.iter("column") if c.findtext("name") == '"size"']
    assert len(sizes) == 1  # TAP_SCHEMA.columns."size", delimited as ADQL must write it


def test_capabilities_declare_tap_1_1(tap):
    root = ET.fromstring(request(f"{tap}/capabilities").body)
    (capability,) = [
        c for c in root.findall("capability") if c.get("standardID") == "ivo://ivoa.net/std/TAP"
    ]
    (interface,) = capability.findall("interface")
    assert interface.get("version") == "1.1" and interface.get("role") == "std"
    assert interface.findtext("accessURL") == tap


def test_query_log_and_metrics(tap, archive_server, caplog):
    with caplog.at_level(logging.INFO, logger="spherex_archive.tap"):
        sync(tap, LANG="ADQL", QUERY="SELECT TOP 2 obs_id FROM ivoa.obscore")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "spherex_archive.tap"]
    assert "rows=2" in line and "SELECT TOP 2 obs_id FROM ivoa.obscore" in line
    metrics = request(f"{archive_server.base}/metrics").body.decode()
    assert 'spherex_queries_total{outcome="ok",service="tap-sync"}' in metrics
    assert "spherex_query_rows_total" in metrics


def test_base_page(tap):
    reply = request(tap)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    assert reply.body.decode().count("<li>") >= 5


# --------------------------------------------------------------------------------------------
# Async (UWS) and the IVOA validator


def test_pyvo_run_async(tap):
    import pyvo

    table = pyvo.dal.TAPService(tap).run_async(CONE).to_table()
    assert len(table) == 16


def test_pyvo_submit_run_wait_fetch(tap):
    import pyvo

    job = pyvo.dal.TAPService(tap).submit_job(
        "SELECT TOP 5 obs_id FROM spherex.obscore ORDER BY obs_id", maxrec=3
    )
    assert job.phase == "PENDING"
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=120)
    assert job.phase == "COMPLETED"
    result = job.fetch_result().to_table()
    assert len(result) == 3
    assert job.result_uri.startswith(tap + "/async/")
    job.delete()


def test_async_errors_are_votable_documents(tap):
    import pyvo
    from pyvo.dal.exceptions import DALQueryError

    with pytest.raises(DALQueryError, match="unknown table"):
        pyvo.dal.TAPService(tap).run_async("SELECT * FROM nowhere")


def test_async_upload(tap):
    import pyvo

    positions = Table({"id": [7], "ra": [RA], "dec": [DEC]})
    result = (
        pyvo.dal.TAPService(tap)
        .run_async(
            "SELECT u.id, COUNT(*) AS images FROM TAP_UPLOAD.pos AS u JOIN ivoa.obscore AS o "
            "ON CONTAINS(POINT('ICRS', u.ra, u.dec), o.s_region) = 1 GROUP BY u.id",
            uploads={"pos": positions},
        )
        .to_table()
    )
    assert list(result["images"]) == [16]


@pytest.mark.slow
@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_taplint_finds_no_errors_or_warnings(tap, archive_server, tmp_path):
    """Every taplint stage: 0 errors, 0 warnings; the one failure is the absent ObsLocTAP
    table, as with GAVO DaCHS. The report is printed into the test output."""
    import subprocess

    if archive_server.backend != "sqlite":
        pytest.skip("one catalogue is enough for the validator")
    result = subprocess.run(
        [STILTS, "taplint", f"tapurl={tap}", "report=EWFS"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = result.stdout + result.stderr
    print(report)
    (tmp_path / "taplint.txt").write_text(report)
    problems = [line for line in report.splitlines() if line[:2] in ("E-", "W-", "F-")]
    assert problems == ["F-LOC-NOTP-1 No table with name ivoa.obsplan"], "\n".join(problems)
