"""The production catalogue: PostgreSQL with pgsphere.

Footprints are pgsphere ``spoly`` values under a GiST index, so the database itself answers
"which planes contain this point / overlap this circle" exactly and with its index. Readers
take connections from a pool whose sessions are read-only and in autocommit: a query is one
statement sent once, its rows streamed back in chunks (libpq's chunked-rows mode), so a typical
answer costs one round trip to the server where a transaction and a server-side cursor cost
eight (BEGIN, the timeout, DECLARE, its description, two FETCHes, CLOSE, ROLLBACK).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

from spherex_archive.catalogue.base import (
    Catalogue,
    CatalogueError,
    QueryResult,
    QueryTimeout,
    Writer,
    limited_rows,
)
from spherex_archive.catalogue.ddl import Dialect

BATCH = 2000
"""Rows per chunk the server sends while a query's answer streams."""
SCHEMAS = ("archive", "spherex", "ivoa", "caom", "tap_schema")
STATISTICS_TABLES = ("observation", "plane", "artifact", "provenance_input")
"""The tables an ingest fills, whose statistics the planner's joins depend on."""


def to_pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s``, escaping literal ``%`` (outside and inside
    string literals, as psycopg reads them everywhere once parameters are given)."""
    out = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def _prepare(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any] | None]:
    return (to_pyformat(sql), list(params)) if params else (sql, None)


@cache
def _chunk_rows() -> int:
    """Rows per chunk: libpq 17 and later stream chunks; older ones only single rows."""
    import psycopg

    return BATCH if psycopg.pq.version() >= 170000 else 1


def _spoly(ra: np.ndarray, dec: np.ndarray) -> str:
    return "{" + ",".join(f"({a:.12f}d,{b:.12f}d)" for a, b in zip(ra, dec, strict=True)) + "}"


class PostgresWriter(Writer):
    def __init__(self, conn, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(*_prepare(sql, params))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(*_prepare(sql, params)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cursor:
            cursor.executemany(to_pyformat(sql), [list(r) for r in rows])

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        self._copy(self.dialect.internal(table), columns, rows)

    def _copy(self, name: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        with (
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def add_to(self, table: str, key: Sequence[str], column: str, rows: Sequence[tuple]) -> None:
        # A statement per row costs a round trip's work each (an ingest adds tens of thousands
        # of coverage cells: 3.5 s of a 4 s ingest). Copied into a scratch table, one
        # statement adds them all (an array per column as parameters was slower still: the
        # server parses the arrays' text).
        if not rows:
            return
        name, columns = self.dialect.internal(table), [*key, column]
        names = ", ".join(columns)
        self.conn.execute(
            f"CREATE TEMPORARY TABLE _adding AS SELECT {names} FROM {name} WITH NO DATA"
        )
        self._copy("_adding", columns, rows)
        self.conn.execute(
            f"INSERT INTO {name} AS t ({names}) SELECT {names} FROM _adding "
            f"ON CONFLICT ({', '.join(key)}) "
            f"DO UPDATE SET {column} = t.{column} + excluded.{column}"
        )
        self.conn.execute("DROP TABLE _adding")

    def insert_planes(
        self, columns: Sequence[str], rows: Sequence[tuple], ra: np.ndarray, dec: np.ndarray
    ) -> None:
        self.bulk_insert(
            "plane",
            [*columns, "footprint"],
            [(*row, _spoly(r, d)) for row, r, d in zip(rows, ra, dec, strict=True)],
        )

    def set_footprints(
        self,
        planeids: Sequence[int],
        ra: np.ndarray,
        dec: np.ndarray,
        release_dates: Sequence[str],
    ) -> None:
        self.executemany(
            f"UPDATE {self.dialect.internal('plane')} SET footprint = CAST(? AS spoly) "
            "WHERE planeid = ?",
            [(_spoly(r, d), int(p)) for p, r, d in zip(planeids, ra, dec, strict=True)],
        )


class PostgresCatalogue(Catalogue):
    def __init__(self, url: str) -> None:
        try:
            import psycopg  # noqa: F401
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise CatalogueError(
                "PostgreSQL needs the 'postgres' extra: pip install 'spherex-archive[postgres]'"
            ) from None
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.dialect = Dialect("postgresql")
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=8,
            open=False,
            configure=self._configure_reader,
            kwargs={"autocommit": True},
        )
        self._opened = False
        self._write_conn = None
        # Each reader session's statement_timeout, set only when a query asks for another one.
        self._timeouts: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    @staticmethod
    def _configure_reader(conn) -> None:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET search_path = public")

    def _connect(self):
        import psycopg

        try:
            return psycopg.connect(self.url)
        except psycopg.OperationalError as error:
            raise CatalogueError(f"cannot connect to {self.url}: {error}") from None

    def _readers(self):
        if not self._opened:
            self._pool.open(wait=True, timeout=30)
            self._opened = True
        return self._pool

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None

    # --- schema and writing ----------------------------------------------------------------

    def create(self) -> None:
        import psycopg

        with self.writer() as w:
            try:
                w.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
            except psycopg.Error as error:
                raise CatalogueError(
                    f"pgsphere is not usable in this database ({error}); see docs/pgsphere.md"
                ) from None
            for schema in SCHEMAS:
                w.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for statement in self._initial_statements():
                w.execute(statement)
            self._refresh_derived(w)

    @contextmanager
    def writer(self) -> Iterator[PostgresWriter]:
        # One connection for all of this catalogue's write transactions: an ingest commits
        # many small deliveries, and a new connection each time cost more than the writing.
        if self._write_conn is None or self._write_conn.closed:
            self._write_conn = self._connect()
        conn = self._write_conn
        try:
            # Writers serialise on one advisory lock: ingests never interleave their deliveries.
            conn.execute("SELECT pg_advisory_xact_lock(736283)")
            yield PostgresWriter(conn, self.dialect)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def refresh_statistics(self) -> None:
        # PostgreSQL plans joins from table statistics, which autovacuum refreshes only some
        # time after a bulk load: until then a fresh ten-million-plane catalogue believed 60 000
        # current artifacts and hashed all ten million of them into every cone search (2.8 s).
        with self.writer() as w:
            w.execute(f"ANALYZE {', '.join(map(self.dialect.internal, STATISTICS_TABLES))}")

    # --- reading ---------------------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        timeout: float | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        import psycopg

        pool = self._readers()
        conn = pool.getconn()
        try:
            milliseconds = 0 if timeout is None else max(1, int(timeout * 1000))
            if self._timeouts.get(conn) != milliseconds:
                conn.execute(f"SET statement_timeout = {milliseconds}")
                self._timeouts[conn] = milliseconds
            cursor = conn.cursor()
            # The timeout covers the whole answer, as on SQLite: a sync query read slowly for
            # longer than its limit is stopped like one that computes for too long.
            stream = cursor.stream(*_prepare(sql, params), size=_chunk_rows())
            first = next(stream, None)  # runs the query: its errors are raised here
            if first is None:
                # An empty stream keeps no description: ask for the columns of no rows.
                cursor.execute(*_prepare(f"SELECT * FROM ({sql}) AS answer LIMIT 0", params))
            columns = [d.name for d in cursor.description or ()]
        except psycopg.errors.QueryCanceled:
            pool.putconn(conn)
            raise QueryTimeout(f"query stopped after {timeout} s") from None
        except BaseException:
            pool.putconn(conn)
            raise
        rows = stream if first is None else itertools.chain((first,), stream)
        result = QueryResult(columns, iter(()))
        result.rows = self._stream(pool, conn, stream, rows, result, max_rows, timeout)
        return result

    @staticmethod
    def _stream(pool, conn, stream, rows, result, max_rows, timeout) -> Iterator[tuple]:
        """The rows; a stream left before its end is cancelled on the server (psycopg does it
        when the generator closes), and the connection goes back to the pool."""
        import psycopg

        try:
            yield from limited_rows(rows, result, max_rows)
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(f"query stopped after {timeout} s") from None
        finally:
            try:
                stream.close()
            finally:
                pool.putconn(conn)

    # --- spatial ---------------------------------------------------------------------------

    def planes_containing(self, ra: float, dec: float) -> list[int]:
        rows = self.fetchall(
            f"SELECT planeid FROM {self.dialect.internal('plane')} "
            "WHERE footprint @> spoint(radians(?), radians(?)) "
            f"AND release_date <= {self.dialect.now}",
            (ra, dec),
        )
        return [r[0] for r in rows]

    def planes_intersecting_circle(self, ra: float, dec: float, radius: float) -> list[int]:
        rows = self.fetchall(
            f"SELECT planeid FROM {self.dialect.internal('plane')} "
            "WHERE footprint && scircle(spoint(radians(?), radians(?)), radians(?)) "
            f"AND release_date <= {self.dialect.now}",
            (ra, dec, radius),
        )
        return [r[0] for r in rows]
