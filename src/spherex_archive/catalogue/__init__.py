"""The catalogue: one interface (``base.Catalogue``), two backends chosen by URL.

``sqlite:///path/to/catalogue.db`` (embedded, the default) or ``postgresql://...``
(PostgreSQL with pgsphere, for archive scale).
"""

from __future__ import annotations

from spherex_archive.catalogue.base import Catalogue, CatalogueError


def open_catalogue(url: str) -> Catalogue:
    """The catalogue at ``url``; ``CatalogueError`` for a URL of no known kind."""
    if url.startswith("sqlite:"):
        from spherex_archive.catalogue.sqlite import SqliteCatalogue

        return SqliteCatalogue(url)
    if url.startswith(("postgresql:", "postgres:")):
        from spherex_archive.catalogue.postgres import PostgresCatalogue

        return PostgresCatalogue(url)
    raise CatalogueError(
        f"unknown catalogue URL {url!r}: use sqlite:///path/to.db or postgresql://host/db"
    )


__all__ = ["Catalogue", "CatalogueError", "open_catalogue"]
