"""The data model: CAOM-style tables, the ObsCore views and TAP_SCHEMA, described once.

``tables`` declares every public table and column; ``tap_schema`` derives the TAP_SCHEMA rows;
the catalogue backends derive their DDL and views from the same objects.
"""
