"""The HTTP faces of the archive: each module parses a protocol's requests, calls the store or a
service, and writes the protocol's answers. None knows a SQL dialect or a storage backend."""
