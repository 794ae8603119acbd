"""Trees kept by query shape (adql/parser.py): a query parsed from a kept tree is the tree a
fresh parse makes, positions included, for every query of the conformance corpus with its
numbers changed."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from spherex_archive.adql import AdqlSyntaxError, parse, parser
from spherex_archive.adql import tree as t

from .test_conformance import CASES, _expected_to_parse


def other_numbers(query: str) -> str:
    """``query`` with every number changed to another of the same kind and another length."""
    tokens = [k for k in parser._lexer().lex(query) if k.type == "NUMBER"]
    for token in reversed(tokens):
        text = str(token)
        if text[:2].lower() == "0x":
            new = hex(int(text, 16) * 7 + 300)
        elif text.isdigit():
            new = str(int(text) * 13 + 107)
        else:
            new = repr(float(text) * 1.37 + 10.5)
        query = query[: token.start_pos] + new + query[token.end_pos :]
    return query


def layout(value: Any) -> list:
    """Every node of a tree with its position, in order (``==`` on trees ignores positions)."""
    if isinstance(value, t.Node):
        out = [(type(value).__name__, value.pos)]
        for f in fields(value):
            if f.name != "pos":
                out += layout(getattr(value, f.name))
        return out
    if isinstance(value, tuple):
        return [item for v in value for item in layout(v)]
    return [value]


def fresh_parse(query: str) -> t.Query:
    parser._templates.clear()
    return parse(query)


VALID = [case for case in CASES if _expected_to_parse(case.values[0])]


@pytest.mark.parametrize("case", VALID)
def test_a_kept_tree_is_what_a_parse_makes(case) -> None:
    text = case.text
    fresh_parse(text)  # its tree is kept
    changed = other_numbers(text)
    copied = parse(changed)
    expected = fresh_parse(changed)
    assert copied == expected
    assert layout(copied) == layout(expected)


def test_numbers_outside_literals_are_part_of_the_shape() -> None:
    parser._templates.clear()
    assert parse("SELECT TOP 5 a FROM t WHERE b > 1.5").body.top == 5
    assert parse("SELECT TOP 7 a FROM t WHERE b > 2.5").body.top == 7
    with pytest.raises(AdqlSyntaxError, match="TOP needs a whole number"):
        parse("SELECT TOP 7.5 a FROM t WHERE b > 2.5")
    parse("SELECT CAST(a AS CHAR(8)) FROM t OFFSET 10")
    select = parse("SELECT CAST(a AS CHAR(12)) FROM t OFFSET 30").body
    assert select.columns[0].expr.length == 12 and select.offset == 30


def test_positions_follow_the_new_text() -> None:
    parser._templates.clear()
    parse("SELECT a FROM t WHERE b = 1")
    tree = parse("SELECT a FROM t\n  WHERE b = 1000000 AND c < 2")  # another shape
    assert tree.body.where.right.left.pos == t.Position(2, 25, 40)
    parse("SELECT a FROM t WHERE b = 1 AND c < 2")
    tree = parse("SELECT a FROM t WHERE b = 1000000 AND c < 2")  # a kept shape
    comparison = tree.body.where.right
    assert (comparison.left.pos.column, comparison.right.text) == (39, "2")
