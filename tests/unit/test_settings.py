"""Settings: defaults, validation messages that name the setting, and masking."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from caseconf.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("CASECONF_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CASECONF_DATA_DIR", str(tmp_path))


def test_defaults_are_embedded(tmp_path):
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'caseconf.db'}"
    assert settings.uses_mail_catcher
    assert settings.effective_smtp_url == "smtp://127.0.0.1:8025"
    assert not settings.secure_cookies


def test_generated_secret_is_kept(tmp_path):
    first = load_settings().secret()
    assert len(first) >= 32
    assert load_settings().secret() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CASECONF_DATABASE_URL", "mysql://x", "postgresql+psycopg://"),
        ("CASECONF_SMTP_URL", "http://mail.example.org", "smtp://user:pass@host:587"),
        ("CASECONF_BASE_URL", "caseconf.example.org", "https://"),
        ("CASECONF_SECRET_KEY", "short", "at least 32 characters"),
        ("CASECONF_MAIL_FROM", "not-an-address", "email address"),
        ("CASECONF_SIGN_IN_TOKEN_MINUTES", "0", "between 1 and 1440"),
    ],
)
def test_bad_setting_names_itself_and_what_is_expected(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert name in message and expected in message
    if name == "CASECONF_SECRET_KEY":
        assert value not in message  # never echo a secret


def test_https_needs_a_secret_key(monkeypatch):
    monkeypatch.setenv("CASECONF_BASE_URL", "https://caseconf.example.org")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "CASECONF_SECRET_KEY" in str(caught.value)


def test_https_refuses_the_mail_catcher(monkeypatch):
    monkeypatch.setenv("CASECONF_BASE_URL", "https://caseconf.example.org")
    monkeypatch.setenv("CASECONF_SECRET_KEY", "k" * 40)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "CASECONF_SMTP_URL" in str(caught.value)


def test_postgresql_url_gets_the_psycopg_driver(monkeypatch):
    monkeypatch.setenv("CASECONF_DATABASE_URL", "postgresql://u:p@db.example.org/caseconf")
    assert load_settings().database_url == "postgresql+psycopg://u:p@db.example.org/caseconf"


def test_masked_hides_passwords(monkeypatch):
    monkeypatch.setenv("CASECONF_SMTP_URL", "smtp://relay:hunter2hunter2@mail.example.org:587")
    monkeypatch.setenv("CASECONF_SECRET_KEY", "s" * 40)
    shown = load_settings().masked()
    assert "hunter2hunter2" not in str(shown)
    assert "s" * 40 not in str(shown)
    assert shown["CASECONF_SMTP_URL"] == "smtp://relay:****@mail.example.org:587"


def test_cli_reports_bad_settings_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASECONF_")}
    env.update(CASECONF_DATA_DIR=str(tmp_path), CASECONF_SMTP_URL="smtp//broken", CASECONF_PREFECT_PORT="99999")
    result = subprocess.run(
        [sys.executable, "-m", "caseconf.cli", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "CASECONF_SMTP_URL is not valid" in result.stderr
    assert "CASECONF_PREFECT_PORT is not valid" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_check_fails_on_an_unmigrated_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASECONF_")}
    env.update(CASECONF_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "caseconf.cli", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "[PROBLEM] database" in result.stdout
    assert "caseconf db upgrade" in result.stdout


def test_cli_commands_refuse_an_unmigrated_database_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASECONF_")}
    env.update(CASECONF_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "caseconf.cli", "directory", "export", "-"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "is not ready" in result.stderr and "caseconf db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
