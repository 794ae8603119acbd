"""Column and table metadata: the one description every interface is generated from.

DDL for both catalogues, the ObsCore views, TAP_SCHEMA, and every VOTable FIELD come from these
objects, so a column's name, type, unit, UCD and description cannot disagree between them.
Datatypes are VOTable datatypes (as TAP 1.1 puts them in ``TAP_SCHEMA.columns``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

VOTABLE_TYPES = {"boolean", "short", "int", "long", "float", "double", "char", "unicodeChar"}


@dataclass(frozen=True)
class Column:
    name: str
    datatype: str
    description: str
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    arraysize: str | None = None
    xtype: str | None = None
    """``timestamp`` or ``adql:REGION`` (serialised as char) where it applies."""
    indexed: bool = False
    principal: bool = False
    std: bool = False
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.datatype not in VOTABLE_TYPES:
            raise ValueError(f"{self.name}: {self.datatype!r} is not a VOTable datatype")
        if self.datatype == "char" and self.arraysize is None:
            object.__setattr__(self, "arraysize", "*")

    def __hash__(self) -> int:
        # Column lists key the writers' and the query engine's caches on every answer: the
        # dataclass hash of twelve fields, 36 times per key, cost 0.07 ms a lookup. Kept out
        # of pickles: str hashes differ between processes.
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @property
    def adql_name(self) -> str:
        """The name as ADQL must write it: delimited when it is a reserved word (the
        ``"size"`` of TAP_SCHEMA.columns), as TAP_SCHEMA and /tables list it."""
        from spherex_archive.adql.keywords import RESERVED_WORDS  # adql/ imports model/

        return f'"{self.name}"' if self.name.upper() in RESERVED_WORDS else self.name

    @property
    def is_region(self) -> bool:
        return self.xtype == "adql:REGION"

    @property
    def is_timestamp(self) -> bool:
        return self.xtype == "timestamp"


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    target: str
    """Qualified name of the referenced table."""
    target_columns: tuple[str, ...]
    description: str = ""

    @property
    def key_id(self) -> str:
        return f"{'_'.join(self.columns)}->{self.target}"


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    description: str
    columns: tuple[Column, ...]
    kind: str = "table"
    """``table`` (stored) or ``view`` (derived from stored tables)."""
    utype: str | None = None
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    public: bool = True
    """False for the archive's internal tables: not in TAP_SCHEMA, not reachable by ADQL."""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name.lower() == name.lower():
                return column
        raise KeyError(f"{self.qualified} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Schema:
    name: str
    description: str
    utype: str | None = None
