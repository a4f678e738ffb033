"""What every flow run needs, built per run from the environment (nothing at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from caseconf.db import make_engine, make_session_factory
from caseconf.settings import Settings, load_settings


@dataclass
class RunContext:
    settings: Settings
    session_factory: sessionmaker[Session]


@contextmanager
def run_context() -> Iterator[RunContext]:
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        yield RunContext(settings=settings, session_factory=make_session_factory(engine))
    finally:
        engine.dispose()
