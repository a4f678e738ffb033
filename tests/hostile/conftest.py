"""One demo borough per module, shared by that module's tests: hostile input is thrown at it barrage after
barrage, and after each the app must still answer (see `still_serving`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from caseconf.clock import FixedClock
from caseconf.db import make_engine, make_session_factory, transaction
from caseconf.schema import load_metadata
from caseconf.settings import Settings, load_settings
from meetings.demo import load_demo
from tests.conftest import POSTGRES_URL, SEEDED_TABLES, free_port
from tests.web.conftest import sign_in
from web.app import create_app

# The Monday before the demo borough's 26 November clinic.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
REFERRER = "dsl@alderbrook.example.org"  # refers for Alderbrook (900001), Copperbeech (900004), Greywater
EIP_NORTH = "eip.north@kestrelford.example.org"
ADMIN = "admin@kestrelford.example.org"


@dataclass
class World:
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: FixedClock
    app: object
    tmp: Path

    def client(self, ip: str = "127.0.0.1") -> TestClient:
        return TestClient(self.app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=(ip, 50000))

    def signed_in(self, email: str) -> TestClient:
        client = self.client().__enter__()
        sign_in(client, self.session_factory, email)
        return client


def _truncate(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in load_metadata().sorted_tables if t.name not in SEEDED_TABLES)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="module")
def world(_template_database, tmp_path_factory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hostile")
    if POSTGRES_URL:
        url = _template_database
        _truncate(url)
    else:
        shutil.copy(_template_database, tmp / "caseconf.db")
        url = f"sqlite:///{tmp / 'caseconf.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("CASECONF_") and name != "CASECONF_TEST_DATABASE_URL":
                mp.delenv(name)
        settings = load_settings(
            data_dir=tmp / "var",
            database_url=url,
            catcher_port=free_port(),
            base_url="http://127.0.0.1:8000",
            upload_max_file_mb=1,
            upload_max_referral_mb=2,
        )
        engine = make_engine(url)
        session_factory = make_session_factory(engine)
        clock = FixedClock(NOW)
        with transaction(session_factory) as session:
            load_demo(session, now=clock.now())
        app = create_app(settings, session_factory=session_factory, clock=clock)
        yield World(settings=settings, session_factory=session_factory, clock=clock, app=app, tmp=tmp)
        engine.dispose()
    if POSTGRES_URL:
        _truncate(url)


def still_serving(world: World, client: TestClient | None = None, page: str = "/") -> None:
    """The app answers its health check, and a signed-in page, after a barrage."""
    with world.client() as fresh:
        health = fresh.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    if client is not None:
        response = client.get(page)
        assert response.status_code == 200, response.text[:500]
