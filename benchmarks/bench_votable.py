"""How fast the streaming VOTable writer is, next to astropy's writer on the same table.

    python benchmarks/bench_votable.py [--rows 1000000] [--astropy-rows 200000 (0: none)]

Rows are ObsCore rows of ``spherex.obscore`` (its 51 columns, in IRSA's order) as the catalogue
returns them: strings for text, timestamps as ``YYYY-MM-DD HH:MM:SS`` text, NULLs where the view
has them, 1000 distinct rows repeated. Each case runs in a fresh process and writes to a sink
that counts bytes; the table reports rows per second of wall time and the peak resident memory
of that process above what it held before writing.

astropy needs the whole table in memory as arrays before it writes (that is part of its peak);
the archive's writer consumes an iterator of tuples. astropy is given the timestamps already in
ISO form (it has no conversion), and is run on ``--astropy-rows`` rows (fewer by default, as it
takes minutes on a million); rates are per row, so they compare.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import random
import resource
import time

from spherex_archive.model.schema import Column
from spherex_archive.model.tables import SPHEREX_OBSCORE

DISTINCT = 1000


def obscore_rows(count: int, seed: int = 1) -> list[tuple]:
    """``count`` distinct rows shaped like the catalogue's answer for spherex.obscore."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        ra, dec = rng.uniform(0, 360), rng.uniform(-90, 90)
        detector = rng.randint(1, 6)
        obs_id = f"2025W{rng.randint(18, 52)}_{rng.randint(1, 2)}A_{rng.randint(1, 999):04d}_{i}"
        did = f"ivo://irsa.ipac/spherex_qr2?{obs_id}/D{detector}"
        key = f"qr2/level2/2025W51_1A/l2b-v20-2025-356/{detector}/level2_{obs_id}D{detector}.fits"
        corners = " ".join(
            f"{ra + dx:.7f} {dec + dy:.7f}"
            for dx, dy in ((0, 0), (0.98, 0), (0.98, 0.98), (0, 0.98))
        )
        values = {
            "s_ra": ra,
            "s_dec": dec,
            "facility_name": "SPHEREx",
            "instrument_name": "SPHEREx",
            "dataproduct_subtype": "science",
            "calib_level": 2,
            "dataproduct_type": "image",
            "energy_bandpassname": f"SPHEREx-D{detector}",
            "energy_emband": "Infrared",
            "obs_id": obs_id,
            "s_resolution": 3.075,
            "em_min": 0.75e-6 + rng.random() * 1e-7,
            "em_max": 1.1e-6 + rng.random() * 1e-7,
            "em_res_power": 41.0,
            "proposal_title": "SPHEREx LVF Survey Data",
            "access_url": f"http://127.0.0.1:8000/datalink/links/spherex?ID={did}",
            "access_format": "application/x-votable+xml;content=datalink",
            "access_estsize": rng.randint(70000, 72000),
            "t_exptime": 112.0,
            "s_region": f"POLYGON ICRS {corners}",
            "obs_collection": "spherex_qr2",
            "obs_intent": "science",
            "algorithm_name": "exposure",
            "proposal_project": "SPHEREx",
            "target_name": f"SPS_{rng.randint(1, 99999)}",
            "target_type": "field",
            "target_standard": 0,
            "target_moving": 0,
            "obs_release_date": "2025-12-31 00:00:00",
            "s_xel1": 2040,
            "s_xel2": 2040,
            "s_pixel_scale": 6.15,
            "position_timedependent": 0,
            "t_min": 60800.0 + rng.random() * 300,
            "t_max": 60800.0 + rng.random() * 300,
            "obs_publisher_did": did,
            "s_fov": 3.5,
            "cloud_access": '{"aws": {"bucket_name": "nasa-irsa-spherex", "key":"'
            + key
            + '", "region": "us-east-1"}}',
        }
        rows.append(tuple(values.get(c.name) for c in SPHEREX_OBSCORE.columns))
    return rows


class Sink:
    """A file-like object that counts bytes."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> int:
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_archive(serialization: str, count: int) -> tuple[float, int, float]:
    from spherex_archive.formats.votable import write_votable

    distinct = obscore_rows(DISTINCT)
    rows = itertools.islice(itertools.cycle(distinct), count)
    before = peak_rss_mb()
    start = time.perf_counter()
    total = sum(
        len(c) for c in write_votable(SPHEREX_OBSCORE.columns, rows, serialization=serialization)
    )
    return time.perf_counter() - start, total, peak_rss_mb() - before


def astropy_table(columns: tuple[Column, ...], rows: list[tuple]):
    """The same VOTable as astropy objects: FIELDs from the columns, arrays filled."""
    from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

    vot = VOTableFile(version="1.4")
    res = Resource()
    vot.resources.append(res)
    table = TableElement(vot)
    res.tables.append(table)
    for c in columns:
        table.fields.append(
            Field(
                vot,
                name=c.name,
                datatype=c.datatype,
                arraysize=c.arraysize,
                unit=c.unit,
                ucd=c.ucd,
                utype=c.utype,
                xtype=c.xtype,
            )
        )
    table.create_arrays(len(rows))
    for j, (c, values) in enumerate(zip(columns, zip(*rows, strict=True), strict=True)):
        name = table.fields[j].name
        mask = [v is None for v in values]
        if c.is_timestamp:
            values = [v.replace(" ", "T") if v else v for v in values]
        fill = "" if c.datatype == "char" else 0
        table.array[name] = [fill if v is None else v for v in values]
        table.array.mask[name] = mask
    return vot


def run_astropy(serialization: str, count: int) -> tuple[float, int, float]:
    distinct = obscore_rows(DISTINCT)
    before = peak_rss_mb()
    rows = list(itertools.islice(itertools.cycle(distinct), count))
    vot = astropy_table(SPHEREX_OBSCORE.columns, rows)
    del rows
    sink = Sink()
    start = time.perf_counter()
    vot.to_xml(sink, tabledata_format=serialization.lower())
    return time.perf_counter() - start, sink.bytes, peak_rss_mb() - before


def measure(function, serialization: str, count: int) -> tuple[float, int, float]:
    """Run in a fresh process, so peak memory is this case's alone."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, (serialization, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--astropy-rows", type=int, default=200_000, help="0: the archive's writer only"
    )
    args = parser.parse_args()
    lines = [
        "| writer | serialization | rows | seconds | rows/s | MB written | peak MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rates = {}
    cases = [("spherex_archive", run_archive, args.rows)]
    if args.astropy_rows:
        cases.append(("astropy", run_astropy, args.astropy_rows))
    for name, function, count in cases:
        for serialization in ("TABLEDATA", "BINARY2"):
            seconds, size, peak = measure(function, serialization, count)
            rates[name, serialization] = count / seconds
            lines.append(
                f"| {name} | {serialization} | {count:,} | {seconds:.1f} | "
                f"{count / seconds:,.0f} | {size / 1e6:,.0f} | {peak:,.0f} |"
            )
            print(lines[-1], flush=True)
    print()
    print(f"{len(SPHEREX_OBSCORE.columns)} columns (spherex.obscore).")
    print("\n".join(lines))
    if args.astropy_rows:
        for serialization in ("TABLEDATA", "BINARY2"):
            ratio = rates["spherex_archive", serialization] / rates["astropy", serialization]
            print(f"\n{serialization}: {ratio:.1f}x astropy's rate", end="")
        print()


if __name__ == "__main__":
    main()
