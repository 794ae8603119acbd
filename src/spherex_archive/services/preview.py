"""PNG quicklooks of the archive's images: the ``#preview`` links of DataLink.

A preview is the first image extension of a file (IMAGE for a spectral image; the middle plane
of a cube), at most :data:`MAX_SIDE` pixels on a side, drawn as FITS viewers do: row 1 at the
bottom, a zscale interval with an asinh stretch so that both the zodiacal background and the
sources show, and blank (NaN) pixels in one flat colour outside the grey scale.

Only that plane is read: astropy walks the headers up to it (the PRIMARY and IMAGE headers of a
72 MB spectral image), then the plane's bytes come in one ranged read from the store (16 MB of a
2040-pixel plane, one request to an object store). Pixels are averaged in k x k blocks rather
than every k-th one taken: SPHEREx sources are one or two pixels wide, and a sample of one
pixel in sixteen loses most of them while the average keeps them and quiets the noise. PNGs are
kept in a small LRU cache keyed by the file's key and entity tag, so a file replaced in the
store is drawn again.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, BaseInterval, BaseStretch, ZScaleInterval
from PIL import Image

from spherex_archive.store import Store

MAX_SIDE = 512
"""Largest side of a preview: a 2040-pixel image becomes 510 x 510 blocks of 4 x 4 pixels."""

BLANK_COLOUR = (70, 82, 104)
"""Pixels without a value (NaN): a dull slate blue that no grey level can be taken for."""

STRETCH = AsinhStretch(0.3)
RENDERING = "mean-zscale-asinh0.3-v1"
"""Names how previews are drawn: part of their entity tag, so a change reaches every cache."""

_TYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_PALETTE = [*BLANK_COLOUR] + [round(i * 255 / 254) for i in range(255) for _ in range(3)]
"""Palette index 0 is the blank colour, 1..255 the grey levels from black to white."""


class NoImage(Exception):
    """The file holds no image that a preview can be drawn from."""


@dataclass(frozen=True)
class Preview:
    png: bytes
    etag: str
    """The HTTP entity tag, quotes included."""


@dataclass(frozen=True)
class _Plane:
    start: int
    """Byte offset of the plane's first row."""
    shape: tuple[int, int]
    """(rows, columns)."""
    dtype: str
    scale: float
    zero: float
    blank: int | None


def _find_plane(store: Store, key: str) -> _Plane:
    """The first image HDU with two or more axes, and where its (middle) plane starts."""
    with store.open(key) as f:
        # Plain FITS only: astropy would also open a gzipped file, whose offsets are not the
        # stored file's.
        if f.read(9) != b"SIMPLE  =":
            raise NoImage(f"{key} is not a plain FITS file")
        f.seek(0)
        try:
            hdus = fits.open(f, lazy_load_hdus=True, memmap=False)
        except OSError as error:  # astropy's word for a broken file
            raise NoImage(f"{key} is not a readable FITS file: {error}") from None
        with hdus:
            for index, hdu in enumerate(hdus):
                header = hdu.header
                naxis = int(header.get("NAXIS", 0))
                is_image = isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU) and not isinstance(
                    hdu, fits.CompImageHDU
                )
                if not is_image or naxis < 2:
                    continue
                columns, rows = int(header["NAXIS1"]), int(header["NAXIS2"])
                bitpix = int(header["BITPIX"])
                if bitpix not in _TYPES or columns < 1 or rows < 1:
                    continue
                depth = int(header["NAXIS3"]) if naxis >= 3 else 1
                plane_bytes = columns * rows * abs(bitpix) // 8
                blank = header.get("BLANK") if bitpix > 0 else None
                return _Plane(
                    start=hdus.fileinfo(index)["datLoc"] + depth // 2 * plane_bytes,
                    shape=(rows, columns),
                    dtype=_TYPES[bitpix],
                    scale=float(header.get("BSCALE", 1.0)),
                    zero=float(header.get("BZERO", 0.0)),
                    blank=int(blank) if blank is not None else None,
                )
    raise NoImage(f"{key} holds no image extension")


def read_plane(store: Store, key: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """The file's first image plane averaged in k x k blocks (k the smallest step that brings
    both sides to ``max_side`` or below; blanks and NaN left out of each mean, NaN where a
    block has no value). Row 0 is the first row of the file (FITS row 1, the bottom)."""
    plane = _find_plane(store, key)
    rows, columns = plane.shape
    size = rows * columns * np.dtype(plane.dtype).itemsize
    raw = store.read_range(key, plane.start, plane.start + size)
    if len(raw) < size:
        raise NoImage(f"{key} ends inside its image")
    data = np.frombuffer(raw, plane.dtype).reshape(rows, columns)
    values = data.astype(np.float32) * np.float32(plane.scale) + np.float32(plane.zero)
    if plane.blank is not None:
        values[data == plane.blank] = np.nan
    return block_mean(values, max(1, math.ceil(max(rows, columns) / max_side)))


def block_mean(values: np.ndarray, step: int) -> np.ndarray:
    """Means of the finite values in ``step`` x ``step`` blocks (the last ones partial)."""
    if step == 1:
        return values
    rows, columns = values.shape
    padded = np.full((-(-rows // step) * step, -(-columns // step) * step), np.nan, np.float32)
    padded[:rows, :columns] = values
    finite = np.isfinite(padded)
    shape = (padded.shape[0] // step, step, padded.shape[1] // step, step)
    sums = np.where(finite, padded, 0).reshape(shape).sum(axis=(1, 3), dtype=np.float64)
    counts = finite.reshape(shape).sum(axis=(1, 3))
    means = np.full(sums.shape, np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    return means


def quicklook(
    values: np.ndarray,
    stretch: BaseStretch = STRETCH,
    interval: BaseInterval | None = None,
) -> bytes:
    """The PNG of an image (row 0 at the bottom): ``interval``'s limits (zscale by default)
    and ``stretch`` (asinh by default) over the finite pixels, NaN in :data:`BLANK_COLOUR`."""
    finite = np.isfinite(values)
    levels = np.zeros(values.shape, np.uint8)
    if finite.any():
        good = values[finite]
        low, high = (interval or ZScaleInterval()).get_limits(good)
        if not high > low:  # a flat image, or zscale giving up on too few values
            low, high = float(good.min()), float(good.max())
        if high > low:
            scaled = stretch(np.clip((good - low) / (high - low), 0.0, 1.0))
        else:
            scaled = np.full(good.shape, 0.5)
        levels[finite] = 1 + np.rint(np.clip(scaled, 0.0, 1.0) * 254).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(levels[::-1]))  # FITS viewers: row 1 below
    image.putpalette(_PALETTE)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class PreviewService:
    """Previews of files in one store, the most recent ``cache_size`` of them kept."""

    def __init__(self, store: Store, cache_size: int = 64, max_side: int = MAX_SIDE) -> None:
        self.store = store
        self.cache_size = cache_size
        self.max_side = max_side
        self._cache: OrderedDict[tuple[str, str], Preview] = OrderedDict()
        self._lock = threading.Lock()

    def preview(self, key: str) -> Preview:
        """The preview of the file at ``key`` (store NotFound if it is not there, NoImage if
        it holds no image)."""
        entry = self.store.stat(key)
        version = entry.etag or f"{entry.size}-{entry.mtime}"
        cache_key = (key, version)
        with self._lock:
            found = self._cache.get(cache_key)
            if found is not None:
                self._cache.move_to_end(cache_key)
                return found
        png = quicklook(read_plane(self.store, key, self.max_side))
        digest = hashlib.sha256(f"{key}\n{version}\n{RENDERING}".encode()).hexdigest()
        made = Preview(png, f'"{digest[:32]}"')
        with self._lock:
            self._cache[cache_key] = made
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return made
