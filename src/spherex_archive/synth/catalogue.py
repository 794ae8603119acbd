"""Fill a catalogue with N realistic planes straight from the survey pattern, without files.

The same scan geometry as ``survey.py``, vectorised: each orbit the focal plane steps along the
great circle through the ecliptic poles perpendicular to the Sun, in large slews of four small
ones, and visits both deep fields; the circle turns with the Sun, so five years of this give the
sky depth the real survey has (hundreds of planes over any point, thousands at the poles).
Footprints are the detectors' gnomonic squares (no SIP: a few pixels do not matter to a query
benchmark). Rows go in through the catalogue's bulk path (COPY on PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import numpy as np
from astropy.time import Time
from tqdm import tqdm

from spherex_archive.catalogue import Catalogue, spatial
from spherex_archive.catalogue.base import stable_id
from spherex_archive.ingest.rows import URI_PREFIX
from spherex_archive.model import tables as model
from spherex_archive.products.detectors import DETECTORS, PIXEL_SCALE_ARCSEC
from spherex_archive.products.naming import PlanningPeriod, collection_name
from spherex_archive.synth.survey import (
    DEEP_FIELDS,
    SMALL_SLEW_CADENCE_S,
    SURVEY_START,
    XPOSURE,
    FocalPlane,
    sun_longitude,
)

OBLIQUITY = np.radians(23.4392911)
ECLIPTIC_TO_ICRS = np.array(
    [
        [1, 0, 0],
        [0, np.cos(OBLIQUITY), -np.sin(OBLIQUITY)],
        [0, np.sin(OBLIQUITY), np.cos(OBLIQUITY)],
    ]
)
EXPOSURES_PER_ORBIT = 44  # 98 minutes at one exposure every ~134 s
DEEP_PER_ORBIT = 8  # four small slews at each pole
FILE_SIZE = 71_637_120
POLYGON = "POLYGON ICRS" + " %.8f %.8f" * 5


def _exposures(first: int, count: int, size: int, rng) -> dict[str, np.ndarray]:
    """Boresight frame (b, y axis), time and kind of exposures first..first+count."""
    index = np.arange(first, first + count)
    orbit, slot = np.divmod(index, EXPOSURES_PER_ORBIT)
    mjd0 = Time(SURVEY_START).mjd
    mjd = mjd0 + orbit * 98.0 / 1440.0 + slot * SMALL_SLEW_CADENCE_S / 86400.0
    sun = np.radians(sun_longitude(mjd))
    pole = np.stack([np.cos(sun), np.sin(sun), np.zeros_like(sun)], axis=1)
    north = np.array([0.0, 0.0, 1.0])
    across = np.cross(pole, north)  # the circle passes through north and across
    plane = FocalPlane(size)
    height = np.radians(plane.height * PIXEL_SCALE_ARCSEC / 3600.0)
    wide = slot >= DEEP_PER_ORBIT
    large, small = np.divmod(np.where(wide, slot - DEEP_PER_ORBIT, slot), 4)
    # Wide: the large slews of successive orbits continue around the circle.
    slews_per_orbit = (EXPOSURES_PER_ORBIT - DEEP_PER_ORBIT) // 4
    phase = (orbit * slews_per_orbit + large) * height + (small - 1.5) * height / 4
    phase = phase % (2 * np.pi)
    b = np.cos(phase)[:, None] * north + np.sin(phase)[:, None] * across
    y = -np.sin(phase)[:, None] * north + np.cos(phase)[:, None] * across
    # Deep: the first four slots at the NEP, the next four at the SEP, dithered.
    deep_field = np.where(large == 0, "NEP", "SEP")
    for name in ("NEP", "SEP"):
        chosen = ~wide & (deep_field == name)
        if not chosen.any():
            continue
        ra, dec = DEEP_FIELDS[name]
        centre = ECLIPTIC_TO_ICRS.T @ spatial.unit_vectors(ra, dec)
        offset = rng.normal(0.0, np.radians(2.0), (chosen.sum(), 3))
        bb = centre + offset - (offset @ centre)[:, None] * centre
        b[chosen] = bb / np.linalg.norm(bb, axis=1, keepdims=True)
        yy = np.cross(pole[chosen], b[chosen])
        y[chosen] = yy / np.linalg.norm(yy, axis=1, keepdims=True)
    survey = ((mjd - mjd0) // 182.6).astype(int)
    y = np.where((survey % 2 == 1)[:, None], -y, y)  # SPS_EPA 0 / 180
    return {
        "index": index,
        "mjd": mjd,
        "b": b,
        "y": y,
        "wide": wide,
        "orbit": orbit,
        "slot": slot,
        "large": large,
        "small": small + 1,
    }


def _detector_corners(e: dict, det: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres and corners (ra, dec) of one detector in every exposure of ``e``."""
    s = np.radians(PIXEL_SCALE_ARCSEC / 3600.0)
    dx, dy = FocalPlane(size).offset(det)
    b, y = e["b"], e["y"]
    x = np.cross(y, b)
    centre = b + (dy * s) * y + (dx * s) * x
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    half = size / 2 * s
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        c = centre + sx * half * x + sy * half * y
        corners.append(c / np.linalg.norm(c, axis=1, keepdims=True))
    corners = np.stack(corners, axis=1) @ ECLIPTIC_TO_ICRS.T
    centre = centre @ ECLIPTIC_TO_ICRS.T
    ra, dec = spatial.to_radec(corners)
    cra, cdec = spatial.to_radec(centre)
    return np.stack([cra, cdec], axis=1), ra, dec


def _period(mjd: float, seed: int) -> PlanningPeriod:
    when = Time(mjd, format="mjd").to_datetime()
    year, week, weekday = when.isocalendar()
    plan = 1 if (weekday - 1) * 24 + when.hour < 84 else 2
    return PlanningPeriod(year, week, plan, "A")


def batches(
    n_planes: int, seed: int, size: int, authority: str, release: str, batch: int
) -> Iterator[dict[str, list]]:
    """Rows of the observation, plane and artifact tables, ``batch`` exposures at a time."""
    rng = np.random.default_rng([seed, 0xCA7])
    exposures = -(-n_planes // 6)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    done = 0
    for first in range(0, exposures, batch):
        count = min(batch, exposures - first)
        e = _exposures(first, count, size, rng)
        periods = {}
        obs_rows, plane_rows, artifact_rows, footprints = [], [], [], []
        for k in range(count):
            orbit_day = int(e["mjd"][k] * 2)
            if orbit_day not in periods:
                periods[orbit_day] = _period(e["mjd"][k], seed)
        for det in DETECTORS.values():
            if done >= n_planes:
                break
            centres, ra, dec = _detector_corners(e, det.number, size)
            for k in range(count):
                if done >= n_planes:
                    break
                done += 1
                period = periods[int(e["mjd"][k] * 2)]
                obsid = f"{period}_{(int(e['index'][k]) // 4) % 10000:04d}_{int(e['small'][k])}"
                collection = collection_name("wide" if e["wide"][k] else "deep", release)
                did = f"{authority}/{collection}?{obsid}/D{det.number}"
                obs_key = stable_id(collection, obsid)
                planeid = stable_id(did)
                if det.number == 1:
                    obs_rows.append(
                        (
                            obs_key,
                            obsid,
                            collection,
                            "science",
                            "exposure",
                            "exposure",
                            str(period),
                            int(e["index"][k] // 4 % 10000),
                            int(e["small"][k]),
                            f"SPS_{10000 + int(e['index'][k]) % 89999}",
                            "SPHEREx",
                            "SPHEREx",
                            "SPHEREx",
                            "SPHEREx LVF Survey Data",
                        )
                    )
                mjd = float(e["mjd"][k])
                poly = POLYGON % (
                    ra[k, 0],
                    dec[k, 0],
                    ra[k, 1],
                    dec[k, 1],
                    ra[k, 2],
                    dec[k, 2],
                    ra[k, 3],
                    dec[k, 3],
                    ra[k, 0],
                    dec[k, 0],
                )
                plane_rows.append(
                    (
                        planeid,
                        obs_key,
                        did,
                        f"D{det.number}",
                        "image",
                        "science",
                        2,
                        det.number,
                        det.bandpass_name,
                        det.em_min_m,
                        det.em_max_m,
                        det.resolving_power,
                        round(mjd, 6),
                        round(mjd + 115.1 / 86400, 6),
                        XPOSURE,
                        float(centres[k, 0]),
                        float(centres[k, 1]),
                        poly,
                        round(size * PIXEL_SCALE_ARCSEC / 3600, 6),
                        PIXEL_SCALE_ARCSEC,
                        size,
                        size,
                        det.psf_fwhm_arcsec,
                        "6.5.6",
                        22,
                        "2026-01-01 00:00:00",
                        "Pass",
                        None,
                        None,
                        None,
                        now,
                        now,
                    )
                )
                key = (
                    f"{release}/level2/{period}/l2b-v22-2026-001/{det.number}/"
                    f"level2_{obsid}D{det.number}_spx_l2b-v22-2026-001.fits"
                )
                artifact_rows.append(
                    (
                        stable_id(URI_PREFIX + key),
                        planeid,
                        URI_PREFIX + key,
                        "science",
                        "image/fits",
                        f"md5:{planeid:032x}",
                        FILE_SIZE,
                        22,
                        1,
                        now,
                    )
                )
                footprints.append((planeid, ra[k], dec[k]))
        yield {
            "observation": obs_rows,
            "plane": plane_rows,
            "artifact": artifact_rows,
            "footprints": footprints,
        }


def fill(
    catalogue: Catalogue,
    n_planes: int,
    *,
    seed: int = 1,
    size: int = 2040,
    release: str = "qr2",
    batch: int = 20_000,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> int:
    """Add ``n_planes`` survey planes to ``catalogue``; returns how many were written."""
    catalogue.create()
    authority = catalogue.config()["authority"]
    columns = {
        "observation": model.OBSERVATION.column_names,
        "plane": model.PLANE.column_names,
        "artifact": model.ARTIFACT.column_names,
    }
    written = 0
    bar = tqdm(total=n_planes, desc="planes", unit="plane", unit_scale=True, disable=not progress)
    for rows in batches(n_planes, seed, size, authority, release, batch):
        with catalogue.writer() as writer:
            writer.bulk_insert("observation", columns["observation"], rows["observation"])
            writer.insert_planes(
                columns["plane"],
                rows["plane"],
                np.array([f[1] for f in rows["footprints"]]),
                np.array([f[2] for f in rows["footprints"]]),
            )
            writer.bulk_insert("artifact", columns["artifact"], rows["artifact"])
        written += len(rows["plane"])
        bar.update(len(rows["plane"]))
    bar.close()
    register_collections(catalogue)
    catalogue.refresh_statistics()
    return written


def register_collections(catalogue: Catalogue) -> None:
    """List the filled collections where services look them up. Their coverage maps are not
    computed: at millions of full-size footprints that would cost more than the fill."""
    from spherex_archive.ingest import coverage

    with catalogue.writer() as writer:
        i = writer.dialect.internal
        counts = writer.fetchall(
            f"SELECT o.collection, COUNT(*) FROM {i('plane')} p "
            f"JOIN {i('observation')} o ON o.obsid = p.obsid GROUP BY o.collection"
        )
        for collection, planes in counts:
            coverage.register(writer, collection, int(planes))
