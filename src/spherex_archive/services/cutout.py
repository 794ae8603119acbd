"""The cutout engine: a piece of a SPHEREx spectral image with all seven HDUs (spec §3).

A cutout is the parent file with IMAGE, FLAGS, VARIANCE and ZODI cropped to one pixel window,
PSF and WCS-WAVE copied unchanged, and the crop origin subtracted from ``CRPIX1/2``,
``CRPIX1A/2A`` and ``CRPIX1W/2W`` of the cropped planes; every other header card is kept byte
for byte. Nothing goes through astropy's HDU machinery: the headers are edited card by card in
their 80-byte slots (so block counts and card order stay those of the parent) and the pixels
are the parent's own big-endian bytes, read row by row with ranged reads from the store. A
0.1 deg cutout of a 72 MB file reads its headers once (cached per file), then about 2 x 240
bytes per row of each plane, and streams the PSF and the table from the store as it answers.

astropy is used where it is the reference: the celestial WCS (SIP included) to place a sky
position on the pixel grid, the linear part of the WCS for the pixel scale, and ``fits.Card``
to read the edited cards and its value formatter to write them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from astropy.io import fits
from astropy.io.fits.card import _format_value
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from spherex_archive.catalogue.spatial import to_radec, unit_vectors
from spherex_archive.products.fitsfile import (
    BLOCK,
    celestial_wcs,
    data_size,
    parse_header,
    structural_cards,
)
from spherex_archive.products.wavelength import WaveTable
from spherex_archive.services.shapes import Shape
from spherex_archive.store import Entry, Store

CARD = 80
HEADER_READ = 32 * BLOCK
"""First read of a file: PRIMARY and an IMAGE header of up to 31 blocks (real ones have 8)."""
NEXT_HEADER_READ = 16 * BLOCK
"""Later reads, one per header: the longest of a real file, the PSF's, has 15 blocks."""

SHIFTED = ("CRPIX1", "CRPIX2", "CRPIX1A", "CRPIX2A", "CRPIX1W", "CRPIX2W")
"""Cards holding a pixel position: each loses the crop origin (spec §3)."""

TABLE_NAME = "WCS-WAVE"
_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
"""numpy types of FITS BITPIX values (big-endian, as stored)."""
FAR = math.radians(60.0)
"""Sky points further than this from an image's centre are not placed on its pixel grid (the
tangent projection degenerates towards 90 deg); a region reaching that far is cut generously."""


class CutoutError(ValueError):
    """A cutout that cannot be made as asked; the message is for the user."""


class NoOverlap(CutoutError):
    """The requested region and the image have no pixel in common."""


# --------------------------------------------------------------------------------------------
# Where things are in a file


@dataclass(frozen=True)
class HduSpan:
    """One HDU's place in the file."""

    index: int
    name: str
    header_start: int
    data_start: int
    end: int
    """End of the HDU's padded data: the next HDU's header starts here."""
    cards: dict[str, str]
    """Structural cards (BITPIX, NAXISn, ...) as raw strings."""

    @property
    def shape(self) -> tuple[int, ...]:
        naxis = int(self.cards.get("NAXIS", "0"))
        return tuple(int(self.cards[f"NAXIS{i}"]) for i in range(naxis, 0, -1))

    @property
    def bytes_per_pixel(self) -> int:
        return abs(int(self.cards["BITPIX"])) // 8


@dataclass(frozen=True)
class Window:
    """A pixel window of the parent: 0-based, ``x1``/``y1`` exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def nx(self) -> int:
        return self.x1 - self.x0

    @property
    def ny(self) -> int:
        return self.y1 - self.y0

    def clip(self, nx: int, ny: int) -> Window:
        """This window trimmed to an ``nx`` x ``ny`` frame (NoOverlap if nothing is left)."""
        clipped = Window(max(self.x0, 0), max(self.y0, 0), min(self.x1, nx), min(self.y1, ny))
        if clipped.nx <= 0 or clipped.ny <= 0:
            raise NoOverlap("the requested region does not overlap the image")
        return clipped


@dataclass(eq=False)
class SpectralImage:
    """What the cutout engine knows of one file, from its headers alone."""

    key: str
    size: int
    etag: str | None
    hdus: list[HduSpan]
    headers: dict[int, bytes]
    """Raw headers of the PRIMARY and of the planes that get cropped."""
    planes: list[HduSpan]
    """The 2-D HDUs on the IMAGE's pixel grid: IMAGE, FLAGS, VARIANCE, ZODI."""
    _store: Store = field(repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the image planes."""
        ny, nx = self.planes[0].shape
        return ny, nx

    @cached_property
    def image_values(self) -> dict:
        """Keyword -> value of the IMAGE header (``products.fitsfile.parse_header``)."""
        return parse_header(self.headers[self.planes[0].index])

    @cached_property
    def wcs(self) -> WCS:
        """The celestial WCS of the IMAGE, SIP distortion included, assembled from the header's
        values (``WCS(Header)`` costs 50-130 ms a file: most of planning a bulk cutout job)."""
        values = self.image_values
        wanted = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2")
        wcs = celestial_wcs(values) if all(k in values for k in wanted) else None
        if wcs is None or not wcs.has_celestial:
            raise CutoutError(f"{self.key} has no celestial WCS: give the centre in pixels")
        return wcs

    @cached_property
    def pixel_scale(self) -> tuple[float, float]:
        """Degrees per pixel along x and y, from the linear part of the WCS (spec §3)."""
        x, y = proj_plane_pixel_scales(self.wcs.celestial)
        return float(x), float(y)

    @cached_property
    def wave_table(self) -> WaveTable:
        """The per-pixel wavelength table (WCS-WAVE), read on first use."""
        span = next((h for h in self.hdus if h.name == TABLE_NAME), None)
        if span is None:
            raise CutoutError(f"{self.key} has no {TABLE_NAME} table")
        raw = self._store.read_range(self.key, span.header_start, span.end)
        header = parse_header(raw[: span.data_start - span.header_start])
        row = raw[span.data_start - span.header_start :]
        # One row of X (nJ), Y (mJ) and VALUES ((2nm)E, k fastest, then x, then y), as §2.7
        # describes it: read directly, as fits.open of the table costs 15 ms a file.
        forms = [str(header.get(f"TFORM{i}", "")).strip() for i in (1, 2, 3)]
        names = [str(header.get(f"TTYPE{i}", "")).strip() for i in (1, 2, 3)]
        try:
            n, m, count = (int(f[:-1]) for f in forms)
        except ValueError:
            n = m = count = -1
        if (
            names != ["X", "Y", "VALUES"]
            or [f[-1:] for f in forms] != list("JJE")
            or (count != 2 * n * m)
        ):
            raise CutoutError(f"{self.key}: its {TABLE_NAME} table is not laid out as §2.7 says")
        x = np.frombuffer(row, ">i4", n, 0).astype(float)
        y = np.frombuffer(row, ">i4", m, 4 * n).astype(float)
        values = np.frombuffer(row, ">f4", count, 4 * (n + m)).astype(float).reshape(m, n, 2)
        return WaveTable(x, y, values)

    @cached_property
    def centre(self) -> np.ndarray:
        """Unit vector of the frame's centre."""
        ny, nx = self.shape
        ra, dec = self.world([(nx - 1) / 2], [(ny - 1) / 2])
        return unit_vectors(ra, dec)[0]

    def pixels(self, ra: Sequence[float], dec: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions of sky positions (degrees), SIP applied on and near the
        frame. Far from it the SIP polynomial means nothing (and its inversion diverges):
        there the linear position is enough to say on which side of the frame a point lies."""
        ra, dec = np.asarray(ra, float), np.asarray(dec, float)
        height, width = self.shape
        with self._lock:  # a WCS object is not safe to share between threads
            x, y = self.wcs.wcs_world2pix(ra, dec, 0)
            margin = 0.25 * max(width, height) + 10
            near = (x > -margin) & (x < width + margin) & (y > -margin) & (y < height + margin)
            if near.any():
                x[near], y[near] = self.wcs.all_world2pix(ra[near], dec[near], 0, quiet=True)
        return x, y

    def world(self, x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Sky positions (degrees) of 0-based pixel positions."""
        with self._lock:
            ra, dec = self.wcs.all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
        return ra, dec

    # ---- windows

    def box(
        self,
        centre: tuple[float, float],
        size: tuple[float, float],
        *,
        pixel_centre: bool = False,
        pixel_size: bool = False,
    ) -> Window:
        """IRSA's window rule (spec §3): ``n = round(size / scale)`` pixels per axis, first
        pixel ``floor(c + 1 - n / 2)`` for the target's 0-based position ``c``, then trimmed
        to the frame. ``centre`` is (RA, Dec) in degrees or, with ``pixel_centre``, a 0-based
        pixel position; ``size`` is degrees or, with ``pixel_size``, pixels (x, y)."""
        if pixel_centre:
            cx, cy = centre
        else:
            distance = float(_angle(self.centre, unit_vectors([centre[0]], [centre[1]]))[0])
            if distance > FAR:
                raise NoOverlap(
                    "the requested region does not overlap the image "
                    f"(its centre is {math.degrees(distance):.1f} deg from the image's)"
                )
            px, py = self.pixels([centre[0]], [centre[1]])
            cx, cy = float(px[0]), float(py[0])
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise NoOverlap("the requested region does not overlap the image")
        if pixel_size:
            nx, ny = round(size[0]), round(size[1])
        else:
            nx = round(size[0] / self.pixel_scale[0])
            ny = round(size[1] / self.pixel_scale[1])
        nx, ny = max(nx, 1), max(ny, 1)
        x0 = math.floor(cx + 1 - nx / 2)
        y0 = math.floor(cy + 1 - ny / 2)
        height, width = self.shape
        return Window(x0, y0, x0 + nx, y0 + ny).clip(width, height)

    def region(self, boundary: np.ndarray, inside_corners: np.ndarray) -> Window:
        """The pixels of a sky region: the bounding box of its boundary points (``(n, 2)``
        RA/Dec degrees, dense enough that straight lines between them stay within a pixel of
        it) and of the frame corners the region contains (``inside_corners``, booleans for
        :meth:`corners`), trimmed to the frame."""
        height, width = self.shape
        near = _angle(self.centre, unit_vectors(boundary[:, 0], boundary[:, 1])) < FAR
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        if not near.all():  # a region too large to project: keep the whole frame if it touches
            if not near.any() and not inside_corners.any():
                raise NoOverlap("the requested region does not overlap the image")
            return Window(0, 0, width, height)
        x, y = self.pixels(boundary[:, 0], boundary[:, 1])
        xs.append(x)
        ys.append(y)
        corner_x = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
        corner_y = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
        xs.append(corner_x[inside_corners])
        ys.append(corner_y[inside_corners])
        x, y = np.concatenate(xs), np.concatenate(ys)
        inside_frame = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
        if not inside_frame.any() and not inside_corners.any():
            # The boundary passes outside and contains no corner: the region may still hold
            # the frame's centre only if it surrounds the frame, which needs a corner inside.
            raise NoOverlap("the requested region does not overlap the image")
        window = Window(
            math.floor(x.min() + 0.5),
            math.floor(y.min() + 0.5),
            math.floor(x.max() + 0.5) + 1,
            math.floor(y.max() + 0.5) + 1,
        )
        return window.clip(width, height)

    def corners(self) -> tuple[np.ndarray, np.ndarray]:
        """RA and Dec of the frame's outer corners, in the order :meth:`region` expects."""
        height, width = self.shape
        return self.world(
            [-0.5, width - 0.5, width - 0.5, -0.5], [-0.5, -0.5, height - 0.5, height - 0.5]
        )

    def band_rows(self, window: Window, low_um: float, high_um: float) -> Window:
        """``window`` narrowed to the rows where the linear variable filter passes some light
        of ``[low_um, high_um]`` within the window's columns: a row is kept when the
        wavelength of any of its pixels lies in the band."""
        x = np.arange(window.x0, window.x1, dtype=float)
        y = np.arange(window.y0, window.y1, dtype=float)
        # The table's bilinear interpolation done in two passes (the same numbers, 20 times
        # faster on a full frame): along y at the table's columns, then along x, where
        # weights[j, i] is column j's share of pixel column i (clamped at the edges, as WCSLIB).
        table = self.wave_table
        at_columns = table.evaluate(table.x - 1, y[:, None])[..., 0]
        weights = np.stack([np.interp(x + 1, table.x, unit) for unit in np.eye(len(table.x))])
        wavelength = at_columns @ weights
        rows = np.flatnonzero(((wavelength >= low_um) & (wavelength <= high_um)).any(axis=1))
        if rows.size == 0:
            raise NoOverlap(
                f"no pixel of this image sees wavelengths between {low_um:g} and {high_um:g} um"
            )
        return Window(window.x0, window.y0 + int(rows[0]), window.x1, window.y0 + int(rows[-1]) + 1)

    def window_ranges(self, window: Window) -> list[tuple[int, int]]:
        """Byte ranges of ``window``'s rows in each plane, plane after plane (rows are
        contiguous in a FITS image, so one range per row and plane)."""
        width = self.shape[1]
        ranges: list[tuple[int, int]] = []
        for plane in self.planes:
            bpp = plane.bytes_per_pixel
            for y in range(window.y0, window.y1):
                start = plane.data_start + (y * width + window.x0) * bpp
                ranges.append((start, start + window.nx * bpp))
        return ranges

    def read_window(self, window: Window) -> dict[str, np.ndarray]:
        """The pixels of ``window`` (inside the frame) in every plane, by EXTNAME (IMAGE,
        FLAGS, VARIANCE, ZODI), as native-endian arrays: only those rows' bytes are read."""
        # One read per plane from the window's first pixel to its last, the columns outside
        # it included: a row of a full-size frame is 8 kB, so one read of a few hundred kB
        # costs less than a system call (or an HTTP request) per row.
        width = self.shape[1]
        spans = []
        for plane in self.planes:
            bpp = plane.bytes_per_pixel
            first = plane.data_start + (window.y0 * width + window.x0) * bpp
            spans.append((first, first + ((window.ny - 1) * width + window.nx) * bpp))
        blocks = self._store.read_ranges(self.key, spans)
        out: dict[str, np.ndarray] = {}
        for plane, block in zip(self.planes, blocks, strict=True):
            dtype = np.dtype(_DTYPES[int(plane.cards["BITPIX"])])
            rows = np.ndarray(
                (window.ny, window.nx),
                dtype,
                block,
                strides=(width * dtype.itemsize, dtype.itemsize),
            )
            out[plane.name] = rows.astype(dtype.newbyteorder("="))
        return out

    def read_plane(self, name: str) -> np.ndarray:
        """One whole plane on the image grid (IMAGE, FLAGS, VARIANCE or ZODI) in one ranged
        read, native-endian, row 0 = FITS row 1."""
        plane = next((p for p in self.planes if p.name == name), None)
        if plane is None:
            raise CutoutError(f"{self.key} has no {name} plane")
        ny, nx = plane.shape
        raw = self._store.read_range(
            self.key, plane.data_start, plane.data_start + ny * nx * plane.bytes_per_pixel
        )
        array = np.frombuffer(raw, _DTYPES[int(plane.cards["BITPIX"])]).reshape(ny, nx)
        return array.astype(array.dtype.newbyteorder("="))

    def read_pixel(self, x: int, y: int) -> dict[str, float | int]:
        """The values of 0-based pixel (x, y) in every plane, by EXTNAME: one ranged read of a
        few bytes per plane."""
        width = self.shape[1]
        ranges = []
        for plane in self.planes:
            start = plane.data_start + (y * width + x) * plane.bytes_per_pixel
            ranges.append((start, start + plane.bytes_per_pixel))
        raws = self._store.read_ranges(self.key, ranges)
        return {
            plane.name: np.frombuffer(raw, _DTYPES[int(plane.cards["BITPIX"])])[0].item()
            for plane, raw in zip(self.planes, raws, strict=True)
        }

    def psf_cube(self) -> np.ndarray:
        """The whole PSF cube (zones, y, x), native-endian, in one ranged read."""
        span = self._psf_span()
        raw = self._store.read_range(self.key, span.data_start, span.data_start + _size(span))
        array = np.frombuffer(raw, _DTYPES[int(span.cards["BITPIX"])]).reshape(span.shape)
        return array.astype(array.dtype.newbyteorder("="))

    @cached_property
    def psf_cards(self) -> dict[str, float]:
        """The numeric cards of the PSF header (``CRPIX1``, ``OVERSAMP``, ``XCTR_k``,
        ``YCTR_k``, ... of spec §2.6), read on first use."""
        span = self._psf_span()
        raw = self._store.read_range(self.key, span.header_start, span.data_start)
        cards: dict[str, float] = {}
        for at in range(0, len(raw), CARD):
            card = raw[at : at + CARD].decode("ascii", "replace")
            if card[8:10] == "= ":
                try:
                    cards[card[:8].strip()] = float(card[10:].split("/")[0])
                except ValueError:
                    continue  # a string or logical card
        return cards

    def psf_plane(self, index: int) -> np.ndarray:
        """Plane ``index`` (0-based, spec §2.6: zone k is plane k - 1) of the PSF cube, read
        alone."""
        span = self._psf_span()
        ny, nx = span.shape[-2:]
        size = ny * nx * span.bytes_per_pixel
        start = span.data_start + index * size
        raw = self._store.read_range(self.key, start, start + size)
        return np.frombuffer(raw, _DTYPES[int(span.cards["BITPIX"])]).reshape(ny, nx)

    def _psf_span(self) -> HduSpan:
        span = next((h for h in self.hdus if h.name == "PSF"), None)
        if span is None or len(span.shape) != 3:
            raise CutoutError(f"{self.key} has no PSF cube")
        return span

    def wavelength_range(self) -> tuple[float, float]:
        """Smallest and largest wavelength (um) of the frame's pixel centres."""
        height, width = self.shape
        x = np.linspace(0, width - 1, 65)
        y = np.linspace(0, height - 1, 65)
        wavelength = self.wave_table.evaluate(x[None, :], y[:, None])[..., 0]
        return float(wavelength.min()), float(wavelength.max())


def _size(span: HduSpan) -> int:
    """Bytes of an HDU's data without the padding."""
    return math.prod(span.shape) * span.bytes_per_pixel


# --------------------------------------------------------------------------------------------
# Reading a file's layout (cached: archive files never change under their name)

_CACHE_SIZE = 256
_cache: OrderedDict[tuple[int, str, str | None], SpectralImage] = OrderedDict()
_cache_lock = threading.Lock()


def open_image(store: Store, entry: Entry) -> SpectralImage:
    """The layout of the file ``entry`` of ``store``, from its headers (read once per file
    version: the cache is keyed by the entity tag)."""
    cache_key = (id(store), entry.key, entry.etag)
    with _cache_lock:
        image = _cache.get(cache_key)
        if image is not None:
            _cache.move_to_end(cache_key)
            return image
    image = _read_layout(store, entry)
    with _cache_lock:
        _cache[cache_key] = image
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return image


def _read_layout(store: Store, entry: Entry) -> SpectralImage:
    hdus: list[HduSpan] = []
    headers: dict[int, bytes] = {}
    buffer, buffer_start = b"", 0
    offset = 0
    while offset < entry.size:
        # Extend the buffer until it holds this HDU's whole header.
        if not (buffer_start <= offset < buffer_start + len(buffer)):
            step = HEADER_READ if offset == 0 else NEXT_HEADER_READ
            buffer = store.read_range(entry.key, offset, min(offset + step, entry.size))
            buffer_start = offset
        raw = _header_at(store, entry, buffer, buffer_start, offset)
        cards = structural_cards(raw)
        index = len(hdus)
        if index == 0 and not raw.startswith(b"SIMPLE  ="):
            raise CutoutError(f"{entry.key} is not a FITS file")
        name = cards.get("EXTNAME", "PRIMARY" if index == 0 else "")
        data_start = offset + len(raw)
        span = HduSpan(index, name, offset, data_start, data_start + data_size(cards), cards)
        hdus.append(span)
        headers[index] = raw
        offset = span.end
    if not hdus or offset != entry.size:
        raise CutoutError(f"{entry.key} is not a whole FITS file")
    # The pixel grid: the IMAGE extension of a spectral image, else a file's first 2-D image
    # (calibration maps), as IRSA's cutout service cuts any FITS image.
    grids = [h for h in hdus if len(h.shape) == 2 and h.cards.get("XTENSION", "IMAGE") == "IMAGE"]
    image = next((h for h in grids if h.name == "IMAGE"), grids[0] if grids else None)
    if image is None:
        raise CutoutError(f"{entry.key} has no 2-D image to cut")
    planes = [h for h in hdus if h.shape == image.shape and "ZIMAGE" not in h.cards]
    # Keep only the headers that are rewritten (planes) or copied first (PRIMARY).
    wanted = {0, *(p.index for p in planes)}
    headers = {i: raw for i, raw in headers.items() if i in wanted}
    return SpectralImage(entry.key, entry.size, entry.etag, hdus, headers, planes, store)


def _header_at(store: Store, entry: Entry, buffer: bytes, buffer_start: int, offset: int) -> bytes:
    """The header starting at ``offset``, reading further blocks when the buffer ends first."""
    position = offset - buffer_start
    end = _end_card(buffer, position)
    while end is None:
        if buffer_start + len(buffer) >= entry.size:
            raise CutoutError(f"{entry.key} ends inside a header")
        more = store.read_range(
            entry.key,
            buffer_start + len(buffer),
            min(buffer_start + len(buffer) + NEXT_HEADER_READ, entry.size),
        )
        buffer += more
        end = _end_card(buffer, position)
    return buffer[position:end]


def _end_card(buffer: bytes, start: int) -> int | None:
    """Offset just past the block holding the END card of the header at ``start``."""
    for block in range(start, len(buffer) - BLOCK + 1, BLOCK):
        for card in range(block, block + BLOCK, CARD):
            if buffer[card : card + 8] == b"END     ":
                return block + BLOCK
    return None


# --------------------------------------------------------------------------------------------
# Making the cutout


@dataclass
class Cutout:
    """A cutout ready to send: literal bytes (edited headers, cropped pixels) and byte ranges
    of the parent copied as they are (PRIMARY, PSF, WCS-WAVE)."""

    image: SpectralImage
    window: Window
    parts: list[bytes | tuple[int, int]]

    @property
    def size(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in self.parts)

    def iter_bytes(self, store: Store, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The FITS file, piece by piece; copied HDUs are read from the store as they go."""
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from store.iter_range(self.image.key, part[0], part[1], chunk_size)

    def to_bytes(self, store: Store) -> bytes:
        return b"".join(self.iter_bytes(store))


def cut(store: Store, image: SpectralImage, window: Window, *, number: int | None = None) -> Cutout:
    """The cutout of ``image`` over ``window`` (already inside the frame).

    With ``number``, the HDUs are named as clients name them when they stack cutouts in one
    file (``IMAGE3``, ``FLAGS3``, ..., ``WCS-WAVE3``, spec §2.8), the PRIMARY is left out, and
    the spectral WCS's table reference (``PSn_0W``) follows the table's new name, so
    ``WCS(header, fobj=hdul, key='W')`` still works on the stacked file.
    """
    height, width = image.shape
    if not (0 <= window.x0 < window.x1 <= width and 0 <= window.y0 < window.y1 <= height):
        raise CutoutError(f"window {window} is outside the {width} x {height} frame")
    plane_indexes = {p.index for p in image.planes}
    ranges = image.window_ranges(window)
    rows = store.read_ranges(image.key, ranges)
    per_plane = window.ny

    parts: list[bytes | tuple[int, int]] = []
    if number is not None and 0 in plane_indexes:
        raise CutoutError(f"{image.key} keeps its image in the PRIMARY: it cannot be stacked")
    for span in image.hdus:
        if span.index == 0 and span.index not in plane_indexes:
            if number is None:
                # A data-less PRIMARY is already in memory: no request for it.
                empty = span.end == span.data_start
                parts.append(image.headers[0] if empty else (span.header_start, span.end))
            continue
        if span.index in plane_indexes:
            k = [p.index for p in image.planes].index(span.index)
            pixels = b"".join(rows[k * per_plane : (k + 1) * per_plane])
            header = _edit_header(image.headers[span.index], window, number)
            parts.append(header)
            parts.append(pixels + b"\0" * (-len(pixels) % BLOCK))
        elif number is None:
            parts.append((span.header_start, span.end))
        else:  # renamed: the header is edited, the data copied
            raw = store.read_range(image.key, span.header_start, span.data_start)
            parts.append(_rename(raw, number))
            if span.end > span.data_start:
                parts.append((span.data_start, span.end))
    return Cutout(image, window, _merged(parts))


def _merged(parts: list[bytes | tuple[int, int]]) -> list[bytes | tuple[int, int]]:
    """Adjacent copied ranges as one (PSF and WCS-WAVE: one request to an object store)."""
    out: list[bytes | tuple[int, int]] = []
    for part in parts:
        last = out[-1] if out else None
        if isinstance(part, tuple) and isinstance(last, tuple) and last[1] == part[0]:
            out[-1] = (last[0], part[1])
        else:
            out.append(part)
    return out


def _edit_header(raw: bytes, window: Window, number: int | None) -> bytes:
    updates: dict[str, object] = {"NAXIS1": window.nx, "NAXIS2": window.ny}
    shifts = {"1": window.x0, "2": window.y0}
    for key in SHIFTED:
        card = _find_card(raw, key)
        if card is not None:
            updates[key] = _card_value(raw, card) - shifts[key[5]]
    edited = _set_cards(raw, updates)
    return _rename(edited, number) if number is not None else edited


def _rename(raw: bytes, number: int | None) -> bytes:
    """EXTNAME gets the cutout's number; a spectral WCS's table reference follows the table."""
    updates: dict[str, object] = {}
    name = _find_card(raw, "EXTNAME")
    if name is not None:
        updates["EXTNAME"] = f"{_card_value(raw, name)}{number}"
    for axis in ("1", "2"):
        ref = _find_card(raw, f"PS{axis}_0W")
        if ref is not None and _card_value(raw, ref) == TABLE_NAME:
            updates[f"PS{axis}_0W"] = f"{TABLE_NAME}{number}"
    return _set_cards(raw, updates)


def _find_card(raw: bytes, key: str) -> int | None:
    """Offset of the card ``key`` (keyword cards only: ``KEY     = ``)."""
    pattern = f"{key:<8}= ".encode("ascii")
    at = raw.find(pattern)
    while at != -1 and at % CARD:
        at = raw.find(pattern, at + 1)
    return None if at == -1 else at


def _card_value(raw: bytes, offset: int):
    return _parsed_card(raw[offset : offset + CARD])[0]


@lru_cache(maxsize=4096)
def _parsed_card(card: bytes) -> tuple[object, str]:
    """Value and comment of one card. Cached: the same few cards of a file are edited for each
    of its cutouts, and an astropy Card costs about 0.1 ms (most of a cutout's time)."""
    parsed = fits.Card.fromstring(card.decode("ascii"))
    return parsed.value, parsed.comment


def _set_cards(raw: bytes, updates: dict[str, object]) -> bytes:
    """``raw`` with the value of each card in ``updates`` replaced in its own 80-byte slot,
    its comment kept (shortened if the new value needs the room). The value field is written
    by astropy's own formatter, as ``fits.Card(...).image`` writes it, without building a Card."""
    out = bytearray(raw)
    for key, value in updates.items():
        offset = _find_card(raw, key)
        if offset is None:
            continue
        comment = _parsed_card(raw[offset : offset + CARD])[1]
        image = f"{key:<8}= {_format_value(value)}" + (f" / {comment}" if comment else "")
        out[offset : offset + CARD] = image[:CARD].encode("ascii").ljust(CARD)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Sky regions (SODA's CIRCLE, POLYGON and POS) as pixel windows


def shape_window(image: SpectralImage, shape: Shape) -> Window:
    """The pixel window of ``image`` covering a DALI shape (``CIRCLE ra dec r``, ``POLYGON
    ra dec ...``, ``RANGE ra1 ra2 dec1 dec2``; degrees), trimmed to the frame."""
    corner_ra, corner_dec = image.corners()
    corners = unit_vectors(corner_ra, corner_dec)
    if shape.kind == "CIRCLE":
        ra, dec, radius = shape.numbers
        if not 0 < radius < 180:
            raise CutoutError(f"a circle's radius must be between 0 and 180 deg, not {radius:g}")
        centre = unit_vectors([ra], [dec])[0]
        inside = _angle(centre, corners) <= math.radians(radius)
        boundary = _circle_points(centre, math.radians(radius))
    elif shape.kind == "POLYGON":
        vertices = unit_vectors(shape.numbers[::2], shape.numbers[1::2])
        inside = _polygon_contains(vertices, corners)
        boundary = _polygon_points(vertices)
    elif shape.kind == "RANGE":
        ra1, ra2, dec1, dec2 = shape.numbers
        if ra1 > ra2 or dec1 > dec2:
            raise CutoutError("a RANGE's bounds must be in increasing order")
        dec1, dec2 = max(dec1, -90.0), min(dec2, 90.0)
        full = ra2 - ra1 >= 360
        ra1, ra2 = (0.0, 360.0) if full else (ra1, ra2)
        span = (np.asarray(corner_ra) - ra1) % 360
        inside = (span <= (ra2 - ra1)) & (corner_dec >= dec1) & (corner_dec <= dec2)
        boundary = _range_points(ra1, ra2, dec1, dec2, full)
    else:
        raise CutoutError(f"unknown shape {shape.kind}")
    ra, dec = to_radec(boundary)
    return image.region(np.column_stack([ra, dec]), np.asarray(inside))


STEP = math.radians(0.05)
"""Spacing of boundary points: a straight line between two of them stays well within a pixel
(6.15 arcsec) of a circle or parallel it approximates."""


def _circle_points(centre: np.ndarray, radius: float) -> np.ndarray:
    axis = np.array([0.0, 0.0, 1.0]) if abs(centre[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(centre, axis)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    n = int(min(max(64, 2 * math.pi * math.sin(radius) / STEP), 20000))
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)[:, None]
    return math.cos(radius) * centre + math.sin(radius) * (np.cos(t) * e1 + np.sin(t) * e2)


def _polygon_points(vertices: np.ndarray) -> np.ndarray:
    """Vertices and points along each great-circle edge (SIP bends the edges on the grid)."""
    points = []
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        t = np.linspace(0.0, 1.0, 16, endpoint=False)[:, None]
        chord = a + t * (b - a)
        points.append(chord / np.linalg.norm(chord, axis=1, keepdims=True))
    return np.concatenate(points)


def _polygon_contains(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd test in the gnomonic projection about the polygon's mean direction, where
    great-circle edges are straight lines (polygons smaller than a hemisphere)."""
    mean = vertices.sum(axis=0)
    mean /= np.linalg.norm(mean)
    axis = np.array([0.0, 0.0, 1.0]) if abs(mean[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(mean, axis)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(mean, e1)

    def plane(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth = v @ mean
        return (v @ e1) / depth, (v @ e2) / depth

    vx, vy = plane(vertices)
    px, py = plane(points)
    inside = np.zeros(len(points), bool)
    for i in range(len(vertices)):
        x1, y1, x2, y2 = vx[i], vy[i], vx[i - 1], vy[i - 1]
        crosses = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < at)
    return inside & (points @ mean > 0)


def _range_points(ra1: float, ra2: float, dec1: float, dec2: float, full: bool) -> np.ndarray:
    n_ra = int(min(max(16, math.radians(ra2 - ra1) / STEP), 7200))
    n_dec = int(min(max(16, math.radians(dec2 - dec1) / STEP), 3600))
    ras = np.linspace(ra1, ra2, n_ra)
    decs = np.linspace(dec1, dec2, n_dec)
    parts = [unit_vectors(ras, np.full(n_ra, dec1)), unit_vectors(ras, np.full(n_ra, dec2))]
    if not full:
        parts += [unit_vectors(np.full(n_dec, ra1), decs), unit_vectors(np.full(n_dec, ra2), decs)]
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------
# Spherical helpers


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (radians) between unit vector ``a`` and each row of ``b``."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), b @ a)
