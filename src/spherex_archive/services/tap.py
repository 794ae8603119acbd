"""TAP queries (TAP 1.1 §2-3, ivoa-services §4): LANG, QUERY, UPLOAD and MAXREC checked and
run through the query engine, for the sync endpoint and for async jobs alike.

Uploads (TAP §2.7.6) are VOTables, inline (``name,param:part``, the part of the same multipart
request, or a file the job kept) or by URL (``name,http(s)://...``). They live only for the
query: the translator turns them into a VALUES list bound as parameters, so a reader never
writes to the database. A size limit in bytes and in rows applies.
"""

from __future__ import annotations

import io
import logging
import re
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from astropy.io.votable import parse as parse_votable

from spherex_archive.adql.translate import UploadTable
from spherex_archive.model.schema import VOTABLE_TYPES, Column
from spherex_archive.services.query import QueryAnswer, QueryEngine
from spherex_archive.services.shapes import ValueProblem

log = logging.getLogger("spherex_archive.tap")

LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")
"""Every LANG accepted; the versions behave alike (taplint LVER)."""

UPLOAD_CELLS = 30_000
"""Most cells (rows x columns) of all uploads of one query: each is a bound parameter, and
SQLite takes at most 32 766 in one statement."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*$")


class TapUsageError(ValueProblem):
    """A request the service refuses before running anything (a UsageFault)."""


@dataclass(frozen=True)
class Limits:
    upload_bytes: int
    upload_rows: int


def check_language(lang: str | None) -> None:
    if lang is None or not lang.strip():
        raise TapUsageError("LANG is missing: give LANG=ADQL")
    if lang.strip().upper() not in LANGUAGES:
        raise TapUsageError(f"unknown query language {lang!r}: this service takes ADQL (2.0, 2.1)")


def upload_pairs(values: list[str]) -> list[tuple[str, str]]:
    """``UPLOAD`` values as (table name, URI); one value may hold several pairs joined by
    ``;`` (TAP 1.0 style, what pyvo sends)."""
    pairs = []
    for value in values:
        for item in value.split(";"):
            if not item.strip():
                continue
            name, sep, uri = item.partition(",")
            name, uri = name.strip(), uri.strip()
            if not sep or not uri:
                raise TapUsageError(f"UPLOAD {item!r}: write table_name,URI")
            if not _NAME.match(name):
                raise TapUsageError(f"UPLOAD: {name!r} is not a table name (letters, digits, _)")
            if name.lower() in (n.lower() for n, _ in pairs):
                raise TapUsageError(f"UPLOAD: the table {name} is uploaded twice")
            pairs.append((name, uri))
    return pairs


def fetch(uri: str, inline: Callable[[str], bytes | None], limit: int) -> bytes:
    """The bytes behind an upload URI: ``param:x`` from the request, or an http(s) URL."""
    if uri.startswith("param:"):
        data = inline(uri.removeprefix("param:"))
        if data is None:
            raise TapUsageError(f"UPLOAD {uri}: the request has no part named {uri[6:]!r}")
    elif uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri, timeout=30) as reply:
                data = reply.read(limit + 1)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise TapUsageError(f"UPLOAD {uri}: cannot read it ({error})") from None
    else:
        raise TapUsageError(f"UPLOAD {uri}: give param:NAME or an http(s) URL")
    if len(data) > limit:
        raise TapUsageError(f"UPLOAD {uri}: larger than this service's limit of {limit:,} bytes")
    return data


_DATATYPES = {"unsignedByte": "short", "bit": "boolean"}


def _upload_column(field) -> Column:
    datatype = _DATATYPES.get(field.datatype, field.datatype)
    if datatype not in VOTABLE_TYPES:
        raise TapUsageError(f"UPLOAD: column {field.name} has type {field.datatype}, not taken")
    arraysize = field.arraysize if datatype in ("char", "unicodeChar") else None
    if field.arraysize and datatype not in ("char", "unicodeChar"):
        raise TapUsageError(f"UPLOAD: column {field.name} is an array, not taken")
    xtype = field.xtype
    if xtype in ("adql:TIMESTAMP", "timestamp"):
        xtype = "timestamp"
    elif xtype not in (None, "adql:REGION"):
        xtype = None
    return Column(
        field.name,
        datatype,
        field.description or "",
        unit=str(field.unit) if field.unit is not None else None,
        ucd=field.ucd,
        arraysize="*" if arraysize else None,
        xtype=xtype,
    )


def _cell(value, column: Column):
    if value is np.ma.masked or value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if column.datatype in ("char", "unicodeChar"):
        text = str(value)
        if column.is_timestamp:
            text = text.rstrip("Z").replace(" ", "T")
        return text or (None if column.is_timestamp else text)
    return value


def read_upload(name: str, data: bytes) -> UploadTable:
    """The first table of a VOTable document (TABLEDATA, BINARY, BINARY2 or FITS)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse_votable(io.BytesIO(data), verify="ignore").get_first_table()
    except Exception as error:
        raise TapUsageError(f"UPLOAD {name}: not a readable VOTable ({error})") from None
    columns = [_upload_column(f) for f in table.fields]
    data_array = table.array
    rows = [tuple(_cell(data_array[c.name][i], c) for c in columns) for i in range(len(data_array))]
    return UploadTable(name, columns, rows)


def load_uploads(
    values: list[str], inline: Callable[[str], bytes | None], limits: Limits
) -> dict[str, UploadTable]:
    """Every uploaded table of a request, by name, within the limits."""
    tables: dict[str, UploadTable] = {}
    cells = rows = 0
    for name, uri in upload_pairs(values):
        table = read_upload(name, fetch(uri, inline, limits.upload_bytes))
        rows += len(table.rows)
        cells += len(table.rows) * len(table.columns)
        if rows > limits.upload_rows or cells > UPLOAD_CELLS:
            raise TapUsageError(
                f"UPLOAD: the tables hold {rows:,} rows ({cells:,} values); this service takes "
                f"at most {limits.upload_rows:,} rows and {UPLOAD_CELLS:,} values per query"
            )
        tables[name] = table
    return tables


def run_query(
    engine: QueryEngine,
    lang: str | None,
    query: str | None,
    upload_values: list[str],
    maxrec: int,
    inline: Callable[[str], bytes | None],
    limits: Limits,
) -> QueryAnswer:
    """Check and run a TAP request (its LANG, QUERY and UPLOAD values) with ``maxrec`` rows
    at most."""
    check_language(lang)
    if query is None or not query.strip():
        raise TapUsageError("QUERY is missing: give the ADQL query")
    uploads = load_uploads(upload_values, inline, limits)
    return engine.run(query, maxrec=maxrec, uploads=uploads)


def logged(answer: QueryAnswer, owner: str, query: str, on_done: Callable[[int, float], None]):
    """The answer's rows, counted: when they are all read, one log line (who, rows, ms, the
    ADQL) and ``on_done(rows, seconds)`` for the metrics."""
    started = time.perf_counter()
    source = answer.rows

    def rows() -> Iterator[tuple]:
        count = 0
        for row in source:
            count += 1
            yield row
        seconds = time.perf_counter() - started
        log.info(
            "TAP %s rows=%d ms=%.1f query=%s", owner, count, seconds * 1000, " ".join(query.split())
        )
        on_done(count, seconds)

    answer.rows = rows()
    return answer
