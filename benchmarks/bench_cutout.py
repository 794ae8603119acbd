"""Cutouts of full-size spectral images: through HTTP against reading the whole file.

    python benchmarks/bench_cutout.py [--requests 200] [--size 0.1] [--scratch /tmp]

Writes (once, under ``--scratch``) a release of real-size 2040-pixel spectral images, copies
its level-2 files into a bucket of moto's S3 server (started here, on 127.0.0.1), and serves
both through the archive's IBE router in two real uvicorn processes: one over the folder, one
over the bucket. Then, in one run, side by side:

- ``--requests`` cutouts of ``--size`` degrees (IRSA's ``file.fits?center=ra,dec&size=``) at
  random positions of random files, over HTTP with a keep-alive client: median and p99 of
  the wall time until the last byte arrived, from the folder and from the bucket;
- the reference a user has without a cutout service: astropy opens the whole file
  (``fits.open``), reads the four image planes, slices them and writes the seven-HDU cutout
  (no network: the file is already on the same disk);
- bytes read from the file per cutout (cropped planes; the PSF and table copied; headers
  cached per file), against the minimum (the window's pixels of four planes).

The machines are shared and noisy: compare medians and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from fastapi import FastAPI

from spherex_archive.protocols import ibe
from spherex_archive.services.cutout import cut, open_image
from spherex_archive.store import FsspecStore, LocalStore
from spherex_archive.synth.release import SynthOptions, synthesise

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mdtable import print_table  # noqa: E402

BUCKET = "bench-cutout"
CREDENTIALS = {"key": "bench", "secret": "bench"}
DATA_VARIABLE = "BENCH_CUTOUT_DATA"
ENDPOINT_VARIABLE = "BENCH_CUTOUT_ENDPOINT"


def app() -> FastAPI:
    """The server under test (uvicorn ``--factory``): the IBE router over the folder or the
    bucket named in the environment."""
    application = FastAPI()
    data = os.environ[DATA_VARIABLE]
    if data.startswith("s3://"):
        application.state.store = FsspecStore(
            data, endpoint_url=os.environ[ENDPOINT_VARIABLE], **CREDENTIALS
        )
    else:
        application.state.store = LocalStore(data)
    application.include_router(ibe.router)
    return application


def release(scratch: Path) -> tuple[Path, list[str]]:
    root = scratch / "bench-cutout-release"
    keys = sorted(p.relative_to(root).as_posix() for p in root.glob("qr2/level2/*/*/*/*.fits"))
    if not keys:
        print(f"writing full-size spectral images under {root} (once) ...", flush=True)
        options = SynthOptions(
            out=root,
            detector_size=2040,
            fields=["M31", "NCP"],
            exposures=2,
            deep_fields=[],
            detectors=(2, 4),
        )
        synthesise(options, progress=True)
        keys = sorted(p.relative_to(root).as_posix() for p in root.glob("qr2/level2/*/*/*/*.fits"))
    return root, keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_bucket(root: Path, keys: list[str]) -> Iterator[str]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS["key"],
            aws_secret_access_key=CREDENTIALS["secret"],
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        for key in keys:
            client.upload_file(str(root / key), BUCKET, key)
        yield endpoint
    finally:
        server.stop()


@contextlib.contextmanager
def uvicorn(data: str, endpoint: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, DATA_VARIABLE: data, ENDPOINT_VARIABLE: endpoint}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--factory", "bench_cutout:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def positions(
    root: Path, keys: list[str], count: int, seed: int = 5
) -> list[tuple[str, float, float]]:
    """(key, ra, dec) at random pixels of random files, at least 0.1 deg inside the frame."""
    rng = np.random.default_rng(seed)
    wcs = {}
    for key in keys:
        with fits.open(root / key) as hdul:
            wcs[key] = WCS(hdul["IMAGE"].header)
    out = []
    for _ in range(count):
        key = keys[rng.integers(len(keys))]
        x, y = rng.uniform(60, 1980, 2)
        ra, dec = wcs[key].all_pix2world([x], [y], 0)
        out.append((key, float(ra[0]), float(dec[0])))
    return out


def http_cutouts(base: str, targets, size: float) -> tuple[list[float], int]:
    """Seconds per cutout (request sent to last byte read) over one keep-alive connection."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    times, total = [], 0
    for key, ra, dec in targets:
        path = f"{ibe.PREFIX}/{key}?center={ra:.6f},{dec:.6f}&size={size}"
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
        total += len(body)
    connection.close()
    return times, total // len(targets)


def astropy_cutout(path: Path, ra: float, dec: float, size: float) -> bytes:
    """What a user does without a cutout service: read the whole file, cut, write."""
    with fits.open(path, memmap=False) as hdul:
        header = hdul["IMAGE"].header
        wcs = WCS(header)
        x, y = wcs.all_world2pix([ra], [dec], 0)
        n = round(size / abs(wcs.proj_plane_pixel_scales()[0].value))
        x0, y0 = int(np.floor(x[0] + 1 - n / 2)), int(np.floor(y[0] + 1 - n / 2))
        out = fits.HDUList([hdul[0].copy()])
        for name in ("IMAGE", "FLAGS", "VARIANCE", "ZODI"):
            plane = hdul[name]
            cropped = fits.ImageHDU(plane.data[y0 : y0 + n, x0 : x0 + n], plane.header.copy())
            for key, shift in (("CRPIX1", x0), ("CRPIX2", y0)):
                for suffix in ("", "A", "W"):
                    if key + suffix in cropped.header:
                        cropped.header[key + suffix] -= shift
            out.append(cropped)
        out.append(hdul["PSF"].copy())
        out.append(hdul["WCS-WAVE"].copy())
        buffer = io.BytesIO()
        out.writeto(buffer)
        return buffer.getvalue()


def bytes_read(store, targets, size: float) -> tuple[float, float, float, float]:
    """Medians of: bytes read to make the cropped planes (on S3, rows of a plane are fetched
    as one range), the minimum (the window's pixels), bytes read in all, bytes sent."""
    pixels, minimum, total, sent = [], [], [], []
    for key, ra, dec in targets:
        image = open_image(store, store.stat(key))
        store.bytes_read = 0
        window = image.box((ra, dec), (size, size))
        result = cut(store, image, window)
        pixels.append(store.bytes_read)
        minimum.append(4 * window.nx * window.ny * 4)
        sent.append(sum(len(p) for p in result.iter_bytes(store)))
        total.append(store.bytes_read)
    return tuple(statistics.median(v) for v in (pixels, minimum, total, sent))


def ms(seconds: list[float], q: float) -> str:
    return f"{np.quantile(np.asarray(seconds) * 1000, q):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--size", type=float, default=0.1, help="cutout size in degrees")
    parser.add_argument("--reference-runs", type=int, default=15)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    root, keys = release(args.scratch)
    targets = positions(root, keys, args.requests)
    print(f"{len(keys)} full-size files; {args.requests} cutouts of {args.size} deg", flush=True)
    with moto_bucket(root, keys) as endpoint:
        rows = []
        with uvicorn(str(root), endpoint) as local, uvicorn(f"s3://{BUCKET}", endpoint) as s3:
            for name, base in (("folder", local), ("S3 bucket (moto)", s3)):
                http_cutouts(base, targets[:10], args.size)  # warm: headers cached per file
                times, size = http_cutouts(base, targets, args.size)
                rows.append((name, times, size))
        # What the S3 server itself costs: one ranged GET of as many bytes as a cutout sends.
        floor_store = FsspecStore(f"s3://{BUCKET}", endpoint_url=endpoint, **CREDENTIALS)
        floor = []
        for key, _, _ in targets[:20]:
            started = time.perf_counter()
            floor_store.read_range(key, 0, rows[0][2])
            floor.append(time.perf_counter() - started)
        reference = []
        for key, ra, dec in targets[: args.reference_runs]:
            started = time.perf_counter()
            astropy_cutout(root / key, ra, dec, args.size)
            reference.append(time.perf_counter() - started)

        print()
        print_table(
            ["cutout of a 71.6 MB file", "median ms", "p99 ms", "bytes sent", "speed vs astropy"],
            [
                (
                    f"HTTP, {name}",
                    ms(times, 0.5),
                    ms(times, 0.99),
                    f"{size:,}",
                    f"{statistics.median(reference) / statistics.median(times):.1f}x",
                )
                for name, times, size in rows
            ]
            + [
                (
                    "S3 server alone: one ranged GET of as many bytes (floor)",
                    ms(floor, 0.5),
                    ms(floor, 0.99),
                    f"{rows[0][2]:,}",
                    "",
                ),
                (
                    "astropy: read the whole file, cut, write (reference)",
                    ms(reference, 0.5),
                    ms(reference, 0.99),
                    "",
                    "1x",
                ),
            ],
        )
        print()
        local_store = LocalStore(root)
        s3_store = FsspecStore(f"s3://{BUCKET}", endpoint_url=endpoint, **CREDENTIALS)
        table = []
        for name, store in (("folder", local_store), ("S3 bucket (moto)", s3_store)):
            pixels, minimum, total, sent = bytes_read(store, targets[:50], args.size)
            table.append(
                (
                    name,
                    f"{pixels:,.0f}",
                    f"{minimum:,.0f}",
                    f"{pixels / minimum:.2f}",
                    f"{total:,.0f}",
                    f"{sent:,.0f}",
                )
            )
        print_table(
            [
                "bytes per cutout",
                "pixels read",
                "minimum",
                "ratio",
                "read in all (PSF, table copied)",
                "sent",
            ],
            table,
        )


if __name__ == "__main__":
    main()
