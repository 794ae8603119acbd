"""A bulk SODA job: hundreds of cutouts, every HDU, one FITS file, through HTTP and UWS.

    python benchmarks/bench_soda_bulk.py [--cutouts 500] [--runs 3] [--scratch /tmp]

Writes (once, under ``--scratch``) a deep-field release whose NEP field is covered by enough
images, with 64-pixel frames: a cutout's size is dominated by the PSF cube every cutout keeps
(4.9 MB, the same as a full-size file's) and by the headers, which are full size too, so the
job's work per cutout is a full-size file's. Ingests it into a SQLite catalogue, starts
``spherex-archive serve`` in its own process, finds ``--cutouts`` images covering the field
field through TAP, and submits one ``/soda/async`` job with all their IDs and one CIRCLE:
PHASE=RUN, then WAIT until it ends. Reports the seconds from the POST to COMPLETED (median of
``--runs`` jobs) and the size of the stacked result. The machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import requests

import served
from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest
from spherex_archive.synth.release import SynthOptions, synthesise
from spherex_archive.synth.survey import DEEP_FIELDS

UWS = served.UWS
RADIUS = 1.0
"""Degrees: the deep field's images (64-pixel frames) all meet this circle around its centre."""


def release(scratch: Path, images: int) -> Path:
    root = scratch / f"bench-soda-release-{images}"
    if not any(root.glob("qr2/level2/*/*/*/*.fits")):
        print(f"writing a deep-field release under {root} (once) ...", flush=True)
        exposures = -(-images // 6) + 10
        options = SynthOptions(
            out=root,
            detector_size=64,
            fields=["M31"],
            exposures=1,
            deep_fields=[("NEP", exposures)],
        )
        synthesise(options, progress=True)
    return root


def run_job(base: str, ids: list[str], circle: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    job, doc = served.finished_job(
        base + "/soda/async",
        [("ID", i) for i in ids] + [("CIRCLE", circle), ("PHASE", "RUN")],
    )
    phase = doc.findtext(f"{UWS}phase")
    elapsed = time.perf_counter() - started
    size = sum(int(r.get("size", 0)) for r in doc.iter(f"{UWS}result") if r.get("id") == "cutouts")
    requests.delete(job, timeout=60)
    return elapsed, size, phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutouts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    root = release(args.scratch, args.cutouts)
    catalogue = f"sqlite:///{root.parent / (root.name + '.db')}"
    db = open_catalogue(catalogue)
    ingest(db, str(root), workers=2, progress=False, log=lambda _: None)
    db.close()
    ra, dec = DEEP_FIELDS["NEP"]
    circle = f"{ra} {dec} {RADIUS}"
    jobs = root.parent / (root.name + "-jobs")
    jobs.mkdir(exist_ok=True)
    with served.archive(catalogue, root, jobs) as base:
        query = (
            f"SELECT TOP {args.cutouts} obs_publisher_did FROM spherex.obscore WHERE "
            f"INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, {RADIUS}), s_region) = 1 "
            "ORDER BY obs_publisher_did"
        )
        csv = requests.get(
            base + "/TAP/sync",
            params={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv"},
            timeout=60,
        ).text
        ids = [line.strip().strip('"') for line in csv.splitlines()[1:] if line.strip()]
        print(f"{len(ids)} images of the NEP field; one CIRCLE of {RADIUS} deg on each")
        run_job(base, ids[:20], circle)  # warm: the job launcher imports its modules
        results = [run_job(base, ids, circle) for _ in range(args.runs)]
    seconds = [r[0] for r in results]
    print()
    print("| cutouts | runs | median s | min s | max s | result size | phase |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {len(ids)} | {len(results)} | {statistics.median(seconds):.2f} | "
        f"{min(seconds):.2f} | {max(seconds):.2f} | {results[0][1] / 1e9:.2f} GB | "
        f"{results[0][2]} |"
    )


if __name__ == "__main__":
    main()
