from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from agencies.models import Role
from caseconf.db import transaction
from meetings.demo import load_demo
from notifications.catcher import start_catcher
from notifications.models import OutboundMessage
from tests.conftest import free_port
from tests.factories import make_area, make_person, make_school
from web.app import create_app


@pytest.fixture
def app(settings, session_factory, clock):
    return create_app(settings, session_factory=session_factory, clock=clock)


@pytest.fixture
def client(app):
    with TestClient(
        app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=("127.0.0.1", 50000)
    ) as client:
        yield client


@pytest.fixture
def people(session_factory):
    """An EIP for North, a school referrer and an admin."""
    with transaction(session_factory) as session:
        north = make_area(session)
        school = make_school(session, area=north)
        eip = make_person(
            session, email="eip.north@kestrelford.example.org", name="Priya North", role=Role.eip, area_id=north.id
        )
        referrer = make_person(
            session, email="dsl@alderbrook.example.org", name="Sam Dsl", role=Role.school_referrer, school_id=school.id
        )
        admin = make_person(session, email="admin@kestrelford.example.org", name="Ada Admin", role=Role.admin)
        return {"eip": eip.email, "referrer": referrer.email, "admin": admin.email}


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def latest_link(session_factory, recipient: str, base: str = "http://127.0.0.1:8000") -> str:
    with session_factory() as session:
        message = session.scalars(
            select(OutboundMessage).where(OutboundMessage.recipient == recipient).order_by(OutboundMessage.id.desc())
        ).first()
    assert message is not None, f"no email queued for {recipient}"
    match = re.search(re.escape(base) + r"/sign-in/confirm\?token=\S+", message.body_text)
    assert match, message.body_text
    return match.group(0)


def sign_in(client, session_factory, email: str) -> None:
    page = client.get("/sign-in")
    response = client.post("/sign-in", data={"email": email, "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    link = latest_link(session_factory, email)
    confirm = client.get(link.replace("http://127.0.0.1:8000", ""))
    assert confirm.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
    response = client.post("/sign-in/confirm", data={"token": token, "csrf_token": csrf_from(confirm.text)})
    assert response.status_code == 303


# --- a real server and a real browser -------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def server(settings, session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
    port = free_port()
    settings = settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})  # links in emails
    app = create_app(settings, session_factory=session_factory, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.05)
    catcher = start_catcher(settings.maildir, "127.0.0.1", settings.catcher_port)
    yield f"http://127.0.0.1:{port}"
    catcher.stop()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page():
    assert CHROMIUM.exists(), "Debian's chromium is needed for browser tests: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # CSP is bypassed only so the test can inject axe; the app's own pages never need inline script.
        page = browser.new_page(bypass_csp=True)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    """Keep a screenshot for people to look at, and check the page with axe (WCAG 2.1 A and AA)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => (await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}))
            .violations.map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(" ")).join(", ")})`)"""
    )
    assert violations == [], f"accessibility problems on {name}: {violations}"
