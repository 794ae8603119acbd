"""Target names and coordinates for the Data Explorer: ``M31``, ``NEP``, ``10.68 41.27``,
``00h42m44.3s +41d16m09s`` or ``J004244.3+411609`` all become an ICRS position in degrees.

Coordinates are read first (astropy's parsers; sexagesimal RA in hours, decimal RA in degrees),
then a built-in table of well-known objects and of the survey's own fields (so that the archive
answers the usual names with no network), then, when the deployment allows it, CDS Sesame
(which asks SIMBAD, NED and VizieR). Names are matched without regard to case, spaces, hyphens
or underscores, and "Messier 31" is M31.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

import astropy.units as u
from astropy.coordinates import Angle, SkyCoord

from spherex_archive import __version__
from spherex_archive.synth.survey import DEEP_FIELDS, WIDE_FIELDS

SESAME_URL = "https://cds.unistra.fr/cgi-bin/nph-sesame/-oxp/SNV?"
"""Sesame's XML answer (-ox), every resolver (SNV: SIMBAD, NED, VizieR), first hit (p)."""
SESAME_TIMEOUT = 5.0
"""Seconds a Sesame request may take: the user is waiting in front of the search form."""


@dataclass(frozen=True)
class Position:
    name: str
    ra: float
    dec: float
    resolver: str
    """``built-in``, ``coordinates`` or ``Sesame``."""

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "ra": round(self.ra, 7),
            "dec": round(self.dec, 7),
            "resolver": self.resolver,
        }


@dataclass(frozen=True)
class KnownObject:
    name: str
    ra: float
    dec: float
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"name": self.name, "ra": self.ra, "dec": self.dec, "aliases": list(self.aliases)}


class NameNotFound(LookupError):
    """No resolver knows the name (answered 404); the message says which were asked."""


class ResolverUnavailable(RuntimeError):
    """The network resolver could not be reached (answered 503)."""


class BadCoordinates(ValueError):
    """Text that reads as coordinates but holds impossible values (answered 400)."""


def _field(key: str) -> tuple[float, float]:
    ra, dec, _ = WIDE_FIELDS[key]
    return ra, dec


# ICRS (J2000) positions from SIMBAD, rounded to 1e-4 deg; the survey's fields from its model.
KNOWN: tuple[KnownObject, ...] = (
    KnownObject("M1", 83.6331, 22.0145, ("Crab Nebula", "Crab", "NGC 1952", "Taurus A")),
    KnownObject("M3", 205.5484, 28.3773, ("NGC 5272",)),
    KnownObject("M8", 270.9042, -24.3867, ("Lagoon Nebula", "NGC 6523")),
    KnownObject("M13", 250.4235, 36.4613, ("Hercules Cluster", "NGC 6205")),
    KnownObject("M15", 322.4930, 12.1670, ("NGC 7078",)),
    KnownObject("M16", 274.7000, -13.8067, ("Eagle Nebula", "NGC 6611")),
    KnownObject("M17", 275.1958, -16.1717, ("Omega Nebula", "Swan Nebula", "NGC 6618")),
    KnownObject("M20", 270.5958, -23.0300, ("Trifid Nebula", "NGC 6514")),
    KnownObject("M22", 279.0998, -23.9048, ("NGC 6656",)),
    KnownObject("M27", 299.9016, 22.7211, ("Dumbbell Nebula", "NGC 6853")),
    KnownObject("M31", *_field("M31"), ("Andromeda", "Andromeda Galaxy", "NGC 224")),
    KnownObject("M32", 10.6743, 40.8652, ("NGC 221",)),
    KnownObject("M33", 23.4621, 30.6599, ("Triangulum Galaxy", "NGC 598")),
    KnownObject("M42", *_field("ORION"), ("Orion Nebula", "ORION", "NGC 1976")),
    KnownObject("M44", 130.1000, 19.6667, ("Beehive Cluster", "Praesepe", "NGC 2632")),
    KnownObject("M45", 56.7500, 24.1167, ("Pleiades", "Seven Sisters")),
    KnownObject("M51", 202.4696, 47.1952, ("Whirlpool Galaxy", "NGC 5194")),
    KnownObject("M57", 283.3962, 33.0292, ("Ring Nebula", "NGC 6720")),
    KnownObject("M64", 194.1821, 21.6827, ("Black Eye Galaxy", "NGC 4826")),
    KnownObject("M81", *_field("M81"), ("Bode's Galaxy", "NGC 3031")),
    KnownObject("M82", 148.9697, 69.6797, ("Cigar Galaxy", "NGC 3034")),
    KnownObject("M83", 204.2538, -29.8658, ("Southern Pinwheel Galaxy", "NGC 5236")),
    KnownObject("M87", 187.7059, 12.3911, ("Virgo A", "NGC 4486")),
    KnownObject("M101", 210.8024, 54.3488, ("Pinwheel Galaxy", "NGC 5457")),
    KnownObject("M104", 189.9976, -11.6231, ("Sombrero Galaxy", "NGC 4594")),
    KnownObject("NGC 253", 11.8880, -25.2883, ("Sculptor Galaxy",)),
    KnownObject("NGC 5128", 201.3651, -43.0191, ("Centaurus A", "Cen A")),
    KnownObject("NGC 104", 6.0236, -72.0813, ("47 Tucanae", "47 Tuc")),
    KnownObject("NGC 5139", 201.6970, -47.4795, ("Omega Centauri", "omega Cen")),
    KnownObject("LMC", 80.8938, -69.7561, ("Large Magellanic Cloud",)),
    KnownObject("SMC", 13.1867, -72.8286, ("Small Magellanic Cloud",)),
    KnownObject("Cas A", 350.8500, 58.8150, ("Cassiopeia A",)),
    KnownObject("Eta Carinae", 161.2650, -59.6844, ("eta Car",)),
    KnownObject("Horsehead Nebula", 85.2458, -2.4583, ("Barnard 33", "B33")),
    KnownObject("Hyades", 66.7250, 15.8667, ("Melotte 25",)),
    KnownObject("Coma Cluster", 194.9529, 27.9806, ("Abell 1656",)),
    KnownObject(
        "Sgr A*",
        *_field("GALCEN"),
        ("Sagittarius A*", "Galactic Center", "Galactic Centre", "GALCEN"),
    ),
    KnownObject("Vega", 279.2347, 38.7837, ("alpha Lyr", "alf Lyr")),
    KnownObject("Polaris", 37.9546, 89.2641, ("alpha UMi", "alf UMi", "North Star")),
    KnownObject("Sirius", 101.2872, -16.7161, ("alpha CMa", "alf CMa")),
    KnownObject("Betelgeuse", 88.7929, 7.4071, ("alpha Ori", "alf Ori")),
    KnownObject("Alpha Centauri", 219.9021, -60.8340, ("alf Cen", "Rigil Kentaurus")),
    KnownObject("HDF-N", 189.2058, 62.2161, ("Hubble Deep Field", "HDF")),
    KnownObject("HUDF", 53.1625, -27.7914, ("Hubble Ultra Deep Field",)),
    KnownObject("CDF-S", 53.1225, -27.8083, ("Chandra Deep Field South", "GOODS-S")),
    KnownObject("COSMOS", *_field("COSMOS"), ("COSMOS field",)),
    KnownObject("Lockman Hole", *_field("LOCKMAN"), ("LOCKMAN",)),
    KnownObject("NEP", *DEEP_FIELDS["NEP"], ("North Ecliptic Pole", "SPHEREx NEP deep field")),
    KnownObject("SEP", *DEEP_FIELDS["SEP"], ("South Ecliptic Pole", "SPHEREx SEP deep field")),
    KnownObject("NCP", *_field("NCP"), ("North Celestial Pole",)),
    KnownObject("RA0", *_field("RA0"), ("RA 0 demo field",)),
)
"""The built-in table: names users type first, and every field the survey model names."""


def normalise(name: str) -> str:
    """A name as the table matches it: lower case, no spaces, hyphens or underscores;
    ``Messier 31`` is ``m31``."""
    text = re.sub(r"[\s_\-]+", "", name.lower())
    return re.sub(r"^messier(?=\d)", "m", text)


_INDEX: dict[str, KnownObject] = {
    normalise(alias): known for known in KNOWN for alias in (known.name, *known.aliases)
}

_SEXAGESIMAL_SIGNS = re.compile(r"[hmsd:°'\"]|\d\s+\d+\s+\d")
_COORDINATE_TEXT = re.compile(r"^[\d+\-.][\d\s.,:+\-hmsd°'\"]*$", re.IGNORECASE)
"""Text that can only be coordinates: names such as "3C 273" or "HD 1234" have other letters
or start with one."""
COORDINATE_FORMATS = "'10.68 41.27' (degrees) or '00:42:44.3 +41:16:09' (RA in hours)"
_JNAME = re.compile(
    r"^J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$", re.IGNORECASE
)


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """(RA, Dec) in degrees if ``text`` is a position: two decimal numbers (degrees),
    sexagesimal with ``h m s``/``d m s``, colons or spaces (RA in hours), or a ``Jhhmmss+ddmmss``
    name; None if it is not written as coordinates. BadCoordinates for values off the sky."""
    text = text.strip()
    jname = _JNAME.match(text.replace(" ", ""))
    if jname:
        h, m, s, sign, d, dm, ds = jname.groups()
        text = f"{h}h{m}m{s}s {sign}{d}d{dm}m{ds}s"
    elif not _COORDINATE_TEXT.match(text):
        return None
    words = text.replace(",", " ").split()
    try:
        if len(words) == 2 and all(_is_decimal(w) for w in words):
            ra, dec = (float(w) for w in words)
            if not 0 <= ra <= 360:
                raise BadCoordinates(f"RA {ra:g} is outside 0..360 degrees")
            if not -90 <= dec <= 90:
                raise BadCoordinates(f"Dec {dec:g} is outside -90..90 degrees")
            return ra % 360, dec
        if not _SEXAGESIMAL_SIGNS.search(text):
            return None
        if len(words) == 6:  # "00 42 44.3 +41 16 09"
            words = [":".join(words[:3]), ":".join(words[3:])]
        if len(words) != 2:
            raise BadCoordinates(
                f"cannot read {text!r} as coordinates: write them as {COORDINATE_FORMATS}"
            )
        ra_text, dec_text = words
        if re.fullmatch(r"[\d.]+d.*", ra_text):  # "10d41m" is degrees, not hours
            ra = Angle(ra_text, unit=u.deg)
        else:
            ra = Angle(ra_text, unit=u.hourangle)
        coord = SkyCoord(ra, Angle(dec_text, unit=u.deg), frame="icrs")
    except BadCoordinates:
        raise
    except (ValueError, u.UnitsError) as error:
        if "latitude" in str(error).lower() or "-90" in str(error):
            raise BadCoordinates("Dec must be between -90 and +90 degrees") from None
        raise BadCoordinates(
            f"cannot read {text!r} as coordinates: write them as {COORDINATE_FORMATS}"
        ) from None
    if not 0 <= ra.deg <= 360:
        raise BadCoordinates("RA must be between 0h and 24h (0 and 360 degrees)")
    return float(coord.ra.deg), float(coord.dec.deg)


def _is_decimal(word: str) -> bool:
    return re.fullmatch(r"[+\-]?(\d+\.?\d*|\.\d+)([eE][+\-]?\d+)?", word) is not None


def sesame(
    name: str, url: str = SESAME_URL, timeout: float = SESAME_TIMEOUT
) -> tuple[float, float] | None:
    """(RA, Dec) of ``name`` as CDS Sesame (at ``url``, the name appended) knows it, None if it
    does not; ResolverUnavailable if Sesame cannot be reached."""
    request = urllib.request.Request(
        url + quote(name), headers={"User-Agent": f"spherex-archive/{__version__}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise ResolverUnavailable(str(error)) from None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise ResolverUnavailable("Sesame answered something that is not XML") from None
    for resolver in root.iter("Resolver"):
        ra, dec = resolver.findtext("jradeg"), resolver.findtext("jdedeg")
        if ra and dec:
            return float(ra), float(dec)
    return None


class Resolver:
    """Names to positions; Sesame's answers are kept (a few hundred) so a name is asked once."""

    def __init__(self, network: bool, sesame_url: str = SESAME_URL, cache_size: int = 512) -> None:
        self.network = network
        self.sesame_url = sesame_url
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def names() -> list[KnownObject]:
        return list(KNOWN)

    def resolve(self, text: str) -> Position:
        """The position of a name or of coordinates. BadCoordinates (impossible values),
        NameNotFound or ResolverUnavailable, each with a message for the user."""
        text = text.strip()
        if not text:
            raise BadCoordinates("name: give an object name or coordinates")
        found = parse_coordinates(text)
        if found is not None:
            return Position(text, *found, "coordinates")
        known = _INDEX.get(normalise(text))
        if known is not None:
            return Position(known.name, known.ra, known.dec, "built-in")
        if not self.network:
            raise NameNotFound(
                f"No object called {text!r} in the built-in list, and network name resolvers "
                "are switched off on this server: give coordinates instead."
            )
        key = normalise(text)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            try:
                cached = sesame(text, self.sesame_url)
            except ResolverUnavailable:
                raise ResolverUnavailable(
                    f"{text!r} is not in the built-in list, and Sesame could not be reached "
                    "(no network?) — give coordinates instead."
                ) from None
            if cached is None:
                raise NameNotFound(
                    f"No object called {text!r} in the built-in list, and Sesame does not "
                    "know it either."
                )
            with self._lock:
                self._cache[key] = cached
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return Position(text, *cached, "Sesame")
