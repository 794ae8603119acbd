"""The catalogue interface: one database behind every access layer.

Ingest writes through a ``Writer`` (one transaction: a delivery is all visible or not at all);
services read through ``query`` (read-only, with a time limit and a row limit) and through the
spatial searches. Backends differ only in SQL dialect and spatial machinery; nothing above this
package knows which one it talks to.
"""

from __future__ import annotations

import hashlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spherex_archive.catalogue.ddl import SCHEMA_VERSION, Dialect
from spherex_archive.catalogue.zones import ZoneIndex
from spherex_archive.model import tables as model


class CatalogueError(Exception):
    """A catalogue problem worth telling the user about (bad URL, unreachable database...)."""


class QueryTimeout(CatalogueError):
    """The query ran longer than its time limit and was stopped."""


def stable_id(*parts: str) -> int:
    """A 63-bit id derived from the row's natural key: the same row gets the same id in every
    catalogue and every re-ingest, whatever the order deliveries arrive in."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


DEFAULT_CONFIG = {
    "base_url": "http://127.0.0.1:8000",
    "s3_bucket": "nasa-irsa-spherex",
    "s3_region": "us-east-1",
    "authority": "ivo://irsa.ipac",
}


@dataclass
class QueryResult:
    """Column names and a stream of rows (tuples); iterate once."""

    columns: list[str]
    rows: Iterator[tuple]
    overflow: bool = False
    """True when ``max_rows`` cut the answer short (known once the rows are consumed)."""


def limited_rows(
    rows: Iterable[tuple], result: QueryResult, max_rows: int | None
) -> Iterator[tuple]:
    """``rows`` up to ``max_rows``, marking ``result.overflow`` when rows were left behind."""
    rows = iter(rows)
    if max_rows is None:
        yield from rows
        return
    yield from itertools.islice(rows, max_rows)
    if next(rows, None) is not None:
        result.overflow = True


class Writer(ABC):
    """Write operations of one transaction (see ``Catalogue.writer``)."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def set_footprints(
        self,
        planeids: Sequence[int],
        ra: np.ndarray,
        dec: np.ndarray,
        release_dates: Sequence[str],
    ) -> None:
        """Store the footprints (n, 4 vertices) of planes, replacing any they had; the
        planes' release dates come along for backends that filter in the index."""

    @abstractmethod
    def bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Append many new rows to an internal table, by the fastest path of the database."""

    @abstractmethod
    def insert_planes(
        self, columns: Sequence[str], rows: Sequence[tuple], ra: np.ndarray, dec: np.ndarray
    ) -> None:
        """Append new planes with their footprints (n, 4 vertices) in one pass."""

    def upsert(self, table: str, row: dict[str, Any], key: Sequence[str]) -> None:
        """Insert ``row`` into an internal table, or update the row with the same key."""
        self.upsert_many(table, [row], key)

    def upsert_many(self, table: str, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
        if not rows:
            return
        names = list(rows[0])
        updates = [n for n in names if n not in key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in updates)
            if updates
            else "DO NOTHING"
        )
        sql = (
            f"INSERT INTO {self.dialect.internal(table)} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT ({', '.join(key)}) {action}"
        )
        self.executemany(sql, [[r[n] for n in names] for r in rows])

    def add_to(self, table: str, key: Sequence[str], column: str, rows: Sequence[tuple]) -> None:
        """Add each row's last value to ``column`` of the row of an internal table with the
        row's key (its other values), inserting rows not there yet. Keys must be unique
        within ``rows``."""
        names = [*key, column]
        self.executemany(
            f"INSERT INTO {self.dialect.internal(table)} AS t ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT ({', '.join(key)}) "
            f"DO UPDATE SET {column} = t.{column} + excluded.{column}",
            rows,
        )

    dialect: Dialect


class Catalogue(ABC):
    """A catalogue database: create it, write to it in transactions, query it read-only."""

    url: str
    dialect: Dialect

    @abstractmethod
    def create(self) -> None:
        """Create the schema if it is missing and bring views and TAP_SCHEMA up to date."""

    @abstractmethod
    def writer(self) -> Any:
        """Context manager giving a ``Writer``; commits on success, rolls back on error."""

    @abstractmethod
    def query(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        timeout: float | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run read-only SQL (as produced by the ADQL translator)."""

    @abstractmethod
    def close(self) -> None: ...

    # --- spatial searches on the public planes (embargo applied) --------------------------

    @abstractmethod
    def planes_containing(self, ra: float, dec: float) -> list[int]:
        """Plane ids whose footprint contains the position."""

    @abstractmethod
    def planes_intersecting_circle(self, ra: float, dec: float, radius: float) -> list[int]:
        """Plane ids whose footprint overlaps the circle (degrees)."""

    @abstractmethod
    def refresh_statistics(self) -> None:
        """Let the database's query planner see what writes added (after an ingest or a
        fill)."""

    def zone_index(self) -> ZoneIndex | None:
        """The layout of the footprint index that the ADQL translator searches (SQLite only:
        PostgreSQL's pgsphere indexes need no help)."""
        return None

    # --- shared helpers --------------------------------------------------------------------

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.query(sql, params).rows)

    def config(self) -> dict[str, str]:
        rows = self.fetchall(f"SELECT key, value FROM {self.dialect.internal('config')}")
        return dict(rows)

    def set_config(self, **values: str) -> None:
        with self.writer() as w:
            w.upsert_many("config", [{"key": k, "value": v} for k, v in values.items()], ["key"])

    def collections(self) -> list[str]:
        """Every collection ingested so far (released or not), from the one-row-per-collection
        coverage table: cheap at any size, unlike a DISTINCT over the planes."""
        rows = self.fetchall(
            f"SELECT collection FROM {self.dialect.internal('moc')} ORDER BY collection"
        )
        return [c for (c,) in rows]

    def counts(self) -> dict[str, int]:
        """Released planes per collection."""
        rows = self.fetchall(
            f"SELECT obs_collection, COUNT(*) FROM {self.dialect.public('spherex.obscore')} "
            f"GROUP BY obs_collection ORDER BY obs_collection"
        )
        return {c: int(n) for c, n in rows}

    def _initial_statements(self) -> list[str]:
        from spherex_archive.catalogue import ddl

        return [*ddl.stored_tables(self.dialect), *ddl.tap_schema_tables(self.dialect)]

    def _refresh_derived(self, writer: Writer) -> None:
        """(Re)create the views and TAP_SCHEMA rows: they derive from the model only."""
        from spherex_archive.catalogue import ddl
        from spherex_archive.model import tap_schema

        for name, _ in reversed(ddl.view_statements(self.dialect)):
            writer.execute(f"DROP VIEW IF EXISTS {name}")
        for _, statement in ddl.view_statements(self.dialect):
            writer.execute(statement)
        pub = self.dialect.public
        for t in ("key_columns", "keys", "columns", "tables", "schemas"):
            writer.execute(f"DELETE FROM {pub('tap_schema.' + t)}")
        keys, key_columns = tap_schema.key_rows()
        for t, rows in (
            ("schemas", tap_schema.schema_rows()),
            ("tables", tap_schema.table_rows()),
            ("columns", tap_schema.column_rows()),
            ("keys", keys),
            ("key_columns", key_columns),
        ):
            width = len(model.table("tap_schema." + t).columns)
            writer.executemany(
                f"INSERT INTO {pub('tap_schema.' + t)} VALUES ({', '.join('?' * width)})", rows
            )
        defaults = [{"key": k, "value": v} for k, v in DEFAULT_CONFIG.items()]
        writer.executemany(
            f"INSERT INTO {self.dialect.internal('config')} (key, value) VALUES (?, ?) "
            f"ON CONFLICT (key) DO NOTHING",
            [[d["key"], d["value"]] for d in defaults],
        )
        writer.upsert("config", {"key": "schema_version", "value": str(SCHEMA_VERSION)}, ["key"])
        writer.upsert("config", {"key": "model", "value": self.model_fingerprint()}, ["key"])

    def model_fingerprint(self) -> str:
        """A digest of everything ``create`` derives from the model (tables, views, TAP_SCHEMA):
        a catalogue whose stored digest differs was made by another version of the archive."""
        from spherex_archive.catalogue import ddl
        from spherex_archive.model import tap_schema

        text = repr(
            (
                self._initial_statements(),
                ddl.view_statements(self.dialect),
                tap_schema.schema_rows(),
                tap_schema.table_rows(),
                tap_schema.column_rows(),
                tap_schema.key_rows(),
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def is_current(self) -> bool:
        """True when this catalogue's tables, views and TAP_SCHEMA match this version's model."""
        return self.config().get("model") == self.model_fingerprint()
