"""Replying on the portal, who is coming, your meetings and the calendar feed, through the real app."""

from __future__ import annotations

import hashlib
import re

import pytest
from icalendar import Calendar
from sqlalchemy import select

from agencies.models import Person
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from meetings.models import Invitation, Meeting, Rsvp
from tests.factories import DEMO_MONDAY, load_demo_invited
from tests.web.conftest import csrf_from, sign_in

REP = "camhs.rep@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def meeting_id(session_factory, clock) -> int:
    return load_demo_invited(session_factory, clock.now()).id


def rsvp_of(session, meeting_id: int, email: str) -> Invitation:
    session.expire_all()
    return session.scalar(
        select(Invitation)
        .join(Person, Person.id == Invitation.person_id)
        .where(Invitation.meeting_id == meeting_id, Person.email == email)
    )


def test_an_invitee_accepts_on_the_portal(client, session_factory, session, meeting_id):
    sign_in(client, session_factory, REP)
    page = client.get(f"/meetings/{meeting_id}/rsvp")
    assert page.status_code == 200
    assert "Thursday 26 November 2026, 1:30pm to 3:30pm" in page.text
    assert "You have not replied" in page.text
    assert 'value="accept"' in page.text and 'value="decline"' in page.text and 'value="tentative"' in page.text
    response = client.post(f"/meetings/{meeting_id}/rsvp", data={"reply": "accept", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    done = client.get(response.headers["location"])
    assert "Your reply has been saved. You are coming." in done.text
    invitation = rsvp_of(session, meeting_id, REP)
    assert (invitation.rsvp, invitation.rsvp_source) == (Rsvp.accepted, "portal")
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.rsvp")).one()
    assert event.actor_person_id == invitation.person_id and event.detail["after"] == "accepted"


def test_a_reply_must_be_chosen(client, session_factory, session, meeting_id):
    sign_in(client, session_factory, REP)
    page = client.get(f"/meetings/{meeting_id}/rsvp")
    response = client.post(f"/meetings/{meeting_id}/rsvp", data={"reply": "maybe", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 400
    assert "Choose whether you will attend" in response.text
    assert rsvp_of(session, meeting_id, REP).rsvp == Rsvp.needs_action


def test_only_the_invited_may_reply(client, session_factory, session, meeting_id):
    sign_in(client, session_factory, "lado.rep@kestrelford.example.org")
    page = client.get(f"/meetings/{meeting_id}/rsvp")
    assert page.status_code == 403
    token = csrf_from(client.get("/my-meetings").text)
    assert client.post(f"/meetings/{meeting_id}/rsvp", data={"reply": "accept", "csrf_token": token}).status_code == 403
    assert client.get("/meetings/999999/rsvp").status_code == 404


def test_attendance_shows_who_is_coming_and_the_quorum(client, session_factory, session, meeting_id, clock):
    sign_in(client, session_factory, REP)
    token = csrf_from(client.get(f"/meetings/{meeting_id}/rsvp").text)
    client.post(f"/meetings/{meeting_id}/rsvp", data={"reply": "tentative", "csrf_token": token})
    sign_in(client, session_factory, "clinic.coordinator@kestrelford.example.org")
    page = client.get(f"/meetings/{meeting_id}/attendance")
    assert page.status_code == 200
    assert "Quorum not met yet" in page.text
    assert "The chair has not accepted" in page.text
    assert "Tentative replies do not count towards the quorum" in page.text
    # The rule names the agencies it needs, not their codes; replies are said in words.
    assert "including\n  Kestrelford Education Safeguarding Team." in page.text and "SAFEGUARDING" not in page.text
    assert "(no reply yet)" in page.text and "needs action" not in page.text
    row = re.search(r"Kestrelford Child and Adolescent Mental Health Service</th>(.*?)</tr>", page.text, re.S)
    cells = re.findall(r'<td class="govuk-table__cell">(.*?)</td>', row.group(1))
    assert cells == ["", "Dr Nadia Fenwick", "", ""]
    # An invited rep may look too; a school may not.
    sign_in(client, session_factory, "police.rep@kestrelford.example.org")
    assert client.get(f"/meetings/{meeting_id}/attendance").status_code == 200
    sign_in(client, session_factory, "dsl@alderbrook.example.org")
    assert client.get(f"/meetings/{meeting_id}/attendance").status_code == 403


def test_my_meetings_lists_upcoming_invitations(client, session_factory, meeting_id):
    sign_in(client, session_factory, REP)
    page = client.get("/my-meetings")
    assert page.status_code == 200
    assert f'href="/meetings/{meeting_id}/rsvp"' in page.text
    assert "Thursday 26 November 2026 at 1:30pm" in page.text and "Not replied" in page.text
    sign_in(client, session_factory, "lado.rep@kestrelford.example.org")
    assert "You have no invitations to meetings coming up" in client.get("/my-meetings").text


def test_calendar_feed_secret_is_shown_once_and_replacing_it_stops_the_old_one(
    client, session_factory, session, meeting_id
):
    sign_in(client, session_factory, REP)
    page = client.get("/calendar")
    assert "Make my feed address" in page.text
    created = client.post("/calendar", data={"csrf_token": csrf_from(page.text)})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    url = re.search(r'<code id="feed-url">([^<]+)</code>', created.text).group(1)
    token = re.fullmatch(r"http://127\.0\.0\.1:8000/calendar/([A-Za-z0-9_-]+)\.ics", url).group(1)
    session.expire_all()
    person = session.scalar(select(Person).where(Person.email == REP))
    assert person.calendar_feed_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert session.scalars(select(AuditEvent).where(AuditEvent.action == "calendar_feed.created")).one()

    client.cookies.clear()  # the feed needs no sign-in: calendar apps cannot sign in
    feed = client.get(f"/calendar/{token}.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(feed.text)
    assert calendar["METHOD"] == "PUBLISH"
    uids = {str(e["UID"]) for e in calendar.walk("VEVENT")}
    assert session.get(Meeting, meeting_id).calendar_uid in uids
    assert client.get("/calendar/not-a-real-token.ics").status_code == 404

    sign_in(client, session_factory, REP)
    page = client.get("/calendar")
    assert "Make a new feed address" in page.text
    again = client.post("/calendar", data={"csrf_token": csrf_from(page.text)})
    new_token = re.search(r"/calendar/([A-Za-z0-9_-]+)\.ics", again.text).group(1)
    assert new_token != token
    assert client.get(f"/calendar/{token}.ics").status_code == 404
    assert client.get(f"/calendar/{new_token}.ics").status_code == 200

    off = client.post("/calendar/off", data={"csrf_token": csrf_from(client.get("/calendar").text)})
    assert off.status_code == 200 and "Your calendar feed is off" in off.text and "Make my feed address" in off.text
    assert client.get(f"/calendar/{new_token}.ics").status_code == 404
    assert session.scalars(select(AuditEvent).where(AuditEvent.action == "calendar_feed.turned_off")).one()


def test_pages_need_sign_in(client, meeting_id):
    for path in (f"/meetings/{meeting_id}/rsvp", f"/meetings/{meeting_id}/attendance", "/my-meetings", "/calendar"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")
