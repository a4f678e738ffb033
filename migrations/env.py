"""Alembic environment: the URL comes from caseconf settings (or the caller's config)."""

from alembic import context

from caseconf.db import UTCDateTime, make_engine
from caseconf.schema import load_metadata

config = context.config
target_metadata = load_metadata()


def render_item(type_, obj, autogen_context):
    # Migrations store plain timezone-aware DateTime; UTCDateTime only adds Python-side checks.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
