"""What the real SPHEREx products are: detectors, flag bits, names, identifiers and headers.

Everything here is shared by the synthetic-release generator (which writes files) and by
ingest and the services (which read them), so that both sides agree by construction and the
rules of ``shared/spec/spherex-products.md`` live in one place.
"""
