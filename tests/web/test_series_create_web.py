"""Creating a meeting series from /admin/series, through the real app with the demo borough."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from agencies.models import Person, School
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from meetings.demo import COORDINATOR
from meetings.models import MeetingKind, MeetingSeries
from tests.factories import DEMO_MONDAY, load_demo_series
from tests.web.conftest import csrf_from, sign_in

ADMIN = "admin@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock):
    load_demo_series(session_factory, clock.now())
    with session_factory() as session:
        people = {p.email: p.id for p in session.scalars(select(Person))}
        larkfield = session.scalar(select(School).where(School.urn == "900007")).id
    return {"people": people, "larkfield": larkfield}


def form_data(page_text: str, **changes) -> dict:
    return {
        "csrf_token": csrf_from(page_text),
        "name": "",
        "kind": "",
        "area_id": "",
        "school_id": "",
        "weekday": "",
        "start_time": "10:00",
        "duration_minutes": "120",
        "location": "",
        "coordinator_id": "",
        "capacity_items": "8",
        "item_minutes": "15",
        "cutoff_weekday": "0",
        "cutoff_time": "12:00",
        "papers_weekday": "1",
        "papers_time": "09:00",
        "quorum_min_agencies": "3",
        "quorum_required_agencies": [],
        "quorum_check_time": "12:00",
        "invite_days_ahead": "28",
        "chair_rotation_every": "3",
        "outcome_due_working_days": "1",
        "minutes_due_working_days": "5",
        "corrections_working_days": "10",
        "action_reminder_working_days": "2",
        "chase_every_working_days": "3",
        "escalate_after_chases": "2",
        "blockage_working_days": "3",
        "chairs": [],
    } | changes


@pytest.mark.parametrize("email", ["dsl@alderbrook.example.org", "camhs.rep@kestrelford.example.org"])
def test_schools_and_agency_reps_may_not_create_a_series(client, session_factory, demo, email):
    sign_in(client, session_factory, email)
    assert client.get("/admin/series/new").status_code == 403
    token = csrf_from(client.get("/").text)
    refused = client.post("/admin/series/new", data={"csrf_token": token, "name": "Sneaky", "kind": "hot_clinic"})
    assert refused.status_code == 403
    with session_factory() as session:
        assert session.scalar(select(MeetingSeries).where(MeetingSeries.name == "Sneaky")) is None


def test_the_form_needs_a_csrf_token(client, session_factory, demo):
    sign_in(client, session_factory, COORDINATOR)
    page = client.get("/admin/series/new")
    data = form_data(page.text, name="No token") | {"csrf_token": "wrong"}
    assert client.post("/admin/series/new", data=data).status_code == 403


def test_the_listing_offers_the_form_with_the_usual_defaults(client, session_factory, demo):
    sign_in(client, session_factory, COORDINATOR)
    listing = client.get("/admin/series").text
    assert 'href="/admin/series/new"' in listing and "Create a series" in listing
    page = client.get("/admin/series/new")
    assert page.status_code == 200
    assert 'id="capacity_items" name="capacity_items" type="text" value="8"' in page.text
    assert 'name="cutoff_time" type="text" value="12:00"' in page.text
    assert 'name="invite_days_ahead" type="text" value="28"' in page.text
    assert "Saturday" not in page.text.split('id="weekday"')[1].split("</select>")[0]  # Monday to Friday only
    assert "School (a team around the school only)" in page.text and "All areas" in page.text


def test_errors_are_listed_linked_and_what_was_typed_is_kept(client, session_factory, session, demo):
    sign_in(client, session_factory, COORDINATOR)
    page = client.get("/admin/series/new")
    east_eip = demo["people"]["eip.east@kestrelford.example.org"]
    data = form_data(
        page.text,
        name="Team Around Larkfield",
        kind="team_around_school",
        weekday="2",
        start_time="9am",
        location="",
        capacity_items="9",
        chairs=["", str(east_eip)],
        quorum_required_agencies=["MASH"],
    )
    refused = client.post("/admin/series/new", data=data)
    assert refused.status_code == 400
    text = refused.text
    for field, message in (
        ("school_id", "Choose the school the series is for"),
        ("location", "Enter where the meeting is held"),
        ("coordinator_id", "Choose a clinic coordinator or an Education Inclusion Partner to coordinate"),
    ):
        assert f'href="#{field}"' in text and message in text
    assert 'value="Team Around Larkfield"' in text and 'value="9am"' in text and 'value="9"' in text
    assert re.search(r'value="team_around_school" checked', text)
    assert re.search(r'<option value="2" selected>Wednesday', text)
    assert re.search(rf'id="chair-2" name="chairs">.*?<option value="{east_eip}" selected', text, re.S)
    assert re.search(r'value="MASH" checked', text)
    assert session.scalar(select(MeetingSeries).where(MeetingSeries.name == "Team Around Larkfield")) is None


def test_creating_a_series_shows_it_with_the_next_steps(client, session_factory, session, demo):
    sign_in(client, session_factory, ADMIN)
    page = client.get("/admin/series/new")
    data = form_data(
        page.text,
        name="Team Around Larkfield Middle",
        kind="team_around_school",
        school_id=str(demo["larkfield"]),
        weekday="2",
        start_time="15:45",
        duration_minutes="90",
        capacity_items="6",
        location="Larkfield Middle, meeting room 1",
        coordinator_id=str(demo["people"][COORDINATOR]),
        chairs=[str(demo["people"]["eip.east@kestrelford.example.org"])],
    )
    created = client.post("/admin/series/new", data=data)
    assert created.status_code == 303
    series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == "Team Around Larkfield Middle"))
    assert series.kind == MeetingKind.team_around_school and series.school_id == demo["larkfield"]
    assert created.headers["location"] == f"/admin/series/{series.id}?done=created"
    shown = client.get(created.headers["location"])
    assert shown.status_code == 200
    assert "The series has been created. Next, add its core members" in shown.text
    assert "plan its meetings for a term" in shown.text
    assert "Wednesdays at 15:45 for 90 minutes, in term time" in shown.text
    assert "Team around the school" in shown.text and "Plan meetings for Spring 2027" in shown.text
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "series.created"))
    assert event.record_id == str(series.id) and event.actor_person_id == demo["people"][ADMIN]
    assert "Team Around Larkfield Middle" in client.get("/admin/series").text
