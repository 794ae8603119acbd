"""The Data Explorer's image viewer: a spectral image's planes as PNGs at full resolution, and
what lies under the cursor (sky position, wavelength, the planes' values, flags).

Files are read through the cutout engine's :func:`~spherex_archive.services.cutout.open_image`,
whose per-file cache holds where each HDU lies, the celestial WCS and the WCS-WAVE table: a
pixel readout is then a few-byte ranged read per plane and two small evaluations. A plane is
one ranged read, drawn as the previews are (:func:`~spherex_archive.services.preview.quicklook`:
row 1 at the bottom, blanks in a flat colour) with the stretch asked for; FLAGS is a mask for
an overlay (transparent where no bit is set), PSF the cube's zones tiled as they lie on the
detector (spec §2.6: zone (0, 0), holding FITS pixel (1, 1), at the bottom left).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from astropy.visualization import (
    AsinhStretch,
    LinearStretch,
    LogStretch,
    MinMaxInterval,
    ZScaleInterval,
)
from matplotlib import colormaps
from PIL import Image

from spherex_archive.products.fitsfile import parse_header
from spherex_archive.products.flags import (
    DESCRIPTIONS,
    FLAGS_V21,
    INFORMATIONAL,
    flags_from_header,
)
from spherex_archive.services.cutout import CutoutError, SpectralImage, open_image
from spherex_archive.services.explorer import DatasetFile
from spherex_archive.services.preview import Preview, quicklook
from spherex_archive.store import Entry, Store

PLANES = ("IMAGE", "FLAGS", "VARIANCE", "ZODI", "PSF")
STRETCHES = {
    "asinh": (AsinhStretch(0.3), ZScaleInterval()),
    "zscale": (LinearStretch(), ZScaleInterval()),
    "linear": (LinearStretch(), MinMaxInterval()),
    "log": (LogStretch(), ZScaleInterval()),
}
"""Stretch name -> (stretch, interval): zscale limits, except ``linear`` (the full range)."""
RENDERING = "viewer-v1"
"""Part of every plane's entity tag: a change in drawing reaches every browser cache."""

PSF_GAP = 1
"""Blank pixels between the PSF zones of the tiled image."""
STAT_SECONDS = 30.0
"""How long a file's size and entity tag are trusted before the store is asked again (the
readout is called on every mouse move; on S3 a stat is a request)."""
PNG_CACHE_SIZE = 16


def _palette() -> dict[int, str]:
    """A colour per bit number, the same in every file: tab20, then tab20b."""
    colours = [*colormaps["tab20"].colors, *colormaps["tab20b"].colors]
    return {
        bit: "#" + "".join(f"{round(c * 255):02x}" for c in colours[bit][:3]) for bit in range(32)
    }


COLOURS = _palette()


class NotAnImage(LookupError):
    """The dataset is not a spectral image the viewer can show (answered 404)."""


class OutsideImage(ValueError):
    """A pixel position off the image (answered 400)."""


@dataclass(frozen=True)
class _Opened:
    image: SpectralImage
    entry: Entry
    bits: dict[str, int]
    """Flag name -> bit, from the FLAGS header's MP_ cards."""
    bunit: str | None


class ViewerService:
    """Planes and readouts of the images of one store; safe to share between threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._entries: dict[str, tuple[float, Entry]] = {}
        self._opened: OrderedDict[tuple[str, str | None], _Opened] = OrderedDict()
        self._pngs: OrderedDict[tuple, Preview] = OrderedDict()
        self._lock = threading.Lock()

    # ---- files

    def _entry(self, key: str) -> Entry:
        now = time.monotonic()
        with self._lock:
            found = self._entries.get(key)
        if found is not None and now - found[0] < STAT_SECONDS:
            return found[1]
        entry = self.store.stat(key)
        with self._lock:
            if len(self._entries) > 4096:
                self._entries.clear()
            self._entries[key] = (now, entry)
        return entry

    def open(self, dataset: DatasetFile) -> _Opened:
        if dataset.product_type != "image":
            raise NotAnImage(f"{dataset.did} is not a spectral image: the viewer cannot show it.")
        entry = self._entry(dataset.key)
        cache_key = (entry.key, entry.etag or f"{entry.size}-{entry.mtime}")
        with self._lock:
            found = self._opened.get(cache_key)
            if found is not None:
                self._opened.move_to_end(cache_key)
                return found
        try:
            image = open_image(self.store, entry)
        except CutoutError as error:
            raise NotAnImage(f"{dataset.did} cannot be shown: {error}") from None
        headers = {p.name: parse_header(image.headers[p.index]) for p in image.planes}
        flags = headers.get("FLAGS", {})
        bits = flags_from_header(flags) or FLAGS_V21
        opened = _Opened(image, entry, bits, headers.get("IMAGE", {}).get("BUNIT"))
        with self._lock:
            self._opened[cache_key] = opened
            while len(self._opened) > 64:
                self._opened.popitem(last=False)
        return opened

    # ---- answers

    def info(self, dataset: DatasetFile) -> dict:
        opened = self.open(dataset)
        image = opened.image
        height, width = image.shape
        present = {p.name for p in image.planes} | {h.name for h in image.hdus}
        return {
            "id": dataset.did,
            "width": width,
            "height": height,
            "hdus": [name for name in PLANES if name in present],
            "detector": dataset.detector,
            "obs_id": dataset.obs_id,
            "t_min": dataset.t_min,
            "bunit": opened.bunit,
            "flag_bits": [
                {
                    "bit": bit,
                    "name": name,
                    "description": DESCRIPTIONS.get(name, name),
                    "colour": COLOURS[bit],
                    "unusable": name not in INFORMATIONAL,
                }
                for name, bit in _by_bit(opened.bits)
            ],
        }

    def plane(self, dataset: DatasetFile, hdu: str, stretch: str) -> Preview:
        """The PNG of one plane (``hdu`` in :data:`PLANES`, ``stretch`` in
        :data:`STRETCHES`); FLAGS ignores the stretch."""
        opened = self.open(dataset)
        entry = opened.entry
        version = entry.etag or f"{entry.size}-{entry.mtime}"
        stretch = "mask" if hdu == "FLAGS" else stretch
        cache_key = (entry.key, version, hdu, stretch)
        with self._lock:
            found = self._pngs.get(cache_key)
            if found is not None:
                self._pngs.move_to_end(cache_key)
                return found
        image = opened.image
        try:
            if hdu == "FLAGS":
                png = flags_png(image.read_plane("FLAGS"), opened.bits)
            elif hdu == "PSF":
                png = quicklook(psf_mosaic(image.psf_cube()), *STRETCHES[stretch])
            else:
                png = quicklook(image.read_plane(hdu).astype(np.float32), *STRETCHES[stretch])
        except CutoutError as error:
            raise NotAnImage(f"{dataset.did} has no {hdu} to show: {error}") from None
        digest = hashlib.sha256(repr((*cache_key, RENDERING)).encode()).hexdigest()
        drawn = Preview(png, f'"{digest[:32]}"')
        with self._lock:
            self._pngs[cache_key] = drawn
            while len(self._pngs) > PNG_CACHE_SIZE:
                self._pngs.popitem(last=False)
        return drawn

    def pixel(self, dataset: DatasetFile, x: float, y: float) -> dict:
        """What lies at FITS pixel position (x, y) (1-based; pixel (1, 1) at the bottom left,
        covering 0.5..1.5 on each axis)."""
        opened = self.open(dataset)
        image = opened.image
        height, width = image.shape
        if not (0.5 <= x < width + 0.5 and 0.5 <= y < height + 0.5):
            raise OutsideImage(
                f"x, y: ({x:g}, {y:g}) is outside the image, whose pixels run from 1 to "
                f"{width} (x) and 1 to {height} (y)"
            )
        column, row = math.floor(x + 0.5) - 1, math.floor(y + 0.5) - 1
        values = image.read_pixel(column, row)
        ra, dec = image.world([x - 1], [y - 1])
        try:
            wavelength, bandwidth = (float(v) for v in image.wave_table.evaluate(x - 1, y - 1))
        except CutoutError:  # no WCS-WAVE table
            wavelength = bandwidth = None
        flags = int(values.get("FLAGS", 0))
        return {
            "x": x,
            "y": y,
            "column": column + 1,
            "row": row + 1,
            "ra": float(ra[0]),
            "dec": float(dec[0]),
            "wavelength_um": wavelength,
            "bandwidth_um": bandwidth,
            "image": _value(values.get("IMAGE")),
            "unit": opened.bunit,
            "variance": _value(values.get("VARIANCE")),
            "zodi": _value(values.get("ZODI")),
            "flags": flags,
            "flag_names": [
                n for n, b in sorted(opened.bits.items(), key=lambda i: i[1]) if flags >> b & 1
            ],
        }


def _by_bit(bits: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(bits.items(), key=lambda item: item[1])


def _value(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def flags_png(flags: np.ndarray, bits: dict[str, int]) -> bytes:
    """An RGBA mask (row 1 at the bottom): transparent where no bit is set, else the colour of
    the pixel's most significant unusable bit, or of its lowest bit when all are
    informational."""
    values = flags.astype(np.int64) & 0xFFFFFFFF
    unusable_mask = sum(1 << b for n, b in bits.items() if n not in INFORMATIONAL)
    unusable = values & unusable_mask
    with np.errstate(divide="ignore"):
        highest = np.floor(np.log2(np.where(unusable > 0, unusable, 1))).astype(np.int64)
        lowest = np.log2(np.where(values > 0, values & -values, 1)).astype(np.int64)
    bit = np.where(unusable > 0, highest, lowest)
    table = np.zeros((33, 4), np.uint8)
    for b in range(32):
        colour = COLOURS[b]
        table[b] = [int(colour[i : i + 2], 16) for i in (1, 3, 5)] + [255]
    rgba = np.where((values > 0)[..., None], table[bit], table[32])
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[::-1]), "RGBA").save(out, format="PNG")
    return out.getvalue()


def psf_mosaic(cube: np.ndarray) -> np.ndarray:
    """The PSF zones side by side as on the detector (plane k - 1 = iy * n + ix, zone (0, 0)
    at the bottom left, row 0 the bottom), NaN between them."""
    zones, ny, nx = cube.shape
    n = math.isqrt(zones)
    if n * n != zones:
        n = math.ceil(math.sqrt(zones))
    rows = math.ceil(zones / n)
    mosaic = np.full(
        (rows * ny + (rows - 1) * PSF_GAP, n * nx + (n - 1) * PSF_GAP), np.nan, np.float32
    )
    for k in range(zones):
        iy, ix = divmod(k, n)
        y0, x0 = iy * (ny + PSF_GAP), ix * (nx + PSF_GAP)
        mosaic[y0 : y0 + ny, x0 : x0 + nx] = cube[k]
    return mosaic
