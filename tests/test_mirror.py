"""The S3 mirror against moto's real S3 server: keys and bytes, idempotence, what is left out,
and the mirrored bucket read with byte ranges and ingested (cloud_access names its objects)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from click.testing import CliRunner

from spherex_archive.catalogue import open_catalogue
from spherex_archive.cli import main
from spherex_archive.ingest.run import ingest
from spherex_archive.mirror import MirrorReport, file_md5, mirror
from spherex_archive.services.query import QueryEngine
from spherex_archive.store import open_store
from tests.store.fixtures import (  # noqa: F401 (release and s3_endpoint: fixtures)
    CREDENTIALS,
    TRAPS,
    manifest,
    release,
    s3_client,
    s3_endpoint,
)

LEVEL2 = "qr2/level2/2025W29_2A/l2b-v20-2025-266"


def release_files(root: Path) -> set[str]:
    """Keys of the regular files in the release folder (links and truth/ are not data)."""
    keys = set()
    for folder, _, names in os.walk(root / "qr2"):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                keys.add(path.relative_to(root).as_posix())
    return keys


def objects(endpoint: str, bucket: str) -> dict[str, dict]:
    """Key -> listing entry of every object in the bucket."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o for page in pages for o in page.get("Contents", [])}


def body(endpoint: str, bucket: str, key: str) -> bytes:
    return s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()


def run(source: Path, bucket: str, endpoint: str, **options) -> MirrorReport:
    return mirror(
        source,
        f"s3://{bucket}",
        endpoint_url=endpoint,
        storage_options=CREDENTIALS,
        workers=4,
        progress=False,
        **options,
    )


@pytest.fixture
def release_root(request) -> Path:
    """The bucket root of the shared small release (``release`` of tests/store/fixtures.py)."""
    return request.getfixturevalue("release")


@pytest.fixture
def endpoint(request) -> str:
    """moto's S3 server (``s3_endpoint`` of tests/store/fixtures.py, which also fills a bucket
    of its own)."""
    return request.getfixturevalue("s3_endpoint")


@pytest.fixture
def bucket(endpoint) -> str:
    """A new, empty bucket on the shared moto server."""
    name = f"mirror-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def source(release_root, tmp_path) -> Path:
    """A copy of the shared release that a test may change."""
    return shutil.copytree(release_root, tmp_path / "root", symlinks=True)


def test_mirror_copies_the_release_under_its_keys(release_root, bucket, endpoint):
    report = run(release_root, bucket, endpoint)
    expected = release_files(release_root)
    assert not report.failed
    assert sorted(report.uploaded) == sorted(expected) and report.skipped == 0
    assert report.bytes == sum((release_root / k).stat().st_size for k in expected)
    held = objects(endpoint, bucket)
    assert set(held) == expected  # no truth/, no links out of the release
    assert {key for key, _ in report.ignored} == set(TRAPS)
    client = s3_client(endpoint)
    sums = manifest(release_root)
    for key in expected:
        assert body(endpoint, bucket, key) == (release_root / key).read_bytes(), key
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"]["md5"] == sums.get(key, file_md5(release_root / key))
        if key.endswith(".fits"):
            assert head["ContentType"] == "application/fits"

    again = run(release_root, bucket, endpoint)
    assert again.uploaded == [] and again.skipped == len(expected) and not again.failed
    assert {k: o["LastModified"] for k, o in objects(endpoint, bucket).items()} == {
        k: o["LastModified"] for k, o in held.items()
    }


def test_release_and_delivery_folders_keep_the_bucket_keys(release_root, bucket, endpoint):
    delivery = run(release_root / LEVEL2, bucket, endpoint)
    assert delivery.uploaded and all(k.startswith(f"{LEVEL2}/") for k in delivery.uploaded)
    assert f"{LEVEL2}/MD5SUMS" in delivery.uploaded
    whole = run(release_root / "qr2", bucket, endpoint)
    assert whole.skipped == len(delivery.uploaded)
    assert set(objects(endpoint, bucket)) == release_files(release_root)


def test_changed_and_missing_files_are_uploaded_again(source, bucket, endpoint):
    run(source, bucket, endpoint)
    held = release_files(source)
    # An interrupted run: some objects never arrived.
    client = s3_client(endpoint)
    missing = sorted(held)[:3]
    for key in missing:
        client.delete_object(Bucket=bucket, Key=key)
    # A re-delivered file of the same size with its manifest entry, and a new file (no entry).
    image = sorted(k for k in held if k.startswith(LEVEL2) and k.endswith(".fits"))[0]
    path = source / image
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    sums = source / LEVEL2 / "MD5SUMS"
    old_md5 = manifest(source)[image]
    sums.write_text(sums.read_text().replace(old_md5, file_md5(path)))
    (source / "qr2" / "README").write_text("notes for the mirror\n")

    report = run(source, bucket, endpoint)
    assert not report.failed
    changed = {image, f"{LEVEL2}/MD5SUMS", "qr2/README"}
    assert set(report.uploaded) == set(missing) | changed
    assert report.skipped == len(held - set(report.uploaded))
    for key in set(missing) | changed:
        assert body(endpoint, bucket, key) == (source / key).read_bytes(), key
    assert client.head_object(Bucket=bucket, Key="qr2/README")["Metadata"]["md5"] == file_md5(
        source / "qr2/README"
    )
    assert run(source, bucket, endpoint).uploaded == []


def test_md5_metadata_is_compared_when_the_etag_is_no_md5(source, bucket, endpoint):
    """Multipart uploads have ETags that are not MD5s: the object's md5 metadata decides."""
    run(source, bucket, endpoint)
    first, second = sorted(k for k in release_files(source) if k.endswith(".fits"))[:2]
    client = s3_client(endpoint)
    multipart = TransferConfig(multipart_threshold=1)
    client.upload_file(
        str(source / first),
        bucket,
        first,
        ExtraArgs={"Metadata": {"md5": file_md5(source / first)}},
        Config=multipart,
    )
    # a copy whose metadata vouches for other bytes, as a foreign or failed copy may
    client.upload_file(
        str(source / second),
        bucket,
        second,
        ExtraArgs={"Metadata": {"md5": "0" * 32}},
        Config=multipart,
    )
    assert all("-" in objects(endpoint, bucket)[k]["ETag"] for k in (first, second))
    report = run(source, bucket, endpoint)
    assert report.uploaded == [second]


def test_a_file_that_differs_from_its_manifest_is_not_uploaded(source, bucket, endpoint):
    image = sorted(
        k for k in release_files(source) if k.startswith(LEVEL2) and k.endswith(".fits")
    )[0]
    path = source / image
    path.write_bytes(path.read_bytes()[:-1] + b"?")  # corrupt copy, manifest unchanged
    report = run(source, bucket, endpoint)
    assert [key for key, _ in report.failed] == [image]
    assert "MD5SUMS" in report.failed[0][1]
    assert image not in objects(endpoint, bucket)
    assert len(report.uploaded) == len(release_files(source)) - 1  # the others go on


def test_dry_run_uploads_nothing(release_root, bucket, endpoint):
    report = run(release_root, bucket, endpoint, dry_run=True)
    assert sorted(report.uploaded) == sorted(release_files(release_root))
    assert objects(endpoint, bucket) == {}
    run(release_root / LEVEL2, bucket, endpoint)
    report = run(release_root, bucket, endpoint, dry_run=True)
    assert not any(k.startswith(LEVEL2) for k in report.uploaded)
    assert set(objects(endpoint, bucket)) == {k for k in release_files(release_root) if LEVEL2 in k}


def test_errors_that_stop_the_whole_run(release_root, endpoint, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        run(release_root, "no-such-bucket", endpoint)
    with pytest.raises(ValueError, match="nothing to mirror"):
        run(release_root / "truth", "spherex-test", endpoint)
    with pytest.raises(ValueError, match="s3://bucket"):
        mirror(release_root, str(tmp_path / "elsewhere"), progress=False)


def test_mirrored_bucket_is_served_with_byte_ranges(release_root, bucket, endpoint):
    run(release_root, bucket, endpoint)
    store = open_store(f"s3://{bucket}", **CREDENTIALS, client_kwargs={"endpoint_url": endpoint})
    key = sorted(k for k in release_files(release_root) if k.startswith(LEVEL2))[0]
    local = (release_root / key).read_bytes()
    assert store.stat(key).size == len(local)
    assert store.read_range(key, 2880, 3 * 2880 + 17) == local[2880 : 3 * 2880 + 17]
    assert store.read_range(key, len(local) - 100, len(local)) == local[-100:]


def test_ingest_from_the_mirror_names_its_objects(release_root, bucket, endpoint, tmp_path):
    run(release_root, bucket, endpoint)
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'mirror.db'}")
    options = {**CREDENTIALS, "client_kwargs": {"endpoint_url": endpoint}}
    report = ingest(catalogue, f"s3://{bucket}", storage_options=options, workers=1, progress=False)
    assert not report.rejected and report.files > 0
    catalogue.set_config(s3_bucket=bucket)  # what serve does with the setting s3_bucket
    answer = QueryEngine(catalogue).run(
        "SELECT cloud_access FROM spherex.obscore WHERE dataproduct_subtype = 'science'"
    )
    cells = [json.loads(row[0]) for row in answer.rows]
    assert len(cells) == 2  # one exposure, detectors 1 and 2
    held = objects(endpoint, bucket)
    for cell in cells:
        key = cell["aws"]["key"]
        assert cell["aws"]["bucket_name"] == bucket
        assert body(endpoint, bucket, key) == (release_root / key).read_bytes()
        assert held[key]["Size"] == (release_root / key).stat().st_size
    catalogue.close()


def test_command_line(release_root, bucket, endpoint):
    runner = CliRunner(env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    args = ["mirror", str(release_root), f"s3://{bucket}", "--endpoint-url", endpoint, "--quiet"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    count = len(release_files(release_root))
    assert f"{count} files uploaded" in first.stdout
    assert "ignored qr2/etc_passwd" in first.stderr
    again = runner.invoke(main, [*args, "--dry-run"])
    assert again.exit_code == 0
    assert f"0 files would be uploaded (0.00 GB), {count} already in the bucket" in again.stdout
    missing = runner.invoke(main, [*args[:2], "s3://no-such-bucket", *args[3:]])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("spherex-archive: error: s3://no-such-bucket")
    assert "Traceback" not in missing.output
