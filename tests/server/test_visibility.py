"""A delivery is visible in every interface the moment its ingest returns: SIA, the file tree
and coverage, while the server runs, on both catalogues."""

from __future__ import annotations

import csv
import io
import json
import uuid
import xml.etree.ElementTree as ET

import pytest

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.formats.votable import NAMESPACE
from spherex_archive.ingest.run import ingest
from spherex_archive.server.app import create_app
from spherex_archive.synth.survey import DEEP_FIELDS
from tests.protocols.client import request
from tests.serving import serving


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_catalogue(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalogue.db'}"
        return
    from tests.conftest import PG_ADMIN, _pg_admin

    name = f"sxtest_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with _pg_admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


VOTABLE = f"{{{NAMESPACE}}}"


def _sia(base: str, **params) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    reply = request(f"{base}/SIA?RESPONSEFORMAT=csv&{query}")
    assert reply.status == 200, reply.body
    return list(csv.DictReader(io.StringIO(reply.body.decode())))


def _collection_options(base: str) -> list[str]:
    """The collections SIA's self-description offers for COLLECTION."""
    reply = request(f"{base}/SIA?MAXREC=0")
    assert reply.status == 200, reply.body
    root = ET.fromstring(reply.body)
    (param,) = [p for p in root.iter(f"{VOTABLE}PARAM") if p.get("name") == "COLLECTION"]
    return [o.get("value") for o in param.iter(f"{VOTABLE}OPTION")]


def test_ingest_while_serving_is_visible_at_once(empty_catalogue, small_release):
    ra, dec = DEEP_FIELDS["NEP"]
    app = create_app(Settings(catalogue=empty_catalogue, data=str(small_release)))
    with serving(app, lifespan="on", access_log=False) as base:
        assert _sia(base, POS=f"CIRCLE%20{ra}%20{dec}%200") == []
        assert _collection_options(base) == []
        assert json.loads(request(f"{base}/coverage/?format=json").body)["collections"] == []
        writer = open_catalogue(empty_catalogue)  # the ingest's own connection, as the CLI's
        try:
            ingest(writer, str(small_release), workers=2, progress=False, log=lambda _: None)
        finally:
            writer.close()
        # Right after the ingest returns: no refresh, no restart.
        rows = _sia(base, POS=f"CIRCLE%20{ra}%20{dec}%200")
        assert len(rows) == 16
        # The self-description is made once per list of collections, never kept stale.
        assert {"spherex_qr2", "spherex_qr2_deep"} <= set(_collection_options(base))
        key = rows[0]["access_url"].split("/ibe/data/spherex/", 1)[1]
        assert request(f"{base}/ibe/data/spherex/{key}", "HEAD").status == 200
        folder = key.rsplit("/", 1)[0]
        assert key.rsplit("/", 1)[1].encode() in request(f"{base}/ibe/data/spherex/{folder}/").body
        listed = json.loads(request(f"{base}/coverage/?format=json").body)["collections"]
        assert {c["collection"] for c in listed} >= {"spherex_qr2", "spherex_qr2_deep"}
        covering = request(
            f"{base}/coverage/search?POS=CIRCLE%20{ra}%20{dec}%200&RESPONSEFORMAT=csv"
        )
        assert covering.status == 200 and b"spherex_qr2_deep" in covering.body
