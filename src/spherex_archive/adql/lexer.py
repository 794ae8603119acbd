"""The tokenizer Lark's parser reads from: grammar.lark's terminals, matched faster.

Lark's own lexer tells a keyword from a name by matching each word against one pattern made of
all ~110 keywords, a third of the parse time; here a word is looked up in a dict. The patterns
themselves all come from grammar.lark, which stays the one definition of the tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lark.common import LexerConf
from lark.lexer import Lexer, PatternStr, Token

from .errors import AdqlSyntaxError

WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class AdqlLexer(Lexer):
    def __init__(self, conf: LexerConf) -> None:
        self.keywords: dict[str, str] = {}
        patterns, symbols = [], []
        for terminal in conf.terminals:
            if not isinstance(terminal.pattern, PatternStr):
                patterns.append(terminal)
            elif WORD.fullmatch(terminal.pattern.value):
                self.keywords[terminal.pattern.value.upper()] = terminal.name
            else:
                symbols.append(terminal)
        # Patterns first ("--" is a comment, ".5" a number), then symbols longest first ("||").
        symbols.sort(key=lambda terminal: -len(terminal.pattern.value))
        self.regex = re.compile(
            "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in patterns + symbols)
        )
        self.ignore = frozenset(conf.ignore)

    def lex(self, text: str) -> Iterator[Token]:
        match, keywords, ignore = self.regex.match, self.keywords, self.ignore
        pos, line, line_start = 0, 1, 0
        while pos < len(text):
            found = match(text, pos)
            if found is None:
                raise unexpected_character(text, pos, line, pos - line_start + 1)
            name, value, end = found.lastgroup, found.group(), found.end()
            column = pos - line_start + 1
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = pos + value.rindex("\n") + 1
            if name not in ignore:
                if name == "IDENT":
                    name = keywords.get(value.upper(), name)
                end_column = end - line_start + 1
                yield Token(name, value, pos, line - newlines, column, line, end_column, end)
            pos = end


def unexpected_character(text: str, pos: int, line: int, column: int) -> AdqlSyntaxError:
    char, rest = text[pos], text[pos:]
    if char == '"':
        why = (
            'an empty name "" is not allowed'
            if rest.startswith('""')
            else "this double quote is never closed"
        )
    elif char == "'":
        why = "this string is never closed (a quote inside a string is written '')"
    elif char == "_":
        word = re.match(r"\w+", rest).group()
        why = f'a name must start with a letter; write "{word}" to use {word} as a name'
    elif char == ";":
        why = "unexpected ';' (an ADQL query has no terminating semicolon)"
    else:
        why = f"unexpected character {char!r}"
    return AdqlSyntaxError(why, line, column)
