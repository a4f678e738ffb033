from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole run (it takes several seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def flow_env(prefect_harness, settings, monkeypatch):
    """Flows read settings from the environment, as they do when a worker runs them."""
    monkeypatch.setenv("CASECONF_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CASECONF_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CASECONF_CATCHER_PORT", str(settings.catcher_port))
    return settings
