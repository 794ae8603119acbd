"""Ingest straight from an S3 bucket, served by a real S3-compatible HTTP server (moto)."""

from __future__ import annotations

import os
import socket

import pytest

from spherex_archive.catalogue import open_catalogue
from spherex_archive.ingest.run import ingest
from tests.ingest.test_ingest import dump

# moto's servers in one process share one in-memory backend: a bucket name of its own keeps
# other tests' objects out of this one.
BUCKET = "spherex-ingest-test"


@pytest.fixture(scope="module")
def subset(small_release, tmp_path_factory):
    """One planning period and three calibration families, hard-linked into a bucket root."""
    root = tmp_path_factory.mktemp("subset")
    period = sorted(small_release.glob("qr2/level2/*"))[0]
    for folder in (
        period,
        *(small_release / "qr2" / f for f in ("dark", "gain_factors", "spectral_wcs")),
    ):
        for path in folder.rglob("*"):
            if path.is_file():
                target = root / path.relative_to(small_release)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
    return root


@pytest.fixture(scope="module")
def bucket(subset):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    for path in subset.rglob("*"):
        key = path.relative_to(subset).as_posix()
        if path.is_file():
            client.upload_file(str(path), BUCKET, key)
    yield endpoint
    server.stop()


@pytest.mark.slow
def test_ingest_from_s3_equals_ingest_from_disk(bucket, subset, new_catalogue_url):
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": bucket, "region_name": "us-east-1"},
    }
    from_s3 = open_catalogue(new_catalogue_url("sqlite"))
    report = ingest(from_s3, f"s3://{BUCKET}", storage_options=options, workers=2, progress=False)
    assert not report.rejected
    from_disk = open_catalogue(new_catalogue_url("sqlite"))
    ingest(from_disk, str(subset), workers=2, progress=False)
    assert dump(from_s3) == dump(from_disk)
    assert sum(from_s3.counts().values()) == report.files > 50
    # one delivery folder given as a prefix
    delivery = sorted(subset.glob("qr2/level2/*/l2b-*"))[0].relative_to(subset)
    single = open_catalogue(new_catalogue_url("sqlite"))
    report = ingest(
        single,
        f"s3://{BUCKET}/{delivery.as_posix()}",
        storage_options=options,
        workers=1,
        progress=False,
    )
    assert report.files == len(list((subset / delivery).glob("*/*.fits")))
