"""parse(): ADQL text to a syntax tree, with Lark's LALR(1) parser and grammar.lark.

The tree is built while parsing (Lark's inline transformer), so no intermediate parse tree is
made; the parser tables are built once, on first use. Syntax errors come out as AdqlSyntaxError
from the lexer (a bad character), the builder (checks beyond the grammar) or, for a token the
grammar does not allow, diagnostics.py.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lark import Lark
from lark.exceptions import UnexpectedToken

from . import tree as t
from .builder import Builder
from .diagnostics import unexpected_token
from .lexer import AdqlLexer

GRAMMAR = Path(__file__).with_name("grammar.lark")


@cache
def _lark() -> Lark:
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer=AdqlLexer,
        transformer=Builder(),
        maybe_placeholders=True,
    )


def parse(query: str) -> t.Query:
    """The syntax tree of one ADQL 2.1 query; AdqlSyntaxError says where and why it is not."""
    lark = _lark()
    try:
        return lark.parse(query)
    except UnexpectedToken as error:
        tokens = AdqlLexer(lark.lexer_conf).lex(query)
        raise unexpected_token(query, error, tokens) from None
