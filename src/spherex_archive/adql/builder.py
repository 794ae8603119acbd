"""Turns the LALR parser's reductions into tree nodes, checking what the grammar leaves open.

Lark calls one method per grammar rule (or rule alias) with that rule's children: tree nodes,
lark Tokens for the named terminals, and None for an absent ``[optional]`` part. The checks
made here rather than in the grammar, each failing with the offending node's position:

- conditions against values (checks.py): WHERE, HAVING, ON, NOT, AND, OR and a searched WHEN
  need a condition; everything else a value; arithmetic and string operators a non-geometry;
- the argument count and form of every standard function (the geometry ones in geometry.py);
- reserved words used as names, over-long dotted names, joins without a condition, TOP and
  OFFSET that are not whole numbers.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from lark import Token

from . import tree as t
from .checks import fail, need_condition, need_scalar, need_value, show
from .geometry import geometry
from .keywords import FUNCTION_ARITY, GEOMETRY_FUNCTIONS, RESERVED_WORDS
from .unparse import to_adql


class _JoinSpec(NamedTuple):
    """ON or USING, until the join it belongs to is built."""

    pos: t.Position
    on: t.Node | None = None
    using: tuple[t.Identifier, ...] | None = None


class _Parenthesized(NamedTuple):
    """A query in parentheses, until we know whether the parentheses change its meaning."""

    query: t.QueryExpr


def number_value(text: str) -> int | float:
    """The value of an unsigned number as the lexer found it (hexadecimal, whole or real)."""
    if text[:2].lower() == "0x":
        return int(text, 16)
    if text.isdigit():
        return int(text)
    return float(text)


def _pos(token: Token) -> t.Position:
    return t.Position(token.line, token.column, token.start_pos)


def _whole_number(token: Token, what: str) -> int:
    if not token.isdigit():
        raise fail(f"{what} needs a whole number, found {token}", _pos(token))
    return int(token)


def _unwrap(query: t.QueryExpr | _Parenthesized) -> t.QueryExpr:
    return query.query if isinstance(query, _Parenthesized) else query


def _absorbs(query: t.QueryExpr) -> bool:
    """Whether ``(query) ORDER BY/OFFSET ...`` means the same as putting them inside."""
    if query.order_by or query.offset is not None:
        return False
    return not (isinstance(query, t.Select) and query.top is not None)


def _table_name(parts: list[t.Identifier]) -> t.TableName:
    if len(parts) > 3:
        dotted = ".".join(to_adql(part) for part in parts)
        raise fail(
            f"a table name has at most three parts (catalog.schema.table), found {dotted}",
            parts[0].pos,
        )
    return t.TableName(*reversed(parts), pos=parts[0].pos)


def _count(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low} argument{'s' * (low != 1)}"
    if low == high:
        return f"{low} argument{'s' * (low != 1)}"
    return f"{low} or {high} arguments" if high == low + 1 else f"{low} to {high} arguments"


def _check_arity(name: str, args: tuple, pos: t.Position, low: int, high: int | None) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        raise fail(f"{name} takes {_count(low, high)}, found {len(args)}", pos)


class Builder:
    """Lark's inline callbacks: one method per rule or alias of grammar.lark."""

    # ---- query structure

    def start(self, children: list) -> t.Query:
        return children[0]

    def query(self, children: list) -> t.Query:
        ctes, body = children
        body = _unwrap(body)
        if ctes is None:
            return t.Query(body, pos=body.pos)
        return t.Query(body, tuple(ctes[1:]), pos=_pos(ctes[0]))

    def with_clause(self, children: list) -> list:
        return children

    def cte(self, children: list) -> t.CommonTableExpr:
        name, query = children
        return t.CommonTableExpr(name, _unwrap(query), pos=name.pos)

    def select_expr(self, children: list) -> t.QueryExpr:
        query, order_by, offset = children
        if order_by is None and offset is None:
            return _unwrap(query)
        order_by = order_by or ()
        if isinstance(query, _Parenthesized):
            query = query.query
            if not _absorbs(query):
                return t.ParenthesizedQuery(query, order_by, offset, pos=query.pos)
        return dataclasses.replace(query, order_by=order_by, offset=offset)

    def set_operation(self, children: list) -> t.SetOperation:
        left, op, all_, right = children
        left = _unwrap(left)
        return t.SetOperation(op.type, left, _unwrap(right), all=all_ is not None, pos=left.pos)

    def paren_query(self, children: list) -> _Parenthesized:
        return _Parenthesized(children[0])

    def select_query(self, children: list) -> t.Select:
        select, quantifier, top, columns, from_, where, group_by, having = children
        return t.Select(
            columns,
            from_,
            distinct=quantifier is not None and quantifier.type == "DISTINCT",
            top=top,
            where=where,
            group_by=group_by or (),
            having=having,
            pos=_pos(select),
        )

    def set_quantifier(self, children: list) -> Token:
        return children[0]

    def top(self, children: list) -> int:
        return _whole_number(children[0], "TOP")

    def offset(self, children: list) -> int:
        return _whole_number(children[0], "OFFSET")

    def select_list(self, children: list) -> tuple:
        return tuple(children)

    def star(self, children: list) -> t.Star:
        return t.Star(pos=_pos(children[0]))

    def qualified_star(self, children: list) -> t.Star:
        parts, _ = children
        return t.Star(_table_name(parts), pos=parts[0].pos)

    def select_column(self, children: list) -> t.SelectColumn:
        expr, alias = children
        return t.SelectColumn(need_value(expr, "in the select list"), alias, pos=expr.pos)

    def from_clause(self, children: list) -> tuple:
        return tuple(children)

    def where(self, children: list) -> t.Node:
        return need_condition(children[0], "after WHERE")

    def having(self, children: list) -> t.Node:
        return need_condition(children[0], "after HAVING")

    def group_by(self, children: list) -> tuple:
        return tuple(need_value(expr, "in GROUP BY") for expr in children)

    def order_by(self, children: list) -> tuple:
        return tuple(children)

    def order_item(self, children: list) -> t.OrderItem:
        expr, direction = children
        need_value(expr, "in ORDER BY")
        descending = direction is not None and direction.type == "DESC"
        return t.OrderItem(expr, descending, pos=expr.pos)

    # ---- FROM

    def table(self, children: list) -> t.Table:
        parts, alias = children
        return t.Table(_table_name(parts), alias, pos=parts[0].pos)

    def derived_table(self, children: list) -> t.DerivedTable:
        query, alias = children
        query = _unwrap(query)
        return t.DerivedTable(query, alias, pos=query.pos)

    def paren_join(self, children: list) -> t.Join:
        join, alias = children
        return join if alias is None else dataclasses.replace(join, alias=alias)

    def joined_table(self, children: list) -> t.Join:
        left, natural, kind, join, right, spec = children
        if natural is not None and spec is not None:
            raise fail("a NATURAL join takes no ON or USING", spec.pos)
        if natural is None and spec is None:
            raise fail(
                "a JOIN needs ON <condition> or USING (<columns>) after the joined table, "
                "or write NATURAL JOIN or CROSS JOIN",
                _pos(join),
            )
        on, using = (None, None) if spec is None else (spec.on, spec.using)
        return t.Join(kind or "INNER", left, right, natural is not None, on, using, pos=left.pos)

    def cross_join(self, children: list) -> t.Join:
        left, _, _, right = children
        return t.Join("CROSS", left, right, pos=left.pos)

    def join_type(self, children: list) -> str:
        return children[0].type

    def join_on(self, children: list) -> _JoinSpec:
        on, condition = children
        return _JoinSpec(_pos(on), on=need_condition(condition, "after ON"))

    def join_using(self, children: list) -> _JoinSpec:
        using, *columns = children
        return _JoinSpec(_pos(using), using=tuple(columns))

    # ---- conditions

    def or_(self, children: list) -> t.Or:
        left, right = children
        need_condition(left, "before OR")
        return t.Or(left, need_condition(right, "after OR"), pos=left.pos)

    def and_(self, children: list) -> t.And:
        left, right = children
        need_condition(left, "before AND")
        return t.And(left, need_condition(right, "after AND"), pos=left.pos)

    def not_(self, children: list) -> t.Not:
        not_, operand = children
        return t.Not(need_condition(operand, "after NOT"), pos=_pos(not_))

    def comparison(self, children: list) -> t.Comparison:
        left, op, right = children
        need_value(left, f"before {op}")
        need_value(right, f"after {op}")
        return t.Comparison("<>" if op == "!=" else str(op), left, right, pos=left.pos)

    def between(self, children: list) -> t.Between:
        expr, not_, _, low, high = children
        need_value(expr, "before BETWEEN")
        need_value(low, "after BETWEEN")
        need_value(high, "after BETWEEN ... AND")
        return t.Between(expr, low, high, not_ is not None, pos=expr.pos)

    def like(self, children: list) -> t.Like:
        expr, not_, like, pattern = children
        need_scalar(expr, f"before {like.type}")
        need_scalar(pattern, f"after {like.type}")
        return t.Like(expr, pattern, not_ is not None, like.type == "ILIKE", pos=expr.pos)

    def in_subquery(self, children: list) -> t.InSubquery:
        expr, not_, _, query = children
        need_value(expr, "before IN")
        return t.InSubquery(expr, _unwrap(query), not_ is not None, pos=expr.pos)

    def in_list(self, children: list) -> t.InList:
        expr, not_, _, *values = children
        need_value(expr, "before IN")
        for value in values:
            need_value(value, "in an IN list")
        return t.InList(expr, tuple(values), not_ is not None, pos=expr.pos)

    def is_null(self, children: list) -> t.IsNull:
        expr, not_, _ = children
        return t.IsNull(need_value(expr, "before IS"), not_ is not None, pos=expr.pos)

    def exists(self, children: list) -> t.Exists:
        exists, query = children
        return t.Exists(_unwrap(query), pos=_pos(exists))

    # ---- values

    def binary_op(self, children: list) -> t.BinaryOp:
        left, op, right = children
        need_scalar(left, f"before {op}")
        need_scalar(right, f"after {op}")
        return t.BinaryOp(str(op), left, right, pos=left.pos)

    def unary_op(self, children: list) -> t.UnaryOp:
        op, operand = children
        return t.UnaryOp(str(op), need_scalar(operand, f"after {op}"), pos=_pos(op))

    def number(self, children: list) -> t.NumberLiteral:
        text = str(children[0])
        return t.NumberLiteral(text, number_value(text), pos=_pos(children[0]))

    def string(self, children: list) -> t.StringLiteral:
        # Adjacent literals are one string, as in SQL-92 ('abc' -- comment <newline> 'def').
        value = "".join(token[1:-1].replace("''", "'") for token in children)
        return t.StringLiteral(value, pos=_pos(children[0]))

    def null(self, children: list) -> t.NullLiteral:
        return t.NullLiteral(pos=_pos(children[0]))

    def column_ref(self, children: list) -> t.ColumnRef:
        parts = children[0]
        if len(parts) > 4:
            dotted = ".".join(to_adql(part) for part in parts)
            raise fail(
                f"a column name has at most four parts (catalog.schema.table.column), "
                f"found {dotted}",
                parts[0].pos,
            )
        table = _table_name(parts[:-1]) if len(parts) > 1 else None
        return t.ColumnRef(parts[-1], table, pos=parts[0].pos)

    def scalar_subquery(self, children: list) -> t.ScalarSubquery:
        query = _unwrap(children[0])
        return t.ScalarSubquery(query, pos=query.pos)

    def dotted(self, children: list) -> list[t.Identifier]:
        return children if len(children) == 1 else [*children[0], children[1]]

    def ident(self, children: list) -> t.Identifier:
        token = children[0]
        if token.type == "DELIMITED_IDENT":
            return t.Identifier(token[1:-1].replace('""', '"'), True, pos=_pos(token))
        _check_not_reserved(token)
        return t.Identifier(str(token), pos=_pos(token))

    # ---- functions

    def arguments(self, children: list) -> tuple:
        return tuple(children)

    def function_name(self, children: list) -> Token:
        return children[0]

    def function_call(self, children: list) -> t.Node:
        token, args = children
        name, args, pos = token.type, args or (), _pos(token)
        if name in GEOMETRY_FUNCTIONS:
            return geometry(name, args, pos)
        if name == "IN_UNIT":
            _check_arity(name, args, pos, 2, 2)
            if not isinstance(args[1], t.StringLiteral):
                unit = show(args[1])
                raise fail(
                    f"expected a unit string such as 'deg' in IN_UNIT, found {unit}", args[1].pos
                )
            return t.InUnit(
                need_scalar(args[0], "as the first argument of IN_UNIT"), args[1].value, pos=pos
            )
        _check_arity(name, args, pos, *FUNCTION_ARITY[name])
        check = need_value if name == "COALESCE" else need_scalar
        for arg in args:
            check(arg, f"as an argument of {name}")
        return t.Function(name, args, pos=pos)

    def user_function(self, children: list) -> t.UserFunction:
        name, args = children
        _check_not_reserved(name)
        args = args or ()
        for arg in args:
            need_value(arg, f"as an argument of {name}")
        return t.UserFunction(str(name), args, pos=_pos(name))

    def count_star(self, children: list) -> t.Aggregate:
        return t.Aggregate("COUNT", None, pos=_pos(children[0]))

    def aggregate(self, children: list) -> t.Aggregate:
        name, quantifier, arg = children
        distinct = quantifier is not None and quantifier.type == "DISTINCT"
        need_value(arg, f"as the argument of {name.type}")
        return t.Aggregate(name.type, arg, distinct, pos=_pos(name))

    def cast(self, children: list) -> t.Cast:
        cast, expr, (type_, length) = children
        return t.Cast(need_value(expr, "in CAST"), type_, length, pos=_pos(cast))

    def cast_type(self, children: list) -> tuple[str, int | None]:
        first, *rest = children
        if first.type in ("CHAR", "VARCHAR"):  # rest is [length or None]
            length = None if rest[0] is None else _whole_number(rest[0], first.type)
            return first.type, length
        return " ".join(token.type for token in children), None

    def case(self, children: list) -> t.Case:
        case, operand, *whens, else_ = children
        if operand is not None:
            need_value(operand, "after CASE")
        for when in whens:
            if operand is None:
                need_condition(when.condition, "after WHEN")
            else:
                need_value(when.condition, "after WHEN")
            need_value(when.result, "after THEN")
        if else_ is not None:
            need_value(else_, "after ELSE")
        return t.Case(operand, tuple(whens), else_, pos=_pos(case))

    def when_clause(self, children: list) -> t.WhenClause:
        condition, result = children
        return t.WhenClause(condition, result, pos=condition.pos)


def _check_not_reserved(token: Token) -> None:
    if token.upper() in RESERVED_WORDS:
        raise fail(
            f'{token} is a reserved word; write it in double quotes ("{token}") to use it as a '
            "name",
            _pos(token),
        )
