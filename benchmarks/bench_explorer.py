"""The Data Explorer in headless Chromium: time from the search click to the first rows painted
and to the footprints drawn, for about 100 and 10 000 results; and the size of its JavaScript.

    python benchmarks/bench_explorer.py [--planes 200000] [--results 100 10000] [--runs 7]
        [--compositing software swiftshader] [--scratch /tmp] [--chromium /usr/bin/chromium]

Serves a catalogue of --planes synthetic planes (``spherex-archive synth-catalogue``'s survey
model, no files: ``bench_catalogue.py``'s catalogue, made once in --scratch and reused) with
``spherex-archive serve``, finds for each --results a circle around a wide-survey position
whose search answers about that many images (bisection on the radius, through the Explorer's
own API), then in a 1280x800 headless Chromium types the position and radius into the search
form and clicks Search, --runs times (the radius nudged each run so no server cache answers).
The page marks ``explorer:search-start`` when the form is submitted, ``explorer:rows-painted``
when Chromium painted the first row's text (its Element Timing record of that cell),
``explorer:rows-two-frames`` two animation frames after the first page of rows went into the
table (the measure before: the first frame after them is painted by then, so it counts up to a
frame more), and
``explorer:footprints-drawn`` one frame after Aladin Lite drew the sky view's footprint layer
holding the whole answer's footprints (those in view, at most ``MAX_DRAWN`` of them at once:
``web/explorer/src/footprints.js``); the medians are printed as a Markdown table (targets: rows
< 300 ms, footprints < 1 s) with the footprints loaded and drawn, the load average while the
searches ran, and the JS bundle's sizes (raw and gzip) read from the built bundle.

This machine has no GPU, and the browser runs in each --compositing mode in turn:

- ``software``: Chromium's own mode on a machine without a GPU. The page is composited by the
  CPU, and WebGL (Aladin Lite's sky view) runs on SwiftShader in the GPU process.
- ``swiftshader``: every GPU task, compositing included, on SwiftShader (a GPU emulated by the
  CPU). No user's browser runs this way. Every frame is composited through the emulated GPU
  (30-120 ms here, on the two cores the server also uses), so it is the worst case; it is kept
  because the earlier Explorer figures in docs/performance.md were measured in it.

On a machine with a GPU, compositing takes well under a frame; ``software`` is the nearer of
the two to what users see.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from bench_catalogue import catalogue_for
from bench_sia import serve
from mdtable import print_table

COMPOSITING = {
    "software": ["--disable-gpu", "--enable-unsafe-swiftshader"],
    "swiftshader": ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
}
"""Chromium's switches for each --compositing mode (see above)."""

SETTLE = 1.5
"""Seconds between a search's last mark and the next click, as a user reads the results: the
sky view goes on loading the tiles of its new field for a while after the footprints are
drawn, and a click into that measures the previous search's tail as well."""

BUNDLE = Path(__file__).resolve().parents[1] / "src" / "spherex_archive" / "web" / "explorer"
CENTRES = ((150.0, 20.0), (270.0, 66.56))
"""A wide-survey position away from the deep fields, and the NEP deep field: small answers
come from the first, large ones (thousands of images within a degree) from the second."""


def total(port: int, centre: tuple[float, float], radius: float) -> int:
    query = urlencode(
        {"ra": centre[0], "dec": centre[1], "query": "intersects", "sr": radius, "limit": 1}
    )
    url = f"http://127.0.0.1:{port}/applications/spherex/api/search?{query}"
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)["total"]


def radius_for(port: int, wanted: int) -> tuple[tuple[float, float], float, int]:
    """A centre and a radius (deg, at most 5) whose search answers within 15 % of ``wanted``
    images, and that number."""
    for centre in CENTRES:
        if total(port, centre, 1e-4) > 1.15 * wanted or total(port, centre, 5.0) < wanted:
            continue
        lo, hi = 0.0, 5.0
        for _ in range(40):
            mid = (lo + hi) / 2
            n = total(port, centre, mid)
            if abs(n - wanted) <= 0.15 * wanted:
                return centre, mid, n
            lo, hi = (mid, hi) if n < wanted else (lo, mid)
    raise SystemExit(f"no circle of at most 5 degrees holds about {wanted} images: more --planes")


def measure(
    page, base: str, centre: tuple[float, float], radius: float, runs: int
) -> tuple[list[tuple[float, float, float]], str]:
    """(rows painted, footprints, rows + two frames) milliseconds of each timed search; and the
    footprints the sky view held and drew after the last one ("loaded / drawn")."""
    page.goto(f"{base}/applications/spherex/")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#sky[data-ready=true]", timeout=60_000)  # Aladin loaded once
    page.fill("#target", f"{centre[0]} {centre[1]}")
    page.check("input[name=query][value=intersects]")
    page.select_option("#radius-unit", "deg")
    timings = []
    for run in range(runs + 1):  # the first run warms the page and the server
        page.fill("#radius", f"{radius * (1 + 1e-6 * run):.9f}")
        time.sleep(SETTLE)
        page.click("#search-button")
        page.wait_for_function(
            "() => performance.getEntriesByName('explorer:rows-painted').length"
            " && performance.getEntriesByName('explorer:footprints-drawn').length",
            polling=100,
            timeout=120_000,
        )
        rows, footprints, frames = page.evaluate(
            """() => {
              const t = (n) => performance.getEntriesByName(n)[0].startTime;
              const start = t('explorer:search-start');
              return [t('explorer:rows-painted') - start, t('explorer:footprints-drawn') - start,
                      t('explorer:rows-two-frames') - start];
            }"""
        )
        if run:
            timings.append((rows, footprints, frames))
    sky = page.evaluate("() => document.getElementById('sky').dataset")
    return timings, f"{int(sky['footprints']):,} / {int(sky['drawn']):,}"


def bundle_sizes() -> list[list[str]]:
    rows = []
    for path in sorted((BUNDLE / "assets").glob("*.js")) + sorted(
        (BUNDLE / "assets").glob("*.css")
    ):
        raw = path.read_bytes()
        kind = (
            "Aladin Lite + WebAssembly (loaded after the page)"
            if "aladin" in path.name
            else "application"
        )
        rows.append(
            [
                path.name,
                kind,
                f"{len(raw) / 1024:.0f} kB",
                f"{len(gzip.compress(raw, 9)) / 1024:.0f} kB",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--planes", type=int, default=200_000, help="catalogue size")
    parser.add_argument("--results", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--runs", type=int, default=7, help="searches timed per size")
    parser.add_argument(
        "--compositing",
        nargs="+",
        choices=sorted(COMPOSITING),
        default=["software", "swiftshader"],
        help="how the browser composites its frames (see above), each in turn",
    )
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not (BUNDLE / "index.html").is_file():
        raise SystemExit(f"no built Explorer in {BUNDLE}: cd web/explorer && npm run build")

    from playwright.sync_api import sync_playwright

    catalogue_for("sqlite", args.planes, args.scratch).close()  # made once, then reused
    url = f"sqlite:///{args.scratch / f'bench-catalogue-{args.planes}.db'}"
    empty = args.scratch / "bench-explorer-no-files"
    empty.mkdir(exist_ok=True)
    process, port = serve(url, empty, 1, args.scratch / "bench-explorer-serve.log")
    base = f"http://127.0.0.1:{port}"
    table = []
    try:
        with sync_playwright() as p:
            for compositing in args.compositing:
                browser = p.chromium.launch(
                    executable_path=args.chromium,
                    args=["--no-sandbox", *COMPOSITING[compositing]],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for wanted in args.results:
                    centre, radius, found = radius_for(port, wanted)
                    before = os.getloadavg()[0]
                    timings, held = measure(page, base, centre, radius, args.runs)
                    load = f"{before:.1f}-{os.getloadavg()[0]:.1f}"
                    rows = statistics.median(t[0] for t in timings)
                    drawn = statistics.median(t[1] for t in timings)
                    frames = statistics.median(t[2] for t in timings)
                    table.append(
                        [
                            compositing,
                            f"{found:,}",
                            f"{centre[0]:g} {centre[1]:+g}, {radius:.3f}",
                            f"{rows:.0f} ms",
                            f"{frames:.0f} ms",
                            f"{drawn:.0f} ms",
                            f"{max(t[1] for t in timings):.0f} ms",
                            held,
                            load,
                        ]
                    )
                    print(
                        f"{compositing}, {found} results: rows {rows:.0f} ms, "
                        f"footprints {drawn:.0f} ms",
                        file=sys.stderr,
                    )
                browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(
        f"\nData Explorer, {args.planes:,}-plane SQLite catalogue, medians of {args.runs} searches "
        f"(headless Chromium 1280x800, no GPU: compositing as given, WebGL on SwiftShader)\n"
    )
    print_table(
        [
            "compositing",
            "results",
            "circle (deg)",
            "click -> rows painted",
            "click -> rows + two frames",
            "click -> footprints drawn",
            "slowest footprints",
            "footprints loaded / drawn",
            "load average",
        ],
        table,
    )
    print()
    print_table(["bundle file", "part", "raw", "gzip"], bundle_sizes())


if __name__ == "__main__":
    main()
