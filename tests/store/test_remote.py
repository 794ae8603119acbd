"""FsspecStore specifics against moto's real S3 server: ETags, prefixes, fresh listings."""

from __future__ import annotations

import pytest

from spherex_archive.store import FsspecStore, NotFound
from tests.store.fixtures import BUCKET, CREDENTIALS, manifest, s3_client

pytestmark = pytest.mark.slow


def bucket_store(endpoint: str, url: str = f"s3://{BUCKET}") -> FsspecStore:
    return FsspecStore(url, endpoint_url=endpoint, **CREDENTIALS)


def test_etag_is_the_objects(s3_endpoint, release):
    store = bucket_store(s3_endpoint)
    for key, md5 in manifest(release).items():
        assert store.stat(key).etag == f'"{md5}"'  # single-part uploads: ETag = MD5


def test_a_prefix_is_a_root(s3_endpoint, release):
    key = "qr2/gain_factors/base-2025-158/MD5SUMS"
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=BUCKET, Key=f"mirror/{key}", Body=(release / key).read_bytes())
    client.put_object(Bucket=BUCKET, Key="mirror/truth/x.txt", Body=b"not data")
    store = bucket_store(s3_endpoint, f"s3://{BUCKET}/mirror/")
    assert [e.key for e in store.list("")] == ["qr2"]
    assert store.read_range(key, 0, 1000) == (release / key).read_bytes()
    with pytest.raises(NotFound):
        store.stat("truth/x.txt")


def test_new_objects_are_listed_at_once(s3_endpoint):
    store = bucket_store(s3_endpoint)
    folder = "qr2/spectral_channels"
    before = {e.name for e in store.list(folder)}
    s3_client(s3_endpoint).put_object(Bucket=BUCKET, Key=f"{folder}/new-delivery/x", Body=b"x")
    assert {e.name for e in store.list(folder)} == before | {"new-delivery"}
    assert store.stat(f"{folder}/new-delivery").is_dir


def test_object_keys_that_are_not_paths_are_skipped(s3_endpoint):
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=BUCKET, Key="qr2/odd/../escape.txt", Body=b"x")
    client.put_object(Bucket=BUCKET, Key="qr2/odd/fine.txt", Body=b"x")
    store = bucket_store(s3_endpoint)
    assert {e.name for e in store.list("qr2/odd")} == {"fine.txt"}
    with pytest.raises(NotFound):
        store.stat("qr2/odd/../escape.txt")


def test_missing_bucket_is_not_found(s3_endpoint):
    with pytest.raises(NotFound):
        bucket_store(s3_endpoint, "s3://no-such-bucket").stat("qr2")
