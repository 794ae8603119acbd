"""Render and write one Level-2 spectral image (the seven-HDU MEF of spec §2)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from spherex_archive.products.detectors import DETECTORS, PIXEL_SCALE_ARCSEC
from spherex_archive.products.flags import count_flags, flag_bits
from spherex_archive.products.naming import ProductVersion, level2_key
from spherex_archive.synth import headers as hdr
from spherex_archive.synth.instrument import (
    PsfZones,
    lvf_bandwidth,
    lvf_wavelength,
    psf_cube,
    render_psf,
    sip_coefficients,
    sip_inverse,
    variance_model,
    wave_table,
    zodi_brightness,
)
from spherex_archive.synth.sky import SkyModel
from spherex_archive.synth.survey import (
    ORBIT_RADIUS_KM,
    ORBIT_S,
    ORBIT_SPEED_KMS,
    PIPELINE_VERSIONS,
    Exposure,
    pc_matrix,
)

BLOCK = 2880
ARCSEC2_PER_SR = (180.0 / np.pi * 3600.0) ** 2
SAA = (-30.0, -45.0)
"""Centre of the South Atlantic Anomaly (lat, lon), for the ground-track distance card."""


@dataclass
class WrittenFile:
    """What the writer tells the release: where, how big, its MD5, and what it injected."""

    key: str
    size: int
    md5: str
    truth: dict[str, np.ndarray]


def pad(data: bytes, fill: bytes = b"\0") -> bytes:
    return data + fill * (-len(data) % BLOCK)


def header_bytes(header: fits.Header) -> bytes:
    return header.tostring(sep="", endcard=True, padding=True).encode("ascii")


# ---------------------------------------------------------------------------------------------
# Per-detector constants (identical in every exposure of a detector, so computed once)


@cache
def base_sip(det: int, size: int) -> tuple[dict[str, float], dict[str, float]]:
    forward = sip_coefficients(det, size, np.zeros(2))
    return forward, sip_inverse(forward, size)


@cache
def solid_angle_map(det: int, size: int) -> np.ndarray:
    """Pixel solid angle (arcsec^2): the SIP Jacobian times the gnomonic cos^3 factor."""
    forward, _ = base_sip(det, size)
    centre = (size + 1) / 2.0
    g = np.arange(size, dtype=float) + 1.0 - centre
    uu, vv = np.meshgrid(g, g)

    def derivative(name: str, wrt: int) -> np.ndarray:
        out = np.zeros_like(uu)
        for p in range(4):
            for q in range(4 - p):
                c = forward.get(f"{name}_{p}_{q}", 0.0)
                if not c:
                    continue
                if wrt == 0 and p:
                    out += c * p * uu ** (p - 1) * vv**q
                elif wrt == 1 and q:
                    out += c * q * uu**p * vv ** (q - 1)
        return out

    jac = (1 + derivative("A", 0)) * (1 + derivative("B", 1)) - derivative("A", 1) * derivative(
        "B", 0
    )
    scale = PIXEL_SCALE_ARCSEC / 3600.0
    radius = np.hypot(uu + forward["A_0_0"], vv + forward["B_0_0"]) * np.radians(scale)
    return (jac * PIXEL_SCALE_ARCSEC**2 * np.cos(np.arctan(radius)) ** 3).astype(np.float32)


@cache
def permanent_defects(det: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Dead, hot and cold pixels of a detector: the same in every exposure and in the
    ``nonfunc`` calibration file. Rates as in real frames (N_NONFUNC 0.05-0.3 %)."""
    rng = np.random.default_rng([seed, 0xDEAD, det, size])
    n = size * size
    masks = {}
    for name, rate in (("NONFUNC", 1.2e-3), ("HOT", 3e-4), ("COLD", 2e-4)):
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=max(1, int(rate * n)), replace=False)] = True
        masks[name] = mask.reshape(size, size)
    return masks


def dichroic_rows(det: int, size: int) -> slice | None:
    """About 54 of 2040 rows at the long edge of D3 (bottom) and the short edge of D4 (top)."""
    rows = max(1, round(54 * size / 2040))
    if det == 3:
        return slice(0, rows)
    if det == 4:
        return slice(size - rows, size)
    return None


# ---------------------------------------------------------------------------------------------


class Level2Writer:
    """Writes the six detector files of an exposure; one instance per worker process."""

    def __init__(
        self,
        out: Path,
        release: str,
        size: int,
        seed: int,
        sky: SkyModel,
        calibrations: dict[tuple[int, int], list[tuple[str, str]]],
    ) -> None:
        self.out = out
        self.release = release
        self.size = size
        self.seed = seed
        self.sky = sky
        self.calibrations = calibrations
        """(product version, detector) -> (family, uuid) pairs for the HISTORY cards."""

    def write(self, exposure: Exposure, det: int) -> WrittenFile:
        size = self.size
        product = ProductVersion(exposure.version, exposure.processed)
        key = level2_key(self.release, exposure.obsid, det, product)
        o = exposure.obsid
        rng = np.random.default_rng(
            [
                self.seed,
                o.period.year,
                o.period.week,
                o.period.plan,
                o.large_slew,
                o.small_slew,
                det,
            ]
        )
        bits = flag_bits(exposure.version)

        # Celestial WCS with SIP; the per-exposure astrometric solution moves the constant terms.
        forward = sip_coefficients(det, size, np.asarray(exposure.jitter))
        sip = {**forward, **sip_inverse(forward, size)}
        crval = exposure.detector_centre(det, size)
        centre = (size + 1) / 2.0
        pc = pc_matrix(exposure.detector_pa(det))
        celestial = hdr.celestial_block(crval, (centre, centre), pc, sip)
        wcs = WCS(fits.Header(celestial))

        # Sky: zodiacal light over the LVF, then point sources through the PSF of their zone.
        yy, xx = np.mgrid[0:size, 0:size]
        wavelength = lvf_wavelength(det, xx, yy, size)
        ecliptic_lat = (
            SkyCoord(crval[0] * u.deg, crval[1] * u.deg)
            .transform_to(BarycentricMeanEcliptic())
            .lat.deg
        )
        gradient = 1.0 + 0.03 * (xx - size / 2) / size - 0.02 * (yy - size / 2) / size
        zodi = (zodi_brightness(wavelength, ecliptic_lat) * gradient).astype(np.float32)
        sources, truth = self._render_sources(wcs, det, crval)

        variance = variance_model(det, zodi + sources).astype(np.float32)
        image = zodi + sources + rng.standard_normal((size, size)) * np.sqrt(variance)
        flags = self._flags(det, exposure.version, sources, variance, rng)
        image = self._corrupt(image, flags, bits, rng)

        counts = count_flags(flags, bits)
        created = dt.datetime.combine(exposure.processed, dt.time()) + dt.timedelta(
            seconds=int(rng.integers(0, 86400)), milliseconds=int(rng.integers(0, 1000))
        )
        omega = solid_angle_map(det, size)
        wcs_block = (
            celestial
            + hdr.pixel_block((1.0, 1.0))
            + hdr.time_block(exposure.mjd_beg, exposure.mjd_end)
            + hdr.wave_block((1.0, 1.0))
        )
        image_header = hdr.image_header(
            det=det,
            size=size,
            obsid=str(o),
            expidn=o.expidn(det),
            created=created,
            survey_cards=self._survey_cards(exposure, crval),
            spacecraft_cards=self._spacecraft_cards(exposure),
            quality_cards=self._quality_cards(det, exposure.version, counts, omega),
            wcs_cards=wcs_block,
            calibrations=self.calibrations[(exposure.version, det)],
            product_version=exposure.version,
        )
        table = wave_table(det, size)
        parts = [
            header_bytes(hdr.primary_header(PIPELINE_VERSIONS[exposure.version])),
            header_bytes(image_header),
            pad(image.astype(">f4").tobytes()),
            header_bytes(hdr.flags_header(size, counts, bits, wcs_block)),
            pad(flags.astype(">i4").tobytes()),
            header_bytes(hdr.plane_header("VARIANCE", "MJy2 / sr2", size, wcs_block)),
            pad(variance.astype(">f4").tobytes()),
            header_bytes(hdr.plane_header("ZODI", "MJy / sr", size, wcs_block)),
            pad(zodi.astype(">f4").tobytes()),
            header_bytes(hdr.psf_header(size)),
            pad(psf_cube(det).astype(">f4").tobytes()),
            header_bytes(table.header()),
            pad(table.row_bytes()),
        ]
        return self._save(key, parts, truth)

    def _save(self, key: str, parts: list[bytes], truth: dict[str, np.ndarray]) -> WrittenFile:
        path = self.out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.md5()
        size = 0
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as fh:
            for part in parts:
                digest.update(part)
                fh.write(part)
                size += len(part)
        tmp.replace(path)  # a file is either whole or absent, never half-written
        return WrittenFile(key, size, digest.hexdigest(), truth)

    def _render_sources(self, wcs: WCS, det: int, crval) -> tuple[np.ndarray, dict]:
        size = self.size
        radius = size * PIXEL_SCALE_ARCSEC / 3600.0 * 0.75 + 0.05
        catalogue = self.sky.sources_in_cells(self.sky.cells_near(crval[0], crval[1], radius))
        model = np.zeros(size * size, dtype=np.float64)
        empty = {
            k: np.zeros(0)
            for k in ("source_id", "x", "y", "wavelength", "bandwidth", "flux", "zone")
        }
        if not len(catalogue.sources):
            return model.reshape(size, size), empty
        ra = np.asarray(catalogue.sources["ra"])
        dec = np.asarray(catalogue.sources["dec"])
        # The linear WCS finds the candidates; the SIP polynomial is only meant for the frame
        # and diverges far outside it.
        x, y = wcs.wcs_world2pix(ra, dec, 0)
        slack = 30
        candidate = (x > -slack) & (x < size + slack) & (y > -slack) & (y < size + slack)
        x, y = wcs.all_world2pix(ra[candidate], dec[candidate], 0)
        margin = 6
        near = (x > -margin) & (x < size - 1 + margin) & (y > -margin) & (y < size - 1 + margin)
        ids = np.asarray(catalogue.sources["source_id"])[candidate][near]
        x, y = x[near], y[near]
        lam = lvf_wavelength(det, np.clip(x, 0, size - 1), np.clip(y, 0, size - 1), size)
        bw = lvf_bandwidth(det, np.clip(x, 0, size - 1), np.clip(y, 0, size - 1), size)
        flux = catalogue.band_flux(ids, lam, bw)
        omega = solid_angle_map(det, size)
        ix, iy = PsfZones(size).zone_of(x, y)
        planes = PsfZones.plane(ix, iy)
        cube = psf_cube(det)
        for k in range(len(ids)):
            col = int(np.clip(round(x[k]), 0, size - 1))
            row = int(np.clip(round(y[k]), 0, size - 1))
            # uJy -> MJy/sr over this pixel's solid angle
            brightness = flux[k] * 1e-12 / (omega[row, col] / ARCSEC2_PER_SR)
            index, weight, _ = render_psf(cube[planes[k]], x[k], y[k], (size, size))
            model[index] += brightness * weight
        inside = (x >= -0.5) & (x < size - 0.5) & (y >= -0.5) & (y < size - 0.5)
        truth = {
            "source_id": ids[inside],
            "x": x[inside],
            "y": y[inside],
            "wavelength": lam[inside],
            "bandwidth": bw[inside],
            "flux": flux[inside],
            "zone": planes[inside],
        }
        return model.reshape(size, size), truth

    def _flags(self, det, version, sources, variance, rng) -> np.ndarray:
        size = self.size
        bits = flag_bits(version)
        flags = np.zeros((size, size), dtype=np.int64)

        def mark(name: str, mask: np.ndarray) -> None:
            if name in bits:
                flags[mask] |= 1 << bits[name]

        def sprinkle(rate: float) -> np.ndarray:
            return rng.random((size, size)) < rate

        for name, mask in permanent_defects(det, size, self.seed).items():
            mark(name, mask)
        rows = dichroic_rows(det, size)
        if rows is not None:
            band = np.zeros((size, size), dtype=bool)
            band[rows] = True
            mark("DICHROIC", band)
        mark("TRANSIENT", sprinkle(1.2e-2))
        mark("SUR_ERROR", sprinkle(7e-3))
        mark("PERSIST", sprinkle(4e-3))
        mark("PHANMISS", sprinkle(1e-4))
        mark("OUTLIER", sprinkle(3e-4))
        mark("FULLSAMPLE", sprinkle(256 / 2040**2))
        mark("SOURCE", sources > 0.5 * np.sqrt(variance_model(det, np.zeros(1)))[0])
        mark("NONLINEAR", sources > 40.0)
        mark("OVERFLOW", sources > 80.0)
        if rng.random() < 0.05:  # a readout channel lost for a few rows
            missing = np.zeros((size, size), dtype=bool)
            c0 = int(rng.integers(0, max(1, size - 64)))
            r0 = int(rng.integers(0, size))
            missing[r0 : r0 + 4, c0 : c0 + 64] = True
            mark("MISSING_DATA", missing)
        for name, rate in (
            ("SNOWBALL", 2e-7),
            ("GHOST", 4e-7),
            ("GHOST_FPA", 2e-7),
            ("GHOST_EXT", 2e-7),
            ("BLOOM", 1e-7),
            ("HALO", 1e-7),
        ):
            if name in bits:
                mark(name, _blobs(size, rate, rng))
        return flags.astype(np.int32)

    @staticmethod
    def _corrupt(image: np.ndarray, flags: np.ndarray, bits: dict[str, int], rng) -> np.ndarray:
        """What flagged pixels look like: spikes, hot and cold pixels, holes, artefacts."""

        def has(name: str) -> np.ndarray:
            return (flags & (1 << bits[name])) != 0 if name in bits else np.zeros_like(flags, bool)

        image = image.copy()
        spikes = has("TRANSIENT")
        image[spikes] += rng.exponential(2.0, spikes.sum())
        image[has("HOT")] += 5.0
        image[has("COLD")] *= 0.2
        image[has("PERSIST")] += 0.05
        for name in ("SNOWBALL", "GHOST", "GHOST_FPA", "GHOST_EXT", "BLOOM", "HALO"):
            image[has(name)] += 0.3
        image[has("NONFUNC") | has("MISSING_DATA")] = np.nan
        return image.astype(np.float32)

    def _survey_cards(self, exposure: Exposure, crval) -> list[tuple[str, object, str]]:
        ecl = SkyCoord(exposure.ra * u.deg, exposure.dec * u.deg).transform_to(
            BarycentricMeanEcliptic()
        )
        lat, lon = _ground_track(exposure)
        gcd = _great_circle(lat, lon, *SAA)
        return [
            ("SPS_TARGET", exposure.sps_target, "Survey planning target"),
            (
                "SPS_FLAGS",
                "all_sky" if exposure.survey == "wide" else "deep",
                "Survey planning flags",
            ),
            ("OBS_IN_SBAND", "False", "Observed in the S band pass"),
            ("NON_SURVEY", "False", "Non-survey observation"),
            ("SGT_LAT_MIDPT", round(lat, 6), "[deg] Ground track latitude"),
            ("SGT_LON_MIDPT", round(lon, 6), "[deg] Ground track longitude"),
            ("SGT_MIN_GCD2SAA", round(gcd, 6), "[deg] Ground track distance to SAA"),
            ("SPS_ELON", round(ecl.lon.deg, 6), "[deg] Planned boresight ecliptic longitude"),
            ("SPS_ELAT", round(ecl.lat.deg, 6), "[deg] Planned boresight ecliptic latitude"),
            ("SPS_EPA", float(exposure.epa), "[deg] Planned PA of focal-plane y axis"),
            ("L1DQAFLG", "Pass", "L1 data quality assessment"),
            ("RADESYS", "ICRS", "Equatorial coordinate system"),
        ]

    @staticmethod
    def _spacecraft_cards(exposure: Exposure) -> list[tuple[str, object, str]]:
        cards: list[tuple[str, object, str]] = []
        for label, mjd in (
            ("_START", exposure.mjd_beg),
            ("", exposure.mjd_avg),
            ("_END", exposure.mjd_end),
        ):
            r, v = _spacecraft_state(exposure, mjd)
            for axis, value in zip("XYZ", r, strict=True):
                cards.append(
                    (
                        f"{axis}_SC{label}",
                        round(float(value), 4),
                        f"[km] Spacecraft {axis} position{label.lower()}",
                    )
                )
            for axis, value in zip("XYZ", v, strict=True):
                cards.append(
                    (
                        f"V{axis}_SC{label}",
                        round(float(value), 6),
                        f"[km/s] Spacecraft {axis} velocity{label.lower()}",
                    )
                )
            if label == "_START":
                cards.append(("XYZ_SC_SYSTEM", "GEOCENTER", "Position reference"))
                cards.append(("VXYZ_SC_SYSTEM", "GEOCENTER", "Velocity reference"))
        return cards

    def _quality_cards(self, det, version, counts, omega) -> list[tuple[str, object, str]]:
        c = counts
        newer = version > 20
        total = omega.size
        cards: list[tuple[str, object, str]] = []
        if newer:
            cards += [
                ("NBLMPIX", c.get("BLOOM", 0), "Pixels in blooms"),
                ("NHALOPIX", c.get("HALO", 0), "Pixels in halos"),
                ("NSNOWPIX", c.get("SNOWBALL", 0), "Pixels in snowballs"),
            ]
        cards += [
            ("L2 N_NONLINEAR", c["NONLINEAR"], "Pixels flagged NONLINEAR"),
            ("PSTHRESH", 0.1, "[e-/s] Persistence threshold"),
            ("L2 N_PERSIST", c["PERSIST"], "Pixels flagged PERSIST"),
            ("DETCOORD", "sky", "Detector flipped to sky orientation"),
            ("L2 N_HOT", c["HOT"], "Pixels flagged HOT"),
            ("L2 N_COLD", c["COLD"], "Pixels flagged COLD"),
            ("L2 N_TRAN_NB", c["TRANSIENT"] // 9, "Transients next to bright pixels"),
            ("L2 N_PERS_NB", c["PERSIST"] // 11, "Persistence next to bright pixels"),
            (
                "OMEGA_MEDIAN",
                round(float(np.median(omega)), 4),
                "[arcsec2] Median pixel solid angle",
            ),
            (
                "OMEGA_STDDEV",
                round(float(np.std(omega)), 4),
                "[arcsec2] Stddev of pixel solid angle",
            ),
            ("FINAST", 0, "Fine astrometry status (0 = good)"),
        ]
        if newer:
            cards += [
                ("DAXIS", 0.31, "[arcsec] Astrometric residual"),
                ("CONTRAST", 4.2, "Astrometric match contrast"),
                ("MATCH_NSTARS", 412, "Stars matched for astrometry"),
                ("QS_NMATCH_VAR", 3.1, "Match count variance"),
                ("ASTRONETSOLVED", "True", "Blind astrometric solution found"),
            ]
        cards += [
            ("PXSRCMSK", round(100.0 * c["SOURCE"] / total, 3), "[%] Pixels with SOURCE"),
            ("L2 N_SOURCE", c["SOURCE"], "Pixels flagged SOURCE"),
        ]
        if newer:
            cards += [
                ("L2 N_GHOST", c["GHOST"], "Pixels flagged GHOST"),
                ("L2 N_GHOST_FPA", c["GHOST_FPA"], "Pixels flagged GHOST_FPA"),
                ("L2 N_GHOST_EXT", c["GHOST_EXT"], "Pixels flagged GHOST_EXT"),
                ("L2 N_BLOOM_NS", c["BLOOM"], "Bloom pixels not in sources"),
                ("L2 N_SNOW_NS", c["SNOWBALL"], "Snowball pixels not in sources"),
            ]
        cards += [
            ("L2 N_OUTLIER", c["OUTLIER"], "Pixels flagged OUTLIER"),
            ("PSF_FWHM", DETECTORS[det].psf_fwhm_arcsec, "[arcsec] PSF FWHM"),
            ("L2DQAFLG", "Pass", "L2 data quality assessment"),
            ("L2 N_TRANSIENT", c["TRANSIENT"], "Pixels flagged TRANSIENT"),
            ("L2 N_OVERFLOW", c["OVERFLOW"], "Pixels flagged OVERFLOW"),
            ("L2 N_SUR_ERROR", c["SUR_ERROR"], "Pixels flagged SUR_ERROR"),
            ("L2 N_NONFUNC", c["NONFUNC"], "Pixels flagged NONFUNC"),
            ("L2 N_DICHROIC", c["DICHROIC"], "Pixels flagged DICHROIC"),
            ("L2 N_MISSING", c["MISSING_DATA"], "Pixels flagged MISSING_DATA"),
            ("L2 N_FULLSAMPLE", c["FULLSAMPLE"], "Pixels flagged FULLSAMPLE"),
            ("L2 N_PHANMISS", c["PHANMISS"], "Pixels flagged PHANMISS"),
            ("REFCAT.VERSION", "SPHEREx_RefCat_v0.73", "Astrometric catalogue"),
        ]
        return cards


def _blobs(size: int, rate_per_pixel: float, rng) -> np.ndarray:
    """A few round artefacts (snowballs, ghosts) of 2-5 pixels radius."""
    mask = np.zeros((size, size), dtype=bool)
    count = rng.poisson(rate_per_pixel * size * size * 20)
    yy, xx = np.ogrid[0:size, 0:size]
    for _ in range(count):
        cx, cy, r = rng.integers(0, size), rng.integers(0, size), rng.uniform(2, 5)
        mask |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return mask


def _spacecraft_state(exposure: Exposure, mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """Geocentric position and velocity: the telescope looks out along the local zenith, and
    the orbit carries it along the scan circle (toward the focal-plane +y direction)."""
    bore = SkyCoord(exposure.ra * u.deg, exposure.dec * u.deg).cartesian.xyz.value
    ahead = (
        SkyCoord(exposure.ra * u.deg, exposure.dec * u.deg)
        .directional_offset_by(exposure.pa * u.deg, 1 * u.deg)
        .cartesian.xyz.value
    )
    tangent = ahead - bore * np.dot(ahead, bore)
    tangent /= np.linalg.norm(tangent)
    angle = 2 * np.pi * (mjd - exposure.mjd_avg) * 86400.0 / ORBIT_S
    r = ORBIT_RADIUS_KM * (bore * np.cos(angle) + tangent * np.sin(angle))
    v = ORBIT_SPEED_KMS * (tangent * np.cos(angle) - bore * np.sin(angle))
    return r, v


def _ground_track(exposure: Exposure) -> tuple[float, float]:
    r, _ = _spacecraft_state(exposure, exposure.mjd_avg)
    lat = np.degrees(np.arcsin(r[2] / np.linalg.norm(r)))
    gmst = (280.46061837 + 360.98564736629 * (exposure.mjd_avg - 51544.5)) % 360.0
    lon = (np.degrees(np.arctan2(r[1], r[0])) - gmst + 180.0) % 360.0 - 180.0
    return float(lat), float(lon)


def _great_circle(lat1, lon1, lat2, lon2) -> float:
    a = SkyCoord(lon1 * u.deg, lat1 * u.deg)
    return float(a.separation(SkyCoord(lon2 * u.deg, lat2 * u.deg)).deg)
