"""Write a whole synthetic release: calibration files, spectral images, manifests and truth.

The output folder plays the part of the bucket root: every file lands at its S3 key
(``qr2/level2/<planning period>/l2b-v<NN>-<date>/<det>/<name>``), each delivery folder gets an
``MD5SUMS`` manifest (``md5sum -c MD5SUMS`` checks it), and ``truth/`` beside the release holds
what was injected (never served as data).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from tqdm import tqdm

from spherex_archive.products.detectors import DETECTORS, PIXEL_SCALE_ARCSEC
from spherex_archive.products.naming import RELEASES, PlanningPeriod
from spherex_archive.synth import calibration
from spherex_archive.synth.level2 import Level2Writer, WrittenFile
from spherex_archive.synth.sky import Showcase, SkyModel, TruthCatalogue
from spherex_archive.synth.survey import (
    DEEP_FIELDS,
    DEMO_DEEP,
    DEMO_FIELDS,
    WIDE_FIELDS,
    Exposure,
    SurveyPlan,
)

MIN_SIZE = 32
DEMO_SIZE = 128

SMALL_RELEASE = dict(
    detector_size=64,
    fields=["M31", "NCP", "RA0"],
    exposures=2,
    deep_fields=[("NEP", 8), ("SEP", 2)],
    seed=7,
)
"""SynthOptions of the test suite's release: every kind of product, the poles, RA = 0 and both
deep fields, written in seconds (36 wide, 60 deep and 74 calibration files)."""

SHOWCASE_KINDS = {"NEP": ("emission", 5800.0, 2000.0), "SEP": ("absorption", 3600.0, 1500.0)}


@dataclass
class SynthOptions:
    """Everything that decides the bytes of a synthetic release."""

    out: Path
    release: str = "qr2"
    seed: int = 42
    detector_size: int = 2040
    fields: list[str] = field(default_factory=lambda: list(DEMO_FIELDS))
    exposures: int = 3
    deep_fields: list[tuple[str, int]] = field(default_factory=lambda: list(DEMO_DEEP))
    weeks: list[PlanningPeriod] | None = None
    detectors: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    covering: tuple[float, float] | None = None
    """Write only the spectral images on which this (RA, Dec) falls: a deep stack for one
    source without the thousands of images around it (benchmarks, photometry experiments)."""
    workers: int = 0
    """0: one per core."""

    def validate(self) -> None:
        if self.release not in RELEASES:
            raise ValueError(
                f"unknown release {self.release!r}: this generator writes {', '.join(RELEASES)}"
            )
        if self.detector_size < MIN_SIZE or self.detector_size > 2040:
            raise ValueError(
                f"--detector-size must be between {MIN_SIZE} and 2040 pixels, "
                f"not {self.detector_size}"
            )
        if self.exposures < 0:
            raise ValueError(f"--exposures must be 0 or more, not {self.exposures}")
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"output folder {self.out} exists and is not a folder")
        for name in self.fields:
            _field_position(name)
        for name, count in self.deep_fields:
            if name not in DEEP_FIELDS:
                raise ValueError(
                    f"unknown deep field {name!r}: choose from {', '.join(DEEP_FIELDS)}"
                )
            if count < 0:
                raise ValueError(f"deep field {name}: the number of exposures must be >= 0")
        for det in self.detectors:
            if det not in DETECTORS:
                raise ValueError(f"no detector {det}: detectors are 1 to 6")
        if self.covering is not None:
            ra, dec = self.covering
            if not (0 <= ra < 360 and -90 <= dec <= 90):
                raise ValueError(f"--covering {ra},{dec}: RA must be in [0, 360), Dec in [-90, 90]")


def _field_position(name: str) -> tuple[str, float, float, int]:
    """A named field, or ``ra:dec`` / ``ra:dec:survey`` in degrees."""
    if name.upper() in WIDE_FIELDS:
        return (name.upper(), *WIDE_FIELDS[name.upper()])
    parts = name.split(":")
    try:
        ra, dec = float(parts[0]), float(parts[1])
        survey = int(parts[2]) if len(parts) > 2 else 1
    except (ValueError, IndexError):
        raise ValueError(
            f"unknown field {name!r}: use one of {', '.join(WIDE_FIELDS)} or RA:DEC in degrees"
        ) from None
    if not (0 <= ra < 360 and -90 <= dec <= 90 and survey >= 1):
        raise ValueError(f"field {name!r}: RA must be in [0, 360), Dec in [-90, 90]")
    return (f"{ra:.4f}{dec:+.4f}", ra, dec, survey)


def plan(options: SynthOptions) -> list[Exposure]:
    survey = SurveyPlan(
        seed=options.seed,
        size=options.detector_size,
        wide_fields=[_field_position(f) for f in options.fields],
        exposures_per_field=options.exposures,
        deep_fields=options.deep_fields,
        periods=options.weeks,
    )
    return survey.exposures()


def level2_file_bytes(size: int) -> int:
    """Approximate bytes of one spectral image of this detector size (for the disk check)."""
    planes = 4 * (-(-size * size * 4 // 2880) * 2880)
    return 39 * 2880 + planes + 4939200


def showcases(options: SynthOptions) -> list[Showcase]:
    """A bright source at the centre of every field, so that the deep fields give a source
    with a spectrum of about a hundred points."""
    out = []
    for name, _count in options.deep_fields:
        kind, temperature, flux = SHOWCASE_KINDS.get(name, ("star", 5000.0, 2000.0))
        ra, dec = DEEP_FIELDS[name]
        out.append(Showcase(f"{name}-showcase", ra, dec, kind, temperature, flux))
    for entry in options.fields:
        label, ra, dec, _ = _field_position(entry)
        out.append(Showcase(f"{label}-showcase", ra, dec, "star", 6500.0, 5000.0))
    return out


# Worker processes get their writer once, not with every task.
_WRITER: Level2Writer | None = None


def _init_worker(writer: Level2Writer) -> None:
    global _WRITER
    _WRITER = writer


def _write_task(task: tuple[Exposure, int]) -> WrittenFile:
    assert _WRITER is not None
    return _WRITER.write(*task)


@dataclass
class SynthReport:
    files: int
    bytes: int
    exposures: int
    seconds_per_file: float


def synthesise(
    options: SynthOptions, progress: bool = True, log: Callable[[str], None] = print
) -> SynthReport:
    """Write the release described by ``options`` under ``options.out``."""
    import time

    options.validate()
    exposures = plan(options)
    tasks = [(e, d) for e in exposures for d in options.detectors]
    if options.covering is not None:
        tasks = [
            (e, d)
            for e, d in tasks
            if e.detector_covers(d, options.detector_size, *options.covering)
        ]
    cal_products = calibration.products(options.detectors)
    needed = (
        len(tasks) * level2_file_bytes(options.detector_size) * 1.02
        + 5e7 * len(cal_products) * (options.detector_size / 2040) ** 2
    )
    options.out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(options.out).free
    if needed > free:
        raise ValueError(
            f"not enough disk space in {options.out}: the release needs about "
            f"{needed / 1e9:.1f} GB and {free / 1e9:.1f} GB are free"
        )
    log(
        f"Writing {len(tasks)} spectral images ({len(exposures)} exposures) and "
        f"{len(cal_products)} calibration files of {options.detector_size} px, about "
        f"{needed / 1e9:.2f} GB, to {options.out / options.release}"
    )
    sky = SkyModel(options.seed, showcases(options))
    manifest: dict[Path, list[tuple[str, str]]] = defaultdict(list)

    cal_writer = calibration.CalibrationWriter(
        options.out, options.release, options.detector_size, options.seed
    )
    for product in tqdm(cal_products, desc="calibration", unit="file", disable=not progress):
        key, _, md5 = cal_writer.write(product)
        manifest[_delivery_of(key, calibration_file=True)].append((md5, key))

    uses = {
        (v, d): calibration.used_by(v, d, options.release)
        for v in {e.version for e in exposures}
        for d in options.detectors
    }
    writer = Level2Writer(
        options.out, options.release, options.detector_size, options.seed, sky, uses
    )
    workers = options.workers or os.cpu_count() or 1
    started = time.perf_counter()
    written: list[WrittenFile] = []
    bar = tqdm(total=len(tasks), desc="spectral images", unit="file", disable=not progress)
    if workers == 1 or len(tasks) < 2:
        _init_worker(writer)
        for task in tasks:
            written.append(_write_task(task))
            bar.update()
    else:
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(writer,)) as pool:
            for result in pool.imap_unordered(_write_task, tasks, chunksize=1):
                written.append(result)
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - started
    for item in written:
        manifest[_delivery_of(item.key)].append((item.md5, item.key))
    _write_manifests(options.out, manifest)
    _write_truth(options, sky, exposures, written)
    total = sum(w.size for w in written)
    return SynthReport(len(written), total, len(exposures), elapsed / max(1, len(written)))


def _delivery_of(key: str, calibration_file: bool = False) -> Path:
    """The delivery folder of a file: ``qr2/level2/<period>/<l2b-version>/`` for images,
    ``qr2/<family>/<token>/`` for calibration files."""
    parts = Path(key).parts
    return Path(*parts[:3]) if calibration_file else Path(*parts[:4])


def _write_manifests(out: Path, manifest: dict[Path, list[tuple[str, str]]]) -> None:
    for folder, entries in manifest.items():
        lines = sorted(
            f"{md5}  {Path(key).relative_to(folder).as_posix()}\n" for md5, key in entries
        )
        existing = out / folder / "MD5SUMS"
        if existing.exists():  # a re-run adds to the delivery, it never forgets files
            lines = sorted(set(lines) | set(existing.read_text().splitlines(keepends=True)))
        existing.write_text("".join(lines))


def _write_truth(options, sky: SkyModel, exposures, written: list[WrittenFile]) -> None:
    truth_dir = options.out / "truth"
    cells: set[int] = set()
    radius = options.detector_size * PIXEL_SCALE_ARCSEC / 3600.0 * 0.75 + 0.05
    for exposure in exposures:
        for det in options.detectors:
            ra, dec = exposure.detector_centre(det, options.detector_size)
            cells.update(int(c) for c in sky.cells_near(ra, dec, radius))
    catalogue = sky.sources_in_cells(np.array(sorted(cells), dtype=np.int64))
    catalogue.sources.sort("source_id")
    catalogue.features.sort(["source_id", "center"])
    TruthCatalogue(catalogue.sources, catalogue.features).write(truth_dir)

    rows = []
    for item in sorted(written, key=lambda w: w.key):
        n = len(item.truth["source_id"])
        if not n:
            continue
        t = Table({k: np.asarray(v) for k, v in item.truth.items()})
        t["source_id"] = t["source_id"].astype(np.int64)
        t["zone"] = t["zone"].astype(np.int32)
        t["key"] = np.full(n, item.key)
        rows.append(t)
    measurements = vstack(rows) if rows else Table()
    if len(measurements):
        for name, unit in (
            ("x", "pix"),
            ("y", "pix"),
            ("wavelength", "um"),
            ("bandwidth", "um"),
            ("flux", "uJy"),
        ):
            measurements[name].unit = unit
        measurements.write(truth_dir / "injected.ecsv", overwrite=True)
    (truth_dir / "parameters.json").write_text(
        json.dumps(
            {
                **{
                    k: v for k, v in asdict(options).items() if k not in ("out", "weeks", "workers")
                },
                "weeks": [str(w) for w in options.weeks] if options.weeks else None,
            },
            indent=2,
        )
        + "\n"
    )
    (truth_dir / "README.md").write_text(TRUTH_README)


TRUTH_README = """\
# Truth of a synthetic SPHEREx release

Written by `spherex-archive synth` beside the release; never served as data.

- `sources.ecsv`: every injected point source. `source_id` (1..n are the bright "showcase"
  sources at field centres, named in `name`), `ra`, `dec` (deg, ICRS), `kind`
  (star, emission, absorption), `temperature` (K) and `flux_1p6` (uJy): the continuum is a
  blackbody f_nu scaled to `flux_1p6` at 1.6 um.
- `features.ecsv`: spectral features per source. `emission`: adds `strength` (uJy um) times a
  unit-area Gaussian of centre `center` and width `sigma` (um). `absorption`: multiplies the
  continuum by `1 - strength * exp(-(lambda - center)^2 / (2 sigma^2))`.
- `injected.ecsv`: one row per source and spectral image whose pixel grid holds the source
  centre: `key` (the file's path below the bucket root), `x`, `y` (0-based pixels),
  `wavelength`, `bandwidth` (um, from the spectral-WCS calibration model at that pixel),
  `flux` (uJy: the mean of f_nu over the top-hat band wavelength +/- bandwidth / 2, which is
  what was injected), `zone` (0-based PSF plane).
- `parameters.json`: the options that made the release (the same options give the same bytes).

Read them with astropy: `Table.read("truth/sources.ecsv")`,
`Table.read("truth/injected.ecsv")`, or with
`spherex_archive.synth.sky.TruthCatalogue.read("truth")`, whose `band_flux` and `spectrum`
evaluate the spectra.
"""
