"""ADQL syntax tree -> SQL for one catalogue dialect (SQLite or PostgreSQL with pgsphere).

This is the security boundary between users and the database: every table and column name in
the SQL comes from the model or is generated here (``t1``, ``c1``...), strings reach the database
only as bound parameters, numbers only as Python's own text for parsed values, and only the
functions listed here are ever called. Anything else is an AdqlError naming the place.

Parameters are collected as markers (``\\x00n\\x00``) and numbered at the end, so pieces of SQL can
be reordered or repeated while they are put together.

Geometry: positions and shapes are exact on the sphere (unit vectors, great-circle edges), so
the poles and RA = 0 are ordinary places. Region columns (``s_region``, ``poly``) are tested
through the view's hidden footprint: pgsphere operators on PostgreSQL (GiST index), and on
SQLite the zones index of footprints (declination zones sorted by RA, ``catalogue.zones``)
when the other shape is constant. BOX(ra, dec, w,
h) is the quadrilateral whose edges are straight in the tangent plane at its centre, w wide
along RA and h high along Dec (great-circle edges, like every other polygon here).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np

from spherex_archive.catalogue import spatial, zones
from spherex_archive.catalogue.ddl import Dialect
from spherex_archive.catalogue.sqlite_functions import vertices_blob
from spherex_archive.model import tables as model
from spherex_archive.model.schema import Column, Table

from . import tree as t
from .errors import AdqlError


@dataclass(frozen=True)
class UploadTable:
    """A table uploaded with the query (TAP UPLOAD), reachable as ``TAP_UPLOAD.<name>``."""

    name: str
    columns: list[Column]
    rows: list[tuple]


@dataclass
class Translation:
    sql: str
    params: list
    columns: list[Column]


def translate(
    query: t.Query,
    dialect: Dialect,
    uploads: Mapping[str, UploadTable] | None = None,
    *,
    internal: bool = False,
    zone_index: zones.ZoneIndex | None = None,
) -> Translation:
    """The SQL of ``query`` for ``dialect``, its parameters and its result columns.

    ``internal`` lets the archive's own services (never user queries) read the views' hidden
    columns (:data:`INTERNAL_COLUMNS`), written as delimited identifiers (``"_uri"``).
    ``zone_index`` is the SQLite catalogue's footprint index as it is now: constant regions
    are searched through it (without it, SQLite tests every footprint)."""
    return _Translator(dialect, uploads or {}, internal, zone_index).run(query)


# ---------------------------------------------------------------------------------------------
# Names


def _matches(declared: str, ref: t.Identifier) -> bool:
    """Regular identifiers match case-insensitively, delimited ones exactly."""
    return ref.name == declared if ref.delimited else ref.name.lower() == declared.lower()


def _error(message: str, node: t.Node) -> AdqlError:
    return AdqlError(message, node.pos.line or 1, node.pos.column or 1)


def _quote(name: str) -> str:
    # Only model names and generated names are ever quoted: they never hold a double quote.
    return f'"{name}"'


@dataclass
class _Col:
    name: str
    meta: Column
    sql: str


@dataclass
class _Rel:
    """A FROM item as seen by name resolution."""

    label: str  # correlation name, or the table name
    schema: str | None  # for schema-qualified references (None for aliases and subqueries)
    cols: list[_Col]
    footprint: str | None = None  # SQL of the hidden footprint
    planeid: str | None = None  # SQL of the plane id (the key of the footprint index)
    centre: tuple[str, str] | None = None  # SQL of the indexed image centre (s_ra, s_dec)
    kind: str = "table"
    _by_name: dict[str, list[_Col]] | None = field(default=None, repr=False)

    def find(self, ref: t.Identifier) -> list[_Col]:
        if ref.delimited:
            return [c for c in self.cols if c.name == ref.name]
        if self._by_name is None:  # looked up once per column reference: index the names
            self._by_name = {}
            for c in self.cols:
                self._by_name.setdefault(c.name.lower(), []).append(c)
        return self._by_name.get(ref.name.lower(), [])

    def qualified_by(self, q: t.TableName) -> bool:
        if not _matches(self.label, q.name):
            return False
        if q.schema is None:
            return True
        return self.schema is not None and _matches(self.schema, q.schema)


@dataclass
class _Scope:
    rels: list[_Rel]
    parent: _Scope | None = None
    merged: dict[str, _Col] = field(default_factory=dict)  # USING / NATURAL columns


@dataclass
class _V:
    """A translated value expression: its SQL and what is known of its type."""

    sql: str
    datatype: str
    unit: str | None = None
    col: Column | None = None
    xtype: str | None = None
    text_param: bool = False  # a bare string parameter (its SQL type left to the context)


@dataclass
class _Geo:
    kind: str  # point, circle, polygon, region
    const: tuple | None  # point (ra, dec); circle (ra, dec, r); polygon ((ra, dec), ...)
    sql: tuple[str, ...]  # point (ra, dec); circle (ra, dec, r); region (footprint, planeid)
    node: t.Node
    centre: bool = False  # a point of an image centre's columns, which an index serves


@dataclass
class _Out:
    """A translated query: SQL and result columns (named c1, c2... in the SQL)."""

    sql: str
    columns: list[Column]
    simple: bool  # a plain SELECT without ORDER BY/LIMIT/OFFSET (usable in a compound)


_REGION_XTYPES = ("adql:REGION",)
_INTEGER = {"short", "int", "long", "unsignedByte"}
_NUMERIC = _INTEGER | {"float", "double"}

_SQL_TYPES = {
    "postgresql": {
        "SMALLINT": "SMALLINT",
        "INTEGER": "INTEGER",
        "BIGINT": "BIGINT",
        "REAL": "REAL",
        "DOUBLE PRECISION": "DOUBLE PRECISION",
        "TIMESTAMP": "TIMESTAMP",
        "CHAR": "TEXT",
        "VARCHAR": "TEXT",
    },
    "sqlite": {
        "SMALLINT": "INTEGER",
        "INTEGER": "INTEGER",
        "BIGINT": "INTEGER",
        "REAL": "REAL",
        "DOUBLE PRECISION": "REAL",
        "TIMESTAMP": "TEXT",
        "CHAR": "TEXT",
        "VARCHAR": "TEXT",
    },
}
_CAST_DATATYPE = {
    "SMALLINT": "short",
    "INTEGER": "int",
    "BIGINT": "long",
    "REAL": "float",
    "DOUBLE PRECISION": "double",
    "TIMESTAMP": "char",
    "CHAR": "char",
    "VARCHAR": "char",
}

# Standard functions: ADQL name -> SQL name per dialect (None: written specially below).
_MATH = {
    "ABS": "abs",
    "ACOS": "acos",
    "ASIN": "asin",
    "ATAN": "atan",
    "ATAN2": "atan2",
    "COS": "cos",
    "COT": "cot",
    "SIN": "sin",
    "TAN": "tan",
    "CEILING": "ceiling",
    "FLOOR": "floor",
    "DEGREES": "degrees",
    "RADIANS": "radians",
    "EXP": "exp",
    "LOG": "ln",
    "LOG10": "log10",
    "POWER": "power",
    "SQRT": "sqrt",
    "PI": "pi",
}

_FOOTPRINT_TABLES = {
    "spherex.obscore": ("_footprint", "_planeid"),
    "ivoa.obscore": ("_footprint", "_planeid"),
    "spherex.plane": ("_footprint", "planeid"),
    "caom.plane": ("_footprint", "planeid"),
}
_CENTRE_TABLES = {"spherex.obscore", "ivoa.obscore", "spherex.plane"}
"""Tables whose (s_ra, s_dec) are the plane's, under the centre index (``ddl.py``)."""
_UPLOAD_SCHEMA = "tap_upload"

INTERNAL_COLUMNS = {
    name: (Column("_uri", "char", "Path of the current file under the archive root"),)
    for name in ("spherex.obscore", "ivoa.obscore")
}
"""Hidden view columns the services may select: SIA answers with the file URL, not DataLink."""


def _column(name: str, datatype: str, unit: str | None = None, xtype: str | None = None):
    return Column(name, datatype, "", unit=unit, xtype=xtype)


def _number(value: float | int, node: t.Node) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise _error("number out of range", node)
    return repr(value) if isinstance(value, float) else str(int(value))


# ---------------------------------------------------------------------------------------------


class _Translator:
    def __init__(
        self,
        dialect: Dialect,
        uploads: Mapping[str, UploadTable],
        internal: bool = False,
        zone_index: zones.ZoneIndex | None = None,
    ) -> None:
        self.dialect = dialect
        self.zone_index = zone_index
        self.internal = internal
        self.pg = dialect.name == "postgresql"
        self.uploads = uploads
        self.params: list = []
        self.ctes: list[str] = []  # WITH items, in dependency order
        self.cte_env: list[tuple[t.Identifier, str, list[Column]]] = []
        self.upload_ctes: dict[str, tuple[str, list[Column]]] = {}
        self.counter = 0

    # --- helpers ------------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def param(self, value) -> str:
        self.params.append(value)
        return f"\x00{len(self.params) - 1}\x00"

    def run(self, query: t.Query) -> Translation:
        for cte in query.ctes:
            out = self.query_expr(cte.query, None)
            name = self.fresh("w")
            self.ctes.append(f"{name} AS ({out.sql})")
            self.cte_env.append((cte.name, name, out.columns))
        out = self.query_expr(query.body, None)
        sql = out.sql
        if self.ctes:
            sql = "WITH " + ", ".join(self.ctes) + " " + sql
        params: list = []

        def number(match: re.Match) -> str:
            params.append(self.params[int(match.group(1))])
            return "?"

        sql = re.sub("\x00(\\d+)\x00", number, sql)
        return Translation(sql, params, out.columns)

    # --- queries ------------------------------------------------------------------------------

    def query_expr(self, node: t.QueryExpr, outer: _Scope | None) -> _Out:
        if isinstance(node, t.Select):
            return self.select(node, outer)
        if isinstance(node, t.SetOperation):
            return self.set_operation(node, outer)
        inner = self.query_expr(node.query, outer)
        alias = self.fresh("s")
        names = self.output_names(inner.columns)
        sql = f"SELECT * FROM ({inner.sql}) AS {alias}"
        sql += self.order_by_outputs(node.order_by, inner.columns, names)
        sql += self.limit(None, node.offset)
        return _Out(sql, inner.columns, False)

    def output_names(self, columns: list[Column]) -> list[str]:
        return [f"c{i + 1}" for i in range(len(columns))]

    def operand(self, out: _Out) -> str:
        if out.simple:
            return out.sql
        return f"SELECT * FROM ({out.sql}) AS {self.fresh('s')}"

    def set_operation(self, node: t.SetOperation, outer: _Scope | None) -> _Out:
        left = self.query_expr(node.left, outer)
        right = self.query_expr(node.right, outer)
        if len(left.columns) != len(right.columns):
            raise _error(
                f"the two sides of {node.op} have {len(left.columns)} and {len(right.columns)} "
                f"columns: they must have the same number",
                node,
            )
        if node.all and node.op != "UNION" and not self.pg:
            raise _error(f"{node.op} ALL is not supported by this database; use {node.op}", node)
        op = f"{node.op}{' ALL' if node.all else ''}"
        sql = f"{self.operand(left)} {op} {self.operand(right)}"
        if node.order_by or node.offset is not None:
            alias = self.fresh("s")
            sql = f"SELECT * FROM ({sql}) AS {alias}"
            sql += self.order_by_outputs(
                node.order_by, left.columns, self.output_names(left.columns)
            )
            sql += self.limit(None, node.offset)
            return _Out(sql, left.columns, False)
        return _Out(sql, left.columns, False)

    def order_by_outputs(self, items, columns: list[Column], names: list[str]) -> str:
        """ORDER BY over a query's result: names or positions of its columns only."""
        if not items:
            return ""
        terms = []
        for item in items:
            e = item.expr
            if isinstance(e, t.NumberLiteral) and isinstance(e.value, int):
                if not 1 <= e.value <= len(columns):
                    raise _error(f"ORDER BY {e.value}: there are {len(columns)} columns", e)
                sql = names[e.value - 1]
            elif isinstance(e, t.ColumnRef) and e.table is None:
                found = [n for c, n in zip(columns, names, strict=True) if _matches(c.name, e.name)]
                if len(found) != 1:
                    raise _error(
                        f"ORDER BY {e.name.name}: expected one of the result columns "
                        f"{', '.join(c.name for c in columns)}",
                        e,
                    )
                sql = found[0]
            else:
                raise _error("ORDER BY here takes result column names or positions only", e)
            terms.append(sql + (" DESC" if item.descending else " ASC"))
        return " ORDER BY " + ", ".join(terms)

    def limit(self, top: int | None, offset: int | None) -> str:
        if top is None and offset is None:
            return ""
        sql = (
            f" LIMIT {int(top)}" if top is not None else (" LIMIT ALL" if self.pg else " LIMIT -1")
        )
        if offset is not None:
            sql += f" OFFSET {int(offset)}"
        return sql

    def select(self, node: t.Select, outer: _Scope | None) -> _Out:
        scope = _Scope([], outer)
        froms = [self.table_ref(ref, scope) for ref in node.from_]
        items: list[tuple[str, Column]] = []
        for item in node.columns:
            if isinstance(item, t.Star):
                items += self.star(item, scope)
                continue
            v = self.value(item.expr, scope)
            name = item.alias.name if item.alias else self.default_name(item.expr)
            meta = v.col or _column(name, v.datatype, v.unit, v.xtype)
            items.append((self.text(v), dataclasses.replace(meta, name=name)))
        columns = _unique([m for _, m in items])
        names = self.output_names(columns)
        sql = "SELECT " + ("DISTINCT " if node.distinct else "")
        sql += ", ".join(f"{s} AS {n}" for (s, _), n in zip(items, names, strict=True))
        sql += " FROM " + ", ".join(froms)
        if node.where is not None:
            sql += " WHERE " + self.condition(node.where, scope)
        if node.group_by:
            terms = [self.group_term(e, scope, items) for e in node.group_by]
            sql += " GROUP BY " + ", ".join(terms)
        if node.having is not None:
            sql += " HAVING " + self.condition(node.having, scope)
        if node.order_by:
            terms = []
            for item in node.order_by:
                term = self.order_term(item.expr, scope, items, columns, names)
                terms.append(term + (" DESC" if item.descending else " ASC"))
            sql += " ORDER BY " + ", ".join(terms)
        sql += self.limit(node.top, node.offset)
        simple = not node.order_by and node.top is None and node.offset is None
        return _Out(sql, columns, simple)

    def default_name(self, expr: t.Node) -> str:
        if isinstance(expr, t.ColumnRef):
            return expr.name.name
        for kind, name in (
            (t.Aggregate, lambda e: e.name.lower()),
            (t.Function, lambda e: e.name.lower()),
            (t.GeometryFunction, lambda e: e.name.lower()),
            (t.Point, lambda e: "point"),
            (t.Circle, lambda e: "circle"),
            (t.Polygon, lambda e: "polygon"),
            (t.Box, lambda e: "box"),
            (t.Distance, lambda e: "distance"),
            (t.Contains, lambda e: "contains"),
            (t.Intersects, lambda e: "intersects"),
            (t.InUnit, lambda e: "in_unit"),
            (t.Cast, lambda e: "cast"),
        ):
            if isinstance(expr, kind):
                return name(expr)
        return "expr"

    def group_term(self, e: t.Node, scope: _Scope, items) -> str:
        # A select alias is replaced by its expression: PostgreSQL would read an output name
        # in GROUP BY as a column of FROM first.
        if isinstance(e, t.ColumnRef) and e.table is None and not self.lookup(e, scope, False):
            for sql, meta in items:
                if _matches(meta.name, e.name):
                    return sql
        return self.value(e, scope).sql

    def order_term(self, e: t.Node, scope: _Scope, items, columns, names) -> str:
        if isinstance(e, t.NumberLiteral) and isinstance(e.value, int):
            if not 1 <= e.value <= len(columns):
                raise _error(f"ORDER BY {e.value}: there are {len(columns)} columns", e)
            return names[e.value - 1]
        if isinstance(e, t.ColumnRef) and e.table is None:
            found = [n for c, n in zip(columns, names, strict=True) if _matches(c.name, e.name)]
            if len(found) == 1:
                return found[0]
        sql = self.value(e, scope).sql
        # An expression of the select list is named by its output (DISTINCT needs that).
        for (s, _), n in zip(items, names, strict=True):
            if s == sql:
                return n
        return sql

    def star(self, item: t.Star, scope: _Scope) -> list[tuple[str, Column]]:
        if item.table is None:
            # Columns of USING / NATURAL joins come once, first [ADQL 2.1 §2.2.3].
            cols = list(scope.merged.values())
            cols += [c for r in scope.rels for c in r.cols if c.name.lower() not in scope.merged]
            return [(c.sql, _named(c)) for c in cols]
        rels = [r for r in scope.rels if r.qualified_by(item.table)]
        if not rels:
            raise _error(
                f"{_show_table(item.table)}.*: no table of that name in FROM; there are "
                f"{', '.join(r.label for r in scope.rels)}",
                item,
            )
        return [(c.sql, _named(c)) for c in rels[0].cols]

    # --- FROM ---------------------------------------------------------------------------------

    def table_ref(self, ref: t.TableRef, scope: _Scope) -> str:
        if isinstance(ref, t.Table):
            sql, rel = self.table(ref)
            scope.rels.append(rel)
            return sql
        if isinstance(ref, t.DerivedTable):
            out = self.query_expr(ref.query, scope.parent)
            alias = self.fresh("t")
            cols = [
                _Col(c.name, c, f"{alias}.{n}")
                for c, n in zip(out.columns, self.output_names(out.columns), strict=True)
            ]
            scope.rels.append(_Rel(ref.alias.name, None, cols, kind="subquery"))
            return f"({out.sql}) AS {alias}"
        return self.join(ref, scope)

    def join(self, ref: t.Join, scope: _Scope) -> str:
        local = _Scope([], scope.parent)
        left = self.table_ref(ref.left, local)
        n_left = len(local.rels)
        right = self.table_ref(ref.right, local)
        if isinstance(ref.right, t.Join):
            right = f"({right})"
        left_rels, right_rels = local.rels[:n_left], local.rels[n_left:]
        kind = {"INNER": "JOIN", "CROSS": "CROSS JOIN"}.get(ref.kind, f"{ref.kind} JOIN")
        sql = f"{left} {kind} {right}"
        names: list[t.Identifier] = []
        if ref.using is not None:
            names = list(ref.using)
        elif ref.natural:
            right_names = {c.name.lower() for r in right_rels for c in r.cols}
            names = [
                t.Identifier(c.name, True, pos=ref.pos)
                for r in left_rels
                for c in r.cols
                if c.name.lower() in right_names
            ]
        conditions = []
        for name in names:
            a = self._one_side(name, left_rels, "left", ref)
            b = self._one_side(name, right_rels, "right", ref)
            conditions.append(f"({a.sql} = {b.sql})")
            chosen = {"RIGHT": b.sql, "FULL": f"COALESCE({a.sql}, {b.sql})"}.get(ref.kind, a.sql)
            local.merged[a.name.lower()] = _Col(a.name, a.meta, chosen)
        if ref.on is not None:
            conditions.append(self.condition(ref.on, local))
        if ref.kind != "CROSS":
            sql += " ON " + (" AND ".join(conditions) if conditions else "(1 = 1)")
        scope.rels += local.rels
        scope.merged.update(local.merged)
        return sql

    def _one_side(self, name: t.Identifier, rels: list[_Rel], side: str, node) -> _Col:
        found = [c for r in rels for c in r.find(name)]
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise _error(f"join column {name.name}: {what} column of that name on the {side}", node)
        return found[0]

    def table(self, ref: t.Table) -> tuple[str, _Rel]:
        name = ref.name
        label = ref.alias.name if ref.alias else name.name.name
        if name.catalog is not None:
            raise _error(f"unknown table {_show_table(name)}: {self.known_tables()}", name)
        if name.schema is not None and name.schema.name.lower() == _UPLOAD_SCHEMA:
            return self.upload(name, label, ref.alias is not None)
        if name.schema is None:
            for cte_name, sql_name, columns in reversed(self.cte_env):
                if _matches(cte_name.name, name.name):
                    alias = self.fresh("t")
                    cols = [
                        _Col(c.name, c, f"{alias}.{n}")
                        for c, n in zip(columns, self.output_names(columns), strict=True)
                    ]
                    return f"{sql_name} AS {alias}", _Rel(label, None, cols, kind="cte")
        candidates = [
            tb
            for tb in model.PUBLIC_TABLES
            if tb.public
            and _matches(tb.name, name.name)
            and (name.schema is None or _matches(tb.schema, name.schema))
        ]
        if not candidates:
            raise _error(f"unknown table {_show_table(name)}: {self.known_tables()}", name)
        if len(candidates) > 1:
            raise _error(
                f"table {name.name.name} is ambiguous: write one of "
                f"{', '.join(tb.qualified for tb in candidates)}",
                name,
            )
        return self.model_table(candidates[0], label, ref.alias is not None)

    def known_tables(self) -> str:
        names = [tb.qualified for tb in model.PUBLIC_TABLES if tb.public]
        names += [f"TAP_UPLOAD.{n}" for n in self.uploads]
        return "the tables are " + ", ".join(names)

    def model_table(self, table: Table, label: str, aliased: bool) -> tuple[str, _Rel]:
        alias = self.fresh("t")
        columns = table.columns
        if self.internal:
            columns += INTERNAL_COLUMNS.get(table.qualified, ())
        cols = [_Col(c.name, c, f"{alias}.{_quote(c.name)}") for c in columns]
        rel = _Rel(label, None if aliased else table.schema, cols)
        hidden = _FOOTPRINT_TABLES.get(table.qualified)
        if hidden:
            rel.footprint = f"{alias}.{_quote(hidden[0])}"
            rel.planeid = f"{alias}.{_quote(hidden[1])}"
        if table.qualified in _CENTRE_TABLES:
            rel.centre = (f"{alias}.{_quote('s_ra')}", f"{alias}.{_quote('s_dec')}")
        return f"{self.dialect.public(table.qualified)} AS {alias}", rel

    def upload(self, name: t.TableName, label: str, aliased: bool) -> tuple[str, _Rel]:
        found = [u for key, u in self.uploads.items() if _matches(key, name.name)]
        if not found:
            raise _error(f"unknown table {_show_table(name)}: {self.known_tables()}", name)
        upload = found[0]
        if upload.name not in self.upload_ctes:
            self.upload_ctes[upload.name] = (self.upload_cte(upload), upload.columns)
        sql_name, columns = self.upload_ctes[upload.name]
        alias = self.fresh("t")
        cols = [
            _Col(c.name, c, f"{alias}.{n}")
            for c, n in zip(columns, self.output_names(columns), strict=True)
        ]
        return f"{sql_name} AS {alias}", _Rel(label, None if aliased else "TAP_UPLOAD", cols)

    def upload_cte(self, upload: UploadTable) -> str:
        """The upload as VALUES with bound parameters: readers may not create tables."""
        name = self.fresh("u")
        types = [self.dialect.sql_type(c) for c in upload.columns]
        names = ", ".join(self.output_names(upload.columns))
        width = len(types)
        if upload.rows:
            rows = []
            for row in upload.rows:
                if len(row) != width:
                    raise AdqlError(f"upload {upload.name}: a row has {len(row)} values", 1, 1)
                cells = (f"CAST({self.param(v)} AS {ty})" for v, ty in zip(row, types, strict=True))
                rows.append(f"({', '.join(cells)})")
            body = "VALUES " + ", ".join(rows)
        else:
            nulls = ", ".join(f"CAST(NULL AS {ty})" for ty in types)
            body = f"SELECT {nulls} WHERE 1 = 0"
        self.ctes.insert(len(self.upload_ctes), f"{name}({names}) AS ({body})")
        return name

    # --- names --------------------------------------------------------------------------------

    def lookup(self, ref: t.ColumnRef, scope: _Scope, required: bool = True) -> _Col | None:
        s: _Scope | None = scope
        while s is not None:
            found = self._in_scope(ref, s)
            if found is not None:
                return found
            s = s.parent
        if not required:
            return None
        if ref.table is not None:
            rels = [r for r in _all_rels(scope) if r.qualified_by(ref.table)]
            if not rels:
                raise _error(
                    f"unknown table {_show_table(ref.table)} in {_show_table(ref.table)}."
                    f"{ref.name.name}: FROM has {', '.join(r.label for r in _all_rels(scope))}",
                    ref,
                )
            raise _error(
                f"unknown column {ref.name.name} in {rels[0].label}; its columns are "
                f"{', '.join(c.name for c in rels[0].cols)}",
                ref,
            )
        names = ", ".join(c.name for r in _all_rels(scope) for c in r.cols)
        raise _error(f"unknown column {ref.name.name}; the columns are {names or 'none'}", ref)

    def _in_scope(self, ref: t.ColumnRef, scope: _Scope) -> _Col | None:
        if ref.table is None:
            merged = [c for n, c in scope.merged.items() if _matches(c.name, ref.name)]
            if merged:
                return merged[0]
            found = [(r, c) for r in scope.rels for c in r.find(ref.name)]
        else:
            rels = [r for r in scope.rels if r.qualified_by(ref.table)]
            if len(rels) > 1:
                raise _error(f"table name {_show_table(ref.table)} is ambiguous", ref)
            found = [(r, c) for r in rels for c in r.find(ref.name)]
            if rels and not found:
                raise _error(
                    f"unknown column {ref.name.name} in {rels[0].label}; its columns are "
                    f"{', '.join(c.name for c in rels[0].cols)}",
                    ref,
                )
        if len(found) > 1:
            raise _error(
                f"column {ref.name.name} is ambiguous: it is in "
                f"{', '.join(r.label for r, _ in found)}; qualify it",
                ref,
            )
        return found[0][1] if found else None

    def rel_of(self, col: _Col, scope: _Scope) -> _Rel | None:
        for r in _all_rels(scope):
            if any(c is col for c in r.cols):
                return r
        return None

    # --- conditions ---------------------------------------------------------------------------

    def condition(self, node: t.Node, scope: _Scope) -> str:
        if isinstance(node, t.And):
            return f"({self.condition(node.left, scope)} AND {self.condition(node.right, scope)})"
        if isinstance(node, t.Or):
            return f"({self.condition(node.left, scope)} OR {self.condition(node.right, scope)})"
        if isinstance(node, t.Not):
            return f"(NOT {self.condition(node.operand, scope)})"
        if isinstance(node, t.Comparison):
            spatial_test = self.spatial_comparison(node, scope)
            if spatial_test is not None:
                return spatial_test
            left, right = self.value(node.left, scope), self.value(node.right, scope)
            return f"({left.sql} {node.op} {right.sql})"
        if isinstance(node, t.Between):
            e, lo, hi = (self.value(x, scope).sql for x in (node.expr, node.low, node.high))
            return f"({e} {'NOT ' if node.negated else ''}BETWEEN {lo} AND {hi})"
        if isinstance(node, t.Like):
            return self.like(node, scope)
        if isinstance(node, t.InList):
            e = self.value(node.expr, scope).sql
            values = ", ".join(self.value(v, scope).sql for v in node.values)
            return f"({e} {'NOT ' if node.negated else ''}IN ({values}))"
        if isinstance(node, t.InSubquery):
            e = self.value(node.expr, scope).sql
            out = self.query_expr(node.query, scope)
            self.one_column(out, node)
            return f"({e} {'NOT ' if node.negated else ''}IN ({out.sql}))"
        if isinstance(node, t.IsNull):
            return f"({self.value(node.expr, scope).sql} IS {'NOT ' if node.negated else ''}NULL)"
        if isinstance(node, t.Exists):
            return f"(EXISTS ({self.query_expr(node.query, scope).sql}))"
        # A value where a condition is wanted (the parser lets few through): compare with 1.
        return f"({self.value(node, scope).sql} = 1)"

    def one_column(self, out: _Out, node: t.Node) -> None:
        if len(out.columns) != 1:
            raise _error(f"the subquery must give one column, it gives {len(out.columns)}", node)

    def like(self, node: t.Like, scope: _Scope) -> str:
        e = self.text(self.value(node.expr, scope))
        p = self.text(self.value(node.pattern, scope))
        op = f"{'NOT ' if node.negated else ''}{'ILIKE' if node.case_insensitive else 'LIKE'}"
        if self.pg:
            # No escape character: backslash is an ordinary character, as on SQLite.
            return f"({e} {op} {p} ESCAPE '')"
        if node.case_insensitive:
            return f"(LOWER({e}) {op.replace('ILIKE', 'LIKE')} LOWER({p}))"
        return f"({e} {op} {p})"

    # --- values -------------------------------------------------------------------------------

    def text(self, v: _V) -> str:
        return f"CAST({v.sql} AS TEXT)" if self.pg and v.text_param else v.sql

    def value(self, node: t.Node, scope: _Scope) -> _V:
        method = self.VALUES.get(type(node))
        if method is None:
            if isinstance(node, (t.Comparison, t.Between, t.Like, t.InList, t.InSubquery)):
                raise _error("a condition cannot be used as a value here", node)
            if isinstance(node, (t.IsNull, t.Exists, t.And, t.Or, t.Not)):
                raise _error("a condition cannot be used as a value here", node)
            raise _error(f"{type(node).__name__} is not supported here", node)
        return method(self, node, scope)

    def v_column(self, node: t.ColumnRef, scope: _Scope) -> _V:
        col = self.lookup(node, scope)
        return _V(col.sql, col.meta.datatype, col.meta.unit, col.meta, col.meta.xtype)

    def v_number(self, node: t.NumberLiteral, scope: _Scope) -> _V:
        datatype = "long" if isinstance(node.value, int) else "double"
        return _V(_number(node.value, node), datatype)

    def v_string(self, node: t.StringLiteral, scope: _Scope) -> _V:
        return _V(self.param(node.value), "char", text_param=True)

    def v_null(self, node: t.NullLiteral, scope: _Scope) -> _V:
        return _V("NULL", "char")

    def v_unary(self, node: t.UnaryOp, scope: _Scope) -> _V:
        v = self.value(node.operand, scope)
        if node.op == "~":
            return _V(f"(~{v.sql})", "long")
        return _V(f"({node.op}{v.sql})", v.datatype, v.unit)

    def v_binary(self, node: t.BinaryOp, scope: _Scope) -> _V:
        a, b = self.value(node.left, scope), self.value(node.right, scope)
        if node.op == "||":
            return _V(f"({self.text(a)} || {self.text(b)})", "char")
        if node.op in "&|^":
            if node.op == "^":
                sql = (
                    f"({a.sql} # {b.sql})"
                    if self.pg
                    else f"(({a.sql} | {b.sql}) - ({a.sql} & {b.sql}))"
                )
            else:
                sql = f"({a.sql} {node.op} {b.sql})"
            return _V(sql, "long")
        integer = a.datatype in _INTEGER and b.datatype in _INTEGER
        unit = a.unit if node.op in "+-" and a.unit == b.unit else None
        return _V(f"({a.sql} {node.op} {b.sql})", "long" if integer else "double", unit)

    def v_function(self, node: t.Function, scope: _Scope) -> _V:
        args = [self.value(a, scope) for a in node.args]
        name = node.name
        if name in ("LOWER", "UPPER"):
            return _V(f"{name}({self.text(args[0])})", "char")
        if name == "COALESCE":
            first = next((a for a in args if a.sql != "NULL"), args[0])
            sql = ", ".join(self.text(a) if first.datatype == "char" else a.sql for a in args)
            return _V(f"COALESCE({sql})", first.datatype, first.unit, xtype=first.xtype)
        if name == "MOD":
            a, b = args
            if a.datatype in _INTEGER and b.datatype in _INTEGER:
                return _V(f"({a.sql} % {b.sql})", "long")
            return _V(f"({a.sql} - ({b.sql} * trunc({a.sql} / {b.sql})))", "double")
        if name == "RAND":
            return _V("random()" if self.pg else "sx_rand()", "double")
        if name in ("ROUND", "TRUNCATE"):
            return self.rounding(name, args)
        if name == "ABS":
            return _V(f"abs({args[0].sql})", args[0].datatype, args[0].unit)
        if name in ("CEILING", "FLOOR"):
            return _V(f"{_MATH[name]}({args[0].sql})", "double", args[0].unit)
        sql_args = ", ".join(a.sql for a in args)
        return _V(f"{_MATH[name]}({sql_args})", "double")

    def rounding(self, name: str, args: list[_V]) -> _V:
        x = args[0].sql
        digits = args[1].sql if len(args) == 2 else "0"
        if self.pg:
            function = "round" if name == "ROUND" else "trunc"
            sql = f"CAST({function}(CAST({x} AS NUMERIC), {digits}) AS DOUBLE PRECISION)"
        elif name == "ROUND":
            sql = f"round({x}, {digits})"
        else:
            sql = f"sx_truncate({x}, {digits})"
        return _V(sql, "double", args[0].unit)

    def v_user_function(self, node: t.UserFunction, scope: _Scope) -> _V:
        raise _error(
            f"unknown function {node.name}: this service offers the ADQL 2.1 functions only",
            node,
        )

    def v_aggregate(self, node: t.Aggregate, scope: _Scope) -> _V:
        distinct = "DISTINCT " if node.distinct else ""
        if node.arg is None:
            return _V("COUNT(*)", "long")
        a = self.value(node.arg, scope)
        sql = f"{node.name}({distinct}{a.sql})"
        if node.name == "COUNT":
            return _V(sql, "long")
        if node.name == "AVG":
            return _V(sql, "double", a.unit)
        if node.name == "SUM":
            return _V(sql, "long" if a.datatype in _INTEGER else "double", a.unit)
        return _V(sql, a.datatype, a.unit, xtype=a.xtype)

    def v_cast(self, node: t.Cast, scope: _Scope) -> _V:
        if node.type not in _CAST_DATATYPE:
            raise _error(f"CAST to {node.type} is not supported", node)
        v = self.value(node.expr, scope)
        sql_type = _SQL_TYPES[self.dialect.name][node.type]
        x = v.sql
        if node.type in ("SMALLINT", "INTEGER", "BIGINT") and v.datatype not in _INTEGER:
            x = f"trunc({x})" if v.datatype in _NUMERIC else x  # truncate on both databases
        if node.type == "TIMESTAMP" and not self.pg:
            return _V(f"datetime({x})", "char", xtype="timestamp")
        sql = f"CAST({x} AS {sql_type})"
        if node.length is not None and node.type in ("CHAR", "VARCHAR"):
            sql = f"SUBSTR({sql}, 1, {int(node.length)})"
        xtype = "timestamp" if node.type == "TIMESTAMP" else None
        return _V(sql, _CAST_DATATYPE[node.type], xtype=xtype)

    def v_in_unit(self, node: t.InUnit, scope: _Scope) -> _V:
        v = self.value(node.expr, scope)
        if not v.unit:
            raise _error(f"IN_UNIT: the value has no known unit to convert to {node.unit}", node)
        factor = _unit_factor(v.unit, node.unit)
        if isinstance(factor, str):
            raise _error(f"IN_UNIT: {factor}", node)
        return _V(f"({v.sql} * {_number(factor, node)})", "double", node.unit)

    def v_case(self, node: t.Case, scope: _Scope) -> _V:
        parts = ["CASE"]
        if node.operand is not None:
            parts.append(self.value(node.operand, scope).sql)
        results = []
        for w in node.whens:
            cond = (
                self.value(w.condition, scope).sql
                if node.operand is not None
                else self.condition(w.condition, scope)
            )
            r = self.value(w.result, scope)
            results.append(r)
            parts.append(f"WHEN {cond} THEN {self.text(r)}")
        if node.else_ is not None:
            r = self.value(node.else_, scope)
            results.append(r)
            parts.append(f"ELSE {self.text(r)}")
        parts.append("END")
        first = next((r for r in results if r.sql != "NULL"), results[0])
        return _V(f"({' '.join(parts)})", first.datatype, first.unit)

    def v_scalar_subquery(self, node: t.ScalarSubquery, scope: _Scope) -> _V:
        out = self.query_expr(node.query, scope)
        self.one_column(out, node)
        c = out.columns[0]
        return _V(f"({out.sql})", c.datatype, c.unit, xtype=c.xtype)

    # --- geometry values ----------------------------------------------------------------------

    def v_shape(self, node: t.Node, scope: _Scope) -> _V:
        return self.shape_value(self.geo(node, scope))

    def shape_value(self, g: _Geo) -> _V:
        """A geometry in the select list: STC-S text (xtypes of TAP 1.0, as s_region has)."""
        label = {"point": "POSITION", "circle": "CIRCLE", "polygon": "POLYGON"}[g.kind]
        if g.const is not None:
            numbers = g.const if g.kind != "polygon" else [x for p in g.const for x in p]
            text = f"{label} ICRS " + " ".join(repr(float(x)) for x in numbers)
            sql = self.text(_V(self.param(text), "char", text_param=True))
        else:
            pieces = " || ' ' || ".join(f"CAST({s} AS TEXT)" for s in g.sql)
            sql = f"('{label} ICRS ' || {pieces})"
        xtype = "adql:POINT" if g.kind == "point" else "adql:REGION"
        return _V(sql, "char", "deg", xtype=xtype)

    def v_distance(self, node: t.Distance, scope: _Scope) -> _V:
        a, b = self.geo(node.left, scope), self.geo(node.right, scope)
        for g in (a, b):
            if g.kind != "point":
                raise _error("DISTANCE takes two points", g.node)
        return _V(self.distance_sql(a.sql, b.sql), "double", "deg")

    def distance_sql(self, a: tuple[str, ...], b: tuple[str, ...]) -> str:
        if self.pg:
            return f"degrees({self.spoint(a)} <-> {self.spoint(b)})"
        return f"sx_distance({a[0]}, {a[1]}, {b[0]}, {b[1]})"

    def v_geometry_function(self, node: t.GeometryFunction, scope: _Scope) -> _V:
        if node.name == "COORDSYS":
            self.geo(node.arg, scope)
            return _V(self.text(_V(self.param("ICRS"), "char", text_param=True)), "char")
        g = self.geo(node.arg, scope)
        if node.name in ("COORD1", "COORD2"):
            if g.kind != "point":
                raise _error(f"{node.name} takes a point", node.arg)
            return _V(g.sql[0 if node.name == "COORD1" else 1], "double", "deg")
        if node.name == "AREA" and g.const is not None:
            return _V(_number(_area(g), node), "double", "deg2")
        if node.name == "CENTROID" and g.kind in ("point", "circle"):
            const = g.const[:2] if g.const else None
            return self.shape_value(_Geo("point", const, g.sql[:2], node))
        raise _error(f"{node.name} of {g.kind} values is not supported", node)

    def v_contains_value(self, node: t.Node, scope: _Scope) -> _V:
        cond = self.spatial_test(node, scope)
        return _V(f"(CASE WHEN {cond} THEN 1 ELSE 0 END)", "int")

    # --- geometry -----------------------------------------------------------------------------

    def geo(self, node: t.Node, scope: _Scope) -> _Geo:
        for shape in (t.Point, t.Circle, t.Box, t.Polygon):
            frame = getattr(node, "coord_sys", None) if isinstance(node, shape) else None
            if frame and frame.strip().upper() != "ICRS":
                raise _error(f"coordinate system {frame!r} is not supported: use 'ICRS'", node)
        if isinstance(node, t.Point):
            x, y = self.value(node.x, scope), self.value(node.y, scope)
            const = (_const(node.x), _const(node.y))
            ok = None not in const
            if ok and not -90 <= const[1] <= 90:
                raise _error(f"declination {const[1]} is outside [-90, 90]", node.y)
            return _Geo(
                "point", const if ok else None, (x.sql, y.sql), node, self.is_centre(node, scope)
            )
        if isinstance(node, t.Circle):
            centre = self.geo(node.center, scope)
            if centre.kind != "point":
                raise _error("the centre of CIRCLE must be a point", node.center)
            r = self.value(node.radius, scope)
            radius = _const(node.radius)
            if radius is not None and not 0 <= radius <= 180:
                raise _error(f"the radius {radius} is outside [0, 180] degrees", node.radius)
            const = (*centre.const, radius) if centre.const and radius is not None else None
            return _Geo("circle", const, (*centre.sql, r.sql), node)
        if isinstance(node, t.Box):
            centre = self.geo(node.center, scope)
            w, h = _const(node.width), _const(node.height)
            if centre.kind != "point" or centre.const is None or w is None or h is None:
                raise _error("BOX is supported with constant centre and sides only", node)
            if not (0 < w < 180 and 0 < h < 180):
                raise _error("the sides of BOX must be between 0 and 180 degrees", node)
            return self.polygon_geo(_box_corners(*centre.const, w, h), node)
        if isinstance(node, t.Polygon):
            points = [self.geo(v, scope) for v in node.vertices]
            if any(p.kind != "point" or p.const is None for p in points):
                raise _error("POLYGON is supported with constant vertices only", node)
            return self.polygon_geo([p.const for p in points], node)
        if isinstance(node, t.Region):
            return self.region_literal(node, scope)
        if isinstance(node, t.ColumnRef):
            col = self.lookup(node, scope)
            if col.meta.xtype not in _REGION_XTYPES:
                raise _error(f"{col.name} is not a geometry column", node)
            rel = self.rel_of(col, scope)
            if rel is None or rel.footprint is None:
                raise _error(
                    f"{col.name}: geometry tests work on the region columns of the archive's "
                    f"tables, not on those of subqueries or uploads",
                    node,
                )
            return _Geo("region", None, (rel.footprint, rel.planeid), node)
        if isinstance(node, t.GeometryFunction) and node.name == "CENTROID":
            g = self.geo(node.arg, scope)
            if g.kind in ("point", "circle"):
                return _Geo("point", g.const[:2] if g.const else None, g.sql[:2], node)
        raise _error("expected a point, a circle, a polygon or a region column", node)

    def is_centre(self, point: t.Point, scope: _Scope) -> bool:
        """Whether the point is (s_ra, s_dec) of one archive table, under the centre index."""
        if not (isinstance(point.x, t.ColumnRef) and isinstance(point.y, t.ColumnRef)):
            return False
        x, y = self.lookup(point.x, scope), self.lookup(point.y, scope)
        rel = self.rel_of(x, scope)
        return rel is not None and rel.centre == (x.sql, y.sql)

    def polygon_geo(self, vertices: list[tuple[float, float]], node: t.Node) -> _Geo:
        v = spatial.unit_vectors([p[0] for p in vertices], [p[1] for p in vertices])
        if len(vertices) < 3 or np.linalg.norm(v.sum(axis=0)) < 1e-9 or not spatial.is_convex(v):
            raise _error(
                "only convex polygons smaller than a hemisphere are supported "
                "(split a non-convex polygon into convex ones joined with OR)",
                node,
            )
        return _Geo("polygon", tuple(vertices), (), node)

    def region_literal(self, node: t.Region, scope: _Scope) -> _Geo:
        words = node.text.split()
        try:
            shape = words[0].upper()
            frame = words[1].upper() if len(words) > 1 and not _is_number(words[1]) else None
            numbers = [float(w) for w in words[2 if frame else 1 :]]
        except (IndexError, ValueError):
            raise _error(f"REGION: cannot read {node.text!r} as STC-S", node) from None
        if frame not in (None, "ICRS"):
            raise _error(f"coordinate system {frame!r} is not supported: use ICRS", node)
        if shape == "POSITION" and len(numbers) == 2:
            return _Geo("point", tuple(numbers), tuple(map(repr, numbers)), node)
        if shape == "CIRCLE" and len(numbers) == 3:
            return _Geo("circle", tuple(numbers), tuple(map(repr, numbers)), node)
        if shape == "POLYGON" and len(numbers) >= 6 and len(numbers) % 2 == 0:
            return self.polygon_geo(list(zip(numbers[::2], numbers[1::2], strict=True)), node)
        raise _error(f"REGION: {node.text!r} is not an STC-S position, circle or polygon", node)

    def spatial_comparison(self, node: t.Comparison, scope: _Scope) -> str | None:
        """``CONTAINS(...) = 1`` and friends, as a condition the indexes can serve."""
        if node.op in ("<", "<=", ">", ">="):
            return self.distance_within(node, scope)
        if node.op not in ("=", "<>"):
            return None
        for test, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(test, (t.Contains, t.Intersects)) and isinstance(other, t.NumberLiteral):
                if other.value not in (0, 1):
                    return None
                cond = self.spatial_test(test, scope)
                return cond if (other.value == 1) == (node.op == "=") else f"(NOT {cond})"
        return None

    def distance_within(self, node: t.Comparison, scope: _Scope) -> str | None:
        """``DISTANCE(POINT(s_ra, s_dec), POINT(ra, dec)) < r`` (either way round) with the
        centre index's prefilter; None for any other comparison."""
        distance, limit, op = node.left, node.right, node.op
        if isinstance(limit, t.Distance):
            flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
            distance, limit, op = limit, distance, flipped[op]
        if not (isinstance(distance, t.Distance) and op in ("<", "<=")):
            return None
        radius = _const(limit)
        if radius is None:
            return None
        a, b = self.geo(distance.left, scope), self.geo(distance.right, scope)
        if b.centre:
            a, b = b, a
        if not (a.kind == b.kind == "point" and a.centre and b.const is not None):
            return None
        exact = f"({self.distance_sql(a.sql, b.sql)} {op} {self.value(limit, scope).sql})"
        return f"({self.centres_near(a, b.const, max(float(radius), 0.0))} AND {exact})"

    def spatial_test(self, node: t.Contains | t.Intersects, scope: _Scope) -> str:
        a, b = self.geo(node.left, scope), self.geo(node.right, scope)
        if isinstance(node, t.Intersects):
            # Symmetric: put the region column (or else the point) first.
            order = {"region": 0, "point": 1, "circle": 2, "polygon": 3}
            if order[b.kind] < order[a.kind]:
                a, b = b, a
            if a.kind == "point":
                return self.inside(a, b, node)
            if a.kind == "region":
                return self.region_intersects(a, b, node)
            if a.kind == "circle" and b.kind == "circle":
                d = self.distance_sql(a.sql[:2], b.sql[:2])
                return f"({d} <= ({a.sql[2]} + {b.sql[2]}))"
            raise _error(f"INTERSECTS of a {a.kind} and a {b.kind} is not supported", node)
        return self.inside(a, b, node)

    def inside(self, a: _Geo, b: _Geo, node: t.Node) -> str:
        """a inside b."""
        if a.kind == "point" and b.kind == "region":
            return self.point_in_region(a, b)
        if a.kind == "point" and b.kind == "circle":
            exact = f"({self.distance_sql(a.sql, b.sql[:2])} <= {b.sql[2]})"
            if a.centre and b.const is not None:
                return f"({self.centres_near(a, b.const[:2], b.const[2])} AND {exact})"
            return exact
        if a.kind == "point" and b.kind == "polygon":
            if self.pg:
                return f"({self.spoint(a.sql)} <@ {self.spoly(b)})"
            blob = self.param(self.polygon_blob(b))
            exact = f"(sx_polygon_contains_radec({blob}, {a.sql[0]}, {a.sql[1]}) = 1)"
            if a.centre:
                return f"({self.centres_near(a, *self.polygon_cap(b))} AND {exact})"
            return exact
        if a.kind == "region" and b.kind in ("circle", "polygon"):
            return self.region_within(a, b)
        if b.kind == "region" and a.kind in ("circle", "polygon"):
            return self.region_holds(b, a)
        raise _error(f"CONTAINS of a {a.kind} in a {b.kind} is not supported", node)

    # --- geometry SQL --------------------------------------------------------------------------

    def spoint(self, sql: tuple[str, ...]) -> str:
        return f"spoint(radians({sql[0]}), radians({sql[1]}))"

    def scircle(self, g: _Geo) -> str:
        return f"scircle({self.spoint(g.sql[:2])}, radians({g.sql[2]}))"

    def rest_of_sphere(self, g: _Geo) -> str:
        """The circle around the antipode that, with its edge, makes the whole sphere with the
        constant circle ``g`` wider than pgsphere's largest (90 degrees)."""
        ra, dec, radius = g.const
        antipode = (repr((ra + 180.0) % 360.0), repr(-dec))
        return f"scircle({self.spoint(antipode)}, {math.radians(180.0 - radius)!r})"

    def spoly(self, g: _Geo) -> str:
        text = "{" + ",".join(f"({ra:.12f}d,{dec:.12f}d)" for ra, dec in g.const) + "}"
        return f"CAST({self.param(text)} AS spoly)"

    def centres_near(self, point: _Geo, centre: tuple[float, float], radius: float) -> str:
        """Rows whose image centre ``point`` may lie within ``radius`` degrees of ``centre``,
        as the centre index serves it (a prefilter for the exact test)."""
        if self.pg:
            if radius + zones.MARGIN >= 90.0:
                return "TRUE"  # pgsphere's circles end at 90 degrees; an index would not help
            # The index holds spoint(radians(s_ra), radians(s_dec)): written the same way
            # through the views, the planner matches it; a hair wider than the exact test.
            reach = math.radians(radius + zones.MARGIN)
            cap = f"scircle({self.spoint(tuple(map(repr, centre)))}, {reach!r})"
            return f"({self.spoint(point.sql)} <@ {cap})"
        return f"({zones.centre_near_sql(*point.sql, *centre, radius)})"

    def polygon_blob(self, g: _Geo) -> bytes:
        v = spatial.unit_vectors([p[0] for p in g.const], [p[1] for p in g.const])
        return vertices_blob(spatial.polygon_normals(v)[0])

    def footprints_near(
        self, planeid: str, centre: tuple[float, float], radius: float, test: str, grow=True
    ) -> str:
        """The SQLite footprint index: planes whose footprint passes ``test``, looked for near
        the cap of ``radius`` degrees around ``centre`` (``grow=False``: footprints inside it)."""
        if self.zone_index is None:
            return f"({planeid} IN (SELECT planeid FROM {zones.TABLE} WHERE {test}))"
        search = self.zone_index.select("planeid", test, *centre, radius, grow=grow)
        return f"({planeid} IN ({search}))"

    def point_in_region(self, p: _Geo, region: _Geo) -> str:
        footprint, planeid = region.sql
        if self.pg:
            return f"({footprint} @> {self.spoint(p.sql)})"
        if p.const is None:
            return f"(sx_contains_radec({footprint}, {p.sql[0]}, {p.sql[1]}) = 1)"
        point = spatial.unit_vectors(*p.const)
        return self.footprints_near(planeid, p.const, 0.0, zones.contains_sql(point))

    def region_intersects(self, region: _Geo, g: _Geo, node: t.Node) -> str:
        footprint, planeid = region.sql
        if g.kind == "point":
            return self.point_in_region(g, region)
        if self.pg:
            if _wide(g):  # meets the circle: not inside the rest of the sphere
                return f"(NOT ({footprint} <@ {self.rest_of_sphere(g)}))"
            other = {
                "circle": lambda: self.scircle(g),
                "polygon": lambda: self.spoly(g),
                "region": lambda: g.sql[0],
            }[g.kind]()
            return f"({footprint} && {other})"
        if g.kind == "region":
            return f"(sx_intersects_records({footprint}, {g.sql[0]}) = 1)"
        if g.kind == "circle" and g.const is None:
            ra, dec, r = g.sql
            return f"(sx_intersects_circle_radec({footprint}, {ra}, {dec}, {r}) = 1)"
        if g.kind == "circle":
            centre = spatial.unit_vectors(*g.const[:2])
            test = zones.meets_circle_sql(centre, math.radians(g.const[2]))
            return self.footprints_near(planeid, g.const[:2], g.const[2], test)
        blob = self.param(self.polygon_blob(g))
        test = f"sx_intersects_polygon(footprint, {blob}) = 1"
        return self.footprints_near(planeid, *self.polygon_cap(g), test)

    def polygon_cap(self, g: _Geo) -> tuple[tuple[float, float], float]:
        """A cap around the polygon, as (centre, radius in degrees): convex, it holds it whole."""
        v = spatial.unit_vectors([p[0] for p in g.const], [p[1] for p in g.const])
        centre = v.sum(axis=0)
        centre /= np.linalg.norm(centre)
        radius = float(np.degrees(np.max(np.arccos(np.clip(v @ centre, -1, 1)))))
        ra, dec = spatial.to_radec(centre)
        return (float(ra), float(dec)), radius + 1e-7

    def region_within(self, region: _Geo, g: _Geo) -> str:
        footprint, planeid = region.sql
        if self.pg:
            if _wide(g):  # inside the circle: apart from the rest of the sphere
                return f"(NOT ({footprint} && {self.rest_of_sphere(g)}))"
            other = self.scircle(g) if g.kind == "circle" else self.spoly(g)
            return f"({footprint} <@ {other})"
        if g.kind == "circle" and g.const is None:
            raise _error("CONTAINS(region, CIRCLE) needs a constant circle", g.node)
        if g.kind == "circle":
            centre = spatial.unit_vectors(*g.const[:2])
            radius = math.radians(g.const[2])
            x, y, z = (repr(float(c)) for c in centre)
            test = f"sx_within_circle(footprint, {x}, {y}, {z}, {math.cos(radius)!r}) = 1"
            return self.footprints_near(planeid, g.const[:2], g.const[2], test, grow=False)
        blob = self.param(self.polygon_blob(g))
        test = f"sx_within_polygon(footprint, {blob}) = 1"
        return self.footprints_near(planeid, *self.polygon_cap(g), test, grow=False)

    def region_holds(self, region: _Geo, g: _Geo) -> str:
        footprint, planeid = region.sql
        if self.pg:
            if _wide(g):  # a convex footprint lies in a hemisphere: never holds more
                return f"(CASE WHEN {footprint} IS NULL THEN NULL ELSE FALSE END)"
            other = self.scircle(g) if g.kind == "circle" else self.spoly(g)
            return f"({footprint} @> {other})"
        if g.const is None:
            raise _error(f"CONTAINS({g.kind}, region) needs a constant {g.kind}", g.node)
        # A footprint holding the shape holds its centre or first vertex: search there.
        if g.kind == "circle":
            centre = spatial.unit_vectors(*g.const[:2])
            x, y, z = (repr(float(c)) for c in centre)
            radius = math.radians(g.const[2])
            test = (
                f"{zones.contains_sql(centre)} "
                f"AND sx_contains_circle(footprint, {x}, {y}, {z}, {radius!r}) = 1"
            )
            return self.footprints_near(planeid, g.const[:2], 0.0, test)
        first = spatial.unit_vectors(*g.const[0])
        blob = self.param(self.polygon_blob(g))
        test = f"{zones.contains_sql(first)} AND sx_contains_polygon(footprint, {blob}) = 1"
        return self.footprints_near(planeid, g.const[0], 0.0, test)

    VALUES: ClassVar[dict[type, Callable]] = {}


_Translator.VALUES = {
    t.ColumnRef: _Translator.v_column,
    t.NumberLiteral: _Translator.v_number,
    t.StringLiteral: _Translator.v_string,
    t.NullLiteral: _Translator.v_null,
    t.UnaryOp: _Translator.v_unary,
    t.BinaryOp: _Translator.v_binary,
    t.Function: _Translator.v_function,
    t.UserFunction: _Translator.v_user_function,
    t.Aggregate: _Translator.v_aggregate,
    t.Cast: _Translator.v_cast,
    t.InUnit: _Translator.v_in_unit,
    t.Case: _Translator.v_case,
    t.ScalarSubquery: _Translator.v_scalar_subquery,
    t.Point: _Translator.v_shape,
    t.Circle: _Translator.v_shape,
    t.Box: _Translator.v_shape,
    t.Polygon: _Translator.v_shape,
    t.Region: _Translator.v_shape,
    t.Distance: _Translator.v_distance,
    t.GeometryFunction: _Translator.v_geometry_function,
    t.Contains: _Translator.v_contains_value,
    t.Intersects: _Translator.v_contains_value,
}


# ---------------------------------------------------------------------------------------------


def _named(c: _Col) -> Column:
    return c.meta if c.meta.name == c.name else dataclasses.replace(c.meta, name=c.name)


@lru_cache(maxsize=256)
def _unit_factor(source: str, target: str) -> float | str:
    """The factor from one VOUnit to another, or why there is none."""
    import astropy.units as u

    try:
        a = u.Unit(source, format="vounit", parse_strict="raise")
        b = u.Unit(target, format="vounit", parse_strict="raise")
    except ValueError as error:
        return str(error)
    try:
        return float(a.to(b))
    except u.UnitConversionError:
        return f"{source} cannot be converted to {target}"


def _all_rels(scope: _Scope) -> list[_Rel]:
    rels: list[_Rel] = []
    s: _Scope | None = scope
    while s is not None:
        rels += s.rels
        s = s.parent
    return rels


def _show_table(name: t.TableName) -> str:
    parts = [p for p in (name.catalog, name.schema, name.name) if p is not None]
    return ".".join(f'"{p.name}"' if p.delimited else p.name for p in parts)


def _unique(columns: list[Column]) -> list[Column]:
    """Result column names made unique (case-insensitively) with _2, _3... suffixes."""
    seen: set[str] = set()
    out = []
    for c in columns:
        name, n = c.name, 1
        while name.lower() in seen:
            n += 1
            name = f"{c.name}_{n}"
        seen.add(name.lower())
        out.append(c if name == c.name else dataclasses.replace(c, name=name))
    return out


def _wide(g: _Geo) -> bool:
    """A constant circle wider than a hemisphere, which pgsphere's circles cannot be."""
    return g.kind == "circle" and g.const is not None and g.const[2] > 90.0


def _const(node: t.Node) -> float | None:
    """The value of a constant numeric expression, None for anything else."""
    if isinstance(node, t.NumberLiteral):
        return float(node.value)
    if isinstance(node, t.UnaryOp) and node.op in "+-":
        v = _const(node.operand)
        return None if v is None else (-v if node.op == "-" else v)
    if isinstance(node, t.BinaryOp) and node.op in ("+", "-", "*", "/"):
        a, b = _const(node.left), _const(node.right)
        if a is None or b is None or (node.op == "/" and b == 0):
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[node.op]
    if isinstance(node, t.Function) and node.name == "PI":
        return math.pi
    return None


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _box_corners(ra: float, dec: float, width: float, height: float) -> list[tuple[float, float]]:
    """Corners of BOX: +-width/2, +-height/2 along the tangent plane's axes at the centre."""
    centre = spatial.unit_vectors(ra, dec)
    east = np.array([-math.sin(math.radians(ra)), math.cos(math.radians(ra)), 0.0])
    north = np.cross(centre, east)
    dx, dy = math.tan(math.radians(width / 2)), math.tan(math.radians(height / 2))
    corners = [
        centre + sx * dx * east + sy * dy * north for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))
    ]
    ras, decs = spatial.to_radec(np.array(corners))
    return [(float(a), float(d)) for a, d in zip(ras, decs, strict=True)]


def _area(g: _Geo) -> float:
    """Area in square degrees of a constant shape."""
    square_degrees = (180 / math.pi) ** 2
    if g.kind == "point":
        return 0.0
    if g.kind == "circle":
        return 2 * math.pi * (1 - math.cos(math.radians(g.const[2]))) * square_degrees
    v = spatial.unit_vectors([p[0] for p in g.const], [p[1] for p in g.const])
    total = 0.0  # sum of triangle fans from vertex 0 (convex polygon)
    for i in range(1, len(v) - 1):
        a, b, c = v[0], v[i], v[i + 1]
        total += 2 * math.atan2(abs(np.dot(a, np.cross(b, c))), 1 + a @ b + b @ c + c @ a)
    return total * square_degrees
