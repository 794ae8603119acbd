"""What every store promises, checked on a local folder and on an S3 bucket (moto server)."""

from __future__ import annotations

import hashlib
from datetime import UTC

import numpy as np
import pytest
from astropy.io import fits

from spherex_archive.store import FsspecStore, LocalStore, NotFound, Store
from spherex_archive.store.base import coalesce
from tests.store.fixtures import BUCKET, CREDENTIALS, manifest

DELIVERY = "qr2/gain_factors/base-2025-158"
YAML = f"{DELIVERY}/gain_factors_spx_base-2025-158.yaml"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request, release) -> Store:
    if request.param == "local":
        return LocalStore(release)
    endpoint = request.getfixturevalue("s3_endpoint")
    return FsspecStore(f"s3://{BUCKET}", endpoint_url=endpoint, **CREDENTIALS)


def level2_key(release) -> str:
    return next(k for k in sorted(manifest(release)) if "/level2/" in k)


def test_root_lists_release_folders_only(store):
    assert [e.key for e in store.list("")] == ["qr2"]
    assert store.stat("").is_dir


def test_folder_children_are_immediate(store, release):
    names = sorted(e.name for e in store.list(DELIVERY))
    assert names == sorted(p.name for p in (release / DELIVERY).iterdir())
    assert all(e.key == f"{DELIVERY}/{e.name}" for e in store.list(DELIVERY))
    level2 = store.list("qr2/level2")
    assert level2 and all(e.is_dir and e.size == 0 for e in level2)
    assert sorted(e.key for e in store.list(f"{DELIVERY}/")) == sorted(
        e.key for e in store.list(DELIVERY)
    )


def test_stat_of_a_file(store, release):
    entry = store.stat(YAML)
    assert not entry.is_dir
    assert entry.size == (release / YAML).stat().st_size
    assert entry.name == YAML.rsplit("/", 1)[1]
    assert entry.mtime is not None and entry.mtime.tzinfo is not None
    assert entry.mtime.utcoffset() == UTC.utcoffset(None)
    assert entry.etag and entry.etag.startswith('"') and entry.etag.endswith('"')


def test_ranges_read_the_file_bytes(store, release):
    key = level2_key(release)
    data = (release / key).read_bytes()
    assert store.read_range(key, 0, 100) == data[:100]
    assert store.read_range(key, 2880, 5760) == data[2880:5760]
    assert store.read_range(key, len(data) - 10, len(data) + 1000) == data[-10:]
    assert store.read_range(key, len(data) + 5, len(data) + 10) == b""
    assert store.read_range(key, 7, 7) == b""
    chunks = list(store.iter_range(key, 1000, len(data), 65536))
    assert all(0 < len(c) <= 65536 for c in chunks)
    assert b"".join(chunks) == data[1000:]
    whole = hashlib.md5(b"".join(store.iter_range(key, 0, len(data), 1 << 20))).hexdigest()
    assert whole == manifest(release)[key]


def test_many_ranges_in_one_call(store, release):
    key = level2_key(release)
    data = (release / key).read_bytes()
    # Out of order, overlapping, touching, far apart, empty and past the end.
    ranges = [(5000, 5100), (10, 20), (15, 40), (40, 41), (len(data) - 3, len(data) + 9), (7, 7)]
    ranges.append((len(data) // 2, len(data) // 2 + 2880))
    assert store.read_ranges(key, ranges) == [data[s:e] for s, e in ranges]
    assert store.read_ranges(key, []) == []
    with pytest.raises(NotFound):
        store.read_ranges("qr2/missing.fits", [(0, 10), (20, 30)])
    with pytest.raises(ValueError):
        store.read_ranges(key, [(10, 5)])


def test_coalesced_ranges_keep_their_members():
    assert coalesce([(50, 60), (0, 10), (10, 20), (25, 30)], gap=0) == [
        (0, 20, [1, 2]),
        (25, 30, [3]),
        (50, 60, [0]),
    ]
    assert coalesce([(50, 60), (0, 10), (25, 30)], gap=20) == [(0, 60, [1, 2, 0])]


def test_bad_arguments_are_value_errors(store):
    with pytest.raises(ValueError):
        store.read_range(YAML, 10, 5)
    with pytest.raises(ValueError):
        store.iter_range(YAML, -1, 5)
    with pytest.raises(ValueError):
        store.iter_range(YAML, 0, 5, chunk_size=0)


def test_open_is_seekable_and_astropy_reads_it(store, release):
    key = level2_key(release)
    with store.open(key) as fh:
        assert fh.seekable()
        fh.seek(2880)
        assert fh.read(80) == (release / key).read_bytes()[2880:2960]
        fh.seek(0)
        with fits.open(fh) as hdul:
            expected = fits.getdata(release / key, "IMAGE")
            assert np.array_equal(hdul["IMAGE"].data, expected, equal_nan=True)


@pytest.mark.parametrize(
    "key",
    [
        "truth",
        "truth/README.md",
        "qr2/../truth/README.md",
        "../etc/passwd",
        "/etc/passwd",
        "qr2//level2",
        "qr2/./level2",
        "qr2\\level2",
        "qr2/level2\x00",
        "qr2/level2\n",
        "qr2/nothing-here",
        "qr2x",
        "qr2/etc_folder/passwd",
        "qr2/etc_passwd",
        "qr2/truth_folder",
    ],
)
def test_refused_or_missing_keys_are_not_found(store, key):
    calls = {
        "stat": lambda: store.stat(key),
        "list": lambda: store.list(key),
        "read_range": lambda: store.read_range(key, 0, 10),
        # A lazy backend may fail on the first read rather than at the call.
        "iter_range": lambda: b"".join(store.iter_range(key, 0, 10)),
        "open": lambda: store.open(key),
    }
    for name, call in calls.items():
        with pytest.raises(NotFound):
            call()
            pytest.fail(f"{name}({key!r}) did not raise")


def test_a_folder_is_not_a_file_and_a_file_is_not_a_folder(store):
    with pytest.raises(NotFound):
        store.list(YAML)
    with pytest.raises(NotFound):
        store.open(DELIVERY)


def test_traps_are_hidden_from_listings(store):
    names = {e.name for e in store.list("qr2")}
    assert "level2" in names
    assert not names & {"etc_folder", "etc_passwd", "truth_folder"}


def test_not_found_is_a_file_not_found_error(store):
    with pytest.raises(FileNotFoundError):
        store.stat("qr2/missing")
