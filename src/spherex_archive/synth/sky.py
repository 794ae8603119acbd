"""The synthetic sky: point sources with known spectra, and the truth catalogue that records them.

Sources are drawn per HEALPix cell (nested, depth ``CELL_DEPTH``) from a generator seeded by the
release seed and the cell number, so the same part of the sky holds the same sources whichever
images, workers or order touch it. A few bright "showcase" sources sit at the deep-field and
wide-field centres, where many exposures see them.

Spectra are flux densities f_nu in uJy as a function of wavelength in um:

* ``star``: a blackbody of temperature ``temperature`` scaled to ``flux_1p6`` at 1.6 um;
* ``emission`` / ``absorption``: the same continuum with the features of ``features.ecsv``:
  an emission line adds ``strength`` (uJy um) times a unit-area Gaussian; an absorption
  feature multiplies the continuum by ``1 - strength * exp(-(l - c)^2 / 2 sigma^2)``.

What SPHEREx measures at a pixel is the mean of f_nu over the top-hat band
``[wavelength - bandwidth / 2, wavelength + bandwidth / 2]`` (``TruthCatalogue.band_flux``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cdshealpix
import numpy as np
from astropy import units as u
from astropy.coordinates import Latitude, Longitude
from astropy.table import Table, vstack

from spherex_archive.synth.instrument import gaussian_band_average

CELL_DEPTH = 8
"""HEALPix depth of the cells sources are drawn in (0.23 deg cells)."""

SOURCE_DENSITY_PER_DEG2 = 400.0
FLUX_MIN_UJY = 15.0
FLUX_MAX_UJY = 3.0e5
FLUX_SLOPE = 0.7
"""Integral counts N(>S) ~ S^-FLUX_SLOPE between the limits above (flux at 1.6 um)."""

REFERENCE_UM = 1.6

EMISSION_LINES_UM = (1.282, 1.875, 3.29, 4.052)
"""Pa beta, Pa alpha, the 3.3 um PAH band, Br alpha."""
ABSORPTION_BANDS_UM = ((2.29, 0.03, 0.25), (3.05, 0.12, 0.5), (4.27, 0.03, 0.6))
"""CO band head, water ice, CO2 ice: (centre, sigma, depth)."""

SOURCE_COLUMNS = ("source_id", "name", "ra", "dec", "kind", "temperature", "flux_1p6")
FEATURE_COLUMNS = ("source_id", "type", "center", "sigma", "strength")


@dataclass(frozen=True)
class Showcase:
    """A bright source placed on purpose at a field centre."""

    name: str
    ra: float
    dec: float
    kind: str
    temperature: float
    flux_1p6: float


def _blackbody_nu(wavelength_um: np.ndarray, temperature: np.ndarray) -> np.ndarray:
    x = 14387.77 / (np.asarray(wavelength_um) * np.asarray(temperature))
    return np.asarray(wavelength_um) ** -3 / np.expm1(x)


def continuum(wavelength_um: np.ndarray, temperature: np.ndarray, flux_1p6: np.ndarray):
    """Blackbody f_nu through ``flux_1p6`` uJy at 1.6 um."""
    return (
        flux_1p6
        * _blackbody_nu(wavelength_um, temperature)
        / _blackbody_nu(REFERENCE_UM, temperature)
    )


class TruthCatalogue:
    """Sources and spectral features: what was injected, readable back from ``DIR/truth``."""

    def __init__(self, sources: Table, features: Table) -> None:
        self.sources = sources
        self.features = features
        self._row = {int(s): i for i, s in enumerate(sources["source_id"])}

    @classmethod
    def read(cls, truth_dir: str | Path) -> TruthCatalogue:
        truth_dir = Path(truth_dir)
        return cls(Table.read(truth_dir / "sources.ecsv"), Table.read(truth_dir / "features.ecsv"))

    def write(self, truth_dir: str | Path) -> None:
        truth_dir = Path(truth_dir)
        truth_dir.mkdir(parents=True, exist_ok=True)
        self.sources.write(truth_dir / "sources.ecsv", overwrite=True)
        self.features.write(truth_dir / "features.ecsv", overwrite=True)

    def band_flux(
        self, source_ids: np.ndarray, wavelength: np.ndarray, bandwidth: np.ndarray
    ) -> np.ndarray:
        """Mean f_nu (uJy) of each source over its top-hat band (one band per source id)."""
        ids = np.atleast_1d(np.asarray(source_ids, dtype=np.int64))
        lam = np.broadcast_to(np.asarray(wavelength, dtype=float), ids.shape)
        bw = np.broadcast_to(np.asarray(bandwidth, dtype=float), ids.shape)
        rows = np.array([self._row[int(s)] for s in ids], dtype=int)
        temperature = np.asarray(self.sources["temperature"])[rows]
        flux = np.asarray(self.sources["flux_1p6"])[rows]
        lo, hi = lam - bw / 2.0, lam + bw / 2.0
        # Simpson's rule over the band is exact enough for a smooth continuum.
        nodes = np.linspace(0.0, 1.0, 9)
        weights = np.array([1, 4, 2, 4, 2, 4, 2, 4, 1], dtype=float) / 24.0
        samples = lo[:, None] + (hi - lo)[:, None] * nodes[None, :]
        cont = continuum(samples, temperature[:, None], flux[:, None])
        result = (cont * weights).sum(axis=1)
        if len(self.features):
            result = result + self._features_band(ids, samples, cont, weights, lo, hi)
        return result

    def _features_band(self, ids, samples, cont, weights, lo, hi) -> np.ndarray:
        out = np.zeros(len(ids))
        feature_ids = np.asarray(self.features["source_id"])
        wanted = np.isin(feature_ids, ids)
        for row in self.features[wanted]:
            mask = ids == row["source_id"]
            c, s, k = float(row["center"]), float(row["sigma"]), float(row["strength"])
            if row["type"] == "emission":
                out[mask] += k * gaussian_band_average(c, s, lo[mask], hi[mask])
            else:
                dip = k * np.exp(-0.5 * ((samples[mask] - c) / s) ** 2)
                out[mask] -= (cont[mask] * dip * weights).sum(axis=1)
        return out

    def spectrum(self, source_id: int, wavelength: np.ndarray) -> np.ndarray:
        """The monochromatic f_nu (uJy) of one source."""
        row = self.sources[self._row[int(source_id)]]
        lam = np.asarray(wavelength, dtype=float)
        flux = continuum(lam, row["temperature"], row["flux_1p6"])
        for feature in self.features[self.features["source_id"] == source_id]:
            c, s, k = feature["center"], feature["sigma"], feature["strength"]
            profile = np.exp(-0.5 * ((lam - c) / s) ** 2)
            if feature["type"] == "emission":
                flux = flux + k * profile / (np.sqrt(2 * np.pi) * s)
            else:
                flux = flux * (1.0 - k * profile)
        return flux


class SkyModel:
    """Draws the sources of any HEALPix cell, deterministically from the release seed."""

    def __init__(self, seed: int, showcases: list[Showcase] | None = None) -> None:
        self.seed = seed
        self.showcases = showcases or []
        self._cache: dict[int, tuple[Table, Table]] = {}

    def cells_near(self, ra: float, dec: float, radius_deg: float) -> np.ndarray:
        # flat: every cell at CELL_DEPTH; otherwise a large cone comes back with the cells it
        # covers whole merged into coarser ones, whose numbers mean other places at this depth.
        ipix, _, _ = cdshealpix.nested.cone_search(
            Longitude(ra * u.deg), Latitude(dec * u.deg), radius_deg * u.deg, CELL_DEPTH, flat=True
        )
        return np.unique(np.asarray(ipix, dtype=np.int64))

    def sources_in_cells(self, cells: np.ndarray) -> TruthCatalogue:
        parts = [self._cell(int(c)) for c in cells]
        if self.showcases:
            parts.append(self._showcase_tables(cells))
        sources = vstack([p[0] for p in parts]) if parts else _empty_sources()
        features = vstack([p[1] for p in parts]) if parts else _empty_features()
        return TruthCatalogue(sources, features)

    def _showcase_tables(self, cells: np.ndarray) -> tuple[Table, Table]:
        """Showcases whose cell is among ``cells``; their ids are 1..len(showcases)."""
        sources, features = _empty_sources(), _empty_features()
        for index, show in enumerate(self.showcases, start=1):
            cell = cdshealpix.nested.lonlat_to_healpix(
                Longitude([show.ra] * u.deg), Latitude([show.dec] * u.deg), CELL_DEPTH
            )[0]
            if cell not in cells:
                continue
            sources.add_row(
                (index, show.name, show.ra, show.dec, show.kind, show.temperature, show.flux_1p6)
            )
            for row in _features_for(show.kind, show.flux_1p6, np.random.default_rng(index)):
                features.add_row((index, *row))
        return sources, features

    def _cell(self, cell: int) -> tuple[Table, Table]:
        if cell in self._cache:
            return self._cache[cell]
        rng = np.random.default_rng([self.seed, 0x5EED, cell])
        area_deg2 = 4 * np.pi * (180 / np.pi) ** 2 / (12 * 4**CELL_DEPTH)
        count = rng.poisson(SOURCE_DENSITY_PER_DEG2 * area_deg2)
        ra, dec = _points_in_cell(cell, count, rng)
        # Power-law counts by inverse transform between the flux limits.
        q = rng.random(count)
        a, b = FLUX_MIN_UJY**-FLUX_SLOPE, FLUX_MAX_UJY**-FLUX_SLOPE
        flux = (a - q * (a - b)) ** (-1.0 / FLUX_SLOPE)
        temperature = np.exp(rng.uniform(np.log(2800.0), np.log(12000.0), count))
        kind = rng.choice(["star", "emission", "absorption"], size=count, p=[0.9, 0.05, 0.05])
        ids = (np.int64(cell) + 1) * 10000 + np.arange(count, dtype=np.int64)
        sources = Table(
            [ids, np.full(count, "", dtype="U16"), ra, dec, kind.astype("U10"), temperature, flux],
            names=SOURCE_COLUMNS,
        )
        features = _empty_features()
        for sid, k, f in zip(ids, kind, flux, strict=True):
            for row in _features_for(str(k), float(f), rng):
                features.add_row((sid, *row))
        _describe(sources, features)
        self._cache[cell] = (sources, features)
        return sources, features


def _features_for(kind: str, flux: float, rng: np.random.Generator) -> list[tuple]:
    """Spectral features of a source of this kind: (type, center, sigma, strength)."""
    if kind == "emission":
        lines = rng.choice(len(EMISSION_LINES_UM), size=2, replace=False)
        return [
            # Strength as an equivalent width of 0.05-0.2 um on the 1.6 um continuum.
            ("emission", EMISSION_LINES_UM[i], 0.004, float(flux * rng.uniform(0.05, 0.2)))
            for i in sorted(lines)
        ]
    if kind == "absorption":
        return [
            ("absorption", c, s, float(d * rng.uniform(0.7, 1.0)))
            for c, s, d in ABSORPTION_BANDS_UM
        ]
    return []


def _points_in_cell(cell: int, count: int, rng: np.random.Generator):
    """Uniform points on the sphere inside one HEALPix cell (rejection from its bounding box)."""
    lon, lat = cdshealpix.nested.vertices(np.array([cell]), CELL_DEPTH)
    lon = np.unwrap(lon.to_value(u.rad)[0])
    lat = lat.to_value(u.rad)[0]
    sin_lo, sin_hi = np.sin(lat.min()), np.sin(lat.max())
    ra_out, dec_out = np.empty(0), np.empty(0)
    polar = abs(lat).max() > np.radians(89.0)
    lon_lo, lon_hi = (0.0, 2 * np.pi) if polar else (lon.min(), lon.max())
    if polar:
        sin_lo, sin_hi = (sin_lo, 1.0) if lat.max() > 0 else (-1.0, sin_hi)
    while len(ra_out) < count:
        n = max(4 * (count - len(ra_out)), 16)
        ra = rng.uniform(lon_lo, lon_hi, n) % (2 * np.pi)
        dec = np.arcsin(rng.uniform(sin_lo, sin_hi, n))
        inside = (
            cdshealpix.nested.lonlat_to_healpix(
                Longitude(ra * u.rad), Latitude(dec * u.rad), CELL_DEPTH
            )
            == cell
        )
        ra_out = np.concatenate([ra_out, ra[inside]])
        dec_out = np.concatenate([dec_out, dec[inside]])
    return np.degrees(ra_out[:count]), np.degrees(dec_out[:count])


def _empty_sources() -> Table:
    t = Table(
        [
            np.zeros(0, np.int64),
            np.zeros(0, "U16"),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, "U10"),
            np.zeros(0),
            np.zeros(0),
        ],
        names=SOURCE_COLUMNS,
    )
    _describe(t, None)
    return t


def _empty_features() -> Table:
    t = Table(
        [np.zeros(0, np.int64), np.zeros(0, "U10"), np.zeros(0), np.zeros(0), np.zeros(0)],
        names=FEATURE_COLUMNS,
    )
    _describe(None, t)
    return t


def _describe(sources: Table | None, features: Table | None) -> None:
    """Units and descriptions: they travel with the ECSV files."""
    if sources is not None:
        sources["ra"].unit = sources["dec"].unit = u.deg
        sources["temperature"].unit = u.K
        sources["flux_1p6"].unit = u.uJy
        sources["source_id"].description = "Truth source id (1..n are showcase sources)"
        sources["name"].description = "Name of a showcase source; empty otherwise"
        sources["kind"].description = "star, emission or absorption"
        sources["temperature"].description = "Blackbody temperature of the continuum"
        sources["flux_1p6"].description = "Continuum f_nu at 1.6 um"
    if features is not None:
        features["center"].unit = features["sigma"].unit = u.um
        features["type"].description = (
            "emission: add strength * unit Gaussian; absorption: "
            "multiply by 1 - strength * Gaussian of peak 1"
        )
        features["strength"].description = "emission: line flux in uJy um; absorption: depth"
