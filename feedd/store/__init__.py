"""Storage: the only package that knows SQL. See ``store.sql.SqlStore``."""
