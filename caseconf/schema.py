"""Imports every model module so the metadata is complete (Alembic, tests, `db upgrade`)."""

import importlib

from caseconf.db import Base

MODEL_MODULES = ("caseconf.audit", "agencies.models", "meetings.models", "notifications.models")


def load_metadata():
    # Imported by name: caseconf sits below every other package and may not import them directly.
    for module in MODEL_MODULES:
        importlib.import_module(module)
    return Base.metadata
