"""Writes a syntax tree back as ADQL text, so that parse(to_adql(tree)) == tree.

Keywords come out upper-case, names as spelled, and parentheses only where the grammar's
precedence needs them. Shapes whose centre or vertices are frame-less points are written with
plain coordinates (CIRCLE('ICRS', 1, 2, 3)), the form every ADQL 2.0 service reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from . import tree as t
from .keywords import RESERVED_WORDS

# Binding strength, loosest first; a child looser than its slot needs parentheses.
OR, AND, NOT, PREDICATE, VALUE, ADD, MUL, UNARY, PRIMARY = range(1, 10)
# VALUE is the level of || and the bitwise & | ^, and of the operands of a predicate.
BINARY_PRECEDENCE = {"||": VALUE, "|": VALUE, "^": VALUE, "&": VALUE}
BINARY_PRECEDENCE |= {"+": ADD, "-": ADD, "*": MUL, "/": MUL}
PREDICATES = (t.Comparison, t.Between, t.Like, t.InList, t.InSubquery, t.IsNull, t.Exists)
SET_PRECEDENCE = {"UNION": 1, "EXCEPT": 1, "INTERSECT": 2}
REGULAR_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def to_adql(node: t.Node) -> str:
    """ADQL text for any node of the tree: a whole Query, a subquery or an expression."""
    return _WRITERS[type(node)](node)


def _precedence(node: t.Node) -> int:
    if isinstance(node, t.Or):
        return OR
    if isinstance(node, t.And):
        return AND
    if isinstance(node, t.Not):
        return NOT
    if isinstance(node, PREDICATES):
        return PREDICATE
    if isinstance(node, t.BinaryOp):
        return BINARY_PRECEDENCE[node.op]
    if isinstance(node, t.UnaryOp):
        return UNARY
    return PRIMARY


def _expr(node: t.Node, slot: int = OR) -> str:
    text = to_adql(node)
    return f"({text})" if _precedence(node) < slot else text


def _list(nodes: tuple) -> str:
    return ", ".join(_expr(node) for node in nodes)


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(node: t.Identifier) -> str:
    if node.delimited:
        if not node.name:
            raise ValueError("a delimited identifier cannot be empty")
        return '"' + node.name.replace('"', '""') + '"'
    return _regular_name(node.name)


def _regular_name(name: str) -> str:
    if not REGULAR_IDENTIFIER.fullmatch(name) or name.upper() in RESERVED_WORDS:
        raise ValueError(f"{name!r} cannot be written as a regular identifier; delimit it")
    return name


def _table_name(node: t.TableName) -> str:
    parts = (node.catalog, node.schema, node.name)
    return ".".join(_identifier(part) for part in parts if part is not None)


def _column(node: t.ColumnRef) -> str:
    name = _identifier(node.name)
    return name if node.table is None else f"{_table_name(node.table)}.{name}"


def _unary(node: t.UnaryOp) -> str:
    operand = _expr(node.operand, UNARY)
    if operand.startswith("-"):  # "--" would start a comment
        operand = f"({operand})"
    return node.op + operand


def _binary(node: t.BinaryOp) -> str:
    slot = BINARY_PRECEDENCE[node.op]
    return f"{_expr(node.left, slot)} {node.op} {_expr(node.right, slot + 1)}"


def _not(negated: bool) -> str:
    return "NOT " if negated else ""


def _between(node: t.Between) -> str:
    low, high = _expr(node.low, VALUE), _expr(node.high, VALUE)
    return f"{_expr(node.expr, VALUE)} {_not(node.negated)}BETWEEN {low} AND {high}"


def _like(node: t.Like) -> str:
    op = "ILIKE" if node.case_insensitive else "LIKE"
    return f"{_expr(node.expr, VALUE)} {_not(node.negated)}{op} {_expr(node.pattern, VALUE)}"


def _in_list(node: t.InList) -> str:
    values = ", ".join(_expr(value, VALUE) for value in node.values)
    return f"{_expr(node.expr, VALUE)} {_not(node.negated)}IN ({values})"


def _in_subquery(node: t.InSubquery) -> str:
    return f"{_expr(node.expr, VALUE)} {_not(node.negated)}IN ({to_adql(node.query)})"


def _is_null(node: t.IsNull) -> str:
    return f"{_expr(node.expr, VALUE)} IS {_not(node.negated)}NULL"


def _aggregate(node: t.Aggregate) -> str:
    if node.arg is None:
        return f"{node.name}(*)"
    return f"{node.name}({'DISTINCT ' if node.distinct else ''}{_expr(node.arg)})"


def _cast(node: t.Cast) -> str:
    length = "" if node.length is None else f"({node.length})"
    return f"CAST({_expr(node.expr)} AS {node.type}{length})"


def _case(node: t.Case) -> str:
    parts = ["CASE"]
    if node.operand is not None:
        parts.append(_expr(node.operand, VALUE))
    for when in node.whens:
        parts += ["WHEN", _expr(when.condition), "THEN", _expr(when.result)]
    if node.else_ is not None:
        parts += ["ELSE", _expr(node.else_)]
    return " ".join([*parts, "END"])


# ---- geometry


def _bare_point(node: t.Node) -> bool:
    return isinstance(node, t.Point) and node.coord_sys is None


def _frame_prefix(coord_sys: str | None, first: t.Node) -> str:
    """The frame argument, or NULL when the first coordinate would otherwise be read as one."""
    if coord_sys is not None:
        return _string(coord_sys) + ", "
    return "NULL, " if isinstance(first, (t.StringLiteral, t.NullLiteral)) else ""


def _point(node: t.Point) -> str:
    frame = "" if node.coord_sys is None else _string(node.coord_sys) + ", "
    return f"POINT({frame}{_expr(node.x)}, {_expr(node.y)})"


def _shape(name: str, coord_sys: str | None, center: t.Node, sizes: tuple) -> str:
    if _bare_point(center):
        args = _frame_prefix(coord_sys, center.x) + _list((center.x, center.y, *sizes))
    else:
        args = _frame_prefix(coord_sys, center) + _list((center, *sizes))
    return f"{name}({args})"


def _polygon(node: t.Polygon) -> str:
    if all(map(_bare_point, node.vertices)):
        values = tuple(c for vertex in node.vertices for c in (vertex.x, vertex.y))
    else:
        values = node.vertices
    return f"POLYGON({_frame_prefix(node.coord_sys, values[0])}{_list(values)})"


def _distance(node: t.Distance) -> str:
    if _bare_point(node.left) and _bare_point(node.right):
        args = (node.left.x, node.left.y, node.right.x, node.right.y)
    else:
        args = (node.left, node.right)
    return f"DISTANCE({_list(args)})"


# ---- queries


def _subquery(query: t.QueryExpr) -> str:
    return f"({to_adql(query)})"


def _order_offset(order_by: tuple[t.OrderItem, ...], offset: int | None) -> str:
    text = ""
    if order_by:
        text += " ORDER BY " + ", ".join(map(to_adql, order_by))
    if offset is not None:
        text += f" OFFSET {offset}"
    return text


def _order_item(node: t.OrderItem) -> str:
    return _expr(node.expr) + (" DESC" if node.descending else "")


def _select(node: t.Select) -> str:
    text = "SELECT "
    if node.distinct:
        text += "DISTINCT "
    if node.top is not None:
        text += f"TOP {node.top} "
    text += ", ".join(map(to_adql, node.columns))
    text += " FROM " + ", ".join(_table_ref(ref) for ref in node.from_)
    if node.where is not None:
        text += " WHERE " + _expr(node.where)
    if node.group_by:
        text += " GROUP BY " + _list(node.group_by)
    if node.having is not None:
        text += " HAVING " + _expr(node.having)
    return text + _order_offset(node.order_by, node.offset)


def _set_operand(node: t.QueryExpr, slot: int) -> str:
    text = to_adql(node)
    if isinstance(node, t.ParenthesizedQuery) or node.order_by or node.offset is not None:
        return f"({text})"
    if isinstance(node, t.SetOperation) and SET_PRECEDENCE[node.op] < slot:
        return f"({text})"
    return text


def _set_operation(node: t.SetOperation) -> str:
    slot = SET_PRECEDENCE[node.op]
    left, right = _set_operand(node.left, slot), _set_operand(node.right, slot + 1)
    op = node.op + (" ALL" if node.all else "")
    return f"{left} {op} {right}" + _order_offset(node.order_by, node.offset)


def _parenthesized(node: t.ParenthesizedQuery) -> str:
    return _subquery(node.query) + _order_offset(node.order_by, node.offset)


def _query(node: t.Query) -> str:
    if not node.ctes:
        return to_adql(node.body)
    ctes = ", ".join(f"{_identifier(cte.name)} AS {_subquery(cte.query)}" for cte in node.ctes)
    return f"WITH {ctes} {to_adql(node.body)}"


def _alias(alias: t.Identifier | None) -> str:
    return "" if alias is None else " AS " + _identifier(alias)


def _table_ref(node: t.TableRef, right: bool = False) -> str:
    """A FROM item; a join on the right of another, or with an alias, needs parentheses."""
    if not isinstance(node, t.Join):
        return to_adql(node)
    if right or node.alias is not None:
        return f"({_join(node)}){_alias(node.alias)}"
    return _join(node)


def _join(node: t.Join) -> str:
    kind = {"INNER": "", "CROSS": "CROSS "}.get(node.kind, node.kind + " OUTER ")
    text = f"{_table_ref(node.left)} {'NATURAL ' if node.natural else ''}{kind}JOIN "
    text += _table_ref(node.right, right=True)
    if node.on is not None:
        text += " ON " + _expr(node.on)
    if node.using is not None:
        text += " USING (" + ", ".join(map(_identifier, node.using)) + ")"
    return text


_WRITERS: dict[type, Callable] = {
    t.Identifier: _identifier,
    t.TableName: _table_name,
    t.ColumnRef: _column,
    t.NumberLiteral: lambda n: n.text,
    t.StringLiteral: lambda n: _string(n.value),
    t.NullLiteral: lambda n: "NULL",
    t.UnaryOp: _unary,
    t.BinaryOp: _binary,
    t.Comparison: lambda n: f"{_expr(n.left, VALUE)} {n.op} {_expr(n.right, VALUE)}",
    t.Between: _between,
    t.Like: _like,
    t.InList: _in_list,
    t.InSubquery: _in_subquery,
    t.IsNull: _is_null,
    t.Exists: lambda n: f"EXISTS {_subquery(n.query)}",
    t.And: lambda n: f"{_expr(n.left, AND)} AND {_expr(n.right, NOT)}",
    t.Or: lambda n: f"{_expr(n.left, OR)} OR {_expr(n.right, AND)}",
    t.Not: lambda n: f"NOT {_expr(n.operand, NOT)}",
    t.Function: lambda n: f"{n.name}({_list(n.args)})",
    t.UserFunction: lambda n: f"{_regular_name(n.name)}({_list(n.args)})",
    t.Aggregate: _aggregate,
    t.Cast: _cast,
    t.InUnit: lambda n: f"IN_UNIT({_expr(n.expr)}, {_string(n.unit)})",
    t.Case: _case,
    t.ScalarSubquery: lambda n: _subquery(n.query),
    t.Point: _point,
    t.Circle: lambda n: _shape("CIRCLE", n.coord_sys, n.center, (n.radius,)),
    t.Box: lambda n: _shape("BOX", n.coord_sys, n.center, (n.width, n.height)),
    t.Polygon: _polygon,
    t.Region: lambda n: f"REGION({_string(n.text)})",
    t.Contains: lambda n: f"CONTAINS({_list((n.left, n.right))})",
    t.Intersects: lambda n: f"INTERSECTS({_list((n.left, n.right))})",
    t.Distance: _distance,
    t.GeometryFunction: lambda n: f"{n.name}({_expr(n.arg)})",
    t.Star: lambda n: "*" if n.table is None else f"{_table_name(n.table)}.*",
    t.SelectColumn: lambda n: _expr(n.expr) + _alias(n.alias),
    t.OrderItem: _order_item,
    t.Table: lambda n: _table_name(n.name) + _alias(n.alias),
    t.DerivedTable: lambda n: _subquery(n.query) + _alias(n.alias),
    t.Join: _table_ref,
    t.Select: _select,
    t.SetOperation: _set_operation,
    t.ParenthesizedQuery: _parenthesized,
    t.Query: _query,
}
