"""/ibe/data/spherex/: listings, downloads, ranges, conditional requests and path tricks, with
real clients (http.client, raw sockets, curl, wget, astropy + fsspec) against a real server, over
a local folder and over an S3 bucket."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import re
import socket
import subprocess
import threading
import time
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import numpy as np
import pytest
from astropy.io import fits

from spherex_archive.protocols import ibe
from spherex_archive.store import LocalStore
from tests.protocols.client import Page, raw_request, request, running
from tests.store.fixtures import manifest

GAIN = "qr2/gain_factors/base-2025-158"
YAML = f"{GAIN}/gain_factors_spx_base-2025-158.yaml"
GZ = "qr2/spectral_channels/cal-sch-v1-2026-106/spectral_channels_spx_cal-sch-v1-2026-106.fits.gz"


def level2(server) -> str:
    return next(k for k in sorted(manifest(server.release)) if "/level2/" in k)


def delivery(server) -> str:
    """The level-2 delivery folder: qr2/level2/<period>/<l2b-version>."""
    return "/".join(level2(server).split("/")[:4])


def data(server, key: str) -> bytes:
    return (server.release / key).read_bytes()


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", *args], capture_output=True, check=True)


# ---------------------------------------------------------------------------------------------
# Listings


def test_root_lists_the_releases_only(server):
    reply = request(server.url())
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = Page(reply.body.decode())
    entries = [href for href, _ in page.links if not href.startswith(("?", "."))]
    assert entries == ["qr2/"]
    assert b"truth" not in reply.body
    assert ("../", "Parent folder") not in page.links
    assert reply.body.startswith(b"<!DOCTYPE html>")


def test_folder_listing_shows_names_sizes_dates_and_parent(server):
    folder = GAIN
    reply = request(server.url(folder + "/"))
    assert reply.status == 200
    page = Page(reply.body.decode())
    assert ("../", "Parent folder") in page.links
    on_disk = sorted(p.name for p in (server.release / folder).iterdir())
    entries = {href: text for href, text in page.links if not href.startswith(("?", "."))}
    assert sorted(entries) == on_disk and sorted(entries.values()) == on_disk
    sizes = {f"{(server.release / folder / n).stat().st_size} bytes" for n in on_disk}
    assert set(page.titles) == sizes
    rows = {row[0]: row for row in page.rows if row and row[0] in on_disk}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row[2]) for row in rows.values())
    assert f"<title>Index of {ibe.PREFIX}/{folder}/</title>".encode() in reply.body
    # breadcrumbs: every level links to its own folder, relatively
    assert ("../../../", ibe.PREFIX) in page.links and ("../", "gain_factors") in page.links


def test_folders_come_first_and_show_no_size(server):
    page = Page(request(server.url(delivery(server) + "/")).body.decode())
    names = [row[0] for row in page.rows if row and row[0] != "Parent folder"]
    assert names == ["1/", "2/", "MD5SUMS"]
    assert [row[1] for row in page.rows if row and row[0] in ("1/", "2/")] == ["-", "-"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["MD5SUMS", "gain_factors_spx_base-2025-158.yaml"]),
        ("?sort=name&order=desc", ["gain_factors_spx_base-2025-158.yaml", "MD5SUMS"]),
        ("?sort=size", ["MD5SUMS", "gain_factors_spx_base-2025-158.yaml"]),
        ("?sort=size&order=desc", ["gain_factors_spx_base-2025-158.yaml", "MD5SUMS"]),
        ("?sort=bogus&order=sideways", ["MD5SUMS", "gain_factors_spx_base-2025-158.yaml"]),
    ],
)
def test_listing_sorts(server, query, expected):
    page = Page(request(server.url(GAIN + "/") + query).body.decode())
    assert [row[0] for row in page.rows if row and row[0] != "Parent folder"] == expected


def test_listing_sorts_by_date_and_marks_the_column(server):
    for order in ("asc", "desc"):
        reply = request(server.url("qr2/spectral_wcs/") + f"?sort=date&order={order}")
        page = Page(reply.body.decode())
        dates = [row[2] for row in page.rows if row and row[0] != "Parent folder"]
        assert dates == sorted(dates, reverse=order == "desc")
        # the sorted column's link flips the order; the others start ascending
        flipped = "asc" if order == "desc" else "desc"
        assert ("?sort=date&order=" + flipped, "Last modified (UTC)") in page.links
        assert ("?sort=name&order=asc", "Name") in page.links


def test_folder_without_slash_redirects_to_an_absolute_url(server):
    reply = request(server.url("qr2/level2"))
    assert reply.status == 301
    assert reply.headers["location"] == server.url("qr2/level2/")
    reply = request(server.url("qr2/level2") + "?sort=size&order=desc")
    assert reply.headers["location"] == server.url("qr2/level2/") + "?sort=size&order=desc"
    bare = request(f"{server.base}{ibe.PREFIX}")
    assert bare.status in (301, 307, 308) and bare.headers["location"] == server.url()
    followed = curl("-L", "-o", "/dev/null", "-w", "%{http_code}", server.url("qr2"))
    assert followed.stdout == b"200"


def test_repeated_slashes_redirect_to_the_canonical_url(server):
    reply = request(f"{server.base}{ibe.PREFIX}//qr2//level2/")
    assert reply.status == 301 and reply.headers["location"] == server.url("qr2/level2/")
    reply = request(f"{server.base}{ibe.PREFIX}/{YAML.replace('/', '//')}")
    assert reply.status == 301 and reply.headers["location"] == server.url(YAML)


def test_missing_things_are_404(server):
    assert request(server.url("qr2/nothing/")).status == 404
    assert request(server.url(f"{GAIN}/nothing.fits")).status == 404
    assert request(server.url(YAML + "/")).status == 404  # a file is not a folder
    assert request(server.url("qr9/")).status == 404


def test_head_on_a_folder(server):
    get = request(server.url("qr2/"))
    head = request(server.url("qr2/"), method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.body))


# ---------------------------------------------------------------------------------------------
# Downloads


@pytest.mark.parametrize(
    ("which", "content_type"),
    [
        ("level2", "application/fits"),
        (YAML, "application/yaml"),
        (GZ, "application/gzip"),
        (f"{GAIN}/MD5SUMS", "text/plain; charset=utf-8"),
    ],
)
def test_download_is_the_file(server, which, content_type):
    key = level2(server) if which == "level2" else which
    reply = request(server.url(key))
    assert reply.status == 200
    assert reply.body == data(server, key)
    entry = server.store.stat(key)
    assert reply.headers["content-type"] == content_type
    assert "content-encoding" not in reply.headers  # .gz bytes are the file, not an encoding
    assert reply.headers["content-length"] == str(entry.size)
    assert reply.headers["accept-ranges"] == "bytes"
    assert reply.headers["etag"] == entry.etag
    last_modified = parsedate_to_datetime(reply.headers["last-modified"])
    assert last_modified == entry.mtime.replace(microsecond=0)
    if key in manifest(server.release):
        assert hashlib.md5(reply.body).hexdigest() == manifest(server.release)[key]


def test_curl_download_matches_md5sums(server, tmp_path):
    key = level2(server)
    out = tmp_path / "file.fits"
    curl("-f", "-o", str(out), server.url(key))
    assert hashlib.md5(out.read_bytes()).hexdigest() == manifest(server.release)[key]
    assert out.read_bytes() == data(server, key)


def test_head_has_the_headers_of_get_and_no_body(server):
    key = level2(server)
    get = request(server.url(key))
    head = request(server.url(key), method="HEAD")
    assert head.status == 200 and head.body == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "accept-ranges"):
        assert head.headers[name] == get.headers[name]
    curl_head = curl("-I", server.url(key)).stdout.decode()
    assert f"content-length: {len(get.body)}" in curl_head.lower()
    # HEAD with a Range: range handling is defined for GET only, so it is ignored
    ranged = request(server.url(key), method="HEAD", headers={"Range": "bytes=0-9"})
    assert ranged.status == 200 and ranged.headers["content-length"] == str(len(get.body))


def test_other_query_parameters_are_ignored(server):
    reply = request(server.url(YAML) + "?foo=bar&size=0.1")
    assert reply.status == 200 and reply.body == data(server, YAML)


@pytest.mark.parametrize(
    ("query", "status", "ctype"),
    [
        ("?center=10,10px&size=5px", 200, "application/fits"),
        ("?CENTER=10,10PIX&Size=5px", 200, "application/fits"),
        ("?center=210.8,-54.3d&size=0.1", 400, "text/plain; charset=utf-8"),
    ],
)
def test_cutout_requests_go_to_the_cutout_handler(server, query, status, ctype):
    """Details are in test_ibe_cutout.py; here: the file URL dispatches on ``center``."""
    reply = request(server.url(level2(server)) + query)
    assert reply.status == status
    assert reply.headers["content-type"] == ctype


# ---------------------------------------------------------------------------------------------
# Ranges


def test_curl_first_hundred_bytes(server, tmp_path):
    key = level2(server)
    out = tmp_path / "part"
    result = curl("-r", "0-99", "-D", "-", "-o", str(out), server.url(key))
    headers = result.stdout.decode().lower()
    size = len(data(server, key))
    assert headers.startswith("http/1.1 206")
    assert f"content-range: bytes 0-99/{size}" in headers
    assert out.read_bytes() == data(server, key)[:100]


def test_curl_multiple_ranges_is_exact_multipart_byteranges(server, tmp_path):
    key = level2(server)
    file = data(server, key)
    size = len(file)
    body = tmp_path / "body"
    result = curl("-r", "0-99,2880-2979,-10", "-D", "-", "-o", str(body), server.url(key))
    headers = dict(
        line.split(": ", 1) for line in result.stdout.decode().lower().splitlines()[1:] if line
    )
    assert result.stdout.startswith(b"HTTP/1.1 206")
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", headers["content-type"])
    assert match
    boundary = match[1]
    parts = [(0, 99), (2880, 2979), (size - 10, size - 1)]
    expected = (
        b"\r\n".join(
            f"--{boundary}\r\nContent-Type: application/fits\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n".encode()
            + file[first : last + 1]
            for first, last in parts
        )
        + f"\r\n--{boundary}--\r\n".encode()
    )
    assert body.read_bytes() == expected
    assert headers["content-length"] == str(len(expected))


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=100-", 100, None),
        ("bytes=-100", -100, None),
        ("bytes=0-0", 0, 0),
        ("bytes=10-99999999999", 10, None),
        ("BYTES = 5-9", 5, 9),
        ("bytes=, 5-9 ,", 5, 9),
        ("bytes=99999999999-,5-9", 5, 9),  # unsatisfiable parts are dropped
    ],
)
def test_single_ranges(server, header, first, last):
    file = data(server, YAML)
    size = len(file)
    start = first % size
    end = size if last is None else last + 1
    reply = request(server.url(YAML), headers={"Range": header})
    assert reply.status == 206
    assert reply.body == file[start:end]
    assert reply.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
    assert reply.headers["content-length"] == str(end - start)
    assert reply.headers["content-type"] == "application/yaml"


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{far}", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(server, header):
    size = len(data(server, YAML))
    reply = request(server.url(YAML), headers={"Range": header.format(size=size, far=size + 9)})
    assert reply.status == 416
    assert reply.headers["content-range"] == f"bytes */{size}"
    curl_416 = curl("-r", f"{size + 5}-", "-o", "/dev/null", "-w", "%{http_code}", server.url(YAML))
    assert curl_416.stdout == b"416"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=5-1",
        "items=0-1",
        "bytes=",
        "bytes=--1",
        "bytes=1-2-3",
        "0-10",
        "bytes=+1-2",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits are not DIGITs
        "bytes=" + ",".join(f"{i}-{i}" for i in range(ibe.MAX_RANGES + 1)),
        "bytes=0-,0-",  # overlapping ranges asking for more than the file
    ],
)
def test_malformed_or_abusive_ranges_are_ignored(server, header):
    reply = request(server.url(YAML), headers={"Range": header.encode().decode("latin-1")})
    assert reply.status == 200
    assert reply.body == data(server, YAML)


# ---------------------------------------------------------------------------------------------
# Conditional requests


def validators(server, key: str) -> tuple[str, str]:
    headers = request(server.url(key), method="HEAD").headers
    return headers["etag"], headers["last-modified"]


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda etag, _: {"If-None-Match": etag}, 304),
        (lambda etag, _: {"If-None-Match": f'"other", {etag}'}, 304),
        (lambda etag, _: {"If-None-Match": f"W/{etag}"}, 304),  # weak comparison
        (lambda etag, _: {"If-None-Match": "*"}, 304),
        (lambda etag, _: {"If-None-Match": '"other"'}, 200),
        (lambda _, date: {"If-Modified-Since": date}, 304),
        (lambda _, date: {"If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}, 200),
        (lambda _, date: {"If-Modified-Since": "not a date"}, 200),
        (lambda _, date: {"If-None-Match": '"other"', "If-Modified-Since": date}, 200),
        (lambda etag, _: {"If-Match": etag}, 200),
        (lambda etag, _: {"If-Match": '"other"'}, 412),
        (lambda etag, _: {"If-Match": f"W/{etag}"}, 412),  # strong comparison
        (lambda _, date: {"If-Unmodified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}, 412),
        (lambda _, date: {"If-Unmodified-Since": date}, 200),
    ],
)
def test_conditional_requests(server, make, status):
    etag, date = validators(server, YAML)
    reply = request(server.url(YAML), headers=make(etag, date))
    assert reply.status == status
    if status == 304:
        assert reply.body == b"" and reply.headers["etag"] == etag
    if status == 200:
        assert reply.body == data(server, YAML)


def test_curl_time_condition_and_etag_compare(server, tmp_path):
    key = level2(server)
    out = tmp_path / "file.fits"
    curl("--etag-save", str(tmp_path / "etag"), "-o", str(out), server.url(key))
    again = curl(
        "--etag-compare",
        str(tmp_path / "etag"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        server.url(key),
    )
    assert again.stdout == b"304"
    # -z FILE: If-Modified-Since the copy's time, which is after the archive's file
    newer = curl("-z", str(out), "-o", "/dev/null", "-w", "%{http_code}", server.url(key))
    assert newer.stdout == b"304"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda etag, _: etag, 206),
        (lambda etag, _: '"another-version"', 200),
        (lambda etag, _: f"W/{etag}", 200),  # If-Range needs a strong validator
        (lambda _, date: date, 206),
        (lambda _, date: "Thu, 01 Jan 2015 00:00:00 GMT", 200),
    ],
)
def test_if_range(server, make, status):
    etag, date = validators(server, YAML)
    reply = request(server.url(YAML), headers={"Range": "bytes=0-9", "If-Range": make(etag, date)})
    assert reply.status == status
    assert reply.body == data(server, YAML)[: 10 if status == 206 else None]


# ---------------------------------------------------------------------------------------------
# Paths that try to leave the release folders

TRUTH_FILE = "truth/README.md"
TRICKS = [
    b"/ibe/data/spherex/../../../../etc/passwd",
    b"/ibe/data/spherex/qr2/../../../../../etc/passwd",
    b"/ibe/data/spherex/qr2/../truth/README.md",
    b"/ibe/data/spherex/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    b"/ibe/data/spherex/qr2/%2e%2e/truth/",
    b"/ibe/data/spherex/qr2/%2E%2E/truth/README.md",
    b"/ibe/data/spherex/qr2/.%2e/truth/README.md",
    b"/ibe/data/spherex/qr2%2f..%2f..%2f..%2fetc%2fpasswd",
    b"/ibe/data/spherex/qr2%2F%2E%2E%2Ftruth%2FREADME.md",
    b"/ibe/data/spherex/%2fetc%2fpasswd",
    b"/ibe/data/spherex//etc/passwd",
    b"/ibe/data/spherex///etc/passwd",
    b"/ibe/data/spherex/qr2\\..\\truth\\README.md",
    b"/ibe/data/spherex/qr2%5c..%5ctruth%5cREADME.md",
    b"/ibe/data/spherex/qr2/%00/../truth/",
    b"/ibe/data/spherex/qr2%00/",
    b"/ibe/data/spherex/%252e%252e/%252e%252e/etc/passwd",
    b"/ibe/data/spherex/qr2/%c0%ae%c0%ae/truth/",
    b"/ibe/data/spherex/./truth/",
    b"/ibe/data/spherex/qr2/./../truth/README.md",
    b"/ibe/data/spherex/truth",
    b"/ibe/data/spherex/truth/",
    b"/ibe/data/spherex/truth/README.md",
    b"/ibe/data/spherex/TRUTH/README.md",
    b"/ibe/data/spherex/qr2/etc_folder/passwd",
    b"/ibe/data/spherex/qr2/etc_folder/",
    b"/ibe/data/spherex/qr2/etc_passwd",
    b"/ibe/data/spherex/qr2/truth_folder/",
    b"/ibe/data/spherex/qr2/truth_folder/README.md",
    b"/ibe/data/spherex/qr2/level2/../../truth/README.md",
    b"http://127.0.0.1/ibe/data/spherex/../../etc/passwd",
]


@pytest.mark.parametrize("target", TRICKS, ids=lambda t: t.decode("latin-1"))
def test_path_tricks_never_leave_the_releases(server, target):
    secret = (server.release / TRUTH_FILE).read_bytes()[:40]
    for method in (b"GET", b"HEAD"):
        reply = raw_request(server.base, target, method)
        assert reply.status in (400, 404), (method, reply.status)
        assert b"root:" not in reply.body and secret not in reply.body
    assert request(server.url()).status == 200  # and the server is still fine


def test_traps_are_not_listed(server):
    body = request(server.url("qr2/")).body
    assert b"level2/" in body
    for name in (b"etc_folder", b"etc_passwd", b"truth_folder", b"truth"):
        assert name not in body


# ---------------------------------------------------------------------------------------------
# Real clients


def test_wget_mirrors_a_delivery_byte_for_byte(server, tmp_path):
    folder = delivery(server)
    subprocess.run(
        [
            "wget",
            "-q",
            "-r",
            "-np",
            "-nH",
            "-e",
            "robots=off",
            "-P",
            str(tmp_path),
            server.url(folder + "/"),
        ],
        check=True,
    )
    mirror = tmp_path / ibe.PREFIX.lstrip("/") / folder
    expected = sorted(
        p.relative_to(server.release / folder)
        for p in (server.release / folder).rglob("*")
        if p.is_file()
    )
    got = sorted(
        p.relative_to(mirror)
        for p in mirror.rglob("*")
        if p.is_file() and not p.name.startswith("index.html")
    )
    assert got == expected
    for name in expected:
        assert (mirror / name).read_bytes() == (server.release / folder / name).read_bytes()
    subprocess.run(["md5sum", "--quiet", "-c", "MD5SUMS"], cwd=mirror, check=True)
    # -np kept it inside the delivery
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(mirror)]
    assert outside == []


def test_astropy_reads_a_section_over_http_ranges(server):
    key = level2(server)
    url = server.url(key)
    local = fits.getdata(server.release / key, "IMAGE")
    server.requests.clear()
    with fits.open(url, use_fsspec=True, fsspec_kwargs={"block_size": 2880 * 4}) as hdul:
        section = hdul["IMAGE"].section[3:11, 5:20]
        header = hdul["IMAGE"].header
    assert np.array_equal(section, local[3:11, 5:20], equal_nan=True)
    assert header["NAXIS1"] == local.shape[1]
    gets = [r for r in server.requests if r[0] == "GET" and r[1].endswith(key)]
    assert gets and all(r[2] and r[2].startswith("bytes=") for r in gets)
    read = 0
    for _, _, header_value in gets:
        first, last = header_value.removeprefix("bytes=").split("-")
        read += int(last) - int(first) + 1
    assert read < len(data(server, key)) / 2  # a section, not the file


def test_abandoned_downloads_close_their_files(release):
    key = next(k for k in sorted(manifest(release)) if "/level2/" in k)
    path = str((release / key).resolve())
    target = f"{ibe.PREFIX}/{key}".encode()

    def open_files() -> int:
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if _readlink(fd) == path)

    with running(LocalStore(release), []) as base:  # in this process: its descriptors are ours
        address = (urlsplit(base).hostname, urlsplit(base).port)
        for _ in range(10):  # read a little, then hang up
            with socket.create_connection(address, timeout=30) as sock:
                sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.recv(1000)
        deadline = time.monotonic() + 10
        while open_files() and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.1)
        assert open_files() == 0
        assert request(f"{base}{ibe.PREFIX}/{key}").body == (release / key).read_bytes()


def test_chunks_are_read_ahead_and_closed_when_the_client_goes():
    """Each chunk is read while the one before it is sent; a client gone in the middle leaves
    no file open, even with a read under way."""
    reading, closed = threading.Event(), threading.Event()
    release = threading.Event()

    def chunks():
        try:
            yield b"first"
            reading.set()  # asked for the second while the first is being sent
            release.wait(10)
            yield b"second"
            yield b"third"
        finally:
            closed.set()

    async def client_goes_after_the_first() -> bytes:
        body = ibe._read_ahead(chunks())
        first = await body.__anext__()
        await asyncio.to_thread(reading.wait, 10)
        await body.aclose()  # the second chunk's read is still under way
        assert not closed.is_set()
        release.set()
        await asyncio.to_thread(closed.wait, 10)
        return first

    assert asyncio.run(client_goes_after_the_first()) == b"first"
    assert closed.is_set()

    async def whole() -> list[bytes]:
        return [chunk async for chunk in ibe._read_ahead(c for c in (b"a", b"b", b"c"))]

    assert asyncio.run(whole()) == [b"a", b"b", b"c"]


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def test_last_modified_is_an_http_date(server):
    entry = server.store.stat(YAML)
    reply = request(server.url(YAML), method="HEAD")
    assert reply.headers["last-modified"] == format_datetime(entry.mtime, usegmt=True)
    assert reply.headers["last-modified"].endswith(" GMT")


def test_listing_links_resolve(server):
    """Every link of a listing leads to a 200 (folders, files, parent, breadcrumbs, sorts)."""
    base = server.url(GAIN + "/")
    for href, _ in Page(request(base).body.decode()).links:
        assert request(urljoin(base, href)).status == 200, href


def test_names_are_escaped_in_listings(tmp_path):
    folder = tmp_path / "qr2"
    folder.mkdir()
    odd = 'a <b>&"c" d%20#?.txt'
    (folder / odd).write_text("x")
    with running(LocalStore(tmp_path), []) as base:
        page_reply = request(f"{base}{ibe.PREFIX}/qr2/")
        page = Page(page_reply.body.decode())
        hrefs = [h for h, text in page.links if text == odd]
        assert hrefs == ["a%20%3Cb%3E%26%22c%22%20d%2520%23%3F.txt"]
        assert b"<b>" not in page_reply.body
        assert request(f"{base}{ibe.PREFIX}/qr2/{hrefs[0]}").body == b"x"
