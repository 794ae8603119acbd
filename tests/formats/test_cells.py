"""Cell texts a batch at a time (``RowFormat``): the same texts as the value-by-value
definition (``value_text``) for every datatype and every awkward value a driver may return,
whichever fast or slow path each column of a batch takes."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spherex_archive.formats import cells
from spherex_archive.formats.cells import RowFormat, value_text
from spherex_archive.model.schema import Column

COLUMNS = (
    Column("b", "boolean", "a boolean"),
    Column("h", "short", "a short"),
    Column("i", "int", "an int"),
    Column("l", "long", "a long"),
    Column("f", "float", "a float"),
    Column("d", "double", "a double"),
    Column("s", "char", "text"),
    Column("u", "unicodeChar", "unicode text", arraysize="*"),
    Column("t", "char", "a timestamp", xtype="timestamp"),
    Column("iv", "double", "an interval", arraysize="2", xtype="interval"),
    Column("va", "long", "a variable array", arraysize="*"),
)

INTEGERS = st.integers(-(2**63) + 1, 2**63 - 1)
REALS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(st.characters(codec=None, blacklist_categories=()), max_size=12)
VALUES = {
    "b": st.one_of(st.booleans(), st.sampled_from([0, 1, np.bool_(True), np.bool_(False)])),
    "h": st.one_of(st.integers(-32767, 32767), st.just(True), st.just(np.int16(-5)), st.just(3.0)),
    "i": st.one_of(st.integers(-(2**31) + 1, 2**31 - 1), st.just(np.int32(7))),
    "l": st.one_of(INTEGERS, st.just(Decimal(12)), st.just(np.int64(-9))),
    "f": st.one_of(REALS, st.just(np.float32(0.25)), st.integers(-100, 100)),
    "d": st.one_of(REALS, st.just(Decimal("1.5")), st.just(np.float64(1e300)), st.just(True)),
    "s": st.one_of(TEXT, st.integers(), st.just(Decimal("2.50"))),
    "u": TEXT,
    "t": st.one_of(
        st.sampled_from(["2025-12-31 01:02:03", "2025-01-02T03:04:05"]),
        st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1)),
        st.dates(),
    ),
    "iv": st.tuples(REALS, REALS),
    "va": st.lists(INTEGERS, max_size=3),
}


@st.composite
def batches(draw, columns=COLUMNS):
    """Rows where each column is NULL, uniform or mixed (so every column takes the fast path
    in some batches and the value-by-value path in others)."""
    size = draw(st.integers(1, 12))
    kinds = {c.name: draw(st.sampled_from(["null", "one", "mixed"])) for c in columns}
    cells_ = {}
    for c in columns:
        values = st.one_of(st.none(), VALUES[c.name])
        if kinds[c.name] == "null":
            cells_[c.name] = [None] * size
        elif kinds[c.name] == "one":
            cells_[c.name] = [draw(VALUES[c.name])] * size
        else:
            cells_[c.name] = draw(st.lists(values, min_size=size, max_size=size))
    return [tuple(cells_[c.name][i] for c in columns) for i in range(size)]


def same(column: Column, text: str, reference: str) -> bool:
    """Float cells may differ in spelling (orjson's ``1.5e-7``, repr's ``1.5e-07``), never in
    value; every other cell is the same text."""
    if column.datatype in cells.FLOAT_TYPES and not cells.is_array(column) and reference:
        return text == reference or float(text) == float(reference)
    return text == reference


@settings(max_examples=300, deadline=None)
@given(batches())
def test_rows_are_the_value_by_value_texts(batch):
    texts = list(RowFormat(COLUMNS).rows(batch))
    assert len(texts) == len(batch)
    for row, values in zip(texts, batch, strict=True):
        for column, text, value in zip(COLUMNS, row, values, strict=True):
            assert same(column, text, value_text(column, value)), (column.name, value, text)


@settings(max_examples=100, deadline=None)
@given(batches())
def test_text_joins_the_rows_and_escapes_text_columns_only(batch):
    def escape(text: str) -> str:
        return "<" + text + ">"

    plain = list(RowFormat(COLUMNS).rows(batch))
    joined = RowFormat(COLUMNS, join=("[", "|", "]\n"), escape=escape).text(batch)
    text = [c.datatype in cells.TEXT_TYPES for c in COLUMNS]
    escaped = [[escape(t) if e else t for e, t in zip(text, row, strict=True)] for row in plain]
    assert joined == "".join("[" + "|".join(row) + "]\n" for row in escaped)


def test_booleans_and_literals():
    columns = (Column("b", "boolean", "flag"),)
    batch = [(True,), (None,), (0,), (np.bool_(True),)]
    rows = list(RowFormat(columns, true="true", false="false").rows(batch))
    assert rows == [("true",), ("",), ("false",), ("true",)]


def test_numbers_orjson_cannot_spell_go_value_by_value():
    columns = (Column("d", "double", "x"), Column("l", "long", "n"))
    batch = [(math.nan, 2**64), (math.inf, None), (-math.inf, 5), (None, 6.0)]
    assert list(RowFormat(columns).rows(batch)) == [
        ("NaN", str(2**64)),
        ("+Inf", ""),
        ("-Inf", "5"),
        ("", "6"),
    ]


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="not an integer"):
        list(RowFormat((Column("i", "int", "n"),)).rows([(1,), (1.5,)]))
    with pytest.raises(ValueError, match="not an integer"):
        list(RowFormat((Column("i", "int", "n"),)).rows([(math.nan,)]))
    with pytest.raises(TypeError, match="bytes"):
        list(RowFormat((Column("s", "char", "s"),)).rows([("a",), (b"\x00",)]))


def test_rows_of_the_wrong_width_are_refused():
    columns = (Column("a", "int", "n"), Column("b", "int", "n"))
    with pytest.raises(ValueError):
        RowFormat(columns).columns([(1, 2, 3)])
    with pytest.raises(ValueError):
        RowFormat(columns).columns([(1, 2), (3,)])
    with pytest.raises(ValueError, match="at least one column"):
        RowFormat(())
