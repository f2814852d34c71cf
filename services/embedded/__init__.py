"""The embedded billing: a complete small billing on SQLAlchemy (SQLite or PostgreSQL)."""
