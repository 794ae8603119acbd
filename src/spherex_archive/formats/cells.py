"""Cell values as text, the same way in every output format.

Writers compile one Python function per table from the columns' metadata (``RowFormat``):
each cell becomes an inline expression specialised for its column's datatype, so the common
types (``str``, ``int``, ``None``) cost a type test and a format, with no function call per
cell; floating-point columns are formatted a batch at a time (``real_texts``). Everything else
a database driver may return (``datetime``, ``Decimal``, numpy scalars, booleans stored as
integers, arrays) goes through the helpers below.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from itertools import islice, repeat
from operator import itemgetter
from typing import Any

import orjson

from spherex_archive.model.schema import Column

CHUNK_BYTES = 256 * 1024
"""Target size of the pieces writers yield: large enough that per-piece costs (a generator
step, an ASGI message) vanish, small enough to stream."""
MAX_BATCH = 8192
FIRST_BATCH = 16
"""Rows formatted in a writer's first batch; later batches are sized from the bytes per row
seen, so tables of huge cells stay within a few CHUNK_BYTES of memory."""

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
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        return f"{text}.{value.microsecond // 1000:03d}" if value.microsecond else text
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
# Floating-point columns, a batch at a time

_JSON_NUMBERS = b"0123456789+-.e,[]nul"
"""What orjson's output of a list of floats and None may hold (``null`` for None, NaN, inf)."""


def real_texts(values: list[Any]) -> list[str]:
    """The texts of a column of floating-point values ("" for NULL).

    ``repr(float)`` costs about a microsecond here, and a result has many float columns; orjson
    writes the same shortest round-trip forms (``0.1``, ``1e-7``) about fifteen times faster
    for a whole list. What it cannot write exactly (numpy or Decimal values, booleans: anything
    but digits and ``null`` in its output) goes value by value; its ``null`` (None, NaN, inf)
    is resolved value by value too.
    """
    try:
        data = orjson.dumps(values)
    except TypeError:
        data = None
    if data is not None and not data.translate(None, _JSON_NUMBERS):
        texts = data[1:-1].decode().split(",")
        if "null" in texts:
            for i, text in enumerate(texts):
                if text == "null":
                    value = values[i]
                    texts[i] = "" if value is None else real_text(value)
        return texts
    return ["" if v is None else real_text(v) for v in values]


# --------------------------------------------------------------------------------------------
# Compiled rows

HELPERS: dict[str, Any] = {
    "_timestamp": timestamp_text,
    "_text": text_value,
    "_integer": integer_value,
    "_array": array_text,
}


def text_expression(
    column: Column, var: str, index: int, *, true: str, false: str, escape: bool = False
) -> str:
    """Python expression giving the non-null value named ``var`` of a column that is not a
    floating-point scalar, in a form that ``format()`` turns into its text: a ``str``, or an
    ``int`` whose ``str`` is right. With ``escape``, text goes through ``_esc`` of the
    generated code's globals."""
    if column.datatype in TEXT_TYPES:
        if column.is_timestamp:
            text = f"({var}.replace(' ', 'T', 1) if {var}.__class__ is str else _timestamp({var}))"
        else:
            text = f"({var} if {var}.__class__ is str else _text({var}))"
        return f"_esc{text}" if escape else text
    if is_array(column):
        return f"_array({var}, _element{index})"
    if column.datatype == "boolean":
        return f"({true!r} if {var} else {false!r})"
    return f"({var} if {var}.__class__ is int else _integer({var}))"


def compile_function(name: str, source: str, namespace: dict[str, Any]) -> Callable:
    """Compile generated source (one ``def name``) with ``namespace`` as its globals."""
    scope = dict(namespace)
    exec(compile(source, f"<{name}>", "exec"), scope)
    return scope[name]


@lru_cache(maxsize=256)
def _compiled(
    columns: tuple[Column, ...],
    join: tuple[str, str, str] | None,
    true: str,
    false: str,
    escape: Callable[[str], str] | None,
) -> tuple[list[int], Callable]:
    """The row function of a list of columns, compiled once: compiling costs about a
    millisecond, as much as formatting a few hundred rows of a typical answer."""
    reals = [i for i, c in enumerate(columns) if c.datatype in FLOAT_TYPES and not is_array(c)]
    cells = []
    for i, c in enumerate(columns):
        if i in reals:
            cells.append(f"reals[{reals.index(i)}]")
        else:
            value = text_expression(
                c, f"v{i}", i, true=true, false=false, escape=escape is not None
            )
            cells.append(f"{null_text(c)!r} if v{i} is None else {value}")
    unpack = f"    ({', '.join(f'v{i}' for i in range(len(columns)))},) = row\n"
    if join is None:
        body = f"({', '.join(cells)},)"
    else:
        prefix, separator, suffix = (_f_literal(part) for part in join)
        body = 'f"' + prefix + separator.join("{" + c + "}" for c in cells) + suffix + '"'
    source = "def format_row(row, reals):\n" + unpack + f"    return {body}\n"
    elements = {
        f"_element{i}": scalar_text(c, true=true, false=false)
        for i, c in enumerate(columns)
        if is_array(c)
    }
    return reals, compile_function("format_row", source, {**HELPERS, **elements, "_esc": escape})


class RowFormat:
    """Rows to text, a batch at a time, compiled for one list of columns.

    With ``join=(prefix, separator, suffix)`` each row becomes one string (an f-string per
    row); without, a tuple of texts (for the csv module). NULL is ``null_text``. ``escape``
    applies to text cells only: numbers never need it.
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        join: tuple[str, str, str] | None = None,
        true: str = "T",
        false: str = "F",
        escape: Callable[[str], str] | None = None,
    ) -> None:
        if not columns:
            raise ValueError("a table needs at least one column")
        self.reals, self._row = _compiled(tuple(columns), join, true, false, escape)

    def rows(self, batch: list[tuple]) -> Iterator[Any]:
        """The formatted rows of a batch, in order."""
        if not self.reals:
            return map(self._row, batch, repeat(()))
        columns = [real_texts(list(map(itemgetter(i), batch))) for i in self.reals]
        return map(self._row, batch, zip(*columns, strict=True))


def _f_literal(text: str) -> str:
    """``text`` as the literal part of a double-quoted f-string."""
    literal = repr(text)[1:-1] if "'" not in text else repr(text)[1:-1].replace("\\'", "'")
    return literal.replace('"', '\\"').replace("{", "{{").replace("}", "}}")


def batches(rows: Iterator[tuple], encode: Callable[[list[tuple]], bytes]) -> Iterator[bytes]:
    """``encode`` applied to successive batches of rows, each sized from the previous one's
    bytes per row so that pieces are about CHUNK_BYTES."""
    size = FIRST_BATCH
    while batch := list(islice(rows, size)):
        data = encode(batch)
        if data:
            yield data
        size = max(1, min(MAX_BATCH, CHUNK_BYTES * len(batch) // max(1, len(data))))
