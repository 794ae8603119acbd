"""The exceptions of the ADQL layer: every problem with a query, with where it is."""

from __future__ import annotations


class AdqlError(ValueError):
    """A query that cannot be run as asked, with where (1-based line and column) and why.

    ``str(error)`` is the whole sentence, e.g. "line 1, column 15: unknown table foo";
    ``message`` is the part after the position. Semantic problems (unknown names, unsupported
    functions) are AdqlError; AdqlSyntaxError is the subclass for text that is not ADQL.
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column


class AdqlSyntaxError(AdqlError):
    """A query that is not ADQL 2.1, e.g. "line 1, column 8: expected a column name, an
    expression or '*' after SELECT, found FROM"."""
