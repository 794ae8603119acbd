"""Settings: one typed object, from defaults < TOML file < environment < command options.

Environment variables are ``SPHEREX_ARCHIVE_<NAME>`` (e.g. ``SPHEREX_ARCHIVE_CATALOGUE``); the
TOML file is given with ``--config FILE`` or ``SPHEREX_ARCHIVE_CONFIG``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

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
