"""Latency of coverage searches through the coverage service on the small release.

    python benchmarks/bench_coverage.py [--backends sqlite postgresql] [--queries 400]
                                        [--scratch /tmp]

Writes the tests' small synthetic release once under ``--scratch``, ingests it into a new
catalogue per backend, then times ``CoverageService.covering`` for points and 0.1 and 2 degree
circles, half at image centres and half at random sky positions, with the MOCs cached (the
steady state: one SELECT of the collection rows plus one count query per collection met).
Prints medians and 99th percentiles as a Markdown table; the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from mdtable import print_table
from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest
from spherex_archive.services.coverage import CoverageService, Region
from spherex_archive.synth.release import SMALL_RELEASE, SynthOptions, synthesise

PG = "postgresql://postgres@127.0.0.1:5432"
DATABASE = f"bench_coverage_{uuid.uuid4().hex[:8]}"


def release(scratch: Path) -> Path:
    root = scratch / "bench-coverage-release"
    if not (root / "qr2").exists():
        synthesise(SynthOptions(out=root, **SMALL_RELEASE), progress=False, log=lambda _: None)
    return root


def new_catalogue(backend: str, scratch: Path) -> str:
    if backend == "sqlite":
        remove(backend, scratch)
        return f"sqlite:///{scratch / 'bench-coverage.db'}"
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {DATABASE}")
    return f"{PG}/{DATABASE}"


def remove(backend: str, scratch: Path) -> None:
    if backend == "sqlite":
        for path in scratch.glob("bench-coverage.db*"):
            path.unlink()
        return
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def regions(catalogue, count: int, radius: float) -> list[Region]:
    rng = np.random.default_rng(1)
    centres = catalogue.fetchall(
        f"SELECT s_ra, s_dec FROM {catalogue.dialect.public('spherex.obscore')} "
        "WHERE s_ra IS NOT NULL"
    )
    out = []
    for k in range(count):
        if k % 2:
            ra, dec = rng.uniform(0, 360), np.degrees(np.arcsin(rng.uniform(-1, 1)))
        else:
            ra, dec = centres[rng.integers(len(centres))]
        out.append(Region.circle(float(ra), float(dec), radius))
    return out


def timed(service: CoverageService, shapes: list[Region]) -> list[float]:
    service.covering(shapes[0])  # MOCs parsed and cached
    times = []
    for shape in shapes:
        started = time.perf_counter()
        service.covering(shape)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    root = release(args.scratch)
    rows = []
    for backend in args.backends:
        catalogue = open_catalogue(new_catalogue(backend, args.scratch))
        try:
            ingest(catalogue, str(root), workers=2, progress=False, log=lambda _: None)
            service = CoverageService(catalogue)
            for label, radius in (("point", 0.0), ("circle 0.1 deg", 0.1), ("circle 2 deg", 2.0)):
                times = timed(service, regions(catalogue, args.queries, radius))
                rows.append(
                    (
                        backend,
                        label,
                        f"{statistics.median(times):.2f}",
                        f"{np.percentile(times, 99):.2f}",
                    )
                )
        finally:
            catalogue.close()
            remove(backend, args.scratch)
    print_table(["backend", "region", "median ms", "p99 ms"], rows)


if __name__ == "__main__":
    main()
