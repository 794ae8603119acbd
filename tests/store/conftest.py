"""Store tests run over the shared small release (see fixtures.py)."""

from tests.store.fixtures import release, s3_endpoint  # noqa: F401 (fixtures)
