"""In Chromium against the real app, with axe on each page: an agency rep adds their agency's information
(a mistake first), and a school lists a pupil of concern for its Team Around the School (a mistake first)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.models import Meeting
from notifications import invites
from tests.factories import DEMO_MONDAY, MAIL, PAPERS_SENT, send_papers
from tests.web.conftest import latest_link, shot  # the `server` and `page` fixtures come from there too

pytestmark = pytest.mark.browser


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


def sign_in_by_link(page, server, session_factory, email: str, next_path: str) -> None:
    page.goto(f"{server}{next_path}")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    page.goto(latest_link(session_factory, email, base=server))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server}{next_path}")


def test_an_agency_rep_adds_information_in_the_browser(server, page, session_factory, settings, clock):
    with transaction(session_factory) as session:
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == date(2026, 12, 3)))
        invites.send_invitations(session, meeting.id, now=DEMO_MONDAY, mail=MAIL, organizer_name="Team")
        meeting_id = meeting.id
    send_papers(session_factory, settings, meeting_id)  # agencies read the cases once the papers are out
    clock.at = PAPERS_SENT + timedelta(hours=1)
    path = f"/meetings/{meeting_id}/contributions"
    sign_in_by_link(page, server, session_factory, "camhs.rep@kestrelford.example.org", path)
    page.get_by_role(
        "heading", name="Kestrelford Child and Adolescent Mental Health Service: your information"
    ).wait_for()
    shot(page, "contributions-empty")

    page.get_by_label("Only the agencies I choose").check()
    page.get_by_role("button", name="Save your information").click()
    page.get_by_role("heading", name="There is a problem").wait_for()
    assert page.get_by_label("Only the agencies I choose").is_checked()  # kept
    shot(page, "contributions-error")

    page.get_by_label("What Kestrelford Child and Adolescent Mental Health Service knows").fill(
        "Open to CAMHS; seen last month."
    )
    page.get_by_label("Kestrelford School Nursing Service").check()
    page.get_by_role("button", name="Save your information").click()
    page.get_by_text("Your agency's information has been saved.").wait_for()
    assert page.get_by_text("0 of 1", exact=False).first.is_visible()
    shot(page, "contributions-saved")


def test_a_school_lists_a_pupil_of_concern_in_the_browser(server, page, session_factory):
    with transaction(session_factory) as session:
        load_demo(session, now=DEMO_MONDAY, team_around_school=True)
    sign_in_by_link(page, server, session_factory, "dsl@alderbrook.example.org", "/tas")
    page.get_by_role("heading", name="Team Around the School", exact=True).wait_for()
    shot(page, "tas-index")

    page.get_by_role("button", name="Add a pupil of concern").first.click()
    page.get_by_label("Initials and year group").fill("Jordan Blackwood")
    page.get_by_label("What the school is worried about").fill("Sits alone at lunch every day.")
    page.get_by_role("button", name="Add to the list").click()
    page.get_by_role("heading", name="There is a problem").wait_for()
    assert page.get_by_label("What the school is worried about").input_value() == "Sits alone at lunch every day."
    shot(page, "tas-new-error")

    page.get_by_label("Initials and year group").fill("JB Year 4")
    page.get_by_label("No, or not asked yet").check()
    page.get_by_role("button", name="Add to the list").click()
    page.get_by_text("The pupil has been added.").wait_for()
    assert page.get_by_role("cell", name="JB Year 4", exact=True).is_visible()
    shot(page, "tas-added")
