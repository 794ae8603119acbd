"""The embedded catalogue: one SQLite file in WAL mode (many readers while one process writes).

Spatial search: footprints are stored in declination zones sorted by RA (:mod:`zones`), so a
search reads a few contiguous runs of rows; SQLite itself tests each candidate's edge normals,
and only the tests that need more (circles, polygons) call Python functions.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from spherex_archive.catalogue import spatial, sqlite_functions, zones
from spherex_archive.catalogue.base import (
    Catalogue,
    CatalogueError,
    QueryResult,
    QueryTimeout,
    Writer,
    limited_rows,
)
from spherex_archive.catalogue.ddl import Dialect

LEGACY_RTREE = "archive_plane_rtree"
"""Where catalogues made before the zones index kept their footprints (moved on ``create``)."""


class SqliteWriter(Writer):
    def __init__(self, conn: sqlite3.Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        self.conn.executemany(
            f"INSERT INTO {self.dialect.internal(table)} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            rows,
        )

    def insert_planes(
        self, columns: Sequence[str], rows: Sequence[tuple], ra: np.ndarray, dec: np.ndarray
    ) -> None:
        self.bulk_insert("plane", columns, rows)
        ids = [row[columns.index("planeid")] for row in rows]
        released = [row[columns.index("release_date")] for row in rows]
        self.set_footprints(ids, ra, dec, released)

    def set_footprints(
        self,
        planeids: Sequence[int],
        ra: np.ndarray,
        dec: np.ndarray,
        release_dates: Sequence[str],
    ) -> None:
        if not len(planeids):
            return
        self.index_footprints(planeids, spatial.footprint_records(ra, dec), release_dates)

    def index_footprints(
        self, planeids: Sequence[int], records: np.ndarray, release_dates: Sequence[str]
    ) -> None:
        """File footprint records in the zones index, replacing a plane's earlier one."""
        placement = zones.place(planeids, records, release_dates)
        self.conn.executemany(
            f"DELETE FROM {zones.TABLE} WHERE planeid = ?", [(int(p),) for p in planeids]
        )
        self.conn.executemany(zones.INSERT, placement.rows)
        self.conn.executemany(
            f"INSERT INTO {zones.CLASSES} VALUES (?, ?) ON CONFLICT (class) "
            "DO UPDATE SET max_radius = max(max_radius, excluded.max_radius)",
            list(placement.class_radius.items()),
        )


class SqliteCatalogue(Catalogue):
    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = Dialect("sqlite")
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise CatalogueError(f"no file in catalogue URL {url!r}: use sqlite:///path/to.db")
        self.path = Path(path)
        # Reader connections belong to one query at a time, not to a thread: a streamed answer
        # is read from whichever thread the server picks, and two threads on one connection
        # can deadlock (one waits for the connection's mutex holding the GIL while the other,
        # in the middle of a step, runs the Python progress handler that needs the GIL).
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # --- connections -----------------------------------------------------------------------

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if readonly:
            if not self.path.exists():
                raise CatalogueError(f"no catalogue at {self.path}: ingest something first")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA query_only = 1")
            # ADQL's LIKE is case-sensitive, as on PostgreSQL (and then it can use indexes).
            conn.execute("PRAGMA case_sensitive_like = ON")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Row ids are hashes, so big ingests touch pages at random: keep them in memory.
            conn.execute("PRAGMA cache_size = -1048576")
        conn.execute("PRAGMA busy_timeout = 30000")
        if readonly:
            # Map the file so that every reader shares the operating system's page cache
            # instead of each keeping its own copy of the pages it reads.
            conn.execute("PRAGMA mmap_size = 17179869184")
            conn.execute("PRAGMA cache_size = -131072")
        sqlite_functions.register(conn)
        return conn

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect(readonly=True)

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._idle.append(conn)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._checkin(conn)

    def close(self) -> None:
        """Close the idle readers (one still streaming an answer closes when collected)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- schema and writing ----------------------------------------------------------------

    def _initial_statements(self) -> list[str]:
        return [*super()._initial_statements(), *zones.DDL]

    def create(self) -> None:
        with self.writer() as w:
            for statement in self._initial_statements():
                w.execute(statement)
            self._move_legacy_footprints(w)
            self._refresh_derived(w)

    @staticmethod
    def _move_legacy_footprints(w: SqliteWriter, chunk: int = 100_000) -> None:
        """Refile the footprints of a catalogue made with the R*Tree index in the zones index."""
        exists = w.fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [LEGACY_RTREE]
        )
        if not exists:
            return
        total = w.fetchall(f"SELECT COUNT(*) FROM {LEGACY_RTREE}")[0][0]
        bar = tqdm(
            total=total,
            desc="moving footprints to the zones index",
            unit="plane",
            unit_scale=True,
            disable=total < chunk,
        )
        # One pass over the R*Tree (it has no ordered access by id) while writing elsewhere.
        cursor = w.conn.execute(f"SELECT id, footprint, release_date FROM {LEGACY_RTREE}")
        while rows := cursor.fetchmany(chunk):
            w.index_footprints(
                [r[0] for r in rows],
                spatial.records_from_bytes([r[1] for r in rows]),
                [r[2] for r in rows],
            )
            bar.update(len(rows))
        bar.close()
        w.execute(f"DROP TABLE {LEGACY_RTREE}")

    @contextmanager
    def writer(self) -> Iterator[SqliteWriter]:
        conn = self._connect(readonly=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield SqliteWriter(conn, self.dialect)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    # --- reading ---------------------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        timeout: float | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        conn = self._checkout()
        if timeout is not None:
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 20000)
        else:
            conn.set_progress_handler(None, 0)
        try:
            cursor = conn.execute(sql, params)
        except sqlite3.OperationalError as error:
            self._checkin(conn)
            if "interrupted" in str(error):
                raise QueryTimeout(f"query stopped after {timeout} s") from None
            raise
        except BaseException:
            self._checkin(conn)
            raise
        columns = [d[0] for d in cursor.description or ()]
        result = QueryResult(columns, iter(()))
        result.rows = self._stream(conn, cursor, result, max_rows, timeout)
        return result

    def _stream(self, conn, cursor, result: QueryResult, max_rows, timeout) -> Iterator[tuple]:
        """The rows; the connection goes back to the pool when they are read or dropped."""
        try:
            yield from limited_rows(cursor, result, max_rows)
        except sqlite3.OperationalError as error:
            if "interrupted" in str(error):
                raise QueryTimeout(f"query stopped after {timeout} s") from None
            raise
        finally:
            cursor.close()
            self._checkin(conn)

    # --- spatial ---------------------------------------------------------------------------

    def refresh_statistics(self) -> None:
        """Nothing to do: the searches' plans are fixed by the schema (the zones index's key
        ranges), and statistics (``ANALYZE``) could only move SQLite away from them."""

    def zone_index(self) -> zones.ZoneIndex:
        with self._reading() as conn:
            return self._zone_index(conn)

    @staticmethod
    def _zone_index(conn: sqlite3.Connection) -> zones.ZoneIndex:
        rows = conn.execute(f"SELECT class, max_radius FROM {zones.CLASSES}").fetchall()
        return zones.ZoneIndex(dict(rows))

    def _search(
        self, ra: float, dec: float, radius: float, test: str, columns: str = "planeid"
    ) -> list[tuple]:
        """``columns`` of the released planes' index rows near the cap that pass ``test``."""
        with self._reading() as conn:
            conn.set_progress_handler(None, 0)
            conn.execute("BEGIN")  # the index's layout and its rows from one snapshot
            try:
                # "now" as a value: SQLite would call strftime once per candidate row.
                now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
                condition = f"{test} AND release_date <= '{now}'"
                sql = self._zone_index(conn).select(columns, condition, ra, dec, radius)
                return conn.execute(sql).fetchall()
            finally:
                conn.execute("COMMIT")

    def planes_containing(self, ra: float, dec: float) -> list[int]:
        point = spatial.unit_vectors(ra, dec)
        return [r[0] for r in self._search(ra, dec, 0.0, zones.contains_sql(point))]

    def planes_intersecting_circle(self, ra: float, dec: float, radius: float) -> list[int]:
        test = zones.meets_circle_sql(spatial.unit_vectors(ra, dec), np.radians(radius))
        return [r[0] for r in self._search(ra, dec, radius, test)]
