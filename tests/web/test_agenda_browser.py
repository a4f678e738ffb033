"""The coordinator's agenda in a real browser: add a referral, reorder it, with accessibility checks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import agenda
from meetings.demo import COORDINATOR
from meetings.models import Meeting, Referral
from tests.factories import make_submitted_referral
from tests.web.conftest import shot
from tests.web.test_triage_browser import sign_in_by_email

pytestmark = pytest.mark.browser


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def test_coordinator_adds_and_reorders_the_agenda(server, page, settings, session_factory, session, clock):
    referral_id, reference = make_submitted_referral(
        session_factory, clock.now(), urn="900001", referrer_email="dsl@alderbrook.example.org"
    )
    with transaction(session_factory) as s:
        s.get(Referral, referral_id).status = "accepted"
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.meeting_date == date(2026, 12, 3)))

    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)
    page.goto(f"{server}/meetings")
    page.get_by_role("heading", name="Meetings").wait_for()
    shot(page, "meetings-list")
    page.get_by_role("link", name="Thursday 3 December 2026, 1:30pm").click()
    page.get_by_role("heading", name="Thursday 3 December 2026 at 1:30pm").wait_for()

    page.get_by_role("button", name="Add to the agenda").click()  # nothing chosen
    page.locator(".govuk-error-summary").wait_for()
    assert "Choose a referral to add" in page.locator(".govuk-error-summary").inner_text()
    shot(page, "meeting-agenda-error")

    page.get_by_label("Accepted referrals not on any agenda").select_option(str(referral_id))
    page.get_by_role("button", name="Add to the agenda").click()
    page.locator(".govuk-notification-banner").wait_for()
    rows = page.locator("table tbody tr")
    assert reference in rows.nth(1).inner_text() and "13:45 to 14:00" in rows.nth(1).inner_text()

    page.get_by_role("button", name=f"Up {reference}").click()
    page.get_by_text("The agenda order has been changed.").wait_for()
    first = page.locator("table tbody tr").first.inner_text()
    assert reference in first and "13:30 to 13:45" in first
    shot(page, "meeting-agenda-reordered")

    session.expire_all()
    meeting = session.get(Meeting, meeting_id)
    assert agenda.listed_items(meeting)[0].referral.reference == reference
    assert meeting.agenda_order_locked
