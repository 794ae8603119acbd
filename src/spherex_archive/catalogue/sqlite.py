"""The embedded catalogue: one SQLite file in WAL mode (many readers while one process writes).

Spatial search: an R*Tree over the exact 3-D bounding boxes of the footprints on the unit sphere
(native to SQLite, no extension to load) finds candidates; the exact spherical test runs on
all candidates at once in numpy, or row by row in SQL through the ``sx_contains`` function.
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

from spherex_archive.catalogue import spatial, sqlite_functions
from spherex_archive.catalogue.base import (
    Catalogue,
    CatalogueError,
    QueryResult,
    QueryTimeout,
    Writer,
    limited_rows,
)
from spherex_archive.catalogue.ddl import RTREE, Dialect

BATCH = 1000


def _register_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("sx_contains", 4, spatial.contains_point_scalar, deterministic=True)
    sqlite_functions.register(conn)


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
        records = spatial.footprint_records(ra, dec)
        boxes = spatial.bounding_boxes(records)
        self.conn.executemany(
            f"INSERT OR REPLACE INTO {RTREE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (int(p), *map(float, b), spatial.record_bytes(r), str(d))
                for p, b, r, d in zip(planeids, boxes, records, release_dates, strict=True)
            ],
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
            # Spatial candidates are fetched from random pages of the R*Tree's shadow tables:
            # map the file so that every reader shares the operating system's page cache.
            conn.execute("PRAGMA mmap_size = 17179869184")
            conn.execute("PRAGMA cache_size = -131072")
        _register_functions(conn)
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

    def create(self) -> None:
        with self.writer() as w:
            for statement in self._initial_statements():
                w.execute(statement)
            w.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {RTREE} USING rtree("
                "id, minx, maxx, miny, maxy, minz, maxz, +footprint BLOB, +release_date TEXT)"
            )
            self._refresh_derived(w)

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
            yield from limited_rows(cursor, BATCH, result, max_rows)
        except sqlite3.OperationalError as error:
            if "interrupted" in str(error):
                raise QueryTimeout(f"query stopped after {timeout} s") from None
            raise
        finally:
            cursor.close()
            self._checkin(conn)

    # --- spatial ---------------------------------------------------------------------------

    def _candidates(self, box: np.ndarray) -> tuple[list[int], np.ndarray]:
        with self._reading() as conn:
            conn.set_progress_handler(None, 0)
            rows = conn.execute(
                f"SELECT r.id, r.footprint FROM {RTREE} r "
                "WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ? "
                f"AND r.minz <= ? AND r.maxz >= ? AND r.release_date <= {self.dialect.now}",
                (box[1], box[0], box[3], box[2], box[5], box[4]),
            ).fetchall()
        if not rows:
            return [], np.empty((0, 24))
        ids = [r[0] for r in rows]
        return ids, spatial.records_from_bytes([r[1] for r in rows])

    def planes_containing(self, ra: float, dec: float) -> list[int]:
        point = spatial.unit_vectors(ra, dec)
        ids, records = self._candidates(np.repeat(point, 2))
        if not ids:
            return []
        keep = spatial.contains_point(records, point)
        return [i for i, k in zip(ids, keep, strict=True) if k]

    def planes_intersecting_circle(self, ra: float, dec: float, radius: float) -> list[int]:
        centre = spatial.unit_vectors(ra, dec)
        radius_rad = np.radians(radius)
        ids, records = self._candidates(spatial.circle_box(centre, radius_rad))
        if not ids:
            return []
        keep = spatial.intersects_circle(records, centre, radius_rad)
        return [i for i, k in zip(ids, keep, strict=True) if k]
