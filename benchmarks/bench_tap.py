"""TAP sync latency through HTTP beside the same query's SQL, and streaming throughput.

    python benchmarks/bench_tap.py [--planes 1000000 10000000] [--backends sqlite postgresql]
        [--kinds footprints centres] [--queries 300] [--stream-rows 1000000] [--scratch /tmp]

For each catalogue (``bench_catalogue.py``'s synthetic survey, filled once and reused) a real
``spherex-archive serve`` process answers TAP sync queries of a 0.1-degree circle at random
positions (``SELECT * FROM ivoa.obscore``, VOTable), asked two ways (--kinds): ``footprints``,
the images whose footprint meets the circle (``INTERSECTS(s_region, CIRCLE(...))``, what a
search for the images of a source asks: about 2 000 rows a query at ten million planes), and
``centres``, the images whose centre lies in it (``CONTAINS(POINT('ICRS', s_ra, s_dec),
CIRCLE(...))``, ObsCore's own cone search: a few rows). Over one kept-alive connection, each
query is also timed
as its translated SQL run directly through the catalogue in this process, rows fetched, right
before or after it (alternately), so that both see the same load on a shared machine. The
difference of the medians is what TAP adds (parsing, translation, VOTable, HTTP); so is the
median of each query's own difference, which the answers' varying sizes disturb less.
Then one ``SELECT * FROM ivoa.obscore`` of --stream-rows rows is read through HTTP: rows per
second, and the server's peak memory (VmHWM) before and after. Markdown tables; compare
medians, the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from bench_catalogue import catalogue_for, percentile
from bench_sia import serve, sky_positions
from mdtable import print_table
from spherex_archive.services.query import QueryEngine


def cone(ra: float, dec: float, kind: str = "footprints") -> str:
    circle = f"CIRCLE('ICRS', {ra!r}, {dec!r}, 0.1)"
    if kind == "centres":
        return (
            f"SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), {circle}) = 1"
        )
    return f"SELECT * FROM ivoa.obscore WHERE INTERSECTS(s_region, {circle}) = 1"


def through_http(conn: http.client.HTTPConnection, query: str) -> float:
    body = urlencode({"LANG": "ADQL", "QUERY": query, "MAXREC": 1_000_000})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for attempt in (1, 2):
        started = time.perf_counter()
        try:
            conn.request("POST", "/TAP/sync", body, headers)
            response = conn.getresponse()
        except ConnectionError:
            # uvicorn closes a connection idle for 5 s (a slow SQL query in between): again
            conn.close()
            if attempt == 2:
                raise
            continue
        break
    data = response.read()
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"TAP answered {response.status}: {data[:500]!r}")
    return seconds


def through_sql(engine: QueryEngine, query: str) -> tuple[float, int]:
    """(seconds, rows) of the query's translated SQL, its rows fetched."""
    sql = engine.translate(query)
    started = time.perf_counter()
    rows = list(engine.catalogue.query(sql.sql, sql.params).rows)
    return time.perf_counter() - started, len(rows)


def side_by_side(port: int, engine: QueryEngine, queries: list[str]) -> tuple[list, list, list]:
    """(HTTP seconds, SQL seconds, rows) of each query, HTTP and SQL timed one right after the
    other."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    http_times, sql_times = [], []
    for i, query in enumerate(queries):
        if i % 2:
            sql_times.append(through_sql(engine, query))
            http_times.append(through_http(conn, query))
        else:
            http_times.append(through_http(conn, query))
            sql_times.append(through_sql(engine, query))
    conn.close()
    return http_times, [s for s, _ in sql_times], [n for _, n in sql_times]


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def stream(port: int, pid: int, rows: int) -> tuple[float, int, int]:
    """(rows per second, server peak KiB before, after) of one big answer."""
    before = peak_kib(pid)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    query = f"SELECT TOP {rows} * FROM ivoa.obscore"
    body = urlencode({"LANG": "ADQL", "QUERY": query, "MAXREC": rows})
    started = time.perf_counter()
    conn.request("POST", "/TAP/sync", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    count = 0
    while chunk := response.read(1 << 20):
        count += chunk.count(b"<TR>")
    seconds = time.perf_counter() - started
    return count / seconds, before, peak_kib(pid)


def figures(http_times: list[float], sql_times: list[float], counts: list[int]) -> list[str]:
    """Rows (median), TAP median and p99, SQL median and p99, their difference and each
    query's own, ms."""
    tap, sql = statistics.median(http_times), statistics.median(sql_times)
    # Each query's own overhead (its TAP time less its SQL time): the answers' sizes vary a
    # hundredfold, and this cancels them where the difference of medians does not.
    paired = statistics.median(h - s for h, s in zip(http_times, sql_times, strict=True))
    return [
        f"{statistics.median(counts):,.0f}",
        f"{tap * 1000:.1f}",
        f"{percentile(http_times, 99) * 1000:.1f}",
        f"{sql * 1000:.1f}",
        f"{percentile(sql_times, 99) * 1000:.1f}",
        f"{(tap - sql) * 1000:.1f}",
        f"{paired * 1000:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--kinds", nargs="+", default=["footprints", "centres"], choices=["footprints", "centres"]
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--stream-rows", type=int, default=1_000_000)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    positions = sky_positions(args.queries, rng)
    latency, streaming = [], []
    for planes in args.planes:
        for backend in args.backends:
            catalogue = catalogue_for(backend, planes, args.scratch)
            engine = QueryEngine(catalogue, timeout=600, max_rows=10_000_000)
            log = args.scratch / f"bench-tap-{backend}-{planes}.log"
            process, port = serve(catalogue.url, args.scratch, 1, log)
            try:
                for kind in args.kinds:
                    queries = [cone(ra, dec, kind) for ra, dec in positions]
                    side_by_side(port, engine, queries[:20])  # warm caches on both paths
                    times = side_by_side(port, engine, queries)
                    latency.append([f"{planes:,}", backend, kind, *figures(*times)])
                if planes >= args.stream_rows:
                    rate, before, after = stream(port, process.pid, args.stream_rows)
                    streaming.append(
                        [f"{planes:,}", backend, f"{args.stream_rows:,}", f"{rate:,.0f}",
                         f"{before / 1024:.0f}", f"{after / 1024:.0f}"]
                    )  # fmt: skip
            finally:
                process.terminate()
                process.wait(60)
                catalogue.close()
    print(f"\n{args.queries} queries of a 0.1-degree circle (SELECT *, VOTable) per row\n")
    print_table(
        ["planes", "backend", "query", "rows", "TAP median ms", "TAP p99 ms", "SQL median ms",
         "SQL p99 ms", "TAP overhead ms", "overhead per query, median ms"],
        latency,
    )  # fmt: skip
    if streaming:
        print("\nOne big answer through TAP sync (VOTable TABLEDATA)\n")
        print_table(
            ["planes", "backend", "rows", "rows/s", "server peak MB before", "after"], streaming
        )


if __name__ == "__main__":
    main()
