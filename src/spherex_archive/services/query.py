"""The query engine: ADQL text -> syntax tree -> SQL -> rows from the catalogue.

TAP runs user queries through it, SIA its own queries on the ObsCore view. Every problem with
the query, from its syntax to an error the database found while running it, comes out as one
exception type with a position (AdqlError); a query running too long as QueryTimeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

from spherex_archive.adql.errors import AdqlError
from spherex_archive.adql.parser import parse
from spherex_archive.adql.translate import Translation, UploadTable, translate
from spherex_archive.adql.tree import Query
from spherex_archive.catalogue.base import Catalogue, QueryTimeout
from spherex_archive.formats.cells import timestamp_text
from spherex_archive.model.schema import Column

__all__ = ["AdqlError", "QueryAnswer", "QueryEngine", "QueryTimeout", "UploadTable"]


@dataclass
class QueryAnswer:
    columns: list[Column]
    rows: Iterator[tuple]
    overflow: Callable[[], bool]
    """True when MAXREC (or the engine's row limit) cut the answer; known once rows are read."""
    sql: str


def _database_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


DATABASE_ERRORS = _database_errors()


def _refused(error: BaseException) -> AdqlError:
    # The query passed translation, so what is left is about values (types, division by zero).
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return AdqlError(f"the database could not run the query: {message}", 1, 1)


FIX_BATCH = 1000
"""Rows whose cells are checked together."""

_NONE = type(None)


def _fix_boolean(v: Any) -> bool | None:
    return v if v is None or v.__class__ is bool else bool(v)


def _fix_integer(v: Any) -> int | None:  # PostgreSQL sums and averages: Decimal
    return v if v.__class__ is int or v is None else int(v)


def _fix_real(v: Any) -> float | None:  # an integral REAL can come back as int
    return v if v.__class__ is float or v is None else float(v)


def _fix_timestamp(v: Any) -> str | None:
    return None if v is None else timestamp_text(v)


@lru_cache(maxsize=256)
def _fixes(columns: tuple[Column, ...]) -> tuple[tuple[int, frozenset, Callable], ...]:
    """(index, the types its cells may have as they are, the fix of a cell) of each column
    whose cells may need a fix so that both databases answer alike; a timestamp always does."""
    fixes = []
    for i, column in enumerate(columns):
        if column.is_timestamp:
            fixes.append((i, frozenset(), _fix_timestamp))
        elif column.datatype == "boolean":
            fixes.append((i, frozenset({bool, _NONE}), _fix_boolean))
        elif column.datatype in ("short", "int", "long"):
            fixes.append((i, frozenset({int, _NONE}), _fix_integer))
        elif column.datatype in ("float", "double"):
            fixes.append((i, frozenset({float, _NONE}), _fix_real))
    return tuple(fixes)


def _fixed_rows(rows: Iterator[tuple], columns: list[Column]) -> Iterator[tuple]:
    """``rows`` with their cells fixed, a batch at a time: a column's types are checked in one
    C call (``issuperset(map(type, column))``), and only a column that needs it is fixed cell
    by cell, where a compiled fix of every row cost as much as writing the answer."""
    fixes = _fixes(tuple(columns))
    if not fixes:
        yield from rows
        return
    while batch := list(islice(rows, FIX_BATCH)):
        values = list(zip(*batch, strict=True))
        fixed = False
        for i, allowed, fix in fixes:
            if not allowed.issuperset(map(type, values[i])):
                values[i] = list(map(fix, values[i]))
                fixed = True
        yield from (zip(*values, strict=True) if fixed else batch)


class QueryEngine:
    """Runs ADQL on one catalogue with a time limit and a row limit."""

    def __init__(
        self, catalogue: Catalogue, *, timeout: float = 300.0, max_rows: int = 2_000_000
    ) -> None:
        self.catalogue = catalogue
        self.timeout = timeout
        self.max_rows = max_rows

    def translate(
        self,
        adql: str | Query,
        uploads: Mapping[str, UploadTable] | None = None,
        *,
        internal: bool = False,
    ) -> Translation:
        """The SQL for ``adql`` (text, or a syntax tree the archive built) on this catalogue
        (AdqlError if it is not a valid query); ``internal`` for the archive's own queries,
        which may read hidden columns."""
        try:
            tree = parse(adql) if isinstance(adql, str) else adql
            return translate(
                tree,
                self.catalogue.dialect,
                uploads,
                internal=internal,
                zone_index=self.catalogue.zone_index(),
            )
        except RecursionError:
            raise AdqlError("the query is nested too deeply", 1, 1) from None

    def run(
        self,
        adql: str | Query,
        *,
        maxrec: int | None = None,
        uploads: Mapping[str, UploadTable] | None = None,
        internal: bool = False,
    ) -> QueryAnswer:
        translation = self.translate(adql, uploads, internal=internal)
        if maxrec is not None and maxrec <= 0:
            # MAXREC=0: the metadata only, the query need not run [TAP §2.7.4]; the answer
            # is marked as cut, as DALI §4.4.1 asks.
            return QueryAnswer(translation.columns, iter(()), lambda: True, translation.sql)
        limit = self.max_rows if maxrec is None else min(maxrec, self.max_rows)
        try:
            result = self.catalogue.query(
                translation.sql, translation.params, timeout=self.timeout, max_rows=limit
            )
        except DATABASE_ERRORS as error:
            raise _refused(error) from None
        rows = self._rows(result.rows, translation.columns)
        return QueryAnswer(translation.columns, rows, lambda: result.overflow, translation.sql)

    @staticmethod
    def _rows(rows: Iterator[tuple], columns: list[Column]) -> Iterator[tuple]:
        try:
            yield from _fixed_rows(rows, columns)
        except QueryTimeout:
            raise
        except DATABASE_ERRORS as error:
            raise _refused(error) from None
