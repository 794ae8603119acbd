"""FITS binary tables of query answers (TAP RESPONSEFORMAT=fits), written with astropy.

A FITS table states its row count in the header, so unlike the other writers this one holds
the answer in memory: the service's row limit bounds it. NULLs of integer columns use TNULL
(astropy's masked columns), of floats NaN, of text an empty string.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from spherex_archive.formats import cells
from spherex_archive.model.schema import Column

MEDIA_TYPE = "application/fits"

_NUMPY = {
    "boolean": np.bool_,
    "short": np.int16,
    "int": np.int32,
    "long": np.int64,
    "float": np.float32,
    "double": np.float64,
}


def _column(column: Column, values: list) -> MaskedColumn:
    missing = [v is None for v in values]
    if column.datatype in cells.TEXT_TYPES or cells.is_array(column):
        texts = [
            "" if v is None else (cells.value_text(column, v) if not isinstance(v, str) else v)
            for v in values
        ]
        data = np.array(texts, dtype=str) if texts else np.array([], dtype="U1")
        return MaskedColumn(
            data, name=column.name, unit=column.unit, description=column.description
        )
    kind = _NUMPY[column.datatype]
    if column.datatype in ("float", "double"):
        data = np.array([np.nan if v is None else v for v in values], dtype=kind)
        return MaskedColumn(
            data, name=column.name, unit=column.unit, description=column.description
        )
    data = np.array([0 if v is None else v for v in values], dtype=kind)
    return MaskedColumn(
        data, name=column.name, mask=missing, unit=column.unit, description=column.description
    )


def write_fits(columns: Sequence[Column], rows: Iterable[tuple]) -> Iterator[bytes]:
    """A FITS file: an empty primary HDU and the table (EXTNAME ``RESULTS``)."""
    rows = list(rows)
    table = Table(
        [_column(c, [r[i] for r in rows]) for i, c in enumerate(columns)],
        names=[c.name for c in columns],
    )
    hdu = fits.table_to_hdu(table)
    hdu.name = "RESULTS"
    for i, column in enumerate(columns, start=1):
        if column.ucd:
            hdu.header[f"TUCD{i}"] = column.ucd
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    yield buffer.getvalue()
