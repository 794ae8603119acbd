"""The geometry functions [ADQL 2.1 §4.2]: which argument is what depends on how many there are
and on their form, e.g. CIRCLE('ICRS', 1, 2, 3), CIRCLE('ICRS', POINT(1, 2), 3), CIRCLE(p, 3).
Shapes given by coordinates get frame-less Point nodes for their centre or vertices.
"""

from __future__ import annotations

from . import tree as t
from .checks import fail, is_geometry, need_scalar, need_value, show

# What may stand where ADQL wants a <coord_value> (a point): a point or whatever could hold one.
POINT_LIKE = (t.Point, t.ColumnRef, t.UserFunction, t.ScalarSubquery, t.Case)


def _frame(arg: t.Node) -> bool:
    return isinstance(arg, (t.StringLiteral, t.NullLiteral))


def _frame_value(arg: t.Node, name: str) -> str | None:
    if not _frame(arg):
        raise fail(
            f"expected the coordinate system of {name} as a string such as 'ICRS', found "
            f"{show(arg)}",
            arg.pos,
        )
    return arg.value if isinstance(arg, t.StringLiteral) else None


def _point_like(arg: t.Node) -> bool:
    if isinstance(arg, t.GeometryFunction):
        return arg.name == "CENTROID"
    if isinstance(arg, t.Function):
        return arg.name == "COALESCE"
    if isinstance(arg, t.Cast):
        return arg.type == "POINT"
    return isinstance(arg, POINT_LIKE)


def _point_arg(arg: t.Node, what: str) -> t.Node:
    if not _point_like(arg):
        raise fail(f"expected a point {what}, found {show(arg)}", arg.pos)
    return arg


def _coordinates(x: t.Node, y: t.Node, name: str) -> t.Point:
    need_scalar(x, f"as a coordinate in {name}")
    need_scalar(y, f"as a coordinate in {name}")
    return t.Point(None, x, y, pos=x.pos)


def geometry(name: str, args: tuple, pos: t.Position) -> t.Node:
    n = len(args)
    if name == "POINT" and n in (2, 3):
        frame = _frame_value(args[0], name) if n == 3 else None
        point = _coordinates(*args[n - 2 :], name)
        return t.Point(frame, point.x, point.y, pos=pos)
    if name == "CIRCLE" and n in (2, 3, 4):
        if n == 4 or (n == 3 and not _frame(args[0])):
            frame = _frame_value(args[0], name) if n == 4 else None
            center = _coordinates(args[n - 3], args[n - 2], name)
        else:
            frame = _frame_value(args[0], name) if n == 3 else None
            center = _point_arg(args[n - 2], "as the centre of CIRCLE")
        return t.Circle(frame, center, need_scalar(args[-1], "as the radius of CIRCLE"), pos=pos)
    if name == "BOX" and n in (3, 4, 5):
        if n == 5 or (n == 4 and not _frame(args[0])):
            frame = _frame_value(args[0], name) if n == 5 else None
            center = _coordinates(args[n - 4], args[n - 3], name)
        else:
            frame = _frame_value(args[0], name) if n == 4 else None
            center = _point_arg(args[n - 3], "as the centre of BOX")
        width, height = (need_scalar(a, "as a side of BOX") for a in args[-2:])
        return t.Box(frame, center, width, height, pos=pos)
    if name == "POLYGON" and n >= 3:
        return _polygon(args, pos)
    if name == "DISTANCE" and n == 2:
        left, right = (_point_arg(a, "as an argument of DISTANCE") for a in args)
        return t.Distance(left, right, pos=pos)
    if name == "DISTANCE" and n == 4:
        return t.Distance(_coordinates(*args[:2], name), _coordinates(*args[2:], name), pos=pos)
    if name in ("CONTAINS", "INTERSECTS") and n == 2:
        left, right = (need_value(a, f"as an argument of {name}") for a in args)
        return (t.Contains if name == "CONTAINS" else t.Intersects)(left, right, pos=pos)
    if name == "REGION" and n == 1:
        if not isinstance(args[0], t.StringLiteral):
            raise fail(
                f"expected an STC-S string as the argument of REGION, found {show(args[0])}",
                args[0].pos,
            )
        return t.Region(args[0].value, pos=pos)
    if name in ("AREA", "CENTROID", "COORD1", "COORD2", "COORDSYS") and n == 1:
        return t.GeometryFunction(name, need_value(args[0], f"as the argument of {name}"), pos=pos)
    raise fail(f"{name} takes {GEOMETRY_USAGE[name]}, found {n} argument{'s' * (n != 1)}", pos)


def _polygon(args: tuple, pos: t.Position) -> t.Polygon:
    # A leading string (or NULL) is the frame; the rest are vertices, either as points or as
    # coordinate pairs. Plain columns could be either: pairs unless there is an odd number.
    frame = _frame_value(args[0], "POLYGON") if _frame(args[0]) else None
    rest = args[1:] if _frame(args[0]) else args
    as_points = any(map(is_geometry, rest)) or (
        all(map(_point_like, rest)) and (len(rest) % 2 == 1 or len(rest) < 6)
    )
    if as_points:
        if len(rest) < 3:
            raise fail(
                f"POLYGON takes {GEOMETRY_USAGE['POLYGON']}, found {len(args)} arguments", pos
            )
        vertices = tuple(_point_arg(a, "as a vertex of POLYGON") for a in rest)
    else:
        if len(rest) % 2 or len(rest) < 6:
            raise fail(
                f"POLYGON needs at least three vertices as pairs of coordinates, found "
                f"{len(rest)} coordinate{'s' * (len(rest) != 1)}",
                pos,
            )
        vertices = tuple(_coordinates(*rest[i : i + 2], "POLYGON") for i in range(0, len(rest), 2))
    return t.Polygon(frame, vertices, pos=pos)


GEOMETRY_USAGE = {
    "POINT": "(['frame',] lon, lat)",
    "CIRCLE": "(['frame',] lon, lat, radius) or (['frame',] point, radius)",
    "BOX": "(['frame',] lon, lat, width, height) or (['frame',] point, width, height)",
    "POLYGON": "(['frame',] lon1, lat1, lon2, lat2, lon3, lat3, ...) or (['frame',] p1, p2, ...)",
    "DISTANCE": "(point1, point2) or (lon1, lat1, lon2, lat2)",
    "CONTAINS": "(geometry, geometry)",
    "INTERSECTS": "(geometry, geometry)",
    "REGION": "('STC-S text')",
    **dict.fromkeys(["AREA", "CENTROID", "COORDSYS"], "(geometry)"),
    **dict.fromkeys(["COORD1", "COORD2"], "(point)"),
}
