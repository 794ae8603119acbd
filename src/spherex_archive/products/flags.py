"""Bits of the FLAGS extension (spec §2.4) and which of them make a pixel unusable."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from astropy.io import fits

# QR2 pipeline 6.4 (product v20) flag bits.
FLAGS_V20: dict[str, int] = {
    "TRANSIENT": 0,
    "OVERFLOW": 1,
    "SUR_ERROR": 2,
    "PHANTOM": 4,
    "REFERENCE": 5,
    "NONFUNC": 6,
    "DICHROIC": 7,
    "MISSING_DATA": 9,
    "HOT": 10,
    "COLD": 11,
    "FULLSAMPLE": 12,
    "PHANMISS": 14,
    "NONLINEAR": 15,
    "PERSIST": 17,
    "OUTLIER": 19,
    "SOURCE": 21,
}

# QR2 pipeline 6.5.x (product v21 and later) adds the ghost and artefact bits.
FLAGS_V21: dict[str, int] = {
    **FLAGS_V20,
    "GHOST": 22,
    "GHOST_FPA": 23,
    "GHOST_EXT": 24,
    "BLOOM": 26,
    "SNOWBALL": 27,
    "HALO": 28,
}
FLAGS_V21 = dict(sorted(FLAGS_V21.items(), key=lambda item: item[1]))

DESCRIPTIONS: dict[str, str] = {
    "TRANSIENT": "Transient seen during sample-up-the-ramp",
    "OVERFLOW": "Overflow during sample-up-the-ramp (informational)",
    "SUR_ERROR": "Onboard processing error",
    "PHANTOM": "Phantom pixel",
    "REFERENCE": "Reference pixel",
    "NONFUNC": "Permanently unusable",
    "DICHROIC": "Low efficiency due to the dichroic",
    "MISSING_DATA": "Data lost onboard",
    "HOT": "Hot pixel",
    "COLD": "Anomalously low signal",
    "FULLSAMPLE": "Full sample history available (informational)",
    "PHANMISS": "Phantom correction not applied",
    "NONLINEAR": "Nonlinearity correction unreliable",
    "PERSIST": "Persistent charge above threshold",
    "OUTLIER": "Flagged by outlier detection",
    "CROSSTALK": "Crosstalk",
    "SOURCE": "Pixel mapped to a known source (informational)",
    "GHOST": "Ghost of a bright source inside the exposure",
    "GHOST_FPA": "Ghost of a bright source on another detector",
    "GHOST_EXT": "Ghost of a bright source outside the field of view",
    "STREAK": "Streak",
    "BLOOM": "Part of a bloom artefact",
    "SNOWBALL": "Part of a snowball artefact",
    "HALO": "Part of a transient halo",
    "SATELLITE_HALO": "Satellite halo",
}
"""What each bit means (spec §2.4), in words for a legend."""

INFORMATIONAL = frozenset({"OVERFLOW", "FULLSAMPLE", "OUTLIER", "SOURCE", "PHANTOM", "REFERENCE"})
"""Bits that do not make a pixel unusable: IRSA's Mosaic Tool masks every other bit."""


def flag_bits(product_version: int) -> dict[str, int]:
    """The flag names and bit numbers written in files of this ``l2b-v<NN>`` product version."""
    return FLAGS_V20 if product_version <= 20 else FLAGS_V21


def flags_from_header(header: fits.Header | Mapping) -> dict[str, int]:
    """Read the ``MP_<NAME> = <bit>`` cards the way client code does, from an astropy header
    or the values ``products.fitsfile.parse_header`` reads from raw bytes."""
    return {key[3:]: int(value) for key, value in header.items() if key.startswith("MP_")}


def unusable_mask_value(bits: Mapping[str, int]) -> int:
    """The OR of the bits that make a pixel unusable for photometry."""
    value = 0
    for name, bit in bits.items():
        if name not in INFORMATIONAL:
            value |= 1 << bit
    return value


def count_flags(flags: np.ndarray, bits: Mapping[str, int]) -> dict[str, int]:
    """How many pixels carry each bit (the ``HIERARCH L2 N_<NAME>`` header counts)."""
    return {name: int(np.count_nonzero(flags & (1 << bit))) for name, bit in bits.items()}
