"""SIA 2.0 position-query latency through HTTP, with 1 and 16 concurrent clients.

    python benchmarks/bench_sia.py [--planes 1000000] [--queries 400] [--clients 1 16]
        [--scratch /tmp] [--workers 1]

Serves two catalogues with ``spherex-archive serve`` (a real uvicorn process, as deployed):
the demo release (synthesised and ingested into --scratch once, then reused) and a catalogue of
--planes synthetic planes (``bench_catalogue.py``'s, reused). Each client keeps one HTTP
connection open and sends ``POS=CIRCLE ra dec 0`` searches (the images containing a point) at
random positions: inside the demo's fields for the demo release, anywhere on the sky for the big
catalogue. Prints medians and 99th percentiles of the time to the last byte, as a Markdown
table; the machines are shared and noisy, so compare medians.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from bench_catalogue import catalogue_for, percentile, warm
from mdtable import print_table


def demo_catalogue(scratch: Path) -> tuple[str, Path, list[tuple[float, float]]]:
    """The demo release and its catalogue (made once); positions near its image centres."""
    from spherex_archive.catalogue import open_catalogue
    from spherex_archive.ingest.run import ingest
    from spherex_archive.synth.release import DEMO_SIZE, SynthOptions, synthesise

    root = scratch / "bench-sia-demo"
    if not (root / "truth" / "parameters.json").exists():
        synthesise(SynthOptions(out=root, detector_size=DEMO_SIZE))
    url = f"sqlite:///{root / 'catalogue.db'}"
    catalogue = open_catalogue(url)
    catalogue.create()
    if not catalogue.counts():
        ingest(catalogue, str(root))
    warm(url)
    centres = catalogue.fetchall(
        f"SELECT s_ra, s_dec FROM {catalogue.dialect.public('spherex.obscore')} "
        "WHERE s_ra IS NOT NULL"
    )
    catalogue.close()
    return url, root, [(float(r), float(d)) for r, d in centres]


def sky_positions(n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return list(zip(ra.tolist(), dec.tolist(), strict=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(catalogue: str, data: Path, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    """``spherex-archive serve`` on a free port; its log goes to a file (a pipe nobody reads
    would fill up and stop the server)."""
    port = free_port()
    command = [
        sys.executable, "-m", "spherex_archive.cli", "serve", "--catalogue", catalogue,
        "--data", str(data), "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = {**os.environ, "SPHEREX_ARCHIVE_BASE_URL": f"http://127.0.0.1:{port}"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")


def client(
    port: int, positions: list[tuple[float, float]], fmt: str = "votable"
) -> list[tuple[float, int]]:
    """(seconds, rows) of each search, over one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    timings = []
    for ra, dec in positions:
        query = urlencode({"POS": f"CIRCLE {ra!r} {dec!r} 0", "RESPONSEFORMAT": fmt})
        started = time.perf_counter()
        conn.request("GET", f"/SIA?{query}")
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"SIA answered {response.status}: {body[:500]!r}")
        timings.append(
            (elapsed, body.count(b"<TR>") if fmt == "votable" else body.count(b"\n") - 1)
        )
    conn.close()
    return timings


def measure(port: int, positions, clients: int, fmt: str) -> list[tuple[float, int]]:
    share = [positions[i::clients] for i in range(clients)]
    client(port, positions[:20], fmt)  # warm the server, its connections and the page cache
    with ThreadPoolExecutor(clients) as pool:
        return [t for part in pool.map(lambda p: client(port, p, fmt), share) for t in part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"))
    parser.add_argument(
        "--format", default="votable", help="RESPONSEFORMAT: votable (what pyvo reads) or csv"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(11)

    demo_url, demo_root, centres = demo_catalogue(args.scratch)
    picks = rng.choice(len(centres), args.queries)
    demo_positions = [
        (
            centres[i][0] + rng.normal(0, 0.05),
            float(np.clip(centres[i][1] + rng.normal(0, 0.05), -90, 90)),
        )
        for i in picks
    ]
    demo_positions = [(ra % 360, dec) for ra, dec in demo_positions]
    big = catalogue_for("sqlite", args.planes, args.scratch)
    big_url = big.url
    big.close()
    cases = [
        (f"demo release ({len(centres)} images)", demo_url, demo_root, demo_positions),
        (f"{args.planes:,} planes", big_url, args.scratch, sky_positions(args.queries, rng)),
    ]
    rows = []
    for label, url, data, positions in cases:
        process, port = serve(url, data, args.workers, args.scratch / "bench-sia-server.log")
        try:
            for clients in args.clients:
                started = time.perf_counter()
                timings = measure(port, positions, clients, args.format)
                wall = time.perf_counter() - started
                seconds = [t for t, _ in timings]
                found = [n for _, n in timings]
                rows.append(
                    [
                        label,
                        str(clients),
                        f"{statistics.median(seconds) * 1000:.1f}",
                        f"{percentile(seconds, 99) * 1000:.1f}",
                        f"{len(seconds) / wall:.0f}",
                        f"{statistics.median(found):.0f} / {max(found)}",
                    ]
                )
        finally:
            process.terminate()
            process.wait(30)
    print(f"\n{args.queries} point searches (POS=CIRCLE ra dec 0, {args.format}) per row, "
          f"{args.workers} server worker(s)\n")  # fmt: skip
    print_table(
        ["catalogue", "clients", "median ms", "p99 ms", "queries/s", "rows (median / max)"],
        rows,
    )


if __name__ == "__main__":
    main()
