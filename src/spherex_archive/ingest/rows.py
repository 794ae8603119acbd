"""Catalogue rows of one file, derived from its headers and its path (spec §9).

Everything a row says is checked against a second source where one exists: the OBSID in the
header against the file name, the detector against the name, the folder and the header; a
disagreement rejects the file rather than writing a row that contradicts the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from spherex_archive.catalogue.base import stable_id
from spherex_archive.catalogue.spatial import POLYGON_ICRS
from spherex_archive.products.calibration import CAL_NAME, parse_calibration_filename
from spherex_archive.products.detectors import DETECTORS
from spherex_archive.products.fitsfile import BadFile, Hdu, celestial_wcs
from spherex_archive.products.naming import collection_name, parse_level2_filename

LEVEL2_HDUS = ["PRIMARY", "IMAGE", "FLAGS", "VARIANCE", "ZODI", "PSF", "WCS-WAVE"]
REQUIRED_IMAGE_CARDS = (
    "OBSID",
    "DETECTOR",
    "EXPIDN",
    "MJD-BEG",
    "MJD-END",
    "XPOSURE",
    "CTYPE1",
    "CTYPE2",
    "CRVAL1",
    "CRVAL2",
    "NAXIS1",
    "NAXIS2",
)
CALIB_CARD = re.compile(r"^\[CALIB\]\s+(\S+)\s+(\S+)\s*$")
URI_PREFIX = "ibe/data/spherex/"


@dataclass
class FileRows:
    """What one file adds to the catalogue."""

    key: str
    observation: dict
    plane: dict
    artifact: dict
    footprint: tuple[np.ndarray, np.ndarray] | None
    provenance: list[tuple[str, str]] = field(default_factory=list)
    """(family, uuid) of the calibration files the image cites."""


def level2_rows(key: str, hdus: list[Hdu], size: int, md5: str, authority: str) -> FileRows:
    path = PurePosixPath(key)
    try:
        name = parse_level2_filename(path.name)
    except ValueError as error:
        raise BadFile(str(error)) from None
    if [h.name for h in hdus] != LEVEL2_HDUS:
        raise BadFile(f"HDUs are {[h.name for h in hdus]}, expected {LEVEL2_HDUS}")
    primary, image = hdus[0].header, hdus[1].header
    assert primary is not None and image is not None
    if "VERSION" not in primary:
        raise BadFile("PRIMARY header has no VERSION")
    missing = [k for k in REQUIRED_IMAGE_CARDS if k not in image]
    if missing:
        raise BadFile(f"IMAGE header lacks {', '.join(missing)}")
    obsid = str(name.obsid)
    if image["OBSID"] != obsid:
        raise BadFile(f"name says OBSID {obsid}, header says {image['OBSID']}")
    det = name.detector
    if image["DETECTOR"] != det or det not in DETECTORS:
        raise BadFile(f"name says detector {det}, header says {image['DETECTOR']}")
    parts = path.parts
    if len(parts) >= 5 and parts[-2] != str(det):
        raise BadFile(f"file is in folder {parts[-2]}/ but is detector {det}")
    if len(parts) >= 5 and (parts[-3] != str(name.product) or parts[-4] != str(name.obsid.period)):
        raise BadFile(f"folder {'/'.join(parts[-4:-2])} does not match the file name")
    release = parts[0]

    ra, dec, centre, scale = _footprint(image)
    survey = "deep" if str(image.get("SPS_FLAGS", "")).strip() == "deep" else "wide"
    collection = collection_name(survey, release)
    d = DETECTORS[det]
    observation_key = stable_id(collection, obsid)
    did = f"{authority}/{collection}?{obsid}/D{det}"
    planeid = stable_id(did)
    sps_target = image.get("SPS_TARGET")
    observation = {
        "obsid": observation_key,
        "observationid": obsid,
        "collection": collection,
        "intent": "science",
        "type": "exposure",
        "algorithm_name": "exposure",
        "planning_period": str(name.obsid.period),
        "large_slew": name.obsid.large_slew,
        "small_slew": name.obsid.small_slew,
        "target_name": f"SPS_{sps_target}" if sps_target is not None else None,
        "telescope_name": "SPHEREx",
        "instrument_name": "SPHEREx",
        "proposal_project": "SPHEREx",
        "proposal_title": "SPHEREx LVF Survey Data",
    }
    n1, n2 = int(image["NAXIS1"]), int(image["NAXIS2"])
    plane = {
        "planeid": planeid,
        "obsid": observation_key,
        "obs_publisher_did": did,
        "productid": f"D{det}",
        "dataproducttype": "image",
        "dataproductsubtype": "science",
        "calibrationlevel": 2,
        "detector": det,
        "energy_bandpassname": d.bandpass_name,
        "energy_bounds_lower": d.em_min_m,
        "energy_bounds_upper": d.em_max_m,
        "energy_resolvingpower": d.resolving_power,
        "time_bounds_lower": round(float(image["MJD-BEG"]), 6),
        "time_bounds_upper": round(float(image["MJD-END"]), 6),
        "time_exposure": float(image["XPOSURE"]),
        "s_ra": centre[0],
        "s_dec": centre[1],
        "poly": _stcs(ra, dec),
        "s_fov": round(max(n1, n2) * scale / 3600.0, 6),
        "s_pixel_scale": round(scale, 6),
        "s_xel1": n1,
        "s_xel2": n2,
        "psf_fwhm": float(image["PSF_FWHM"]) if "PSF_FWHM" in image else None,
        "provenance_version": str(primary["VERSION"]),
        "product_version": name.product.version,
        "processing_date": f"{name.product.processed.isoformat()} 00:00:00",
        "quality_flag": str(image.get("L2DQAFLG", "")) or None,
        "metrics_background": None,
        "metrics_maglimit": None,
        "calibration_uuid": None,
    }
    artifact = _artifact(key, planeid, size, md5, "science", "image/fits", name.product.version)
    provenance = []
    for line in image["HISTORY"]:
        match = CALIB_CARD.match(str(line))
        if match:
            provenance.append((match[1], match[2]))
    return FileRows(key, observation, plane, artifact, (ra, dec), provenance)


def calibration_rows(
    key: str, hdus: list[Hdu] | None, size: int, md5: str, authority: str
) -> FileRows:
    """A calibration file: its own plane in the ``_cal`` collection, with no footprint."""
    path = PurePosixPath(key)
    try:
        product = parse_calibration_filename(path.name)
    except ValueError as error:
        raise BadFile(str(error)) from None
    release = path.parts[0]
    collection = collection_name("cal", release)
    stem = path.name.split(".")[0]
    uuid = None
    n1 = n2 = None
    if hdus is not None:
        primary = hdus[0].header
        assert primary is not None
        uuid = primary.get("CALUUID")
        if product.detector is not None and primary.get("DETECTOR") not in (None, product.detector):
            raise BadFile(
                f"name says detector {product.detector}, header says {primary.get('DETECTOR')}"
            )
        if len(hdus) > 1:
            n1 = _int(hdus[1].cards.get("NAXIS1"))
            n2 = _int(hdus[1].cards.get("NAXIS2"))
    observation_key = stable_id(collection, stem)
    did = f"{authority}/{collection}?{stem}"
    planeid = stable_id(did)
    d = DETECTORS.get(product.detector) if product.detector else None
    observation = {
        "obsid": observation_key,
        "observationid": stem,
        "collection": collection,
        "intent": "calibration",
        "type": "calibration",
        "algorithm_name": product.family,
        "planning_period": None,
        "large_slew": None,
        "small_slew": None,
        "target_name": None,
        "telescope_name": "SPHEREx",
        "instrument_name": "SPHEREx",
        "proposal_project": "SPHEREx",
        "proposal_title": "SPHEREx calibration products",
    }
    plane = {
        "planeid": planeid,
        "obsid": observation_key,
        "obs_publisher_did": did,
        "productid": stem,
        "dataproducttype": "measurements",
        "dataproductsubtype": "calibration",
        # Pre-launch baselines are level 1; products derived from flight data level 3
        # (the real collection has both; which is which is our reading).
        "calibrationlevel": 1 if product.version == 0 else 3,
        "detector": product.detector,
        "energy_bandpassname": d.bandpass_name if d else None,
        "energy_bounds_lower": d.em_min_m if d else None,
        "energy_bounds_upper": d.em_max_m if d else None,
        "energy_resolvingpower": d.resolving_power if d else None,
        "time_bounds_lower": None,
        "time_bounds_upper": None,
        "time_exposure": None,
        "s_ra": None,
        "s_dec": None,
        "poly": None,
        "s_fov": None,
        "s_pixel_scale": None,
        "s_xel1": n1,
        "s_xel2": n2,
        "psf_fwhm": None,
        "provenance_version": product.token,
        "product_version": product.version,
        "processing_date": f"{product.date.isoformat()} 00:00:00",
        "quality_flag": None,
        "metrics_background": None,
        "metrics_maglimit": None,
        "calibration_uuid": uuid,
    }
    content = {".yaml": "application/yaml", ".gz": "application/gzip"}.get(
        path.suffix, "image/fits"
    )
    artifact = _artifact(key, planeid, size, md5, "calibration", content, product.version)
    return FileRows(key, observation, plane, artifact, None)


def is_calibration_name(name: str) -> bool:
    return CAL_NAME.match(name) is not None


def _artifact(key, planeid, size, md5, producttype, contenttype, version) -> dict:
    uri = URI_PREFIX + key
    return {
        "artifactid": stable_id(uri),
        "planeid": planeid,
        "uri": uri,
        "producttype": producttype,
        "contenttype": contenttype,
        "contentchecksum": f"md5:{md5}",
        "contentlength": size,
        "product_version": version,
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _footprint(header: dict) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """Outer pixel corners and centre from the celestial WCS with SIP; pixel scale (arcsec).

    The WCS is assembled from the values (no header text round trip); astropy does the
    projection and the distortion.
    """
    n1, n2 = int(header["NAXIS1"]), int(header["NAXIS2"])
    try:
        wcs = celestial_wcs(header)
        x = np.array([-0.5, n1 - 0.5, n1 - 0.5, -0.5, (n1 - 1) / 2])
        y = np.array([-0.5, -0.5, n2 - 0.5, n2 - 0.5, (n2 - 1) / 2])
        ra, dec = wcs.all_pix2world(x, y, 0)
        scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600)
    except Exception as error:  # astropy raises many kinds for a broken WCS
        raise BadFile(f"unreadable WCS: {error}") from None
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))) or scale <= 0:
        raise BadFile("unreadable WCS: corners are not finite")
    ra = ra % 360.0
    return ra[:4], dec[:4], (float(ra[4]), float(dec[4])), scale


def _stcs(ra: np.ndarray, dec: np.ndarray) -> str:
    """``POLYGON ICRS ra1 dec1 ... ra1 dec1``: closed, as IRSA writes it."""
    points = [*zip(ra, dec, strict=True), (ra[0], dec[0])]
    return POLYGON_ICRS + " ".join(f"{a:.10f} {b:.10f}" for a, b in points)
