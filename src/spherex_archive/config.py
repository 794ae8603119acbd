"""Settings: one typed object, from defaults < TOML file < environment < command options.

Environment variables are ``SPHEREX_ARCHIVE_<NAME>`` (e.g. ``SPHEREX_ARCHIVE_CATALOGUE``); the
TOML file is given with ``--config FILE`` or ``SPHEREX_ARCHIVE_CONFIG``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPHEREX_ARCHIVE_", extra="forbid")

    catalogue: str = Field(
        "sqlite:///spherex-archive.db",
        description="Catalogue URL: sqlite:///path/to.db (embedded) or postgresql://host/db",
    )
    data: str = Field(".", description="Bucket root of the files: a folder or s3://bucket")
    base_url: str = Field(
        "http://127.0.0.1:8000", description="Public URL of this archive (links in answers)"
    )
    authority: str = Field(
        "ivo://irsa.ipac", description="Publisher authority of dataset ids (obs_publisher_did)"
    )
    s3_bucket: str = Field(
        "nasa-irsa-spherex", description="Bucket named in cloud_access (the S3 mirror)"
    )
    s3_region: str = Field("us-east-1", description="Region named in cloud_access")
    s3_endpoint: str | None = Field(
        None, description="Endpoint URL of an S3-compatible server (default: AWS)"
    )
    default_maxrec: int = Field(
        100_000, ge=0, description="Rows a search answers when it gives no MAXREC"
    )
    max_maxrec: int = Field(
        2_000_000, ge=1, description="Most rows any answer holds (a larger MAXREC is capped)"
    )
    query_timeout: float = Field(
        300.0, gt=0, description="Seconds a catalogue query may run before it is stopped"
    )
    sync_timeout: float = Field(
        60.0, gt=0, description="Seconds a synchronous TAP query may run (async: query_timeout)"
    )
    upload_max_bytes: int = Field(
        20_000_000, ge=0, description="Largest table a TAP query may upload (bytes)"
    )
    upload_max_rows: int = Field(
        100_000, ge=0, description="Most rows of all the tables one TAP query uploads"
    )
    jobs_dir: str | None = Field(
        None,
        description="Folder of async jobs' uploads and results (default: 'jobs' beside a "
        "SQLite catalogue, else ./jobs); Dask workers must see it at the same path",
    )
    job_executor: Literal["local", "dask"] = Field(
        "local", description="Where async jobs run: local worker processes, or a Dask cluster"
    )
    dask_scheduler: str | None = Field(
        None, description="Address of the Dask scheduler (tcp://host:8786) for job_executor=dask"
    )
    job_workers: int = Field(
        2, ge=1, description="Async jobs one server process runs at once (more wait in QUEUED)"
    )
    job_owner_limit: int = Field(
        2,
        ge=1,
        description="Async jobs one owner (authenticated user, else client IP) has executing "
        "at once, over all server processes; more wait in QUEUED",
    )
    job_duration: int = Field(
        3600, ge=0, description="Seconds an async job may run when it does not say (0: no limit)"
    )
    job_max_duration: int = Field(
        14400, ge=0, description="Most seconds an async job may ask to run (0: no limit)"
    )
    job_destruction: int = Field(
        7 * 86400,
        ge=60,
        description="Seconds after its creation an async job and its results are deleted; "
        "a client may ask for an earlier destruction, not a later one",
    )
    resolver_network: bool = Field(
        True,
        description="Whether the Data Explorer may ask CDS Sesame for names its built-in list "
        "does not hold (off: built-in names and coordinates only)",
    )
    explorer_dir: str | None = Field(
        None,
        description="Folder of the built Data Explorer (index.html, assets/); default: the one "
        "shipped in the package",
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the file (if any), the environment, then explicit ``overrides``."""
    values: dict[str, Any] = {}
    config_file = config_file or (
        Path(os.environ["SPHEREX_ARCHIVE_CONFIG"])
        if "SPHEREX_ARCHIVE_CONFIG" in os.environ
        else None
    )
    if config_file is not None:
        try:
            values = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"cannot read settings file {config_file}: {error}") from None
    env = Settings()  # environment and defaults
    for name in Settings.model_fields:
        env_name = f"SPHEREX_ARCHIVE_{name.upper()}"
        if env_name in os.environ:
            values[name] = getattr(env, name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(values)
