"""Hypothesis strategies for random, valid ADQL syntax trees.

Trees are built the way the parser would build them (e.g. a CIRCLE given by coordinates has a
frame-less Point as its centre), so that parse(to_adql(tree)) == tree is the property to check.
Nested parts draw from the enclosing recursion (``inner``) rather than from the top-level
strategies, which keeps every tree small.
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from spherex_archive.adql import tree as t
from spherex_archive.adql.keywords import FUNCTION_ARITY, RESERVED_WORDS

ASCII = st.characters(min_codepoint=32, max_codepoint=126)
TEXT = st.text(st.one_of(ASCII, st.sampled_from("\n\té")), max_size=8)
COMPARISONS = st.sampled_from(["=", "<>", "<", ">", "<=", ">="])


def _sized(element: st.SearchStrategy, low: int, high: int) -> st.SearchStrategy[tuple]:
    return st.lists(element, min_size=low, max_size=high).map(tuple)


def _number(text: str) -> t.NumberLiteral:
    if text.startswith("0x"):
        return t.NumberLiteral(text, int(text, 16))
    return t.NumberLiteral(text, int(text) if text.isdigit() else float(text))


LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
regular_names = st.builds(
    str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + "0123456789_", max_size=6)
).filter(lambda name: name.upper() not in RESERVED_WORDS)
identifiers = st.builds(t.Identifier, regular_names) | st.builds(
    t.Identifier, st.text(ASCII, min_size=1, max_size=8), st.just(True)
)
table_names = st.builds(t.TableName, identifiers, st.none() | identifiers) | st.builds(
    t.TableName, identifiers, identifiers, identifiers
)
columns = st.builds(t.ColumnRef, identifiers, st.none() | table_names)
numbers = st.one_of(
    st.integers(0, 10**12).map(str),
    st.floats(0, 1e20, allow_nan=False, allow_infinity=False).map(repr),
    st.integers(0, 2**40).map(hex),
).map(_number)
literals = st.one_of(numbers, st.builds(t.StringLiteral, TEXT), st.just(t.NullLiteral()))
frames = st.none() | st.sampled_from(["ICRS", ""]) | TEXT

# Subqueries inside expressions stay flat: a select list of plain columns and literals.
simple_selects = st.builds(
    t.Select,
    _sized(st.builds(t.Star, st.none() | table_names) | st.builds(t.SelectColumn, literals), 1, 2),
    _sized(st.builds(t.Table, table_names), 1, 2),
)


def _geometries(scalars: st.SearchStrategy) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    """(point-valued expressions, all geometry expressions) over the given scalars."""
    bare_points = st.builds(t.Point, st.none(), scalars, scalars)
    points = bare_points | st.builds(t.Point, frames, scalars, scalars)
    centroids = st.builds(
        t.GeometryFunction, st.just("CENTROID"), columns | st.builds(t.Region, TEXT)
    )
    # Anything that may stand for a point: a point, a centroid or a column holding one.
    point_values = points | columns | centroids
    geometries = st.one_of(
        points,
        st.builds(t.Circle, frames, point_values, scalars),
        st.builds(t.Box, frames, point_values, scalars, scalars),
        st.builds(t.Polygon, frames, _sized(bare_points, 3, 5)),
        # Six or more bare columns would read as coordinate pairs: ADQL cannot say otherwise.
        st.builds(t.Polygon, frames, _sized(point_values, 3, 5)),
        st.builds(t.Region, TEXT),
        centroids,
    )
    return point_values, geometries


def _function(name: str, scalars: st.SearchStrategy, values: st.SearchStrategy):
    low, high = FUNCTION_ARITY[name]
    args = values if name == "COALESCE" else scalars
    return st.builds(t.Function, st.just(name), _sized(args, low, 3 if high is None else high))


def _compound_scalars(inner: st.SearchStrategy) -> st.SearchStrategy:
    point_values, geometries = _geometries(inner)
    values = inner | geometries
    whens = _sized(
        st.builds(t.WhenClause, st.builds(t.Comparison, COMPARISONS, inner, inner), values), 1, 2
    )
    aggregate_names = st.sampled_from(["AVG", "MAX", "MIN", "SUM", "COUNT"])
    return st.one_of(
        st.builds(t.UnaryOp, st.sampled_from("-+~"), inner),
        st.builds(
            t.BinaryOp, st.sampled_from(["+", "-", "*", "/", "||", "&", "|", "^"]), inner, inner
        ),
        st.one_of([_function(name, inner, values) for name in sorted(FUNCTION_ARITY)]),
        st.builds(t.UserFunction, regular_names, _sized(values, 0, 2)),
        st.builds(t.InUnit, inner, TEXT),
        st.builds(t.Contains, geometries, geometries),
        st.builds(t.Intersects, geometries | columns, geometries),
        st.builds(t.Distance, point_values, point_values),
        st.builds(
            t.GeometryFunction,
            st.sampled_from(["AREA", "COORD1", "COORD2", "COORDSYS"]),
            geometries,
        ),
        st.builds(t.Aggregate, aggregate_names, values, st.booleans()),
        st.just(t.Aggregate("COUNT", None)),
        st.builds(
            t.Cast,
            values,
            st.sampled_from(["SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE PRECISION"]),
        ),
        st.builds(t.Cast, values, st.sampled_from(["TIMESTAMP", "POINT", "CIRCLE", "POLYGON"])),
        st.builds(
            t.Cast, values, st.sampled_from(["CHAR", "VARCHAR"]), st.none() | st.integers(1, 99)
        ),
        st.builds(t.Case, st.none(), whens, st.none() | values),
        st.builds(
            t.Case,
            inner,
            _sized(st.builds(t.WhenClause, values, values), 1, 2),
            st.none() | values,
        ),
        st.builds(t.ScalarSubquery, simple_selects),
    )


scalars = st.recursive(literals | columns, _compound_scalars, max_leaves=3)
point_values, geometries = _geometries(scalars)
values = scalars | geometries

conditions = st.recursive(
    st.one_of(
        st.builds(t.Comparison, COMPARISONS, values, values),
        st.builds(t.Between, values, values, values, st.booleans()),
        st.builds(t.Like, scalars, scalars, st.booleans(), st.booleans()),
        st.builds(t.InList, values, _sized(values, 1, 3), st.booleans()),
        st.builds(t.InSubquery, values, simple_selects, st.booleans()),
        st.builds(t.IsNull, values, st.booleans()),
        st.builds(t.Exists, simple_selects),
    ),
    lambda inner: st.one_of(
        st.builds(t.And, inner, inner), st.builds(t.Or, inner, inner), st.builds(t.Not, inner)
    ),
    max_leaves=2,
)

# ---- queries

select_items = st.builds(t.Star, st.none() | table_names) | st.builds(
    t.SelectColumn, values, st.none() | identifiers
)
order_items = st.builds(t.OrderItem, values, st.booleans())
tables = st.builds(t.Table, table_names, st.none() | identifiers)
derived_tables = st.builds(t.DerivedTable, simple_selects, identifiers)


def _joins(refs: st.SearchStrategy) -> st.SearchStrategy[t.Join]:
    kinds = st.sampled_from(["INNER", "LEFT", "RIGHT", "FULL"])
    aliases = st.none() | identifiers
    return st.one_of(
        st.builds(t.Join, kinds, refs, refs, st.just(True), alias=aliases),
        st.builds(t.Join, st.just("CROSS"), refs, refs, alias=aliases),
        st.builds(t.Join, kinds, refs, refs, on=conditions, alias=aliases),
        st.builds(t.Join, kinds, refs, refs, using=_sized(identifiers, 1, 2), alias=aliases),
    )


table_refs = st.recursive(tables | derived_tables, _joins, max_leaves=3)
selects = st.builds(
    t.Select,
    _sized(select_items, 1, 2),
    _sized(table_refs, 1, 2),
    distinct=st.booleans(),
    top=st.none() | st.integers(0, 1000),
    where=st.none() | conditions,
    group_by=_sized(values, 0, 1),
    having=st.none() | conditions,
    order_by=_sized(order_items, 0, 1),
    offset=st.none() | st.integers(0, 100),
)


def _with_order_or_offset(query: t.QueryExpr) -> t.QueryExpr:
    """The query, given an OFFSET if it lacks what makes parentheses around it meaningful (the
    parser merges the others into the inner query)."""
    if query.order_by or query.offset is not None or getattr(query, "top", None) is not None:
        return query
    return dataclasses.replace(query, offset=0)


query_exprs = st.recursive(
    selects,
    lambda inner: st.one_of(
        st.builds(
            t.SetOperation,
            st.sampled_from(["UNION", "EXCEPT", "INTERSECT"]),
            inner,
            inner,
            all=st.booleans(),
            order_by=_sized(order_items, 0, 1),
            offset=st.none() | st.integers(0, 9),
        ),
        st.builds(
            t.ParenthesizedQuery,
            inner.map(_with_order_or_offset),
            _sized(order_items, 1, 2),
            st.none() | st.integers(0, 9),
        ),
    ),
    max_leaves=3,
)
queries = st.builds(
    t.Query, query_exprs, _sized(st.builds(t.CommonTableExpr, identifiers, simple_selects), 0, 2)
)
