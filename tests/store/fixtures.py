"""Fixtures shared by the store and protocol tests: a small release on disk (with traps planted
beside the data) and the same release in an S3 bucket served by moto's real server."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from spherex_archive.synth.release import SynthOptions, synthesise

BUCKET = "spherex-test"
CREDENTIALS = {"key": "testing", "secret": "testing"}

# Symbolic links planted inside the release folder that lead out of what may be served.
TRAPS = {
    "qr2/etc_folder": "/etc",
    "qr2/etc_passwd": "/etc/passwd",
    "qr2/truth_folder": "../truth",
}


def write_release(root: Path) -> Path:
    """The brief's small release (32-pixel detectors 1 and 2, one M31 exposure) plus traps."""
    options = SynthOptions(
        out=root, detector_size=32, fields=["M31"], exposures=1, deep_fields=[], detectors=(1, 2)
    )
    synthesise(options, progress=False, log=lambda _: None)
    for link, target in TRAPS.items():
        (root / link).symlink_to(target)
    return root


def manifest(root: Path) -> dict[str, str]:
    """Key -> MD5 from every MD5SUMS file of the release."""
    sums = {}
    for path in root.rglob("MD5SUMS"):
        folder = path.parent.relative_to(root).as_posix()
        for line in path.read_text().splitlines():
            md5, name = line.split(maxsplit=1)
            sums[f"{folder}/{name}"] = md5
    return sums


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["key"],
        aws_secret_access_key=CREDENTIALS["secret"],
        region_name="us-east-1",
    )


def upload(root: Path, endpoint: str, bucket: str = BUCKET) -> None:
    """Every regular file under ``root`` (truth/ included, links not) at the same key."""
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                client.upload_file(str(path), bucket, path.relative_to(root).as_posix())


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bucket root of the small release on local disk."""
    return write_release(tmp_path_factory.mktemp("ibe-release"))


@pytest.fixture(scope="session")
def s3_endpoint(release: Path) -> Iterator[str]:
    """A moto S3 server whose bucket ``BUCKET`` holds the release under the same keys."""
    with moto_s3() as endpoint:
        upload(release, endpoint)
        yield endpoint
