"""Read the headers of a FITS file without its pixels, and check its structure.

A spectral image's metadata is all in its PRIMARY and IMAGE headers (the first 9 blocks of a
72 MB file); the other headers are read only to prove the file is whole: the walk from header
to header must land exactly on the end of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from astropy.io import fits

BLOCK = 2880


class BadFile(Exception):
    """Why a file cannot be ingested; the message is what the report says."""


@dataclass
class Hdu:
    name: str
    header: fits.Header | None
    """Parsed only for the HDUs asked for (the others are walked over)."""
    cards: dict[str, str]
    """Raw values of the structural cards of every HDU."""


def _card_value(raw: str) -> str:
    value = raw[10:].split("/", 1)[0].strip()
    return value.strip("'").strip()


def _read_header(f: BinaryIO, offset: int) -> tuple[bytes, int]:
    f.seek(offset)
    chunks = []
    while True:
        block = f.read(BLOCK)
        if len(block) < BLOCK:
            raise BadFile("truncated: the file ends inside a header")
        chunks.append(block)
        for i in range(0, BLOCK, 80):
            if block[i : i + 8] == b"END     ":
                data = b"".join(chunks)
                return data, offset + len(data)
        if len(chunks) > 200:
            raise BadFile("not FITS: no END card in the first 200 header blocks")


def _structure(raw: bytes) -> dict[str, str]:
    wanted = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "EXTNAME"}
    cards: dict[str, str] = {}
    text = raw.decode("ascii", errors="replace")
    for i in range(0, len(text), 80):
        key = text[i : i + 8].strip()
        if key in wanted or (key.startswith("NAXIS") and key[5:].isdigit()):
            cards[key] = _card_value(text[i : i + 80])
    return cards


def _data_size(cards: dict[str, str]) -> int:
    try:
        naxis = int(cards.get("NAXIS", "0"))
        if naxis == 0:
            return 0
        count = 1
        for i in range(1, naxis + 1):
            count *= int(cards[f"NAXIS{i}"])
        bits = abs(int(cards["BITPIX"]))
        pcount, gcount = int(cards.get("PCOUNT", "0")), int(cards.get("GCOUNT", "1"))
    except (KeyError, ValueError) as error:
        raise BadFile(f"not FITS: bad structural card ({error})") from None
    size = bits // 8 * gcount * (pcount + count)
    return -(-size // BLOCK) * BLOCK


def read_hdus(f: BinaryIO, size: int, parse: set[int]) -> list[Hdu]:
    """Walk every HDU of a file of ``size`` bytes, parsing the headers numbered in ``parse``."""
    f.seek(0)
    if f.read(9) != b"SIMPLE  =":
        raise BadFile("not FITS: it does not start with SIMPLE =")
    hdus: list[Hdu] = []
    offset = 0
    while offset < size:
        raw, data_start = _read_header(f, offset)
        cards = _structure(raw)
        header = None
        if len(hdus) in parse:
            try:
                header = fits.Header.fromstring(raw.decode("ascii"))
            except (ValueError, UnicodeDecodeError) as error:
                raise BadFile(f"unreadable header {len(hdus)}: {error}") from None
        name = cards.get("EXTNAME", "PRIMARY" if not hdus else "")
        hdus.append(Hdu(name, header, cards))
        offset = data_start + _data_size(cards)
        if offset > size:
            raise BadFile(
                f"truncated: HDU {len(hdus) - 1} ({name}) needs {offset} bytes, the file has {size}"
            )
    return hdus
