"""DataLink 1.1 and the previews through HTTP, on both catalogues: the documents, GET and POST,
many ids, faults, datalinklint, and the real client (pyvo: links documents, the service
descriptors of SIA answers and of the links, iter_datalinks)."""

from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from PIL import Image

from spherex_archive.services.datalink import COLUMNS, MAX_IDS, MEDIA_TYPE, STANDARD_ID
from spherex_archive.services.preview import BLANK_COLOUR
from tests.protocols.client import Reply, request
from tests.validators import STILTS, votlint

DARK = "ivo://irsa.ipac/spherex_qr2_cal?dark_D2_spx_cal-drk-v4-2025-161"
GAINS = "ivo://irsa.ipac/spherex_qr2_cal?gain_factors_spx_base-2025-158"


@dataclass
class Links:
    base: str
    backend: str

    @property
    def url(self) -> str:
        return self.base + "/datalink/links/spherex"

    def query(self, *ids: str, **params: str) -> str:
        return f"{self.url}?{urlencode([*(('ID', i) for i in ids), *params.items()])}"

    def get(self, *ids: str, **params: str) -> Reply:
        return request(self.query(*ids, **params))

    def post(self, ids: list[str], name: str = "ID", **params: str) -> Reply:
        body = urlencode([*((name, i) for i in ids), *params.items()]).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return request(self.url, "POST", headers, body)

    def preview(self, did: str, headers: dict[str, str] | None = None) -> Reply:
        return request(
            f"{self.base}/datalink/preview/spherex?ID={quote(did, safe='')}", headers=headers
        )


@pytest.fixture(scope="module")
def links(archive_server) -> Links:
    return Links(archive_server.base, archive_server.backend)


@pytest.fixture(scope="module")
def images(small_release) -> list[str]:
    """The dataset ids of the wide survey's spectral images."""
    found = []
    for path in sorted(small_release.glob("qr2/level2/*/*/*/level2_*.fits")):
        with fits.open(path) as hdus:
            header = hdus["IMAGE"].header
            if str(header.get("SPS_FLAGS", "")).strip() != "deep":
                found.append(f"ivo://irsa.ipac/spherex_qr2?{header['OBSID']}/D{header['DETECTOR']}")
    return found


def _table(reply: Reply):
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["content-type"] == MEDIA_TYPE  # exactly, no blanks or charset
    document = parse_votable(io.BytesIO(reply.body))
    return document, document.get_first_table()


def _rows(reply: Reply) -> list[dict]:
    """The rows of a links document, NULL cells as None."""
    _, table = _table(reply)
    names = [f.name for f in table.fields]
    return [{n: None if row.mask[n] else row[n] for n in names} for row in table.array]


# --------------------------------------------------------------------------------------------
# Documents


def test_the_links_of_a_spectral_image(links, images, small_release):
    did = images[0]
    reply = links.get(did)
    document, table = _table(reply)
    assert [f.name for f in table.fields] == [c.name for c in COLUMNS]
    fields = {f.name: f for f in table.fields}
    assert fields["content_length"].datatype == "long" and fields["content_length"].unit == "byte"
    (results,) = [r for r in document.resources if r.type == "results"]
    assert {i.name: i.value for i in results.infos}["standardID"] == STANDARD_ID
    rows = _rows(reply)
    assert {r["ID"] for r in rows} == {did}
    assert [r["semantics"] for r in rows][:4] == ["#this", "#cutout", "#cutout", "#preview"]
    assert rows[-1]["semantics"] == "#auxiliary"
    for row in rows:
        assert sum(bool(row[c]) for c in ("access_url", "service_def", "error_message")) == 1

    this = rows[0]
    file = request(this["access_url"])
    assert file.status == 200 and len(file.body) == this["content_length"]
    assert this["content_type"] == "application/fits" and this["content_qualifier"] == "#image"
    path = small_release / this["access_url"].split("/ibe/data/spherex/", 1)[1]
    assert file.body == path.read_bytes()
    calibrations = [r for r in rows if r["semantics"] == "#calibration"]
    assert len(calibrations) >= 8
    for row in calibrations:
        head = request(row["access_url"], "HEAD")
        assert head.status == 200 and int(head.headers["content-length"]) == row["content_length"]
    preview = request(rows[3]["access_url"])
    assert preview.status == 200 and preview.headers["content-type"] == "image/png"

    services = {r.ID: r for r in document.resources if r.utype == "adhoc:service"}
    assert set(services) == {rows[1]["service_def"], rows[2]["service_def"]}
    assert rows[2]["local_semantics"] == "ibe-cutout"


def test_many_ids_by_post_urlencoded_and_multipart(links, images):
    ids = [images[5], "ivo://irsa.ipac/spherex_qr2?nothing/D1", *images, DARK]
    by_post = links.post(ids)
    rows = _rows(by_post)
    seen = [r["ID"] for r in rows]
    groups = [i for n, i in enumerate(seen) if n == 0 or seen[n - 1] != i]
    assert groups == list(dict.fromkeys(ids))  # every id, in order, its rows together
    assert links.post(ids, name="id").body == by_post.body  # names are case-insensitive
    assert links.get(*ids).body == by_post.body

    boundary = "----sx-datalink"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="ID"\r\n\r\n{i}\r\n' for i in ids
    )
    body = (parts + f"--{boundary}--\r\n").encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert request(links.url, "POST", headers, body).body == by_post.body


def test_unknown_ids_are_a_not_found_fault_echoing_the_id(links, images):
    odd = images[0].upper()  # ids are matched, and echoed, exactly
    rows = _rows(links.get(odd))
    assert len(rows) == 1
    assert rows[0]["ID"] == odd and rows[0]["semantics"] == "#this"
    assert rows[0]["error_message"].startswith("NotFoundFault: ")
    assert not rows[0]["access_url"] and not rows[0]["service_def"]


def test_calibration_files_have_no_cutouts(links):
    rows = _rows(links.get(DARK, GAINS))
    semantics = {i: [r["semantics"] for r in rows if r["ID"] == i] for i in (DARK, GAINS)}
    assert semantics == {
        DARK: ["#this", "#preview", "#auxiliary"],
        GAINS: ["#this", "#auxiliary"],
    }
    assert b'utype="adhoc:service"' not in links.get(DARK).body


def test_no_id_is_an_empty_links_table(links):
    reply = links.get()
    _, table = _table(reply)
    assert len(table.array) == 0 and len(table.fields) == len(COLUMNS)
    assert b'value="OVERFLOW"' not in reply.body


def test_the_standard_response_formats(links, images):
    plain = links.get(images[0]).body
    for fmt in ("votable", "VOTable", "application/x-votable+xml", MEDIA_TYPE, ""):
        reply = links.get(images[0], RESPONSEFORMAT=fmt)
        assert reply.body == plain, fmt
        assert reply.headers["content-type"] == MEDIA_TYPE


@pytest.mark.parametrize(
    "query",
    [
        "ID=x&RESPONSEFORMAT=csv",
        "ID=x&RESPONSEFORMAT=text/html",
        "ID=x&RESPONSEFORMAT=votable&RESPONSEFORMAT=votable",
        "ID=",
    ],
)
def test_bad_requests_are_usage_faults(links, query):
    reply = request(f"{links.url}?{query}")
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("application/x-votable+xml")
    status = re.search(rb'<INFO name="QUERY_STATUS" value="ERROR">([^<]*)</INFO>', reply.body)
    assert status and status[1].startswith(b"UsageFault: ")
    assert b"<TABLE" not in reply.body


def test_more_ids_than_the_cap_are_left_for_the_next_request(links):
    ids = [f"ivo://irsa.ipac/spherex_qr2?none_{n}/D1" for n in range(MAX_IDS + 5)]
    reply = links.post(ids)
    rows = _rows(reply)
    assert [r["ID"] for r in rows] == ids[:MAX_IDS]
    tail = reply.body[reply.body.index(b"</TABLE>") :]
    assert b'<INFO name="QUERY_STATUS" value="OVERFLOW"/>' in tail


# --------------------------------------------------------------------------------------------
# Validators


def datalinklint(url: str) -> tuple[list[str], str]:
    """datalinklint's errors and warnings about the document at ``url`` (HTTP headers
    included), and its totals line."""
    result = subprocess.run(
        [STILTS, "datalinklint", f"votable={url}"], capture_output=True, text=True, timeout=120
    )
    lines = (result.stdout + result.stderr).splitlines()
    totals = next((line for line in lines if line.startswith("Totals:")), "no totals")
    return [line for line in lines if line[:2] in ("E-", "W-", "F-")], totals


@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_datalinklint_finds_nothing(links, images, tmp_path):
    if links.backend != "sqlite":
        pytest.skip("the documents do not depend on the catalogue")
    for query in (
        links.query(images[0], images[1], "ivo://irsa.ipac/spherex_qr2?nothing/D1"),
        links.query(DARK, GAINS),
        links.url,
    ):
        complaints, totals = datalinklint(query)
        assert complaints == [], query
        assert "Errors: 0; Warnings: 0;" in totals and "Failures: 0" in totals, totals
    assert votlint(links.get(*images[:3]).body, tmp_path) == []


# --------------------------------------------------------------------------------------------
# pyvo


def test_pyvo_reads_the_links_and_the_soda_descriptor(links, images):
    from pyvo.dal.adhoc import SODA_SYNC_IVOID, DatalinkResults, SodaQuery
    from pyvo.dal.tap import TAPService

    did = images[2]
    results = DatalinkResults.from_result_url(links.query(did))
    assert {r.id for r in results} == {did}
    (this,) = [r for r in results if r.semantics == "#this"]
    assert this.content_length > 0 and this.getdataurl().endswith(".fits")
    proc = results.get_first_proc()
    assert proc.semantics == "#cutout" and proc.access_url == links.base + "/soda/sync"

    # processed() on an ObsCore row finds the SODA descriptor in the row's links document and
    # fills ID from its fixed value (a ref there would be resolved against the ObsCore row).
    tap = TAPService(links.base + "/TAP")
    (record,) = tap.search(f"SELECT * FROM spherex.obscore WHERE obs_publisher_did = '{did}'")
    assert record.getdataformat() == MEDIA_TYPE
    soda = DatalinkResults.from_result_url(record.getdataurl()).get_adhocservice_by_ivoid(
        SODA_SYNC_IVOID
    )
    query = SodaQuery.from_resource(record, soda, circle=(record["s_ra"], record["s_dec"], 0.01))
    assert query.baseurl == links.base + "/soda/sync"
    assert query["ID"] == did
    assert [float(x) for x in query["CIRCLE"].split()] == pytest.approx(
        [record["s_ra"], record["s_dec"], 0.01]
    )
    assert "BAND" not in query and "POLYGON" not in query  # empty user inputs are not sent
    cutout = record.processed(circle=(record["s_ra"], record["s_dec"], 0.01)).read()
    with fits.open(io.BytesIO(cutout)) as hdus:
        assert hdus[1].name == "IMAGE" and 0 < hdus["IMAGE"].data.size < 64 * 64


def test_pyvo_calls_the_ibe_cutout_descriptor(links, images):
    from pyvo.dal.adhoc import DatalinkResults

    results = DatalinkResults.from_result_url(links.query(images[4]))
    (row,) = [r for r in results if r["local_semantics"] == "ibe-cutout"]
    stream = row.process(center="32,32px", size="5px")  # path is the descriptor's fixed value
    with fits.open(io.BytesIO(stream.read())) as hdus:
        assert [h.name for h in hdus] == [
            "PRIMARY",
            "IMAGE",
            "FLAGS",
            "VARIANCE",
            "ZODI",
            "PSF",
            "WCS-WAVE",
        ]
        assert hdus["IMAGE"].data.shape == (5, 5)


def test_pyvo_iter_datalinks_over_an_sia_answer(links, images):
    from pyvo.dal import sia2

    answer = sia2.SIA2Service(links.base + "/SIA").search(collection="spherex_qr2", maxrec=15)
    assert len(answer) == 15
    rows = {r["obs_publisher_did"]: r for r in answer}
    found = {}
    for datalinks in answer.iter_datalinks():  # one POST with every row's id
        (did,) = set(datalinks["ID"])
        assert datalinks.original_row["obs_publisher_did"] == did
        (this,) = [r for r in datalinks if r.semantics == "#this"]
        found[did] = this.access_url
    assert found == {did: row["access_url"] for did, row in rows.items()}  # SIA links the file
    single = answer[0].getdatalink()
    assert {r.id for r in single} == {answer[0]["obs_publisher_did"]}


def test_sia_answers_carry_the_datalink_descriptor(links, tmp_path):
    reply = request(links.base + "/SIA?COLLECTION=spherex_qr2&MAXREC=2")
    document = parse_votable(io.BytesIO(reply.body))
    (descriptor,) = [
        r
        for r in document.resources
        if r.utype == "adhoc:service"
        and any(p.name == "standardID" and p.value == STANDARD_ID for p in r.params)
    ]
    assert {p.name: p.value for p in descriptor.params}["accessURL"] == links.url
    (inputs,) = descriptor.groups
    (dataset_id,) = inputs.entries
    assert dataset_id.name == "ID" and dataset_id.ref == "obs_publisher_did"
    table = document.get_first_table()
    assert table.get_field_by_id("obs_publisher_did").name == "obs_publisher_did"
    if links.backend == "sqlite":
        assert votlint(reply.body, tmp_path) == []


# --------------------------------------------------------------------------------------------
# Previews


def _png(reply: Reply) -> np.ndarray:
    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(reply.body)).convert("RGB"))


def test_previews(links, images):
    first, second = links.preview(images[0]), links.preview(images[1])
    a, b = _png(first), _png(second)
    assert a.shape == b.shape == (64, 64, 3)  # the small release's detectors, under 512
    assert not np.array_equal(a, b)
    assert first.headers["etag"] != second.headers["etag"]
    assert "max-age" in first.headers["cache-control"]
    again = links.preview(images[0], {"If-None-Match": first.headers["etag"]})
    assert again.status == 304 and again.body == b""
    assert _png(links.preview(DARK)).shape == (64, 64, 3)
    assert not np.all(a == BLANK_COLOUR)


def test_what_has_no_preview_is_404(links):
    for did in ("ivo://irsa.ipac/spherex_qr2?nothing/D1", GAINS):
        reply = links.preview(did)
        assert reply.status == 404 and reply.headers["content-type"].startswith("text/plain")
    assert request(links.base + "/datalink/preview/spherex").status == 400


# --------------------------------------------------------------------------------------------
# VOSI


def test_capabilities_and_availability(links):
    from pyvo.dal.adhoc import DatalinkService

    for base in (links.base + "/datalink", links.base + "/datalink/links"):
        reply = request(base + "/capabilities")
        assert reply.status == 200
        root = ET.fromstring(reply.body)
        ids = {c.get("standardID"): c for c in root.findall("capability")}
        (url,) = ids[STANDARD_ID].iter("accessURL")
        assert url.text == links.url
        availability = ET.fromstring(request(base + "/availability").body)
        assert (
            availability.find("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available").text
            == "true"
        )
    # pyvo looks beside the service's URL for its capabilities
    capabilities = DatalinkService(links.url).capabilities
    assert STANDARD_ID in {c.standardid for c in capabilities}


def test_the_landing_page_lists_datalink(links):
    assert b"/datalink/links/spherex" in request(links.base + "/").body
