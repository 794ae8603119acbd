"""Spatial query latency of the catalogues at archive scale.

    python benchmarks/bench_catalogue.py --planes 1000000 10000000 \
        [--backends sqlite postgresql] [--queries 400] [--scratch /tmp]

Fills each catalogue once with ``synth-catalogue`` planes (kept in --scratch and reused), then
times point-in-footprint and cone (0.1 deg) searches at random sky positions through the
catalogue interface (index lookup, exact spherical test, embargo filter). Prints medians and
99th percentiles as a Markdown table. The machines are shared and noisy: compare medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from mdtable import print_table
from spherex_archive.catalogue import open_catalogue
from spherex_archive.synth.catalogue import fill

PG = "postgresql://postgres@127.0.0.1:5432"


def catalogue_for(backend: str, planes: int, scratch: Path):
    if backend == "sqlite":
        url = f"sqlite:///{scratch / f'bench-catalogue-{planes}.db'}"
    else:
        import psycopg

        name = f"bench_catalogue_{planes}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                admin.execute(f"CREATE DATABASE {name}")
        url = f"{PG}/{name}"
    catalogue = open_catalogue(url)
    catalogue.create()
    held = sum(catalogue.counts().values())
    if held != planes:
        if held:
            raise SystemExit(f"{url} holds {held} planes, not {planes}: remove it first")
        started = time.perf_counter()
        fill(catalogue, planes)
        print(f"filled {url} with {planes} planes in {time.perf_counter() - started:.0f} s")
    warm(url)
    return catalogue


def warm(url: str) -> None:
    """Read the catalogue into memory, as a serving machine keeps it: the figures are about
    the archive's work, not about the first read of each page from disk."""
    if url.startswith("sqlite"):
        with open(url.removeprefix("sqlite:///"), "rb") as f:
            while f.read(1 << 24):
                pass
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        conn.execute(
            "SELECT pg_prewarm(c.oid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
        )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    # random positions, uniform on the sky
    ra = rng.uniform(0, 360, args.queries)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, args.queries)))
    rows = []
    for planes in args.planes:
        for backend in args.backends:
            catalogue = catalogue_for(backend, planes, args.scratch)
            for kind, search in (
                ("point in footprint", lambda a, d, c=catalogue: c.planes_containing(a, d)),
                (
                    "cone r=0.1 deg",
                    lambda a, d, c=catalogue: c.planes_intersecting_circle(a, d, 0.1),
                ),
            ):
                for a, d in zip(ra[:20], dec[:20], strict=True):  # warm caches
                    search(a, d)
                times, counts = [], []
                for a, d in zip(ra, dec, strict=True):
                    started = time.perf_counter()
                    found = search(a, d)
                    times.append((time.perf_counter() - started) * 1000)
                    counts.append(len(found))
                rows.append(
                    (
                        f"{planes:,}",
                        backend,
                        kind,
                        f"{statistics.median(times):.2f}",
                        f"{percentile(times, 99):.2f}",
                        f"{statistics.median(counts):.0f} / {max(counts)}",
                    )
                )
            catalogue.close()
    print(f"\n{args.queries} random positions per row\n")
    print_table(("planes", "backend", "search", "median ms", "p99 ms", "rows (median / max)"), rows)


if __name__ == "__main__":
    main()
