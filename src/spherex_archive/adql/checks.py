"""Whether an expression may stand where it is: conditions against values, geometries against
numbers and strings. The grammar lets any expression through (see grammar.lark); these checks
give the errors, with the offending expression's position.
"""

from __future__ import annotations

from . import tree as t
from .errors import AdqlSyntaxError
from .unparse import to_adql

CONDITIONS = (
    t.Comparison,
    t.Between,
    t.Like,
    t.InList,
    t.InSubquery,
    t.IsNull,
    t.Exists,
    t.And,
    t.Or,
    t.Not,
)
SHAPES = (t.Point, t.Circle, t.Box, t.Polygon, t.Region)


def fail(message: str, pos: t.Position) -> AdqlSyntaxError:
    return AdqlSyntaxError(message, pos.line, pos.column)


def show(node: t.Node) -> str:
    try:
        text = to_adql(node)
    except RecursionError:  # thousands of nested operators: still a syntax error, not a crash
        return "(an expression too deep to show)"
    return text if len(text) <= 60 else text[:57] + "..."


def is_geometry(node: t.Node) -> bool:
    return isinstance(node, SHAPES) or (
        isinstance(node, t.GeometryFunction) and node.name == "CENTROID"
    )


def need_condition(node: t.Node, where: str) -> t.Node:
    if not isinstance(node, CONDITIONS):
        raise fail(
            f"expected a condition (a comparison, BETWEEN, LIKE, IN, IS NULL or EXISTS) {where}, "
            f"found the value {show(node)}",
            node.pos,
        )
    return node


def need_value(node: t.Node, where: str) -> t.Node:
    if isinstance(node, CONDITIONS):
        raise fail(f"expected a value {where}, found the condition {show(node)}", node.pos)
    return node


def need_scalar(node: t.Node, where: str) -> t.Node:
    """A value that arithmetic, string functions and coordinates accept: not a geometry."""
    need_value(node, where)
    if is_geometry(node):
        raise fail(
            f"expected a number or a string {where}, found the geometry {show(node)}", node.pos
        )
    return node
