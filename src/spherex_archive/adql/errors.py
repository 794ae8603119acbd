"""The one exception the ADQL parser raises."""

from __future__ import annotations


class AdqlSyntaxError(ValueError):
    """A query that is not ADQL 2.1, with where (1-based line and column) and why.

    ``str(error)`` is the whole sentence, e.g. "line 1, column 8: expected a column name, an
    expression or '*' after SELECT, found FROM"; ``message`` is the part after the position.
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column
