"""A real browser (Debian's Chromium, driven by Playwright) against the real app over HTTP."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import uvicorn

from caseconf.db import transaction
from meetings.demo import DEMO_USERS, load_demo
from notifications.catcher import start_catcher
from notifications.delivery import deliver_pending
from tests.conftest import free_port
from web.app import create_app

pytestmark = pytest.mark.browser

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


def demo_email(label_start: str) -> tuple[str, str]:
    return next((label, email) for label, email in DEMO_USERS if label.startswith(label_start))


def test_demo_eip_signs_in_from_the_emailed_link_and_is_refused_admin(server, page, settings, session_factory, clock):
    _, email = demo_email("EIP")
    page.goto(f"{server}/")
    assert page.url == f"{server}/sign-in"
    page.get_by_label("Email address").fill(email)
    shot(page, "sign-in")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    shot(page, "check-email")

    report = deliver_pending(session_factory, settings, now=clock.now)  # what the scheduled flow does
    assert report.sent == 1

    page.get_by_role("link", name="mail catcher", exact=True).click()
    shot(page, "outbox")
    page.get_by_role("link", name="Your sign-in link").first.click()
    shot(page, "outbox-message")
    page.locator("#text-body a").first.click()
    page.get_by_role("heading", name="Sign in as").wait_for()
    shot(page, "confirm")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("heading", name="Hello,").wait_for()
    assert page.url == f"{server}/"
    assert page.get_by_role("heading", name="Education Inclusion Partner").is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()
    shot(page, "home-eip")

    response = page.goto(f"{server}/admin")
    assert response.status == 403
    assert page.get_by_role("heading", name="You do not have access to this page").is_visible()
    shot(page, "forbidden")

    page.goto(f"{server}/")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You have signed out.").wait_for()
    assert page.goto(f"{server}/").url == f"{server}/sign-in"


def test_sign_in_form_shows_errors_and_keeps_input(server, page):
    page.goto(f"{server}/sign-in")
    page.get_by_label("Email address").fill("not an email")
    page.get_by_role("button", name="Email me a sign-in link").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "Enter an email address in the correct format" in summary.inner_text()
    assert page.get_by_label("Email address").input_value() == "not an email"
    assert page.title().startswith("Error:")
    # GOV.UK Frontend's JavaScript ran under the strict CSP: the error summary took focus.
    assert page.evaluate("document.activeElement.classList.contains('govuk-error-summary')")
    shot(page, "sign-in-error")
