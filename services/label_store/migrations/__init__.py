"""Alembic migrations of the label-store schema (applied on start by label_store.db.migrate)."""
