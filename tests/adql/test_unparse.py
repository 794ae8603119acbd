import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spherex_archive.adql import parse, to_adql
from spherex_archive.adql import tree as t

from .strategies import conditions, queries, values


def _select(value: t.Node, condition: t.Node) -> t.Query:
    table = t.Table(t.TableName(t.Identifier("t")))
    return t.Query(t.Select((t.SelectColumn(value),), (table,), where=condition))


# Generating trees costs Hypothesis far more than parsing them: many small expressions and
# fewer whole queries keep this to seconds. Hypothesis also warns that the reprs of these
# mutually recursive strategies, which it builds once while validating them, are long.
LONG_REPR = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@LONG_REPR
@given(st.builds(_select, values, conditions))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_expressions_survive_a_round_trip(query):
    assert parse(to_adql(query)) == query


@LONG_REPR
@given(queries)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_queries_survive_a_round_trip(query):
    assert parse(to_adql(query)) == query


@pytest.mark.parametrize(
    ("query", "text"),
    [
        (
            "select top 5 ra, dec from ivoa.obscore where s_ra > 10",
            "SELECT TOP 5 ra, dec FROM ivoa.obscore WHERE s_ra > 10",
        ),
        (
            "SELECT * FROM t WHERE CONTAINS(POINT('ICRS',ra,dec),CIRCLE('ICRS',1,2,0.5))=1",
            "SELECT * FROM t WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 0.5)) = 1",
        ),
        ("SELECT (a + b) * c, a - (b - c), -(-a) FROM t", None),
        ("SELECT a FROM t WHERE (a = 1 OR b = 2) AND NOT (c = 3 AND d = 4)", None),
        ('SELECT "a ""q""" AS "X", \'it\'\'s\' FROM "s p".t', None),
        ("SELECT a FROM x UNION (SELECT a FROM y UNION SELECT a FROM z)", None),
        ("(SELECT TOP 1 a FROM x ORDER BY a) UNION SELECT a FROM y ORDER BY a OFFSET 2", None),
        ("SELECT * FROM a JOIN (b NATURAL JOIN c) ON a.x = b.x CROSS JOIN d", None),
        ("SELECT * FROM (a LEFT OUTER JOIN b USING (k)) AS ab", None),
        ("WITH q AS (SELECT a FROM t) SELECT COUNT(DISTINCT a) FROM q", None),
        ("SELECT CIRCLE(NULL, 'a', 2, 3), POLYGON(NULL, NULL, 1, 2, 3, 4, 5) FROM t", None),
        ("SELECT a FROM t WHERE a IN ((SELECT b FROM u)) AND a IN (SELECT b FROM u)", None),
    ],
)
def test_to_adql(query, text):
    written = to_adql(parse(query))
    assert written == (text or query)
    assert parse(written) == parse(query)


def test_any_node_can_be_written():
    assert to_adql(parse("SELECT a + 1 AS b FROM t").body.columns[0]) == "a + 1 AS b"
    assert to_adql(t.Point("ICRS", t.NumberLiteral("1", 1), t.NumberLiteral("2", 2))) == (
        "POINT('ICRS', 1, 2)"
    )


def test_names_that_cannot_be_regular_identifiers_are_refused():
    with pytest.raises(ValueError, match="delimit"):
        to_adql(t.ColumnRef(t.Identifier("size")))
    with pytest.raises(ValueError, match="delimit"):
        to_adql(t.ColumnRef(t.Identifier("two words")))
    assert to_adql(t.ColumnRef(t.Identifier("size", delimited=True))) == '"size"'
