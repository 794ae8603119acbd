"""SODA 1.0 cutouts of spectral images (ivoa-services §10, spherex-products §2.7,
§3): a request's parameters, the datasets its IDs name, each cutout's pixel window, and the one
FITS file an async job writes with every cutout of many IDs and regions.

Shared by ``/soda/sync`` (one ID, at most one region: one cutout) and ``/soda/async`` (every ID
with every region). The pixels are the cutout engine's (``services/cutout.py``): a region is the
window of the parent it covers, trimmed to the frame, and BAND keeps the rows of that window in
which the linear variable filter passes some light of the band, from the per-pixel wavelength of
the WCS-WAVE table. No spatial parameter means the whole frame, so BAND alone cuts a frame to
the rows seeing the band. TIME and POL select whole images: SPHEREx has no polarisation, so
any POL leaves nothing.

Errors carry SODA's names (``UsageError: ...``, ``MultiValuedParamNotSupported: ...``); a request
that is fine but reaches no pixel of an image is :class:`NoOverlap` (sync: 204; async: a row of
the table of contents saying why).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import numpy as np
from astropy.io import fits

from spherex_archive.adql import tree as t
from spherex_archive.adql.parser import parse
from spherex_archive.ingest.rows import LEVEL2_HDUS, URI_PREFIX
from spherex_archive.model.schema import Column
from spherex_archive.services.cutout import (
    Cutout,
    CutoutError,
    NoOverlap,
    SpectralImage,
    Window,
    cut,
    open_image,
    shape_window,
)
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.shapes import Shape, ValueProblem, number, parse_pos
from spherex_archive.services.sia import POL_STATES, interval
from spherex_archive.store import NotFound, Store

SPHEREX_M = (0.7e-6, 5.1e-6)
"""Wavelengths SPHEREx sees, with a margin (the detectors' tables span 0.735-5.018 um, spec
§1.1): a BAND wholly outside is a mistake (nanometres or microns given for metres), not a
band some other image might see."""

MAX_CUTOUTS = 5_000
"""ID x region combinations of one job (rows of its table of contents; its IDs are looked up
in one query): up to 25 GB of cutouts, each carrying its image's 5 MB PSF cube."""


class SodaError(Exception):
    """A request SODA refuses; ``str()`` is the text/plain answer: SODA's error name, a colon
    and why (ivoa-services §10)."""

    name = "Error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.name}: {message}")


class UsageError(SodaError):
    name = "UsageError"
    status = 400


class UnknownId(UsageError):
    """An ID that names no released dataset. 404, not 400: the request is well formed and names
    a resource that is not here (unknown, or still embargoed: the two must look alike), which
    is what 404 says; clients and people can tell it from a malformed parameter (400)."""

    status = 404


class MultiValuedParamNotSupported(SodaError):
    name = "MultiValuedParamNotSupported"
    status = 400


ERROR_NAMES = (
    "Error",
    "AuthenticationError",
    "AuthorizationError",
    "ServiceUnavailable",
    "UsageError",
    "MultiValuedParamNotSupported",
)
"""What a SODA error text may start with (ivoa-services §10)."""


# --------------------------------------------------------------------------------------------
# The request


@dataclass(frozen=True)
class Region:
    """A spatial value as asked, and the shape it is (None: the whole frame)."""

    label: str | None
    """``CIRCLE ra dec r``, ``POLYGON ...`` or ``RANGE ...`` with the numbers as sent; None
    when no spatial parameter was given."""
    shape: Shape | None


WHOLE_FRAME = Region(None, None)


@dataclass(frozen=True)
class SodaRequest:
    ids: tuple[str, ...]
    """Distinct, in the order sent."""
    regions: tuple[Region, ...]
    """Distinct, in the order sent (POS, then CIRCLE, then POLYGON); at least one."""
    band_um: tuple[float, float] | None
    time_mjd: tuple[float, float] | None
    pol: tuple[str, ...]


def parse_request(params: Mapping[str, Sequence[str]], *, sync: bool) -> SodaRequest:
    """The SODA parameters of a request (names upper case, as ``dali_params`` gives them).
    ``sync``: exactly one ID and at most one spatial value (ivoa-services §10: more is
    MultiValuedParamNotSupported). Other parameters are ignored, as DALI allows."""
    given = _values(params, "ID")
    if not given:
        raise UsageError("ID is required: the dataset id (obs_publisher_did) of an image")
    if sync and len(given) > 1:
        raise MultiValuedParamNotSupported(
            f"ID was given {len(given)} times; /soda/sync cuts one image (use /soda/async)"
        )
    regions = [_pos(v) for v in _values(params, "POS")]
    regions += [_circle(v, "CIRCLE") for v in _values(params, "CIRCLE")]
    regions += [_polygon(v, "POLYGON") for v in _values(params, "POLYGON")]
    if sync and len(regions) > 1:
        raise MultiValuedParamNotSupported(
            f"{len(regions)} spatial values (POS, CIRCLE, POLYGON); /soda/sync takes at most "
            "one (use /soda/async for several)"
        )
    ids = list(dict.fromkeys(given))
    regions = list({r.label: r for r in regions}.values()) or [WHOLE_FRAME]
    if len(ids) * len(regions) > MAX_CUTOUTS:
        raise UsageError(
            f"{len(ids)} IDs x {len(regions)} regions is more than {MAX_CUTOUTS} cutouts in one "
            "job: split it"
        )
    band = _single(params, "BAND")
    time = _single(params, "TIME")
    pol = tuple(v.strip() for v in _values(params, "POL"))
    for state in pol:
        if state not in POL_STATES:
            raise UsageError(f"POL: {state!r} is not one of {' '.join(POL_STATES)}")
    return SodaRequest(
        tuple(ids),
        tuple(regions),
        None if band is None else _band(band),
        None if time is None else _interval(time, "TIME"),
        pol,
    )


def _values(params: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """The values of ``name`` as sent, blank ones left out (a form's empty field means not
    given)."""
    return [v for v in params.get(name, ()) if v.strip()]


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise MultiValuedParamNotSupported(f"{name} was given {len(values)} times; it takes one")
    return values[0] if values else None


def _numbers(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(number(word, name) for word in text.split())
    except ValueProblem as error:
        raise UsageError(str(error)) from None


def _position(ra: float, dec: float, name: str) -> None:
    if not (0 <= ra <= 360 and -90 <= dec <= 90):
        raise UsageError(
            f"{name}: position ({ra:g}, {dec:g}) is outside RA 0..360, Dec -90..90 degrees"
        )


def _label(kind: str, values: str) -> str:
    """How the TOC shows a region: the shape and the numbers as sent."""
    return f"{kind} {' '.join(values.split())}"


def _circle(text: str, name: str) -> Region:
    """A DALI circle ``ra dec radius`` (degrees)."""
    numbers = _numbers(text, name)
    if len(numbers) != 3:
        raise UsageError(f"{name} takes ra dec radius (ICRS degrees), not {text!r}")
    ra, dec, radius = numbers
    _position(ra, dec, name)
    if not 0 < radius <= 180:
        raise UsageError(f"{name}: the radius must be above 0 and at most 180 deg, not {radius:g}")
    # A circle of 180 deg is the whole sky, which the engine leaves to "no region".
    return Region(_label("CIRCLE", text), Shape("CIRCLE", numbers) if radius < 180 else None)


def _polygon(text: str, name: str) -> Region:
    """A DALI polygon ``ra1 dec1 ra2 dec2 ra3 dec3 ...`` (degrees)."""
    numbers = _numbers(text, name)
    if len(numbers) < 6 or len(numbers) % 2:
        raise UsageError(f"{name} takes three or more ra dec pairs (ICRS degrees), not {text!r}")
    shape = Shape("POLYGON", numbers)
    for ra, dec in shape.vertices:
        _position(ra, dec, name)
    return Region(_label("POLYGON", text), shape)


def _pos(text: str) -> Region:
    """A POS value: ``CIRCLE ...``, ``POLYGON ...`` or ``RANGE ra1 ra2 dec1 dec2``, where
    ``-Inf``/``+Inf`` leave a side open and ra1 > ra2 wraps through RA 0 (as in SIA)."""
    try:
        shape = parse_pos(text)
    except ValueProblem as error:
        raise UsageError(str(error)) from None
    values = " ".join(text.split()[1:])
    if shape.kind == "CIRCLE":
        return _circle(values, "POS")
    if shape.kind == "POLYGON":
        return _polygon(values, "POS")
    ra1, ra2, dec1, dec2 = shape.numbers
    ra1 = 0.0 if ra1 == -math.inf else ra1
    ra2 = 360.0 if ra2 == math.inf else ra2
    dec1 = -90.0 if dec1 == -math.inf else dec1
    dec2 = 90.0 if dec2 == math.inf else dec2
    for ra in (ra1, ra2):
        if not 0 <= ra <= 360:
            raise UsageError(f"POS: RANGE longitude {ra:g} is outside 0..360 degrees")
    for dec in (dec1, dec2):
        if not -90 <= dec <= 90:
            raise UsageError(f"POS: RANGE latitude {dec:g} is outside -90..90 degrees")
    if dec1 > dec2:
        raise UsageError(f"POS: RANGE latitudes {dec1:g} > {dec2:g}: give the lower one first")
    if ra1 > ra2:
        ra2 += 360.0
    return Region(_label("RANGE", values), Shape("RANGE", (ra1, ra2, dec1, dec2)))


def _interval(text: str, name: str) -> tuple[float, float]:
    """A DALI interval ``lo hi`` (infinities open a side; one value is both bounds)."""
    try:
        return interval(text, name)
    except ValueProblem as error:
        raise UsageError(str(error)) from None


def _band(text: str) -> tuple[float, float]:
    """BAND, metres (DALI interval) -> micrometres."""
    low, high = _interval(text, "BAND")
    if high < SPHEREX_M[0] or low > SPHEREX_M[1]:
        raise UsageError(
            f"BAND {low:g} {high:g} is outside the wavelengths SPHEREx sees, "
            f"{SPHEREX_M[0]:g} to {SPHEREX_M[1]:g} m (0.7-5.1 um): BAND is in metres"
        )
    return low * 1e6, high * 1e6


# --------------------------------------------------------------------------------------------
# Datasets


@dataclass(frozen=True)
class Dataset:
    """A released image, as the catalogue knows it."""

    id: str
    key: str
    """Its current file in the store."""
    is_image: bool
    """A spectral image (not a calibration file)."""
    t_min: float | None
    t_max: float | None


_LOOKUP = (
    'SELECT obs_publisher_did, "_uri", dataproduct_type, t_min, t_max FROM spherex.obscore '
    "WHERE obs_publisher_did IN ('')"
)


@lru_cache(maxsize=1)
def _lookup_template() -> t.Query:
    return parse(_LOOKUP)


def find_datasets(engine: QueryEngine, ids: Sequence[str]) -> dict[str, Dataset]:
    """The released datasets among ``ids`` (matched exactly: SODA's ID is opaque), by id, in
    one query through the embargo views; the ids go in as string literals, i.e. bound
    parameters."""
    if not ids:
        return {}
    query = _lookup_template()
    select = query.body
    assert isinstance(select, t.Select) and isinstance(select.where, t.InList)
    where = dataclasses.replace(select.where, values=tuple(t.StringLiteral(i) for i in ids))
    query = dataclasses.replace(query, body=dataclasses.replace(select, where=where))
    answer = engine.run(query, maxrec=len(ids), internal=True)
    return {
        did: Dataset(did, uri.removeprefix(URI_PREFIX), kind == "image", t_min, t_max)
        for did, uri, kind, t_min, t_max in answer.rows
    }


def check_dataset(dataset: Dataset, request: SodaRequest) -> None:
    """What can be said before reading the file: CutoutError if it cannot be cut, NoOverlap if
    TIME or POL leave nothing of it."""
    if not dataset.is_image:
        raise CutoutError(f"{dataset.id} is a calibration file: SODA cuts spectral images")
    if request.pol:
        raise NoOverlap("SPHEREx images have no polarisation: POL selects no data")
    if request.time_mjd is not None and None not in (dataset.t_min, dataset.t_max):
        low, high = request.time_mjd
        if dataset.t_max < low or dataset.t_min > high:
            raise NoOverlap(
                f"the image was taken from MJD {dataset.t_min:.6f} to {dataset.t_max:.6f}, "
                "outside TIME"
            )


def window_for(image: SpectralImage, region: Region, band_um: tuple[float, float] | None) -> Window:
    """The pixels of ``image`` a cutout keeps: the region's window (the whole frame for none),
    narrowed to the rows seeing the band. NoOverlap when nothing is left."""
    height, width = image.shape
    window = (
        Window(0, 0, width, height) if region.shape is None else shape_window(image, region.shape)
    )
    if band_um is None:
        return window
    try:
        return image.band_rows(window, *band_um)
    except NoOverlap as error:
        low, high = image.wavelength_range()
        raise NoOverlap(f"{error} (the image sees {low:.3f} to {high:.3f} um)") from None


def one_cutout(engine: QueryEngine, store: Store, request: SodaRequest) -> Cutout:
    """The cutout a sync request asks for (one ID, one region). Raises UnknownId, UsageError,
    NoOverlap, or SodaError when the archive itself fails."""
    (did,) = request.ids
    (region,) = request.regions
    dataset = find_datasets(engine, [did]).get(did)
    if dataset is None:
        raise UnknownId(f"no released dataset has the ID {did!r}")
    try:
        check_dataset(dataset, request)
    except NoOverlap:
        raise
    except CutoutError as error:
        raise UsageError(str(error)) from None
    try:
        image = open_image(store, store.stat(dataset.key))
    except (NotFound, CutoutError) as error:
        raise SodaError(f"the file of {did} cannot be read ({type(error).__name__})") from None
    try:
        window = window_for(image, region, request.band_um)
    except NoOverlap:
        raise
    except CutoutError as error:
        raise UsageError(str(error)) from None
    return cut(store, image, window)


# --------------------------------------------------------------------------------------------
# Many cutouts in one file (async)


@dataclass
class Planned:
    """One ID x region combination: its cutout's place, or why there is none."""

    id: str
    region: Region
    key: str | None = None
    image: SpectralImage | None = None
    """Held until the cutout is made."""
    window: Window | None = None
    names: tuple[str, ...] = ()
    """EXTNAMEs of the parent's HDUs after the PRIMARY: those of the cutout, before numbering."""
    reason: str | None = None
    number: int | None = None
    """n of the cutout's HDUs (IMAGE<n> ... WCS-WAVE<n>), counting cutouts from 1."""

    @property
    def hdus(self) -> str | None:
        return None if self.number is None else " ".join(f"{n}{self.number}" for n in self.names)


def plan_id(store: Store, dataset: Dataset | None, did: str, request: SodaRequest) -> list[Planned]:
    """Every region of one ID, each with its window or the reason it has none (the file's
    headers are read once for all of them)."""
    planned = [Planned(did, region) for region in request.regions]
    if dataset is None:
        return _without(planned, "no released dataset has this ID")
    try:
        check_dataset(dataset, request)
        image = open_image(store, store.stat(dataset.key))
    except CutoutError as error:
        return _without(planned, str(error))
    except NotFound:
        return _without(planned, "the file of this dataset is missing from the archive")
    names = tuple(h.name for h in image.hdus if h.index != 0)
    for item in planned:
        item.key, item.names = dataset.key, names
        try:
            item.window = window_for(image, item.region, request.band_um)
            item.image = image
        except CutoutError as error:
            item.reason = str(error)
    return planned


def _without(planned: list[Planned], reason: str) -> list[Planned]:
    for item in planned:
        item.reason = reason
    return planned


def _text(name: str, description: str, ucd: str) -> Column:
    return Column(name, "char", description, ucd=ucd)


def _pixels(name: str, description: str, ucd: str) -> Column:
    return Column(name, "int", description, unit="pix", ucd=ucd)


TOC_COLUMNS = (
    Column(
        "n",
        "int",
        "Number of the cutout: its HDUs are IMAGE<n> ... WCS-WAVE<n>; null when the "
        "combination gave none",
        ucd="meta.number",
    ),
    _text("ID", "The dataset id, as asked", "meta.ref.ivoid"),
    _text("file", "The parent file (its path below /ibe/data/spherex/)", "meta.id;meta.file"),
    _text("region", "The region asked (empty: the whole frame)", "pos.outline;obs"),
    _pixels(
        "x0", "First column of the cutout in the parent (0-based)", "pos.cartesian.x;instr.det"
    ),
    _pixels("y0", "First row of the cutout in the parent (0-based)", "pos.cartesian.y;instr.det"),
    _pixels("nx", "Columns of the cutout", "meta.number;instr.pixel"),
    _pixels("ny", "Rows of the cutout", "meta.number;instr.pixel"),
    _text("hdus", "EXTNAMEs of the cutout's HDUs in this file", "meta.id.part"),
    _text("reason", "Why this combination gave no cutout", "meta.note"),
)
"""The table of contents: one row per ID x region combination, IDs in the order asked, each
with every region."""


def toc_rows(planned: Sequence[Planned]) -> list[tuple]:
    rows = []
    for item in planned:
        w = item.window
        rows.append(
            (
                item.number,
                item.id,
                item.key,
                item.region.label,
                *((w.x0, w.y0, w.nx, w.ny) if w is not None else (None,) * 4),
                item.hdus,
                item.reason,
            )
        )
    return rows


NULL = -(2**31)
"""TNULL of the TOC's integer columns (the VOTable's null too)."""
REASON_WIDTH = 160
"""Characters of a reason the FITS TOC keeps (the VOTable TOC has them whole)."""


def _widths(request: SodaRequest, datasets: Mapping[str, Dataset]) -> dict[str, int]:
    """Widths of the FITS TOC's text columns, known before any file is opened, so that the
    cutouts can be written after the TOC's place while the TOC is still being learnt. HDU
    names are those ingest requires of a spectral image, numbered up to the combinations."""
    combinations = len(request.ids) * len(request.regions)
    return {
        "ID": max(len(i) for i in request.ids),
        "file": max((len(d.key) for d in datasets.values()), default=1),
        "region": max(len(r.label or "") for r in request.regions) or 1,
        "hdus": len(" ".join(f"{n}{combinations}" for n in LEVEL2_HDUS[1:])),
        "reason": REASON_WIDTH,
    }


def _head(rows: Sequence[tuple], cutouts: int, widths: Mapping[str, int]) -> bytes:
    """PRIMARY and TOC: text columns at fixed widths (ASCII, as FITS wants), integer nulls as
    TNULL, so that the size depends on the number of rows only."""
    columns = []
    for i, column in enumerate(TOC_COLUMNS):
        values = [row[i] for row in rows]
        if column.datatype == "char":
            width = widths[column.name]
            texts = [_ascii(v or "")[:width] for v in values]
            assert column.name == "reason" or all(len(v or "") <= width for v in values)
            columns.append(fits.Column(column.name, f"{width}A", array=np.array(texts, "S")))
        else:
            data = np.array([NULL if v is None else v for v in values], np.int32)
            columns.append(fits.Column(column.name, "J", array=data, null=NULL, unit=column.unit))
    toc = fits.BinTableHDU.from_columns(columns, name="TOC", nrows=len(rows))
    for i, column in enumerate(TOC_COLUMNS, start=1):
        toc.header[f"TUCD{i}"] = column.ucd
    primary = fits.PrimaryHDU()
    primary.header["NCUTOUT"] = (cutouts, "cutouts in this file, after the TOC")
    primary.header["ORIGIN"] = ("spherex-archive SODA", "the service that cut them")
    buffer = io.BytesIO()
    fits.HDUList([primary, toc]).writeto(buffer)
    return buffer.getvalue()


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


PIXEL_BUDGET = 256 * 1024 * 1024
"""Bytes of cropped pixels held by cutouts made ahead of the one being written (a whole
2040-pixel frame is 67 MB of them)."""


def write_cutouts(
    path: Path,
    store: Store,
    datasets: Mapping[str, Dataset],
    request: SodaRequest,
    *,
    should_stop: Callable[[], bool],
    progress: Callable[[int, int, int], None],
    threads: int | None = None,
) -> list[Planned] | None:
    """One FITS file with every cutout of ``request``: a PRIMARY, the TOC, then each cutout's
    HDUs renamed with its number. Returns the TOC's combinations (None if stopped first).

    A pipeline, so that reading headers and cutting (Python, in threads) overlap with
    copying (the kernel): the IDs are planned a few ahead, the cutouts are numbered in order
    and made a few ahead, within a pixel budget, and written in order after the TOC's place,
    their PSF and WCS-WAVE going from the parent to the file as they are written. The TOC,
    whose size is known from the start, is written last. ``progress(IDs planned, IDs,
    cutouts written)`` follows it. ``threads`` reads files at once, by default as many as the
    store has worth overlapping (one on a local disk: 500 cutouts in 2.8 s, against 3.5 s
    with eight threads contending for the interpreter); twice as many are planned and cut
    ahead of the one being written."""
    threads = threads or store.parallel_reads
    ahead = 2 * threads
    widths = _widths(request, datasets)
    combinations = len(request.ids) * len(request.regions)
    head_size = len(_head([(None,) * len(TOC_COLUMNS)] * combinations, 0, widths))
    planned: list[Planned] = []
    ids = iter(request.ids)
    ready: deque[Planned] = deque()  # numbered, not yet given to a thread
    cuts: deque[tuple[Future[Cutout], int]] = deque()
    held = 0  # pixel bytes of the cutouts in ``cuts``
    count = written = 0  # cutouts numbered, cutouts written
    with path.open("wb", buffering=0) as out, ThreadPoolExecutor(threads) as pool:
        plans = deque(
            pool.submit(plan_id, store, datasets.get(i), i, request) for i in islice(ids, ahead)
        )
        out.seek(head_size)
        while True:
            if should_stop():
                for future in [*plans, *(f for f, _ in cuts)]:
                    future.cancel()
                return None
            while ready and len(cuts) < ahead and (not cuts or held < PIXEL_BUDGET):
                item = ready.popleft()
                assert item.window is not None
                cost = item.window.nx * item.window.ny * 16  # four planes of four bytes
                cuts.append(
                    (pool.submit(cut, store, item.image, item.window, number=item.number), cost)
                )
                held += cost
                item.image = None  # the thread has it; the TOC does not need it
            next_cut = cuts[0][0] if cuts else None
            next_plan = plans[0] if plans and len(ready) < ahead else None
            if next_cut is None and next_plan is None:
                break
            if next_cut is not None and (next_plan is None or next_cut.done()):
                future, cost = cuts.popleft()
                _write(out, store, future.result())
                held -= cost
                written += 1
            elif next_plan is not None and (next_cut is None or next_plan.done()):
                group = plans.popleft().result()
                plans.extend(
                    pool.submit(plan_id, store, datasets.get(i), i, request) for i in islice(ids, 1)
                )
                for item in group:
                    if item.window is not None:
                        count += 1
                        item.number = count
                        ready.append(item)
                planned.extend(group)
            else:
                wait([next_cut, next_plan], return_when=FIRST_COMPLETED)
                continue
            progress(len(planned) // len(request.regions), len(request.ids), written)
        head = _head(toc_rows(planned), count, widths)
        assert len(head) == head_size
        os.pwrite(out.fileno(), head, 0)
    return planned


def _write(out: BinaryIO, store: Store, cutout: Cutout) -> None:
    """A cutout's bytes at the file's position: copied HDUs go file to file (in the kernel,
    where it can)."""
    literal: list[bytes] = []
    for part in cutout.parts:
        if isinstance(part, bytes):
            literal.append(part)
            continue
        out.write(b"".join(literal))  # one system call, each of which waits for the GIL
        literal.clear()
        store.copy_range(cutout.image.key, *part, out)
    out.write(b"".join(literal))
