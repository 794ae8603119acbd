"""A store over any fsspec filesystem; made for S3 buckets (``s3://bucket[/prefix]``) and
S3-compatible servers (``endpoint_url=...``)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

import fsspec

from spherex_archive.store.base import (
    Entry,
    KeyFilter,
    NotFound,
    Store,
    is_release_key,
    join_key,
    normalise_key,
)

DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
"""Bytes per request when streaming: one GET per block keeps per-request latency small next to
transfer time, and bounds the memory a download holds."""

# What backends raise for a key that is missing or that the credentials may not see (S3 answers
# 403, not 404, for a missing key when listing is not allowed).
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class FsspecStore(Store):
    """Files under ``url``, through fsspec. ``storage_options`` go to the filesystem, e.g.
    ``endpoint_url``, ``key``, ``secret`` or ``anon=True`` for s3fs.

    Listings are not cached by default (``use_listings_cache=False``): a new delivery must be
    visible as soon as it is in the bucket.
    """

    def __init__(
        self,
        url: str,
        *,
        allow: KeyFilter | None = is_release_key,
        block_size: int = DEFAULT_BLOCK_SIZE,
        **storage_options: Any,
    ) -> None:
        super().__init__(allow)
        storage_options.setdefault("use_listings_cache", False)
        self.url = url
        self.fs, path = fsspec.core.url_to_fs(url, **storage_options)
        self.base = path.rstrip("/")
        self.block_size = block_size

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def _path(self, key: str) -> str:
        return join_key(self.base, key) if key else self.base

    def _entry(self, key: str, info: dict[str, Any]) -> Entry:
        is_dir = info.get("type") == "directory"
        size = 0 if is_dir else int(info.get("size") or 0)
        mtime = _mtime(info)
        etag = None
        if not is_dir:
            etag = info.get("ETag") or info.get("etag")
            if etag and not etag.startswith(('"', 'W/"')):
                etag = f'"{etag}"'
            elif not etag and mtime is not None:
                etag = f'"{size:x}-{int(mtime.timestamp() * 1e9):x}"'
        return Entry(key=key, size=size, mtime=mtime, is_dir=is_dir, etag=etag)

    def _stat(self, key: str) -> Entry:
        try:
            info = self.fs.info(self._path(key))
        except _MISSING:
            raise NotFound(key) from None
        return self._entry(key, info)

    def _list(self, prefix: str) -> list[Entry]:
        if not self._stat(prefix).is_dir:
            raise NotFound(prefix)
        path = self._path(prefix)
        try:
            items = self.fs.ls(path, detail=True)
        except _MISSING:
            raise NotFound(prefix) from None
        entries = []
        for item in items:
            name = item["name"].rstrip("/")
            if path:
                if not name.startswith(f"{path}/"):
                    continue  # the folder itself, as some backends list a folder-marker object
                name = name[len(path) + 1 :]
            try:  # object keys may hold what a path may not (``a//b``, ``..``): skip those
                key = normalise_key(join_key(prefix, name))
            except NotFound:
                continue
            if name and "/" not in name:
                entries.append(self._entry(key, item))
        return entries

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        if end == start:
            return b""
        try:
            return self.fs.cat_file(self._path(key), start=start, end=end)
        except _MISSING:
            raise NotFound(key) from None
        except OSError as error:
            if error.errno == errno.EINVAL:  # s3fs's "range not satisfiable": past the end
                return b""
            raise

    def _iter_range(self, key: str, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        step = max(chunk_size, self.block_size)
        position = start
        while position < end:
            block = self._read_range(key, position, min(position + step, end))
            if not block:
                return
            for offset in range(0, len(block), chunk_size):
                yield block[offset : offset + chunk_size]
            position += len(block)

    coalesce_gap = 1024 * 1024
    """A request costs about as much as transferring a megabyte: rows of one plane that are
    less than that apart are fetched together."""

    def _read_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        if len(ranges) == 1:
            return [self._read_range(key, *ranges[0])]
        path = self._path(key)
        try:  # s3fs fetches the ranges concurrently
            blocks = self.fs.cat_ranges(
                [path] * len(ranges), [s for s, _ in ranges], [e for _, e in ranges]
            )
        except _MISSING:
            raise NotFound(key) from None
        for block in blocks:
            if isinstance(block, _MISSING):
                raise NotFound(key)
            if isinstance(block, Exception):
                raise block
        return blocks

    def _open(self, key: str) -> BinaryIO:
        if self._stat(key).is_dir:
            raise NotFound(key)
        try:
            return self.fs.open(self._path(key), "rb")
        except _MISSING:
            raise NotFound(key) from None


def _mtime(info: dict[str, Any]) -> datetime | None:
    """The modification time, from whichever field this backend fills (S3: ``LastModified``)."""
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return None
