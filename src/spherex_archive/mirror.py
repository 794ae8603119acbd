"""The S3 mirror: copy a release into a bucket under the keys IRSA's bucket uses.

An object's key is the file's path under the bucket root (``qr2/level2/.../file.fits``, the
on-prem path after ``/ibe/data/spherex/``, spherex-products §4.3), so the ``cloud_access`` of a
catalogue row names an object that exists and ``open_store("s3://bucket")`` serves what the
folder served. Only release folders are copied (``truth/`` is not data), and only files the local
store would serve: links to folders or out of the release are not followed.

Each object carries the MD5 of its bytes as metadata (``x-amz-meta-md5``), because S3's ETag is
the MD5 only for single-part uploads. An object with the size and MD5 of the local file is not
sent again, so a re-run uploads only what is new or changed and completes an interrupted mirror
(S3 shows an object only once its upload is complete).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
from fsspec.callbacks import Callback
from tqdm import tqdm

from spherex_archive.ingest.run import MANIFEST, locate, manifest_md5, read_manifest
from spherex_archive.protocols.ibe import content_type
from spherex_archive.store import LocalStore, NotFound, is_release_key
from spherex_archive.store.base import join_key

MD5_METADATA = "md5"
"""The user-metadata name of an object's MD5 (sent as the header ``x-amz-meta-md5``)."""

DEFAULT_WORKERS = 8
"""Files in flight at once: uploads wait on the network, not on this machine's cores."""


@dataclass
class MirrorReport:
    uploaded: list[str] = field(default_factory=list)
    """Keys sent (in a dry run: keys that would be sent)."""
    skipped: int = 0
    """Files already in the bucket with the same size and MD5."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    """Entries of the release folders that are not copied (links out of the release, links to
    folders, partial copies), each with the reason."""
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        if self.dry_run:
            return (
                f"{len(self.uploaded)} files would be uploaded ({self.bytes / 1e9:.2f} GB), "
                f"{self.skipped} already in the bucket, {len(self.failed)} failed; "
                f"{self.seconds:.1f} s (dry run: nothing was uploaded)"
            )
        return (
            f"{len(self.uploaded)} files uploaded ({self.bytes / 1e9:.2f} GB), "
            f"{self.skipped} already in the bucket, {len(self.failed)} failed; "
            f"{self.seconds:.1f} s, {self.mb_per_second:.1f} MB/s"
        )


@dataclass(frozen=True)
class LocalFile:
    key: str
    path: Path
    size: int
    md5: str | None
    """From the delivery's MD5SUMS manifest, when it lists the file."""


class ChecksumMismatch(Exception):
    """A file's bytes differ from its MD5SUMS entry: it is not uploaded."""


def local_files(
    source_dir: str | os.PathLike[str],
) -> tuple[list[LocalFile], list[tuple[str, str]], str]:
    """The files to copy from a bucket root, release or delivery folder (keys relative to the
    bucket root, found as ingest finds them), the entries that are not copied, and the key of
    the folder given ("" for a bucket root)."""
    _, root, prefix = locate(os.fspath(source_dir))
    bucket_root = Path(root).parents[prefix.count("/")] if prefix else Path(root)
    store = LocalStore(bucket_root)  # its rules decide which links may be followed
    found: list[tuple[str, Path, int]] = []
    ignored: list[tuple[str, str]] = []
    manifests: dict[str, dict[str, str]] = {}
    # Links to folders are not entered; a folder that cannot be read stops the run rather
    # than leave its files out unnoticed.
    for folder, dirs, names in os.walk(bucket_root / prefix, onerror=_raise):
        base = Path(folder).relative_to(bucket_root).as_posix()
        base = "" if base == "." else base
        if not base:  # the bucket root: only release folders are data
            dirs[:] = [d for d in dirs if is_release_key(d)]
            names = []
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                ignored.append((join_key(base, name), "link to a folder (not followed)"))
        for name in names:
            key = join_key(base, name)
            if name.endswith(".part"):
                ignored.append((key, "partial file of an unfinished copy"))
                continue
            try:
                entry = store.stat(key)
            except NotFound:
                ignored.append((key, "link out of the release, or not a regular file"))
                continue
            path = Path(folder, name)
            if name == MANIFEST:
                manifests[base] = read_manifest(path.read_text(errors="replace"))
            found.append((key, path, entry.size))
    if not found:
        raise ValueError(
            f"nothing to mirror in {source_dir}: give a bucket root (holding qr2/), a release "
            "folder or a delivery folder"
        )
    files = [LocalFile(k, p, s, manifest_md5(manifests, k)) for k, p, s in sorted(found)]
    return files, ignored, prefix


def _raise(error: OSError) -> None:
    raise error


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bucket(
    dest_url: str, endpoint_url: str | None, storage_options: dict[str, Any] | None
) -> tuple[Any, str]:
    """The s3fs filesystem and the ``bucket[/prefix]`` path the keys go under."""
    if not dest_url.startswith("s3://") or dest_url.rstrip("/") == "s3:/":
        raise ValueError(f"{dest_url}: the destination must be s3://bucket[/prefix]")
    # Listings are read once per run and must not come from an earlier run's cache.
    options: dict[str, Any] = {"use_listings_cache": False, **(storage_options or {})}
    if endpoint_url:
        client = options.get("client_kwargs", {})
        options["client_kwargs"] = {**client, "endpoint_url": endpoint_url}
    try:
        fs, path = fsspec.core.url_to_fs(dest_url, **options)
    except ImportError as error:  # s3fs is the optional extra "s3"
        raise ValueError(str(error)) from None
    return fs, path.rstrip("/")


class _Progress(Callback):
    """fsspec's upload callback (called from its event-loop thread) feeding the shared bar."""

    def __init__(self, advance: Callable[[int], None]) -> None:
        super().__init__()
        self.advance = advance
        self.sent = 0

    def relative_update(self, inc: int = 1) -> None:
        self.sent += inc
        self.advance(inc)


def _mirror_file(
    fs,
    target: str,
    file: LocalFile,
    remote: dict | None,
    dry_run: bool,
    advance: Callable[[int], None],
) -> bool:
    """Upload one file unless the bucket holds it already; True if it was (or would be) sent."""
    progress = _Progress(advance)
    try:
        computed = None
        if remote is not None and int(remote["size"]) == file.size:
            md5 = file.md5 or (computed := file_md5(file.path))
            # A single-part upload's ETag is its MD5, which spares a HEAD request per object.
            if remote.get("ETag", "").strip('"') == md5:
                return False
            if fs.metadata(target).get(MD5_METADATA) == md5:
                return False
        if dry_run:
            return True
        # Hashed again from the bytes about to be sent: the metadata must vouch for them.
        computed = computed or file_md5(file.path)
        if file.md5 is not None and computed != file.md5:
            raise ChecksumMismatch(f"MD5 {computed} differs from its MD5SUMS entry {file.md5}")
        fs.put_file(
            str(file.path),
            target,
            callback=progress,
            ContentType=content_type(file.path.name),
            Metadata={MD5_METADATA: computed},
        )
        return True
    finally:
        advance(file.size - progress.sent)  # skipped, failed or not sent: counted as done


def mirror(
    source_dir: str | os.PathLike[str],
    dest_url: str,
    *,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
    workers: int = DEFAULT_WORKERS,
    dry_run: bool = False,
    progress: bool = True,
) -> MirrorReport:
    """Copy the release files below ``source_dir`` (a bucket root, release or delivery folder)
    to ``dest_url`` (``s3://bucket[/prefix]``) under their keys, skipping objects that already
    hold the same bytes. ``endpoint_url`` names an S3-compatible server; ``storage_options`` go
    to s3fs (e.g. ``key``, ``secret``). A file that fails is reported in the answer and never
    stops the others; errors that concern the whole run (no release, no bucket) raise
    ValueError or OSError."""
    started = time.perf_counter()
    fs, base = _bucket(dest_url, endpoint_url, storage_options)
    files, ignored, prefix = local_files(source_dir)
    # One listing of the part of the bucket the source covers gives every object's size.
    try:
        objects = fs.find(join_key(base, prefix), detail=True)
    except FileNotFoundError as error:  # no such bucket
        raise ValueError(f"{dest_url}: {error}") from None
    except Exception as error:  # credentials, network: botocore's own errors, in one line
        raise OSError(f"cannot list {dest_url}: {error}") from None
    remote = {name[len(base) + 1 :]: info for name, info in objects.items()}

    report = MirrorReport(ignored=ignored, dry_run=dry_run)
    bar = tqdm(
        total=sum(f.size for f in files),
        desc="mirror",
        unit="B",
        unit_scale=True,
        disable=not progress,
    )
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            bar.update(n)

    pool = ThreadPoolExecutor(max(1, workers))
    try:
        futures = {
            pool.submit(
                _mirror_file, fs, f"{base}/{f.key}", f, remote.get(f.key), dry_run, advance
            ): f
            for f in files
        }
        for future in as_completed(futures):
            file = futures[future]
            try:
                sent = future.result()
            except Exception as error:  # one file must never stop the others
                reason = str(error) if isinstance(error, OSError | ChecksumMismatch) else ""
                report.failed.append((file.key, reason or f"{type(error).__name__}: {error}"))
                continue
            if sent:
                report.uploaded.append(file.key)
                report.bytes += file.size
            else:
                report.skipped += 1
    finally:
        # On Ctrl-C, files not yet started are dropped; those in flight finish or abort.
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    report.uploaded.sort()
    report.failed.sort()
    report.seconds = time.perf_counter() - started
    return report
