"""Per-collection coverage MOCs, kept up to date by every ingest transaction.

A MOC holds only released planes; embargoed ones are counted in ``pending_until`` (the earliest
release date not yet reached), and the coverage service rebuilds a collection's MOC from the
planes once that date passes. So coverage never reveals an embargoed footprint.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

import numpy as np
from mocpy import MOC

from spherex_archive.catalogue.base import Writer

MOC_DEPTH = 11
"""1.7 arcmin cells: finer than the smallest (reduced-size) footprints."""


def moc_of(ra: np.ndarray, dec: np.ndarray) -> MOC | None:
    """Union of the footprints given as (n, 4) vertex arrays."""
    if not len(ra):
        return None
    vertices = np.array([a for pair in zip(ra, dec, strict=True) for a in pair])
    return reduce(lambda a, b: a.union(b), MOC.from_polygons(vertices, max_depth=MOC_DEPTH))


def update(writer: Writer, rows, gained: dict[str, int]) -> None:
    """Add the released footprints of ``rows`` to their collections' MOCs, and count the
    planes each collection ``gained``."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    by_collection: dict[str, list] = {}
    pending: dict[str, str] = {}
    for r in rows:
        collection = r.observation["collection"]
        by_collection.setdefault(collection, [])
        release = r.plane.get("release_date")
        if r.footprint is None or release is None:
            continue
        if release > now:
            pending[collection] = min(pending.get(collection, release), release)
        else:
            by_collection[collection].append(r.footprint)
    table = writer.dialect.internal("moc")
    for collection, footprints in by_collection.items():
        stored = writer.fetchall(
            f"SELECT moc, pending_until, planes FROM {table} WHERE collection = ?", [collection]
        )
        moc = MOC.from_string(stored[0][0], format="ascii") if stored and stored[0][0] else None
        waiting = [d for d in (pending.get(collection), stored[0][1] if stored else None) if d]
        if footprints:
            added = moc_of(
                np.array([f[0] for f in footprints]), np.array([f[1] for f in footprints])
            )
            moc = added if moc is None else moc.union(added)
        count = writer.fetchall(
            f"SELECT COUNT(*) FROM {writer.dialect.internal('plane')} p JOIN "
            f"{writer.dialect.internal('observation')} o ON o.obsid = p.obsid "
            "WHERE o.collection = ?",
            [collection],
        )[0][0]
        writer.upsert(
            "moc",
            {
                "collection": collection,
                "moc": moc.to_string(format="ascii") if moc is not None else None,
                "planes": int(count),
                "updated_at": now,
                "pending_until": min(waiting) if waiting else None,
            },
            ["collection"],
        )
