"""VOTable 1.4 documents written as a stream, from the model's column metadata.

Every FIELD comes from a :class:`~spherex_archive.model.schema.Column` (name, datatype,
arraysize, unit, UCD, utype, xtype, description), so a result's metadata is the model's. Rows
are consumed lazily and the document leaves in pieces of about ``cells.CHUNK_BYTES``: an answer of
millions of rows never sits in memory. The document follows DALI 1.1 §4.4 (ivoa-services §2.4):
one ``RESOURCE type="results"``, ``QUERY_STATUS`` ``OK`` before the table, and a second
``QUERY_STATUS`` ``OVERFLOW`` after it when the row limit cut the answer.

Speed: each table gets a row function compiled from its columns (see ``cells``), so a cell costs
a type test and a format; escaping and the check for characters XML cannot carry are done on
whole batches of rows by C string methods, and only a batch that needs it is escaped cell by
cell. astropy.io.votable is the reference the output is tested against.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from spherex_archive.formats import cells
from spherex_archive.model.schema import Column

NAMESPACE = "http://www.ivoa.net/xml/VOTable/v1.3"
"""The namespace of VOTable 1.3 and 1.4 alike."""
VERSION = "1.4"
"""Not 1.5: STILTS 3.4.7's votlint fails schema validation on it (ivoa-services §2.4)."""
MEDIA_TYPE = "application/x-votable+xml"
SERIALIZATIONS = ("TABLEDATA", "BINARY2")


@dataclass(frozen=True)
class Param:
    """A PARAM: a column's metadata with one value (a scalar, a sequence for arrays, or None)."""

    column: Column
    value: Any = None
    options: tuple[str, ...] = ()
    """Allowed values, written as VALUES/OPTION (a service's choices, e.g. its collections)."""
    ref: str | None = None
    """ID of the FIELD the value comes from (a service descriptor's input)."""
    minimum: Any = None
    maximum: Any = None
    """Limits, written as VALUES/MIN and MAX: a scalar, or a sequence for a whole array value
    (a SODA CIRCLE's largest useful circle)."""


@dataclass(frozen=True)
class IdentifiedColumn(Column):
    """A column whose FIELD carries an XML ``ID``: what a service descriptor's ``ref`` names
    (DataLink §4), so a client fills the parameter from this column of each row."""

    xml_id: str = ""


# --------------------------------------------------------------------------------------------
# XML text

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
"""Characters XML 1.0 cannot carry at all, not even as references."""

_PLAIN_ASCII = bytes(b for b in range(128) if (b >= 0x20 and b not in b"<&") or b in b"\t\n")
"""ASCII bytes that element content carries as they are (CR would be read back as LF)."""


def _plain_xml(text: str) -> bool:
    """True when ``text`` is element content as it is: ASCII with no markup or control
    characters (a single ``>`` is allowed, ``]]>`` is not)."""
    return (
        text.isascii()
        and not text.encode().translate(None, _PLAIN_ASCII)
        and ("]" not in text or "]]>" not in text)
    )


def xml_text(text: str) -> str:
    """Element content: markup escaped, CR kept as a reference, impossible characters as U+FFFD."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\r", "&#13;")
    return _INVALID_XML.sub("\ufffd", text)


def xml_attr(text: str) -> str:
    """An attribute value in double quotes; blanks other than spaces kept as references, since
    attribute normalisation would turn them into spaces."""
    text = xml_text(text).replace('"', "&quot;")
    return text.replace("\n", "&#10;").replace("\t", "&#9;")


def _element(tag: str, attributes: Mapping[str, Any], content: str | None = None) -> str:
    attrs = "".join(f' {k}="{xml_attr(str(v))}"' for k, v in attributes.items() if v is not None)
    return f"<{tag}{attrs}/>" if content is None else f"<{tag}{attrs}>{content}</{tag}>"


def _metadata(column: Column) -> dict[str, str | None]:
    return {
        "name": column.name,
        "datatype": column.datatype,
        "arraysize": column.arraysize,
        "unit": column.unit,
        "ucd": column.ucd,
        "utype": column.utype,
        "xtype": column.xtype,
    }


def field_element(column: Column) -> str:
    """The FIELD of a column: attributes, DESCRIPTION, and VALUES null for nullable integers."""
    inner = ""
    if column.description:
        inner += f"<DESCRIPTION>{xml_text(column.description)}</DESCRIPTION>"
    null = cells.null_value(column)
    if null is not None:
        inner += f'<VALUES null="{null}"/>'
    identity = {"ID": column.xml_id} if isinstance(column, IdentifiedColumn) else {}
    return _element("FIELD", {**identity, **_metadata(column)}, inner or None)


def param_element(param: Param) -> str:
    column = param.column
    # An array with no value (a service input the user supplies) is written empty, as DataLink
    # §4 has it: pyvo sends a non-empty array value ("NaN NaN") with every call.
    empty = param.value is None and cells.is_array(column)
    attributes = {
        **_metadata(column),
        "value": "" if empty else cells.value_text(column, param.value),
        "ref": param.ref,
    }
    inner = (
        f"<DESCRIPTION>{xml_text(column.description)}</DESCRIPTION>" if column.description else ""
    )
    limits = "".join(
        _element(tag, {"value": _limit_text(column, value)})
        for tag, value in (("MIN", param.minimum), ("MAX", param.maximum))
        if value is not None
    )
    options = "".join(_element("OPTION", {"value": o}) for o in param.options)
    if limits or options:
        inner += f"<VALUES>{limits}{options}</VALUES>"
    return _element("PARAM", attributes, inner or None)


def _limit_text(column: Column, value: Any) -> str:
    # A scalar limit of an array parameter bounds each element (SODA's BAND MIN and MAX).
    if isinstance(value, (list, tuple)):
        return cells.value_text(column, value)
    return cells.scalar_text(column)(value)


def _head() -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<VOTABLE version="{VERSION}" xmlns="{NAMESPACE}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    )


def _status(value: str, message: str | None = None) -> str:
    content = None if message is None else xml_text(message)
    return _element("INFO", {"name": "QUERY_STATUS", "value": value}, content) + "\n"


# --------------------------------------------------------------------------------------------
# Documents


def write_votable(
    columns: Sequence[Column],
    rows: Iterable[tuple],
    *,
    serialization: str = "TABLEDATA",
    infos: Mapping[str, str] | None = None,
    params: Sequence[Param] = (),
    overflow: Callable[[], bool] | None = None,
    resource_type: str = "results",
    resources: Sequence[str] = (),
) -> Iterator[bytes]:
    """The VOTable of ``rows`` (tuples in the order of ``columns``), in pieces.

    ``infos`` become INFO elements after QUERY_STATUS (``QUERY``, ``standardID``...);
    ``params`` PARAMs of the resource; ``resources`` more RESOURCE elements after it (service
    descriptors, as XML text). ``overflow`` is asked once every row has been written
    (a ``QueryResult`` knows only then) and adds the trailing OVERFLOW status when it says so.
    Columns are checked and the row writer compiled before this returns, so a bad column is an
    error of the call, not of a half-sent stream.
    """
    serialization = serialization.upper()
    if serialization not in SERIALIZATIONS:
        raise ValueError(f"unknown VOTable serialization {serialization!r}")
    fields, body = _table(tuple(columns), serialization)
    head = [_head(), f'<RESOURCE type="{xml_attr(resource_type)}">\n', _status("OK")]
    head.extend(_element("INFO", {"name": k, "value": v}) + "\n" for k, v in (infos or {}).items())
    head.extend(param_element(p) + "\n" for p in params)
    head.append("<TABLE>\n")
    head.append(fields)
    head.append(f"<DATA><{serialization}>\n")
    return _document(
        "".join(head).encode(), serialization, body(iter(rows)), overflow, "".join(resources)
    )


def _document(
    head: bytes,
    serialization: str,
    body: Iterator[bytes],
    overflow: Callable[[], bool] | None,
    resources: str,
) -> Iterator[bytes]:
    yield head
    yield from body
    tail = f"</{serialization}></DATA>\n</TABLE>\n"
    if overflow is not None and overflow():
        tail += _status("OVERFLOW")
    yield (tail + "</RESOURCE>\n" + resources + "</VOTABLE>\n").encode()


def error_document(message: str, status: str = "ERROR") -> bytes:
    """A DALI error document: ``RESOURCE type="results"`` with only the QUERY_STATUS INFO,
    whose text is the message (clients show it; an empty one is replaced, as taplint warns)."""
    return (
        _head()
        + '<RESOURCE type="results">\n'
        + _status(status, message.strip() or "Unknown error")
        + "</RESOURCE>\n</VOTABLE>\n"
    ).encode()


@lru_cache(maxsize=256)
def _table(
    columns: tuple[Column, ...], serialization: str
) -> tuple[str, Callable[[Iterator[tuple]], Iterator[bytes]]]:
    """The FIELD elements and the row writer of a list of columns, made once per list:
    escaping the metadata of a few dozen columns costs as much as writing a few hundred rows,
    and so does compiling a BINARY2 writer."""
    fields = "".join(field_element(c) + "\n" for c in columns)
    return fields, _tabledata(columns) if serialization == "TABLEDATA" else _binary2(columns)


# --------------------------------------------------------------------------------------------
# TABLEDATA


def _tabledata(columns: tuple[Column, ...]) -> Callable[[Iterator[tuple]], Iterator[bytes]]:
    join = ("<TR><TD>", "</TD><TD>", "</TD></TR>\n")
    fmt = cells.RowFormat(columns, join=join, escape=xml_text, plain=_plain_xml)

    def encode(batch: list[tuple]) -> bytes:
        return fmt.text(batch).encode()

    return lambda rows: cells.batches(rows, encode)


# --------------------------------------------------------------------------------------------
# BINARY2


def _count(arraysize: str | None) -> int | None:
    """Elements of a fixed arraysize ("3", "2x3"); None when variable ("*", "8*")."""
    if arraysize is None:
        return 1
    if arraysize.endswith("*"):
        return None
    return math.prod(int(n) for n in arraysize.split("x"))


_CODES = {"short": "h", "int": "i", "long": "q", "float": "f", "double": "d", "boolean": "c"}


def _filler(column: Column) -> Any:
    """What stands in a NULL cell of BINARY2 (its bitmap bit is what says NULL)."""
    if column.datatype in cells.FLOAT_TYPES:
        return math.nan
    if column.datatype == "boolean":
        return b"?"
    return cells.null_value(column) or 0


def _fixed_expression(column: Column, var: str) -> str:
    """A struct-packable expression for a scalar number or boolean (NULL: the filler)."""
    if column.datatype == "boolean":
        return f"(b'?' if {var} is None else (b'T' if {var} else b'F'))"
    if column.datatype in cells.INTEGER_TYPES:
        value = f"({var} if {var}.__class__ is int else _integer({var}))"
    else:
        value = var
    filler = "_nan" if column.datatype in cells.FLOAT_TYPES else repr(_filler(column))
    return f"({filler} if {var} is None else {value})"


def _array_bytes(column: Column) -> Callable[[Any], bytes]:
    """Bytes of a numeric or boolean array cell, with its count first when variable."""
    code = _CODES[column.datatype]
    fixed = _count(column.arraysize)
    element = cells.integer_value if column.datatype in cells.INTEGER_TYPES else (lambda v: v)
    filler = _filler(column)

    def pack(value: Any) -> bytes:
        values = [] if value is None else list(value)
        if column.datatype == "boolean":
            values = [b"?" if v is None else (b"T" if v else b"F") for v in values]
        else:
            values = [filler if v is None else element(v) for v in values]
        if fixed is None:
            return struct.pack(f">i{len(values)}{code}", len(values), *values)
        values = (values + [filler] * fixed)[:fixed]
        return struct.pack(f">{fixed}{code}", *values)

    return pack


def _text_bytes(column: Column, var: str) -> str:
    """Expression for the encoded bytes of a text cell (b'' for NULL)."""
    if column.is_timestamp:
        text = f"({var}.replace(' ', 'T', 1) if {var}.__class__ is str else _timestamp({var}))"
    else:
        text = f"({var} if {var}.__class__ is str else _text({var}))"
    # A char is one byte: astropy refuses anything but ASCII there, so other characters become
    # "?" (TABLEDATA keeps them: readers decode the XML and at most warn). unicodeChar is
    # UTF-16; lone surrogates, which no encoding carries, become "?" in both.
    encoding = "'utf-16-be'" if column.datatype == "unicodeChar" else "'ascii'"
    return f"(b'' if {var} is None else {text}.encode({encoding}, 'replace'))"


def _binary2(columns: tuple[Column, ...]) -> Callable[[Iterator[tuple]], Iterator[bytes]]:
    """The BINARY2 writer of a list of columns."""
    n = len(columns)
    if not n:
        raise ValueError("a table needs at least one column")
    mask_bytes = (n + 7) // 8
    namespace: dict[str, Any] = {**cells.HELPERS, "_nan": math.nan}
    lines = []
    # The null bitmap, first bit = first column, inline: cheaper than any call per row.
    bits = " | ".join(f"((v{i} is None) << {8 * mask_bytes - 1 - i})" for i in range(n))
    pieces = [f"({bits}).to_bytes({mask_bytes}, 'big')"]
    codes: list[str] = []
    values: list[str] = []

    def flush() -> None:
        if codes:
            name = f"_s{len(namespace)}"
            namespace[name] = struct.Struct(">" + "".join(codes))
            pieces.append(f"{name}.pack({', '.join(values)})")
            codes.clear()
            values.clear()

    for i, column in enumerate(columns):
        var = f"v{i}"
        if column.datatype in cells.TEXT_TYPES:
            lines.append(f"    t{i} = {_text_bytes(column, var)}\n")
            size = _count(column.arraysize)
            if size is None:  # the count of characters (UCS-2 units for unicodeChar) first
                codes.append("i")
                unicode = column.datatype == "unicodeChar"
                values.append(f"len(t{i}) >> 1" if unicode else f"len(t{i})")
                flush()
                pieces.append(f"t{i}")
            else:
                flush()
                width = size * (2 if column.datatype == "unicodeChar" else 1)
                pieces.append(f"t{i}[:{width}].ljust({width}, b'\\0')")
        elif cells.is_array(column):
            flush()
            namespace[f"_array{i}"] = _array_bytes(column)
            pieces.append(f"_array{i}({var})")
        else:
            codes.append(_CODES[column.datatype])
            values.append(_fixed_expression(column, var))
    flush()
    source = (
        "def row_bytes(row):\n"
        + f"    ({', '.join(f'v{i}' for i in range(n))},) = row\n"
        + "".join(lines)
        + f"    return b''.join(({', '.join(pieces)},))\n"
    )
    row_bytes = cells.compile_function("row_bytes", source, namespace)

    def encode(batch: list[tuple]) -> bytes:
        try:
            return b"".join(map(row_bytes, batch))
        except struct.error as error:
            raise ValueError(_explain(columns, batch, error)) from None

    def stream(rows: Iterator[tuple]) -> Iterator[bytes]:
        # base64 in pieces: each piece a multiple of 3 bytes, so the pieces concatenate.
        carry = b""
        for raw in cells.batches(rows, encode):
            data = carry + raw
            cut = len(data) - len(data) % 3
            carry = data[cut:]
            if cut:
                yield binascii.b2a_base64(data[:cut])
        if carry:
            yield binascii.b2a_base64(carry)

    return lambda rows: _stream_element(stream(rows))


def _stream_element(body: Iterator[bytes]) -> Iterator[bytes]:
    yield b'<STREAM encoding="base64">\n'
    yield from body
    yield b"</STREAM>\n"


def _explain(columns: tuple[Column, ...], batch: list[tuple], error: struct.error) -> str:
    """Which value did not fit its column (struct only says which format failed)."""
    for row in batch:
        for column, value in zip(columns, row, strict=False):
            code = _CODES.get(column.datatype)
            if value is None or code in (None, "c") or cells.is_array(column):
                continue
            try:
                number = cells.integer_value(value) if code in "hiq" else value
                struct.pack(">" + code, number)
            except (struct.error, TypeError, ValueError):
                return f"column {column.name} ({column.datatype}) cannot hold {value!r}"
    return f"a value does not fit its column: {error}"
