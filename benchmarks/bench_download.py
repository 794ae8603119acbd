"""How fast files download over HTTP, next to how fast this machine reads them.

    python benchmarks/bench_download.py [--file FITS] [--runs 11] [--scratch /tmp]
                                        [--chunk-sizes 1048576,4194304]

Serves a real-size spectral image (71.6 MB; written once under ``--scratch`` unless ``--file``
names one) through the archive's IBE router in a real uvicorn server (``--workers 1``, one server
per chunk size) and downloads it with curl to /dev/null. References, all with a warm page cache
(nothing is dropped; every command runs once before timing):

- ``cat FILE > /dev/null``: the machine's read speed from the page cache (memory speed);
- ``dd iflag=direct``: the disk itself, bypassing the cache;
- loopback TCP: curl from a bare socket that sends bytes held in memory, the most any HTTP
  server can deliver to a client on this machine.

Then the same file read from the disk itself ("cold"): before each timed read the file's pages
are dropped from the page cache (``posix_fadvise(POSIX_FADV_DONTNEED)``, no root needed), and
``cat`` and each HTTP download read it anew. This is the comparison with "the disk's own read
speed"; the warm one says what the server costs when the disk is not the limit.

Every figure is bytes over the wall time of the client process (cat, dd or curl), median of
``--runs`` interleaved rounds; the machines are shared and noisy, so compare medians and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI

from spherex_archive.protocols import ibe
from spherex_archive.store import LocalStore, is_release_key
from spherex_archive.synth.release import SynthOptions, synthesise

HERE = Path(__file__).resolve().parent
ROOT_VARIABLE = "BENCH_DOWNLOAD_ROOT"
CHUNK_VARIABLE = "BENCH_DOWNLOAD_CHUNK"


def app() -> FastAPI:
    """The server under test (uvicorn ``--factory``): a bare app with the IBE router only."""
    ibe.CHUNK_SIZE = int(os.environ.get(CHUNK_VARIABLE, ibe.CHUNK_SIZE))
    application = FastAPI()
    application.state.store = LocalStore(os.environ[ROOT_VARIABLE])
    application.include_router(ibe.router)
    return application


def full_size_file(scratch: Path) -> Path:
    """A 2040-pixel spectral image, written on the first run and reused after."""
    out = scratch / "bench-download-release"
    found = sorted(out.glob("qr2/level2/*/*/*/level2_*.fits"))
    if not found:
        options = SynthOptions(
            out=out,
            detector_size=2040,
            detectors=(1,),
            fields=["M31"],
            exposures=1,
            deep_fields=[],
        )
        synthesise(options, progress=False, log=lambda _: None)
        found = sorted(out.glob("qr2/level2/*/*/*/level2_*.fits"))
    return found[0]


def bucket_root(file: Path, scratch: Path) -> tuple[Path, str]:
    """The root and key to serve ``file`` under: its own release tree when it is in one,
    else a hard link (or copy) at ``qr2/<name>`` in a scratch root."""
    file = file.resolve()
    for parent in file.parents:
        key = file.relative_to(parent).as_posix()
        if is_release_key(key):
            return parent, key
    root = scratch / "bench-download-root"
    target = root / "qr2" / file.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, target)
        except OSError:
            shutil.copyfile(file, target)
    return root, f"qr2/{file.name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(root: Path, chunk_size: int) -> Iterator[str]:
    """A uvicorn process serving ``root``; yields its base URL."""
    port = free_port()
    env = dict(os.environ, **{ROOT_VARIABLE: str(root), CHUNK_VARIABLE: str(chunk_size)})
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_download:app",
        "--factory",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/ibe/data/spherex/", timeout=5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the uvicorn server did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def memory_server(size: int) -> Iterator[str]:
    """A bare socket answering every request with ``size`` bytes from memory: loopback TCP's
    ceiling, with no file and no HTTP server in the way."""
    body = memoryview(bytes(size))
    header = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the benchmark is over
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(65536)
                    if not data:
                        break
                    request += data
                with contextlib.suppress(OSError):
                    conn.sendall(header)
                    conn.sendall(body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        thread.join(timeout=5)


def evict(file: Path) -> None:
    """Drop ``file``'s pages from the page cache, so that the next read comes from the disk."""
    fd = os.open(file, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def wall_time(command: list[str], cold: Path | None = None) -> float:
    if cold is not None:
        evict(cold)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def curl_command(url: str) -> list[str]:
    return ["curl", "-sf", "-o", "/dev/null", url]


def check_download(url: str, size: int) -> None:
    out = subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if int(out) != size:
        raise RuntimeError(f"{url} gave {out} bytes, not {size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="serve this file (default: a synthetic one)")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--chunk-sizes",
        default=str(ibe.CHUNK_SIZE),
        help="comma-separated bytes per body message to compare (default: the router's)",
    )
    args = parser.parse_args()
    file = args.file or full_size_file(args.scratch)
    size = file.stat().st_size
    root, key = bucket_root(file, args.scratch)
    chunks = [int(c) for c in args.chunk_sizes.split(",")]

    commands: dict[str, list[str]] = {
        "`cat FILE > /dev/null` (page cache)": ["cat", str(file)],
        "`dd iflag=direct` (the disk, no cache)": [
            "dd",
            f"if={file}",
            "of=/dev/null",
            "bs=4M",
            "iflag=direct",
        ],
    }
    with contextlib.ExitStack() as stack:
        tcp = stack.enter_context(memory_server(size))
        commands["loopback TCP ceiling (curl from memory)"] = curl_command(f"{tcp}/")
        for chunk in chunks:
            base = stack.enter_context(uvicorn_server(root, chunk))
            url = f"{base}{ibe.PREFIX}/{key}"
            check_download(url, size)
            commands[f"HTTP download via uvicorn, {chunk // 1024} KiB chunks"] = curl_command(url)
        for name, command in list(commands.items()):
            try:
                wall_time(command)  # warm up: page cache, connections, imports
            except subprocess.CalledProcessError:
                print(f"skipped {name}: it failed here", file=sys.stderr)
                del commands[name]
        cold = {
            name.replace("(page cache)", "(from the disk)").replace("chunks", "chunks, cold"): c
            for name, c in commands.items()
            if name.startswith(("`cat", "HTTP"))
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cold_times: dict[str, list[float]] = {name: [] for name in cold}
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits all alike
            for name, command in commands.items():
                times[name].append(wall_time(command))
            for name, command in cold.items():
                cold_times[name].append(wall_time(command, cold=file))

    rates = {name: size / 1e6 / statistics.median(t) for name, t in times.items()}
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    print(
        f"{file.name}: {size / 1e6:.1f} MB; median of {args.runs} runs; {os.cpu_count()} cores; "
        f"uvicorn with {loop} + {http}\n\nWarm: the page cache holds the file\n"
    )
    references = {
        "cat": "`cat FILE > /dev/null` (page cache)",
        "loopback TCP": "loopback TCP ceiling (curl from memory)",
    }
    print_rates(rates, references)
    cold_rates = {name: size / 1e6 / statistics.median(t) for name, t in cold_times.items()}
    print("\nCold: the file dropped from the page cache before every read\n")
    print_rates(cold_rates, {"cat from the disk": "`cat FILE > /dev/null` (from the disk)"})


def print_rates(rates: dict[str, float], references: dict[str, str]) -> None:
    """A Markdown table of ``rates`` (MB/s) against each reference (label: row name), and how
    the best HTTP download compares with the first (the target: 80 %)."""
    print(f"| what | MB/s | {' | '.join(f'vs {label}' for label in references)} |")
    print(f"|---|---:|{'---:|' * len(references)}")
    for name, rate in rates.items():
        ratios = " | ".join(f"{rate / rates[ref]:.0%}" for ref in references.values())
        print(f"| {name} | {rate:,.0f} | {ratios} |")
    best = max(rate for name, rate in rates.items() if name.startswith("HTTP"))
    label, first = next(iter(references.items()))
    verdict = "met" if best >= 0.8 * rates[first] else "not met"
    print(f"\nbest download: {best / rates[first]:.0%} of {label} (target 80 %: {verdict})")


if __name__ == "__main__":
    main()
