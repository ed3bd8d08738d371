"""The central store: one SQL implementation for SQLite and PostgreSQL."""
