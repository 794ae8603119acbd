"""The ``spherex-archive`` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spherex_archive import __version__
from spherex_archive.products.naming import PlanningPeriod
from spherex_archive.synth.survey import DEEP_FIELDS, DEMO_DEEP, DEMO_FIELDS, WIDE_FIELDS


def _fail(message: str) -> None:
    """One line on stderr and exit status 2, never a traceback."""
    click.echo(f"spherex-archive: error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spherex-archive")
def main() -> None:
    """An IRSA-compatible archive for SPHEREx spectral images.

    \b
    Start here:
      spherex-archive demo                 make, ingest and serve a small demo release
      spherex-archive synth --out DIR      write a synthetic QR2 release (real-size files)

    Every command has its own --help.
    """


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _position(text: str, option: str) -> tuple[float, float]:
    """``RA,DEC`` in degrees; a ValueError naming the option otherwise."""
    try:
        ra, dec = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} {text!r}: give RA,DEC in degrees") from None
    return ra, dec


def _deep(text: str) -> list[tuple[str, int]]:
    out = []
    for item in _split(text):
        name, _, count = item.partition(":")
        try:
            out.append((name.upper(), int(count) if count else 50))
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected NAME or NAME:COUNT") from None
    return out


def _weeks(text: str | None) -> list[PlanningPeriod] | None:
    if not text:
        return None
    try:
        return [PlanningPeriod.parse(t) for t in _split(text)]
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Bucket root to write into: files land at DIR/<release>/..., truth in DIR/truth/.",
)
@click.option("--release", default="qr2", show_default=True, help="Release layout to write.")
@click.option(
    "--seed",
    default=42,
    show_default=True,
    type=int,
    help="Random seed: the same seed and options give byte-identical files.",
)
@click.option(
    "--detector-size",
    default=2040,
    show_default=True,
    type=int,
    help="Pixels per side. 2040 writes real-size files of 71.6 MB; a smaller size "
    "keeps the 6.15 arcsec pixels (so footprints shrink) and every structural "
    "rule (the PSF cube stays 121x101x101, about 5 MB per file).",
)
@click.option(
    "--fields",
    default=",".join(DEMO_FIELDS),
    show_default=True,
    help="Wide-survey fields, comma-separated: names ("
    + ", ".join(WIDE_FIELDS)
    + ") or RA:DEC[:SURVEY] in degrees. Each is observed when the scan circle "
    "passes over it.",
)
@click.option(
    "--exposures",
    default=3,
    show_default=True,
    type=int,
    help="Exposures per wide field (a large slew and up to 4 small slews each).",
)
@click.option(
    "--deep-fields",
    default=",".join(f"{n}:{c}" for n, c in DEMO_DEEP),
    show_default=True,
    help="Deep fields as NAME:EXPOSURES (" + ", ".join(DEEP_FIELDS) + "); every deep "
    "exposure covers the field centre, so N exposures give a 2N-point spectrum "
    "of the source there. Empty for none.",
)
@click.option(
    "--weeks",
    default=None,
    help="Planning periods to generate (e.g. 2025W29_2A,2025W39_1A); deep-field "
    "exposures are spread over them. Default: the periods of the wide fields.",
)
@click.option(
    "--detectors",
    default="1,2,3,4,5,6",
    show_default=True,
    help="Detectors to write (a subset is for quick experiments only).",
)
@click.option(
    "--covering",
    default=None,
    metavar="RA,DEC",
    help="Write only the spectral images on which this position (degrees) falls: one "
    "source's deep stack, e.g. --fields '' --weeks 2025W29_2A,2025W39_1A --deep-fields "
    "NEP:100 --covering 270,66.56 (200 images of the NEP source).",
)
@click.option(
    "--workers", default=0, show_default=True, type=int, help="Worker processes (0 = one per core)."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def synth(
    out,
    release,
    seed,
    detector_size,
    fields,
    exposures,
    deep_fields,
    weeks,
    detectors,
    covering,
    workers,
    quiet,
) -> None:
    """Write a synthetic SPHEREx QR2 release in IRSA's directory layout.

    \b
    DIR/qr2/level2/<planning period>/l2b-v<NN>-<date>/<det>/level2_...fits
        spectral images: PRIMARY, IMAGE, FLAGS, VARIANCE, ZODI, PSF, WCS-WAVE
    DIR/qr2/<family>/<version>/[<det>/]...   every calibration product family
    .../MD5SUMS                              one manifest per delivery folder
    DIR/truth/                               injected sources and spectra (not data)

    \b
    Examples:
      spherex-archive synth --out /data/spherex --detector-size 256
      spherex-archive synth --out /data/deep --fields "" --deep-fields NEP:100
    """
    from spherex_archive.synth.release import SynthOptions, synthesise

    try:
        options = SynthOptions(
            out=out,
            release=release,
            seed=seed,
            detector_size=detector_size,
            fields=_split(fields),
            exposures=exposures,
            deep_fields=_deep(deep_fields),
            weeks=_weeks(weeks),
            detectors=tuple(int(d) for d in _split(detectors)),
            covering=_position(covering, "--covering") if covering else None,
            workers=workers,
        )
        report = synthesise(options, progress=not quiet)
    except ValueError as error:
        _fail(str(error))
    click.echo(
        f"Wrote {report.files} spectral images ({report.bytes / 1e9:.2f} GB, "
        f"{report.exposures} exposures) in {out / release}; "
        f"{report.seconds_per_file:.3f} s per file of wall time"
    )


def _catalogue_option(function):
    return click.option(
        "--catalogue",
        envvar="SPHEREX_ARCHIVE_CATALOGUE",
        default="sqlite:///spherex-archive.db",
        show_default=True,
        show_envvar=True,
        help="Catalogue URL: sqlite:///path/to.db (embedded) or postgresql://user@host/db "
        "(PostgreSQL with pgsphere).",
    )(function)


@main.command()
@click.argument("path")
@_catalogue_option
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=int,
    help="Processes reading headers (0 = one per core).",
)
@click.option(
    "--release-date",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="When the ingested planes become public (UTC). Default: now, or the date "
    "they already have. A future date embargoes them from every interface.",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to list rejected and skipped files (default: "
    "spherex-ingest-<time>.txt in the current folder, written only if needed).",
)
@click.option(
    "--s3-endpoint",
    envvar="SPHEREX_ARCHIVE_S3_ENDPOINT",
    default=None,
    help="Endpoint URL of an S3-compatible server, for s3:// paths.",
)
@click.option(
    "--s3-anonymous/--s3-signed", default=False, help="Read a public bucket without credentials."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(path, catalogue, workers, release_date, report, s3_endpoint, s3_anonymous, quiet):
    """Ingest SPHEREx deliveries from PATH into the catalogue.

    PATH is a bucket root (like synth's --out), a release folder (.../qr2) or one delivery
    folder (.../qr2/level2/<period>/l2b-v<NN>-<date>), on disk or as s3://bucket/prefix.
    Only headers are read. Checksums come from the delivery's MD5SUMS manifest, or are
    computed. Each delivery is committed in one transaction and is visible everywhere at once;
    running the same ingest again changes nothing, and completes one that was interrupted.

    Exit status: 0 when every file was ingested, 1 when some were rejected (listed in the
    report, one line each with the reason), 2 for a usage error.
    """
    import datetime as dt

    from spherex_archive.catalogue import CatalogueError, open_catalogue
    from spherex_archive.ingest.run import ingest as run_ingest

    options: dict = {}
    if path.startswith("s3://"):
        options = {"anon": s3_anonymous}
        if s3_endpoint:
            options["client_kwargs"] = {"endpoint_url": s3_endpoint}
    try:
        cat = open_catalogue(catalogue)
        result = run_ingest(
            cat,
            path,
            workers=workers,
            progress=not quiet,
            storage_options=options,
            release_date=release_date.replace(tzinfo=dt.UTC) if release_date else None,
        )
    except (ValueError, CatalogueError, OSError) as error:
        _fail(str(error))
    click.echo(result.summary())
    if result.rejected or result.skipped:
        target = report or Path(f"spherex-ingest-{dt.datetime.now():%Y%m%dT%H%M%S}.txt")
        result.write(target)
        for key, reason in result.rejected[:20]:
            click.echo(f"rejected {key}: {reason}", err=True)
        if len(result.rejected) > 20:
            click.echo(f"... and {len(result.rejected) - 20} more", err=True)
        click.echo(f"Report: {target}", err=True)
    counts = cat.counts()
    click.echo("Catalogue now holds: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    sys.exit(1 if result.rejected else 0)


@main.command("synth-catalogue")
@_catalogue_option
@click.option("--planes", type=int, required=True, help="How many planes to add.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--detector-size",
    default=2040,
    show_default=True,
    type=int,
    help="Footprint size in pixels of 6.15 arcsec.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth_catalogue(catalogue, planes, seed, detector_size, quiet):
    """Fill a catalogue with realistic planes straight from the survey model, without files.

    For measuring query speed at archive scale: 10 million planes are five years of SPHEREx
    with the deep fields. Rows are what ingest would write for such files (footprints without
    SIP distortion); the files themselves do not exist.
    """
    from spherex_archive.catalogue import CatalogueError, open_catalogue
    from spherex_archive.synth.catalogue import fill

    if planes <= 0:
        _fail("--planes must be a positive number")
    try:
        cat = open_catalogue(catalogue)
        written = fill(cat, planes, seed=seed, size=detector_size, progress=not quiet)
    except (ValueError, CatalogueError) as error:
        _fail(str(error))
    click.echo(
        f"Added {written} planes. Catalogue now holds: "
        + ", ".join(f"{c} {n}" for c, n in cat.counts().items())
    )


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("spherex-demo"),
    show_default=True,
    help="Where the demo release, its catalogue and its truth live.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def demo(ctx: click.Context, directory: Path, host: str, port: int) -> None:
    """Make the demo release if it is not there yet, then ingest and serve it.

    The demo release has 128-pixel detectors, three planning periods, all six detectors, both
    deep fields (a source at the NEP seen 100 times) and every calibration family: about 440
    files and 2 GB, written in under a minute on two cores. It is ingested into
    DIR/catalogue.db (an embedded SQLite catalogue) and served on HOST:PORT until you press
    Ctrl-C; running the demo again reuses both.
    """
    from spherex_archive.catalogue import CatalogueError, open_catalogue
    from spherex_archive.ingest.run import ingest as run_ingest
    from spherex_archive.synth.release import DEMO_SIZE, SynthOptions, synthesise

    marker = directory / "truth" / "parameters.json"
    try:
        if marker.exists():
            click.echo(f"Demo release already in {directory}.")
        else:
            report = synthesise(SynthOptions(out=directory, detector_size=DEMO_SIZE))
            click.echo(f"Wrote the demo release: {report.files} spectral images in {directory}.")
        catalogue = open_catalogue(f"sqlite:///{(directory / 'catalogue.db').resolve()}")
        catalogue.create()
        catalogue.set_config(base_url=f"http://{host}:{port}")
        result = run_ingest(catalogue, str(directory))
    except (ValueError, CatalogueError, OSError) as error:
        _fail(str(error))
    click.echo(result.summary())
    click.echo("Catalogue holds: " + ", ".join(f"{c} {n}" for c, n in catalogue.counts().items()))
    ctx.invoke(
        serve,
        catalogue=catalogue.url,
        data=str(directory.resolve()),
        host=host,
        port=port,
        workers=1,
        config_file=None,
        base_url=None,
    )


def _public_url(host: str, port: int) -> str:
    """The URL clients on this machine reach the server by (an all-interfaces bind is reached
    through loopback; a deployment names its public URL with --base-url)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _settings_file(config_file: Path | None) -> Path | None:
    import os

    if config_file is not None:
        return config_file
    named = os.environ.get("SPHEREX_ARCHIVE_CONFIG")
    return Path(named) if named else None


def _load_settings(config_file: Path | None, **overrides):
    from pydantic import ValidationError

    from spherex_archive.config import load_settings

    try:
        return load_settings(config_file, **overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()
        )
        _fail(f"bad settings: {problems}")
    except ValueError as error:
        _fail(str(error))


config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML settings file (also SPHEREX_ARCHIVE_CONFIG).",
)
"""The settings file option of the commands that read settings (serve, config, mirror)."""


@main.command()
@click.option(
    "--catalogue",
    default=None,
    help="Catalogue URL: sqlite:///path/to.db or postgresql://user@host/db "
    "[default: sqlite:///spherex-archive.db]",
)
@click.option(
    "--data",
    default=None,
    help="Bucket root of the files: a folder (as written by synth --out) or s3://bucket "
    "[default: the current folder]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes; each opens the catalogue and the store itself.",
)
@config_option
@click.option(
    "--base-url",
    default=None,
    help="Public URL of the archive, used in every link it hands out (access_url, DataLink, "
    "UWS job URLs). Default: http://HOST:PORT. Set it behind a proxy.",
)
def serve(catalogue, data, host, port, workers, config_file, base_url):
    """Serve the archive over HTTP: IRSA's URLs over one catalogue and one file store.

    \b
    Settings, in rising precedence: defaults, the TOML file (--config FILE or
    SPHEREX_ARCHIVE_CONFIG), SPHEREX_ARCHIVE_* environment variables (CATALOGUE, DATA,
    BASE_URL, AUTHORITY, S3_BUCKET, S3_REGION, S3_ENDPOINT), then these options.
    `spherex-archive config` prints what they add up to.

    \b
    At start the catalogue is told the public URL, authority and bucket (it builds
    access_url and cloud_access from them); a catalogue that does not exist yet is created
    empty. GET / lists what is served; /health answers 503 when the catalogue does not;
    /metrics is for Prometheus (summed over all workers).

    \b
    Examples:
      spherex-archive serve --catalogue sqlite:///spherex-demo/catalogue.db \\
                            --data spherex-demo
      spherex-archive serve --config /etc/spherex-archive.toml --host 0.0.0.0 \\
                            --workers 4 --base-url https://archive.example.org
      SPHEREX_ARCHIVE_S3_ENDPOINT=http://minio:9000 spherex-archive serve \\
          --data s3://spherex --catalogue postgresql://archive@db/archive
    """
    import logging
    import os
    import shutil
    import tempfile

    import uvicorn

    from spherex_archive.catalogue import CatalogueError
    from spherex_archive.config import Settings
    from spherex_archive.server import landing
    from spherex_archive.server.app import create_app, route_paths
    from spherex_archive.store import StoreError

    settings = _load_settings(config_file, catalogue=catalogue, data=data, base_url=base_url)
    if "base_url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"base_url": _public_url(host, port)})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        # Built here even with several workers: bad settings fail once, in one line.
        app = create_app(settings)
    except (CatalogueError, StoreError, OSError, ValueError) as error:
        _fail(str(error))
    except Exception as error:  # a database driver's own errors: still one line
        _fail(f"cannot open the catalogue {settings.catalogue}: {type(error).__name__}: {error}")

    base = settings.base_url.rstrip("/")
    routes = route_paths(app)
    click.echo(f"SPHEREx archive: {settings.catalogue} and {settings.data}")
    if base != _public_url(host, port):
        click.echo(f"Listening on {_public_url(host, port)}, published as {base}")
    click.echo("Try:")
    click.echo(f"  {base}/{'':<30} what is here, with examples")
    for service in landing.SERVICES:
        if landing.available(service.path, routes):
            click.echo(f"  {base}{service.path:<31} {service.description}")

    options = dict(
        host=host, port=port, server_header=False, access_log=False, log_config=None, workers=1
    )
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each worker builds its own app from the same settings, passed as environment variables.
    for name in Settings.model_fields:
        value = getattr(settings, name)
        variable = f"SPHEREX_ARCHIVE_{name.upper()}"
        if value is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = str(value)
    os.environ.pop("SPHEREX_ARCHIVE_CONFIG", None)
    metrics_dir = tempfile.mkdtemp(prefix="spherex-archive-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "spherex_archive.server.app:create_app_from_env",
            factory=True,
            **{**options, "workers": workers},
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@main.command("config")
@config_option
def show_config(config_file):
    """Print the effective settings as TOML, each with where its value comes from.

    \b
    Precedence, rising: default < TOML file < SPHEREX_ARCHIVE_<NAME> environment variable
    < command option. The output is itself a valid settings file:
      spherex-archive config > spherex-archive.toml
    """
    import json
    import os
    import tomllib

    from spherex_archive.config import Settings

    settings = _load_settings(config_file)
    path = _settings_file(config_file)
    in_file = tomllib.loads(path.read_text()) if path else {}
    click.echo("# spherex-archive settings" + (f" (file: {path})" if path else ""))
    for name, field in Settings.model_fields.items():
        variable = f"SPHEREX_ARCHIVE_{name.upper()}"
        if variable in os.environ:
            source = f"environment {variable}"
        elif name in in_file:
            source = f"file {path}"
        else:
            source = "default"
        value = getattr(settings, name)
        click.echo(f"\n# {field.description}")
        if value is None:
            click.echo(f"# {name} = (not set)  # {source}")
        else:
            click.echo(f"{name} = {json.dumps(value)}  # {source}")


@main.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.argument("dest", metavar="DEST")
@click.option(
    "--endpoint-url",
    default=None,
    help="Endpoint URL of an S3-compatible server (MinIO, Ceph, moto). Default: s3_endpoint "
    "of the settings (--config, SPHEREX_ARCHIVE_S3_ENDPOINT), else AWS.",
)
@click.option(
    "--workers",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Files uploaded at once.",
)
@click.option(
    "--dry-run", is_flag=True, help="List what would be uploaded; change nothing in the bucket."
)
@config_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def mirror(directory, dest, endpoint_url, workers, dry_run, config_file, quiet):
    """Copy a release into an S3 bucket under the keys IRSA's bucket uses.

    DIR is a bucket root (like synth's --out), a release folder (.../qr2) or one delivery
    folder; DEST is s3://bucket or s3://bucket/prefix. The bucket must exist.

    What is copied: every file in the release folders (qr2/...): spectral images, calibration
    files, MD5SUMS manifests. Not truth/ nor anything else beside the release folders, not
    partial copies (*.part), not symbolic links to folders or out of the release.

    \b
    Keys: a file's path under the bucket root, which is IRSA's on-prem path after
    /ibe/data/spherex/ (the layout of the nasa-irsa-spherex bucket):
      DIR/qr2/level2/2025W29_2A/l2b-v20-2025-266/1/level2_...fits
      -> s3://BUCKET/qr2/level2/2025W29_2A/l2b-v20-2025-266/1/level2_...fits

    Mirror into the bucket root and name the bucket in the settings (s3_bucket): the
    catalogue's cloud_access then points at these objects, and serve --data s3://BUCKET
    serves the same files as the folder.

    Idempotent: each object carries the MD5 of its bytes as metadata (x-amz-meta-md5), and
    an object with the size and MD5 of the local file is skipped, so running the command again
    uploads only what is new or changed and completes an interrupted mirror. Local MD5s come
    from the delivery's MD5SUMS, else are computed; a file that differs from its MD5SUMS entry
    is not uploaded. Content types are those serve sends (application/fits for .fits). A run
    killed during a large upload leaves an incomplete multipart upload in the bucket: an
    AbortIncompleteMultipartUpload lifecycle rule removes those.

    Credentials are AWS's usual ones: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE, ~/.aws/credentials or an instance role; also for S3-compatible servers.

    Exit status: 0 when every file is in the bucket, 1 when some failed (listed on stderr;
    the others were copied), 2 for a usage error (no release in DIR, no bucket, no
    credentials).

    \b
    Examples:
      spherex-archive mirror /data/spherex s3://my-spherex --dry-run
      AWS_PROFILE=archive spherex-archive mirror /data/spherex s3://my-spherex --workers 16
      spherex-archive mirror /data/spherex/qr2/level2/2025W51_1A/l2b-v21-2025-354 \\
                             s3://spherex --endpoint-url http://minio:9000
    """
    from spherex_archive.mirror import mirror as run_mirror

    settings = _load_settings(config_file, s3_endpoint=endpoint_url)
    try:
        report = run_mirror(
            directory,
            dest,
            endpoint_url=settings.s3_endpoint,
            workers=workers,
            dry_run=dry_run,
            progress=not quiet,
        )
    except (ValueError, OSError) as error:
        _fail(str(error))
    if dry_run:
        for key in report.uploaded:
            click.echo(f"would upload {key}")
    for kind, entries in (("ignored", report.ignored), ("failed", report.failed)):
        for key, reason in entries[:20]:
            click.echo(f"{kind} {key}: {reason}", err=True)
        if len(entries) > 20:
            click.echo(f"... and {len(entries) - 20} more {kind}", err=True)
    click.echo(report.summary())
    sys.exit(1 if report.failed else 0)


@main.command()
@click.option("--ra", type=float, help="Right ascension of the source (degrees, ICRS).")
@click.option("--dec", type=float, help="Declination of the source (degrees, ICRS).")
@click.option(
    "--sources",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A table of sources instead (VOTable, FITS, ECSV or CSV) with columns ra, dec (degrees) "
    "and optionally id.",
)
@_catalogue_option
@click.option(
    "--data",
    default=".",
    show_default=True,
    help="Bucket root of the files: a folder (as written by synth --out) or s3://bucket.",
)
@click.option(
    "--method",
    type=click.Choice(["psf", "aperture"]),
    default="psf",
    show_default=True,
    help="PSF fit at the position, or aperture photometry with a PSF aperture correction.",
)
@click.option(
    "--bkg-region-size",
    type=int,
    default=15,
    show_default=True,
    help="Outer radius of the background annulus, pixels (8-100).",
)
@click.option("--time", "times", multiple=True, help="MJD interval 'lo hi' (repeatable, ORed).")
@click.option(
    "--band", "bands", multiple=True, help="Wavelength interval 'lo hi' in metres (repeatable)."
)
@click.option("--collection", "collections", multiple=True, help="Only this collection.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default="spectrophotometry",
    show_default=True,
    help="Folder for the results (created).",
)
@click.option(
    "--dask",
    "dask_address",
    default=None,
    help="Measure a list of sources on this Dask scheduler (tcp://host:8786), or 'local' for a "
    "LocalCluster on this machine.",
)
@click.option(
    "--base-url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Archive URL the DataLink document's links point to.",
)
def spectrophotometry(
    ra, dec, sources, catalogue, data, method, bkg_region_size, times, bands, collections, out,
    dask_address, base_url,
):  # fmt: skip
    """Measure a source's SPHEREx spectrum here, as the archive's spectrophotometry service
    does: forced photometry at --ra/--dec (or at each position of --sources) in every spectral
    image of the catalogue that covers it, read from --data.

    Writes into --out: measurements.xml (VOTable, one row per image), measurements.csv,
    measurements.ecsv, spectrum.xml (binned on the 102 channels), spectrum.png and
    datalink.xml. Columns and units: docs/spectrophotometry.md.
    """
    from spherex_archive.protocols.spectrophotometry import no_measurement_message, write_results
    from spherex_archive.services import spectrophotometry as sp

    if (ra is None) != (dec is None):
        _fail("give both --ra and --dec")
    if ra is None and sources is None:
        _fail("give --ra and --dec, or --sources")
    try:
        targets = [sp.Source("POINT1", *sp.parse_point(f"{ra} {dec}"))] if ra is not None else []
        if sources is not None:
            targets += sp.read_sources(sources)
        options = sp.Options(bkg_region_size, method, times, bands, collections)
        found = _measure(targets, options, catalogue, data, dask_address)
    except sp.SpectrophotometryError as error:
        _fail(str(error))
    out.mkdir(parents=True, exist_ok=True)
    message = no_measurement_message(targets, found)
    for result in write_results(out, targets, found, options, base_url, message):
        click.echo(f"{result.id}: {out / result.filename}")
    click.echo(f"{len(found)} measurements of {len(targets)} sources")
    if message:
        click.echo(message, err=True)


def _measure(targets, options, catalogue_url: str, data: str, dask_address: str | None):
    from spherex_archive.catalogue import open_catalogue
    from spherex_archive.services import spectrophotometry as sp
    from spherex_archive.services.query import QueryEngine
    from spherex_archive.store import open_store

    if dask_address:
        from distributed import Client, LocalCluster

        if dask_address == "local":
            with LocalCluster(dashboard_address=None) as cluster, Client(cluster) as client:
                return sp.measure_on_dask(client, catalogue_url, data, targets, options)
        with Client(dask_address) as client:
            return sp.measure_on_dask(client, catalogue_url, data, targets, options)
    cat = open_catalogue(catalogue_url)
    try:
        return sp.measure_sources(open_store(data), QueryEngine(cat), targets, options)
    finally:
        cat.close()


if __name__ == "__main__":
    main()
