"""CSV, TSV and HTML writers: read back with the standard library, values intact."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from html.parser import HTMLParser

from spherex_archive.formats.tabular import write_csv, write_html, write_tsv
from spherex_archive.model.schema import Column

COLUMNS = (
    Column("cloud_access", "char", "JSON", unit=None),
    Column("s_ra", "double", "RA", unit="deg"),
    Column("flag", "boolean", "a flag"),
    Column("released", "char", "when", xtype="timestamp"),
    Column("n", "long", "count"),
)
JSON = '{"aws": {"bucket_name": "nasa-irsa-spherex", "key":"qr2/a, b.fits", "region": "us-east-1"}}'
ROWS = [
    (JSON, 10.5, True, "2025-01-02 03:04:05", 7),
    (None, None, None, None, None),
    ('multi\nline "quoted", text\r\nend', math.nan, False, dt.datetime(2025, 1, 2), -1),
    ("tab\there\\back", -math.inf, 0, None, 2**62),
]


def text(writer, **options) -> str:
    return b"".join(writer(COLUMNS, iter(ROWS), **options)).decode()


def test_csv_is_rfc_4180():
    data = text(write_csv)
    assert data.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(data, newline="")))
    assert rows[0] == [c.name for c in COLUMNS]
    assert rows[1] == [JSON, "10.5", "true", "2025-01-02T03:04:05", "7"]
    assert rows[2] == ["", "", "", "", ""]
    assert rows[3] == [
        'multi\nline "quoted", text\r\nend',
        "NaN",
        "false",
        "2025-01-02T00:00:00",
        "-1",
    ]
    assert rows[4] == ["tab\there\\back", "-Inf", "false", "", str(2**62)]
    # The JSON cell is quoted, its quotes doubled.
    assert '"{""aws"": {""bucket_name""' in data


def test_tsv_has_no_tabs_or_line_breaks_inside_values():
    lines = text(write_tsv).split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == 1 + len(ROWS)
    assert all(line.count("\t") == len(COLUMNS) - 1 for line in lines)
    assert lines[0].split("\t") == [c.name for c in COLUMNS]
    assert lines[3].split("\t")[0] == 'multi\\nline "quoted", text\\r\\nend'
    assert lines[4].split("\t")[0] == "tab\\there\\\\back"


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: str | None = None
        self.text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        self.text += data
        if self.cell is not None:
            self.cell += data


def test_html_table_escapes_and_notes_overflow():
    page = Cells()
    page.feed(text(write_html, title="<result>", overflow=lambda: True))
    assert page.rows[0][1] == "s_radeg"  # name, then its unit
    assert page.rows[1][0] == JSON
    assert page.rows[3][0] == 'multi\nline "quoted", text\r\nend'
    assert "cut this table short" in page.text
    assert "cut this table short" not in text(write_html)
