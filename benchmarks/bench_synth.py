"""How fast the synthetic release is written.

    python benchmarks/bench_synth.py [--repeat 3] [--scratch /tmp] [--skip-demo]

Times (1) real-size 2040-pixel spectral images, seconds per file with one worker and with one
worker per core, and (2) the README's demo release end to end. Prints medians of ``--repeat``
runs as a Markdown table for docs/performance.md. The machines are shared and noisy: compare
medians and ratios, not single runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mdtable import print_table
from spherex_archive.synth.release import DEMO_SIZE, SynthOptions, synthesise


def timed(options: SynthOptions) -> tuple[float, int, int]:
    shutil.rmtree(options.out, ignore_errors=True)
    start = time.perf_counter()
    report = synthesise(options, progress=False, log=lambda _: None)
    elapsed = time.perf_counter() - start
    shutil.rmtree(options.out, ignore_errors=True)
    return elapsed, report.files, report.bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    for workers in sorted({1, cores}):
        options = SynthOptions(
            out=args.scratch / "bench-synth-full",
            detector_size=2040,
            fields=["M31"],
            exposures=2,
            deep_fields=[],
            workers=workers,
        )
        runs = [timed(options) for _ in range(args.repeat)]
        seconds = statistics.median(r[0] for r in runs)
        files, size = runs[0][1], runs[0][2]
        rows.append(
            (
                f"2040-px spectral images, {workers} worker(s)",
                f"{files} files, {size / 1e9:.2f} GB",
                f"{seconds:.1f} s",
                f"{seconds / files:.2f} s/file",
                f"{size / 1e6 / seconds:.0f} MB/s",
            )
        )
    if not args.skip_demo:
        options = SynthOptions(out=args.scratch / "bench-synth-demo", detector_size=DEMO_SIZE)
        runs = [timed(options) for _ in range(args.repeat)]
        seconds = statistics.median(r[0] for r in runs)
        files, size = runs[0][1], runs[0][2]
        rows.append(
            (
                "demo release (128 px, + 74 calibration files)",
                f"{files} files, {size / 1e9:.2f} GB",
                f"{seconds:.1f} s",
                f"{seconds / files:.3f} s/file",
                f"{size / 1e6 / seconds:.0f} MB/s",
            )
        )
    print(f"median of {args.repeat} runs, {cores} cores\n")
    print_table(("what", "written", "wall time", "per file", "throughput"), rows)


if __name__ == "__main__":
    main()
