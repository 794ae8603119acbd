"""The streaming VOTable writer, checked against astropy.io.votable (the reference reader) and
STILTS votlint (the IVOA validators' checker): values round-trip for every datatype, NULLs,
unicode, markup and huge cells, in TABLEDATA and BINARY2; documents follow DALI."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from astropy.io.votable import parse
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spherex_archive.formats import cells, votable
from spherex_archive.formats.votable import Param, error_document, write_votable
from spherex_archive.model import tables
from spherex_archive.model.schema import Column
from tests.validators import STILTS, votlint

NS = {"v": votable.NAMESPACE}
SERIALIZATIONS = ["TABLEDATA", "BINARY2"]

COLUMNS = (
    Column("b", "boolean", "a boolean"),
    Column("h", "short", "a short", unit="s"),
    Column("i", "int", "an int", ucd="meta.number"),
    Column("l", "long", "a long", ucd="meta.id", nullable=False),
    Column("f", "float", "a float", unit="deg"),
    Column("d", "double", "a double", unit="m", ucd="em.wl"),
    Column("s", "char", "a string", utype="obscore:DataID.Collection"),
    Column("u", "unicodeChar", "unicode text", arraysize="*"),
    Column("t", "char", "a timestamp", xtype="timestamp", ucd="time.release"),
    Column("r", "char", "a region", xtype="adql:REGION", ucd="pos.outline;obs.field"),
    Column("iv", "double", "an interval", arraysize="2", xtype="interval", unit="m"),
    Column("va", "long", "a variable array", arraysize="*"),
)

UTC = dt.UTC
# fmt: off
ROWS = [
    (True, 1, 2, 3, 1.5, 2.5e-7, "spherex_qr2", "plain", "2025-12-31 01:02:03",
     "POLYGON ICRS 10 10 10.2 10 10.2 10.2", (1e-6, 2e-6), [1, 2, 3]),
    (None, None, None, 0, None, None, None, None, None, None, None, None),
    (False, -32767, -2147483647, -(2**63) + 1, math.nan, math.inf, "", "", "2025-01-02T03:04:05",
     "", (0.5, 0.5), []),
    (1, 32767, 2147483647, 2**63 - 1, math.inf, -math.inf, "a & <b> ]]> 'q' \"qq\"",
     "é ü ß 日本 😀 Ω", dt.datetime(2025, 3, 4, 5, 6, 7), "CIRCLE ICRS 1 2 3",
     (-1.0, 1.0), [2**62]),
    (0, 0, 0, 1, -0.0, 5e-324, "tab\tnew\nline", "ÆØÅ", dt.datetime(2025, 3, 4, 5, 6, 7, 250000),
     "POINT ICRS 0 0", (1.0, 2.0), [-1]),
    (np.bool_(True), np.int16(5), np.int32(6), np.int64(7), np.float32(0.25), np.float64(1e300),
     "x", "y", dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "BOX ICRS 1 2 3 4", np.array([1.0, 2.0]), np.array([4, 5])),
    (True, 3.0, 4, 5, 1, 7, 42, "", dt.date(2024, 2, 29), "x", (1, 2), [1.0]),
]
# fmt: on


def expected(column: Column, value, serialization: str):
    """What a reader should get back for ``value`` (None for NULL)."""
    if value is None:
        return None
    if column.datatype == "boolean":
        return bool(value)
    if column.datatype in ("short", "int", "long") and column.arraysize is None:
        return int(value)
    if column.datatype in ("float", "double") and column.arraysize is None:
        return None if math.isnan(float(value)) else float(value)
    if column.arraysize not in (None, "*") or column.datatype not in ("char", "unicodeChar"):
        return [float(v) if column.datatype == "double" else int(v) for v in value]
    if column.is_timestamp:
        if isinstance(value, dt.datetime):
            if value.tzinfo:
                value = value.astimezone(UTC).replace(tzinfo=None)
            text = value.strftime("%Y-%m-%dT%H:%M:%S")
            return text + (f".{value.microsecond // 1000:03d}" if value.microsecond else "")
        if isinstance(value, dt.date):
            return value.isoformat()
        return value.replace(" ", "T")
    text = str(value)
    # astropy strips blanks around TABLEDATA cells; BINARY2 keeps every byte.
    return text.strip() if serialization == "TABLEDATA" else text


def read(data: bytes):
    """The first table of a document, parsed by astropy with warnings as failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document = parse(io.BytesIO(data), verify="exception")
    return document, document.get_first_table()


def cell(table, name: str, index: int):
    """A cell as a plain Python value, None when astropy masks it."""
    value = table.array[name][index]
    mask = table.array.mask[name][index]
    if np.ma.is_masked(value) or (np.ndim(mask) == 0 and mask):
        return None
    if isinstance(value, np.ndarray | np.ma.MaskedArray):
        return np.asarray(value).tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def document(rows, serialization="TABLEDATA", columns=COLUMNS, **options) -> bytes:
    return b"".join(write_votable(columns, iter(rows), serialization=serialization, **options))


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_values_round_trip_through_astropy(serialization):
    _, table = read(document(ROWS, serialization))
    assert [f.name for f in table.fields] == [c.name for c in COLUMNS]
    assert len(table.array) == len(ROWS)
    for i, row in enumerate(ROWS):
        for column, value in zip(COLUMNS, row, strict=True):
            want = expected(column, value, serialization)
            got = cell(table, column.name, i)
            if column.datatype in ("char", "unicodeChar"):
                # "" and NULL are one empty TD; in BINARY2 the null bit tells them apart, but
                # astropy does not mask strings (STIL does, and reads "" as NULL as well).
                got, want = got or None, want or None
            if column.arraysize == "*" and column.datatype == "long":
                got, want = got or None, want or None  # NULL and [] likewise
            if column.datatype == "float" and want is not None:
                assert got == pytest.approx(want, rel=1e-7), (column.name, i)
            else:
                assert got == want, (column.name, i, value)


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_field_metadata_comes_from_the_columns(serialization):
    _, table = read(document(ROWS[:1], serialization))
    for field, column in zip(table.fields, COLUMNS, strict=True):
        assert field.datatype == column.datatype
        assert (field.arraysize or None) == column.arraysize
        assert field.ucd == column.ucd
        assert field.utype == column.utype
        assert field.xtype == column.xtype
        assert field.description == column.description
        assert (str(field.unit) if field.unit else None) == column.unit
    # Nullable integers declare a null value; the non-nullable one does not.
    assert table.get_field_by_id("i").values.null == -(2**31)
    assert table.get_field_by_id("l").values.null is None


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_empty_table_keeps_its_metadata(serialization):
    document_, table = read(document([], serialization, overflow=lambda: True))
    assert len(table.array) == 0
    assert [f.name for f in table.fields] == [c.name for c in COLUMNS]
    statuses = [i.value for i in document_.resources[0].infos if i.name == "QUERY_STATUS"]
    assert statuses == ["OK", "OVERFLOW"]


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_huge_cells(serialization):
    ascii_ = "x" * 3_000_000 + "<&>" * 1000
    text = "é" * 1_000_000 + "😀<&>" * 1000
    columns = (Column("s", "char", "big"), Column("u", "unicodeChar", "big", arraysize="*"))
    rows = [(ascii_, text), ("a", "b"), (ascii_[:10], None)]
    _, table = read(document(rows, serialization, columns))
    same = cell(table, "s", 0) == ascii_, cell(table, "u", 0) == text  # no 3 MB diffs
    assert same == (True, True)
    assert cell(table, "s", 2) == ascii_[:10]


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_characters_xml_cannot_carry_are_replaced(serialization):
    nasty = "a\x00b\x01c\x07d\rx\ud800y\ufffe"
    columns = (Column("u", "unicodeChar", "text", arraysize="*"), Column("n", "int", "a number"))
    data = document([(nasty, 1), ("ok", 2)], serialization, columns)
    ET.fromstring(data)  # well-formed
    _, table = read(data)
    if serialization == "TABLEDATA":
        assert cell(table, "u", 0) == "a\ufffdb\ufffdc\ufffdd\rx\ufffdy\ufffd"
    else:  # binary carries every character but the lone surrogate
        assert cell(table, "u", 0) == "a\x00b\x01c\x07d\rx?y\ufffe"
    assert cell(table, "n", 1) == 2


def test_non_ascii_in_char_columns():
    """char is ASCII (VOTable): TABLEDATA still carries other characters (astropy warns W55,
    STIL reads them); BINARY2, one byte per char, writes "?" for them."""
    columns = (Column("s", "char", "text"),)
    rows = [("café 😀",)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = parse(io.BytesIO(document(rows, "TABLEDATA", columns))).get_first_table()
    assert cell(table, "s", 0) == "café 😀"
    _, table = read(document(rows, "BINARY2", columns))
    assert cell(table, "s", 0) == "caf? ?"


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_many_rows_in_several_batches(serialization):
    rows = [(i, float(i) / 3, f"row {i}" if i % 7 else None) for i in range(20_000)]
    columns = (Column("i", "long", "n"), Column("x", "double", "x"), Column("s", "char", "s"))
    _, table = read(document(rows, serialization, columns))
    assert table.array["i"].tolist() == list(range(20_000))
    assert np.allclose(table.array["x"], np.arange(20_000) / 3)
    assert cell(table, "s", 7) in (None, "")
    assert cell(table, "s", 19_998) == "row 19998"


def test_rows_are_consumed_as_the_document_is_read():
    consumed = itertools.count()

    def rows():
        for i in range(10**9):
            next(consumed)
            yield (i, "some text for the row")

    columns = (Column("i", "long", "n"), Column("s", "char", "s"))
    stream = write_votable(columns, rows())
    pieces = list(itertools.islice(stream, 5))
    assert all(len(p) < 4 * 1024 * 1024 for p in pieces)
    assert next(consumed) < 200_000


def test_document_structure_follows_dali():
    data = document(
        ROWS[:2],
        infos={"QUERY": "SELECT * FROM x WHERE a < 1 & b", "standardID": "ivo://x"},
        params=[Param(Column("CALIB", "int", "level"), 2)],
        overflow=lambda: True,
    )
    root = ET.fromstring(data)
    assert root.tag == f"{{{votable.NAMESPACE}}}VOTABLE"
    assert root.get("version") == "1.4"
    (resource,) = root.findall("v:RESOURCE", NS)
    assert resource.get("type") == "results"
    children = [c.tag.split("}")[1] for c in resource]
    assert children == ["INFO", "INFO", "INFO", "PARAM", "TABLE", "INFO"]
    infos = resource.findall("v:INFO", NS)
    assert (infos[0].get("name"), infos[0].get("value")) == ("QUERY_STATUS", "OK")
    assert infos[1].get("value") == "SELECT * FROM x WHERE a < 1 & b"
    assert (infos[-1].get("name"), infos[-1].get("value")) == ("QUERY_STATUS", "OVERFLOW")
    assert resource.find("v:PARAM", NS).get("value") == "2"


def test_no_overflow_marker_unless_cut():
    for overflow in (None, lambda: False):
        root = ET.fromstring(document(ROWS[:1], overflow=overflow))
        statuses = [i.get("value") for i in root.iter(f"{{{votable.NAMESPACE}}}INFO")]
        assert statuses == ["OK"]


def test_overflow_is_asked_after_the_rows():
    seen = []

    def rows():
        yield (1, "a")
        seen.append("rows done")

    def overflow():
        seen.append("overflow asked")
        return True

    columns = (Column("i", "long", "n"), Column("s", "char", "s"))
    b"".join(write_votable(columns, rows(), overflow=overflow))
    assert seen == ["rows done", "overflow asked"]


def test_error_document():
    data = error_document("UsageFault: POS <bad> & worse")
    root = ET.fromstring(data)
    (resource,) = root.findall("v:RESOURCE", NS)
    assert resource.get("type") == "results"
    assert resource.find("v:TABLE", NS) is None
    (info,) = resource.findall("v:INFO", NS)
    assert (info.get("name"), info.get("value")) == ("QUERY_STATUS", "ERROR")
    assert info.text == "UsageFault: POS <bad> & worse"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = parse(io.BytesIO(data), verify="exception")
    assert parsed.resources[0].infos[0].content == "UsageFault: POS <bad> & worse"


def test_bytes_are_refused():
    """Hidden columns hold bytes (footprints); a caller passing one gets an error, not a repr."""
    for serialization in SERIALIZATIONS:
        with pytest.raises(TypeError, match="bytes"):
            document([(b"\x00\x01",)], serialization, (Column("s", "char", "s"),))


def test_values_that_do_not_fit_are_errors():
    with pytest.raises(ValueError, match="column h"):
        document([(70000,)], "BINARY2", (Column("h", "short", "s"),))
    with pytest.raises(ValueError, match="not an integer"):
        document([(1.5,)], "TABLEDATA", (Column("i", "int", "s"),))


def test_bad_arguments_fail_at_the_call():
    with pytest.raises(ValueError, match="serialization"):
        write_votable(COLUMNS, [], serialization="FITS")
    with pytest.raises(ValueError, match="column"):
        write_votable((), [])


def test_serialization_is_case_insensitive():
    assert b"<BINARY2>" in document(ROWS[:1], "binary2")


def xml_allowed(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry replaced by U+FFFD."""
    return "".join(
        ch
        if ch in "\t\n\r" or "\x20" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd" or ch > "\uffff"
        else "\ufffd"
        for ch in text
    )


AWKWARD = st.text(st.sampled_from("ab é😀<>&]]\r\t\n\x00\x1f\ufffe\ud800"), max_size=6)
TABLE = (
    Column("s", "char", "text"),
    Column("u", "unicodeChar", "text", arraysize="*"),
    Column("d", "double", "x"),
    Column("n", "long", "n"),
    Column("iv", "double", "interval", arraysize="2", xtype="interval"),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["plain", "POLYGON ICRS 1 2 3 4 5 6"]), AWKWARD),
            st.one_of(st.none(), AWKWARD),
            st.one_of(st.none(), st.floats()),
            st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1)),
            st.one_of(st.none(), st.tuples(st.floats(), st.floats())),
        ),
        min_size=1,
        max_size=60,
    )
)
@example([("a\rb", "ok", 1.0, 1, None)] * 3)
@example([("a\x00b", "ok", 1.0, 1, None)] * 3)
@example([("a\ufffeb", "ok", 1.0, 1, None)] * 3)
@example([("a\ud800b", "ok", 1.0, 1, None)] * 3)
@example([("a]]>b", "ok", 1.0, 1, None)] * 3)
@example([("a&b", "ok", 1.0, 1, None)] * 3)
@example([("plain", "ok", 0.5, 2, (1.0, 2.0))] * 16 + [("a<b", "é", None, None, None)] * 4)
def test_tabledata_cells_are_the_value_texts(rows):
    """Batches that need escaping and batches that do not (several per document): every cell
    reads back as its text, with only what XML cannot carry replaced."""
    root = ET.fromstring(document(rows, "TABLEDATA", TABLE))
    trs = root.findall(".//v:TR", NS)
    assert len(trs) == len(rows)
    for tr, row in zip(trs, rows, strict=True):
        tds = [td.text or "" for td in tr.findall("v:TD", NS)]
        for column, text, value in zip(TABLE, tds, row, strict=True):
            expected = xml_allowed(cells.value_text(column, value))
            if column.datatype == "double" and column.arraysize is None and value is not None:
                assert text == expected or float(text) == float(expected)
            else:
                assert text == expected, (column.name, value)


def test_fields_follow_the_columns_metadata_not_just_their_names():
    """FIELDs and row writers are made once per column list: a list that differs in anything
    (here a description and a datatype) gets its own."""
    first = document([(1,)], columns=(Column("a", "int", "first"),))
    second = document([(1.5,)], columns=(Column("a", "double", "second"),))
    assert b"first" in first and b'datatype="int"' in first
    assert b"second" in second and b'datatype="double"' in second
    assert b"<TD>1.5</TD>" in second


# --------------------------------------------------------------------------------------------
# votlint: what the IVOA validators (taplint, datalinklint) run on every document


def sample(column: Column, index: int):
    """A plausible value of a model column (NULL every third row where allowed)."""
    if index % 3 == 2 and column.nullable:
        return None
    if column.is_timestamp:
        return "2025-06-01 12:00:00"
    if column.is_region:
        return "POLYGON ICRS 10 10 10.2 10 10.2 10.2"
    return {
        "boolean": index % 2 == 0,
        "short": index,
        "int": index * 1000,
        "long": index * 10**12,
        "float": 0.5 * index,
        "double": 1.25e-6 * (index + 1),
        "char": f"{column.name} {index} <&>",
        "unicodeChar": f"{column.name} é {index}",
    }[column.datatype]


@pytest.mark.slow
@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_votlint_finds_nothing_in_any_public_table(serialization, tmp_path):
    """Every table of the model, with values and NULLs: no error and no warning (units and
    UCDs included: the model's metadata is what clients will see)."""
    for table in tables.PUBLIC_TABLES:
        rows = [tuple(sample(c, i) for c in table.columns) for i in range(6)]
        data = document(rows, serialization, table.columns, overflow=lambda: True)
        assert votlint(data, tmp_path) == [], table.qualified


@pytest.mark.slow
@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_votlint_finds_nothing_in_edge_cases(serialization, tmp_path):
    rows = [r for r in ROWS if not isinstance(r[10], tuple) or not any(map(math.isnan, r[10]))]
    data = document(
        rows,
        serialization,
        infos={"QUERY": "SELECT 1"},
        params=[
            Param(Column("CALIB", "int", "level"), None),
            Param(
                Column("BAND", "double", "band", arraysize="2", xtype="interval", unit="m"),
                (1e-6, 2e-6),
            ),
        ],
    )
    assert votlint(data, tmp_path) == []
    assert votlint(document([], serialization), tmp_path) == []


@pytest.mark.slow
@pytest.mark.skipif(STILTS is None, reason="stilts is not installed")
def test_votlint_finds_nothing_in_an_error_document(tmp_path):
    assert votlint(error_document("FatalFault: the catalogue is unreachable"), tmp_path) == []
