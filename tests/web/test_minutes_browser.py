"""The chair approves and circulates the minutes in a real browser; a police rep then reads the police
view of the circulated minutes. Each page is checked with axe."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caseconf.clock import FixedClock
from tests.integration.test_minutes import CHAIR, HEALTH_MARK, POLICE, SAFETY_MARK, held_meeting
from tests.web.conftest import shot
from tests.web.test_triage_browser import sign_in_by_email

pytestmark = pytest.mark.browser


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))  # the day after the clinic


def test_chair_approves_and_circulates_and_a_rep_reads_their_view(server, page, settings, session_factory, clock):
    meeting_id = held_meeting(session_factory)

    sign_in_by_email(page, server, settings, session_factory, clock, CHAIR)
    page.goto(f"{server}/meetings/{meeting_id}")
    page.get_by_role("link", name="Minutes", exact=True).click()
    page.get_by_role("heading", name="Minutes of Thursday 3 December 2026").wait_for()
    assert "Outcome to 1 school due Friday 4 December" in page.locator("#due").inner_text()
    shot(page, "minutes-draft")

    page.get_by_role("link", name="Approve the minutes").click()
    page.get_by_role("heading", name="Approve the minutes").wait_for()
    shot(page, "minutes-approve-confirm")
    page.get_by_role("button", name="Approve the minutes").click()
    page.get_by_text("The minutes have been approved.").wait_for()

    page.get_by_role("link", name="Circulate the minutes").click()
    page.get_by_role("heading", name="Circulate the minutes").wait_for()
    assert "10 working days" in page.locator("main").inner_text()
    page.get_by_role("button", name="Circulate the minutes").click()
    page.get_by_text("The minutes have been circulated.").wait_for()
    assert "Corrections can be asked for until Friday 18 December 2026" in page.locator("main").inner_text()
    shot(page, "minutes-circulated-chair")

    page.context.clear_cookies()
    sign_in_by_email(page, server, settings, session_factory, clock, POLICE)
    page.goto(f"{server}/meetings/{meeting_id}")
    page.get_by_role("link", name="Minutes", exact=True).click()
    page.get_by_role("heading", name="Minutes of Thursday 3 December 2026").wait_for()
    text = page.locator("main").inner_text()
    assert SAFETY_MARK in text and HEALTH_MARK not in text
    assert "Agency minutes" in text and "Support agreed" in text
    shot(page, "minutes-circulated-police")
    page.get_by_role("link", name="Ask for a correction").click()
    page.get_by_role("heading", name="Ask for a correction").wait_for()
    page.get_by_role("button", name="Send to the chair").click()
    page.locator(".govuk-error-summary").wait_for()
    shot(page, "minutes-correction-error")
