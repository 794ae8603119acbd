"""Services between the protocols and the catalogue: the ADQL query engine (query.py)."""

from spherex_archive.services.query import QueryAnswer, QueryEngine

__all__ = ["QueryAnswer", "QueryEngine"]
