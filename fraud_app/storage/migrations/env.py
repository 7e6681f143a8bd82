"""Alembic environment: runs on the connection :func:`fraud_app.storage.migrations.upgrade` passes in."""

from alembic import context

from fraud_app.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
