"""DALI literal values as services receive them: numbers (``5e-07``, ``-Inf``, ``inf`` as pyvo
writes them) and the POS shapes of SIA 2.0 (``CIRCLE``, ``RANGE``, ``POLYGON``), parsed in one
place for SIA and coverage alike. Degrees throughout; what a shape means is the caller's."""

from __future__ import annotations

import math
from dataclasses import dataclass

ARITY = {"CIRCLE": "ra dec radius", "RANGE": "ra1 ra2 dec1 dec2", "POLYGON": "ra dec ra dec ..."}


class ValueProblem(ValueError):
    """A value that is not what its parameter takes; the message says why."""


def number(text: str, name: str) -> float:
    """A DALI number (infinities allowed, NaN not)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueProblem(f"{name}: {text!r} is not a number") from None
    if math.isnan(value):
        raise ValueProblem(f"{name}: NaN is not a value")
    return value


@dataclass(frozen=True)
class Shape:
    kind: str
    """CIRCLE, RANGE or POLYGON."""
    numbers: tuple[float, ...]

    @property
    def vertices(self) -> list[tuple[float, float]]:
        return list(zip(self.numbers[::2], self.numbers[1::2], strict=True))


def parse_pos(text: str) -> Shape:
    """A POS value: its shape and the right count of numbers for it (ValueProblem if not)."""
    words = text.split()
    if not words:
        raise ValueProblem("POS: empty value; give CIRCLE, RANGE or POLYGON")
    kind, numbers = words[0].upper(), tuple(number(w, "POS") for w in words[1:])
    if kind not in ARITY:
        raise ValueProblem(f"POS: unknown shape {words[0]!r}; use CIRCLE, RANGE or POLYGON")
    wanted = {"CIRCLE": len(numbers) == 3, "RANGE": len(numbers) == 4}
    if not wanted.get(kind, len(numbers) >= 6 and len(numbers) % 2 == 0):
        if kind == "POLYGON":
            raise ValueProblem(f"POS: POLYGON takes at least three ra dec pairs, not {text!r}")
        raise ValueProblem(f"POS: {kind} takes {ARITY[kind]}, not {text!r}")
    return Shape(kind, numbers)
