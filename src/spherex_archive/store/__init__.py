"""Where the archive's files live: a local folder or an object-store bucket, one interface.

>>> store = open_store("/data/spherex")                       # doctest: +SKIP
>>> store = open_store("s3://nasa-irsa-spherex", anon=True)   # doctest: +SKIP
>>> store.stat("qr2/level2").is_dir                           # doctest: +SKIP
True
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from spherex_archive.store.base import (
    DEFAULT_CHUNK_SIZE,
    Entry,
    KeyFilter,
    NotFound,
    Store,
    StoreError,
    is_release_key,
    normalise_key,
)
from spherex_archive.store.local import LocalStore
from spherex_archive.store.remote import FsspecStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Entry",
    "FsspecStore",
    "KeyFilter",
    "LocalStore",
    "NotFound",
    "Store",
    "StoreError",
    "is_release_key",
    "normalise_key",
    "open_store",
]


def open_store(url_or_path: str | os.PathLike[str], **options: Any) -> Store:
    """A store for a folder (``/data/spherex``, ``file:///data/spherex``) or a URL that fsspec
    understands (``s3://bucket[/prefix]``). ``options``: ``allow`` for any store (default: release
    folders only), storage options such as ``endpoint_url`` or ``anon`` for URLs."""
    text = os.fspath(url_or_path)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme == "file":
        return LocalStore(unquote(urlsplit(text).path), **options)
    if scheme:
        return FsspecStore(text, **options)
    return LocalStore(text, **options)
