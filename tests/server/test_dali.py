"""DALI request helpers, exercised over real HTTP: names case-insensitive, values untouched,
GET and POST (url-encoded and multipart, as pyvo and taplint send them) merged."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spherex_archive.formats import tabular, votable
from spherex_archive.model.schema import Column
from spherex_archive.server import dali
from tests.protocols.client import request
from tests.server.conftest import serving


async def echo(request: Request) -> JSONResponse:
    params = await dali.dali_params(request)
    files = await dali.dali_files(request)
    contents = {name: (await f.read()).decode() for name, f in files.items()}
    return JSONResponse({"params": params, "files": contents})


async def table(request: Request):
    params = await dali.dali_params(request)
    try:
        fmt = dali.response_format(dali.single(params, "RESPONSEFORMAT"))
        limit = dali.maxrec(params, default=3, limit=5)
    except dali.DaliError as error:
        return dali.error_response(error.message, status=error.status)
    rows = iter([(i, f"row {i}") for i in range(limit)])
    columns = (Column("n", "int", "number"), Column("s", "char", "text"))
    return dali.table_response(fmt, columns, rows, overflow=lambda: True)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    app = FastAPI()
    app.add_api_route("/echo", echo, methods=["GET", "POST"])
    app.add_api_route("/table", table, methods=["GET", "POST"])
    with serving(app) as url:
        yield url


def post(url: str, body: bytes, content_type: str, chunked: bool = False):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if chunked:  # taplint sends multipart bodies chunked, without Content-Length
            conn.request(
                "POST",
                target,
                body=iter([body[:50], body[50:]]),
                headers={"Content-Type": content_type},
                encode_chunked=True,
            )
        else:
            conn.request("POST", target, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_get_names_are_case_insensitive_values_are_not(base):
    reply = request(base + "/echo?MaxRec=10&pos=CIRCLE%2010%2020%201&Collection=a&COLLECTION=B")
    params = json.loads(reply.body)["params"]
    assert params == {"MAXREC": ["10"], "POS": ["CIRCLE 10 20 1"], "COLLECTION": ["a", "B"]}


def test_post_form_merges_with_the_query(base):
    status, body = post(
        base + "/echo?lang=ADQL",
        b"REQUEST=doQuery&query=SELECT+%2A+FROM+t&Lang=ADQL-2.0",
        "application/x-www-form-urlencoded",
    )
    assert status == 200
    assert body["params"] == {
        "LANG": ["ADQL", "ADQL-2.0"],
        "REQUEST": ["doQuery"],
        "QUERY": ["SELECT * FROM t"],
    }


@pytest.mark.parametrize("chunked", [False, True])
def test_multipart_as_taplint_sends_it(base, chunked):
    boundary = "<<<--------------MULTIPART-BOUNDARY------->>>"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="query"\r\n'
        "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
        "SELECT * FROM TAP_UPLOAD.t1\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="UPLOAD"\r\n\r\n'
        "t1,param:Up1\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="Up1"; filename="t1.xml"\r\n'
        "Content-Type: application/x-votable+xml\r\n\r\n"
        "<VOTABLE/>\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    content_type = f'multipart/form-data; boundary="{boundary}"'
    status, reply = post(base + "/echo", body, content_type, chunked)
    assert status == 200
    assert reply["params"] == {"QUERY": ["SELECT * FROM TAP_UPLOAD.t1"], "UPLOAD": ["t1,param:Up1"]}
    assert reply["files"] == {"Up1": "<VOTABLE/>"}


def test_single_valued_parameters():
    assert dali.single({"MAXREC": ["5"]}, "maxrec") == "5"
    assert dali.single({}, "MAXREC", "7") == "7"
    with pytest.raises(dali.DaliError, match="UsageFault: MAXREC was given 2 times"):
        dali.single({"MAXREC": ["5", "6"]}, "MaxRec")


def test_maxrec():
    assert dali.maxrec({}, default=100, limit=50) == 50
    assert dali.maxrec({"MAXREC": ["0"]}, default=100, limit=50) == 0
    assert dali.maxrec({"MAXREC": [" 20 "]}, default=100, limit=50) == 20
    assert dali.maxrec({"MAXREC": ["1000"]}, default=100, limit=50) == 50
    for bad in ("-1", "ten", "1.5"):
        with pytest.raises(dali.DaliError, match="UsageFault"):
            dali.maxrec({"MAXREC": [bad]}, default=100, limit=50)


@pytest.mark.parametrize(
    ("value", "name", "media_type", "serialization"),
    [
        (None, "votable", votable.MEDIA_TYPE, "TABLEDATA"),
        ("votable", "votable", votable.MEDIA_TYPE, "TABLEDATA"),
        ("VOTable/B2", "votable", votable.MEDIA_TYPE, "BINARY2"),
        (
            "application/x-votable+xml;serialization=BINARY2",
            "votable",
            "application/x-votable+xml;serialization=BINARY2",
            "BINARY2",
        ),
        ("text/xml", "votable", "text/xml", "TABLEDATA"),
        ("csv", "csv", tabular.CSV_MEDIA_TYPE, "TABLEDATA"),
        ("text/csv", "csv", "text/csv", "TABLEDATA"),
        ("TSV", "tsv", tabular.TSV_MEDIA_TYPE, "TABLEDATA"),
        ("html", "html", tabular.HTML_MEDIA_TYPE, "TABLEDATA"),
    ],
)
def test_response_formats(value, name, media_type, serialization):
    fmt = dali.response_format(value)
    assert (fmt.name, fmt.media_type, fmt.serialization) == (name, media_type, serialization)


def test_unknown_response_format_is_a_usage_fault():
    with pytest.raises(dali.DaliError, match="UsageFault: RESPONSEFORMAT 'pdf'"):
        dali.response_format("pdf")


def test_table_and_error_responses(base):
    reply = request(base + "/table?MAXREC=2")
    assert reply.status == 200
    assert reply.headers["content-type"] == votable.MEDIA_TYPE
    assert reply.body.count(b"<TR>") == 2
    assert b'<INFO name="QUERY_STATUS" value="OVERFLOW"/>' in reply.body
    reply = request(base + "/table?RESPONSEFORMAT=csv")
    assert reply.headers["content-type"].startswith("text/csv;header=present")
    assert reply.body.decode().splitlines() == ["n,s", "0,row 0", "1,row 1", "2,row 2"]
    reply = request(base + "/table?MAXREC=x")
    assert reply.status == 400
    assert reply.headers["content-type"] == votable.MEDIA_TYPE
    assert b'value="ERROR">UsageFault: MAXREC must be' in reply.body


def test_text_formats_get_text_errors():
    response = dali.error_response("UsageFault: no", fmt=dali.response_format("csv"))
    assert response.media_type == "text/plain"
    assert response.body == b"UsageFault: no\n"
