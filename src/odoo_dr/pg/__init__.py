"""PostgreSQL access: connection settings, client binaries and identifiers."""
