"""Shared fixtures: a real database per test (SQLite, or PostgreSQL when
CASECONF_TEST_DATABASE_URL is set), settings under a temporary data dir, and free ports."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from datetime import UTC, datetime

# Prefect reads these when first imported: keep its files out of the home directory, and no telemetry.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="caseconf-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from caseconf.clock import FixedClock
from caseconf.db import make_engine, make_session_factory
from caseconf.migrate import upgrade
from caseconf.schema import load_metadata
from caseconf.settings import load_settings

POSTGRES_URL = os.environ.get("CASECONF_TEST_DATABASE_URL")
SEEDED_TABLES = frozenset({"referral_reason_option", "outcome_option"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def _template_database(tmp_path_factory):
    """Migrated once per run: a SQLite file to copy, or a fresh PostgreSQL database."""
    if POSTGRES_URL:
        admin_url = make_url(POSTGRES_URL)
        name = f"caseconf_test_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        upgrade(f"sqlite:///{path}")
        yield path


@pytest.fixture
def database_url(_template_database, tmp_path):
    if POSTGRES_URL:
        yield _template_database
        engine = make_engine(_template_database)
        # Rows the migrations seed stay, as they do in the copied SQLite template.
        tables = ", ".join(f'"{t.name}"' for t in load_metadata().sorted_tables if t.name not in SEEDED_TABLES)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
    else:
        path = tmp_path / "caseconf.db"
        shutil.copy(_template_database, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine):
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory):
    """A session for arranging and checking; the code under test opens its own transactions."""
    with session_factory() as session:
        yield session


@pytest.fixture
def settings(tmp_path, database_url, monkeypatch):
    for name in list(os.environ):
        if name.startswith("CASECONF_") and name != "CASECONF_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    return load_settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        catcher_port=free_port(),
        base_url="http://127.0.0.1:8000",
    )


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 1, 12, 9, 0, tzinfo=UTC))
