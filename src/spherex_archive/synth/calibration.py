"""Calibration products of a release (spec §4.3), consistent with the images that cite them.

Each calibration file carries its identity in its PRIMARY header (``CALTYPE``, ``CALUUID``,
``DETECTOR``): the real headers were not seen, so these keywords are our choice. The UUID is the
one that the Level-2 images name in their ``HISTORY [CALIB] <family> <uuid>`` cards, which is
how ingest links a plane to the calibration files that made it.

Three families have two versions (v3 used by pipeline 6.4 images, v4 by 6.5.x), which with the
nine per-detector families and the two global ones gives the 74 files of the real QR2
calibration collection.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

from spherex_archive.products.calibration import PIPELINE_FAMILIES, CalibrationProduct
from spherex_archive.products.detectors import CHANNELS_PER_DETECTOR, DETECTORS
from spherex_archive.synth import headers as hdr
from spherex_archive.synth.instrument import lvf_bandwidth, lvf_wavelength, psf_cube, wave_table
from spherex_archive.synth.level2 import (
    dichroic_rows,
    permanent_defects,
    solid_angle_map,
)

UUID_NAMESPACE = uuid.UUID("6f1c2a52-5d0e-4b7a-9a57-53504845524b")

BASE_DATE = dt.date(2025, 6, 7)  # base-2025-158
VERSIONED = {
    # family: [(version, date)], older first
    "abs_gain_matrix": [(3, dt.date(2025, 4, 20)), (4, dt.date(2025, 6, 10))],
    "average_psf": [(4, dt.date(2025, 6, 10))],
    "dark": [(3, dt.date(2025, 4, 20)), (4, dt.date(2025, 6, 10))],
    "solid_angle_pixel_map": [(2, dt.date(2025, 6, 13))],
    "spectral_wcs": [(3, dt.date(2025, 5, 2)), (4, dt.date(2025, 9, 11))],
    "spectral_channels": [(1, dt.date(2026, 4, 16))],
}
BASE_FAMILIES = ("dichroic", "gain_factors", "nonfunc", "nonlinear_pars", "readnoise_pars")
UNDELIVERED = ("initial_distortion_table", "sip")
"""Families the pipeline cites but the archive does not hold."""


def cal_uuid(key: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, key))


def products(detectors: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> list[CalibrationProduct]:
    out: list[CalibrationProduct] = []
    for family, versions in VERSIONED.items():
        for version, date in versions:
            if family == "spectral_channels":
                out.append(CalibrationProduct(family, version, date, None))
            else:
                out += [CalibrationProduct(family, version, date, d) for d in detectors]
    for family in BASE_FAMILIES:
        if family == "gain_factors":
            out.append(CalibrationProduct(family, 0, BASE_DATE, None))
        else:
            out += [CalibrationProduct(family, 0, BASE_DATE, d) for d in detectors]
    return out


def used_by(product_version: int, det: int, release: str) -> list[tuple[str, str]]:
    """(family, uuid) of the calibration files an image of this product version used."""
    uuids: dict[str, str] = {}
    for family in PIPELINE_FAMILIES:
        if family in UNDELIVERED:
            uuids[family] = cal_uuid(f"{release}/{family}/D{det}")
            continue
        if family in VERSIONED:
            versions = VERSIONED[family]
            version, date = versions[0] if product_version <= 20 else versions[-1]
        else:
            version, date = 0, BASE_DATE
        per_det = family != "gain_factors"
        product = CalibrationProduct(family, version, date, det if per_det else None)
        uuids[family] = cal_uuid(product.key(release))
    return hdr.calibration_history(uuids)


@dataclass
class CalibrationWriter:
    out: Path
    release: str
    size: int
    seed: int

    def write(self, product: CalibrationProduct) -> tuple[str, int, str]:
        """Write one file; return (key, size, md5)."""
        key = product.key(self.release)
        if product.family == "gain_factors":
            data = self._gain_factors(product, key)
        else:
            hdus = fits.HDUList([self._primary(product, key), *self._extensions(product)])
            buffer = io.BytesIO()
            hdus.writeto(buffer)
            data = buffer.getvalue()
            if product.filename.endswith(".gz"):
                data = gzip.compress(data, mtime=0)  # mtime 0: same bytes for the same seed
        path = self.out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return key, len(data), hashlib.md5(data).hexdigest()

    def _primary(self, product: CalibrationProduct, key: str) -> fits.PrimaryHDU:
        primary = fits.PrimaryHDU()
        primary.header["CALTYPE"] = (product.family, "Calibration product family")
        primary.header["CALUUID"] = (cal_uuid(key), "Cited by HISTORY [CALIB]")
        primary.header["CALVERS"] = (product.version, "Calibration product version (0 = base)")
        primary.header["CALDATE"] = (product.date.isoformat(), "Calibration product date")
        if product.detector is not None:
            primary.header["DETECTOR"] = (product.detector, "Detector: 1-3 SWIR, 4-6 MWIR")
        return primary

    def _extensions(self, product: CalibrationProduct) -> Iterator[fits.ImageHDU]:
        det, size = product.detector, self.size
        rng = np.random.default_rng([self.seed, 0xCA1, product.version, det or 0])
        family = product.family
        if family == "abs_gain_matrix":
            flat = 1 + 0.02 * rng.standard_normal((size, size))
            yield _image("IMAGE", (0.18 * flat).astype(np.float32), "MJy / (sr electron / s)")
        elif family == "average_psf":
            header = hdr.psf_header(size)
            hdu = fits.ImageHDU(psf_cube(det))
            for card in header.cards:
                if card.keyword not in hdu.header:
                    hdu.header.append(card)
            yield hdu
        elif family == "dark":
            dark = np.abs(0.01 + 0.003 * rng.standard_normal((size, size)))
            dark[permanent_defects(det, size, self.seed)["HOT"]] += 5.0
            yield _image("IMAGE", dark.astype(np.float32), "electron / s")
        elif family == "dichroic":
            mask = np.zeros((size, size), dtype=np.int16)
            rows = dichroic_rows(det, size)
            if rows is not None:
                mask[rows] = 1
            yield _image("IMAGE", mask, "")
        elif family == "nonfunc":
            dead = permanent_defects(det, size, self.seed)["NONFUNC"].astype(np.int64)
            yield _image("IMAGE", dead, "")
        elif family == "nonlinear_pars":
            for name, value in (
                ("Q_nl", 12000.0),
                ("b1", 1.0),
                ("b2", -2.1e-6),
                ("b3", 3.0e-11),
                ("Qmax", 24000.0),
            ):
                noise = 1 + 0.01 * rng.standard_normal((size, size))
                yield _image(name, (value * noise).astype(np.float32), "")
        elif family == "readnoise_pars":
            for name in ("READNOISE-1", "READNOISE-2"):
                noise = np.abs(11.0 + rng.standard_normal((size, size)))
                yield _image(name, noise.astype(np.float32), "electron")
        elif family == "solid_angle_pixel_map":
            yield _image("IMAGE", solid_angle_map(det, size), "arcsec2")
        elif family == "spectral_wcs":
            yy, xx = np.mgrid[0:size, 0:size]
            # v3 was measured before launch: a small systematic offset that v4 corrects.
            shift = 0.002 if product.version == 3 else 0.0
            wave = lvf_wavelength(det, xx, yy, size) + shift
            yield _image("CWAVE", wave.astype(np.float32), "um")
            yield _image("CBAND", lvf_bandwidth(det, xx, yy, size).astype(np.float32), "um")
            yield wave_table(det, size).to_hdu()
        elif family == "spectral_channels":
            yield from _spectral_channels(size)
        else:
            raise ValueError(f"no writer for calibration family {family!r}")

    def _gain_factors(self, product: CalibrationProduct, key: str) -> bytes:
        rng = np.random.default_rng([self.seed, 0x6A1])
        document = {
            "calibration": "gain_factors",
            "uuid": cal_uuid(key),
            "date": product.date.isoformat(),
            "units": "electron / adu",
            "detectors": {
                f"D{d}": {
                    "serial": f"H2RG-{18000 + 37 * d}",
                    "focal_plane": DETECTORS[d].focal_plane,
                    "gains": [round(float(g), 4) for g in 1.7 + 0.05 * rng.standard_normal(32)],
                }
                for d in DETECTORS
            },
        }
        return yaml.safe_dump(document, sort_keys=False).encode()


def _image(name: str, data: np.ndarray, unit: str) -> fits.ImageHDU:
    hdu = fits.ImageHDU(data, name=name)
    hdu.header["BUNIT"] = unit
    return hdu


def _spectral_channels(size: int) -> Iterator[fits.ImageHDU | fits.BinTableHDU]:
    """102 channels, 17 per detector, equal steps in log wavelength across each band; the
    CHANNEL_MAP cube gives each pixel of each detector its channel."""
    rows = []
    maps = np.zeros((6, size, size), dtype=np.int16)
    yy, xx = np.mgrid[0:size, 0:size]
    for det, d in DETECTORS.items():
        edges = np.geomspace(d.band_min_um, d.band_max_um, CHANNELS_PER_DETECTOR + 1)
        for k in range(CHANNELS_PER_DETECTOR):
            lo, hi = edges[k], edges[k + 1]
            rows.append((det, k + 1, np.sqrt(lo * hi), lo, hi))
        wave = lvf_wavelength(det, xx, yy, size)
        sub = np.clip(np.searchsorted(edges, wave) - 1, 0, CHANNELS_PER_DETECTOR - 1)
        maps[det - 1] = (det - 1) * CHANNELS_PER_DETECTOR + sub + 1
    yield _image("CHANNEL_MAP", maps, "")
    arr = np.array(
        rows,
        dtype=[
            ("DETECTOR", ">i4"),
            ("SUBCHAN", ">i4"),
            ("WAVELENGTH", ">f4"),
            ("WL_MIN", ">f4"),
            ("WL_MAX", ">f4"),
        ],
    )
    table = fits.BinTableHDU(arr, name="SPECTRAL_CHANNELS")
    for i in (3, 4, 5):
        table.header[f"TUNIT{i}"] = "um"
    yield table
