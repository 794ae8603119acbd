"""Cell values as text, the same way in every output format.

Writers format a batch of rows a column at a time (``RowFormat``): each column becomes its
texts in one call chosen from its datatype (orjson writes whole columns of numbers, ``str``
values are kept as they are), and the rows are put together with ``str.join``, so the common
types (``str``, ``int``, ``float``, ``None``) cost no Python code per cell. Everything else a
database driver may return (``datetime``, ``Decimal``, numpy scalars, booleans stored as
integers, arrays) goes value by value through the helpers below.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from itertools import islice, repeat
from typing import Any

import orjson

from spherex_archive.model.schema import Column

CHUNK_BYTES = 256 * 1024
"""Target size of the pieces writers yield: large enough that per-piece costs (a generator
step, an ASGI message) vanish, small enough to stream."""
MAX_BATCH = 8192
FIRST_BATCH = 256
"""Rows formatted in a writer's first batch; later batches are sized from the bytes per row
seen, so tables of huge cells stay within a few CHUNK_BYTES of memory. A typical answer (a
few hundred ObsCore rows of about a kilobyte) is one batch: each batch costs a call per
column."""

INTEGER_TYPES = {"short": 16, "int": 32, "long": 64}
"""VOTable integer datatypes and their bits."""
FLOAT_TYPES = {"float", "double"}
TEXT_TYPES = {"char", "unicodeChar"}


def is_array(column: Column) -> bool:
    """True for numeric or boolean arrays (``double[2]`` intervals...); a char array is text."""
    return column.datatype not in TEXT_TYPES and column.arraysize not in (None, "1")


def null_value(column: Column) -> int | None:
    """The value declared in ``<VALUES null>`` for a nullable integer column: the type's minimum,
    which no id or count in the archive takes. Readers that ignore BINARY2's null bitmap, and
    converters to formats without one (BINARY, FITS), need it."""
    if column.datatype in INTEGER_TYPES and column.nullable and not is_array(column):
        return -(1 << (INTEGER_TYPES[column.datatype] - 1))
    return None


def timestamp_text(value: Any) -> str:
    """DALI timestamp ``YYYY-MM-DDTHH:MM:SS[.SSS]``, without a zone (times are UTC)."""
    if isinstance(value, str):
        return value.replace(" ", "T", 1)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        # isoformat: C code, a four-digit year always (strftime's %Y drops leading zeros)
        return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return text_value(value)


def text_value(value: Any) -> str:
    """A char cell that is not a ``str``. Bytes are refused: only internal (hidden) columns hold
    them, and writing their repr would publish garbage."""
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("bytes value in a text column (hidden columns must not be written)")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def integer_value(value: Any) -> int:
    """An integer cell that is not an ``int`` (bool, numpy integer, integral float...)."""
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, bytes | bytearray | memoryview | str):
        raise TypeError(f"{value!r} is not an integer")
    return int(value)


def real_text(value: Any) -> str:
    """A floating-point cell that is not a finite float: VOTable spells NaN and infinities
    ``NaN``, ``+Inf`` and ``-Inf`` (not Python's ``nan``/``inf``, which Java readers reject)."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def array_text(value: Any, element: Callable[[Any], str]) -> str:
    """Array cells are blank-separated elements (DALI intervals, points, polygons)."""
    return " ".join(element(v) for v in value)


def scalar_text(column: Column, *, true: str = "T", false: str = "F") -> Callable[[Any], str]:
    """The text of one non-null value of this column (for PARAM values and array elements)."""
    if column.datatype in TEXT_TYPES:
        return timestamp_text if column.is_timestamp else _plain_text
    if column.datatype == "boolean":
        return lambda v: true if v else false
    if column.datatype in INTEGER_TYPES:
        return lambda v: str(integer_value(v))
    return real_text


def _plain_text(value: Any) -> str:
    return value if isinstance(value, str) else text_value(value)


def null_text(column: Column) -> str:
    """The text of NULL: empty, except in fixed-size arrays of floats, which are that many NaNs
    (an empty cell is not a valid double[2])."""
    if column.datatype in FLOAT_TYPES and is_array(column) and "*" not in column.arraysize:
        count = math.prod(int(n) for n in column.arraysize.split("x"))
        return " ".join(["NaN"] * count)
    return ""


def value_text(column: Column, value: Any, *, true: str = "T", false: str = "F") -> str:
    """The text of any value of this column (``null_text`` for NULL)."""
    if value is None:
        return null_text(column)
    element = scalar_text(column, true=true, false=false)
    return array_text(value, element) if is_array(column) else element(value)


# --------------------------------------------------------------------------------------------
# Numeric columns, a batch at a time

_JSON_REALS = b"0123456789+-.e,[]nul"
"""What orjson's output of a list of floats and None may hold (``null`` for None, NaN, inf)."""
_JSON_INTEGERS = b"0123456789-,[]nul"
"""The same for a list of ints and None."""


def _json_texts(
    values: Sequence[Any], allowed: bytes, text: Callable[[Any], str]
) -> list[str] | None:
    """The texts of a column of numbers written by orjson at once ("" for NULL), or None when
    its output holds anything but ``allowed`` (numpy or Decimal values, booleans, floats in an
    integer column...). orjson writes ``null`` for NaN and infinities too: those values go
    through ``text``."""
    try:
        data = orjson.dumps(values)
    except TypeError:  # numpy or Decimal values, ints beyond 64 bits
        return None
    if data.translate(None, allowed):
        return None
    texts = data[1:-1].decode().split(",")
    nulls = texts.count("null")
    if nulls and nulls == values.count(None):  # every null is a NULL
        return [""] * nulls if nulls == len(texts) else ["" if t == "null" else t for t in texts]
    if nulls:
        for i, t in enumerate(texts):
            if t == "null":
                value = values[i]
                texts[i] = "" if value is None else text(value)
    return texts


def real_texts(values: Sequence[Any]) -> list[str]:
    """The texts of a column of floating-point values ("" for NULL).

    ``repr(float)`` costs about a microsecond here, and a result has many float columns; orjson
    writes the same shortest round-trip forms (``0.1``, ``1e-7``) about fifteen times faster
    for a whole list. What it cannot write exactly goes value by value.
    """
    texts = _json_texts(values, _JSON_REALS, real_text)
    if texts is None:
        return ["" if v is None else real_text(v) for v in values]
    return texts


def _integer_text(value: Any) -> str:
    return str(value if value.__class__ is int else integer_value(value))


def integer_texts(values: Sequence[Any]) -> list[str]:
    """The texts of a column of integers ("" for NULL): orjson for a list of ints, value by
    value otherwise (booleans, numpy values; an integral float is written as an int, any other
    float refused)."""
    texts = _json_texts(values, _JSON_INTEGERS, _integer_text)
    if texts is None:
        return ["" if v is None else _integer_text(v) for v in values]
    return texts


# --------------------------------------------------------------------------------------------
# Columns of a batch

_STR = {str}
_NONE = {type(None)}


def plain_texts(values: Sequence[Any]) -> Sequence[str]:
    """The texts of a column of text values ("" for NULL): the values themselves when they are
    all ``str``, as they are from both databases."""
    kinds = set(map(type, values))
    if kinds == _STR:
        return values
    if kinds == _NONE:
        return [""] * len(values)
    return ["" if v is None else _plain_text(v) for v in values]


def timestamp_texts(values: Sequence[Any]) -> Sequence[str]:
    """The DALI timestamps of a column ("" for NULL); ``str`` values are the databases'
    ``YYYY-MM-DD HH:MM:SS``, given their ``T``."""
    kinds = set(map(type, values))
    if kinds == _STR:
        return list(map(str.replace, values, repeat(" "), repeat("T"), repeat(1)))
    if kinds == _NONE:
        return [""] * len(values)
    return ["" if v is None else timestamp_text(v) for v in values]


def column_texts(
    column: Column, *, true: str = "T", false: str = "F"
) -> Callable[[Sequence[Any]], Sequence[str]]:
    """The function turning a batch of this column's values into their texts (NULL:
    ``null_text``)."""
    if column.datatype in TEXT_TYPES:
        return timestamp_texts if column.is_timestamp else plain_texts
    if is_array(column):
        element = scalar_text(column, true=true, false=false)
        null = null_text(column)
        return lambda values: [null if v is None else array_text(v, element) for v in values]
    if column.datatype == "boolean":
        return lambda values: ["" if v is None else (true if v else false) for v in values]
    if column.datatype in INTEGER_TYPES:
        return integer_texts
    return real_texts


HELPERS: dict[str, Any] = {
    "_timestamp": timestamp_text,
    "_text": text_value,
    "_integer": integer_value,
}
"""Helpers of the code that writers compile per column list (BINARY2 rows)."""


def compile_function(name: str, source: str, namespace: dict[str, Any]) -> Callable:
    """Compile generated source (one ``def name``) with ``namespace`` as its globals."""
    scope = dict(namespace)
    exec(compile(source, f"<{name}>", "exec"), scope)
    return scope[name]


class RowFormat:
    """Rows to text, a batch at a time, one column after the other.

    A batch is turned into columns (``zip``), each column into its texts by one call (orjson for
    whole columns of numbers, ``str`` values kept as they are), and the rows are put together
    by ``str.join``: the common types (``str``, ``int``, ``float``, ``None``) cost no Python
    code per cell at all. ``rows`` gives tuples of texts (for the csv module); with
    ``join=(prefix, separator, suffix)``, ``text`` gives the batch as one string. NULL is
    ``null_text``. ``escape`` applies to text columns only: numbers never need it; with
    ``plain``, only to a column whose texts, joined, ``plain`` does not accept (C string
    searches over the column instead of a Python call per cell).
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        join: tuple[str, str, str] | None = None,
        true: str = "T",
        false: str = "F",
        escape: Callable[[str], str] | None = None,
        plain: Callable[[str], bool] | None = None,
    ) -> None:
        if not columns:
            raise ValueError("a table needs at least one column")
        self.width = len(columns)
        self._texts = [column_texts(c, true=true, false=false) for c in columns]
        self._escaped = [i for i, c in enumerate(columns) if escape and c.datatype in TEXT_TYPES]
        self._escape = escape
        self._plain = plain
        self._join = join

    def columns(self, batch: list[tuple]) -> list[Sequence[str]]:
        """The texts of a batch, column by column."""
        values = list(zip(*batch, strict=True))
        if len(values) != self.width:
            raise ValueError(f"rows of {len(values)} values for {self.width} columns")
        texts = [text(v) for text, v in zip(self._texts, values, strict=True)]
        for i in self._escaped:
            if self._plain is None or not self._plain("".join(texts[i])):
                texts[i] = list(map(self._escape, texts[i]))
        return texts

    def rows(self, batch: list[tuple]) -> Iterator[tuple[str, ...]]:
        """The texts of a batch, row by row."""
        return zip(*self.columns(batch), strict=True)

    def text(self, batch: list[tuple]) -> str:
        """The rows of a batch as one string, each ``prefix + cells joined + suffix``."""
        if self._join is None:
            raise ValueError("this RowFormat was made without join")
        prefix, separator, suffix = self._join
        rows = map(separator.join, self.rows(batch))
        return prefix + (suffix + prefix).join(rows) + suffix


def batches(rows: Iterator[tuple], encode: Callable[[list[tuple]], bytes]) -> Iterator[bytes]:
    """``encode`` applied to successive batches of rows, each sized from the previous one's
    bytes per row so that pieces are about CHUNK_BYTES."""
    size = FIRST_BATCH
    while batch := list(islice(rows, size)):
        data = encode(batch)
        if data:
            yield data
        size = max(1, min(MAX_BATCH, CHUNK_BYTES * len(batch) // max(1, len(data))))
