"""UWS 1.1 as clients use it (ivoa-services §6, §12.4, Part C 1-5), on both catalogue backends:
every resource and status code, the documents as pyvo parses them and as the schema says, the
exact request sequence of pyvo's AsyncTAPJob, pyvo itself, WAIT, filters, uploads, errors."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
import requests
from pyvo.dal import AsyncTAPJob, TAPService
from pyvo.dal.exceptions import DALQueryError
from pyvo.io import uws as pyvo_uws

from spherex_archive.jobs.store import parse_time
from tests.jobs.service import Service, phase, uws_service, wait_for
from tests.validators import STILTS

NS = {
    "uws": "http://www.ivoa.net/xml/UWS/v1.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
HREF = "{http://www.w3.org/1999/xlink}href"
ORDER = [
    "jobId",
    "runId",
    "ownerId",
    "phase",
    "quote",
    "creationTime",
    "startTime",
    "endTime",
    "executionDuration",
    "destruction",
    "parameters",
    "results",
    "errorSummary",
    "jobInfo",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def uws(request, tmp_path_factory) -> Iterator[Service]:
    yield from uws_service(request.param, tmp_path_factory)


def get(url: str, **params) -> requests.Response:
    return requests.get(url, params=params, allow_redirects=False, timeout=60)


def post(url: str, files=None, **data) -> requests.Response:
    return requests.post(url, data=data, files=files, allow_redirects=False, timeout=60)


def document(job_url: str) -> ET.Element:
    reply = get(job_url)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/xml")
    return ET.fromstring(reply.content)


def text_of(root: ET.Element, tag: str) -> str | None:
    element = root.find(f"uws:{tag}", NS)
    return None if element is None else element.text


def finished(job_url: str) -> str:
    return wait_for(job_url, {"COMPLETED", "ERROR", "ABORTED"})


# --------------------------------------------------------------------------------------------
# Creation, the job document, the call sequence of pyvo


def test_creation_redirects_to_the_pending_job(uws):
    reply = post(uws.jobs, MODE="sleep", RunId="run-7", query="SELECT 1")
    assert reply.status_code == 303
    location = reply.headers["location"]
    assert location.startswith(uws.jobs + "/")
    job_id = location.rsplit("/", 1)[1]
    assert job_id and "/" not in job_id
    root = document(location)
    assert root.tag == "{http://www.ivoa.net/xml/UWS/v1.0}job"
    assert root.get("version") == "1.1"
    assert [child.tag.split("}")[1] for child in root] == [
        t for t in ORDER if t not in ("errorSummary", "jobInfo")
    ]
    assert text_of(root, "jobId") == job_id
    assert text_of(root, "runId") == "run-7"
    assert text_of(root, "phase") == "PENDING"
    for nil in ("ownerId", "quote", "startTime", "endTime"):
        element = root.find(f"uws:{nil}", NS)
        assert element.get(NIL) == "true" and not element.text
    assert text_of(root, "executionDuration") == "60"  # the kind's default
    created = parse_time(text_of(root, "creationTime"))
    assert text_of(root, "creationTime").endswith("Z")
    assert text_of(root, "destruction").endswith("Z")
    assert parse_time(text_of(root, "destruction")) - created == timedelta(days=7)
    parameters = {p.get("id"): p.text for p in root.findall("uws:parameters/uws:parameter", NS)}
    assert parameters == {"MODE": "sleep", "QUERY": "SELECT 1"}  # RUNID is the job's own
    assert root.findall("uws:results/uws:result", NS) == []
    time.sleep(0.5)
    assert phase(location) == "PENDING"  # it waits for PHASE=RUN

    job = pyvo_uws.parse_job(BytesIO(get(location).content))
    assert job.version == "1.1"
    assert job.jobid == job_id and job.runid == "run-7" and job.phase == "PENDING"
    assert job.ownerid is None and job.quote is None and job.starttime is None
    assert job.executionduration.sec == 60  # a TimeDelta
    assert job.destruction.isot.startswith(text_of(root, "destruction")[:19])


def test_phase_run_in_the_creation_post_runs_at_once(uws):
    job_url = uws.create(MODE="sleep", SECONDS="0.1", PHASE="RUN")
    assert phase(job_url) in ("QUEUED", "EXECUTING", "COMPLETED")
    assert finished(job_url) == "COMPLETED"


def test_pyvo_async_call_sequence(uws):
    """What AsyncTAPJob does, request by request (§12.4), without a redirect followed for it."""
    created = post(uws.jobs, REQUEST="doQuery", LANG="ADQL", QUERY="SELECT 1", MODE="sleep")
    assert created.status_code == 303
    job_url = created.headers["location"]
    for _ in range(2):
        assert text_of(document(job_url), "phase") == "PENDING"
    run = post(job_url + "/phase", PHASE="RUN")
    assert run.status_code == 303 and run.headers["location"] == job_url
    assert text_of(document(job_url), "phase") in ("QUEUED", "EXECUTING")  # Part C 2
    for _ in range(20):
        root = ET.fromstring(get(job_url, WAIT="-1").content)
        if text_of(root, "phase") in ("COMPLETED", "ERROR", "ABORTED"):
            break
        assert text_of(root, "phase") in ("QUEUED", "EXECUTING")
    assert text_of(root, "phase") == "COMPLETED"
    assert parse_time(text_of(root, "startTime")) <= parse_time(text_of(root, "endTime"))
    results = {r.get("id"): r for r in root.findall("uws:results/uws:result", NS)}
    assert set(results) == {"result", "note"}
    href = results["result"].get(HREF)
    assert href == job_url + "/results/result"  # absolute (Part C 3)
    assert results["result"].get("{http://www.w3.org/1999/xlink}type") == "simple"
    answer = get(href)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-votable+xml"
    assert int(results["result"].get("size")) == len(answer.content)
    assert results["result"].get("mime-type") == "application/x-votable+xml"
    assert "QUERY_STATUS" in answer.text
    deleted = requests.delete(job_url, allow_redirects=False, timeout=30)
    assert deleted.status_code == 303 and deleted.headers["location"] == uws.jobs
    assert get(job_url).status_code == 404
    assert not uws.workdir(job_url).exists()


def test_pyvo_runs_a_job_and_reads_its_result(uws):
    service = TAPService(uws.base + "/TEST")
    table = service.run_async("SELECT 1", MODE="sleep", SECONDS="0.2").to_table()
    assert len(table) == 1 and table["job"][0]
    with pytest.raises(DALQueryError, match="told to fail <on purpose>"):
        service.run_async("SELECT 1", MODE="fail")


def test_pyvo_job_methods(uws):
    job = AsyncTAPJob.create(uws.base + "/TEST", "SELECT 2", MODE="sleep", SECONDS="5")
    assert job.phase == "PENDING" and job.query == "SELECT 2"
    job.execution_duration = 30
    assert job.execution_duration.sec == 30
    soon = datetime.now(UTC) + timedelta(hours=1)
    job.destruction = soon
    assert abs((job.destruction.datetime.replace(tzinfo=UTC) - soon).total_seconds()) < 1
    job.query = "SELECT 3"
    assert job.query == "SELECT 3"
    job.run()
    assert job.phase in ("QUEUED", "EXECUTING")
    wait_for(job.url, {"EXECUTING"})
    job.abort()
    assert job.phase == "ABORTED"
    with pytest.raises(DALQueryError):
        job.raise_if_error()
    listed = TAPService(uws.base + "/TEST").get_job_list(phases=["ABORTED"], last=5)
    assert job.job_id in [j.jobid for j in listed]
    url = job.url
    job.delete()
    assert get(url).status_code == 404


# --------------------------------------------------------------------------------------------
# Every resource, every status


def test_every_child_resource_of_a_pending_job(uws):
    job_url = uws.create(MODE="sleep", RUNID="r")
    root = document(job_url)
    plain = {
        "phase": "PENDING",
        "executionduration": text_of(root, "executionDuration"),
        "destruction": text_of(root, "destruction"),
        "quote": "",
        "owner": "",
    }
    for child, expected in plain.items():
        reply = get(f"{job_url}/{child}")
        assert reply.status_code == 200, child
        assert reply.headers["content-type"].startswith("text/plain")
        assert reply.text == expected, child  # taplint JDDE/JDED: the very same text
    parameters = get(job_url + "/parameters")
    assert parameters.status_code == 200
    element = ET.fromstring(parameters.content)
    assert element.tag == "{http://www.ivoa.net/xml/UWS/v1.0}parameters"
    assert [p.get("id") for p in element] == ["MODE"]
    results = ET.fromstring(get(job_url + "/results").content)
    assert results.tag == "{http://www.ivoa.net/xml/UWS/v1.0}results" and len(results) == 0
    assert get(job_url + "/error").status_code == 404
    assert get(job_url + "/results/result").status_code == 404
    assert get(job_url + "/parameters/MODE").status_code == 404  # not an uploaded file
    assert get(job_url + "/nothing").status_code == 404


def test_unknown_jobs_are_404_everywhere(uws):
    missing = uws.jobs + "/0000000000000000"
    for child in ("", "/phase", "/executionduration", "/destruction", "/quote", "/error",
                  "/parameters", "/results", "/owner", "/results/result"):  # fmt: skip
        assert get(missing + child).status_code == 404, child
    assert post(missing + "/phase", PHASE="RUN").status_code == 404
    assert requests.delete(missing, allow_redirects=False, timeout=30).status_code == 404
    # A job of another kind is not a job of this list.
    other = post(uws.base + "/OTHER/async", MODE="sleep").headers["location"]
    assert get(other).status_code == 200
    assert get(uws.jobs + "/" + other.rsplit("/", 1)[1]).status_code == 404


def test_changes_while_pending_and_refusals_after(uws):
    job_url = uws.create(MODE="sleep", SECONDS="0.1")
    reply = post(job_url + "/parameters", seconds="0.2", Extra="x")
    assert reply.status_code == 303 and reply.headers["location"] == job_url
    parameters = {p.get("id"): p.text for p in document(job_url).findall(".//uws:parameter", NS)}
    assert parameters == {"MODE": "sleep", "SECONDS": "0.2", "EXTRA": "x"}
    reply = post(job_url + "/executionduration", EXECUTIONDURATION="30")
    assert reply.status_code == 303 and reply.headers["location"] == job_url
    assert get(job_url + "/executionduration").text == "30"
    for asked in ("1000", "0"):  # past the kind's most (120 s), or unlimited: the most
        assert post(job_url + "/executionduration", EXECUTIONDURATION=asked).status_code == 303
        assert get(job_url + "/executionduration").text == "120"
    for bad in ("-1", "soon", "1.5"):
        assert post(job_url + "/executionduration", EXECUTIONDURATION=bad).status_code == 400
    assert post(job_url + "/executionduration").status_code == 400
    earlier = datetime.now(UTC) + timedelta(hours=2)
    reply = post(job_url + "/destruction", DESTRUCTION=earlier.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert reply.status_code == 303 and reply.headers["location"] == job_url
    assert get(job_url + "/destruction").text == earlier.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert text_of(document(job_url), "destruction") == get(job_url + "/destruction").text
    later = datetime.now(UTC) + timedelta(days=30)  # past the policy: capped
    post(job_url + "/destruction", DESTRUCTION=later.isoformat())
    created = parse_time(text_of(document(job_url), "creationTime"))
    assert parse_time(get(job_url + "/destruction").text) == created + timedelta(days=7)
    assert post(job_url + "/destruction", DESTRUCTION="tomorrow").status_code == 400
    assert post(job_url + "/phase", PHASE="SUSPEND").status_code == 400
    assert post(job_url, WHATEVER="1").status_code == 400  # DALI: only ACTION=DELETE

    assert post(job_url + "/phase", PHASE="RUN").status_code == 303
    assert post(job_url + "/phase", PHASE="RUN").status_code == 303  # still active: harmless
    assert post(job_url + "/parameters", MODE="fail").status_code == 403
    assert post(job_url + "/executionduration", EXECUTIONDURATION="5").status_code == 403
    assert finished(job_url) == "COMPLETED"
    assert post(job_url + "/phase", PHASE="RUN").status_code == 403  # it has run
    assert post(job_url + "/phase", PHASE="ABORT").status_code == 303  # nothing to abort
    assert phase(job_url) == "COMPLETED"
    soon = datetime.now(UTC) + timedelta(hours=1)
    assert post(job_url + "/destruction", DESTRUCTION=soon.isoformat()).status_code == 303
    reply = post(job_url, ACTION="DELETE")
    assert reply.status_code == 303 and reply.headers["location"] == uws.jobs
    assert get(job_url).status_code == 404


def test_abort_of_a_pending_job(uws):
    job_url = uws.create(MODE="sleep")
    reply = post(job_url + "/phase", PHASE="ABORT")
    assert reply.status_code == 303 and reply.headers["location"] == job_url
    root = document(job_url)
    assert text_of(root, "phase") == "ABORTED"
    assert root.find("uws:errorSummary", NS) is None
    assert get(job_url + "/error").status_code == 404
    assert post(job_url + "/phase", PHASE="RUN").status_code == 403


def test_failures_end_in_error_with_a_summary_and_an_error_document(uws):
    cases = {
        "fail": ("transient", "UsageFault: told to fail <on purpose>"),
        "crash": ("fatal", "a bug in the task"),
        "exit": ("fatal", "the job's process ended without an answer (exit code 3)"),
        "missing": ("fatal", "the task did not write its result 'never-written.xml'"),
    }
    urls = {mode: uws.create(MODE=mode, PHASE="RUN") for mode in cases}
    for mode, (kind, message) in cases.items():
        job_url = urls[mode]
        assert finished(job_url) == "ERROR", mode
        root = document(job_url)
        summary = root.find("uws:errorSummary", NS)
        assert summary.get("type") == kind and summary.get("hasDetail") == "true"
        assert summary.find("uws:message", NS).text == message
        assert [c.tag.split("}")[1] for c in root][-1] == "errorSummary"
        assert root.findall("uws:results/uws:result", NS) == []
        error = get(job_url + "/error")
        assert error.status_code == 200
        assert error.headers["content-type"] == "application/x-votable+xml"
        info = ET.fromstring(error.content).find(".//{*}INFO")
        assert info.get("value") == "ERROR" and info.text == message
        assert get(job_url + "/results/result").status_code == 404
        job = pyvo_uws.parse_job(BytesIO(get(job_url).content))
        assert job.phase == "ERROR" and job.errorsummary.message.content == message


def test_a_large_result_is_streamed_whole(uws):
    size = 24 << 20
    job_url = uws.create(MODE="large", SIZE=str(size), SECONDS="0", PHASE="RUN")
    assert finished(job_url) == "COMPLETED"
    result = document(job_url).find("uws:results/uws:result", NS)
    assert result.get("size") == str(size)
    expected = hashlib.sha256((uws.workdir(job_url) / "large.bin").read_bytes()).hexdigest()
    with requests.get(result.get(HREF), stream=True, timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/octet-stream"
        assert reply.headers["content-length"] == str(size)
        digest = hashlib.sha256()
        for chunk in reply.iter_content(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == expected


def test_uploaded_files_are_parameters_by_reference(uws):
    table = b'<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE/></VOTABLE>\n'
    reply = post(
        uws.jobs,
        files={"t1": ("t1.xml", table, "application/x-votable+xml")},
        UPLOAD="t1,param:t1",
        MODE="upload",
        TABLE="t1",
    )
    assert reply.status_code == 303
    job_url = reply.headers["location"]
    parameters = document(job_url).findall("uws:parameters/uws:parameter", NS)
    by_reference = [p for p in parameters if p.get("byReference") == "true"]
    assert [(p.get("id"), p.text) for p in by_reference] == [("t1", job_url + "/parameters/t1")]
    assert get(job_url + "/parameters/t1").content == table
    more = post(job_url + "/parameters", files={"t2": ("t2.xml", b"second", "text/xml")})
    assert more.status_code == 303
    assert get(job_url + "/parameters/t2").content == b"second"
    assert post(job_url + "/phase", PHASE="RUN").status_code == 303
    assert finished(job_url) == "COMPLETED"
    assert get(job_url + "/results/result").content == table
    bad = post(uws.jobs, files={"../escape": ("x", b"x", "text/plain")})
    assert bad.status_code == 400


# --------------------------------------------------------------------------------------------
# WAIT


def test_wait_returns_when_the_phase_changes(uws):
    job_url = uws.create(MODE="sleep", SECONDS="1.5", PHASE="RUN")
    wait_for(job_url, {"EXECUTING"})
    progress = uws.workdir(job_url) / ".progress.json"
    while not progress.exists():  # its process has started (the first may wait for imports)
        time.sleep(0.02)
    started = time.monotonic()
    root = ET.fromstring(get(job_url, WAIT="-1").content)
    waited = time.monotonic() - started
    assert text_of(root, "phase") == "COMPLETED"
    assert 0.5 < waited < 3.5
    started = time.monotonic()
    assert text_of(ET.fromstring(get(job_url, WAIT="20").content), "phase") == "COMPLETED"
    assert time.monotonic() - started < 2  # not active: at once, not after 20 s


def test_wait_gives_up_after_its_time_and_honours_phase(uws):
    job_url = uws.create(MODE="sleep")  # PENDING until told to run
    started = time.monotonic()
    assert text_of(ET.fromstring(get(job_url, WAIT="1").content), "phase") == "PENDING"
    assert 0.9 < time.monotonic() - started < 2
    started = time.monotonic()
    get(job_url, WAIT="10", PHASE="EXECUTING")  # no longer in that phase: at once
    assert time.monotonic() - started < 2
    assert get(job_url, WAIT="soon").status_code == 400
    # Another thread starts it: the waiting request sees the change at once.
    started = time.monotonic()
    runner = threading.Timer(0.5, post, (job_url + "/phase",), {"PHASE": "RUN"})
    runner.start()
    root = ET.fromstring(get(job_url, WAIT="10", PHASE="PENDING").content)
    assert text_of(root, "phase") in ("QUEUED", "EXECUTING")
    assert time.monotonic() - started < 3  # at the change, not after 10 s
    runner.join()


@pytest.mark.slow
def test_wait_minus_one_is_bounded(uws):
    job_url = uws.create(MODE="sleep")
    started = time.monotonic()
    assert text_of(ET.fromstring(get(job_url, WAIT="-1").content), "phase") == "PENDING"
    assert 29 < time.monotonic() - started < 32  # Part C 5


# --------------------------------------------------------------------------------------------
# The job list


def test_job_list_filters(uws):
    first = uws.create(MODE="sleep", RUNID="list-1")
    time.sleep(0.01)
    second = uws.create(MODE="sleep", SECONDS="0", PHASE="RUN", RUNID="list-2")
    finished(second)
    time.sleep(0.01)
    third = uws.create(MODE="sleep", RUNID="list-3")
    ids = [u.rsplit("/", 1)[1] for u in (first, second, third)]

    def listed(**params) -> list[ET.Element]:
        reply = get(uws.jobs, **params)
        assert reply.status_code == 200
        root = ET.fromstring(reply.content)
        assert root.tag == "{http://www.ivoa.net/xml/UWS/v1.0}jobs"
        assert root.get("version") == "1.1"
        return root.findall("uws:jobref", NS)

    everything = listed()
    refs = {r.get("id"): r for r in everything}
    assert set(ids) <= set(refs)
    ref = refs[ids[1]]
    assert ref.get(HREF) == second
    assert [c.tag.split("}")[1] for c in ref] == ["phase", "runId", "ownerId", "creationTime"]
    assert text_of(ref, "phase") == "COMPLETED" and text_of(ref, "runId") == "list-2"
    assert ref.find("uws:ownerId", NS).get(NIL) == "true"
    times = [text_of(r, "creationTime") for r in everything]
    assert times == sorted(times, reverse=True)  # newest first

    assert [r.get("id") for r in listed(LAST="2")] == [ids[2], ids[1]]
    pending = [r.get("id") for r in listed(PHASE="PENDING")]
    assert ids[0] in pending and ids[2] in pending and ids[1] not in pending
    both = {r.get("id") for r in listed(PHASE=["PENDING", "COMPLETED"])}
    assert set(ids) <= both
    after = text_of(refs[ids[0]], "creationTime")
    assert [r.get("id") for r in listed(AFTER=after)][-2:] == [ids[2], ids[1]]
    assert [r.get("id") for r in listed(AFTER=after, PHASE="PENDING", LAST="5")] == [ids[2]]
    other = post(uws.base + "/OTHER/async").headers["location"].rsplit("/", 1)[1]
    assert other not in {r.get("id") for r in listed()}
    for bad in ({"PHASE": "DONE"}, {"AFTER": "yesterday"}, {"LAST": "-1"}):
        assert get(uws.jobs, **bad).status_code == 400

    service = TAPService(uws.base + "/TEST")
    jobs = service.get_job_list(phases=["PENDING"], after=after)
    assert [j.jobid for j in jobs] == [ids[2]]
    assert [j.runid for j in service.get_job_list(last=1)] == ["list-3"]
    parsed = pyvo_uws.parse_job_list(BytesIO(get(uws.jobs).content))
    assert {j.jobid for j in parsed} >= set(ids)


# --------------------------------------------------------------------------------------------
# The schema


@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_documents_pass_the_uws_schema(uws, tmp_path):
    if "sqlite" not in uws.settings.catalogue:
        pytest.skip("the documents do not depend on the catalogue")
    done = uws.create(MODE="sleep", SECONDS="0", PHASE="RUN", RUNID="schema")
    failed = uws.create(MODE="fail", PHASE="RUN")
    running = uws.create(MODE="sleep", SECONDS="10", PHASE="RUN", EXECUTIONDURATION="1")
    finished(done), finished(failed), finished(running)
    table = ("t.xml", b"<x/>", "text/xml")
    pending = post(uws.jobs, files={"t": table}, UPLOAD="t,param:t").headers["location"]
    urls = [done, failed, running, pending, uws.jobs, done + "/parameters", done + "/results"]
    for number, url in enumerate(urls):
        path = tmp_path / f"document-{number}.xml"
        path.write_bytes(get(url).content)
        result = subprocess.run(
            [STILTS, "xsdvalidate", "uselocals=true", f"doc={path}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, url + "\n" + result.stdout + result.stderr
