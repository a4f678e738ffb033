"""A real browser (Debian's Chromium, driven by Playwright) against the real app over HTTP."""

from __future__ import annotations

import pytest

from meetings.demo import DEMO_USERS
from notifications.delivery import deliver_pending
from tests.web.conftest import page, server, shot  # noqa: F401 - the browser fixtures, also for importers

pytestmark = pytest.mark.browser


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
