"""The clinic coordinator moves a meeting in a real browser, with accessibility checks on each page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from agencies.models import Person
from caseconf.clock import FixedClock
from meetings.demo import COORDINATOR
from tests.web.conftest import shot
from tests.web.test_triage_browser import sign_in_by_email

pytestmark = pytest.mark.browser


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def test_coordinator_moves_a_meeting(server, page, settings, session_factory, clock):
    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)
    page.goto(f"{server}/admin/series")
    page.get_by_role("heading", name="Meeting series").wait_for()
    shot(page, "admin-series")
    page.get_by_role("link", name="Kestrelford Vulnerable Pupil Hot Clinic").click()
    page.get_by_role("heading", name="Settings").wait_for()
    shot(page, "admin-series-detail")
    page.get_by_role("link", name="Thu 10 Dec 2026, 13:30").click()
    page.get_by_role("heading", name="Thursday 10 December 2026").wait_for()

    page.get_by_label("Day").fill("12")  # a Saturday
    page.get_by_label("Start time").fill("10:00")
    page.get_by_role("button", name="Move the meeting").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "weekend or bank holiday" in summary.inner_text()
    assert "Enter why the meeting is moving" in summary.inner_text()
    assert page.get_by_label("Start time").input_value() == "10:00"  # kept
    shot(page, "admin-meeting-move-errors")
    summary.get_by_role("link", name="weekend or bank holiday", exact=False).click()
    assert page.evaluate("document.activeElement.id") == "new_date-day"

    page.get_by_label("Day").fill("9")
    page.get_by_label("Why it is moving").fill("The committee room is booked for a council meeting")
    page.get_by_role("button", name="Move the meeting").click()
    banner = page.locator(".govuk-notification-banner")
    banner.wait_for()
    assert "The meeting has been moved" in banner.inner_text()
    page.get_by_role("heading", name="Wednesday 9 December 2026").wait_for()
    assert "10:00 to 12:00" in page.locator(".govuk-summary-list").inner_text()
    assert "1 since first planned" in page.locator(".govuk-summary-list").inner_text()
    shot(page, "admin-meeting-moved")

    page.get_by_role("link", name="Cancel this meeting").click()
    page.get_by_role("heading", name="Are you sure you want to cancel").wait_for()
    shot(page, "admin-meeting-cancel")
    page.goto(f"{server}/admin/terms")
    page.get_by_role("heading", name="Term dates", exact=True).wait_for()
    shot(page, "admin-terms")


def test_coordinator_adds_a_core_member_and_removes_one(server, page, settings, session_factory, clock):
    with session_factory() as s:
        lado_rep = s.scalar(select(Person).where(Person.email == "lado.rep@kestrelford.example.org"))
        lado_rep_id, lado_rep_name = str(lado_rep.id), lado_rep.name
    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)
    page.goto(f"{server}/admin/series")
    page.get_by_role("link", name="Kestrelford Vulnerable Pupil Hot Clinic").click()
    page.get_by_role("heading", name="Core members").wait_for()

    page.locator("#agency_id").select_option(label="Local Authority Designated Officer")
    page.get_by_role("button", name="Add member").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "Choose an active person as the member" in summary.inner_text()
    assert page.locator("#agency_id option:checked").inner_text() == "Local Authority Designated Officer"  # kept
    shot(page, "admin-series-member-errors")
    summary.get_by_role("link", name="Choose an active person as the member").click()
    assert page.evaluate("document.activeElement.id") == "person_id"

    page.locator("#person_id").select_option(lado_rep_id)
    page.get_by_role("button", name="Add member").click()
    banner = page.locator(".govuk-notification-banner")
    banner.wait_for()
    assert "The member has been added" in banner.inner_text()
    assert page.get_by_role("cell", name=lado_rep_name, exact=True).count() == 1
    assert "8 core members" in page.locator("caption", has_text="core members").inner_text()
    shot(page, "admin-series-member-added")

    page.get_by_role("link", name=f"Remove {lado_rep_name}").click()
    page.get_by_role("heading", name=f"Remove {lado_rep_name}", exact=False).wait_for()
    shot(page, "admin-series-member-remove")
    page.get_by_role("button", name="Remove member").click()
    page.locator(".govuk-notification-banner").wait_for()
    assert "The member has been removed" in page.locator(".govuk-notification-banner").inner_text()
    assert page.get_by_role("cell", name=lado_rep_name, exact=True).count() == 0
    assert page.get_by_role("link", name=f"Remove {lado_rep_name}").count() == 0


def test_coordinator_creates_a_team_around_the_school(server, page, settings, session_factory, clock):
    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)
    page.goto(f"{server}/admin/series")
    page.get_by_role("button", name="Create a series").click()
    page.get_by_role("heading", name="Create a series").wait_for()
    page.get_by_label("Name", exact=True).fill("Team Around Larkfield Middle")
    page.get_by_role("radio", name="Team around the school").check()
    page.locator("#weekday").select_option(label="Wednesday")
    page.get_by_label("Start time").fill("15:45")
    shot(page, "admin-series-new")
    page.get_by_role("button", name="Create the series").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "Choose the school the series is for" in summary.inner_text()
    assert "Enter where the meeting is held" in summary.inner_text()
    assert page.get_by_label("Start time").input_value() == "15:45"  # kept
    shot(page, "admin-series-new-errors")
    summary.get_by_role("link", name="Choose the school the series is for").click()
    assert page.evaluate("document.activeElement.id") == "school_id"

    page.locator("#school_id").select_option(label="Larkfield Middle")
    page.get_by_label("Where the meeting is held").fill("Larkfield Middle, meeting room 1")
    page.locator("#coordinator_id").select_option(label="Tomasz Kettleby, Education Inclusion Partner (East)")
    page.locator("#chair-1").select_option(label="Tomasz Kettleby")
    page.get_by_role("button", name="Create the series").click()
    banner = page.locator(".govuk-notification-banner")
    banner.wait_for()
    assert "add its core members" in banner.inner_text()
    page.get_by_role("heading", name="Team Around Larkfield Middle").wait_for()
    assert "Wednesdays at 15:45" in page.locator(".govuk-summary-list").inner_text()
    shot(page, "admin-series-created")
