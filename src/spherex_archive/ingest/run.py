"""Ingest deliveries into the catalogue: scan, read headers, write one transaction per delivery.

A delivery is a product-version folder of spectral images
(``qr2/level2/<planning period>/l2b-v<NN>-<date>/``) or a calibration version folder
(``qr2/<family>/<token>/``). Each is committed in one transaction, so a crash leaves every
delivery either wholly in the catalogue or not at all, and running the ingest again completes
the work: rows have ids derived from their natural keys, and files the catalogue already holds
with the same checksum are skipped.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import multiprocessing
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import fsspec
import numpy as np
import yaml
from tqdm import tqdm

from spherex_archive.catalogue import Catalogue
from spherex_archive.catalogue.base import Writer
from spherex_archive.ingest import coverage
from spherex_archive.ingest.rows import (
    URI_PREFIX,
    FileRows,
    calibration_rows,
    is_calibration_name,
    level2_rows,
)
from spherex_archive.products.fitsfile import BadFile, read_hdus
from spherex_archive.products.naming import LEVEL2_NAME

RELEASE = re.compile(r"^qr\d*$")
MANIFEST = "MD5SUMS"


@dataclass
class Candidate:
    key: str
    size: int
    md5: str | None


@dataclass
class IngestReport:
    files: int = 0
    planes: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    deliveries: int = 0
    seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"{self.files} files ingested ({self.planes} new planes, "
            f"{self.unchanged} already present), {len(self.rejected)} rejected, "
            f"{len(self.skipped)} skipped, in {self.deliveries} deliveries; "
            f"{self.seconds:.1f} s, {self.files_per_second:.0f} files/s"
        )

    def write(self, path: Path) -> None:
        lines = [
            f"# spherex-archive ingest report, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S}Z",
            f"# {self.summary()}",
            "",
        ]
        lines += [f"REJECTED {key}: {reason}" for key, reason in self.rejected]
        lines += [f"SKIPPED {key}: {reason}" for key, reason in self.skipped]
        path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# Finding the files


def locate(path: str, storage_options: dict | None = None):
    """(filesystem, root path, key prefix) of a bucket root, release or delivery folder."""
    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    root = root.rstrip("/")
    if not fs.exists(root) or not fs.isdir(root):
        raise ValueError(f"{path} is not a folder")
    parts = PurePosixPath(root).parts
    for i, part in enumerate(parts):
        if RELEASE.match(part):
            return fs, root, "/".join(parts[i:])
    return fs, root, ""


def scan(fs, root: str, prefix: str) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Every product file below ``root`` with its size and manifest checksum, and what is
    skipped (files that are no SPHEREx product)."""
    found = fs.find(root, detail=True)
    skipped = []
    manifests: dict[str, dict[str, str]] = {}
    files: dict[str, int] = {}
    for full, info in found.items():
        rel = PurePosixPath(full).relative_to(root).as_posix()
        key = f"{prefix}/{rel}" if prefix else rel
        if not RELEASE.match(key.split("/")[0]):
            continue  # outside a release folder: truth/, notes, ...
        name = PurePosixPath(key).name
        if name == MANIFEST:
            folder = str(PurePosixPath(key).parent)
            manifests[folder] = read_manifest(fs.cat_file(full).decode())
        elif name.endswith(".part"):
            skipped.append((key, "partial file of an unfinished copy"))
        elif LEVEL2_NAME.match(name) or is_calibration_name(name):
            files[key] = int(info["size"])
        else:
            skipped.append((key, "not a SPHEREx product name"))
    candidates = []
    for key, size in sorted(files.items()):
        candidates.append(Candidate(key, size, manifest_md5(manifests, key)))
    return candidates, skipped


def read_manifest(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        md5, sep, name = line.strip().partition("  ")
        if sep and re.fullmatch(r"[0-9a-f]{32}", md5):
            entries[name.lstrip("*")] = md5
    return entries


def manifest_md5(manifests: dict[str, dict[str, str]], key: str) -> str | None:
    path = PurePosixPath(key)
    for parent in path.parents:
        entries = manifests.get(str(parent))
        if entries is not None:
            return entries.get(path.relative_to(parent).as_posix())
    return None


def delivery_of(key: str) -> str:
    parts = PurePosixPath(key).parts
    if len(parts) > 1 and parts[1] == "level2":
        return "/".join(parts[:4])
    return "/".join(parts[:3])


# --------------------------------------------------------------------------------------------
# Reading one file (in a worker process)

_FS = None


def _init_worker(protocol: str, storage_options: dict) -> None:
    global _FS
    _FS = fsspec.filesystem(protocol, **storage_options)


def examine(task: tuple[str, Candidate, str]) -> FileRows | tuple[str, str]:
    """Rows of one file, or (key, reason) when it is rejected."""
    full, candidate, authority = task
    assert _FS is not None
    key = candidate.key
    try:
        with _FS.open(full, "rb") as f:
            level2 = LEVEL2_NAME.match(PurePosixPath(key).name) is not None
            if key.endswith(".yaml"):
                hdus = None
                uuid = _yaml_uuid(f.read())
            elif key.endswith(".gz"):
                data = gzip.decompress(f.read())
                hdus = read_hdus(io.BytesIO(data), len(data), parse={0})
            else:
                hdus = read_hdus(f, candidate.size, parse={0, 1} if level2 else {0})
            md5 = candidate.md5 or _md5(f)
        if level2:
            return level2_rows(key, hdus, candidate.size, md5, authority)
        rows = calibration_rows(key, hdus, candidate.size, md5, authority)
        if hdus is None:
            rows.plane["calibration_uuid"] = uuid
        return rows
    except BadFile as error:
        return key, str(error)
    except OSError as error:
        return key, f"unreadable: {error}"
    except Exception as error:  # a file must never stop the others
        return key, f"unexpected problem: {type(error).__name__}: {error}"


def _yaml_uuid(data: bytes) -> str | None:
    """The id a YAML calibration product gives itself (its ``uuid`` entry)."""
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise BadFile(f"not YAML: {error}") from None
    return str(document["uuid"]) if isinstance(document, dict) and "uuid" in document else None


def _md5(f) -> str:
    f.seek(0)
    digest = hashlib.md5()
    for chunk in iter(lambda: f.read(1 << 22), b""):
        digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Writing


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_delivery(
    writer: Writer, rows: list[FileRows], release_date: str | None
) -> list[coverage.Written]:
    """Write one delivery's rows; returns the planes written (those whose version is the
    newest), each with the version it replaced, if any."""
    now = _now()
    planes = {r.plane["planeid"]: r for r in rows}
    existing = _existing_planes(writer, list(planes))
    newer: list[FileRows] = []
    for r in rows:
        old = existing.get(r.plane["planeid"])
        # A plane shows its newest product version, whatever order versions arrive in.
        if old is None or (r.plane["product_version"], r.plane["processing_date"]) >= old[:2]:
            r.plane["release_date"] = release_date or (old[2] if old else now)
            r.plane["ingest_date"] = now
            newer.append(r)
    writer.upsert_many("observation", _unique([r.observation for r in rows], "obsid"), ["obsid"])
    writer.upsert_many("plane", [r.plane for r in newer], ["planeid"])
    with_footprint = [r for r in newer if r.footprint is not None]
    if with_footprint:
        writer.set_footprints(
            [r.plane["planeid"] for r in with_footprint],
            np.array([r.footprint[0] for r in with_footprint]),
            np.array([r.footprint[1] for r in with_footprint]),
            [r.plane["release_date"] for r in with_footprint],
        )
    for r in rows:
        r.artifact["ingest_date"] = now
        r.artifact["is_current"] = 0
    writer.upsert_many("artifact", [r.artifact for r in rows], ["artifactid"])
    i = writer.dialect.internal
    writer.executemany(
        f"UPDATE {i('artifact')} SET is_current = CASE WHEN artifactid = ("
        f"SELECT a.artifactid FROM {i('artifact')} a WHERE a.planeid = ? "
        "ORDER BY a.product_version DESC, a.uri DESC LIMIT 1) THEN 1 ELSE 0 END "
        "WHERE planeid = ?",
        [(p, p) for p in planes],
    )
    # Calibration files and the images citing them may come in any order: link what can be
    # linked now, and link earlier images to the calibration files arriving now.
    calibrations = dict(
        writer.fetchall(
            f"SELECT calibration_uuid, planeid FROM {i('plane')} WHERE calibration_uuid IS NOT NULL"
        )
    )
    provenance = [
        {
            "planeid": r.plane["planeid"],
            "input_planeid": calibrations.get(uuid),
            "family": family,
            "input_uuid": uuid,
        }
        for r in newer
        for family, uuid in r.provenance
    ]
    writer.upsert_many("provenance_input", provenance, ["planeid", "family"])
    arrived = [
        (r.plane["planeid"], r.plane["calibration_uuid"])
        for r in newer
        if r.plane["calibration_uuid"]
    ]
    writer.executemany(
        f"UPDATE {i('provenance_input')} SET input_planeid = ? WHERE input_uuid = ?", arrived
    )
    written = {r.plane["planeid"]: r for r in newer}
    return [
        coverage.Written(r, existing[p][2:] if p in existing else None) for p, r in written.items()
    ]


def _existing_planes(writer: Writer, planeids: list[int]) -> dict[int, tuple]:
    found = {}
    table = writer.dialect.internal("plane")
    for start in range(0, len(planeids), 500):
        chunk = planeids[start : start + 500]
        for planeid, version, processed, released, poly in writer.fetchall(
            f"SELECT planeid, product_version, processing_date, release_date, poly FROM {table} "
            f"WHERE planeid IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            found[planeid] = (version, str(processed), str(released), poly)
    return found


def _unique(rows: list[dict], key: str) -> list[dict]:
    return list({r[key]: r for r in rows}.values())


def _known_artifacts(catalogue: Catalogue, keys: list[str]) -> dict[str, tuple[str, int]]:
    """uri -> (checksum, size) of the files the catalogue already holds."""
    known = {}
    table = catalogue.dialect.internal("artifact")
    uris = [URI_PREFIX + k for k in keys]
    for start in range(0, len(uris), 500):
        chunk = uris[start : start + 500]
        for uri, checksum, size in catalogue.fetchall(
            f"SELECT uri, contentchecksum, contentlength FROM {table} "
            f"WHERE uri IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            known[uri] = (checksum, int(size))
    return known


def ingest(
    catalogue: Catalogue,
    path: str,
    *,
    workers: int = 0,
    release_date: dt.datetime | None = None,
    storage_options: dict | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> IngestReport:
    """Ingest everything below ``path`` (bucket root, release or delivery folder; local or
    ``s3://``) into ``catalogue``."""
    started = time.perf_counter()
    catalogue.create()
    config = catalogue.config()
    authority = config["authority"]
    fs, root, prefix = locate(path, storage_options)
    candidates, skipped = scan(fs, root, prefix)
    report = IngestReport(skipped=skipped)
    known = _known_artifacts(catalogue, [c.key for c in candidates])
    todo = []
    for c in candidates:
        held = known.get(URI_PREFIX + c.key)
        if held and held[1] == c.size and (c.md5 is None or held[0] == f"md5:{c.md5}"):
            report.unchanged += 1
        else:
            todo.append(c)
    by_delivery: dict[str, list[Candidate]] = defaultdict(list)
    for c in todo:
        by_delivery[delivery_of(c.key)].append(c)
    released = release_date.strftime("%Y-%m-%d %H:%M:%S") if release_date else None

    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    workers = workers or os.cpu_count() or 1
    deliveries = sorted(by_delivery)
    tasks = [(_full(root, prefix, c.key), c, authority) for d in deliveries for c in by_delivery[d]]
    bar = tqdm(total=len(todo), desc="ingest", unit="file", disable=not progress)
    pool = _pool(workers, protocol, storage_options or {})
    # Workers read headers ahead while this process commits the deliveries in order.
    results = map(examine, tasks) if pool is None else pool.map(examine, tasks, chunksize=8)
    try:
        for delivery in deliveries:
            batch = []
            for _ in by_delivery[delivery]:
                batch.append(next(results))
                bar.update()
            rows = [r for r in batch if isinstance(r, FileRows)]
            report.rejected += [r for r in batch if not isinstance(r, FileRows)]
            if not rows:
                continue
            with catalogue.writer() as writer:
                written = write_delivery(writer, rows, released)
                report.planes += sum(w.before is None for w in written)
                coverage.update(writer, written)
                writer.upsert(
                    "delivery",
                    {
                        "path": delivery,
                        "files": len(rows),
                        "planes": len(rows),
                        "rejected": len(batch) - len(rows),
                        "ingested_at": _now(),
                    },
                    ["path"],
                )
            report.files += len(rows)
            report.deliveries += 1
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if report.files:
        catalogue.refresh_statistics()
    report.seconds = time.perf_counter() - started
    return report


def _full(root: str, prefix: str, key: str) -> str:
    rel = key[len(prefix) + 1 :] if prefix else key
    return f"{root}/{rel}" if rel else root


def _pool(workers: int, protocol: str, storage_options: dict) -> ProcessPoolExecutor | None:
    if workers <= 1:
        _init_worker(protocol, storage_options)
        return None
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(protocol, storage_options)
    )
