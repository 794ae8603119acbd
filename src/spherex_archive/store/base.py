"""The file-store interface: what the rest of the archive knows about where files live.

A store maps keys (``qr2/level2/.../file.fits``, the S3 key and the path under the local root
alike) to files and folders. It knows nothing of HTTP: protocols turn its answers into responses.

Every public method validates the key first (no ``..``, no absolute paths, no backslashes or
control characters) and applies the store's ``allow`` predicate, so a backend only ever sees keys
that are safe and visible. By default only release folders (``qr``, ``qr2``, ``qr3``...) are
visible: ``truth/`` and anything else beside them in the bucket root is not data.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

RELEASE_FOLDER = re.compile(r"^qr\d*$")
DEFAULT_CHUNK_SIZE = 1024 * 1024

KeyFilter = Callable[[str], bool]


class StoreError(Exception):
    """Base class of the store's errors."""


class NotFound(StoreError, FileNotFoundError):
    """No visible file or folder at this key (also raised for refused keys, which must not be
    distinguishable from missing ones)."""


def is_release_key(key: str) -> bool:
    """True for keys inside a release folder: the first component is ``qr``, ``qr2``, ``qr3``..."""
    return RELEASE_FOLDER.match(key.split("/", 1)[0]) is not None


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def normalise_key(key: str) -> str:
    """The canonical form of ``key`` ("" is the root; one trailing slash is allowed), or
    NotFound for anything that could escape the root or be read differently by a backend."""
    if not isinstance(key, str):
        raise NotFound(repr(key))
    if key.endswith("/") and key != "/":
        key = key[:-1]
    if key == "":
        return ""
    if key.startswith("/") or "\\" in key or _CONTROL.search(key):
        raise NotFound(key)
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise NotFound(key)
    return key


def join_key(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or folder."""

    key: str
    size: int
    """Bytes; 0 for folders."""
    mtime: datetime | None
    """Timezone-aware; None for folders of object stores, which have no time of their own."""
    is_dir: bool
    etag: str | None = None
    """An HTTP entity tag, quotes included (``"..."``); None for folders."""

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class Store(abc.ABC):
    """Read-only access to the files under one root. Subclasses implement the ``_`` methods,
    which receive keys that are already normalised and allowed."""

    parallel_reads = 8
    """Files worth working on at once: an object store answers each read after a latency,
    which threads overlap."""

    def __init__(self, allow: KeyFilter | None = is_release_key) -> None:
        self.allow = allow
        self.bytes_read = 0
        """Bytes read from files so far (what the cutout benchmarks and tests weigh)."""

    def _visible(self, key: str) -> bool:
        return key == "" or self.allow is None or self.allow(key)

    def _checked(self, key: str) -> str:
        key = normalise_key(key)
        if not self._visible(key):
            raise NotFound(key)
        return key

    def stat(self, key: str) -> Entry:
        """The file or folder at ``key`` ("" is the root folder)."""
        return self._stat(self._checked(key))

    def list(self, prefix: str) -> list[Entry]:
        """The visible immediate children of the folder ``prefix``, in no particular order."""
        prefix = self._checked(prefix)
        return [e for e in self._list(prefix) if self._visible(e.key)]

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a file (fewer if the file ends first)."""
        _check_range(start, end)
        data = self._read_range(self._checked(key), start, end)
        self.bytes_read += len(data)
        return data

    def iter_range(
        self, key: str, start: int, end: int, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of a file as pieces of at most ``chunk_size`` bytes, read as
        they are consumed (never the whole file at once). The key is validated at the call; a
        missing file raises NotFound at the call (local) or at the first read (object stores)."""
        _check_range(start, end)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        return self._counted(self._iter_range(self._checked(key), start, end, chunk_size))

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes_read += len(chunk)
            yield chunk

    def read_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Bytes ``[start, end)`` of each range, in the order given: what the cutout engine
        needs, a few rows of each image plane. Ranges closer than ``coalesce_gap`` are fetched
        as one read, so an object store answers a whole plane's rows in one request."""
        for start, end in ranges:
            _check_range(start, end)
        key = self._checked(key)
        merged = coalesce(ranges, self.coalesce_gap)
        blocks = self._read_ranges(key, [(s, e) for s, e, _ in merged])
        self.bytes_read += sum(map(len, blocks))
        out: list[bytes] = [b""] * len(ranges)
        for (start, _, members), block in zip(merged, blocks, strict=True):
            for index in members:
                s, e = ranges[index]
                out[index] = block[s - start : e - start]
        return out

    coalesce_gap = 0
    """Bytes of gap below which two ranges are read as one: 0 (only touching ranges merge)
    where a read costs a system call, larger where it costs an HTTP request."""

    def copy_range(self, key: str, start: int, end: int, out: BinaryIO) -> None:
        """Write bytes ``[start, end)`` of a file to ``out``, a file open for writing at the
        place they go: how a job assembles a large result (bulk cutouts) from pieces of
        archive files without holding them."""
        _check_range(start, end)
        self._copy_range(self._checked(key), start, end, out)

    def open(self, key: str) -> BinaryIO:
        """A seekable binary file object (for astropy, fsspec-style readers and byte-range
        readers such as the cutout engine). The caller closes it."""
        return self._open(self._checked(key))

    @abc.abstractmethod
    def _stat(self, key: str) -> Entry: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> list[Entry]: ...

    @abc.abstractmethod
    def _read_range(self, key: str, start: int, end: int) -> bytes: ...

    @abc.abstractmethod
    def _iter_range(self, key: str, start: int, end: int, chunk_size: int) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def _open(self, key: str) -> BinaryIO: ...

    def _read_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        return [self._read_range(key, start, end) for start, end in ranges]

    def _copy_range(self, key: str, start: int, end: int, out: BinaryIO) -> None:
        for chunk in self._iter_range(key, start, end, DEFAULT_CHUNK_SIZE):
            out.write(chunk)


def coalesce(ranges: Sequence[tuple[int, int]], gap: int) -> list[tuple[int, int, list[int]]]:
    """Sorted, merged ranges ``(start, end, indexes of the input ranges inside)``: ranges that
    overlap or lie within ``gap`` bytes of each other become one."""
    merged: list[tuple[int, int, list[int]]] = []
    for index in sorted(range(len(ranges)), key=lambda i: ranges[i]):
        start, end = ranges[index]
        if merged and start <= merged[-1][1] + gap:
            last_start, last_end, members = merged[-1]
            members.append(index)
            merged[-1] = (last_start, max(last_end, end), members)
        else:
            merged.append((start, end, [index]))
    return merged


def _check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"invalid byte range [{start}, {end})")
