"""Forced spectrophotometry: a source's SPHEREx spectrum from every spectral image covering it.

For a position, the catalogue's spatial index gives the images whose footprint contains it (one
ADQL query through the query engine, built by SIA's query builder, so TIME, BAND and COLLECTION
mean what they mean in SIA). From each file the cutout engine reads only the headers (cached),
the ``2 r + 1`` pixel square around the source in IMAGE, FLAGS, VARIANCE and ZODI, and the one
PSF plane of the source's zone (spec §2.6: the zone whose ``XCTR_k``/``YCTR_k`` is nearest).

Each image gives one measurement:

- the PSF plane (oversampled x ``OVERSAMP``) is laid on the detector grid at the source's
  sub-pixel position: each oversampled sample goes to the detector pixel holding its centre,
  which integrates the PSF over the pixels (the generator injects sources the same way);
- the background is the ZODI model plus the 3-sigma-clipped mean of the residual (IMAGE - ZODI)
  in an annulus from just outside the PSF stamp to ``bkg_region_size`` pixels;
- pixels whose FLAGS carry an unusable bit (``products.flags``: every bit but the
  informational ones) or whose value is not finite are left out;
- ``psf``: the flux is the VARIANCE-weighted least-squares amplitude of the PSF model;
  ``aperture``: the sum over the usable pixels within ``APERTURE_RADIUS`` divided by the PSF's
  share of those same pixels (the aperture correction, which also corrects for masked pixels);
- MJy/sr becomes uJy with the solid angle of the source's pixel, from the celestial WCS (SIP
  included): what the ``solid_angle_pixel_map`` calibration holds, to 1e-7;
- the wavelength and bandwidth at the source's pixel come from the WCS-WAVE table.

The measurements are then binned onto the 102 SPHEREx channels (17 per detector, equally spaced
in log wavelength over the detector's band, as the ``spectral_channels`` calibration defines
them) with inverse-variance weighted means, rejecting measurements far from a channel's median.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from spherex_archive.adql import tree as t
from spherex_archive.adql.parser import parse
from spherex_archive.ingest.rows import URI_PREFIX
from spherex_archive.model.schema import Column
from spherex_archive.products.detectors import CHANNELS_PER_DETECTOR, DETECTORS
from spherex_archive.products.fitsfile import parse_header
from spherex_archive.products.flags import flags_from_header, unusable_mask_value
from spherex_archive.services import sia
from spherex_archive.services.cutout import SpectralImage, open_image
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.shapes import ValueProblem, number
from spherex_archive.store import Store

ARCSEC2_PER_SR = (180.0 / math.pi * 3600.0) ** 2
UJY_TO_MJY = 1e-12

METHODS = ("psf", "aperture")
DEFAULT_BKG_REGION_SIZE = 15
"""IRSA's default BKG_REGION_SIZE; here the outer radius of the background annulus, pixels."""
MIN_BKG_REGION_SIZE = 8
MAX_BKG_REGION_SIZE = 100
APERTURE_RADIUS = 2.0
"""Pixels: holds 80-95 % of a point source's light, from D1 to D6."""
FOOTPRINT_FRACTION = 0.01
"""A pixel is under the source's footprint (flags, n_masked) when it holds this much of it."""
MIN_BKG_PIXELS = 20
CLIP_SIGMA = 3.0
REJECT_SIGMA = 5.0
"""Binning: a measurement this many (combined) sigmas from its channel's median is rejected."""
LOW_COVERAGE = 0.5
"""Below this share of the PSF on usable pixels, a measurement is kept out of the spectrum."""

# Quality bits of a measurement.
Q_MASKED = 1
"""Unusable pixels under the footprint (left out of the fit)."""
Q_EDGE = 2
"""Part of the PSF falls off the image."""
Q_LOW_COVERAGE = 4
"""Less than half of the PSF on usable pixels: not used in the binned spectrum."""
Q_BACKGROUND = 8
"""Fewer than MIN_BKG_PIXELS usable annulus pixels: the background is ZODI alone."""


class SpectrophotometryError(ValueProblem):
    """A request the service cannot run; the message says why."""


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Source:
    id: str
    ra: float
    dec: float


@dataclass(frozen=True)
class Options:
    bkg_region_size: int = DEFAULT_BKG_REGION_SIZE
    method: str = "psf"
    time: tuple[str, ...] = ()
    """SIA TIME values: ``lo hi`` MJD intervals (ORed)."""
    band: tuple[str, ...] = ()
    """SIA BAND values: ``lo hi`` wavelength intervals in metres (ORed)."""
    collections: tuple[str, ...] = ()
    """obs_collection values (ORed); none: every collection of spectral images."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SpectrophotometryError(
                f"METHOD: {self.method!r} is not one of {', '.join(METHODS)}"
            )
        if not MIN_BKG_REGION_SIZE <= self.bkg_region_size <= MAX_BKG_REGION_SIZE:
            raise SpectrophotometryError(
                f"BKG_REGION_SIZE: {self.bkg_region_size} is not between "
                f"{MIN_BKG_REGION_SIZE} and {MAX_BKG_REGION_SIZE} pixels"
            )
        try:
            for value in self.time:
                sia.interval(value, "TIME")
            self.band_intervals()
        except ValueProblem as error:
            raise SpectrophotometryError(str(error)) from None

    def band_intervals(self) -> list[tuple[float, float]]:
        """BAND intervals in metres."""
        return [sia.interval(value, "BAND") for value in self.band]


def parse_point(text: str, name: str = "POINT") -> tuple[float, float]:
    """``ra,dec`` in degrees (IRSA's syntax; blanks also separate)."""
    words = text.replace(",", " ").split()
    if len(words) != 2:
        raise SpectrophotometryError(f"{name}: expected 'ra,dec' in degrees, not {text!r}")
    try:
        ra, dec = (number(w, name) for w in words)
    except ValueProblem as error:
        raise SpectrophotometryError(str(error)) from None
    if not (0 <= ra <= 360 and -90 <= dec <= 90) or not all(map(math.isfinite, (ra, dec))):
        raise SpectrophotometryError(
            f"{name}: ({ra:g}, {dec:g}) is outside RA 0..360, Dec -90..90 degrees"
        )
    return ra, dec


def read_sources(path: Path) -> list[Source]:
    """Positions from a table astropy reads (VOTable, FITS, ECSV, CSV...): columns ``ra``,
    ``dec`` (degrees) and, optionally, ``id``, ``source_id`` or ``name``."""
    from astropy.table import Table

    try:
        table = Table.read(path, format=_table_format(path))
    except Exception as error:
        raise SpectrophotometryError(f"the table of sources cannot be read: {error}") from None
    names = {n.lower(): n for n in table.colnames}
    if "ra" not in names or "dec" not in names:
        raise SpectrophotometryError(
            f"the table of sources needs ra and dec columns (degrees), it has {table.colnames}"
        )
    ids = next((names[n] for n in ("id", "source_id", "name") if n in names), None)
    sources = []
    for i, row in enumerate(table, start=1):
        ra, dec = parse_point(f"{row[names['ra']]} {row[names['dec']]}", f"row {i}")
        sources.append(Source(str(row[ids]).strip() if ids else str(i), ra, dec))
    return sources


def _table_format(path: Path) -> str | None:
    head = path.read_bytes()[:512].lstrip()
    if head.startswith(b"<?xml") or head.startswith(b"<VOTABLE"):
        return "votable"
    if head.startswith(b"SIMPLE"):
        return "fits"
    if head.startswith(b"# %ECSV"):
        return "ascii.ecsv"
    return "ascii.csv" if b"," in head.split(b"\n")[0] else "ascii"


# --------------------------------------------------------------------------------------------
# Results


def _column(name: str, datatype: str, description: str, unit: str | None = None, ucd=None):
    return Column(name, datatype, description, unit=unit, ucd=ucd)


MEASUREMENT_COLUMNS = (
    _column(
        "source_id", "char", "Identifier of the source (as given, or its rank)", None, "meta.id"
    ),
    _column("ra", "double", "Right ascension of the forced position (ICRS)", "deg", "pos.eq.ra"),
    _column("dec", "double", "Declination of the forced position (ICRS)", "deg", "pos.eq.dec"),
    _column(
        "obs_publisher_did",
        "char",
        "Dataset id of the spectral image (DataLink and SODA ID)",
        None,
        "meta.ref.ivoid",
    ),
    _column("obs_id", "char", "Observation (exposure) id", None, "meta.id"),
    _column("obs_collection", "char", "Collection of the image", None, "meta.id"),
    _column("detector", "short", "Detector (1-6)", None, "meta.id;instr.det"),
    _column("mjd", "double", "Mid-exposure time MJD-AVG (UTC)", "d", "time.epoch;obs.exposure"),
    _column(
        "wavelength",
        "double",
        "Central wavelength at the source's pixel (WCS-WAVE table)",
        "um",
        "em.wl;stat.mean",
    ),
    _column(
        "bandwidth",
        "double",
        "Bandwidth (top-hat width) at the source's pixel (WCS-WAVE table)",
        "um",
        "instr.bandwidth",
    ),
    _column("flux", "double", "Flux density f_nu of the source", "uJy", "phot.flux.density"),
    _column("flux_error", "double", "1-sigma error of flux", "uJy", "stat.error;phot.flux.density"),
    _column(
        "background",
        "double",
        "Local background at the source: ZODI plus the clipped annulus residual",
        "MJy/sr",
        "phot.flux.density.sb;instr.skyLevel",
    ),
    _column(
        "background_residual",
        "double",
        "Clipped mean of IMAGE - ZODI in the background annulus",
        "MJy/sr",
        "phot.flux.density.sb;instr.skyLevel;arith.diff",
    ),
    _column(
        "flags",
        "int",
        "OR of the FLAGS bits of the pixels under the footprint (spec 2.4)",
        None,
        "meta.code.qual",
    ),
    _column(
        "n_masked",
        "short",
        "Unusable pixels under the footprint (left out)",
        None,
        "meta.number",
    ),
    _column(
        "psf_fraction",
        "float",
        "Share of the PSF on usable pixels of the fit (psf) or aperture (aperture)",
        None,
        "arith.ratio",
    ),
    _column(
        "quality",
        "short",
        "Quality bits: 1 masked pixels, 2 off the image edge, 4 under half the PSF usable "
        "(not in the spectrum), 8 background from ZODI alone",
        None,
        "meta.code.qual",
    ),
    _column(
        "chi2",
        "float",
        "Reduced chi-squared of the scaled PSF model over the fitted pixels",
        None,
        "stat.fit.chi2",
    ),
    _column("x", "double", "Source column in the image (0-based pixel)", "pix", "pos.cartesian.x"),
    _column("y", "double", "Source row in the image (0-based pixel)", "pix", "pos.cartesian.y"),
    _column(
        "psf_zone", "short", "PSF zone k (1-121) used: plane k of the PSF cube", None, "meta.id"
    ),
    _column("method", "char", "psf (PSF fit) or aperture", None, "meta.code"),
)

SPECTRUM_COLUMNS = (
    MEASUREMENT_COLUMNS[0],
    _column("channel", "short", "SPHEREx channel (1-102; 17 per detector)", None, "meta.id"),
    _column("detector", "short", "Detector (1-6)", None, "meta.id;instr.det"),
    _column(
        "wavelength",
        "double",
        "Weighted mean wavelength of the measurements used",
        "um",
        "em.wl;stat.mean",
    ),
    _column("wavelength_min", "double", "Lower edge of the channel", "um", "em.wl;stat.min"),
    _column("wavelength_max", "double", "Upper edge of the channel", "um", "em.wl;stat.max"),
    _column(
        "flux", "double", "Inverse-variance weighted mean flux density", "uJy", "phot.flux.density"
    ),
    _column("flux_error", "double", "1-sigma error of flux", "uJy", "stat.error;phot.flux.density"),
    _column("n_used", "int", "Measurements averaged", None, "meta.number"),
    _column("n_rejected", "int", "Measurements rejected as outliers", None, "meta.number"),
    _column(
        "chi2",
        "float",
        "Reduced chi-squared of the used measurements about the mean",
        None,
        "stat.fit.chi2",
    ),
)


@dataclass(frozen=True)
class Plane:
    """A spectral image containing the source, as the catalogue knows it."""

    did: str
    obs_id: str
    collection: str
    key: str
    """The file's key in the store."""


@dataclass(frozen=True)
class Measurement:
    source: Source
    plane: Plane
    detector: int
    mjd: float
    wavelength: float
    bandwidth: float
    flux: float
    flux_error: float
    background: float
    background_residual: float
    flags: int
    n_masked: int
    psf_fraction: float
    quality: int
    chi2: float
    x: float
    y: float
    psf_zone: int
    method: str

    def row(self) -> tuple:
        return (
            self.source.id,
            self.source.ra,
            self.source.dec,
            self.plane.did,
            self.plane.obs_id,
            self.plane.collection,
            self.detector,
            self.mjd,
            self.wavelength,
            self.bandwidth,
            self.flux,
            self.flux_error,
            self.background,
            self.background_residual,
            self.flags,
            self.n_masked,
            self.psf_fraction,
            self.quality,
            self.chi2,
            self.x,
            self.y,
            self.psf_zone,
            self.method,
        )

    @property
    def usable(self) -> bool:
        """Whether it goes into the binned spectrum."""
        return (
            math.isfinite(self.flux) and self.flux_error > 0 and not self.quality & Q_LOW_COVERAGE
        )


@dataclass(frozen=True)
class ChannelPoint:
    source: Source
    channel: int
    detector: int
    wavelength: float
    wavelength_min: float
    wavelength_max: float
    flux: float
    flux_error: float
    n_used: int
    n_rejected: int
    chi2: float

    def row(self) -> tuple:
        return (self.source.id, *dataclasses.astuple(self)[1:])


# --------------------------------------------------------------------------------------------
# Finding the images


@lru_cache(maxsize=1)
def _select() -> t.Select:
    body = parse('SELECT obs_publisher_did, obs_id, obs_collection, "_uri" FROM spherex.obscore')
    return body.body


def plane_query(source: Source, options: Options, collections: Sequence[str]) -> t.Query:
    """The ADQL of the spectral images containing ``source`` that pass the filters (SIA's
    builder; ``collections``: the archive's, to refuse an unknown one)."""
    params: dict[str, list[str]] = {
        "POS": [f"CIRCLE {float(source.ra)!r} {float(source.dec)!r} 0"],
        "DPTYPE": ["image"],
        "CALIB": ["2"],
        "TIME": list(options.time),
        "BAND": list(options.band),
        "COLLECTION": list(options.collections),
    }
    where = parse(sia.build_adql(params, collections)).body.where
    return t.Query(dataclasses.replace(_select(), where=where))


def find_planes(engine: QueryEngine, source: Source, options: Options) -> list[Plane]:
    """The spectral images whose footprint contains ``source``, through the spatial index."""
    try:
        query = plane_query(source, options, engine.catalogue.collections())
    except ValueProblem as error:  # SIA's words for a bad TIME, BAND or COLLECTION
        raise SpectrophotometryError(str(error)) from None
    answer = engine.run(query, internal=True)
    planes = [
        Plane(did, obs, coll, uri.removeprefix(URI_PREFIX)) for did, obs, coll, uri in answer.rows
    ]
    return sorted(planes, key=lambda p: p.did)


# --------------------------------------------------------------------------------------------
# Measuring one image


def psf_on_pixels(
    plane: np.ndarray,
    x: float,
    y: float,
    centre: tuple[float, float],
    oversampling: int,
    shape: tuple[int, int],
) -> np.ndarray:
    """The share of the source's flux in each pixel of a ``shape`` window for a source at
    window pixel (``x``, ``y``): each oversampled sample (``centre``: the sample at the PSF's
    centre, 0-based x, y) goes to the pixel holding its centre. Samples off the window are
    lost, so the sum is the PSF's share on the window."""
    ny, nx = shape
    offsets_x = (np.arange(plane.shape[1]) - centre[0]) / oversampling
    offsets_y = (np.arange(plane.shape[0]) - centre[1]) / oversampling
    cols = np.floor(x + offsets_x + 0.5).astype(np.int64)
    rows = np.floor(y + offsets_y + 0.5).astype(np.int64)
    to_cols = (cols[:, None] == np.arange(nx)[None, :]).astype(np.float64)
    to_rows = (rows[:, None] == np.arange(ny)[None, :]).astype(np.float64)
    return to_rows.T @ plane.astype(np.float64) @ to_cols


def pixel_solid_angle(image: SpectralImage, x: float, y: float) -> float:
    """Solid angle (sr) of the pixel holding (x, y), from the celestial WCS (SIP included)."""
    cx, cy = float(round(x)), float(round(y))
    ra, dec = image.world([cx + 0.5, cx - 0.5, cx, cx], [cy, cy, cy + 0.5, cy - 0.5])
    ra, dec = np.radians(ra), np.radians(dec)
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)
    return float(np.linalg.norm(np.cross(v[0] - v[1], v[2] - v[3])))


_CONSTANTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _image_constants(image: SpectralImage) -> tuple[np.ndarray, np.ndarray, int]:
    """The PSF zone centres (x, y) and the unusable-flags mask of a file: the same for every
    source measured in it, kept as long as the cutout engine keeps the file's layout."""
    found = _CONSTANTS.get(image)
    if found is None:
        cards = image.psf_cards
        zones = sum(1 for k in cards if k.startswith("XCTR_"))
        xctr = np.array([cards[f"XCTR_{k}"] for k in range(1, zones + 1)])
        yctr = np.array([cards[f"YCTR_{k}"] for k in range(1, zones + 1)])
        flags_index = next(p.index for p in image.planes if p.name == "FLAGS")
        found = (
            xctr,
            yctr,
            unusable_mask_value(flags_from_header(parse_header(image.headers[flags_index]))),
        )
        _CONSTANTS[image] = found  # a race computes it twice, harmlessly
    return found


def clipped_mean(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, error of the mean and count after iterative clipping at CLIP_SIGMA about the
    median."""
    kept = values
    for _ in range(5):
        centre, spread = np.median(kept), np.std(kept)
        inside = values[np.abs(values - centre) <= CLIP_SIGMA * spread]
        if len(inside) == len(kept) or len(inside) < 3:
            break
        kept = inside
    return float(np.mean(kept)), float(np.std(kept) / math.sqrt(len(kept))), len(kept)


def measure_image(
    store: Store, plane: Plane, source: Source, options: Options
) -> Measurement | None:
    """The measurement of ``source`` in one image; None when it falls off the pixel grid."""
    image = open_image(store, store.stat(plane.key))
    px, py = image.pixels([source.ra], [source.dec])
    x, y = float(px[0]), float(py[0])
    ny, nx = image.shape
    if not (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
        return None
    size = 2 * options.bkg_region_size + 1
    window = image.box((x, y), (size, size), pixel_centre=True, pixel_size=True)
    pixels = image.read_window(window)
    header = image.image_values

    # The PSF of the nearest zone, on the window's pixels.
    cards = image.psf_cards
    xctr, yctr, bad = _image_constants(image)
    zone = int(np.argmin((xctr - x) ** 2 + (yctr - y) ** 2))
    psf = image.psf_plane(zone)
    centre = (
        cards.get("CRPIX1", psf.shape[1] // 2 + 1) - 1,
        cards.get("CRPIX2", psf.shape[0] // 2 + 1) - 1,
    )
    oversampling = int(cards.get("OVERSAMP", 10))
    wx, wy = x - window.x0, y - window.y0
    weight = psf_on_pixels(psf, wx, wy, centre, oversampling, (window.ny, window.nx))

    flags = pixels["FLAGS"].astype(np.int64)
    residual = pixels["IMAGE"].astype(np.float64) - pixels["ZODI"]
    variance = pixels["VARIANCE"].astype(np.float64)
    usable = ((flags & bad) == 0) & np.isfinite(residual) & np.isfinite(variance) & (variance > 0)

    # Background: the clipped annulus residual, from just outside the PSF stamp.
    yy, xx = np.mgrid[0 : window.ny, 0 : window.nx]
    radius = np.hypot(xx - wx, yy - wy)
    stamp = max(psf.shape) / 2 / oversampling
    annulus = usable & (radius >= stamp + 1) & (radius <= options.bkg_region_size)
    quality = 0
    if annulus.sum() >= MIN_BKG_PIXELS:
        level, level_error, _ = clipped_mean(residual[annulus])
    else:
        level, level_error = 0.0, 0.0
        quality |= Q_BACKGROUND
    data = residual - level

    footprint = weight >= FOOTPRINT_FRACTION
    n_masked = int(np.count_nonzero(footprint & ~usable))
    if n_masked:
        quality |= Q_MASKED
    if weight.sum() < 0.99:
        quality |= Q_EDGE

    omega = pixel_solid_angle(image, x, y)
    model = weight * UJY_TO_MJY / omega  # MJy/sr per uJy
    if options.method == "psf":
        fit = usable & (weight > 0)
        share = float(weight[fit].sum())
        m, d, v = model[fit], data[fit], variance[fit]
        norm = float(np.sum(m * m / v))
        if norm > 0:
            flux = float(np.sum(m * d / v) / norm)
            leverage = float(np.sum(m / v)) / norm
            error = math.sqrt(1 / norm + (leverage * level_error) ** 2)
        else:
            flux = error = math.nan
    else:
        aperture = radius <= APERTURE_RADIUS
        fit = usable & aperture
        total = float(weight[aperture].sum())
        share = float(weight[fit].sum()) / total if total > 0 else 0.0
        m, d, v = model[fit], data[fit], variance[fit]
        scale = float(m.sum())
        if scale > 0:
            flux = float(d.sum()) / scale
            error = math.sqrt(float(v.sum()) + (len(d) * level_error) ** 2) / scale
        else:
            flux = error = math.nan
    if share < LOW_COVERAGE:
        quality |= Q_LOW_COVERAGE
    chi2 = (
        float(np.sum((d - flux * m) ** 2 / v) / (len(d) - 1))
        if len(d) > 1 and math.isfinite(flux)
        else math.nan
    )
    wavelength, bandwidth = image.wave_table.evaluate(x, y)
    return Measurement(
        source=source,
        plane=plane,
        detector=int(header["DETECTOR"]),
        mjd=float(header["MJD-AVG"]),
        wavelength=float(wavelength),
        bandwidth=float(bandwidth),
        flux=flux,
        flux_error=error,
        background=float(pixels["ZODI"][round(wy), round(wx)]) + level,
        background_residual=level,
        flags=int(np.bitwise_or.reduce(flags[footprint])) if footprint.any() else 0,
        n_masked=n_masked,
        psf_fraction=share,
        quality=quality,
        chi2=chi2,
        x=x,
        y=y,
        psf_zone=zone + 1,
        method=options.method,
    )


# --------------------------------------------------------------------------------------------
# A source, a list of sources


def measure_source(
    store: Store,
    engine: QueryEngine,
    source: Source,
    options: Options,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[Measurement]:
    """Every measurement of ``source``, sorted by time and detector (BAND also applies to each
    measurement's own wavelength: an image's band is the whole detector's)."""
    planes = find_planes(engine, source, options)
    bands = options.band_intervals()
    with ThreadPoolExecutor(min(store.parallel_reads, max(1, len(planes)))) as pool:
        found = []
        for measurement in pool.map(lambda p: measure_image(store, p, source, options), planes):
            if should_stop():
                break
            if measurement is not None:
                found.append(measurement)
    if bands:
        found = [m for m in found if any(lo <= m.wavelength * 1e-6 <= hi for lo, hi in bands)]
    return sorted(found, key=lambda m: (m.mjd, m.detector))


def measure_sources(
    store: Store,
    engine: QueryEngine,
    sources: Iterable[Source],
    options: Options,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Measurement]:
    """Measurements of each source in turn, here."""
    found: list[Measurement] = []
    for done, source in enumerate(sources, start=1):
        if should_stop():
            break
        found.extend(measure_source(store, engine, source, options, should_stop))
        progress(done)
    return found


_OPENED: dict[tuple, tuple[Store, QueryEngine]] = {}


def _opened(catalogue_url: str, data: str, storage: Mapping) -> tuple[Store, QueryEngine]:
    """The store and query engine of a Dask worker process, opened once per process."""
    from spherex_archive.catalogue import open_catalogue
    from spherex_archive.store import open_store

    key = (catalogue_url, data, tuple(sorted((k, repr(v)) for k, v in storage.items())))
    if key not in _OPENED:
        _OPENED[key] = (open_store(data, **storage), QueryEngine(open_catalogue(catalogue_url)))
    return _OPENED[key]


def _measure_chunk(
    catalogue_url: str, data: str, storage: dict, sources: list[Source], options: Options
) -> list[Measurement]:
    store, engine = _opened(catalogue_url, data, storage)
    return measure_sources(store, engine, sources, options)


def measure_on_dask(
    client,
    catalogue_url: str,
    data: str,
    sources: Sequence[Source],
    options: Options,
    *,
    storage: dict | None = None,
    chunk: int = 10,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Measurement]:
    """Measurements of ``sources`` on a Dask cluster (``client``: a ``distributed.Client``),
    ``chunk`` sources per task; the workers open the catalogue and the data themselves. The
    answer is in the order of ``sources``."""
    from distributed import as_completed

    groups = [list(sources[i : i + chunk]) for i in range(0, len(sources), chunk)]
    futures = [
        client.submit(_measure_chunk, catalogue_url, data, storage or {}, g, options, pure=False)
        for g in groups
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[list[Measurement] | None] = [None] * len(futures)
    done = 0
    try:
        for future in as_completed(futures):
            results[index[future.key]] = future.result()
            done += len(groups[index[future.key]])
            progress(done)
            if should_stop():
                break
    finally:
        client.cancel([f for f in futures if not f.done()])
    return [m for group in results if group for m in group]


# --------------------------------------------------------------------------------------------
# The spectrum on the 102 channels


def channel_edges(det: int) -> np.ndarray:
    """The 18 edges (um) of a detector's 17 channels: equal steps in log wavelength over the
    detector's band (the ``spectral_channels`` calibration)."""
    d = DETECTORS[det]
    return np.geomspace(d.band_min_um, d.band_max_um, CHANNELS_PER_DETECTOR + 1)


def channel_of(det: int, wavelength: float) -> int:
    """The channel (1-102) of a measurement; wavelengths past the band's edges go to the
    detector's first or last channel."""
    edges = channel_edges(det)
    sub = int(np.clip(np.searchsorted(edges, wavelength) - 1, 0, CHANNELS_PER_DETECTOR - 1))
    return (det - 1) * CHANNELS_PER_DETECTOR + sub + 1


def bin_spectrum(measurements: Iterable[Measurement]) -> list[ChannelPoint]:
    """Per source and channel: the inverse-variance weighted mean of the usable measurements,
    after rejecting, one at a time, the worst measurement further than REJECT_SIGMA from the
    median in units of its own error and the channel's robust scatter combined (the scatter
    holds the spectrum's slope across a channel and any noise beyond VARIANCE)."""
    groups: dict[tuple[str, int], list[Measurement]] = {}
    sources: dict[str, Source] = {}
    for m in measurements:
        if m.usable:
            groups.setdefault((m.source.id, channel_of(m.detector, m.wavelength)), []).append(m)
            sources.setdefault(m.source.id, m.source)
    points = []
    order = {sid: i for i, sid in enumerate(sources)}
    for (sid, channel), members in sorted(groups.items(), key=lambda g: (order[g[0][0]], g[0][1])):
        flux = np.array([m.flux for m in members])
        error = np.array([m.flux_error for m in members])
        wavelength = np.array([m.wavelength for m in members])
        keep = np.ones(len(members), bool)
        while keep.sum() >= 3:
            centre = np.median(flux[keep])
            scatter = 1.4826 * np.median(np.abs(flux[keep] - centre))
            pull = np.where(keep, np.abs(flux - centre) / np.hypot(error, scatter), 0.0)
            worst = int(np.argmax(pull))
            if pull[worst] <= REJECT_SIGMA:
                break
            keep[worst] = False
        w = 1 / error[keep] ** 2
        mean = float(np.sum(w * flux[keep]) / w.sum())
        n = int(keep.sum())
        chi2 = float(np.sum(w * (flux[keep] - mean) ** 2) / (n - 1)) if n > 1 else math.nan
        det = (channel - 1) // CHANNELS_PER_DETECTOR + 1
        edges = channel_edges(det)
        sub = (channel - 1) % CHANNELS_PER_DETECTOR
        points.append(
            ChannelPoint(
                sources[sid],
                channel,
                det,
                float(np.sum(w * wavelength[keep]) / w.sum()),
                float(edges[sub]),
                float(edges[sub + 1]),
                mean,
                float(1 / math.sqrt(w.sum())),
                n,
                len(members) - n,
                chi2,
            )
        )
    return points
