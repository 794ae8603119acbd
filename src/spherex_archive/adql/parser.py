"""parse(): ADQL text to a syntax tree, with Lark's LALR(1) parser and grammar.lark.

The tree is built while parsing (Lark's inline transformer), so no intermediate parse tree is
made; the parser tables are built once, on first use. Syntax errors come out as AdqlSyntaxError
from the lexer (a bad character), the builder (checks beyond the grammar) or, for a token the
grammar does not allow, diagnostics.py.

Clients send the same query again and again with other numbers in it (a cone search per
source of a list), so trees are kept by the query's shape: its tokens, with the numbers that
became NumberLiteral nodes left out. A query of a known shape is lexed, not parsed: the kept
tree is copied with its numbers and positions taken from the new text. The parser only sees
token types, and the builder turns a NumberLiteral's text into its value with no check, so the
copy is the tree a parse would make (the conformance corpus is checked both ways in the tests).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedToken

from . import tree as t
from .builder import Builder, number_value
from .diagnostics import unexpected_token
from .lexer import AdqlLexer

GRAMMAR = Path(__file__).with_name("grammar.lark")

SHAPES_KEPT = 256
"""Query shapes whose trees are kept (least recently used dropped first)."""
TREES_PER_SHAPE = 4
"""Trees kept per shape, for shapes that differ only in numbers such as TOP's."""
LONGEST_KEPT = 2000
"""Tokens of the longest query whose tree is kept (a long IN list is not worth the memory)."""


@cache
def _lark() -> Lark:
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer=AdqlLexer,
        transformer=Builder(),
        maybe_placeholders=True,
    )


@cache
def _lexer() -> AdqlLexer:
    return AdqlLexer(_lark().lexer_conf)


def parse(query: str) -> t.Query:
    """The syntax tree of one ADQL 2.1 query; AdqlSyntaxError says where and why it is not."""
    tokens = list(_lexer().lex(query))
    key = _shape(tokens)
    with _lock:
        templates = _templates.get(key, ())
        template = next(
            (p for p in templates if all(tokens[i] == n for i, n in p.kept_numbers)), None
        )
        if template is not None:
            _templates.move_to_end(key)
    if template is not None:
        return template.copy(tokens)
    lark = _lark()
    try:
        tree = lark.parse(query)
    except UnexpectedToken as error:
        raise unexpected_token(query, error, iter(tokens)) from None
    _remember(key, tree, tokens)
    return tree


# --------------------------------------------------------------------------------------------
# Trees kept by shape


def _shape(tokens: list[Token]) -> tuple:
    return tuple((k.type, None if k.type == "NUMBER" else str(k)) for k in tokens)


@dataclass(frozen=True)
class _Template:
    tree: t.Query
    offsets: tuple[int, ...]
    """Where each token starts in the query the tree was parsed from."""
    literals: frozenset[int]
    """Offsets of the numbers that are NumberLiteral nodes (the others, TOP 10 or CHAR(8),
    became parts of other nodes and are part of the shape)."""
    kept_numbers: tuple[tuple[int, str], ...]
    """(token index, text) of those other numbers: a query must have the same ones."""

    def copy(self, tokens: list[Token]) -> t.Query:
        moved = {
            old: t.Position(k.line, k.column, k.start_pos)
            for old, k in zip(self.offsets, tokens, strict=True)
        }
        texts = {old: str(k) for old, k in zip(self.offsets, tokens, strict=True)}
        return _copy(self.tree, moved, texts, self.literals)


_templates: OrderedDict[tuple, list[_Template]] = OrderedDict()
_lock = threading.Lock()  # queries are parsed in several threads at once


def _remember(key: tuple, tree: t.Query, tokens: list[Token]) -> None:
    if len(tokens) > LONGEST_KEPT:
        return
    offsets = tuple(k.start_pos for k in tokens)
    positions: list[t.Position] = []
    literals: set[int] = set()
    _collect(tree, positions, literals)
    starts = set(offsets)
    if any(p is not t.NO_POSITION and p.offset not in starts for p in positions):
        return  # a node placed between tokens: it could not be moved (none is, today)
    kept = tuple(
        (i, str(k))
        for i, k in enumerate(tokens)
        if k.type == "NUMBER" and k.start_pos not in literals
    )
    template = _Template(tree, offsets, frozenset(literals), kept)
    with _lock:
        templates = _templates.setdefault(key, [])
        templates.append(template)
        del templates[:-TREES_PER_SHAPE]
        _templates.move_to_end(key)
        while len(_templates) > SHAPES_KEPT:
            _templates.popitem(last=False)


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "pos")


def _collect(value: Any, positions: list[t.Position], literals: set[int]) -> None:
    if isinstance(value, t.Node):
        positions.append(value.pos)
        if isinstance(value, t.NumberLiteral):
            literals.add(value.pos.offset)
            return
        for name in _field_names(type(value)):
            _collect(getattr(value, name), positions, literals)
    elif isinstance(value, tuple):
        for item in value:
            _collect(item, positions, literals)


def _copy(value: Any, moved: dict, texts: dict, literals: frozenset[int]) -> Any:
    if isinstance(value, t.Node):
        pos = value.pos if value.pos is t.NO_POSITION else moved[value.pos.offset]
        if isinstance(value, t.NumberLiteral) and value.pos.offset in literals:
            text = texts[value.pos.offset]
            return t.NumberLiteral(text, number_value(text), pos=pos)
        cls = type(value)
        values = {n: _copy(getattr(value, n), moved, texts, literals) for n in _field_names(cls)}
        return cls(**values, pos=pos)
    if isinstance(value, tuple):
        return tuple(_copy(item, moved, texts, literals) for item in value)
    return value
