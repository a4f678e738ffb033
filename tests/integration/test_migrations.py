"""The schema comes from migrations, on SQLite and (in CI) PostgreSQL, and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from caseconf.migrate import alembic_config, current_revision, upgrade
from caseconf.schema import load_metadata


def test_migrations_reach_head_and_create_every_table(engine, database_url):
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert current_revision(database_url) == head
    tables = set(inspect(engine).get_table_names())
    assert set(load_metadata().tables) <= tables


def test_upgrade_again_is_a_no_op(database_url):
    before = current_revision(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == before


def test_models_and_migrations_agree(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, load_metadata())
    assert differences == []


def test_downgrade_to_nothing_and_back(engine, database_url):
    from alembic import command

    command.downgrade(alembic_config(database_url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert set(load_metadata().tables) <= set(inspect(engine).get_table_names())


def test_a_new_installation_has_the_default_referral_reasons(session):
    from sqlalchemy import select

    from meetings.models import ReferralReasonOption

    codes = session.scalars(select(ReferralReasonOption.code).order_by(ReferralReasonOption.position)).all()
    assert len(codes) == 16 and codes[0] == "not_attending" and "ebsa" in codes
