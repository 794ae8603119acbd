"""Human messages for Lark's syntax errors: what was expected, after what, and what was found.

An LALR parser knows, at the failing token, the exact set of terminals it could have taken.
That set is put into words by collapsing the groups a person thinks in: everything that can
start a value becomes "a column or an expression", the operators "an operator".
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lark import Token
from lark.exceptions import UnexpectedToken

from .errors import AdqlSyntaxError
from .keywords import FUNCTION_NAMES, words

VALUE_STARTS = FUNCTION_NAMES | words(
    "NUMBER STRING NULL IDENT DELIMITED_IDENT LPAR PLUS MINUS TILDE CASE EXISTS NOT"
)
OPERATORS = words(
    "CONCAT VBAR CARET AMPERSAND PLUS MINUS STAR SLASH COMP_OP BETWEEN LIKE ILIKE IN _IS NOT _AND "
    "_OR DOT"
)
NAMES = frozenset({"IDENT", "DELIMITED_IDENT"})
# Clause keywords in the order a query uses them, so that lists of them read naturally.
CLAUSES = """SELECT WITH DISTINCT ALL _TOP _AS _FROM NATURAL INNER LEFT RIGHT FULL CROSS JOIN ON
    USING _WHERE _GROUP _HAVING UNION EXCEPT INTERSECT _ORDER ASC DESC _OFFSET"""
CLAUSE_ORDER = {keyword: rank for rank, keyword in enumerate(CLAUSES.split())}
# Keywords that people also use as column names ("distance", "timestamp", "point").
NAME_LIKE = FUNCTION_NAMES | words(
    "SMALLINT INTEGER BIGINT REAL DOUBLE PRECISION TIMESTAMP CHAR VARCHAR"
)
SHOWN = {"DOUBLE": "DOUBLE PRECISION", "_GROUP": "GROUP BY", "_ORDER": "ORDER BY", "DOT": "'.'"}
SHOWN |= {"LPAR": "'('", "RPAR": "')'", "COMMA": "','", "STAR": "'*'"}
SHOWN |= {"$END": "the end of the query"}
KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _word(terminal: str) -> str:
    return SHOWN.get(terminal, terminal.lstrip("_"))


def _expected(expected: set[str]) -> str:
    """The expected terminals in words, most telling first."""
    rest = set(expected)
    first, names = [], []
    if {"NUMBER", "IDENT"} <= rest:  # a value may start here
        first = ["a column", "an expression"]
        rest -= VALUE_STARTS
        if "STAR" in rest:  # SELECT * and COUNT(*)
            first.append(_word("STAR"))
            rest.discard("STAR")
    elif "NUMBER" in rest:
        first = ["a number"]
        rest.discard("NUMBER")
    if rest & NAMES:
        names = ["a name"]
        rest -= NAMES
    operators = rest & OPERATORS if len(rest & OPERATORS) > 2 else set()
    if operators:  # after a complete value, where '(' would only make it a function call
        rest.discard("LPAR")
    rest -= operators | {"$END"}
    phrases = first + [_word(k) for k in sorted(rest, key=_clause_rank)] + names
    if operators:
        phrases.append("an operator")
    if "$END" in expected:
        phrases.append(_word("$END"))
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _clause_rank(terminal: str) -> tuple[int, str]:
    return CLAUSE_ORDER.get(terminal, len(CLAUSE_ORDER)), terminal


def _is_keyword(token: Token) -> bool:
    return token.type not in NAMES and KEYWORD.fullmatch(token) is not None


def _shown_token(token: Token) -> str:
    if token.type == "$END":
        return _word("$END")
    if token.type in NAMES:
        return f"the name {token}"
    if token.type == "NUMBER":
        return f"the number {token}"
    if token.type == "STRING":
        return f"the string {token}"
    if _is_keyword(token):
        return token.upper()
    return f"'{token}'"


def _previous_token(tokens: Iterator[Token], offset: int) -> Token | None:
    previous = None
    try:
        for token in tokens:
            if token.start_pos >= offset:
                break
            previous = token
    except AdqlSyntaxError:
        pass  # a bad character further on: the tokens before it are what we need
    return previous


def unexpected_token(
    query: str, error: UnexpectedToken, tokens: Iterator[Token]
) -> AdqlSyntaxError:
    """The error for ``error`` in ``query``, whose tokens are ``tokens``."""
    token = error.token
    if token.type == "$END":
        line, column = (token.end_line, token.end_column) if token.end_line else (1, 1)
        offset = len(query)
    else:
        line, column, offset = token.line, token.column, token.start_pos
    expected = error.interactive_parser.accepts()
    previous = _previous_token(tokens, offset)
    message = f"expected {_expected(expected)}"
    if previous is not None:
        message += f" after {_shown_token(previous)}"
    message += f", found {_shown_token(token)}"
    return AdqlSyntaxError(message + _hint(token, previous, expected), line, column)


def _hint(token: Token, previous: Token | None, expected: set[str]) -> str:
    """A likely cause, for the mistakes people make most."""
    if token.type == "WITH":
        return " (WITH may only start the whole query)"
    if token.type in NAME_LIKE and expected & NAMES:
        return f' ({token.upper()} is a reserved word; write "{token}" to use it as a name)'
    if previous is not None and previous.type in NAME_LIKE and expected == {"LPAR"}:
        return f' ({previous.upper()} is a function; write "{previous}" to use it as a name)'
    if previous is not None and previous.type == "RPAR" and expected <= NAMES | {"_AS"}:
        return " (a subquery in FROM needs a name: (SELECT ...) AS name)"
    return ""
