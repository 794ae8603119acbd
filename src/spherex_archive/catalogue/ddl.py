"""Schema of the catalogue database, generated from the model for one SQL dialect.

Stored data lives in internal tables (``archive.*`` on PostgreSQL, ``archive_*`` on SQLite);
every public table, including the CAOM ones, is a view over them that hides planes whose
release date has not come: the embargo is enforced here once, not by each protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from spherex_archive.catalogue import zones
from spherex_archive.model import tables as model
from spherex_archive.model.schema import Column, Table

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Dialect:
    name: str
    """``sqlite`` or ``postgresql``."""

    def internal(self, name: str) -> str:
        """Physical name of an internal table (``plane`` -> archive.plane / archive_plane)."""
        return f"archive.{name}" if self.name == "postgresql" else f"archive_{name}"

    def public(self, qualified: str) -> str:
        """Physical name of a public table or view (``spherex.plane``)."""
        schema, name = qualified.lower().split(".")
        return f"{schema}.{name}" if self.name == "postgresql" else f"{schema}__{name}"

    def sql_type(self, column: Column) -> str:
        if column.is_timestamp:
            return "TIMESTAMP" if self.name == "postgresql" else "TEXT"
        return {
            "boolean": "BOOLEAN",
            "short": "SMALLINT",
            "int": "INTEGER",
            "long": "BIGINT",
            "float": "REAL",
            "double": "DOUBLE PRECISION",
            "char": "TEXT",
            "unicodeChar": "TEXT",
        }[column.datatype]

    @property
    def now(self) -> str:
        """The current UTC time, comparable with stored timestamps."""
        if self.name == "postgresql":
            return "(now() AT TIME ZONE 'UTC')"
        return "strftime('%Y-%m-%d %H:%M:%S', 'now')"

    @property
    def blob(self) -> str:
        return "BYTEA" if self.name == "postgresql" else "BLOB"

    def config(self, key: str) -> str:
        return f"(SELECT value FROM {self.internal('config')} WHERE key = '{key}')"


def _create_table(dialect: Dialect, name: str, table: Table, extra: list[str]) -> str:
    columns = [
        f"{c.name} {dialect.sql_type(c)}{'' if c.nullable else ' NOT NULL'}" for c in table.columns
    ]
    columns += extra
    if table.primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  " + ",\n  ".join(columns) + "\n)"


def stored_tables(dialect: Dialect) -> list[str]:
    """DDL of the internal tables, without spatial extras (the backends add those)."""
    # PostgreSQL keeps the footprint in the plane (GiST-indexed spoly); SQLite keeps it in the
    # zones index's rows (``zones.py``), so a spatial search never leaves the index.
    footprint = ["footprint spoly"] if dialect.name == "postgresql" else []
    i = dialect.internal
    statements = [
        f"CREATE TABLE IF NOT EXISTS {i('config')} (key TEXT PRIMARY KEY, value TEXT)",
        _create_table(dialect, i("observation"), model.OBSERVATION, []),
        _create_table(dialect, i("plane"), model.PLANE, footprint),
        _create_table(dialect, i("artifact"), model.ARTIFACT, []),
        _create_table(
            dialect,
            i("provenance_input"),
            model.PROVENANCE_INPUT,
            ["PRIMARY KEY (planeid, family)"],
        ),
        f"CREATE TABLE IF NOT EXISTS {i('delivery')} (path TEXT PRIMARY KEY, files INTEGER, "
        f"planes INTEGER, rejected INTEGER, ingested_at TEXT)",
        f"CREATE TABLE IF NOT EXISTS {i('moc')} (collection TEXT PRIMARY KEY, moc TEXT, "
        f"planes BIGINT, updated_at TEXT, pending_until TEXT)",
        # Released images touching each HEALPix cell (ingest/coverage.py: COUNT_DEPTH).
        f"CREATE TABLE IF NOT EXISTS {i('coverage_count')} (collection TEXT, cell BIGINT, "
        f"images INTEGER, PRIMARY KEY (collection, cell)){_half_full(dialect)}",
        f"CREATE UNIQUE INDEX IF NOT EXISTS plane_did ON {i('plane')} (obs_publisher_did)",
        f"CREATE INDEX IF NOT EXISTS plane_obsid ON {i('plane')} (obsid)",
        f"CREATE INDEX IF NOT EXISTS plane_time ON {i('plane')} (time_bounds_lower)",
        f"CREATE INDEX IF NOT EXISTS plane_band ON {i('plane')} (energy_bandpassname)",
        f"CREATE INDEX IF NOT EXISTS plane_release ON {i('plane')} (release_date)",
        f"CREATE INDEX IF NOT EXISTS artifact_plane ON {i('artifact')} (planeid, is_current)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS artifact_uri ON {i('artifact')} (uri)",
        f"CREATE INDEX IF NOT EXISTS observation_id ON {i('observation')} (observationid)",
        f"CREATE INDEX IF NOT EXISTS observation_collection ON {i('observation')} (collection)",
        f"CREATE INDEX IF NOT EXISTS provenance_input ON {i('provenance_input')} (input_planeid)",
    ]
    statements = _index_names(dialect, statements)
    # Image centres, for cone searches on (s_ra, s_dec): a GiST index of the points on
    # PostgreSQL, on SQLite the zones of ``zones.centre_zone_sql``, then RA.
    if dialect.name == "postgresql":
        statements += [
            f"CREATE INDEX IF NOT EXISTS archive_plane_footprint ON {i('plane')} "
            f"USING gist (footprint)",
            f"CREATE INDEX IF NOT EXISTS archive_plane_centre ON {i('plane')} "
            f"USING gist ({CENTRE_POINT_PG})",
        ]
    else:
        statements.append(
            f"CREATE INDEX IF NOT EXISTS plane_centre ON {i('plane')} "
            f"({zones.centre_zone_sql('s_dec')}, s_ra)"
        )
    return [*statements, *job_tables(dialect)]


CENTRE_POINT_PG = "spoint(radians(s_ra), radians(s_dec))"
"""The expression of PostgreSQL's centre index: searches write it so (on the plane's columns,
through any view) for the planner to use the index."""


def _half_full(dialect: Dialect) -> str:
    # Every ingest adds to thousands of counts. On PostgreSQL, with room left on each page the
    # new version of a row stays on its page and the key's index is not touched (a "HOT"
    # update): half the time of an update.
    return " WITH (fillfactor = 50)" if dialect.name == "postgresql" else ""


def _index_names(dialect: Dialect, statements: list[str]) -> list[str]:
    # PostgreSQL index names live in the schema's namespace beside the tables' names.
    if dialect.name != "postgresql":
        return statements
    return [s.replace("INDEX IF NOT EXISTS ", "INDEX IF NOT EXISTS archive_") for s in statements]


def job_tables(dialect: Dialect) -> list[str]:
    """DDL of the async (UWS) job records (``jobs/store.py``). Times are text in one fixed
    ISO-8601 form ending in ``Z``, which sorts as time does and is what UWS documents show;
    parameters, uploads and results are JSON. ``job_runner`` holds one row per serving process
    with a heartbeat, so a process that starts can tell which EXECUTING jobs lost theirs."""
    i = dialect.internal
    return _index_names(
        dialect,
        [
            f"CREATE TABLE IF NOT EXISTS {i('job')} (job_id TEXT PRIMARY KEY, "
            "kind TEXT NOT NULL, run_id TEXT, owner TEXT, client TEXT NOT NULL, "
            "phase TEXT NOT NULL, creation_time TEXT NOT NULL, queued_time TEXT, "
            "start_time TEXT, end_time TEXT, execution_duration INTEGER NOT NULL, "
            "destruction TEXT NOT NULL, parameters TEXT NOT NULL, uploads TEXT NOT NULL, "
            "results TEXT NOT NULL, error_message TEXT, error_type TEXT, info TEXT, "
            "runner TEXT)",
            f"CREATE INDEX IF NOT EXISTS job_list ON {i('job')} (kind, creation_time)",
            f"CREATE INDEX IF NOT EXISTS job_phase ON {i('job')} (phase, queued_time)",
            f"CREATE INDEX IF NOT EXISTS job_destruction ON {i('job')} (destruction)",
            f"CREATE TABLE IF NOT EXISTS {i('job_runner')} (runner TEXT PRIMARY KEY, "
            "host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat TEXT NOT NULL)",
        ],
    )


def tap_schema_tables(dialect: Dialect) -> list[str]:
    return [
        _create_table(dialect, dialect.public(t.qualified), t, []) for t in model.TAP_SCHEMA_TABLES
    ]


# --------------------------------------------------------------------------------------------
# Views


def _select(columns: list[tuple[str, str]]) -> str:
    return ",\n  ".join(f"{expr} AS {name}" for name, expr in columns)


def footprint_of(dialect: Dialect, plane: str) -> str:
    """SQL for the stored footprint of the plane aliased ``plane``."""
    if dialect.name == "postgresql":
        return f"{plane}.footprint"
    return f"(SELECT f.footprint FROM {zones.TABLE} f WHERE f.planeid = {plane}.planeid)"


def view_statements(dialect: Dialect) -> list[tuple[str, str]]:
    """(view name, CREATE VIEW statement) for every public view, in dependency order."""
    i, pub = dialect.internal, dialect.public
    released = f"p.release_date <= {dialect.now}"
    views: list[tuple[str, str]] = []

    def add(qualified: str, columns: list[tuple[str, str]], body: str) -> None:
        name = pub(qualified)
        views.append((name, f"CREATE VIEW {name} AS SELECT\n  {_select(columns)}\n{body}"))

    plain = [(c.name, f"p.{c.name}") for c in model.PLANE.columns]
    add(
        "spherex.plane",
        [*plain, ("_footprint", footprint_of(dialect, "p"))],
        f"FROM {i('plane')} p WHERE {released}",
    )
    add(
        "spherex.observation",
        [(c.name, f"o.{c.name}") for c in model.OBSERVATION.columns],
        f"FROM {i('observation')} o WHERE EXISTS (SELECT 1 FROM {i('plane')} p "
        f"WHERE p.obsid = o.obsid AND {released})",
    )
    add(
        "spherex.artifact",
        [(c.name, f"a.{c.name}") for c in model.ARTIFACT.columns],
        f"FROM {i('artifact')} a JOIN {i('plane')} p ON p.planeid = a.planeid WHERE {released}",
    )
    add(
        "spherex.provenance_input",
        [(c.name, f"v.{c.name}") for c in model.PROVENANCE_INPUT.columns],
        f"FROM {i('provenance_input')} v JOIN {i('plane')} p ON p.planeid = v.planeid "
        f"WHERE {released}",
    )

    key = "SUBSTR(a.uri, 18)"  # the S3 key: the uri without 'ibe/data/spherex/'

    def constant(name: str) -> str:
        value = model.SPHEREX_OBSCORE_CONSTANTS[name]
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        column = model.SPHEREX_OBSCORE.column(name)
        return f"CAST({'NULL' if value is None else int(value)} AS {dialect.sql_type(column)})"

    obscore = {
        "s_ra": "p.s_ra",
        "s_dec": "p.s_dec",
        "facility_name": constant("facility_name"),
        "instrument_name": constant("instrument_name"),
        "dataproduct_subtype": "p.dataproductsubtype",
        "calib_level": "p.calibrationlevel",
        "dataproduct_type": "p.dataproducttype",
        "energy_bandpassname": "p.energy_bandpassname",
        "energy_emband": constant("energy_emband"),
        "obs_id": "o.observationid",
        "s_resolution": "p.s_pixel_scale / 2",
        "em_min": "p.energy_bounds_lower",
        "em_max": "p.energy_bounds_upper",
        "em_res_power": "p.energy_resolvingpower",
        "proposal_title": "o.proposal_title",
        "access_url": f"{dialect.config('base_url')} || '/datalink/links/spherex?ID=' "
        f"|| p.obs_publisher_did",
        "access_format": "'application/x-votable+xml;content=datalink'",
        "access_estsize": "CAST(ROUND(a.contentlength / 1000.0) AS BIGINT)",
        "t_exptime": "p.time_exposure",
        "s_region": "p.poly",
        "obs_collection": "o.collection",
        "obs_intent": "o.intent",
        "algorithm_name": "o.algorithm_name",
        "facility_keywords": constant("facility_keywords"),
        "instrument_keywords": constant("instrument_keywords"),
        "environment_photometric": constant("environment_photometric"),
        "proposal_id": constant("proposal_id"),
        "proposal_pi": constant("proposal_pi"),
        "proposal_project": "o.proposal_project",
        "target_name": "o.target_name",
        "target_type": constant("target_type"),
        "target_standard": constant("target_standard"),
        "target_moving": constant("target_moving"),
        "target_keywords": constant("target_keywords"),
        "obs_release_date": "p.release_date",
        "s_xel1": "p.s_xel1",
        "s_xel2": "p.s_xel2",
        "s_pixel_scale": "p.s_pixel_scale",
        "position_timedependent": constant("position_timedependent"),
        "t_min": "p.time_bounds_lower",
        "t_max": "p.time_bounds_upper",
        "t_resolution": constant("t_resolution"),
        "t_xel": constant("t_xel"),
        "obs_publisher_did": "p.obs_publisher_did",
        "s_fov": "p.s_fov",
        "em_xel": constant("em_xel"),
        "pol_states": constant("pol_states"),
        "pol_xel": constant("pol_xel"),
        "cloud_access": '\'{"aws": {"bucket_name": "\' || '
        f'{dialect.config("s3_bucket")} || \'", "key":"\' || {key} || '
        '\'", "region": "\' || '
        f"{dialect.config('s3_region')} || '\"}}}}'",
        "o_ucd": constant("o_ucd"),
        "upload_row_id": constant("upload_row_id"),
    }
    assert list(obscore) == list(model.SPHEREX_OBSCORE_ORDER)
    hidden = [
        ("_planeid", "p.planeid"),
        ("_footprint", footprint_of(dialect, "p")),
        ("_uri", "a.uri"),
        ("_detector", "p.detector"),
    ]
    add(
        "spherex.obscore",
        [*obscore.items(), *hidden],
        f"FROM {i('plane')} p\nJOIN {i('observation')} o ON o.obsid = p.obsid\n"
        f"JOIN {i('artifact')} a ON a.planeid = p.planeid AND a.is_current = 1\n"
        f"WHERE {released}",
    )

    standard = {name: f"s.{name}" for name in model.IVOA_OBSCORE_ORDER}
    standard["obs_title"] = (
        "'SPHEREx ' || s.dataproduct_subtype || ' ' || s.obs_id || "
        "COALESCE(' ' || SUBSTR(s.energy_bandpassname, 9), '')"
    )
    standard["data_rights"] = "'public'"
    add(
        "ivoa.obscore",
        [*standard.items(), *[(n, f"s.{n}") for n, _ in hidden]],
        f"FROM {pub('spherex.obscore')} s",
    )

    add(
        "caom.observation",
        [(c.name, f"o.{c.name}") for c in model.CAOM_OBSERVATION.columns],
        f"FROM {pub('spherex.observation')} o",
    )
    add(
        "caom.plane",
        [
            *[(c.name, f"p.{c.name}") for c in model.CAOM_PLANE.columns],
            ("_footprint", "p._footprint"),
        ],
        f"FROM {pub('spherex.plane')} p",
    )
    return views
