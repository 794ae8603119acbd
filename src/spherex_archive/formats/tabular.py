"""CSV, TSV and HTML tables, streamed like the VOTable writer and with the same cell texts.

Cells are written as DALI literals: numbers as in VOTable (``NaN``, ``+Inf``), booleans
``true``/``false``, timestamps ``YYYY-MM-DDTHH:MM:SS``; NULL is an empty cell. The column
names make the header (DALI: ``text/csv;header=present``).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable, Iterable, Iterator, Sequence

from spherex_archive.formats import cells
from spherex_archive.model.schema import Column

CSV_MEDIA_TYPE = "text/csv;header=present"
TSV_MEDIA_TYPE = "text/tab-separated-values"
HTML_MEDIA_TYPE = "text/html;charset=utf-8"

LITERALS = {"true": "true", "false": "false"}


def write_csv(columns: Sequence[Column], rows: Iterable[tuple]) -> Iterator[bytes]:
    """RFC 4180: a header row, CRLF line ends, and fields quoted (with quotes doubled) when
    they hold a comma, a quote or a line break, as JSON cells such as cloud_access do."""
    formats = cells.RowFormat(columns, **LITERALS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def encode(batch: list[tuple]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(formats.rows(batch))
        return buffer.getvalue().encode()

    writer.writerow([c.name for c in columns])
    head = buffer.getvalue().encode()
    return _stream(head, cells.batches(iter(rows), encode), b"")


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_text(text: str) -> str:
    """A TSV field: tabs and line breaks cannot appear in one (IANA text/tab-separated-values),
    so they and the backslash are written as backslash escapes."""
    return text.translate(_TSV_ESCAPES)


def write_tsv(columns: Sequence[Column], rows: Iterable[tuple]) -> Iterator[bytes]:
    """A header line of names, then one line per row, fields separated by tabs."""
    formats = cells.RowFormat(columns, join=("", "\t", "\n"), escape=tsv_text, **LITERALS)
    head = ("\t".join(tsv_text(c.name) for c in columns) + "\n").encode()
    encode = _joined(formats)
    return _stream(head, cells.batches(iter(rows), encode), b"")


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem}"
    "table{border-collapse:collapse;font-size:.9rem}"
    "th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;"
    "white-space:nowrap;vertical-align:top}"
    "th small{font-weight:normal;color:#666}"
    ".overflow{color:#a00}"
)


def write_html(
    columns: Sequence[Column],
    rows: Iterable[tuple],
    *,
    title: str = "Query result",
    overflow: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """A page with one table: column names (units below, descriptions as tooltips), then rows.
    When ``overflow`` says so once the rows are written, a note says the table was cut."""
    formats = cells.RowFormat(
        columns,
        join=("<tr><td>", "</td><td>", "</td></tr>\n"),
        escape=_html_text,
        **LITERALS,
    )
    heads = []
    for c in columns:
        tip = f' title="{html.escape(c.description)}"' if c.description else ""
        unit = f"<br><small>{html.escape(c.unit)}</small>" if c.unit else ""
        heads.append(f"<th{tip}>{html.escape(c.name)}{unit}</th>")
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<table>\n<thead><tr>{''.join(heads)}</tr></thead>\n<tbody>\n"
    )

    def tail() -> bytes:
        note = ""
        if overflow is not None and overflow():
            note = '<p class="overflow">The row limit cut this table short.</p>\n'
        return f"</tbody>\n</table>\n{note}</body>\n</html>\n".encode()

    body = cells.batches(iter(rows), _joined(formats))
    return _stream(head.encode(), body, tail)


def _html_text(text: str) -> str:
    return html.escape(text, quote=False)


def _joined(formats: cells.RowFormat) -> Callable[[list[tuple]], bytes]:
    return lambda batch: formats.text(batch).encode()


def _stream(
    head: bytes, body: Iterator[bytes], tail: bytes | Callable[[], bytes]
) -> Iterator[bytes]:
    yield head
    yield from body
    end = tail() if callable(tail) else tail
    if end:
        yield end
