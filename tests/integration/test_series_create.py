"""Creating a meeting series on the demo borough, then planning its meetings for a demo term."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select

from agencies.models import Area, Person, School
from caseconf.audit import AuditEvent
from caseconf.errors import Invalid
from meetings import planning
from meetings.demo import COORDINATOR, SERIES_NAME
from meetings.models import Meeting, MeetingKind, MeetingSeries, Term
from tests.factories import DEMO_MONDAY, load_demo_series, make_person

DOMAIN = "kestrelford.example.org"
NOW = DEMO_MONDAY  # Monday 23 November 2026


@pytest.fixture
def demo(session_factory, session):
    load_demo_series(session_factory, NOW)
    people = {p.email: p for p in session.scalars(select(Person))}
    return {
        "coordinator": people[COORDINATOR].id,
        "north": people["eip.north@kestrelford.example.org"].id,
        "east": people["eip.east@kestrelford.example.org"].id,
        "west": people["eip.west@kestrelford.example.org"].id,
        "camhs": people["camhs.rep@kestrelford.example.org"].id,
        "areas": {a.code: a.id for a in session.scalars(select(Area))},
        "schools": {s.urn: s for s in session.scalars(select(School))},
        "spring": session.scalar(select(Term).where(Term.name == "Spring 2027")),
    }


def east_clinic(demo, **changes) -> dict:
    return {
        "name": "East Area Hot Clinic",
        "kind": "hot_clinic",
        "area_id": str(demo["areas"]["E"]),
        "weekday": "1",  # Tuesday
        "start_time": "10:00",
        "location": "Room 4, Eastgate Library",
        "coordinator_id": str(demo["coordinator"]),
        "chair_rotation": [str(demo["east"]), str(demo["north"])],
    } | changes


def create(session, values, actor_id=None):
    if session.in_transaction():
        session.rollback()
    with session.begin():
        return planning.create_series(session, values=values, now=NOW, actor_id=actor_id).id


def test_a_new_hot_clinic_takes_the_usual_defaults_and_is_audited(session, demo):
    series_id = create(session, east_clinic(demo), actor_id=demo["coordinator"])
    series = session.get(MeetingSeries, series_id)
    assert (series.name, series.kind, series.area_id, series.school_id) == (
        "East Area Hot Clinic",
        MeetingKind.hot_clinic,
        demo["areas"]["E"],
        None,
    )
    assert (series.weekday, series.start_time, series.location) == (1, time(10, 0), "Room 4, Eastgate Library")
    assert series.chair_rotation == [demo["east"], demo["north"]] and series.coordinator_id == demo["coordinator"]
    assert (series.duration_minutes, series.capacity_items, series.item_minutes) == (120, 8, 15)
    assert (series.cutoff_weekday, series.cutoff_time, series.papers_weekday, series.papers_time) == (
        0,
        time(12, 0),
        1,
        time(9, 0),
    )
    assert series.quorum_chair_required and series.quorum_min_agencies == 3 and series.quorum_required_agencies == []
    assert series.quorum_check_time == time(12, 0) and series.invite_days_ahead == 28
    assert series.chair_rotation_every == 3 and series.term_time_only and series.active and series.members == []
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "series.created"))
    assert event.record_id == str(series_id) and event.actor_person_id == demo["coordinator"]
    assert event.detail["settings"]["name"] == "East Area Hot Clinic"
    assert event.detail["settings"]["start_time"] == "10:00:00"


def test_settings_given_replace_the_defaults(session, demo):
    values = east_clinic(demo, area_id="", duration_minutes="90", capacity_items="6", quorum_required_agencies="mash")
    series = session.get(MeetingSeries, create(session, values))
    assert series.area_id is None  # all areas
    assert (series.duration_minutes, series.capacity_items, series.quorum_required_agencies) == (90, 6, ["MASH"])


def test_a_team_around_the_school_is_for_one_school_in_its_area(session, demo):
    larkfield = demo["schools"]["900007"]
    values = east_clinic(demo, name="Team Around Larkfield Middle", kind="team_around_school", area_id="")
    values |= {"school_id": str(larkfield.id), "coordinator_id": str(demo["east"])}
    series = session.get(MeetingSeries, create(session, values))
    assert series.kind == MeetingKind.team_around_school and series.school_id == larkfield.id
    assert series.area_id == larkfield.area_id == demo["areas"]["E"]  # the area's EIPs run it
    assert series.term_time_only

    with pytest.raises(Invalid) as refused:
        create(session, values | {"name": "Another", "school_id": ""})
    assert refused.value.problems == {"school_id": "Choose the school the series is for"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "  "}, "name", "Enter a name for the series"),
        ({"name": "x" * 201}, "name", "The name must be 200 characters or fewer"),
        ({"name": SERIES_NAME.upper()}, "name", f"A series called {SERIES_NAME.upper()} already exists"),
        ({"kind": "party"}, "kind", "Choose whether it is a hot clinic or a team around the school"),
        ({"area_id": "999"}, "area_id", "Choose an area, or all areas"),
        ({"weekday": "5"}, "weekday", "Choose a day from Monday to Friday"),
        ({"weekday": ""}, "weekday", "Choose a day from Monday to Friday"),
        ({"start_time": "25:00"}, "start_time", "The start time must be a time like 13:30"),
        ({"location": ""}, "location", "Enter where the meeting is held"),
        ({"chair_rotation": []}, "chair_rotation", "Choose at least one Education Inclusion Partner to chair"),
        (
            {"duration_minutes": "60"},
            "capacity_items",
            "8 items of 15 minutes need 120 minutes, but the meeting lasts 60",
        ),
        (
            {"invite_days_ahead": "0"},
            "invite_days_ahead",
            "How many days ahead invitations go must be a whole number from 1 to 120",
        ),
        ({"quorum_required_agencies": "NOPE"}, "quorum_required_agencies", "No active agency has the code NOPE"),
        (
            {"coordinator_id": ""},
            "coordinator_id",
            "Choose a clinic coordinator or an Education Inclusion Partner to coordinate",
        ),
    ],
)
def test_each_rule(session, demo, changes, field, message):
    with pytest.raises(Invalid) as refused:
        create(session, east_clinic(demo, **changes))
    assert refused.value.problems == {field: message}
    session.rollback()
    assert session.scalar(select(MeetingSeries).where(MeetingSeries.name != SERIES_NAME)) is None


def test_the_coordinator_must_be_one_who_may_run_the_series(session, demo):
    with pytest.raises(Invalid) as agency_rep:
        create(session, east_clinic(demo, coordinator_id=str(demo["camhs"])))
    assert agency_rep.value.problems["coordinator_id"].startswith("Choose a clinic coordinator")
    with pytest.raises(Invalid) as other_area:
        create(session, east_clinic(demo, coordinator_id=str(demo["west"])))
    assert other_area.value.problems["coordinator_id"].startswith(
        "Grace Oyelaran is an Education Inclusion Partner for"
    )
    with session.begin():
        gone = make_person(session, email="left@kestrelford.example.org", name="Left", active=False)
    with pytest.raises(Invalid):
        create(session, east_clinic(demo, coordinator_id=str(gone.id)))
    # an EIP of the area, and any EIP for a borough-wide clinic
    assert create(session, east_clinic(demo, coordinator_id=str(demo["east"])))
    assert create(session, east_clinic(demo, name="Borough Clinic 2", area_id="", coordinator_id=str(demo["west"])))


def test_every_problem_is_named_at_once(session, demo):
    values = east_clinic(demo, name="", kind="", weekday="6", start_time="", location="", chair_rotation=[])
    values |= {"coordinator_id": "abc", "capacity_items": "0", "colour": "red"}
    with pytest.raises(Invalid) as refused:
        create(session, values)
    assert set(refused.value.problems) == {
        "name",
        "kind",
        "weekday",
        "start_time",
        "location",
        "chair_rotation",
        "coordinator_id",
        "capacity_items",
        "colour",
    }


def test_planning_a_demo_term_for_the_new_series_rotates_its_chairs(session, demo):
    series_id = create(session, east_clinic(demo))
    with session.begin():
        series = session.get(MeetingSeries, series_id)
        report = planning.plan_term(
            session, series=series, term=demo["spring"], now=NOW, actor_id=None, calendar_domain=DOMAIN
        )
    meetings = session.scalars(
        select(Meeting).where(Meeting.series_id == series_id).order_by(Meeting.meeting_date)
    ).all()
    # Tuesdays 5 January to 23 March 2027, less half-term (16 February): every week, as planning does
    assert len(report.created) == len(meetings) == 11
    assert meetings[0].meeting_date == date(2027, 1, 5) and date(2027, 2, 16) not in {m.meeting_date for m in meetings}
    assert meetings[0].starts_at == datetime(2027, 1, 5, 10, 0, tzinfo=UTC)  # GMT
    assert meetings[0].location == "Room 4, Eastgate Library" and meetings[0].minute_taker_id == demo["coordinator"]
    east, north = demo["east"], demo["north"]
    assert [m.chair_id for m in meetings] == [east] * 3 + [north] * 3 + [east] * 3 + [north] * 2
    # the demo clinic's meetings are untouched
    others = session.scalars(select(Meeting).join(MeetingSeries).where(MeetingSeries.name == SERIES_NAME)).all()
    assert len(others) == 26
