"""The EIP's side in a real browser: from the triage queue to a clinic listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caseconf.clock import FixedClock
from notifications.delivery import deliver_pending
from tests.factories import make_submitted_referral
from tests.web.conftest import shot

pytestmark = pytest.mark.browser


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def sign_in_by_email(page, server, settings, session_factory, clock, email):
    page.goto(f"{server}/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    deliver_pending(session_factory, settings, now=clock.now)
    page.goto(f"{server}/outbox")
    page.get_by_role("link", name="Your sign-in link").first.click()
    page.locator("#text-body a").first.click()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Hello,").wait_for()


def test_eip_triages_a_referral_onto_a_clinic(server, page, settings, session_factory, clock):
    _, reference = make_submitted_referral(
        session_factory, clock.now(), urn="900001", referrer_email="dsl@alderbrook.example.org"
    )
    sign_in_by_email(page, server, settings, session_factory, clock, "eip.north@kestrelford.example.org")
    page.get_by_role("link", name="Triage queue").click()
    page.get_by_role("heading", name="Triage queue").wait_for()
    shot(page, "triage-queue")
    page.get_by_role("link", name=reference).click()
    page.get_by_role("heading", name=f"Referral {reference}").wait_for()

    page.get_by_role("button", name="Accept and list").click()  # no clinic chosen yet
    page.locator(".govuk-error-summary").wait_for()
    assert "Choose the clinic" in page.locator(".govuk-error-summary").inner_text()
    shot(page, "triage-referral-error")

    page.get_by_label("Thursday 26 November 2026", exact=False).check()
    page.get_by_role("button", name="Accept and list").click()
    banner = page.locator(".govuk-notification-banner")
    banner.wait_for()
    assert f"{reference} accepted and listed" in banner.inner_text()
    assert reference not in page.locator("table").all_inner_texts()[0] if page.locator("table").count() else True
    shot(page, "triage-done")
