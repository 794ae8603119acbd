"""The spectrophotometry UWS service over HTTP, on both catalogue backends: the round trip with
every result, uploaded positions, abort, a position no image covers, a malformed one."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import requests
from astropy.io.votable import parse
from astropy.table import Table

from tests.jobs.service import wait_for

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
HREF = "{http://www.w3.org/1999/xlink}href"
RESULTS = {
    "result": "application/x-votable+xml",
    "result-csv": "text/csv;header=present",
    "result-ecsv": "text/x-ecsv",
    "spectrum": "application/x-votable+xml",
    "spectrum-png": "image/png",
    "datalink": "application/x-votable+xml;content=datalink",
}


@pytest.fixture(scope="module")
def jobs(archive_server) -> str:
    return archive_server.base + "/api/spherex/spectrophotometry/async"


@pytest.fixture(scope="module")
def nep(small_release) -> tuple[float, float]:
    sources = Table.read(small_release / "truth" / "sources.ecsv")
    row = sources[sources["name"] == "NEP-showcase"][0]
    return float(row["ra"]), float(row["dec"])


def create(jobs: str, files=None, **params) -> str:
    reply = requests.post(jobs, data=params, files=files, allow_redirects=False, timeout=60)
    assert reply.status_code == 303, reply.text
    return reply.headers["location"]


def document(job_url: str) -> ET.Element:
    return ET.fromstring(requests.get(job_url, timeout=60).content)


def results(job_url: str) -> dict[str, str]:
    root = document(job_url)
    return {r.get("id"): r.get(HREF) for r in root.findall("uws:results/uws:result", NS)}


def votable(url: str):
    return parse(io.BytesIO(requests.get(url, timeout=60).content))


def test_round_trip_with_every_result(jobs, nep):
    ra, dec = nep
    job_url = create(jobs, POINT=f"{ra},{dec}", PHASE="RUN")
    assert wait_for(job_url, {"COMPLETED", "ERROR", "ABORTED"}, timeout=120) == "COMPLETED"
    found = results(job_url)
    assert set(found) == set(RESULTS)
    for name, url in found.items():
        reply = requests.get(url, timeout=60)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith(RESULTS[name].split(";")[0])

    measurements = votable(found["result"]).get_first_table().to_table()
    assert len(measurements) == 16  # 8 deep exposures, two detectors each
    assert measurements["flux"].unit == "uJy" and measurements["wavelength"].unit == "um"
    assert measurements["flux"].description.startswith("Flux density")
    assert len(set(measurements["detector"])) >= 2  # a SWIR and an MWIR detector
    assert np.all(measurements["flux"] / measurements["flux_error"] > 5)

    csv = Table.read(requests.get(found["result-csv"], timeout=60).text, format="ascii.csv")
    ecsv = Table.read(requests.get(found["result-ecsv"], timeout=60).text, format="ascii.ecsv")
    assert len(csv) == len(ecsv) == 16
    assert ecsv["flux"].unit == "uJy"
    assert np.allclose(ecsv["flux"], measurements["flux"])

    spectrum = votable(found["spectrum"]).get_first_table().to_table()
    assert 0 < len(spectrum) <= 16 and set(spectrum["channel"]) <= set(range(1, 103))
    assert requests.get(found["spectrum-png"], timeout=60).content.startswith(b"\x89PNG")


def test_the_datalink_document_cuts_every_image_in_one_call(jobs, nep, archive_server):
    from pyvo.dal.adhoc import DatalinkResults

    ra, dec = nep
    job_url = create(jobs, POINT=f"{ra} {dec}", PHASE="RUN")
    assert wait_for(job_url, {"COMPLETED", "ERROR"}, timeout=120) == "COMPLETED"
    url = results(job_url)["datalink"]
    links = DatalinkResults.from_result_url(url)
    table = links.to_table()
    files = table[table["semantics"] == "#this"]
    assert len(files) == 16
    assert all(
        u.startswith(archive_server.base + "/ibe/data/spherex/") for u in files["access_url"]
    )
    assert requests.head(files["access_url"][0], timeout=60).status_code == 200
    cutouts = table[table["semantics"] == "#cutout"]
    assert set(cutouts["service_def"]) == {"cutouts-1"}
    descriptor = links.get_adhocservice_by_id("cutouts-1")
    located = {p.name: p.value for p in descriptor.params}
    assert located["accessURL"] == archive_server.base + "/soda/async"
    inputs = {p.name: p for p in descriptor.groups[0].entries}
    assert inputs["ID"].ref == "obs_publisher_did"
    assert list(inputs["CIRCLE"].value[:2]) == pytest.approx([ra, dec])


def test_uploaded_positions_with_ids(jobs, nep, tmp_path):
    ra, dec = nep
    table = Table({"id": ["star-a", "nothing-here"], "ra": [ra, 123.0], "dec": [dec, -5.0]})
    path = tmp_path / "sources.xml"
    table.write(path, format="votable")
    with path.open("rb") as upload:
        job_url = create(
            jobs, files={"mine": ("sources.xml", upload)}, SOURCES="param:mine", PHASE="RUN",
            METHOD="aperture", BKG_REGION_SIZE="12",
        )  # fmt: skip
    assert wait_for(job_url, {"COMPLETED", "ERROR"}, timeout=120) == "COMPLETED"
    result = votable(results(job_url)["result"])
    measurements = result.get_first_table().to_table()
    assert set(measurements["source_id"]) == {"star-a"}
    assert set(measurements["method"]) == {"aperture"}
    infos = {i.name: i.value for i in result.resources[0].infos}
    assert "nothing-here" in infos["message"] and infos["bkg_region_size"] == "12"


def test_a_position_outside_every_image_completes_empty_with_a_message(jobs):
    job_url = create(jobs, POINT="123.0,-5.0", PHASE="RUN")
    assert wait_for(job_url, {"COMPLETED", "ERROR"}, timeout=120) == "COMPLETED"
    found = results(job_url)
    result = votable(found["result"])
    assert len(result.get_first_table().array) == 0
    infos = {i.name: i.value for i in result.resources[0].infos}
    assert infos["message"].startswith("no spectral image passing the filters covers POINT1")
    assert requests.get(found["spectrum-png"], timeout=60).content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"POINT": "abc"}, "POINT: expected 'ra,dec'"),
        ({"POINT": "10,100"}, "outside RA 0..360, Dec -90..90"),
        ({}, "no position"),
        ({"POINT": "10,10", "METHOD": "tractor"}, "METHOD"),
        ({"POINT": "10,10", "BKG_REGION_SIZE": "big"}, "BKG_REGION_SIZE"),
        ({"POINT": "10,10", "COLLECTION": "nowhere"}, "unknown collection"),
        ({"POINT": "10,10", "SOURCES": "param:none"}, "no table was posted"),
    ],
)
def test_malformed_requests_end_in_error_with_a_clear_summary(jobs, params, words):
    job_url = create(jobs, PHASE="RUN", **params)
    assert wait_for(job_url, {"COMPLETED", "ERROR"}, timeout=120) == "ERROR"
    summary = document(job_url).find("uws:errorSummary/uws:message", NS).text
    assert words in summary
    assert words in requests.get(job_url + "/error", timeout=60).text


def test_abort(jobs, nep, tmp_path):
    pending = create(jobs, POINT="10,10")
    reply = requests.post(pending + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert reply.status_code == 303
    assert wait_for(pending, {"ABORTED"}) == "ABORTED"

    # a long list of sources, aborted while it runs
    ra, dec = nep
    many = Table({"ra": np.full(3000, ra), "dec": np.full(3000, dec)})
    path = tmp_path / "many.csv"
    many.write(path, format="csv")
    with path.open("rb") as upload:
        running = create(jobs, files={"many": upload}, SOURCES="param:many", PHASE="RUN")
    wait_for(running, {"EXECUTING"}, timeout=60)
    requests.post(running + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert wait_for(running, {"ABORTED", "COMPLETED", "ERROR"}, timeout=30) == "ABORTED"
    assert results(running) == {}
