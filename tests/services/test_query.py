"""The query engine on both catalogues: the ADQL real clients send, spatial searches against
the catalogue's own (brute-force tested) searches, errors, uploads, fuzzing and injection."""

from __future__ import annotations

import contextlib
import math
import time

import psycopg
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spherex_archive.adql import parse, to_adql
from spherex_archive.adql.errors import AdqlError
from spherex_archive.adql.translate import UploadTable
from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.model.schema import Column
from spherex_archive.protocols.tap import EXAMPLES
from spherex_archive.services.query import QueryEngine
from tests.adql import strategies

FIXED = [(0.0, 90.0), (359.999, 1.0), (0.001, 0.9), (270.0, 66.56), (10.68, 41.27), (0.0, 1.0)]


def rows(engine: QueryEngine, adql: str, **kw) -> list[tuple]:
    return list(engine.run(adql, **kw).rows)


def normal(value):
    # PostgreSQL keeps REAL columns in single precision, SQLite in double.
    return float(f"{value:.6g}") if isinstance(value, float) else value


def same_rows(engines, adql: str, ordered: bool = False) -> list[tuple]:
    got = {b: [tuple(map(normal, r)) for r in rows(e, adql)] for b, e in engines.items()}
    if not ordered:
        got = {b: sorted(r, key=repr) for b, r in got.items()}
    a, b = got["sqlite"], got["postgresql"]
    assert len(a) == len(b), adql
    for x, y in zip(a, b, strict=True):
        assert x == y, [(i, p, q) for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
    return got["sqlite"]


@pytest.fixture(scope="module")
def position(engines):
    """A point inside some footprint of a wide-survey image."""
    (ra, dec), *_ = rows(
        engines["sqlite"],
        "SELECT TOP 1 s_ra, s_dec FROM spherex.obscore WHERE obs_collection = 'spherex_qr2' "
        "ORDER BY obs_publisher_did",
    )
    return ra, dec


# --- the queries of spherex-products §5.2 ---------------------------------------------------


def test_cone_on_obscore(engines, catalogues, position):
    ra, dec = position
    adql = f"SELECT * FROM spherex.obscore WHERE CONTAINS(POINT('ICRS', {ra}, {dec}), s_region) = 1"
    for backend, engine in engines.items():
        answer = engine.run(adql)
        assert "_footprint" not in [c.name for c in answer.columns]
        dids = {r[[c.name for c in answer.columns].index("obs_publisher_did")] for r in answer.rows}
        expected = set(catalogues[backend].planes_containing(ra, dec))
        assert len(dids) == len(expected) > 0
    # (release dates differ: each catalogue was ingested at its own time)
    same_rows(engines, adql.replace("*", "obs_publisher_did, s_ra, s_dec, s_region, em_min"))


def test_cutout_urls_on_artifact_and_plane(engines, position):
    ra, dec = position
    found = same_rows(
        engines,
        "SELECT 'https://irsa.ipac.caltech.edu/' || a.uri || "
        f"'?center={ra},{dec}&size=0.01' AS uri, p.time_bounds_lower "
        "FROM spherex.artifact a JOIN spherex.plane p ON a.planeid = p.planeid "
        f"WHERE 1 = CONTAINS(POINT('ICRS', {ra}, {dec}), p.poly) "
        "AND (p.energy_bandpassname = 'SPHEREx-D1' OR p.energy_bandpassname IN "
        "('SPHEREx-D2', 'SPHEREx-D3', 'SPHEREx-D4', 'SPHEREx-D5', 'SPHEREx-D6')) "
        "ORDER BY p.time_bounds_lower, uri",
        ordered=True,
    )
    assert found and all(u.startswith("https://irsa.ipac.caltech.edu/ibe/") for u, _ in found)


@pytest.mark.parametrize(
    "adql",
    [
        "SELECT o.obs_id, p.planeid FROM spherex.obscore o JOIN spherex.plane p "
        "ON o.obs_publisher_did = p.obs_publisher_did",
        "SELECT p.planeid, o.observationid FROM spherex.plane p JOIN spherex.observation o "
        "ON p.obsid = o.obsid WHERE o.collection = 'spherex_qr2_deep'",
        "SELECT a.uri FROM spherex.artifact a WHERE a.uri LIKE '%/spherex/qr2/level2/%'",
        "SELECT p.energy_bandpassname, COUNT(DISTINCT p.planeid) AS n FROM spherex.plane p "
        "GROUP BY p.energy_bandpassname",
        "SELECT MIN(p.time_bounds_lower), MAX(p.time_bounds_lower) FROM spherex.plane p",
        "SELECT DISTINCT provenance_version FROM spherex.plane",
        "SELECT DISTINCT collection FROM caom.observation",
        "SELECT o.collection, p.planeid FROM caom.observation o JOIN caom.plane p "
        "ON o.obsid = p.obsid WHERE p.dataproducttype IN ('image', 'cube')",
        "SELECT COUNT(*) AS nr FROM TAP_SCHEMA.columns",
        'SELECT table_name, column_name, datatype, arraysize, "size" FROM TAP_SCHEMA.columns',
        "SELECT s_ra, IN_UNIT(em_min, 'um') AS em FROM ivoa.obscore WHERE em_min IS NOT NULL",
        "SELECT obsid FROM caom.observation UNION SELECT obsid FROM caom.plane",
        "SELECT obsid FROM caom.observation INTERSECT SELECT obsid FROM caom.plane",
        "WITH c AS (SELECT obsid FROM caom.plane WHERE calibrationlevel = 2) "
        "SELECT COUNT(*) FROM c",
        "SELECT planeid FROM spherex.plane NATURAL JOIN spherex.artifact",
        "SELECT planeid FROM spherex.plane JOIN spherex.artifact USING (planeid) "
        "WHERE contentlength > 0",
        "SELECT o.obsid FROM caom.observation o WHERE EXISTS "
        "(SELECT 1 FROM caom.plane p WHERE p.obsid = o.obsid AND p.calibrationlevel = 2)",
        "SELECT x.n FROM (SELECT COUNT(*) AS n FROM caom.plane) AS x",
        "SELECT ROUND(s_ra, 2), TRUNCATE(s_dec, 1), MOD(calib_level, 2), 7 & 3, 5 | 2, 6 ^ 3, "
        "~5, LOG(10.0), LOG10(100.0), POWER(2, 10), PI(), UPPER(obs_id), LOWER(obs_id) "
        "FROM ivoa.obscore WHERE s_ra IS NOT NULL",
        "SELECT obs_id FROM ivoa.obscore WHERE obs_id ILIKE '%D1%' AND obs_id NOT LIKE '%d1%'",
        "SELECT CASE WHEN s_dec > 0 THEN 'north' ELSE 'south' END AS hemi, COALESCE(s_ra, -1) "
        "FROM ivoa.obscore",
        "SELECT CAST(calib_level AS DOUBLE PRECISION), CAST(s_ra AS INTEGER) FROM ivoa.obscore",
        "SELECT TOP 5 obs_publisher_did FROM ivoa.obscore ORDER BY obs_publisher_did OFFSET 3",
    ],
)
def test_same_answer_on_both_databases(engines, adql):
    same_rows(engines, adql, ordered="ORDER BY" in adql)


@pytest.mark.parametrize("key", [example[0] for example in EXAMPLES])
def test_the_served_examples_answer_alike(engines, key):
    """/TAP/examples holds the queries real clients send (spec §5.2)."""
    (adql,) = [example[3] for example in EXAMPLES if example[0] == key]
    same_rows(engines, adql, ordered="ORDER BY" in adql)


def test_counts_and_top(engines):
    ((total,),) = rows(engines["sqlite"], "SELECT COUNT(*) FROM spherex.plane")
    assert total > 20
    for engine in engines.values():
        assert len(rows(engine, "SELECT TOP 7 planeid FROM spherex.plane")) == 7
        answer = engine.run("SELECT planeid FROM spherex.plane", maxrec=5)
        assert len(list(answer.rows)) == 5 and answer.overflow()
        answer = engine.run("SELECT TOP 3 planeid FROM spherex.plane", maxrec=5)
        assert len(list(answer.rows)) == 3 and not answer.overflow()


def test_result_metadata(engines):
    answer = engines["sqlite"].run(
        "SELECT s_ra, s_ra, COUNT(*) AS n, s_ra + 1, obs_id || 'x', "
        "POINT('ICRS', 1, 2) FROM ivoa.obscore GROUP BY s_ra, obs_id"
    )
    names = [c.name for c in answer.columns]
    assert names == ["s_ra", "s_ra_2", "n", "expr", "expr_2", "point"]
    assert answer.columns[0].unit == "deg" and answer.columns[0].ucd
    assert [c.datatype for c in answer.columns[2:5]] == ["long", "double", "char"]
    assert answer.columns[5].xtype == "adql:POINT"


# --- spatial --------------------------------------------------------------------------------


@pytest.mark.parametrize("ra, dec", FIXED)
def test_point_in_footprints(engines, catalogues, backend, ra, dec):
    expected = set(catalogues[backend].planes_containing(ra, dec))
    for adql in (
        f"SELECT planeid FROM caom.plane WHERE CONTAINS(POINT('ICRS', {ra}, {dec}), poly) = 1",
        f"SELECT planeid FROM spherex.plane WHERE 1 = CONTAINS(POINT('', {ra}, {dec}), poly)",
        f"SELECT planeid FROM spherex.plane WHERE INTERSECTS(poly, POINT({ra}, {dec})) = 1",
    ):
        assert {r[0] for r in rows(engines[backend], adql)} == expected
    outside = rows(
        engines[backend],
        f"SELECT planeid FROM caom.plane WHERE CONTAINS(POINT({ra}, {dec}), poly) = 0",
    )
    assert not expected & {r[0] for r in outside}


@pytest.mark.parametrize("ra, dec", FIXED)
@pytest.mark.parametrize("radius", [0.05, 1.0])
def test_circle_intersects_footprints(engines, catalogues, backend, ra, dec, radius):
    expected = set(catalogues[backend].planes_intersecting_circle(ra, dec, radius))
    for adql in (
        f"SELECT planeid FROM caom.plane WHERE INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, {radius}), "
        "poly) = 1",
        f"SELECT planeid FROM caom.plane WHERE INTERSECTS(poly, CIRCLE({ra}, {dec}, {radius})) = 1",
    ):
        assert {r[0] for r in rows(engines[backend], adql)} == expected


@pytest.mark.parametrize("ra, dec", FIXED[:3])
@pytest.mark.parametrize("radius", [90.0, 100.0, 180.0])
def test_circles_wider_than_a_hemisphere(engines, catalogues, ra, dec, radius):
    """pgsphere's circles end at 90 degrees: wider ones are asked as the rest of the sphere."""
    expected = set(catalogues["sqlite"].planes_intersecting_circle(ra, dec, radius))
    assert expected
    circle = f"CIRCLE('ICRS', {ra}, {dec}, {radius})"
    met = same_rows(engines, f"SELECT planeid FROM caom.plane WHERE INTERSECTS(poly, {circle}) = 1")
    assert {r[0] for r in met} == expected
    within = same_rows(
        engines, f"SELECT planeid FROM caom.plane WHERE CONTAINS(poly, {circle}) = 1"
    )
    assert {r[0] for r in within} <= expected
    holding = f"SELECT planeid FROM caom.plane WHERE CONTAINS({circle}, poly) = 1"
    assert same_rows(engines, holding) == []


def test_polygons_and_boxes_agree(engines, position):
    ra, dec = position
    polygon = f"POLYGON('ICRS', {ra - 1}, {dec - 1}, {ra + 1}, {dec - 1}, {ra}, {dec + 1})"
    found = same_rows(
        engines, f"SELECT planeid FROM caom.plane WHERE INTERSECTS({polygon}, poly) = 1"
    )
    assert found
    same_rows(engines, f"SELECT planeid FROM caom.plane WHERE CONTAINS(poly, {polygon}) = 1")
    same_rows(
        engines, f"SELECT planeid FROM caom.plane WHERE INTERSECTS(BOX({ra}, {dec}, 2, 2), poly)=1"
    )
    inside = same_rows(
        engines, f"SELECT planeid FROM caom.plane WHERE CONTAINS(poly, CIRCLE({ra}, {dec}, 5)) = 1"
    )
    assert inside
    same_rows(
        engines,
        f"SELECT planeid FROM caom.plane WHERE CONTAINS(CIRCLE({ra}, {dec}, 0.001), poly) = 1",
    )


def test_cone_on_columns_and_distance(engines, position):
    ra, dec = position
    found = same_rows(
        engines,
        f"SELECT obs_publisher_did, DISTANCE(POINT(s_ra, s_dec), POINT({ra}, {dec})) AS d "
        f"FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), "
        f"CIRCLE('ICRS', {ra}, {dec}, 0.5)) = 1",
    )
    assert found and all(d <= 0.5 for _, d in found)
    ((d,),) = rows(
        engines["sqlite"], "SELECT TOP 1 DISTANCE(359.999, 0, 0.001, 0) FROM caom.observation"
    )
    assert math.isclose(d, 0.002, rel_tol=1e-6)


@pytest.fixture(scope="module")
def centres(engines) -> tuple[list[str], SkyCoord]:
    """Every image's obs_publisher_did and centre, read plainly (no spatial SQL)."""
    got = rows(
        engines["sqlite"],
        "SELECT obs_publisher_did, s_ra, s_dec FROM ivoa.obscore WHERE s_ra IS NOT NULL",
    )
    return [r[0] for r in got], SkyCoord([r[1] for r in got], [r[2] for r in got], unit="deg")


def brute_cone(centres, ra: float, dec: float, radius: float) -> tuple[set[str], set[str]]:
    """(images whose centre is surely within ``radius``, those on its edge), by astropy."""
    dids, coords = centres
    d = SkyCoord(ra, dec, unit="deg").separation(coords).deg
    sure = {did for did, x in zip(dids, d, strict=True) if x < radius - 1e-9}
    edge = {did for did, x in zip(dids, d, strict=True) if abs(x - radius) <= 1e-9}
    return sure, edge


@pytest.mark.parametrize("where", [*FIXED, "position", "near position"])
@pytest.mark.parametrize("radius", [0.0, 0.05, 1.0, 7.0, 100.0])
def test_cones_on_image_centres(engines, centres, backend, position, where, radius):
    """ObsCore's cone search (CONTAINS of the centre's point) and its DISTANCE spellings,
    which the centre index serves, against astropy over every image's centre."""
    ra, dec = {"position": position, "near position": (position[0] + 0.02, position[1])}.get(
        where, where
    )
    sure, edge = brute_cone(centres, ra, dec, radius)
    point = "POINT('ICRS', s_ra, s_dec)"
    for condition in (
        f"CONTAINS({point}, CIRCLE('ICRS', {ra}, {dec}, {radius})) = 1",
        f"1 = INTERSECTS(CIRCLE({ra}, {dec}, {radius}), {point})",
        f"DISTANCE({point}, POINT({ra}, {dec})) <= {radius}",
        f"{radius} >= DISTANCE(POINT({ra}, {dec}), POINT(s_ra, s_dec))",
        f"DISTANCE(s_ra, s_dec, {ra}, {dec}) <= {radius}",
    ):
        found = {
            r[0]
            for r in rows(
                engines[backend], f"SELECT obs_publisher_did FROM ivoa.obscore WHERE {condition}"
            )
        }
        assert sure <= found <= sure | edge, condition
    if radius:
        found = {
            r[0]
            for r in rows(
                engines[backend],
                f"SELECT obs_publisher_did FROM ivoa.obscore WHERE "
                f"DISTANCE({point}, POINT({ra}, {dec})) < {radius}",
            )
        }
        assert sure <= found <= sure | edge


def test_polygon_on_image_centres(engines, centres, position):
    ra, dec = position
    polygon = f"POLYGON('ICRS', {ra - 1}, {dec - 1}, {ra + 1}, {dec - 1}, {ra}, {dec + 1})"
    found = same_rows(
        engines,
        f"SELECT obs_publisher_did FROM ivoa.obscore WHERE "
        f"CONTAINS(POINT(s_ra, s_dec), {polygon}) = 1",
    )
    assert found and len(found) < len(centres[0])


def test_cones_on_image_centres_use_the_centre_index(catalogues, engines, position):
    ra, dec = position
    for adql in (
        f"SELECT * FROM ivoa.obscore WHERE "
        f"CONTAINS(POINT(s_ra, s_dec), CIRCLE({ra}, {dec}, 0.1)) = 1",
        f"SELECT * FROM spherex.plane WHERE DISTANCE(POINT(s_ra, s_dec), POINT({ra}, {dec})) < 0.1",
    ):
        sql = engines["sqlite"].translate(adql)
        plan = catalogues["sqlite"].fetchall("EXPLAIN QUERY PLAN " + sql.sql, sql.params)
        assert any("USING INDEX plane_centre" in r[3] for r in plan), plan
        sql = engines["postgresql"].translate(adql)
        with psycopg.connect(catalogues["postgresql"].url) as conn:
            conn.execute("SET enable_seqscan = off")  # the test catalogue is small
            text = str(conn.execute("EXPLAIN " + sql.sql.replace("?", "%s"), sql.params).fetchall())
        assert "archive_plane_centre" in text, text


def test_sqlite_uses_the_zones_index(catalogues, engines, position):
    ra, dec = position
    sql = engines["sqlite"].translate(
        f"SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT({ra}, {dec}), s_region) = 1"
    )
    plan = catalogues["sqlite"].fetchall("EXPLAIN QUERY PLAN " + sql.sql, sql.params)
    assert any("SEARCH archive_footprint USING PRIMARY KEY (zone=?" in r[3] for r in plan)


def test_upload_join(engines, catalogues, backend, position):
    upload = UploadTable(
        "pos",
        [Column("id", "int", ""), Column("ra", "double", ""), Column("dec", "double", "")],
        [(i, ra, dec) for i, (ra, dec) in enumerate([position, *FIXED])],
    )
    found = rows(
        engines[backend],
        "SELECT u.id, o.obs_publisher_did FROM TAP_UPLOAD.pos AS u JOIN ivoa.obscore AS o "
        "ON CONTAINS(POINT('ICRS', u.ra, u.dec), o.s_region) = 1",
        uploads={"pos": upload},
    )
    cat = catalogues[backend]
    expected = sum(len(cat.planes_containing(ra, dec)) for _, ra, dec in upload.rows)
    assert len(found) == expected > 0
    assert rows(engines[backend], "SELECT * FROM TAP_UPLOAD.pos", uploads={"pos": upload}) == [
        tuple(r) for r in upload.rows
    ]


# --- errors and safety ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "adql, where, words",
    [
        ("SELECT * FROM nowhere", (1, 15), ["unknown table", "ivoa.obscore"]),
        ("SELECT nope FROM caom.plane", (1, 8), ["unknown column", "planeid"]),
        ("SELECT my_undefined_function(1) FROM caom.plane", (1, 8), ["my_undefined_function"]),
        ("SELECT obsid FROM caom.plane, caom.observation", (1, 8), ["ambiguous"]),
        ("SELECT * FROM obscore", (1, 15), ["ambiguous"]),
        ("SELECT\n  p.nope FROM caom.plane p", (2, 3), ["unknown column", "poly"]),
        ("SELECT POINT('GALACTIC', 1, 2) FROM caom.plane", (1, 8), ["GALACTIC"]),
        ("SELECT IN_UNIT(s_ra, 'm') FROM ivoa.obscore", (1, 8), ["cannot be converted"]),
        ("SELECT * FROM archive.plane", (1, 15), ["unknown table"]),
        ("DUFF QUERY", (1, 1), []),
    ],
)
def test_errors_have_positions(engines, adql, where, words):
    for engine in engines.values():
        with pytest.raises(AdqlError) as error:
            engine.run(adql)
        assert (error.value.line, error.value.column) == where
        for word in words:
            assert word in error.value.message


INJECTIONS = [
    "SELECT * FROM caom.plane; DROP TABLE archive_plane",
    "SELECT * FROM caom.plane /* */ ; DELETE FROM archive_plane",
    "SELECT pg_sleep(10) FROM caom.plane",
    "SELECT pg_read_file('/etc/passwd') FROM caom.plane",
    "SELECT load_extension('x') FROM caom.plane",
    "ATTACH DATABASE 'x' AS y",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM archive_plane",
    "SELECT * FROM archive.plane",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM pg_catalog.pg_user",
    'SELECT * FROM "spherex__plane"',
    'SELECT "_footprint" FROM caom.plane',
    "SELECT * FROM caom.plane WHERE obsid = 1; SELECT 1",
]


@pytest.fixture
def spies(engines):
    """Every SQL statement the engines send, checked against the whitelist afterwards."""
    sent: list[str] = []
    for engine in engines.values():
        original = engine.catalogue.query

        def spy(sql, params=(), _original=original, **kw):
            sent.append(sql)
            return _original(sql, params, **kw)

        engine.catalogue.query = spy
    yield sent
    for engine in engines.values():
        del engine.catalogue.query


# Every name followed by "(" that the translator may write (functions and keywords).
ALLOWED_CALLS = frozenset(
    """
    abs acos asin atan atan2 cos cot sin tan ceiling floor degrees radians exp ln log10 power
    sqrt pi random round trunc lower upper coalesce count min max sum avg cast spoint scircle
    datetime substr sx_rand sx_truncate sx_distance sx_contains_radec
    sx_intersects_circle sx_intersects_circle_radec sx_intersects_polygon sx_intersects_records
    sx_within_circle sx_within_polygon sx_contains_circle sx_contains_polygon
    sx_polygon_contains_radec in exists values where select from join on and or not as
    """.split()  # noqa: SIM905
)


def check_whitelisted(sql: str) -> None:
    import re

    assert ";" not in sql and "--" not in sql and "/*" not in sql
    quoted = re.sub(r"'[^']*'", "''", sql)
    for name in re.findall(r"([A-Za-z_][A-Za-z_0-9]*)\s*\(", quoted):
        assert name.lower() in ALLOWED_CALLS, (name, sql)
    for table in re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z_0-9.]*)", quoted):
        assert table.split(".")[0].lower() not in {"archive", "pg_catalog", "information_schema"}
        assert not table.startswith(("archive_", "sqlite_")) or table == "archive_footprint"


@pytest.mark.parametrize("adql", INJECTIONS)
def test_injections_never_reach_the_database(engines, spies, adql):
    for engine in engines.values():
        with pytest.raises(AdqlError):
            engine.run(adql)
    assert spies == []


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=80), st.binary(max_size=60).map(lambda b: b.decode("latin-1"))))
def test_random_text_fails_cleanly(engines, text):
    for engine in engines.values():
        with contextlib.suppress(AdqlError, QueryTimeout):
            list(engine.run(text).rows)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(strategies.queries)
def test_random_trees_fail_cleanly(engines, spies, query):
    for engine in engines.values():
        with contextlib.suppress(AdqlError, QueryTimeout):
            list(engine.run(to_adql(query), maxrec=5).rows)
    for sql in spies:
        check_whitelisted(sql)


def test_every_executed_sql_is_whitelisted(engines, spies, position):
    ra, dec = position
    for adql in (
        f"SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT({ra}, {dec}), s_region) = 1",
        "SELECT obs_id FROM ivoa.obscore WHERE obs_id LIKE '%'';DROP TABLE x;--%'",
        "SELECT 'a;--' || obs_id FROM ivoa.obscore",
        "SELECT * FROM caom.plane -- ; DROP TABLE x",
    ):
        for engine in engines.values():
            list(engine.run(adql).rows)
    assert spies
    for sql in spies:
        check_whitelisted(sql)


def test_translation_is_fast(engines):
    engine = engines["sqlite"]
    query = parse(
        "SELECT a.uri, p.time_bounds_lower FROM spherex.artifact a JOIN spherex.plane p "
        "ON a.planeid = p.planeid WHERE 1 = CONTAINS(POINT('ICRS', 10.68, 41.27), p.poly) "
        "AND p.energy_bandpassname IN ('SPHEREx-D1', 'SPHEREx-D2') ORDER BY p.time_bounds_lower"
    )
    from spherex_archive.adql.translate import translate

    for engine in engines.values():
        start = time.perf_counter()
        for _ in range(200):
            translate(query, engine.catalogue.dialect)
        assert (time.perf_counter() - start) / 200 < 0.002
