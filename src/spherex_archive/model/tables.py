"""The archive's tables: CAOM-style stored tables, the ObsCore views over them, TAP_SCHEMA.

Column names follow what real clients of IRSA send (spec §5.1-5.2); ObsCore columns carry the
units, UCDs and utypes of ObsCore 1.1 (ivoa-services §8).
"""

from __future__ import annotations

from spherex_archive.model.schema import Column, ForeignKey, Schema, Table

C = Column


def _text(name: str, description: str, **kw) -> Column:
    return Column(name, "char", description, **kw)


OBSCORE_UTYPE = "ivo://ivoa.net/std/ObsCore#core-1.1"
OBSCORE_DATA_MODEL = "ivo://ivoa.net/std/ObsCore#core-1.1"

SCHEMAS = (
    Schema(
        "spherex",
        "SPHEREx spectral images and calibration files (CAOM-style tables and their ObsCore view).",
    ),
    Schema("ivoa", "IVOA standard tables: ObsCore 1.1 over every collection of this archive."),
    Schema("caom", "CAOM views of observations and planes, as IRSA's clients query them."),
    Schema("tap_schema", "Metadata of every table and column of this service (TAP 1.1)."),
)

# --------------------------------------------------------------------------------------------
# Stored tables

OBSERVATION = Table(
    "spherex",
    "observation",
    "One SPHEREx exposure (all six detectors), or one calibration product.",
    (
        C(
            "obsid",
            "long",
            "Observation key (joins plane.obsid)",
            ucd="meta.id;meta.main",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        _text(
            "observationid",
            "Observation id: the exposure's OBSID, e.g. 2025W51_1A_0684_2, "
            "or the calibration file's name",
            ucd="meta.id",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        _text(
            "collection",
            "Collection: spherex_qr2 (wide), spherex_qr2_deep or spherex_qr2_cal",
            ucd="meta.id",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        _text("intent", "science or calibration", ucd="meta.code"),
        _text("type", "exposure or calibration", ucd="meta.code.class"),
        _text("algorithm_name", "How the observation was made", ucd="meta.code"),
        _text("planning_period", "Survey planning period, e.g. 2025W51_1A", ucd="meta.id"),
        C("large_slew", "int", "Large-slew counter within the planning period", ucd="meta.number"),
        C("small_slew", "int", "Small-slew counter within the large slew (1-4)", ucd="meta.number"),
        _text("target_name", "Survey planning target, SPS_<SPS_TARGET>", ucd="meta.id;src"),
        _text("telescope_name", "SPHEREx", ucd="meta.id;instr.tel"),
        _text("instrument_name", "SPHEREx", ucd="meta.id;instr"),
        _text("proposal_project", "SPHEREx", ucd="meta.id;obs.proposal"),
        _text("proposal_title", "SPHEREx LVF Survey Data", ucd="meta.title;obs.proposal"),
    ),
    primary_key=("obsid",),
)

PLANE = Table(
    "spherex",
    "plane",
    "One detector image of an exposure (or one calibration file): footprint, time, energy, "
    "calibration level, versions and release date. Only released planes are visible.",
    (
        C(
            "planeid",
            "long",
            "Plane key (joins artifact.planeid)",
            ucd="meta.id;meta.main",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        C("obsid", "long", "Observation key", ucd="meta.id", indexed=True, nullable=False),
        _text(
            "obs_publisher_did",
            "Publisher's IVOA dataset id, e.g. ivo://irsa.ipac/spherex_qr2?2025W51_1A_0684_2/D3",
            ucd="meta.ref.ivoid",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        _text(
            "productid",
            "Product within the observation: D<detector> or the file name",
            ucd="meta.id",
        ),
        _text(
            "dataproducttype",
            "image, or measurements for calibration files",
            ucd="meta.code.class",
            principal=True,
        ),
        _text("dataproductsubtype", "science or calibration", ucd="meta.code.class"),
        C(
            "calibrationlevel",
            "short",
            "Calibration level (2 for spectral images)",
            ucd="meta.code;obs.calib",
            principal=True,
        ),
        C(
            "detector",
            "short",
            "Detector 1-6 (1-3 SWIR, 4-6 MWIR)",
            ucd="meta.id;instr.det",
            indexed=True,
            principal=True,
        ),
        _text(
            "energy_bandpassname",
            "SPHEREx-D1 ... SPHEREx-D6",
            ucd="instr.bandpass",
            indexed=True,
            principal=True,
        ),
        C(
            "energy_bounds_lower",
            "double",
            "Shortest wavelength of the detector",
            unit="m",
            ucd="em.wl;stat.min",
            principal=True,
        ),
        C(
            "energy_bounds_upper",
            "double",
            "Longest wavelength of the detector",
            unit="m",
            ucd="em.wl;stat.max",
            principal=True,
        ),
        C("energy_resolvingpower", "double", "Spectral resolving power", ucd="spect.resolution"),
        C(
            "time_bounds_lower",
            "double",
            "Start of the exposure (MJD-BEG, UTC)",
            unit="d",
            ucd="time.start;obs.exposure",
            indexed=True,
            principal=True,
        ),
        C(
            "time_bounds_upper",
            "double",
            "End of the exposure (MJD-END, UTC)",
            unit="d",
            ucd="time.end;obs.exposure",
            principal=True,
        ),
        C(
            "time_exposure",
            "double",
            "Integration time (XPOSURE)",
            unit="s",
            ucd="time.duration;obs.exposure",
        ),
        C(
            "s_ra",
            "double",
            "Right ascension of the image centre (ICRS)",
            unit="deg",
            ucd="pos.eq.ra;meta.main",
            principal=True,
            indexed=True,
        ),
        C(
            "s_dec",
            "double",
            "Declination of the image centre (ICRS)",
            unit="deg",
            ucd="pos.eq.dec;meta.main",
            principal=True,
            indexed=True,
        ),
        _text(
            "poly",
            "Footprint: the outer pixel corners from the celestial WCS with SIP",
            ucd="pos.outline;obs.field",
            xtype="adql:REGION",
            indexed=True,
            principal=True,
        ),
        C(
            "s_fov",
            "double",
            "Diameter of the field of view",
            unit="deg",
            ucd="phys.angSize;instr.fov",
        ),
        C("s_pixel_scale", "double", "Pixel scale", unit="arcsec", ucd="instr.scale"),
        C("s_xel1", "long", "Pixels along the first axis", ucd="meta.number"),
        C("s_xel2", "long", "Pixels along the second axis", ucd="meta.number"),
        C(
            "psf_fwhm",
            "double",
            "PSF full width at half maximum (PSF_FWHM)",
            unit="arcsec",
            ucd="phys.angSize;instr.psf",
        ),
        _text(
            "provenance_version",
            "Pipeline version (PRIMARY VERSION), e.g. 6.5.6",
            ucd="meta.version",
        ),
        C(
            "product_version",
            "short",
            "Level-2 product version: the vNN of l2b-vNN",
            ucd="meta.version",
        ),
        _text(
            "processing_date",
            "Processing day of the product (from its name)",
            ucd="time.processing",
            xtype="timestamp",
        ),
        _text("quality_flag", "Level-2 quality assessment (L2DQAFLG)", ucd="meta.code.qual"),
        C(
            "metrics_background",
            "double",
            "Background level, when measured",
            unit="MJy/sr",
            ucd="phot.flux.sb;instr.background",
        ),
        C(
            "metrics_maglimit",
            "double",
            "Limiting magnitude, when measured",
            unit="mag",
            ucd="phot.mag;stat.max",
        ),
        _text(
            "calibration_uuid",
            "For a calibration file: the id images cite in their HISTORY [CALIB] cards",
            ucd="meta.id",
        ),
        _text(
            "release_date",
            "When the plane became (or becomes) public",
            ucd="time.release",
            xtype="timestamp",
        ),
        _text(
            "ingest_date",
            "When the plane was ingested or last updated",
            ucd="time.processing",
            xtype="timestamp",
        ),
    ),
    primary_key=("planeid",),
    foreign_keys=(
        ForeignKey(("obsid",), "spherex.observation", ("obsid",), "Plane of an observation"),
    ),
)

ARTIFACT = Table(
    "spherex",
    "artifact",
    "One file of a plane, every product version kept; is_current marks the one the views show.",
    (
        C(
            "artifactid",
            "long",
            "Artifact key",
            ucd="meta.id;meta.main",
            principal=True,
            nullable=False,
        ),
        C(
            "planeid",
            "long",
            "Plane key",
            ucd="meta.id",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        _text(
            "uri",
            "Path of the file below the archive root, e.g. "
            "ibe/data/spherex/qr2/level2/.../level2_...fits (no leading slash)",
            ucd="meta.ref.url",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        _text("producttype", "science, calibration or auxiliary", ucd="meta.code.class"),
        _text("contenttype", "MIME type", ucd="meta.code.mime"),
        _text("contentchecksum", "MD5 of the file, md5:<hex>", ucd="meta.checksum"),
        C("contentlength", "long", "File size", unit="byte", ucd="phys.size;meta.file"),
        C("product_version", "short", "Level-2 product version (vNN)", ucd="meta.version"),
        C("is_current", "short", "1 for the newest product version of its plane", ucd="meta.code"),
        _text(
            "ingest_date", "When the file was ingested", ucd="time.processing", xtype="timestamp"
        ),
    ),
    primary_key=("artifactid",),
    foreign_keys=(ForeignKey(("planeid",), "spherex.plane", ("planeid",), "File of a plane"),),
)

PROVENANCE_INPUT = Table(
    "spherex",
    "provenance_input",
    "Which calibration files made each spectral image (from its HISTORY [CALIB] cards).",
    (
        C(
            "planeid",
            "long",
            "Plane key of the spectral image",
            ucd="meta.id",
            indexed=True,
            principal=True,
            nullable=False,
        ),
        C(
            "input_planeid",
            "long",
            "Plane key of the calibration file (NULL if the archive does not hold it)",
            ucd="meta.id",
            indexed=True,
            principal=True,
        ),
        _text(
            "family", "Calibration family, e.g. dark, spectral_wcs", ucd="meta.code", principal=True
        ),
        _text("input_uuid", "Calibration file id cited by the image", ucd="meta.id"),
    ),
    foreign_keys=(
        ForeignKey(("planeid",), "spherex.plane", ("planeid",), "The image"),
        ForeignKey(("input_planeid",), "spherex.plane", ("planeid",), "The calibration file"),
    ),
)

# --------------------------------------------------------------------------------------------
# ObsCore


def _oc(name, datatype, ucd, utype, description, unit=None, std=True, nullable=True, **kw):
    return Column(
        name,
        datatype,
        description,
        unit=unit,
        ucd=ucd,
        utype=f"obscore:{utype}" if utype else None,
        std=std,
        principal=True,
        nullable=nullable,
        **kw,
    )


# Columns of ObsCore 1.1 (mandatory first), by name, with their standard metadata.
OBSCORE_COLUMNS: dict[str, Column] = {
    c.name: c
    for c in (
        _oc(
            "dataproduct_type",
            "char",
            "meta.code.class",
            "ObsDataset.dataProductType",
            "Data product type: image (spectral images) or measurements (calibration)",
        ),
        _oc(
            "calib_level",
            "short",
            "meta.code;obs.calib",
            "ObsDataset.calibLevel",
            "Calibration level: 2 for spectral images",
            nullable=False,
        ),
        _oc(
            "obs_collection",
            "char",
            "meta.id",
            "DataID.Collection",
            "Collection: spherex_qr2, spherex_qr2_deep or spherex_qr2_cal",
            nullable=False,
            indexed=True,
        ),
        _oc(
            "obs_id",
            "char",
            "meta.id",
            "DataID.observationID",
            "Observation id (OBSID), the same for the six detectors of an exposure",
            nullable=False,
            indexed=True,
        ),
        _oc(
            "obs_publisher_did",
            "char",
            "meta.ref.ivoid",
            "Curation.PublisherDID",
            "Publisher's dataset id: one per detector image",
            nullable=False,
            indexed=True,
        ),
        _oc(
            "access_url",
            "char",
            "meta.ref.url",
            "Access.Reference",
            "DataLink document of the dataset (the file, cutouts, calibration files)",
        ),
        _oc(
            "access_format",
            "char",
            "meta.code.mime",
            "Access.Format",
            "Format of what access_url returns",
        ),
        _oc(
            "access_estsize",
            "long",
            "phys.size;meta.file",
            "Access.Size",
            "Size of the file",
            unit="kbyte",
        ),
        _oc(
            "target_name", "char", "meta.id;src", "Target.Name", "Survey planning target, SPS_<id>"
        ),
        _oc(
            "s_ra",
            "double",
            "pos.eq.ra",
            "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
            "Right ascension of the image centre (ICRS)",
            unit="deg",
            indexed=True,
        ),
        _oc(
            "s_dec",
            "double",
            "pos.eq.dec",
            "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
            "Declination of the image centre (ICRS)",
            unit="deg",
            indexed=True,
        ),
        _oc(
            "s_fov",
            "double",
            "phys.angSize;instr.fov",
            "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
            "Diameter of the field of view",
            unit="deg",
        ),
        _oc(
            "s_region",
            "char",
            "pos.outline;obs.field",
            "Char.SpatialAxis.Coverage.Support.Area",
            "Footprint polygon (outer pixel corners), ICRS",
            xtype="adql:REGION",
            indexed=True,
        ),
        _oc(
            "s_resolution",
            "double",
            "pos.angResolution",
            "Char.SpatialAxis.Resolution.Refval.value",
            "Spatial resolution (half a pixel, as IRSA gives it)",
            unit="arcsec",
        ),
        _oc(
            "s_xel1",
            "long",
            "meta.number",
            "Char.SpatialAxis.numBins1",
            "Pixels along the first axis",
        ),
        _oc(
            "s_xel2",
            "long",
            "meta.number",
            "Char.SpatialAxis.numBins2",
            "Pixels along the second axis",
        ),
        _oc(
            "t_min",
            "double",
            "time.start;obs.exposure",
            "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
            "Start of the exposure (MJD, UTC)",
            unit="d",
            indexed=True,
        ),
        _oc(
            "t_max",
            "double",
            "time.end;obs.exposure",
            "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
            "End of the exposure (MJD, UTC)",
            unit="d",
        ),
        _oc(
            "t_exptime",
            "double",
            "time.duration;obs.exposure",
            "Char.TimeAxis.Coverage.Support.Extent",
            "Integration time",
            unit="s",
        ),
        _oc(
            "t_resolution",
            "double",
            "time.resolution",
            "Char.TimeAxis.Resolution.Refval.value",
            "Time resolution (not applicable)",
            unit="s",
        ),
        _oc("t_xel", "long", "meta.number", "Char.TimeAxis.numBins", "Time bins (not applicable)"),
        _oc(
            "em_min",
            "double",
            "em.wl;stat.min",
            "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
            "Shortest wavelength of the detector",
            unit="m",
        ),
        _oc(
            "em_max",
            "double",
            "em.wl;stat.max",
            "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
            "Longest wavelength of the detector",
            unit="m",
        ),
        _oc(
            "em_res_power",
            "double",
            "spect.resolution",
            "Char.SpectralAxis.Resolution.ResolPower.refVal",
            "Spectral resolving power",
        ),
        _oc(
            "em_xel",
            "long",
            "meta.number",
            "Char.SpectralAxis.numBins",
            "Spectral bins (not applicable: the wavelength varies across the image)",
        ),
        _oc("o_ucd", "char", "meta.ucd", "Char.ObservableAxis.ucd", "UCD of the observable"),
        _oc(
            "pol_states",
            "char",
            "meta.code;phys.polarization",
            "Char.PolarizationAxis.stateList",
            "Polarization states (none)",
        ),
        _oc(
            "pol_xel",
            "long",
            "meta.number",
            "Char.PolarizationAxis.numBins",
            "Polarization bins (none)",
        ),
        _oc(
            "facility_name",
            "char",
            "meta.id;instr.tel",
            "Provenance.ObsConfig.Facility.name",
            "Facility: SPHEREx",
        ),
        _oc(
            "instrument_name",
            "char",
            "meta.id;instr",
            "Provenance.ObsConfig.Instrument.name",
            "Instrument: SPHEREx",
        ),
        # optional standard columns
        _oc(
            "dataproduct_subtype",
            "char",
            "meta.code.class",
            "ObsDataset.dataProductSubtype",
            "science or calibration",
        ),
        _oc(
            "obs_release_date",
            "char",
            "time.release",
            "Curation.releaseDate",
            "When the dataset became public",
            xtype="timestamp",
        ),
        _oc(
            "s_pixel_scale",
            "double",
            "phys.angSize;instr.pixel",
            "Char.SpatialAxis.Sampling.RefVal.SamplingPeriod",
            "Pixel scale",
            unit="arcsec",
        ),
        _oc(
            "proposal_id",
            "char",
            "meta.id;obs.proposal",
            "Provenance.Proposal.identifier",
            "Proposal id (none)",
        ),
        _oc("obs_title", "char", "meta.title;obs", "DataID.title", "Title of the dataset"),
        _oc("data_rights", "char", "meta.code", "Curation.rights", "public"),
    )
}


def _custom(name, datatype, description, ucd=None, unit=None, **kw) -> Column:
    return Column(name, datatype, description, unit=unit, ucd=ucd, principal=True, **kw)


SPHEREX_OBSCORE_EXTRA = {
    c.name: c
    for c in (
        _custom(
            "energy_bandpassname",
            "char",
            "SPHEREx-D1 ... SPHEREx-D6",
            "instr.bandpass",
            indexed=True,
        ),
        _custom("energy_emband", "char", "Infrared", "instr.bandpass"),
        _custom("proposal_title", "char", "SPHEREx LVF Survey Data", "meta.title;obs.proposal"),
        _custom("obs_intent", "char", "science or calibration", "meta.code"),
        _custom("algorithm_name", "char", "How the dataset was made: exposure", "meta.code"),
        _custom("facility_keywords", "char", "Facility keywords (none)", "meta.keyword"),
        _custom("instrument_keywords", "char", "Instrument keywords (none)", "meta.keyword"),
        _custom(
            "environment_photometric",
            "boolean",
            "Photometric conditions (not applicable)",
            "meta.code.qual",
        ),
        _custom("proposal_pi", "char", "Principal investigator (none)", "meta.id.PI"),
        _custom("proposal_project", "char", "SPHEREx", "meta.id;obs.proposal"),
        _custom("target_type", "char", "field", "src.class"),
        _custom("target_standard", "short", "1 if the target is a standard (0)", "meta.code"),
        _custom("target_moving", "short", "1 if the target moves (0)", "meta.code"),
        _custom("target_keywords", "char", "Target keywords (none)", "meta.keyword"),
        _custom(
            "position_timedependent", "short", "1 if positions depend on time (0)", "meta.code"
        ),
        _custom(
            "cloud_access",
            "char",
            "Where the file is in the cloud: JSON "
            '{"aws": {"bucket_name": ..., "key": ..., "region": ...}}',
            "meta.ref.url",
        ),
        _custom(
            "upload_row_id",
            "long",
            "Row of the uploaded position list a result row matches (SIA; NULL here)",
            "meta.id",
        ),
    )
}

SPHEREX_OBSCORE_ORDER = (
    "s_ra",
    "s_dec",
    "facility_name",
    "instrument_name",
    "dataproduct_subtype",
    "calib_level",
    "dataproduct_type",
    "energy_bandpassname",
    "energy_emband",
    "obs_id",
    "s_resolution",
    "em_min",
    "em_max",
    "em_res_power",
    "proposal_title",
    "access_url",
    "access_format",
    "access_estsize",
    "t_exptime",
    "s_region",
    "obs_collection",
    "obs_intent",
    "algorithm_name",
    "facility_keywords",
    "instrument_keywords",
    "environment_photometric",
    "proposal_id",
    "proposal_pi",
    "proposal_project",
    "target_name",
    "target_type",
    "target_standard",
    "target_moving",
    "target_keywords",
    "obs_release_date",
    "s_xel1",
    "s_xel2",
    "s_pixel_scale",
    "position_timedependent",
    "t_min",
    "t_max",
    "t_resolution",
    "t_xel",
    "obs_publisher_did",
    "s_fov",
    "em_xel",
    "pol_states",
    "pol_xel",
    "cloud_access",
    "o_ucd",
    "upload_row_id",
)
"""The 51 columns of IRSA's SIA answer, in its order (spec §5.1)."""

SPHEREX_OBSCORE_CONSTANTS: dict[str, str | int | None] = {
    "facility_name": "SPHEREx",
    "instrument_name": "SPHEREx",
    "energy_emband": "Infrared",
    "facility_keywords": None,
    "instrument_keywords": None,
    "environment_photometric": None,
    "proposal_id": None,
    "proposal_pi": None,
    "target_type": "field",
    "target_standard": 0,
    "target_moving": 0,
    "target_keywords": None,
    "position_timedependent": 0,
    "t_resolution": None,
    "t_xel": None,
    "em_xel": None,
    "pol_states": None,
    "pol_xel": None,
    "o_ucd": None,
    "upload_row_id": None,
}
"""spherex.obscore columns with one value for every SPHEREx dataset (spec §5.1): the view
writes them as literals, and SIA fills them in without asking the database for them."""

_ALL_OBSCORE = {**OBSCORE_COLUMNS, **SPHEREX_OBSCORE_EXTRA}

SPHEREX_OBSCORE = Table(
    "spherex",
    "obscore",
    "ObsCore view of SPHEREx spectral images and calibration files: the columns of IRSA's "
    "SIA answer, in its order. access_url points at the DataLink document.",
    tuple(_ALL_OBSCORE[name] for name in SPHEREX_OBSCORE_ORDER),
    kind="view",
    utype=OBSCORE_UTYPE,
)

IVOA_OBSCORE_ORDER = list(OBSCORE_COLUMNS)

IVOA_OBSCORE = Table(
    "ivoa",
    "obscore",
    "ObsCore 1.1 table of every dataset of this archive.",
    tuple(OBSCORE_COLUMNS[name] for name in IVOA_OBSCORE_ORDER),
    kind="view",
    utype=OBSCORE_UTYPE,
)

CAOM_OBSERVATION = Table(
    "caom",
    "observation",
    "CAOM observations of every collection (astroquery's Irsa.list_collections reads it).",
    (
        OBSERVATION.column("obsid"),
        OBSERVATION.column("collection"),
        OBSERVATION.column("observationid"),
        OBSERVATION.column("intent"),
        OBSERVATION.column("type"),
        OBSERVATION.column("telescope_name"),
        OBSERVATION.column("instrument_name"),
    ),
    kind="view",
)

CAOM_PLANE = Table(
    "caom",
    "plane",
    "CAOM planes of every collection.",
    tuple(
        PLANE.column(n)
        for n in (
            "planeid",
            "obsid",
            "obs_publisher_did",
            "dataproducttype",
            "calibrationlevel",
            "energy_bandpassname",
            "energy_bounds_lower",
            "energy_bounds_upper",
            "time_bounds_lower",
            "time_bounds_upper",
            "poly",
        )
    ),
    kind="view",
)

# --------------------------------------------------------------------------------------------
# TAP_SCHEMA (TAP 1.1 §4), described by itself

_T = _text
TAP_SCHEMA_TABLES = (
    Table(
        "tap_schema",
        "schemas",
        "Schemas of this service",
        (
            _T("schema_name", "Schema name", nullable=False, principal=True, std=True),
            _T("utype", "Utype of the schema", std=True),
            _T("description", "Description", principal=True, std=True),
            C("schema_index", "int", "Order in which to show schemas", std=True),
        ),
        primary_key=("schema_name",),
    ),
    Table(
        "tap_schema",
        "tables",
        "Tables of this service",
        (
            _T(
                "schema_name",
                "Schema the table belongs to",
                nullable=False,
                principal=True,
                std=True,
            ),
            _T("table_name", "Qualified table name", nullable=False, principal=True, std=True),
            _T("table_type", "table or view", nullable=False, principal=True, std=True),
            _T("utype", "Utype of the table", std=True),
            _T("description", "Description", principal=True, std=True),
            C("table_index", "int", "Order in which to show tables", std=True),
        ),
        primary_key=("table_name",),
        foreign_keys=(ForeignKey(("schema_name",), "tap_schema.schemas", ("schema_name",)),),
    ),
    Table(
        "tap_schema",
        "columns",
        "Columns of every table of this service",
        (
            _T("table_name", "Qualified table name", nullable=False, principal=True, std=True),
            _T("column_name", "Column name", nullable=False, principal=True, std=True),
            _T("datatype", "VOTable datatype", nullable=False, principal=True, std=True),
            _T("arraysize", "VOTable arraysize", std=True),
            _T("xtype", "VOTable xtype", std=True),
            C("size", "int", "Deprecated: length of a fixed-size column", std=True),
            _T("description", "Description", principal=True, std=True),
            _T("utype", "Utype", std=True),
            _T("unit", "Unit (VOUnit)", principal=True, std=True),
            _T("ucd", "UCD", principal=True, std=True),
            C("indexed", "int", "1 if the column is indexed", nullable=False, std=True),
            C("principal", "int", "1 if the column is of main interest", nullable=False, std=True),
            C("std", "int", "1 if a standard defines the column", nullable=False, std=True),
            C("column_index", "int", "Order in which to show columns", std=True),
        ),
        primary_key=("table_name", "column_name"),
        foreign_keys=(ForeignKey(("table_name",), "tap_schema.tables", ("table_name",)),),
    ),
    Table(
        "tap_schema",
        "keys",
        "Foreign keys between tables",
        (
            _T("key_id", "Key id", nullable=False, principal=True, std=True),
            _T("from_table", "Table holding the key", nullable=False, principal=True, std=True),
            _T("target_table", "Table the key refers to", nullable=False, principal=True, std=True),
            _T("utype", "Utype", std=True),
            _T("description", "Description", principal=True, std=True),
        ),
        primary_key=("key_id",),
        foreign_keys=(
            ForeignKey(("from_table",), "tap_schema.tables", ("table_name",)),
            ForeignKey(("target_table",), "tap_schema.tables", ("table_name",)),
        ),
    ),
    Table(
        "tap_schema",
        "key_columns",
        "Columns of the foreign keys",
        (
            _T("key_id", "Key id", nullable=False, principal=True, std=True),
            _T("from_column", "Column in from_table", nullable=False, principal=True, std=True),
            _T("target_column", "Column in target_table", nullable=False, principal=True, std=True),
        ),
        foreign_keys=(ForeignKey(("key_id",), "tap_schema.keys", ("key_id",)),),
    ),
)

STORED_TABLES = (OBSERVATION, PLANE, ARTIFACT, PROVENANCE_INPUT)
VIEWS = (SPHEREX_OBSCORE, IVOA_OBSCORE, CAOM_OBSERVATION, CAOM_PLANE)
PUBLIC_TABLES = (*STORED_TABLES, *VIEWS, *TAP_SCHEMA_TABLES)
TABLES = {t.qualified: t for t in PUBLIC_TABLES}


def table(qualified: str) -> Table:
    """The table of this name (case-insensitive); ``KeyError`` with the known names."""
    for name, found in TABLES.items():
        if name.lower() == qualified.lower():
            return found
    raise KeyError(f"no table {qualified!r}; tables are: {', '.join(TABLES)}")
