"""Headers of a QR2 spectral image, card for card in the order of a real file (spec §2.2-2.7).

Headers are built as ``astropy.io.fits.Header`` objects (astropy formats every card) and
written with raw big-endian data by ``level2``: that keeps the card order and the block counts
exactly those of a real file, which byte-range readers rely on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
from astropy.io import fits
from astropy.time import Time

from spherex_archive.products.calibration import PIPELINE_FAMILIES
from spherex_archive.products.detectors import DETECTORS
from spherex_archive.synth.instrument import PSF_OVERSAMPLING, PSF_STAMP, PSF_ZONES, PsfZones
from spherex_archive.synth.survey import TELAPSE, XPOSURE

PIPELINE_MODULES = (
    # (module, what it does, version, first L2 product version that ran it)
    ("SSDC-MS-002", "L1 ingest", "2.3", 20),
    ("SSDC-MS-003", "reference pixel correction", "1.4", 20),
    ("SSDC-MS-004", "sample-up-the-ramp fit", "2.0", 20),
    ("SSDC-MS-005", "nonlinearity correction", "1.6", 20),
    ("SSDC-MS-006", "dark current subtraction", "1.5", 20),
    ("SSDC-MS-007", "electronic gain", "1.2", 20),
    ("SSDC-MS-008", "flat field and absolute gain", "2.1", 20),
    ("SSDC-MS-009", "persistence masking", "1.3", 20),
    ("SSDC-MS-010", "transient and outlier masking", "1.7", 20),
    ("SSDC-MS-011", "astrometric solution", "3.0", 20),
    ("SSDC-MS-012", "spectral WCS", "1.8", 20),
    ("SSDC-MS-013", "PSF model", "2.2", 20),
    ("SSDC-MS-014", "source masking", "1.1", 20),
    ("SSDC-MS-015", "zodiacal light model", "1.9", 20),
    ("SSDC-MS-016", "ghost masking", "1.0", 21),
    ("SSDC-MS-017", "variance estimate", "1.4", 20),
    ("SSDC-MS-018", "quality assessment", "1.2", 20),
    ("SSDC-MS-019", "snowball, bloom and halo masking", "1.0", 21),
    ("SSDC-MS-020", "astrometric refinement", "1.1", 21),
    ("SSDC-MS-021", "ghost catalogue", "1.0", 21),
    ("SSDC-MS-025", "L2 product writer", "2.5", 20),
)


def iso(mjd: float) -> str:
    """ISO time with milliseconds, as real headers write it."""
    return Time(mjd, format="mjd", scale="utc").isot[:23]


def hierarch(header: fits.Header, key: str, value, comment: str = "") -> None:
    """Append a card, as HIERARCH when the keyword is longer than 8 characters or has spaces."""
    name = key if len(key) <= 8 and " " not in key and "." not in key else f"HIERARCH {key}"
    header.append(fits.Card(name, value, comment))


def celestial_block(
    crval: tuple[float, float],
    crpix: tuple[float, float],
    pc: np.ndarray,
    sip: Mapping[str, float],
) -> list[fits.Card]:
    cards = [
        fits.Card("WCSAXES", 2, "Number of coordinate axes"),
        fits.Card("CRPIX1", crpix[0], "Pixel coordinate of reference point"),
        fits.Card("CRPIX2", crpix[1], "Pixel coordinate of reference point"),
        fits.Card("PC1_1", float(pc[0, 0]), "Coordinate transformation matrix element"),
        fits.Card("PC1_2", float(pc[0, 1]), "Coordinate transformation matrix element"),
        fits.Card("PC2_1", float(pc[1, 0]), "Coordinate transformation matrix element"),
        fits.Card("PC2_2", float(pc[1, 1]), "Coordinate transformation matrix element"),
        fits.Card("CDELT1", 1.0, "[deg] Coordinate increment at reference point"),
        fits.Card("CDELT2", 1.0, "[deg] Coordinate increment at reference point"),
        fits.Card("CUNIT1", "deg", "Units of coordinate increment and value"),
        fits.Card("CUNIT2", "deg", "Units of coordinate increment and value"),
        fits.Card("CTYPE1", "RA---TAN-SIP", "TAN (gnomonic) projection + SIP distortions"),
        fits.Card("CTYPE2", "DEC--TAN-SIP", "TAN (gnomonic) projection + SIP distortions"),
        fits.Card("CRVAL1", crval[0], "[deg] Coordinate value at reference point"),
        fits.Card("CRVAL2", crval[1], "[deg] Coordinate value at reference point"),
        fits.Card("LONPOLE", 180.0, "[deg] Native longitude of celestial pole"),
        fits.Card("LATPOLE", crval[1], "[deg] Native latitude of celestial pole"),
    ]
    for prefix in ("A", "B", "AP", "BP"):
        cards.append(
            fits.Card(
                f"{prefix}_ORDER",
                3,
                f"SIP polynomial order, axis {1 if prefix in ('A', 'AP') else 2}",
            )
        )
    for prefix in ("A", "B", "AP", "BP"):
        for p in range(4):
            for q in range(4 - p):
                key = f"{prefix}_{p}_{q}"
                if key in sip:
                    cards.append(fits.Card(key, sip[key], "SIP distortion coefficient"))
    return cards


def pixel_block(crpix_a: tuple[float, float]) -> list[fits.Card]:
    """Alternate WCS ``A``: 0-based parent-frame pixel coordinates."""
    return [
        fits.Card("WCSAXESA", 2, "Number of coordinate axes"),
        fits.Card("CRPIX1A", crpix_a[0], "Pixel coordinate of reference point"),
        fits.Card("CRPIX2A", crpix_a[1], "Pixel coordinate of reference point"),
        fits.Card("CDELT1A", 1.0, "Coordinate increment at reference point"),
        fits.Card("CDELT2A", 1.0, "Coordinate increment at reference point"),
        fits.Card("CUNIT1A", "pixel", "Units of coordinate increment and value"),
        fits.Card("CUNIT2A", "pixel", "Units of coordinate increment and value"),
        fits.Card("CTYPE1A", "LINEAR", "Coordinate type code"),
        fits.Card("CTYPE2A", "LINEAR", "Coordinate type code"),
        fits.Card("CRVAL1A", 0.0, "Coordinate value at reference point"),
        fits.Card("CRVAL2A", 0.0, "Coordinate value at reference point"),
        fits.Card("LATPOLEA", 90.0, "[deg] Native latitude of celestial pole"),
        fits.Card("WCSNAMEA", "0-based active pixel coordinates", "Coordinate system title"),
    ]


def time_block(mjd_beg: float, mjd_end: float) -> list[fits.Card]:
    mjd_avg = 0.5 * (mjd_beg + mjd_end)
    return [
        fits.Card("TIMESYS", "UTC", "Time scale"),
        fits.Card("MJDREF", 0.0, "[d] MJD of fiducial time"),
        fits.Card("DATE-OBS", iso(mjd_beg), "Start of exposure (UTC)"),
        fits.Card("MJD-OBS", round(mjd_beg, 9), "[d] MJD of start of exposure"),
        fits.Card("DATE-BEG", iso(mjd_beg), "Start of exposure (UTC)"),
        fits.Card("MJD-BEG", round(mjd_beg, 9), "[d] MJD of start of exposure"),
        fits.Card("DATE-AVG", iso(mjd_avg), "Mid-point of exposure (UTC)"),
        fits.Card("MJD-AVG", round(mjd_avg, 9), "[d] MJD of mid-point of exposure"),
        fits.Card("DATE-END", iso(mjd_end), "End of exposure (UTC)"),
        fits.Card("MJD-END", round(mjd_end, 9), "[d] MJD of end of exposure"),
        fits.Card("XPOSURE", XPOSURE, "[s] Effective integration time"),
        fits.Card("TELAPSE", TELAPSE, "[s] Elapsed time from first to last sample"),
    ]


def wave_block(crpix_w: tuple[float, float]) -> list[fits.Card]:
    """Alternate WCS ``W``: wavelength and bandwidth looked up in the WCS-WAVE table."""
    return [
        fits.Card("WCSAXESW", 2, "Number of coordinate axes"),
        fits.Card("WCSNAMEW", "Approximated per-pixel wavelength and bandwidth", ""),
        fits.Card("CNAME1W", "Wavelength", "Axis name for labelling purposes"),
        fits.Card("CNAME2W", "Bandwidth", "Axis name for labelling purposes"),
        fits.Card("CRPIX1W", crpix_w[0], "Pixel coordinate of reference point"),
        fits.Card("CRPIX2W", crpix_w[1], "Pixel coordinate of reference point"),
        fits.Card("CDELT1W", 1, "Coordinate increment at reference point"),
        fits.Card("CDELT2W", 1, "Coordinate increment at reference point"),
        fits.Card("CUNIT1W", "um", "Units of coordinate increment and value"),
        fits.Card("CUNIT2W", "um", "Units of coordinate increment and value"),
        fits.Card("CTYPE1W", "WAVE-TAB", "Wavelength, lookup table"),
        fits.Card("CTYPE2W", "WAVE-TAB", "Bandwidth, lookup table"),
        fits.Card("CRVAL1W", 1, "Coordinate value at reference point"),
        fits.Card("CRVAL2W", 1, "Coordinate value at reference point"),
        fits.Card("PV1_3W", 1, "Coordinate axis index in VALUES"),
        fits.Card("PV2_3W", 2, "Coordinate axis index in VALUES"),
        fits.Card("PS1_0W", "WCS-WAVE", "EXTNAME of the lookup table"),
        fits.Card("PS2_0W", "WCS-WAVE", "EXTNAME of the lookup table"),
        fits.Card("PS1_1W", "VALUES", "Column holding the coordinate array"),
        fits.Card("PS2_1W", "VALUES", "Column holding the coordinate array"),
        fits.Card("PS1_2W", "X", "Column holding the x index vector"),
        fits.Card("PS2_2W", "Y", "Column holding the y index vector"),
    ]


def image_structure(bitpix: int, shape: tuple[int, ...]) -> fits.Header:
    header = fits.Header()
    header.append(fits.Card("XTENSION", "IMAGE", "Image extension"))
    header.append(fits.Card("BITPIX", bitpix, "array data type"))
    header.append(fits.Card("NAXIS", len(shape), "number of array dimensions"))
    for i, n in enumerate(reversed(shape), start=1):
        header.append(fits.Card(f"NAXIS{i}", n))
    header.append(fits.Card("PCOUNT", 0, "number of parameters"))
    header.append(fits.Card("GCOUNT", 1, "number of groups"))
    return header


def primary_header(pipeline_version: str) -> fits.Header:
    header = fits.Header()
    header.append(fits.Card("SIMPLE", True, "conforms to FITS standard"))
    header.append(fits.Card("BITPIX", 8, "array data type"))
    header.append(fits.Card("NAXIS", 0, "number of array dimensions"))
    header.append(fits.Card("EXTEND", True))
    header.append(fits.Card("VERSION", pipeline_version, "SPHEREx pipeline version"))
    return header


def image_header(
    *,
    det: int,
    size: int,
    obsid: str,
    expidn: int,
    created: dt.datetime,
    survey_cards: list[tuple[str, object, str]],
    spacecraft_cards: list[tuple[str, object, str]],
    quality_cards: list[tuple[str, object, str]],
    wcs_cards: list[fits.Card],
    calibrations: list[tuple[str, str]],
    product_version: int,
) -> fits.Header:
    """The IMAGE header: identity, readout, survey, spacecraft, quality, WCS, trailer."""
    header = image_structure(-32, (size, size))
    header.append(fits.Card("EXTNAME", "IMAGE", "Extension name"))
    header.append(fits.Card("EXTTYPE", "IMAGE", "Extension type"))
    header.append(fits.Card("BUNIT", "MJy / sr", "Surface brightness unit"))
    header.append(fits.Card("DETECTOR", det, "Detector: 1-3 SWIR, 4-6 MWIR"))
    header.append(fits.Card("OBSID", obsid, "Observation id"))
    header.append(fits.Card("EXPIDN", expidn, "Exposure id"))
    header.append(
        fits.Card("DATE", created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23], "HDU creation time (UTC)")
    )
    for key, value, comment in READOUT:
        hierarch(header, key, value, comment)
    header.append(fits.Card("JACTIVE", size, "Active columns"))
    header.append(fits.Card("KACTIVE", size, "Active rows"))
    for key, value, comment in survey_cards + spacecraft_cards + quality_cards:
        hierarch(header, key, value, comment)
    header.extend(wcs_cards)
    header.append(fits.Card("COMMENT", "TELAPSE is the time from the first to the last sample of"))
    header.append(fits.Card("COMMENT", "the ramp; XPOSURE is the effective integration time of"))
    header.append(fits.Card("COMMENT", "the slope fit."))
    for module, name, version, since in PIPELINE_MODULES:
        if product_version >= since:
            header.append(fits.Card("HISTORY", f"{module} {name} v{version}"))
    for family, uuid in calibrations:
        header.append(fits.Card("HISTORY", f"[CALIB] {family} {uuid}"))
    return header


READOUT: list[tuple[str, object, str]] = [
    ("TSAMP", 1.5349, "[s] Frame sampling interval"),
    ("KOVR_A", 25000, "[adu] Overflow limit, active"),
    ("KOVR_R", 25000, "[adu] Overflow limit, reference"),
    ("KOVR_P", 25000, "[adu] Overflow limit, phantom"),
    ("OVRDLY", 5, "Overflow delay frames"),
    ("SURLIM", 77, "Sample-up-the-ramp frame limit"),
    ("SURDLY", 3, "SUR delay frames"),
    ("TRANDLY", 7, "Transient detection delay frames"),
    ("TCUT", 38, "Transient cut"),
    ("KEN_A", 20000, "Energy threshold, active"),
    ("KEN_R", 10000, "Energy threshold, reference"),
    ("KEN_P", 500, "Energy threshold, phantom"),
    ("KSN_A", 100, "Signal-to-noise threshold, active"),
    ("KSN_R", 0, "Signal-to-noise threshold, reference"),
    ("KSN_P", 0, "Signal-to-noise threshold, phantom"),
    ("NSKIP", 32, "Frames skipped at start"),
    ("NVISITROW", 4, "Visit rows"),
    ("NVISITCOL", 1, "Visit columns"),
    ("MPHAN", 4, "Phantom columns"),
    ("NCHANNEL", 32, "Readout channels"),
    ("WCHANNEL", 64, "Columns per readout channel"),
    ("JREF", 8, "Reference columns"),
    ("KREF", 8, "Reference rows"),
]


def flags_header(
    size: int,
    counts: Mapping[str, int],
    bits: Mapping[str, int],
    wcs_cards: list[fits.Card],
) -> fits.Header:
    header = image_structure(32, (size, size))
    for name in bits:
        hierarch(header, f"L2 N_{name}", counts[name], f"Pixels flagged {name}")
    header.append(fits.Card("BUNIT", "", "Bit mask"))
    header.append(fits.Card("EXTTYPE", "MASK", "Mask extension (bit flags)"))
    for name, bit in bits.items():
        hierarch(header, f"MP_{name}", bit, f"Bit {bit}: {name}")
    header.append(fits.Card("EXTNAME", "FLAGS", "Extension name"))
    header.append(fits.Card("RADESYS", "ICRS", "Equatorial coordinate system"))
    header.extend(wcs_cards)
    return header


def plane_header(extname: str, bunit: str, size: int, wcs_cards: list[fits.Card]) -> fits.Header:
    """VARIANCE and ZODI: name, unit, then the same WCS and time block as FLAGS."""
    header = image_structure(-32, (size, size))
    header.append(fits.Card("EXTNAME", extname, "Extension name"))
    header.append(fits.Card("BUNIT", bunit, "Unit"))
    header.append(fits.Card("RADESYS", "ICRS", "Equatorial coordinate system"))
    header.extend(wcs_cards)
    return header


def psf_header(size: int) -> fits.Header:
    """The PSF cube header: angular offsets, OVERSAMP, then the 121 zone cards (x fastest)."""
    header = image_structure(-32, (PSF_ZONES * PSF_ZONES, PSF_STAMP, PSF_STAMP))
    scale = 6.15 / PSF_OVERSAMPLING
    centre = float(PSF_STAMP // 2 + 1)
    header.append(fits.Card("WCSAXES", 2, "Number of coordinate axes"))
    header.append(fits.Card("CRPIX1", centre, "Pixel coordinate of reference point"))
    header.append(fits.Card("CRPIX2", centre, "Pixel coordinate of reference point"))
    header.append(fits.Card("CDELT1", scale, "[arcsec] Coordinate increment"))
    header.append(fits.Card("CDELT2", scale, "[arcsec] Coordinate increment"))
    header.append(fits.Card("CUNIT1", "arcsec", "Units of coordinate increment and value"))
    header.append(fits.Card("CUNIT2", "arcsec", "Units of coordinate increment and value"))
    header.append(fits.Card("CTYPE1", "XANG", "Offset in detector X from the PSF centre"))
    header.append(fits.Card("CTYPE2", "YANG", "Offset in detector Y from the PSF centre"))
    header.append(fits.Card("CRVAL1", 0.0, "[arcsec] Coordinate value at reference point"))
    header.append(fits.Card("CRVAL2", 0.0, "[arcsec] Coordinate value at reference point"))
    header.append(fits.Card("CNAME1", "Detector X offset", "arcsec from the PSF centre"))
    header.append(fits.Card("CNAME2", "Detector Y offset", "arcsec from the PSF centre"))
    header.append(fits.Card("MJDREF", 0.0, "[d] MJD of fiducial time"))
    header.append(fits.Card("OVERSAMP", PSF_OVERSAMPLING, "PSF oversampling factor"))
    zones = PsfZones(size)
    widths = zones.widths()
    for iy in range(PSF_ZONES):
        for ix in range(PSF_ZONES):
            k = PsfZones.plane(ix, iy) + 1
            header.append(
                fits.Card(f"XCTR_{k}", round(zones.centre(ix), 3), f"Center of x zone ({ix}, {iy})")
            )
            header.append(
                fits.Card(f"YCTR_{k}", round(zones.centre(iy), 3), f"Center of y zone ({ix}, {iy})")
            )
            header.append(
                fits.Card(f"XWID_{k}", round(widths[ix], 4), f"Width of x zone ({ix}, {iy})")
            )
            header.append(
                fits.Card(f"YWID_{k}", round(widths[iy], 4), f"Width of y zone ({ix}, {iy})")
            )
    header.append(fits.Card("EXTNAME", "PSF", "Extension name"))
    header.append(fits.Card("BUNIT", "", "Normalised: each plane sums to 1"))
    return header


def detector_fwhm(det: int) -> float:
    return DETECTORS[det].psf_fwhm_arcsec


def calibration_history(uuids: Mapping[str, str]) -> list[tuple[str, str]]:
    """(family, uuid) for each ``HISTORY [CALIB]`` line, in the real files' order."""
    return [(family, uuids[family]) for family in PIPELINE_FAMILIES]
