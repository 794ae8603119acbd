"""Ingest rate on real-size (2040-pixel) spectral images, with manifests.

    python benchmarks/bench_ingest.py [--release DIR] [--repeat 3] [--backends sqlite postgresql]

Ingests a synthetic release of full-size files (made once with ``spherex-archive synth`` into
--release if it is not there) into a fresh catalogue per run, and prints files/s (median of
--repeat runs) and what a week's delivery of 25 000 files would take at that rate.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from mdtable import print_table
from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest

PG = "postgresql://postgres@127.0.0.1:5432"
WEEK = 25_000


def fresh(backend: str, scratch: Path) -> tuple[str, callable]:
    if backend == "sqlite":
        path = scratch / f"bench-ingest-{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", lambda: [p.unlink() for p in scratch.glob(path.name + "*")]
    import psycopg

    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

    return f"{PG}/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=Path("/tmp/bench-full"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    if not (args.release / "truth" / "parameters.json").exists():
        subprocess.run(
            [
                "spherex-archive",
                "synth",
                "--out",
                str(args.release),
                "--detector-size",
                "2040",
                "--fields",
                "M31,NCP,RA0,M81,COSMOS",
                "--exposures",
                "4",
                "--deep-fields",
                "NEP:4",
                "--quiet",
            ],
            check=True,
        )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for backend in args.backends:
            rates, files = [], 0
            for _ in range(args.repeat):
                url, drop = fresh(backend, Path(scratch))
                catalogue = open_catalogue(url)
                catalogue.create()
                started = time.perf_counter()
                report = ingest(catalogue, str(args.release), workers=args.workers, progress=False)
                elapsed = time.perf_counter() - started
                catalogue.close()
                drop()
                files = report.files
                rates.append(files / elapsed)
            rate = statistics.median(rates)
            rows.append((backend, str(files), f"{rate:.0f}", f"{WEEK / rate:.0f} s"))
    print(
        f"\nmedian of {args.repeat} runs; files are 71.6 MB spectral images plus the "
        "calibration files\n"
    )
    print_table(("catalogue", "files", "files/s", "a 25 000-file week"), rows)


if __name__ == "__main__":
    main()
