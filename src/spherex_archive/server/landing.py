"""The landing page: what this archive holds, which services it runs, and examples to copy.

The list of services is the archive's URL contract (design §3); whether each is running is read
from the routes the app has registered, so the page never advertises an endpoint that answers
404, and the examples follow the public base URL of the settings.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from spherex_archive import __version__


@dataclass(frozen=True)
class Service:
    path: str
    name: str
    description: str


SERVICES = (
    Service("/SIA", "SIA 2.0", "Image search by position, wavelength, time and collection."),
    Service("/TAP", "TAP 1.1", "ADQL queries on spherex.obscore, ivoa.obscore, caom.* and more."),
    Service("/ibe/data/spherex/", "Files", "Browse and download the release (Range, ETag, HEAD)."),
    Service("/datalink/links/spherex", "DataLink", "Every file and service behind a dataset id."),
    Service("/soda/sync", "SODA", "Cutouts of spectral images (CIRCLE, POLYGON, POS, BAND)."),
    Service("/coverage/", "Coverage", "MOCs of each collection; which collections cover a region."),
    Service(
        "/api/spherex/spectrophotometry/async",
        "Spectrophotometry",
        "A source's spectrum measured on every image that covers it (UWS jobs: POINT=ra,dec).",
    ),
    Service("/applications/spherex", "Data Explorer", "Search and view images in the browser."),
    Service("/health", "Health", "Liveness: the catalogue answers (JSON, 503 when not)."),
    Service("/metrics", "Metrics", "Prometheus metrics of this server."),
)


def available(path: str, routes: Iterable[str]) -> bool:
    """True if a registered route serves ``path`` or something below it."""
    base = path.rstrip("/")
    return any(r == base or r.startswith(base + "/") for r in routes)


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1d1d1f;background:#fff;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse}th,td{padding:.3rem .8rem .3rem 0;text-align:left;
border-bottom:1px solid #e5e5e5;vertical-align:top}td.n{text-align:right}
pre{background:#f5f5f7;padding:.8rem;overflow-x:auto;border-radius:4px}
.off{color:#888}.tag{font-size:.8rem;padding:0 .4rem;border-radius:3px;background:#eee}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
@media (prefers-color-scheme:dark){body{color:#e8e8e8;background:#161616}
pre{background:#222}td,th{border-color:#333}a{color:#8ab4f8}.tag{background:#333}}
"""


def render(
    base_url: str,
    routes: Iterable[str],
    counts: dict[str, int] | None,
    releases: list[str],
    position: tuple[float, float],
) -> str:
    """The page. ``counts`` is None when the catalogue did not answer."""
    routes = list(routes)
    base = base_url.rstrip("/")
    on = {s.path: available(s.path, routes) for s in SERVICES}

    if counts is None:
        holdings = '<p>The catalogue is not answering: see <a href="health">health</a>.</p>'
    elif not counts:
        holdings = "<p>No data yet: ingest a release with <code>spherex-archive ingest</code>.</p>"
    else:
        rows = "".join(
            f"<tr><td>{html.escape(c)}</td><td class=n>{n:,}</td></tr>" for c, n in counts.items()
        )
        holdings = (
            "<table><thead><tr><th>Collection</th><th>Released images and files</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
        )
    if releases and on["/ibe/data/spherex/"]:
        links = ", ".join(
            f'<a href="ibe/data/spherex/{quote(r)}/">{html.escape(r)}</a>' for r in releases
        )
        holdings += f"<p>Releases on disk: {links}.</p>"

    services = []
    for s in SERVICES:
        link = s.path.lstrip("/")
        if on[s.path]:
            name = f'<a href="{html.escape(link)}">{html.escape(s.name)}</a>'
            state = ""
        else:
            name = f'<span class="off">{html.escape(s.name)}</span>'
            state = ' <span class="tag">not on this server yet</span>'
        services.append(
            f"<tr><td>{name}</td><td><code>{html.escape(s.path)}</code></td>"
            f"<td>{html.escape(s.description)}{state}</td></tr>"
        )

    ra, dec = position
    examples = []
    for path, title, code in _examples(base, ra, dec):
        note = "" if on[path] else f' <span class="tag">once {html.escape(path)} is served</span>'
        examples.append(f"<h3>{html.escape(title)}{note}</h3><pre>{html.escape(code)}</pre>")

    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>SPHEREx archive</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        "<h1>SPHEREx archive</h1>\n"
        "<p>SPHEREx spectral images and calibration files, served with IRSA's interfaces: "
        "scripts written for IRSA work here by changing the host to "
        f"<code>{html.escape(base)}</code>.</p>\n"
        f"<h2>What is here</h2>\n{holdings}\n"
        "<h2>Services</h2>\n<table><thead><tr><th>Service</th><th>Path</th><th></th></tr>"
        f"</thead><tbody>{''.join(services)}</tbody></table>\n"
        f"<h2>Examples</h2>\n{''.join(examples)}\n"
        f"<p class=off>spherex-archive {html.escape(__version__)}</p>\n</body>\n</html>\n"
    )


def _examples(base: str, ra: float, dec: float) -> list[tuple[str, str, str]]:
    """(service path, title, code): curl, pyvo and astroquery, pointed at this host."""
    query = "SELECT TOP 10 obs_publisher_did, energy_bandpassname, access_url FROM ivoa.obscore"
    circle = f"CIRCLE {ra} {dec} 0.1"
    return [
        (
            "/ibe/data/spherex/",
            "Browse and download with curl",
            f"curl {base}/ibe/data/spherex/\n"
            f"curl -O {base}/ibe/data/spherex/qr2/level2/<period>/<delivery>/<det>/<file>.fits",
        ),
        (
            "/SIA",
            "Find images with curl (SIA 2.0)",
            f'curl "{base}/SIA?POS={quote(circle)}&COLLECTION=spherex_qr2_deep"',
        ),
        (
            "/TAP",
            "Query with curl (TAP)",
            f'curl "{base}/TAP/sync?LANG=ADQL&QUERY={quote(query)}"',
        ),
        (
            "/ibe/data/spherex/",
            "Cut out 0.1 deg around your source, all seven HDUs (IRSA's syntax)",
            f'curl -o cutout.fits "{base}/ibe/data/spherex/qr2/level2/<period>/<delivery>/<det>/'
            f'<file>.fits?center={ra},{dec}&size=0.1"',
        ),
        (
            "/datalink/links/spherex",
            "Every cutout of a search, through DataLink and SODA (pyvo)",
            "import pyvo\n\n"
            f'sia = pyvo.dal.sia2.SIA2Service("{base}/SIA")\n'
            f'images = sia.search(pos=({ra}, {dec}, 0.01), collection="spherex_qr2_deep")\n'
            "for image in images[:5]:\n"
            f"    cutout = image.processed(circle=({ra}, {dec}, 0.05))  # a FITS file object\n"
            '    open(image["obs_id"] + ".fits", "wb").write(cutout.read())',
        ),
        (
            "/SIA",
            "pyvo",
            "import pyvo\n\n"
            f'sia = pyvo.dal.sia2.SIA2Service("{base}/SIA")\n'
            f'images = sia.search(pos=({ra}, {dec}, 0.1), collection="spherex_qr2_deep")\n'
            "print(images.to_table())\n\n"
            f'tap = pyvo.dal.TAPService("{base}/TAP")\n'
            f'print(tap.search("{query}").to_table())',
        ),
        (
            "/TAP",
            "astroquery (set the URLs before the first query)",
            "import astropy.units as u\n"
            "from astropy.coordinates import SkyCoord\n"
            "from astroquery.ipac.irsa import Irsa\n\n"
            f'Irsa.sia_url = "{base}/SIA"\n'
            f'Irsa.tap_url = "{base}/TAP"\n'
            f'images = Irsa.query_sia(pos=(SkyCoord({ra}, {dec}, unit="deg"), 0.1 * u.deg),\n'
            '                        collection="spherex_qr2_deep")\n'
            f'table = Irsa.query_tap("{query}").to_table()',
        ),
    ]
