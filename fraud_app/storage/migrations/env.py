"""Alembic environment: runs on the connection :func:`fraud_app.storage.migrations.upgrade` passes in."""

from alembic import context

from fraud_app.storage.tables import metadata


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


try:
    _config = context.config
except AttributeError:  # imported outside an Alembic run (e.g. a test importing every module): nothing to do
    _config = None
if _config is not None:
    run_migrations()
