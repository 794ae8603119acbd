import re
import time
from pathlib import Path

import pytest

from spherex_archive import adql
from spherex_archive.adql import AdqlSyntaxError, parse
from spherex_archive.adql import tree as t
from spherex_archive.adql.keywords import RESERVED_WORDS


def ident(name: str, delimited: bool = False) -> t.Identifier:
    return t.Identifier(name, delimited)


def col(name: str, table: str | None = None) -> t.ColumnRef:
    return t.ColumnRef(ident(name), None if table is None else t.TableName(ident(table)))


def num(text: str) -> t.NumberLiteral:
    return t.NumberLiteral(text, int(text) if text.isdigit() else float(text))


def select_of(query: str) -> t.Select:
    body = parse(query).body
    assert isinstance(body, t.Select)
    return body


def expr(text: str) -> t.Node:
    """The tree of one select-list expression."""
    return select_of(f"SELECT {text} FROM t").columns[0].expr


def where(text: str) -> t.Node:
    return select_of(f"SELECT * FROM t WHERE {text}").where


# ---- query structure


def test_a_simple_query_as_a_whole_tree():
    query = parse("select top 5 ra, dec as d from ivoa.obscore where s_ra > 10 order by 2 desc")
    assert query == t.Query(
        t.Select(
            columns=(t.SelectColumn(col("ra")), t.SelectColumn(col("dec"), ident("d"))),
            from_=(t.Table(t.TableName(ident("obscore"), ident("ivoa"))),),
            top=5,
            where=t.Comparison(">", col("s_ra"), num("10")),
            order_by=(t.OrderItem(num("2"), descending=True),),
        )
    )


def test_positions_are_line_column_and_offset():
    query = parse("SELECT a,\n  b  FROM t")
    select = query.body
    assert select.pos == t.Position(1, 1, 0)
    assert select.columns[1].expr.pos == t.Position(2, 3, 12)
    assert select.from_[0].pos == t.Position(2, 11, 20)


def test_positions_count_lines_inside_strings_and_comments():
    select = select_of("SELECT 'a\nb', -- c\n  d FROM t")
    assert select.columns[1].expr.pos == t.Position(3, 3, 21)


def test_positions_do_not_take_part_in_equality():
    assert parse("SELECT a FROM t") == parse("select\n\n   a   from    t -- c")
    assert hash(parse("SELECT a FROM t")) == hash(parse("SELECT  a FROM  t"))


def test_keywords_are_case_insensitive_and_names_keep_their_spelling():
    select = select_of('sElEcT DiStInCt Ra, "Dec" FrOm IVOA.ObsCore')
    assert select.distinct
    assert select.columns[0].expr == col("Ra")
    assert select.columns[1].expr == t.ColumnRef(ident("Dec", delimited=True))
    assert select.from_[0].name == t.TableName(ident("ObsCore"), ident("IVOA"))


def test_select_list_stars_and_aliases():
    select = select_of('SELECT *, t.*, s.t.*, a AS x, b y, c "Z z" FROM s.t')
    star, t_star, st_star, x, y, z = select.columns
    assert star == t.Star()
    assert t_star == t.Star(t.TableName(ident("t")))
    assert st_star == t.Star(t.TableName(ident("t"), ident("s")))
    assert [c.alias for c in (x, y, z)] == [ident("x"), ident("y"), ident("Z z", True)]


def test_group_by_having_order_by_offset():
    select = select_of(
        "SELECT type, COUNT(*) FROM stars GROUP BY type HAVING AVG(e) > 0.001 "
        "ORDER BY 2 DESC, type ASC, log10(z + 1) OFFSET 20"
    )
    assert select.group_by == (col("type"),)
    assert select.having == t.Comparison(">", t.Aggregate("AVG", col("e")), num("0.001"))
    assert [(o.expr, o.descending) for o in select.order_by[:2]] == [
        (num("2"), True),
        (col("type"), False),
    ]
    assert isinstance(select.order_by[2].expr, t.Function)
    assert select.offset == 20


def test_set_operations_bind_intersect_tighter_and_keep_all():
    body = parse("SELECT a FROM x UNION ALL SELECT a FROM y INTERSECT SELECT a FROM z").body
    assert body.op == "UNION" and body.all
    assert body.right.op == "INTERSECT" and not body.right.all
    body = parse("(SELECT a FROM x UNION SELECT a FROM y) EXCEPT SELECT a FROM z").body
    assert body.op == "EXCEPT" and body.left.op == "UNION"


def test_order_by_after_a_set_operation_orders_the_whole():
    body = parse("SELECT TOP 3 a FROM x UNION SELECT a FROM y ORDER BY a OFFSET 1").body
    assert isinstance(body, t.SetOperation)
    assert body.order_by == (t.OrderItem(col("a")),) and body.offset == 1
    assert body.left.top == 3 and body.right.order_by == ()


def test_parentheses_around_a_query_only_stay_where_they_change_its_meaning():
    assert parse("(SELECT a FROM t) ORDER BY a") == parse("SELECT a FROM t ORDER BY a")
    body = parse("(SELECT TOP 5 a FROM t) ORDER BY a").body
    assert isinstance(body, t.ParenthesizedQuery)
    assert body.query.top == 5 and body.order_by == (t.OrderItem(col("a")),)


def test_common_table_expressions():
    query = parse("WITH a AS (SELECT x FROM t), b AS (SELECT * FROM a) SELECT * FROM b")
    assert [cte.name for cte in query.ctes] == [ident("a"), ident("b")]
    assert query.ctes[0].query == select_of("SELECT x FROM t")


# ---- FROM


def test_table_names_up_to_catalog_and_delimited():
    table = select_of('SELECT * FROM "My Cat".sch."Tab" AS q').from_[0]
    assert table == t.Table(
        t.TableName(ident("Tab", True), ident("sch"), ident("My Cat", True)), ident("q")
    )


@pytest.mark.parametrize(
    ("text", "kind", "natural"),
    [
        ("JOIN", "INNER", False),
        ("INNER JOIN", "INNER", False),
        ("LEFT JOIN", "LEFT", False),
        ("LEFT OUTER JOIN", "LEFT", False),
        ("RIGHT OUTER JOIN", "RIGHT", False),
        ("FULL JOIN", "FULL", False),
        ("NATURAL JOIN", "INNER", True),
        ("NATURAL LEFT OUTER JOIN", "LEFT", True),
        ("CROSS JOIN", "CROSS", False),
    ],
)
def test_join_kinds(text, kind, natural):
    condition = "" if natural or kind == "CROSS" else " USING (id)"
    join = select_of(f"SELECT * FROM a {text} b{condition}").from_[0]
    assert (join.kind, join.natural) == (kind, natural)
    assert join.using == (None if condition == "" else (ident("id"),))


def test_joins_are_left_associative_and_take_on_conditions():
    join = select_of("SELECT * FROM a JOIN b ON a.x = b.x LEFT JOIN c USING (y, z)").from_[0]
    assert join.kind == "LEFT" and join.using == (ident("y"), ident("z"))
    assert join.left.on == t.Comparison("=", col("x", "a"), col("x", "b"))


def test_subqueries_and_parenthesized_joins_in_from():
    first, second = select_of("SELECT * FROM (SELECT a FROM t) q, (x JOIN y USING (k)) AS xy").from_
    assert first == t.DerivedTable(select_of("SELECT a FROM t"), ident("q"))
    assert second.kind == "INNER" and second.alias == ident("xy")


# ---- expressions


def test_literals():
    assert expr("42") == t.NumberLiteral("42", 42)
    assert expr("3.14") == t.NumberLiteral("3.14", 3.14)
    assert expr("2.777777777777778e-05") == t.NumberLiteral(
        "2.777777777777778e-05", 2.777777777777778e-05
    )
    assert expr("10E3").value == 10000.0
    assert expr(".5").value == 0.5
    assert expr("0xFF") == t.NumberLiteral("0xFF", 255)
    assert expr("'it''s'") == t.StringLiteral("it's")
    assert expr("'ab' -- comment\n 'cd'") == t.StringLiteral("abcd")
    assert expr("NULL") == t.NullLiteral()


def test_arithmetic_precedence_and_unary_minus():
    assert expr("1 + 2 * 3") == t.BinaryOp("+", num("1"), t.BinaryOp("*", num("2"), num("3")))
    assert expr("(1 + 2) * 3") == t.BinaryOp("*", t.BinaryOp("+", num("1"), num("2")), num("3"))
    assert expr("a - -b") == t.BinaryOp("-", col("a"), t.UnaryOp("-", col("b")))
    assert expr("-2") == t.UnaryOp("-", num("2"))


def test_concatenation_and_bitwise_operators():
    assert expr("'Star/' || type") == t.BinaryOp("||", t.StringLiteral("Star/"), col("type"))
    # || & | ^ share one level, below + and -, left to right (as in PostgreSQL).
    assert expr("a & b | c ^ d + 1") == t.BinaryOp(
        "^",
        t.BinaryOp("|", t.BinaryOp("&", col("a"), col("b")), col("c")),
        t.BinaryOp("+", col("d"), num("1")),
    )
    assert expr("~flags") == t.UnaryOp("~", col("flags"))


def test_predicates():
    assert where("ra NOT BETWEEN -10 AND 10") == t.Between(
        col("ra"), t.UnaryOp("-", num("10")), num("10"), negated=True
    )
    assert where("name ILIKE 'NgC %'") == t.Like(
        col("name"), t.StringLiteral("NgC %"), case_insensitive=True
    )
    assert where("name NOT LIKE 'a%'").negated
    assert where("x NOT IN (1, 'a')") == t.InList(
        col("x"), (num("1"), t.StringLiteral("a")), negated=True
    )
    assert where("x IN (SELECT y FROM u)") == t.InSubquery(col("x"), select_of("SELECT y FROM u"))
    assert where("x IS NOT NULL") == t.IsNull(col("x"), negated=True)
    assert where("EXISTS (SELECT * FROM u)") == t.Exists(select_of("SELECT * FROM u"))
    assert where("x != 1") == t.Comparison("<>", col("x"), num("1"))


def test_and_binds_tighter_than_or_and_not_tighter_than_and():
    a, b, c = (t.Comparison("=", col(n), num("1")) for n in "abc")
    assert where("a = 1 OR b = 1 AND NOT c = 1") == t.Or(a, t.And(b, t.Not(c)))
    assert where("(a = 1 OR b = 1) AND c = 1") == t.And(t.Or(a, b), c)


def test_case_expressions():
    searched = expr("CASE WHEN a > 1 THEN 'big' ELSE 'small' END")
    assert searched == t.Case(
        None,
        (t.WhenClause(t.Comparison(">", col("a"), num("1")), t.StringLiteral("big")),),
        t.StringLiteral("small"),
    )
    simple = expr("CASE b WHEN 1 THEN 'one' WHEN 2 THEN 'two' END")
    assert simple.operand == col("b") and len(simple.whens) == 2 and simple.else_ is None


def test_functions():
    assert expr("truncate(x, -2)") == t.Function("TRUNCATE", (col("x"), t.UnaryOp("-", num("2"))))
    assert expr("PI()") == t.Function("PI", ())
    assert expr("atan2(y, x)").name == "ATAN2"
    assert expr("LOWER(name)") == t.Function("LOWER", (col("name"),))
    assert expr("COALESCE(a, b, 'x')").args[2] == t.StringLiteral("x")
    assert expr("ivo_healpix_index(6, ra, dec)") == t.UserFunction(
        "ivo_healpix_index", (num("6"), col("ra"), col("dec"))
    )
    assert expr("IN_UNIT(ra, 'rad')") == t.InUnit(col("ra"), "rad")


def test_aggregates():
    assert expr("COUNT(*)") == t.Aggregate("COUNT", None)
    assert expr("count(DISTINCT name)") == t.Aggregate("COUNT", col("name"), distinct=True)
    assert expr("count(distinct(x.y))") == t.Aggregate("COUNT", col("y", "x"), distinct=True)
    assert expr("max(2 * mag)").name == "MAX"


@pytest.mark.parametrize(
    ("text", "type_", "length"),
    [
        ("SMALLINT", "SMALLINT", None),
        ("BigInt", "BIGINT", None),
        ("Double Precision", "DOUBLE PRECISION", None),
        ("VARCHAR(30)", "VARCHAR", 30),
        ("char", "CHAR", None),
        ("TIMESTAMP", "TIMESTAMP", None),
        ("POINT", "POINT", None),
    ],
)
def test_cast(text, type_, length):
    assert expr(f"CAST(x AS {text})") == t.Cast(col("x"), type_, length)


def test_scalar_subquery():
    assert expr("(SELECT MAX(a) FROM u) + 1").left == t.ScalarSubquery(
        select_of("SELECT MAX(a) FROM u")
    )


# ---- geometry


def test_point_with_and_without_frame():
    assert expr("POINT('ICRS', ra, dec)") == t.Point("ICRS", col("ra"), col("dec"))
    assert expr("point(ra, dec)") == t.Point(None, col("ra"), col("dec"))
    assert expr("POINT(NULL, 2, 3)") == t.Point(None, num("2"), num("3"))


def test_circle_forms_mean_the_same():
    by_coordinates = expr("CIRCLE('ICRS', 10.5, -2, 0.1)")
    assert by_coordinates == t.Circle(
        "ICRS", t.Point(None, num("10.5"), t.UnaryOp("-", num("2"))), num("0.1")
    )
    assert expr("CIRCLE('ICRS', POINT(10.5, -2), 0.1)") == by_coordinates
    assert expr("CIRCLE(p, 1)") == t.Circle(None, col("p"), num("1"))
    assert expr("CIRCLE(10, 20, 1)").center == t.Point(None, num("10"), num("20"))


def test_box_polygon_region():
    assert expr("BOX('ICRS', 1, 2, 3, 4)") == t.Box(
        "ICRS", t.Point(None, num("1"), num("2")), num("3"), num("4")
    )
    polygon = expr("POLYGON('', 0,80, 270,80, 180,80)")
    assert polygon.coord_sys == "" and len(polygon.vertices) == 3
    assert polygon.vertices[1] == t.Point(None, num("270"), num("80"))
    assert expr("POLYGON(p1, p2, p3)").vertices == (col("p1"), col("p2"), col("p3"))
    assert expr("REGION('Circle FK4 10 10 1')") == t.Region("Circle FK4 10 10 1")


def test_geometry_predicates_and_measures():
    assert where("CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3)) = 1").left == (
        t.Contains(t.Point("ICRS", col("ra"), col("dec")), expr("CIRCLE('ICRS', 1, 2, 3)"))
    )
    assert isinstance(where("1 = INTERSECTS(s_region, c)").right, t.Intersects)
    assert expr("DISTANCE(1, 2, 3, 4)") == t.Distance(
        t.Point(None, num("1"), num("2")), t.Point(None, num("3"), num("4"))
    )
    assert expr("DISTANCE(p, POINT(1, 2))").left == col("p")
    for name in ("AREA", "CENTROID", "COORD1", "COORD2", "COORDSYS"):
        assert expr(f"{name}(p)") == t.GeometryFunction(name, col("p"))


# ---- lexical details


def test_comments_and_whitespace():
    assert parse("-- opening\nselect -- a\n\tx --b\nfrom--c\ny") == parse("SELECT x FROM y")
    assert parse("select all(a+b)X from most") == parse("SELECT ALL (a + b) AS X FROM most")
    assert parse("select top 4* from t order   by x asc, 2desc").body.top == 4


def test_a_keyword_prefix_is_still_a_name():
    assert where("a BETWEEN(b+and7)AND 4").low == t.BinaryOp("+", col("b"), col("and7"))


def test_delimited_identifiers_may_hold_anything_but_are_not_keywords():
    assert expr('"some ""weird"" column"') == t.ColumnRef(ident('some "weird" column', True))
    assert expr('"SELECT"') == t.ColumnRef(ident("SELECT", True))


def test_every_keyword_of_the_grammar_is_a_reserved_word():
    # to_adql relies on it: a regular identifier that is not reserved never reads as a keyword.
    grammar = (Path(adql.__file__).parent / "grammar.lark").read_text()
    keywords = re.findall(r'^_?([A-Z0-9_]+): "\w+"i$', grammar, flags=re.MULTILINE)
    assert len(keywords) > 90
    assert set(keywords) <= RESERVED_WORDS


# ---- errors


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "SELECT FROM stars",
            "line 1, column 8: expected a column, an expression, '*', DISTINCT, ALL or TOP "
            "after SELECT, found FROM",
        ),
        (
            "SELECT a\nFROM t\nWHERE",
            "line 3, column 6: expected a column or an expression after WHERE, found the end "
            "of the query",
        ),
        (
            "SELECT size FROM t",
            'line 1, column 8: size is a reserved word; write it in double quotes ("size") to '
            "use it as a name",
        ),
        (
            "SELECT distance FROM stars",
            "line 1, column 17: expected '(' after DISTANCE, found FROM (DISTANCE is a "
            'function; write "distance" to use it as a name)',
        ),
        (
            "select x from y where Point('fk5',2,3)",
            "line 1, column 23: expected a condition (a comparison, BETWEEN, LIKE, IN, IS NULL "
            "or EXISTS) after WHERE, found the value POINT('fk5', 2, 3)",
        ),
        (
            "SELECT * FROM (SELECT * FROM x)",
            "line 1, column 32: expected AS or a name after ')', found the end of the query "
            "(a subquery in FROM needs a name: (SELECT ...) AS name)",
        ),
    ],
)
def test_error_messages(query, message):
    with pytest.raises(AdqlSyntaxError) as error:
        parse(query)
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    ("query", "line", "column", "fragment"),
    [
        ("SELECT _x FROM t", 1, 8, "must start with a letter"),
        ("SELECT 'abc FROM t", 1, 8, "never closed"),
        ('SELECT a AS "x FROM t', 1, 13, "never closed"),
        ("SELECT a FROM t;", 1, 16, "semicolon"),
        ("SELECT TOP -10 a FROM t", 1, 12, "expected a number after TOP, found '-'"),
        ("SELECT a FROM t OFFSET 10.5", 1, 24, "OFFSET needs a whole number"),
        ("SELECT * FROM t1 INNER JOIN t2", 1, 24, "needs ON <condition> or USING"),
        ("SELECT * FROM t1 NATURAL JOIN t2 USING (a)", 1, 34, "NATURAL join takes no ON"),
        ("SELECT ABS(a, b) FROM t", 1, 8, "ABS takes 1 argument, found 2"),
        ("SELECT COALESCE() FROM t", 1, 8, "COALESCE takes at least 1 argument, found 0"),
        ("SELECT CIRCLE('fk5', 2, 3) FROM t", 1, 22, "expected a point as the centre of CIRCLE"),
        ("SELECT POLYGON('fk5', 2, 3, 3, 0, 23, 0, 45) FROM t", 1, 8, "found 7 coordinates"),
        ("SELECT point('icrs', 3, 4) || 'a' FROM t", 1, 8, "found the geometry POINT"),
        ("SELECT a = 1 FROM t", 1, 8, "expected a value in the select list"),
        ("SELECT a FROM t WHERE NOT a", 1, 27, "after NOT, found the value a"),
        ("SELECT CAST(a AS FLOAT) FROM t", 1, 18, "expected BIGINT, CHAR"),
        ("SELECT x.y.z.a.b FROM t", 1, 8, "at most four parts"),
        ("SELECT a FROM a.b.c.d", 1, 15, "at most three parts"),
        ("SELECT * FROM (WITH a AS (SELECT 1 FROM t) SELECT * FROM a) q", 1, 16, "WITH may"),
        ("SELECT a FROM t WHERE a IN (1, 2,)", 1, 34, "found ')'"),
        ("", 1, 1, "expected SELECT, WITH or '('"),
    ],
)
def test_errors_say_where(query, line, column, fragment):
    with pytest.raises(AdqlSyntaxError) as error:
        parse(query)
    assert (error.value.line, error.value.column) == (line, column)
    assert fragment in error.value.message


def test_an_absurdly_deep_expression_is_still_just_a_syntax_error():
    with pytest.raises(AdqlSyntaxError, match="too deep to show"):
        parse("SELECT a FROM t WHERE " + " + ".join(["a"] * 3000))


def test_parsing_is_fast():
    query = """SELECT TOP 100 obs_publisher_did, s_ra, s_dec, access_url
    FROM ivoa.obscore
    WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10.68, 41.27, 0.1)) = 1"""
    parse(query)  # builds the parser tables once
    start = time.perf_counter()
    for _ in range(100):
        parse(query)
    # About 0.35 ms on a 2020s laptop core; the bound only catches gross regressions.
    assert (time.perf_counter() - start) / 100 < 0.005
