"""TAP_SCHEMA rows derived from the model (TAP 1.1 §4)."""

from __future__ import annotations

from spherex_archive.model.schema import Table
from spherex_archive.model.tables import PUBLIC_TABLES, SCHEMAS


def schema_rows() -> list[tuple]:
    return [(s.name, s.utype, s.description, i) for i, s in enumerate(SCHEMAS)]


def table_rows(tables: tuple[Table, ...] = PUBLIC_TABLES) -> list[tuple]:
    return [
        (t.schema, t.qualified, t.kind, t.utype, t.description, i) for i, t in enumerate(tables)
    ]


def column_rows(tables: tuple[Table, ...] = PUBLIC_TABLES) -> list[tuple]:
    rows = []
    for t in tables:
        for i, c in enumerate(t.columns):
            rows.append(
                (
                    t.qualified,
                    c.adql_name,
                    c.datatype,
                    c.arraysize,
                    c.xtype,
                    None,
                    c.description,
                    c.utype,
                    c.unit,
                    c.ucd,
                    int(c.indexed),
                    int(c.principal),
                    int(c.std),
                    i,
                )
            )
    return rows


def key_rows(tables: tuple[Table, ...] = PUBLIC_TABLES) -> tuple[list[tuple], list[tuple]]:
    keys, key_columns = [], []
    for t in tables:
        for fk in t.foreign_keys:
            key_id = f"{t.qualified}:{fk.key_id}"
            keys.append((key_id, t.qualified, fk.target, None, fk.description or None))
            for source, target in zip(fk.columns, fk.target_columns, strict=True):
                key_columns.append((key_id, source, target))
    return keys, key_columns
