"""Ingest: deliveries (local folders or S3 prefixes) into the catalogue, one transaction each."""
