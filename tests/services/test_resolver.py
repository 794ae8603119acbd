"""The Explorer's name resolver: the built-in names (any case and spacing, aliases, the survey's
fields), coordinates in every common format, impossible coordinates, and what the user is told
when a name is unknown with the network off, unknown to Sesame, or Sesame unreachable. Sesame is
played by a local HTTP server answering in its XML; CDS itself is never contacted."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from astropy.coordinates import SkyCoord

from spherex_archive.services.resolver import (
    KNOWN,
    BadCoordinates,
    NameNotFound,
    Resolver,
    ResolverUnavailable,
    normalise,
    parse_coordinates,
)
from spherex_archive.synth.survey import DEEP_FIELDS, WIDE_FIELDS

M31 = (10.6847, 41.2690)


@pytest.mark.parametrize(
    "name",
    [
        "M31",
        "m31",
        "m 31",
        " M 31 ",
        "Messier 31",
        "Andromeda",
        "andromeda galaxy",
        "NGC 224",
        "ngc224",
    ],
)
def test_built_in_names_in_any_spelling(name):
    found = Resolver(network=False).resolve(name)
    assert (found.name, found.resolver) == ("M31", "built-in")
    assert (found.ra, found.dec) == pytest.approx(M31)


def test_the_survey_fields_are_known_where_the_survey_puts_them():
    resolver = Resolver(network=False)
    for name, (ra, dec) in DEEP_FIELDS.items():
        assert (resolver.resolve(name).ra, resolver.resolve(name).dec) == (ra, dec)
    for name, alias in (("COSMOS", "COSMOS"), ("LOCKMAN", "Lockman Hole"), ("M81", "M81")):
        ra, dec, _ = WIDE_FIELDS[name]
        found = resolver.resolve(alias)
        assert (found.ra, found.dec) == (ra, dec)
    assert resolver.resolve("North Ecliptic Pole").name == "NEP"
    assert resolver.resolve("galactic center").name == "Sgr A*"


def test_the_table_is_consistent():
    assert len(KNOWN) >= 40
    seen: dict[str, str] = {}
    for known in KNOWN:
        assert 0 <= known.ra < 360 and -90 <= known.dec <= 90
        for alias in (known.name, *known.aliases):
            key = normalise(alias)
            assert seen.setdefault(key, known.name) == known.name, f"{alias} names two objects"
    # A few positions checked against SIMBAD's (to 0.01 deg).
    positions = {k.name: (k.ra, k.dec) for k in KNOWN}
    for name, (ra, dec) in {
        "M1": (83.633, 22.014),
        "Vega": (279.235, 38.784),
        "Polaris": (37.955, 89.264),
        "LMC": (80.894, -69.756),
    }.items():
        assert positions[name] == pytest.approx((ra, dec), abs=0.01)


@pytest.mark.parametrize(
    "text",
    [
        "10.684583 41.269167",
        "10.684583,+41.269167",
        "10.684583, 41.269167",
        "00h42m44.3s +41d16m09s",
        "00:42:44.3 +41:16:09",
        "00 42 44.3 +41 16 09",
        "J004244.3+411609",
        "10.684583d 41.269167d",
    ],
)
def test_coordinates_in_common_formats(text):
    found = Resolver(network=False).resolve(text)
    assert found.resolver == "coordinates"
    expected = SkyCoord("00h42m44.3s +41d16m09s")
    assert found.ra == pytest.approx(expected.ra.deg, abs=2e-6)
    assert found.dec == pytest.approx(expected.dec.deg, abs=2e-6)


def test_southern_and_edge_coordinates():
    assert parse_coordinates("05:23:34.5 -69:45:22") == pytest.approx(
        (80.89375, -69.75611), abs=1e-5
    )
    assert parse_coordinates("359.9999 -89.5") == (359.9999, -89.5)
    assert parse_coordinates("0 0") == (0.0, 0.0)


@pytest.mark.parametrize(
    "text, words",
    [
        ("400 10", "RA 400"),
        ("10 95", "Dec 95"),
        ("12:00:00 -95:00:00", "Dec"),
        ("10 20 30", "as coordinates"),
    ],
)
def test_impossible_coordinates_are_refused_plainly(text, words):
    with pytest.raises(BadCoordinates, match=words):
        Resolver(network=False).resolve(text)


def test_names_that_look_numeric_are_names():
    for text in ("3C 273", "47 Tuc", "HD 1234"):
        assert parse_coordinates(text) is None
    assert Resolver(network=False).resolve("47 Tuc").name == "NGC 104"


def test_network_off_says_so():
    with pytest.raises(NameNotFound) as caught:
        Resolver(network=False).resolve("Barnard's Star")
    message = str(caught.value)
    assert "Barnard's Star" in message and "built-in list" in message
    assert "switched off" in message


# --------------------------------------------------------------------------------------------
# Sesame, played by a local server


SESAME_HIT = """<?xml version="1.0" encoding="UTF-8"?>
<Sesame><Target option="SNV"><name>{name}</name>
<Resolver name="S=Simbad (via url):    1"><INFO>from cache</INFO><oname>{name}</oname>
<jpos>18:57:43.80 +04:41:41.4</jpos><jradeg>269.45208</jradeg><jdedeg>4.69339</jdedeg>
</Resolver></Target></Sesame>"""
SESAME_MISS = """<?xml version="1.0" encoding="UTF-8"?>
<Sesame><Target option="SNV"><name>{name}</name><INFO>*** Nothing found *** </INFO>
</Target></Sesame>"""


@contextlib.contextmanager
def sesame_server() -> Iterator[tuple[str, list[str]]]:
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = unquote(self.path.split("?", 1)[1])
            asked.append(name)
            body = (SESAME_HIT if name == "Barnard's Star" else SESAME_MISS).format(name=name)
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/sesame?", asked
    finally:
        server.shutdown()
        server.server_close()


def test_sesame_answers_names_the_table_lacks_and_is_asked_once():
    with sesame_server() as (url, asked):
        resolver = Resolver(network=True, sesame_url=url)
        for _ in range(2):
            found = resolver.resolve("Barnard's Star")
            assert (found.ra, found.dec, found.resolver) == (269.45208, 4.69339, "Sesame")
        assert asked == ["Barnard's Star"]
        assert resolver.resolve("M31").resolver == "built-in"  # never asked for known names
        with pytest.raises(NameNotFound, match="Sesame does not know it either"):
            resolver.resolve("xyz")
        assert asked == ["Barnard's Star", "xyz"]


def test_sesame_unreachable_is_said_plainly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # a port nobody listens on
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/sesame?"
        with pytest.raises(ResolverUnavailable, match="could not be reached"):
            Resolver(network=True, sesame_url=url).resolve("Barnard's Star")
