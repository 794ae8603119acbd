"""The spectrophotometry service at ``/api/spherex/spectrophotometry/async`` (IRSA's path): UWS
1.1 jobs running :mod:`spherex_archive.services.spectrophotometry`.

Parameters (DALI: names case-insensitive, GET or POST, url-encoded or multipart):

- ``POINT=ra,dec`` (degrees, repeatable), and/or ``SOURCES=param:<part>``: a table posted in the
  multipart part ``<part>`` with columns ``ra``, ``dec`` and optionally ``id``;
- ``BKG_REGION_SIZE`` (pixels, default 15): the outer radius of the background annulus;
- ``METHOD``: ``psf`` (default) or ``aperture``;
- ``TIME`` (MJD ``lo hi``), ``BAND`` (metres ``lo hi``), ``COLLECTION``: as in SIA, repeatable.

A request the service cannot read ends the job in ERROR with the reason; a position no image
covers ends it COMPLETED with empty tables and the reason in their ``message`` INFO.
Results: ``result`` (one row per measurement, VOTable), ``result-csv``, ``result-ecsv``,
``spectrum`` (the binned spectrum, VOTable), ``spectrum-png`` (a plot) and ``datalink`` (a
DataLink document: each image's file, and a SODA async descriptor that cuts out every image of a
source in one job).

The same results come out of ``spherex-archive spectrophotometry`` (:func:`write_results`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter

# Imported with the module, so that the job forkserver, which preloads the modules of the job
# kinds, has it ready: importing it costs a job half a second.
from matplotlib.figure import Figure

from spherex_archive.config import Settings
from spherex_archive.formats import votable
from spherex_archive.formats.tabular import CSV_MEDIA_TYPE, write_csv
from spherex_archive.formats.votable import IdentifiedColumn, Param
from spherex_archive.ingest.rows import URI_PREFIX
from spherex_archive.jobs import JobFailure, JobKind, Result, TaskContext
from spherex_archive.model.schema import Column
from spherex_archive.products.detectors import PIXEL_SCALE_ARCSEC
from spherex_archive.protocols.datalink import descriptor_element
from spherex_archive.protocols.uws import uws_router
from spherex_archive.server.dali import DaliError, single
from spherex_archive.services import datalink as dl
from spherex_archive.services import spectrophotometry as sp
from spherex_archive.services.shapes import ValueProblem

BASE = "/api/spherex/spectrophotometry"
SODA_ASYNC_PATH = "/soda/async"
SODA_ASYNC_ID = "ivo://ivoa.net/std/SODA#async-1.0"
ECSV_MEDIA_TYPE = "text/x-ecsv"
PNG = "image/png"
DID_REF = "obs_publisher_did"
"""XML ID of the dataset-id FIELD that the cutout descriptors' ID input refers to."""

JOBS = JobKind("spectrophotometry", "spherex_archive.protocols.spectrophotometry:run_job")

router = APIRouter()
router.include_router(uws_router(BASE + "/async", JOBS))


# --------------------------------------------------------------------------------------------
# The request


def parse_request(
    params: dict[str, list[str]], uploads: dict[str, Path]
) -> tuple[list[sp.Source], sp.Options]:
    """Sources and options of a job (SpectrophotometryError or DaliError when they are bad)."""
    sources = [
        sp.Source(f"POINT{i}", *sp.parse_point(value))
        for i, value in enumerate(params.get("POINT", []), start=1)
    ]
    for reference in params.get("SOURCES", []):
        part = reference.removeprefix("param:")
        if part not in uploads:
            raise sp.SpectrophotometryError(
                f"SOURCES: no table was posted in a part named {part!r} (SOURCES=param:<part>)"
            )
        sources.extend(sp.read_sources(uploads[part]))
    if not sources:
        raise sp.SpectrophotometryError(
            "no position: give POINT=ra,dec (degrees) or SOURCES=param:<part> with a table"
        )
    size = single(params, "BKG_REGION_SIZE")
    try:
        bkg = int(size) if size is not None else sp.DEFAULT_BKG_REGION_SIZE
    except ValueError:
        raise sp.SpectrophotometryError(
            f"BKG_REGION_SIZE: {size!r} is not a whole number of pixels"
        ) from None
    options = sp.Options(
        bkg_region_size=bkg,
        method=(single(params, "METHOD") or "psf").lower(),
        time=tuple(params.get("TIME", [])),
        band=tuple(params.get("BAND", [])),
        collections=tuple(params.get("COLLECTION", [])),
    )
    return sources, options


def run_job(ctx: TaskContext) -> list[Result]:
    """A spectrophotometry job, in a worker: lists of sources go to the Dask cluster when the
    deployment names one (``dask_scheduler``)."""
    from spherex_archive.catalogue import open_catalogue
    from spherex_archive.server.app import storage_options
    from spherex_archive.services.query import QueryEngine
    from spherex_archive.store import open_store

    settings = Settings.model_validate(ctx.settings)
    try:
        sources, options = parse_request(ctx.parameters, ctx.uploads)
    except (ValueProblem, DaliError) as error:
        raise JobFailure(getattr(error, "message", str(error))) from None
    catalogue = open_catalogue(settings.catalogue)
    try:
        engine = QueryEngine(catalogue, timeout=settings.query_timeout)
        store = open_store(settings.data, **storage_options(settings))

        def progress(done: int) -> None:
            ctx.progress(done / len(sources), f"{done} of {len(sources)} sources measured")

        try:
            if settings.dask_scheduler and len(sources) > 1:
                with _dask_client(settings.dask_scheduler) as client:
                    found = sp.measure_on_dask(
                        client,
                        settings.catalogue,
                        settings.data,
                        sources,
                        options,
                        storage=storage_options(settings),
                        should_stop=ctx.should_stop,
                        progress=progress,
                    )
            else:
                found = sp.measure_sources(
                    store, engine, sources, options, ctx.should_stop, progress
                )
        except ValueProblem as error:  # an unknown collection, a bad TIME or BAND
            raise JobFailure(str(error)) from None
    finally:
        catalogue.close()
    message = no_measurement_message(sources, found)
    return write_results(ctx.workdir, sources, found, options, settings.base_url, message)


def _dask_client(address: str):
    """A client of the deployment's cluster; inside a Dask task (the Dask job executor), the
    worker's own client, which lets the task wait for its sub-tasks without holding a slot."""
    from distributed import Client, get_worker, worker_client

    try:
        get_worker()
    except ValueError:
        return Client(address, set_as_default=False, timeout="30s")
    return worker_client()


def no_measurement_message(sources: Sequence[sp.Source], found: Sequence[sp.Measurement]) -> str:
    """Why some sources have no measurement ('' when every one has some)."""
    measured = {m.source.id for m in found}
    missing = [s for s in sources if s.id not in measured]
    if not missing:
        return ""
    named = ", ".join(f"{s.id} ({s.ra:g}, {s.dec:g})" for s in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return f"no spectral image passing the filters covers {named}{more}"


# --------------------------------------------------------------------------------------------
# Results


def write_results(
    workdir: Path,
    sources: Sequence[sp.Source],
    found: Sequence[sp.Measurement],
    options: sp.Options,
    base_url: str,
    message: str = "",
) -> list[Result]:
    """Every result file of a run, written in ``workdir``."""
    base_url = base_url.rstrip("/")
    spectrum = sp.bin_spectrum(found)
    infos = {"method": options.method, "bkg_region_size": str(options.bkg_region_size)}
    if message:
        infos["message"] = message
    descriptors = [cutout_descriptor(s, i, options, base_url) for i, s in enumerate(sources)]
    columns = [
        IdentifiedColumn(**_fields(c), xml_id=DID_REF) if c.name == DID_REF else c
        for c in sp.MEASUREMENT_COLUMNS
    ]
    rows = [m.row() for m in found]
    _write(
        workdir / "measurements.xml",
        votable.write_votable(columns, rows, infos=infos, resources=descriptors),
    )
    _write(workdir / "measurements.csv", write_csv(sp.MEASUREMENT_COLUMNS, rows))
    _write_ecsv(workdir / "measurements.ecsv", sp.MEASUREMENT_COLUMNS, rows, infos)
    _write(
        workdir / "spectrum.xml",
        votable.write_votable(sp.SPECTRUM_COLUMNS, [p.row() for p in spectrum], infos=infos),
    )
    (workdir / "spectrum.png").write_bytes(plot(sources, found, spectrum))
    _write(workdir / "datalink.xml", [links_document(sources, found, options, base_url)])
    return [
        Result("result", "measurements.xml", votable.MEDIA_TYPE),
        Result("result-csv", "measurements.csv", CSV_MEDIA_TYPE),
        Result("result-ecsv", "measurements.ecsv", ECSV_MEDIA_TYPE),
        Result("spectrum", "spectrum.xml", votable.MEDIA_TYPE),
        Result("spectrum-png", "spectrum.png", PNG),
        Result("datalink", "datalink.xml", dl.MEDIA_TYPE),
    ]


def _fields(column: Column) -> dict:
    return {f: getattr(column, f) for f in Column.__dataclass_fields__}


def _write(path: Path, chunks) -> None:
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)


def _write_ecsv(
    path: Path, columns: Sequence[Column], rows: list[tuple], infos: dict[str, str]
) -> None:
    from astropy.table import Table

    table = Table(rows=rows or None, names=[c.name for c in columns], meta=dict(infos))
    if not rows:
        table = Table(
            [[] for _ in columns],
            names=[c.name for c in columns],
            dtype=[_ECSV_TYPES[c.datatype] for c in columns],
            meta=dict(infos),
        )
    for column in columns:
        table[column.name].unit = column.unit
        table[column.name].description = column.description
    table.write(path, format="ascii.ecsv", overwrite=True)


_ECSV_TYPES = {"char": str, "short": "i2", "int": "i4", "double": "f8", "float": "f4"}


def cutout_radius(options: sp.Options) -> float:
    """Degrees: the background region's radius, so a cutout shows what the fit saw."""
    return options.bkg_region_size * PIXEL_SCALE_ARCSEC / 3600


def cutout_descriptor(source: sp.Source, index: int, options: sp.Options, base_url: str) -> str:
    """SODA async cutouts around ``source`` of every image: ID refers to the dataset-id column,
    so one job gets all of them (repeat ID once per row)."""
    circle = Column(
        "CIRCLE",
        "double",
        "The region cut out: the background region around the source",
        unit="deg",
        ucd="pos.outline;obs",
        arraysize="3",
        xtype="circle",
    )
    dataset = Column("ID", "char", "Dataset ids of the images: repeat ID once per image")
    phase = Column("PHASE", "char", "RUN: the job starts at once")
    return descriptor_element(
        dl.ServiceDescriptor(
            name=f"cutouts-{index + 1}",
            description=f"SODA async: cutouts of every image measured for source {source.id}, "
            "in one job (send ID once per image)",
            access_url=base_url + SODA_ASYNC_PATH,
            inputs=(
                Param(dataset, ref=DID_REF),
                Param(circle, (source.ra, source.dec, cutout_radius(options))),
                Param(phase, "RUN"),
            ),
            standard_id=SODA_ASYNC_ID,
        )
    )


def links_document(
    sources: Sequence[sp.Source],
    found: Sequence[sp.Measurement],
    options: sp.Options,
    base_url: str,
) -> bytes:
    """DataLink: each measured image's file (``#this``) and, per source and image, a
    ``#cutout`` row naming that source's SODA async descriptor, whose ID input refers to this
    table's ID column (all of a source's images in one call)."""
    links: list[dl.Link] = []
    seen: set[str] = set()
    index = {s.id: i for i, s in enumerate(sources)}
    for m in found:
        if m.plane.did not in seen:
            seen.add(m.plane.did)
            links.append(
                dl.Link(
                    m.plane.did,
                    "#this",
                    access_url=f"{base_url}/{URI_PREFIX}{m.plane.key}",
                    description="The spectral image (FITS)",
                    content_type=dl.FITS,
                )
            )
        links.append(
            dl.Link(
                m.plane.did,
                "#cutout",
                service_def=f"cutouts-{index[m.source.id] + 1}",
                description=f"Cutout around source {m.source.id}",
                content_type=dl.FITS,
            )
        )
    columns = [
        IdentifiedColumn(**_fields(c), xml_id=DID_REF) if c.name == "ID" else c for c in dl.COLUMNS
    ]
    descriptors = [cutout_descriptor(s, i, options, base_url) for i, s in enumerate(sources)]
    return b"".join(
        votable.write_votable(
            columns,
            (link.row() for link in links),
            infos={"standardID": dl.STANDARD_ID},
            resources=descriptors,
        )
    )


DETECTOR_COLOURS = ("#4053d3", "#00b25d", "#b51d14", "#ddb310", "#fb49b0", "#00beff")
MAX_PANELS = 9


def plot(
    sources: Sequence[sp.Source],
    found: Sequence[sp.Measurement],
    spectrum: Sequence[sp.ChannelPoint],
) -> bytes:
    """A PNG: per source (at most MAX_PANELS), the measurements (small, with error bars) and
    the binned spectrum (large), coloured by detector."""
    shown = list(sources[:MAX_PANELS])
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    figure = Figure(figsize=(6.4 * cols, 4.0 * rows), dpi=90)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, source in zip(axes, shown, strict=False):
        mine = [m for m in found if m.source.id == source.id and m.usable]
        binned = [p for p in spectrum if p.source.id == source.id]
        for det in range(1, 7):
            colour = DETECTOR_COLOURS[det - 1]
            points = [m for m in mine if m.detector == det]
            if points:
                ax.errorbar(
                    [m.wavelength for m in points],
                    [m.flux for m in points],
                    yerr=[m.flux_error for m in points],
                    fmt=".",
                    ms=3,
                    alpha=0.35,
                    color=colour,
                    elinewidth=0.6,
                )
            channels = [p for p in binned if p.detector == det]
            if channels:
                ax.errorbar(
                    [p.wavelength for p in channels],
                    [p.flux for p in channels],
                    yerr=[p.flux_error for p in channels],
                    fmt="o",
                    ms=4,
                    color=colour,
                    label=f"D{det}",
                )
        ax.set_xlabel("wavelength (um)")
        ax.set_ylabel("flux density (uJy)")
        ax.set_title(f"{source.id}  ({source.ra:.5f}, {source.dec:+.5f})", fontsize=9)
        if binned:
            ax.legend(fontsize=7, ncols=6, loc="upper right")
        else:
            ax.text(0.5, 0.5, "no measurement", ha="center", transform=ax.transAxes)
    for ax in axes[len(shown) :]:
        ax.set_axis_off()
    if len(sources) > len(shown):
        figure.suptitle(f"the first {len(shown)} of {len(sources)} sources", fontsize=9)
    # Fixed margins: tight_layout measures every tick label and costs a fifth of a second.
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.2 / width,
        bottom=0.55 / height,
        top=1 - 0.4 / height,
        wspace=0.22,
        hspace=0.35,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
