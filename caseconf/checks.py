"""Start-up checks shared by `caseconf check` and `caseconf up`."""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from caseconf.paths import frontend_installed
from caseconf.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_data_dir(settings: Settings) -> Check:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as exc:
        return Check("data directory", False, f"{settings.data_dir} is not writable: {exc.strerror}")
    return Check("data directory", True, f"{settings.data_dir.resolve()} is writable")


def check_database(settings: Settings) -> Check:
    from alembic.script import ScriptDirectory

    from caseconf.migrate import alembic_config, current_revision

    try:
        current = current_revision(settings.database_url)
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        return Check("database", False, f"cannot connect: {reason}")
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    if current != head:
        return Check("database", False, f"schema at {current or 'nothing'}, expected {head}: run 'caseconf db upgrade'")
    return Check("database", True, f"reachable, schema at {head}")


def check_frontend() -> Check:
    if frontend_installed():
        return Check("GOV.UK Frontend", True, "installed")
    return Check("GOV.UK Frontend", False, "not installed: run 'npm ci' in the project folder")


def check_smtp(settings: Settings) -> Check:
    if settings.uses_mail_catcher:
        address = f"{settings.catcher_host}:{settings.catcher_port}"
        running = "running" if _listening(settings.catcher_host, settings.catcher_port) else "not running now"
        return Check(
            "email",
            True,
            f"the built-in mail catcher keeps every message (CASECONF_SMTP_URL is unset); on {address}: {running}"
            " ('caseconf up' starts it)",
        )
    parts = urlsplit(settings.effective_smtp_url)
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    try:
        with socket.create_connection((parts.hostname, port), timeout=5):
            pass
    except OSError as exc:
        return Check("email", False, f"cannot reach {parts.hostname}:{port}: {exc.strerror or exc}")
    return Check("email", True, f"{parts.hostname}:{port} accepts connections")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def run_checks(settings: Settings) -> list[Check]:
    return [check_data_dir(settings), check_database(settings), check_frontend(), check_smtp(settings)]
