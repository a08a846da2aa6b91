"""Alembic environment: migrations run on the connection label_store.db.migrate passes in."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)  # batch mode: SQLite ALTERs
with context.begin_transaction():
    context.run_migrations()
