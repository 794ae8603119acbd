"""Spectrophotometry on full-size files: one source's spectrum end to end, and a list of sources
on a local Dask cluster.

    python benchmarks/bench_spectrophotometry.py [--images 200] [--wide-exposures 25]
        [--sources 1000] [--runs 5] [--dask-workers 2] [--scratch /tmp/bench-spectro]

Writes (once, under ``--scratch``) two releases of real-size (2040-pixel, 72 MB) spectral
images, each holding only the images that cover its source (``synth --covering``), so that the
disk holds what the benchmark reads: the NEP deep field's showcase source seen by at least
``--images`` images, and the COSMOS wide field's showcase source seen by the images of
``--wide-exposures`` exposures. Ingests each into a SQLite catalogue and measures:

- *end to end*: ``spherex-archive serve`` in its own process; a POST of ``POINT`` with
  ``PHASE=RUN`` to ``/api/spherex/spectrophotometry/async``, blocking ``WAIT`` until the job
  is COMPLETED, then the measurements table (CSV) downloaded: seconds from the POST to the
  last byte, median of ``--runs`` jobs (after one warm-up job);
- *in process*: the same source measured by the service's own function (what the CLI runs),
  without HTTP and UWS;
- *sources per minute*: ``--sources`` positions scattered within 0.4 deg of the wide field's
  centre (each covered by most of the wide images), measured on a ``LocalCluster`` of
  ``--dask-workers`` single-threaded worker processes, ten sources per task.

The files are in the page cache after the first run (the machine has the memory for them), so
these are warm figures; an object store adds its latency per image (see the cutout figures).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import requests

import served
from mdtable import print_table
from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest
from spherex_archive.services import spectrophotometry as sp
from spherex_archive.services.query import QueryEngine
from spherex_archive.store import open_store
from spherex_archive.synth.release import SynthOptions, synthesise
from spherex_archive.synth.survey import DEEP_FIELDS, WIDE_FIELDS

UWS = served.UWS
SERVICE = "/api/spherex/spectrophotometry/async"
WEEKS = "2025W29_2A,2025W39_1A"


def deep_release(scratch: Path, images: int) -> tuple[Path, tuple[float, float]]:
    """Every deep exposure puts the NEP centre on one SWIR and one MWIR detector."""
    position = DEEP_FIELDS["NEP"]
    root = scratch / f"deep-{images}"
    options = dict(fields=[], deep_fields=[("NEP", -(-images // 2))], weeks=WEEKS)
    return _written(root, options, position), position


def wide_release(scratch: Path, exposures: int) -> tuple[Path, tuple[float, float]]:
    position = WIDE_FIELDS["COSMOS"][:2]
    root = scratch / f"wide-{exposures}"
    options = dict(fields=["COSMOS"], exposures=exposures, deep_fields=[], weeks=None)
    return _written(root, options, position), position


def _written(root: Path, options: dict, position: tuple[float, float]) -> Path:
    if not (root / "truth" / "parameters.json").exists():
        from spherex_archive.products.naming import PlanningPeriod

        weeks = options.pop("weeks")
        print(f"writing full-size images covering {position} under {root} (once) ...")
        synthesise(
            SynthOptions(
                out=root,
                covering=position,
                weeks=[PlanningPeriod.parse(w) for w in weeks.split(",")] if weeks else None,
                **options,
            ),
            progress=True,
        )
    return root


def catalogue_of(root: Path) -> str:
    url = f"sqlite:///{root.parent / (root.name + '.db')}"
    db = open_catalogue(url)
    ingest(db, str(root), workers=2, progress=False, log=lambda _: None)
    db.close()
    return url


def job_seconds(base: str, position: tuple[float, float]) -> tuple[float, int]:
    """Seconds from the POST to the measurements table's last byte, and its row count."""
    started = time.perf_counter()
    job, doc = served.finished_job(
        base + SERVICE, {"POINT": f"{position[0]},{position[1]}", "PHASE": "RUN"}
    )
    phase = doc.findtext(f"{UWS}phase")
    if phase != "COMPLETED":
        raise SystemExit(f"the job ended in {phase}: {ET.tostring(doc, encoding='unicode')}")
    href = next(
        r.get("{http://www.w3.org/1999/xlink}href")
        for r in doc.iter(f"{UWS}result")
        if r.get("id") == "result-csv"
    )
    table = requests.get(href, timeout=60).text
    elapsed = time.perf_counter() - started
    requests.delete(job, timeout=60)
    rows = sum(1 for _ in csv.reader(io.StringIO(table))) - 1
    return elapsed, rows


def in_process_seconds(catalogue: str, data: Path, position: tuple[float, float]) -> float:
    db = open_catalogue(catalogue)
    try:
        engine, store = QueryEngine(db), open_store(str(data))
        source = sp.Source("bench", *position)
        started = time.perf_counter()
        sp.measure_source(store, engine, source, sp.Options())
        return time.perf_counter() - started
    finally:
        db.close()


def scattered(position: tuple[float, float], count: int, radius: float) -> list[sp.Source]:
    """``count`` positions uniform on the sky within ``radius`` degrees of ``position``."""
    rng = np.random.default_rng(7)
    ra0, dec0 = np.radians(position)
    r = np.radians(radius) * np.sqrt(rng.uniform(0, 1, count))
    theta = rng.uniform(0, 2 * np.pi, count)
    dec = np.arcsin(
        np.sin(dec0) * np.cos(r) + np.cos(dec0) * np.sin(r) * np.cos(theta)
    )  # spherical offsets: right at any declination
    ra = ra0 + np.arctan2(
        np.sin(theta) * np.sin(r) * np.cos(dec0), np.cos(r) - np.sin(dec0) * np.sin(dec)
    )
    return [
        sp.Source(f"S{i + 1}", float(np.degrees(a) % 360), float(np.degrees(d)))
        for i, (a, d) in enumerate(zip(ra, dec, strict=True))
    ]


def dask_rate(catalogue: str, data: Path, sources: list[sp.Source], workers: int):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None, processes=True
        ) as cluster,
        Client(cluster) as client,
    ):
        sp.measure_on_dask(client, catalogue, str(data), sources[:20], sp.Options())  # warm
        started = time.perf_counter()
        found = sp.measure_on_dask(client, catalogue, str(data), sources, sp.Options())
        elapsed = time.perf_counter() - started
    return elapsed, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=200, help="deep-field images (>= 200)")
    parser.add_argument("--wide-exposures", type=int, default=25, help="wide-field exposures")
    parser.add_argument("--sources", type=int, default=1000, help="sources for the Dask run")
    parser.add_argument("--runs", type=int, default=5, help="jobs per source (median)")
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-spectro"))
    args = parser.parse_args()

    args.scratch.mkdir(parents=True, exist_ok=True)
    cases = [("deep field (NEP)", *deep_release(args.scratch, args.images))]
    cases.append(("wide survey (COSMOS)", *wide_release(args.scratch, args.wide_exposures)))
    rows = []
    for label, root, position in cases:
        catalogue = catalogue_of(root)
        local = [in_process_seconds(catalogue, root, position) for _ in range(args.runs + 1)][1:]
        jobs = root.parent / (root.name + "-jobs")
        jobs.mkdir(exist_ok=True)
        with served.archive(catalogue, root, jobs) as base:
            job_seconds(base, position)  # warm: the job runner imports its modules once
            jobs = [job_seconds(base, position) for _ in range(args.runs)]
        seconds = [s for s, _ in jobs]
        count = jobs[0][1]
        rows.append(
            (
                label,
                str(count),
                f"{statistics.median(seconds):.2f}",
                f"{min(seconds):.2f} - {max(seconds):.2f}",
                f"{statistics.median(local):.2f}",
                f"{1000 * statistics.median(seconds) / max(1, count):.1f}",
            )
        )
        print(f"{label}: {count} measurements; jobs {[round(s, 2) for s in seconds]} s")
    print()
    print_table(
        (
            "source",
            "measurements",
            "end to end, median s",
            "range s",
            "in process s",
            "ms per image",
        ),
        rows,
    )

    label, root, position = cases[1]
    catalogue = f"sqlite:///{root.parent / (root.name + '.db')}"
    sources = scattered(position, args.sources, 0.4)
    elapsed, found = dask_rate(catalogue, root, sources, args.dask_workers)
    print()
    print_table(
        ("sources", "Dask workers", "measurements", "seconds", "sources per minute"),
        [
            (
                str(len(sources)),
                str(args.dask_workers),
                str(found),
                f"{elapsed:.1f}",
                f"{60 * len(sources) / elapsed:.0f}",
            )
        ],
    )


if __name__ == "__main__":
    main()
