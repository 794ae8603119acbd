"""DataLink 1.1 links of SPHEREx datasets (DataLink §3-4, ivoa-services §9, spherex-products §4-5):
everything a dataset id leads to.

The ids of one request are looked up in one ADQL query through the query engine, so the embargo
views and both catalogues apply as everywhere else: each plane with its current file, footprint
and wavelength range, and the calibration files its ``HISTORY [CALIB]`` cards cite
(``spherex.provenance_input``). A spectral image gets its file (``#this``), two cutout services
(``#cutout``: SODA, and IRSA's ``center``/``size`` syntax), a PNG quicklook (``#preview``), each
calibration file the archive holds (``#calibration``) and the file's place in the S3 mirror
(``#auxiliary``). A calibration file gets ``#this``, ``#auxiliary`` and, when it is a FITS image,
``#preview``. An id the views do not show (unknown, or still embargoed) gets one ``#this`` row
with a ``NotFoundFault``. Ids come back exactly as they were sent: pyvo matches them as strings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote

import numpy as np

from spherex_archive.adql import tree as t
from spherex_archive.adql.parser import parse
from spherex_archive.catalogue import spatial
from spherex_archive.catalogue.base import Catalogue
from spherex_archive.config import Settings
from spherex_archive.formats.votable import Param
from spherex_archive.ingest.rows import URI_PREFIX
from spherex_archive.model.schema import Column
from spherex_archive.services.query import QueryEngine

MEDIA_TYPE = "application/x-votable+xml;content=datalink"
"""The links document's Content-Type, spelled exactly as DataLink §3.3 (and datalinklint) want."""
STANDARD_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
SODA_STANDARD_ID = "ivo://ivoa.net/std/SODA#sync-1.0"

LINKS_PATH = "/datalink/links/spherex"
PREVIEW_PATH = "/datalink/preview/spherex"
SODA_PATH = "/soda/sync"
IBE_CUTOUT_PATH = "/ibe/cutout"

MAX_IDS = 1000
"""Ids answered per request; the rest are left for another (the document then ends with
DALI's OVERFLOW marker, and pyvo asks again for the ids it did not get)."""

ROWS_PER_ID = 64
"""Rows the lookup may find per id (one per cited calibration file; an image cites eleven):
the engine's row limit, so that no configured MAXREC limit can cut a dataset's links."""

FITS = "application/fits"
STORED_FITS = "image/fits"
"""What ingest records as an artifact's content type for FITS files (IRSA's SIA spelling)."""


def _text(name: str, description: str, ucd: str, **kw) -> Column:
    return Column(name, "char", description, ucd=ucd, **kw)


COLUMNS = (
    _text("ID", "The dataset id the link belongs to, as it was asked", "meta.id;meta.main"),
    _text("access_url", "URL of the linked file or resource", "meta.ref.url"),
    _text("service_def", "The service descriptor (RESOURCE ID) to call", "meta.ref"),
    _text("error_message", "Why no link could be made", "meta.code.error"),
    _text("semantics", "What the link is to the dataset (IVOA datalink/core)", "meta.code"),
    _text("description", "What the link leads to", "meta.note"),
    _text("content_type", "MIME type of what the link returns", "meta.code.mime"),
    Column(
        "content_length",
        "long",
        "Size of what the link returns",
        unit="byte",
        ucd="phys.size;meta.file",
    ),
    _text(
        "content_qualifier",
        "Product type of what the link returns (IVOA product-type)",
        "meta.code.class",
    ),
    _text("local_semantics", "This archive's name for the kind of link", "meta.id.assoc"),
    _text("link_auth", "Whether the link needs authentication (false: none)", "meta.code"),
    Column(
        "link_authorized", "boolean", "Whether this request may follow the link", ucd="meta.code"
    ),
)
"""The columns of DataLink 1.1 §3.2, in its order (ivoa-services §9.2)."""


@dataclass(frozen=True)
class Link:
    """One row of a links document: exactly one of access_url, service_def, error_message."""

    id: str
    semantics: str
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    description: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    content_qualifier: str | None = None
    local_semantics: str | None = None

    def row(self) -> tuple:
        """The cells in the order of :data:`COLUMNS`; every link is public (no authentication)."""
        reachable = self.error_message is None
        return (
            self.id,
            self.access_url,
            self.service_def,
            self.error_message,
            self.semantics,
            self.description,
            self.content_type,
            self.content_length,
            self.content_qualifier,
            self.local_semantics,
            "false" if reachable else None,
            True if reachable else None,
        )


@dataclass(frozen=True)
class ServiceDescriptor:
    """A ``RESOURCE type="meta" utype="adhoc:service"``: links refer to it by ``name``, its
    XML ``ID`` when ``referenced``."""

    name: str
    description: str
    access_url: str
    inputs: tuple[Param, ...]
    standard_id: str | None = None
    referenced: bool = True


@dataclass
class LinksAnswer:
    links: list[Link]
    descriptors: list[ServiceDescriptor]
    overflow: bool
    """True when ids beyond the service's cap were left unanswered."""


# --------------------------------------------------------------------------------------------
# What the catalogue says about a dataset


@dataclass(frozen=True)
class Calibration:
    family: str
    uri: str
    size: int | None
    content_type: str | None


@dataclass
class Dataset:
    """One plane and its current file, as the lookup found it."""

    did: str
    product_type: str | None
    """dataproducttype: image (spectral images) or measurements (calibration files)."""
    footprint: list[tuple[float, float]] | None
    em_min: float | None
    em_max: float | None
    pixels: tuple[int | None, int | None]
    uri: str
    size: int | None
    content_type: str | None
    calibrations: list[Calibration] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The file's key in the store and in the S3 mirror (the uri without ibe/data/spherex/)."""
        return self.uri.removeprefix(URI_PREFIX)

    @property
    def is_spectral_image(self) -> bool:
        return self.product_type == "image" and self.footprint is not None

    @property
    def has_preview(self) -> bool:
        """A FITS file holding an image the preview service can draw."""
        return self.content_type == STORED_FITS and None not in self.pixels


_LOOKUP = """
SELECT p.obs_publisher_did, p.dataproducttype, p.poly, p.energy_bounds_lower,
    p.energy_bounds_upper, p.s_xel1, p.s_xel2, a.uri, a.contentlength, a.contenttype,
    v.family, c.uri, c.contentlength, c.contenttype
FROM spherex.plane AS p
JOIN spherex.artifact AS a ON a.planeid = p.planeid AND a.is_current = 1
LEFT OUTER JOIN spherex.provenance_input AS v ON v.planeid = p.planeid
LEFT OUTER JOIN spherex.artifact AS c ON c.planeid = v.input_planeid AND c.is_current = 1
WHERE p.obs_publisher_did IN ('')
"""


@lru_cache(maxsize=1)
def _lookup_template() -> t.Query:
    """The lookup, parsed once; each request puts its ids in the IN list as string literals
    (bound parameters, never SQL text)."""
    return parse(_LOOKUP)


def lookup_query(ids: Sequence[str]) -> t.Query:
    """The query for the datasets of ``ids`` (one row per cited calibration file)."""
    query = _lookup_template()
    select = query.body
    assert isinstance(select, t.Select) and isinstance(select.where, t.InList)
    values = tuple(t.StringLiteral(i) for i in ids)
    where = dataclasses.replace(select.where, values=values)
    return dataclasses.replace(query, body=dataclasses.replace(select, where=where))


def polygon_vertices(region: str | None) -> list[tuple[float, float]] | None:
    """The vertices of a stored footprint (``POLYGON ICRS ra dec ...``, closed), without the
    repeated first one, turned counter-clockwise in (RA, Dec) as the SODA examples have them."""
    kept, _, found = spatial.polygon_arrays([region])
    if not len(kept):
        return None
    v = spatial.unit_vectors(found[:, 0], found[:, 1])
    turning = np.cross(v, np.roll(v, -1, axis=0)).sum(axis=0)
    vertices = [(ra, dec) for ra, dec in found.tolist()]
    if float(turning @ v.sum(axis=0)) < 0:
        vertices.reverse()
    return vertices


def covering_circle(vertices: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(RA, Dec, radius) in degrees of a circle holding the polygon: centred on the vertices'
    mean direction, through the farthest vertex (the farthest point of a small convex polygon),
    rounded outwards to 1e-7 degrees."""
    v = spatial.unit_vectors([p[0] for p in vertices], [p[1] for p in vertices])
    centre = v.sum(axis=0)
    centre /= np.linalg.norm(centre)
    radius = math.degrees(float(np.arccos(np.clip(v @ centre, -1.0, 1.0)).max()))
    ra, dec = spatial.to_radec(centre[None, :])
    return (
        round(float(ra[0]) % 360.0, 7),
        round(float(dec[0]), 7),
        round(math.ceil(radius * 1e7) / 1e7 + 2e-7, 7),  # the centre moved up to 1.5e-7
    )


# --------------------------------------------------------------------------------------------
# The service


def _input(name: str, datatype: str, description: str, **kw) -> Column:
    return Column(name, datatype, description, **kw)


CIRCLE = _input(
    "CIRCLE",
    "double",
    "Cut out this circle: RA Dec radius (ICRS degrees)",
    unit="deg",
    ucd="pos.outline;obs",
    arraysize="3",
    xtype="circle",
)
POLYGON = _input(
    "POLYGON",
    "double",
    "Cut out this polygon: RA Dec of each vertex (ICRS degrees)",
    unit="deg",
    ucd="pos.outline;obs",
    arraysize="*",
    xtype="polygon",
)
POS = _input(
    "POS",
    "char",
    "Cut out this region: CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2 or POLYGON ra dec ...",
    ucd="pos.outline;obs",
)
BAND = _input(
    "BAND",
    "double",
    "Keep the pixels seeing these wavelengths: lo hi (metres)",
    unit="m",
    ucd="em.wl;stat.interval",
    arraysize="2",
    xtype="interval",
)
SODA_ID = _input("ID", "char", "The dataset to cut", ucd="meta.ref.url;meta.curation")
IBE_PATH = _input("path", "char", "The file: its path below /ibe/data/spherex/", ucd="meta.ref")
IBE_CENTER = _input(
    "center",
    "char",
    "Centre of the cutout: ra,dec[units] with units deg (the default), rad, arcmin or arcsec "
    "(ICRS), or x,y in pixels with px, e.g. 210.80227,54.34895deg",
    ucd="pos.eq",
)
IBE_SIZE = _input(
    "size",
    "char",
    "Size of the cutout: w[,h][units] with units deg (the default), arcmin, arcsec, rad or px; "
    "one value for a square, the first along NAXIS1, e.g. 0.1 or 30,20arcsec",
    ucd="phys.angSize",
)
IBE_GZIP = _input(
    "gzip", "char", "Accepted as IRSA's cutouts do; the cutouts are plain FITS either way"
)


class DataLinkService:
    """Links of the datasets of one catalogue; URLs under ``settings.base_url`` and the S3
    mirror of ``settings.s3_bucket``."""

    def __init__(self, catalogue: Catalogue, settings: Settings, max_ids: int = MAX_IDS) -> None:
        self.engine = QueryEngine(
            catalogue, timeout=settings.query_timeout, max_rows=max_ids * ROWS_PER_ID
        )
        self.max_ids = max_ids
        self.base_url = settings.base_url.rstrip("/")
        self.bucket = settings.s3_bucket
        self.region = settings.s3_region
        self.endpoint = settings.s3_endpoint

    def datasets(self, ids: Sequence[str]) -> dict[str, Dataset]:
        """The released datasets among ``ids`` (matched exactly), by id."""
        ids = [i for i in ids if "\x00" not in i]  # no id holds NUL, PostgreSQL text cannot
        if not ids:
            return {}
        found: dict[str, Dataset] = {}
        answer = self.engine.run(lookup_query(ids))
        for row in answer.rows:
            did = row[0]
            dataset = found.get(did)
            if dataset is None:
                dataset = found[did] = Dataset(
                    did=did,
                    product_type=row[1],
                    footprint=polygon_vertices(row[2]),
                    em_min=row[3],
                    em_max=row[4],
                    pixels=(row[5], row[6]),
                    uri=row[7],
                    size=row[8],
                    content_type=row[9],
                )
            if row[10] is not None and row[11] is not None:  # a cited file the archive shows
                dataset.calibrations.append(Calibration(row[10], row[11], row[12], row[13]))
        if answer.overflow():  # never silently: a dataset would lose calibration links
            raise RuntimeError(f"the lookup of {len(ids)} ids found too many rows")
        for dataset in found.values():
            dataset.calibrations.sort(key=lambda c: (c.family, c.uri))
        return found

    def links(self, ids: Sequence[str]) -> LinksAnswer:
        """The links of ``ids`` in the order asked (a repeated id answered once), for at most
        ``max_ids`` of them."""
        unique = list(dict.fromkeys(ids))
        asked = unique[: self.max_ids]
        found = self.datasets(asked)
        links: list[Link] = []
        descriptors: list[ServiceDescriptor] = []
        for number, did in enumerate(asked, start=1):
            dataset = found.get(did)
            if dataset is None:
                links.append(not_found(did))
                continue
            links.extend(self.dataset_links(dataset, number, descriptors))
        return LinksAnswer(links, descriptors, overflow=len(unique) > len(asked))

    # ---- the links of one dataset

    def file_url(self, uri: str) -> str:
        """The file's URL here: the same as SIA's access_url."""
        return f"{self.base_url}/{uri}"

    def mirror_url(self, key: str) -> str:
        if self.endpoint:
            return f"{self.endpoint.rstrip('/')}/{self.bucket}/{key}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{key}"

    def preview_url(self, did: str) -> str:
        return f"{self.base_url}{PREVIEW_PATH}?ID={quote(did, safe='')}"

    def dataset_links(
        self, dataset: Dataset, number: int, descriptors: list[ServiceDescriptor]
    ) -> list[Link]:
        """The links of one dataset; the cutout services it needs are added to
        ``descriptors`` (one per dataset: their limits are the dataset's own)."""
        did = dataset.did
        content_type = _content_type(dataset.content_type)
        qualifier = f"#{dataset.product_type}" if dataset.product_type else None
        name = dataset.key.rsplit("/", 1)[-1]
        spectral = dataset.is_spectral_image
        links = [
            Link(
                did,
                "#this",
                access_url=self.file_url(dataset.uri),
                description=(
                    f"The spectral image {name}: IMAGE, FLAGS, VARIANCE, ZODI, PSF, WCS-WAVE"
                    if spectral
                    else f"The calibration file {name}"
                ),
                content_type=content_type,
                content_length=dataset.size,
                content_qualifier=qualifier,
            )
        ]
        if spectral:
            soda = self.soda_descriptor(dataset, f"soda-{number}")
            ibe = self.ibe_descriptor(dataset, f"ibe-cutout-{number}")
            descriptors += [soda, ibe]
            links += [
                Link(
                    did,
                    "#cutout",
                    service_def=soda.name,
                    description="Cutout by sky region (CIRCLE, POLYGON, POS) and wavelength "
                    "(BAND): SODA",
                    content_type=FITS,
                    content_qualifier=qualifier,
                ),
                Link(
                    did,
                    "#cutout",
                    service_def=ibe.name,
                    description="Cutout of a box around a position (center, size), all seven "
                    "HDUs: IRSA's cutout syntax",
                    content_type=FITS,
                    content_qualifier=qualifier,
                    local_semantics="ibe-cutout",
                ),
            ]
        if dataset.has_preview:
            links.append(
                Link(
                    did,
                    "#preview",
                    access_url=self.preview_url(did),
                    description="PNG quicklook of the "
                    + ("IMAGE extension" if spectral else "first image extension"),
                    content_type="image/png",
                )
            )
        for calibration in dataset.calibrations:
            file = calibration.uri.rsplit("/", 1)[-1]
            links.append(
                Link(
                    did,
                    "#calibration",
                    access_url=self.file_url(calibration.uri),
                    description=f"The {calibration.family} calibration file {file}, cited by "
                    "this image's HISTORY [CALIB] cards",
                    content_type=_content_type(calibration.content_type),
                    content_length=calibration.size,
                )
            )
        links.append(
            Link(
                did,
                "#auxiliary",
                access_url=self.mirror_url(dataset.key),
                description=f"The same file in the S3 mirror: s3://{self.bucket}/{dataset.key} "
                f"(region {self.region}, anonymous access)",
                content_type=content_type,
                content_length=dataset.size,
                content_qualifier=qualifier,
                local_semantics="s3-mirror",
            )
        )
        return links

    def soda_descriptor(self, dataset: Dataset, name: str) -> ServiceDescriptor:
        """SODA sync cutouts of this image, bounded by its footprint and wavelengths. ID is a
        fixed value, so a client holding only this document (pyvo's ``processed()`` on an
        ObsCore row) can call it."""
        footprint = dataset.footprint or []
        flat = tuple(x for vertex in footprint for x in vertex)
        return ServiceDescriptor(
            name=name,
            description=f"SODA cutouts of {dataset.did}",
            access_url=self.base_url + SODA_PATH,
            standard_id=SODA_STANDARD_ID,
            inputs=(
                Param(SODA_ID, dataset.did),
                Param(CIRCLE, maximum=covering_circle(footprint)),
                Param(POLYGON, maximum=flat),
                Param(POS),
                Param(BAND, minimum=dataset.em_min, maximum=dataset.em_max),
            ),
        )

    def ibe_descriptor(self, dataset: Dataset, name: str) -> ServiceDescriptor:
        """IRSA's cutout syntax (spec §3) for this file."""
        return ServiceDescriptor(
            name=name,
            description=f"IRSA-style cutouts of {dataset.did}",
            access_url=self.base_url + IBE_CUTOUT_PATH,
            inputs=(
                Param(IBE_PATH, dataset.key),
                Param(IBE_CENTER),
                Param(IBE_SIZE),
                Param(IBE_GZIP, options=("false", "true")),
            ),
        )


def not_found(did: str) -> Link:
    return Link(
        did,
        "#this",
        error_message=f"NotFoundFault: no released dataset has the id {did!r}",
    )


def _content_type(stored: str | None) -> str | None:
    """DataLink's MIME type for a stored one: FITS files as ``application/fits``."""
    return FITS if stored == STORED_FITS else stored
