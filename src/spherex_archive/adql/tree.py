"""The ADQL syntax tree: immutable nodes that a translator turns into SQL for one dialect.

Every node is a frozen dataclass. ``pos`` (where the node starts in the query text) is left out of
``==`` and ``repr``, so two trees parsed from differently laid-out queries compare equal when
they mean the same thing. Parentheses leave no node, the tree's shape carries the grouping
(ParenthesizedQuery is the one exception, for parentheses that change a query's meaning).

Names keep their spelling and whether they were delimited ("quoted"): matching them to the
catalogue (case-insensitively for regular identifiers) is the name-resolution step's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the query text: 1-based line and column, 0-based character offset."""

    line: int
    column: int
    offset: int


NO_POSITION = Position(0, 0, 0)


@dataclass(frozen=True, slots=True)
class Node:
    pos: Position = field(default=NO_POSITION, compare=False, repr=False, kw_only=True)


# ---- names and literals


@dataclass(frozen=True, slots=True)
class Identifier(Node):
    """A name as written: ``name`` is the text, without the quotes when ``delimited``."""

    name: str
    delimited: bool = False


@dataclass(frozen=True, slots=True)
class TableName(Node):
    """``[catalog.][schema.]name``; also the qualifier of a column reference or of ``t.*``."""

    name: Identifier
    schema: Identifier | None = None
    catalog: Identifier | None = None


@dataclass(frozen=True, slots=True)
class ColumnRef(Node):
    """A column, optionally qualified by a table name or a correlation name (alias)."""

    name: Identifier
    table: TableName | None = None


@dataclass(frozen=True, slots=True)
class NumberLiteral(Node):
    """An unsigned number: ``text`` as written (``1.``, ``10e-5``, ``0xFF``) and its value."""

    text: str
    value: int | float


@dataclass(frozen=True, slots=True)
class StringLiteral(Node):
    """A string, ``value`` without quotes and with ``''`` turned into ``'``."""

    value: str


@dataclass(frozen=True, slots=True)
class NullLiteral(Node):
    pass


# ---- operators


@dataclass(frozen=True, slots=True)
class UnaryOp(Node):
    """``op`` is ``-``, ``+`` or ``~`` (bitwise not)."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class BinaryOp(Node):
    """Arithmetic ``+ - * /``, concatenation ``||`` and bitwise ``& | ^`` (xor)."""

    op: str
    left: Expr
    right: Expr


# ---- conditions (the only expressions allowed in WHERE, HAVING, ON and NOT/AND/OR)


@dataclass(frozen=True, slots=True)
class Comparison(Node):
    """``op`` is one of ``= <> < > <= >=`` (``!=`` is read as ``<>``)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Between(Node):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like(Node):
    """``LIKE``, or ``ILIKE`` when ``case_insensitive``."""

    expr: Expr
    pattern: Expr
    negated: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class InList(Node):
    expr: Expr
    values: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InSubquery(Node):
    expr: Expr
    query: QueryExpr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    expr: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Exists(Node):
    query: QueryExpr


@dataclass(frozen=True, slots=True)
class And(Node):
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or(Node):
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Expr


# ---- functions


@dataclass(frozen=True, slots=True)
class Function(Node):
    """A standard function other than the ones below, ``name`` upper-case: the mathematical
    and trigonometrical functions, LOWER, UPPER and COALESCE."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class UserFunction(Node):
    """A call of a name ADQL does not define (``ivo_healpix_index``, ``gavo_xxx``), as written.
    Whether the service offers it is for name resolution to decide."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Aggregate(Node):
    """``AVG MAX MIN SUM COUNT``; ``arg`` is None for ``COUNT(*)``."""

    name: str
    arg: Expr | None
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class Cast(Node):
    """``CAST(expr AS type)``; ``type`` upper-case (``DOUBLE PRECISION``), ``length`` for
    ``CHAR(n)`` and ``VARCHAR(n)``."""

    expr: Expr
    type: str
    length: int | None = None


@dataclass(frozen=True, slots=True)
class InUnit(Node):
    """``IN_UNIT(expr, 'unit')``: the value converted to a VOUnit."""

    expr: Expr
    unit: str


@dataclass(frozen=True, slots=True)
class WhenClause(Node):
    condition: Expr
    result: Expr


@dataclass(frozen=True, slots=True)
class Case(Node):
    """Searched CASE (``operand`` None, conditions in the WHEN clauses) or simple CASE
    (``operand`` compared with each WHEN value)."""

    operand: Expr | None
    whens: tuple[WhenClause, ...]
    else_: Expr | None = None


@dataclass(frozen=True, slots=True)
class ScalarSubquery(Node):
    query: QueryExpr


# ---- geometry [ADQL 2.1 §4.2]. ``coord_sys`` is the optional frame label ('ICRS', '');
# None when absent or NULL. Shapes given by coordinates get their centre or vertices as Point
# nodes without a frame, so CIRCLE('ICRS', 1, 2, 3) == CIRCLE('ICRS', POINT(1, 2), 3).


@dataclass(frozen=True, slots=True)
class Point(Node):
    coord_sys: str | None
    x: Expr
    y: Expr


@dataclass(frozen=True, slots=True)
class Circle(Node):
    coord_sys: str | None
    center: Expr
    radius: Expr


@dataclass(frozen=True, slots=True)
class Box(Node):
    coord_sys: str | None
    center: Expr
    width: Expr
    height: Expr


@dataclass(frozen=True, slots=True)
class Polygon(Node):
    coord_sys: str | None
    vertices: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Region(Node):
    """``REGION('STC-S text')`` (deprecated in 2.1)."""

    text: str


@dataclass(frozen=True, slots=True)
class Contains(Node):
    """``CONTAINS(left, right)``: 1 when right holds left, else 0."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Intersects(Node):
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Distance(Node):
    """Angular distance in degrees; ``DISTANCE(x1, y1, x2, y2)`` gives two Points."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class GeometryFunction(Node):
    """A one-argument geometry function: ``AREA CENTROID COORD1 COORD2 COORDSYS``."""

    name: str
    arg: Expr


# ---- queries


@dataclass(frozen=True, slots=True)
class Star(Node):
    """``*`` in the select list, or ``table.*``."""

    table: TableName | None = None


@dataclass(frozen=True, slots=True)
class SelectColumn(Node):
    expr: Expr
    alias: Identifier | None = None


@dataclass(frozen=True, slots=True)
class OrderItem(Node):
    """An ORDER BY term; an unsigned integer ``expr`` is a 1-based select-list position."""

    expr: Expr
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Table(Node):
    name: TableName
    alias: Identifier | None = None


@dataclass(frozen=True, slots=True)
class DerivedTable(Node):
    """A subquery in FROM; ADQL requires its alias."""

    query: QueryExpr
    alias: Identifier


@dataclass(frozen=True, slots=True)
class Join(Node):
    """``kind`` is INNER, LEFT, RIGHT, FULL or CROSS. A NATURAL or CROSS join has neither ``on``
    nor ``using``; any other has exactly one. ``alias`` names a parenthesized join."""

    kind: str
    left: TableRef
    right: TableRef
    natural: bool = False
    on: Expr | None = None
    using: tuple[Identifier, ...] | None = None
    alias: Identifier | None = None


@dataclass(frozen=True, slots=True)
class Select(Node):
    """One SELECT block. ``top`` limits the rows after ``offset`` skipped some [ADQL 2.1
    §2.2.7]; ``from_`` holds the comma-separated FROM items."""

    columns: tuple[SelectItem, ...]
    from_: tuple[TableRef, ...]
    distinct: bool = False
    top: int | None = None
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class SetOperation(Node):
    """``left UNION|INTERSECT|EXCEPT [ALL] right``, ordered and offset as a whole."""

    op: str
    left: QueryExpr
    right: QueryExpr
    all: bool = False
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class ParenthesizedQuery(Node):
    """``(query) ORDER BY ... OFFSET ...`` where the ordering or offset cannot be merged into
    ``query`` without changing its meaning, e.g. ``(SELECT TOP 5 ...) ORDER BY x``."""

    query: QueryExpr
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class CommonTableExpr(Node):
    name: Identifier
    query: QueryExpr


@dataclass(frozen=True, slots=True)
class Query(Node):
    """The root: an optional WITH list (allowed only here) and the query proper."""

    body: QueryExpr
    ctes: tuple[CommonTableExpr, ...] = ()


Expr = (
    ColumnRef
    | NumberLiteral
    | StringLiteral
    | NullLiteral
    | UnaryOp
    | BinaryOp
    | Comparison
    | Between
    | Like
    | InList
    | InSubquery
    | IsNull
    | Exists
    | And
    | Or
    | Not
    | Function
    | UserFunction
    | Aggregate
    | Cast
    | InUnit
    | Case
    | ScalarSubquery
    | Point
    | Circle
    | Box
    | Polygon
    | Region
    | Contains
    | Intersects
    | Distance
    | GeometryFunction
)
SelectItem = Star | SelectColumn
TableRef = Table | DerivedTable | Join
QueryExpr = Select | SetOperation | ParenthesizedQuery
