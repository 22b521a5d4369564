"""The store: tables, migrations, and the repositories where every query lives (SQLite or PostgreSQL)."""
