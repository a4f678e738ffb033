"""Team Around the School pages for a school, through the real app: the school's series and next meeting,
adding a pupil of concern (mistakes shown with what was typed kept), taking one off, and who may not."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from agencies.models import School
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.demo_pupils import TAS_NAME
from meetings.models import ConcernStatus, MeetingSeries, PupilOfConcern
from tests.factories import DEMO_MONDAY
from tests.web.conftest import csrf_from, sign_in

DSL = "dsl@alderbrook.example.org"  # Alderbrook Primary, Copperbeech Infant and Greywater Junior
OTHER_SCHOOL = "senco@millrace.example.org"
REP = "camhs.rep@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock) -> dict:
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now(), team_around_school=True)
        alderbrook = session.scalar(select(School).where(School.urn == "900001"))
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == TAS_NAME))
        return {"alderbrook": alderbrook.id, "series": series.id}


def concerns_of(session, school_id: int) -> list[PupilOfConcern]:
    session.expire_all()
    return list(
        session.scalars(select(PupilOfConcern).where(PupilOfConcern.school_id == school_id).order_by(PupilOfConcern.id))
    )


def test_the_school_sees_its_series_next_meeting_and_pupils(client, session_factory, demo):
    sign_in(client, session_factory, DSL)
    home = client.get("/")
    assert 'href="/tas"' in home.text
    page = client.get("/tas")
    assert page.status_code == 200
    assert TAS_NAME in page.text
    assert "Wednesday 9 December 2026 at 3:45pm" in page.text  # the extra meeting before Christmas
    assert "RM Year 5" in page.text and "Anonymised: Year 3 pupil" in page.text
    assert "Waiting for the next meeting" in page.text
    # Its other two schools have no series yet: said plainly.
    assert "Copperbeech Infant has no Team Around the School meetings yet" in page.text


def test_a_school_adds_a_pupil_and_mistakes_keep_what_was_typed(client, session_factory, session, demo):
    sign_in(client, session_factory, DSL)
    form = client.get(f"/tas/concerns/new?school={demo['alderbrook']}")
    assert form.status_code == 200
    assert "Never the pupil&#39;s name" in form.text
    data = {
        "csrf_token": csrf_from(form.text),
        "school_id": str(demo["alderbrook"]),
        "label": "Jordan Blackwood",
        "concern": "Has stopped eating lunch and sits alone.",
        "ask": "",
        "agreed": "yes",
        "agreed_day": "31",
        "agreed_month": "2",
        "agreed_year": "2026",
    }
    wrong = client.post("/tas/concerns/new", data=data)
    assert wrong.status_code == 400
    assert "There is a problem" in wrong.text
    assert "Enter initials and year group only, not the pupil&#39;s name" in wrong.text
    assert "Enter a real date for when the family agreed" in wrong.text
    assert 'href="#label"' in wrong.text and 'href="#agreed_on"' in wrong.text
    assert "Has stopped eating lunch and sits alone." in wrong.text  # kept
    assert 'value="31"' in wrong.text and 'value="yes" checked' in wrong.text
    assert len(concerns_of(session, demo["alderbrook"])) == 2  # nothing added

    missing = client.post("/tas/concerns/new", data=data | {"label": "", "concern": "", "agreed": ""})
    assert missing.status_code == 400
    assert "Enter the pupil&#39;s initials and year group" in missing.text
    assert "Enter what the school is worried about" in missing.text
    assert "Say whether the family has agreed" in missing.text

    added = client.post(
        "/tas/concerns/new", data=data | {"label": "JB Year 4", "agreed_day": "20", "agreed_month": "11"}
    )
    assert added.status_code == 303 and added.headers["location"] == "/tas?done=added"
    shown = client.get(added.headers["location"])
    assert "JB Year 4" in shown.text and "They will be on the agenda of your next" in shown.text
    new = concerns_of(session, demo["alderbrook"])[-1]
    assert (new.label, new.status, new.series_id, new.parent_agreed_on) == (
        "JB Year 4",
        ConcernStatus.open,
        demo["series"],
        date(2026, 11, 20),
    )
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "concern.added")).one()
    assert event.record_id == str(new.id)


def test_a_school_takes_a_pupil_off_its_list(client, session_factory, session, demo):
    sign_in(client, session_factory, DSL)
    page = client.get("/tas")
    first = concerns_of(session, demo["alderbrook"])[0]
    response = client.post(f"/tas/concerns/{first.id}/remove", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert concerns_of(session, demo["alderbrook"])[0].status == ConcernStatus.removed
    assert "Taken off" in client.get("/tas").text


def test_another_school_or_an_agency_cannot_touch_the_list(client, session_factory, session, demo):
    first = concerns_of(session, demo["alderbrook"])[0]
    sign_in(client, session_factory, OTHER_SCHOOL)
    page = client.get("/tas")
    assert page.status_code == 200 and "RM Year 5" not in page.text
    refused = client.post(f"/tas/concerns/{first.id}/remove", data={"csrf_token": csrf_from(page.text)})
    assert refused.status_code == 404
    assert concerns_of(session, demo["alderbrook"])[0].status == ConcernStatus.open

    client.cookies.clear()
    sign_in(client, session_factory, REP)
    assert client.get("/tas").status_code == 403
    assert client.get("/tas/concerns/new").status_code == 403


# ---- Team Around the School actions: who sees and updates them --------------------------------------------


def tas_action(session_factory, demo, *, involves_school: bool, due_on: date | None = None) -> int:
    """An action agreed at Alderbrook's Team Around the School meeting about one of its pupils of concern:
    no referral, owned by early help."""
    from datetime import timedelta

    from agencies.models import Agency
    from meetings.models import Action, ActionStatus, Meeting

    with transaction(session_factory) as session:
        meeting = session.scalar(
            select(Meeting).where(Meeting.series_id == demo["series"]).order_by(Meeting.meeting_date)
        )
        concern = session.scalar(select(PupilOfConcern).where(PupilOfConcern.school_id == demo["alderbrook"]))
        action = Action(
            meeting_id=meeting.id,
            concern_id=concern.id,
            description="Early help to offer the family a key worker.",
            owner_agency_id=session.scalar(select(Agency.id).where(Agency.code == "EARLY_HELP")),
            due_on=due_on or DEMO_MONDAY.date() + timedelta(days=30),
            status=ActionStatus.open,
            created_at=DEMO_MONDAY,
            involves_school=involves_school,
        )
        session.add(action)
        session.flush()
        return action.id


def test_a_tas_action_belongs_to_its_schools_area_and_is_seen_by_the_school(client, session_factory, demo):
    involving = tas_action(session_factory, demo, involves_school=True)
    agency_only = tas_action(session_factory, demo, involves_school=False)
    # Another area's EIP neither sees nor may cancel it, on its page or the tracker.
    sign_in(client, session_factory, "eip.west@kestrelford.example.org")
    assert client.get(f"/actions/{involving}").status_code == 403
    tracker = client.get("/actions?tab=all")
    assert f"ACT-{involving}" not in tracker.text and f"ACT-{agency_only}" not in tracker.text
    page = client.get("/actions?tab=all")
    token = csrf_from(page.text)
    refused = client.post(f"/actions/{involving}", data={"kind": "cancelled", "note": "Not ours", "csrf_token": token})
    assert refused.status_code == 403
    # The school's own area's EIP may.
    client.cookies.clear()
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    assert client.get(f"/actions/{involving}").status_code == 200
    tracker = client.get("/actions?tab=all")
    assert f"ACT-{involving}" in tracker.text and f"ACT-{agency_only}" in tracker.text
    updated = client.post(
        f"/actions/{involving}",
        data={"kind": "update", "note": "Key worker named", "csrf_token": csrf_from(tracker.text)},
    )
    assert updated.status_code == 303
    # The school sees the agency's action about its pupil that involves it, not the one that does not.
    client.cookies.clear()
    sign_in(client, session_factory, DSL)
    assert client.get(f"/actions/{involving}").status_code == 200
    assert client.get(f"/actions/{agency_only}").status_code == 403
    tracker = client.get("/actions?tab=all")
    assert f"ACT-{involving}" in tracker.text and f"ACT-{agency_only}" not in tracker.text
    # Another school sees neither.
    client.cookies.clear()
    sign_in(client, session_factory, OTHER_SCHOOL)
    assert client.get(f"/actions/{involving}").status_code == 403
    assert f"ACT-{involving}" not in client.get("/actions?tab=all").text


def test_late_on_a_summer_evening_it_is_already_tomorrow_in_london(client, session_factory, session, clock, demo):
    """23:30 UTC on 20 October 2026 is 00:30 on the 21st in London: agreed "today" is not in the future, and
    an action due on the 20th is overdue."""
    from datetime import UTC, datetime

    due_yesterday = tas_action(session_factory, demo, involves_school=True, due_on=date(2026, 10, 20))
    sign_in(client, session_factory, DSL)
    clock.at = datetime(2026, 10, 20, 23, 30, tzinfo=UTC)
    page = client.get("/tas")
    assert page.status_code == 200
    listed = page.text.split(f'href="/actions/{due_yesterday}"', 1)[1].split("</li>", 1)[0]
    assert "due 20 October 2026" in listed and "overdue" in listed
    form = client.get(f"/tas/concerns/new?school={demo['alderbrook']}")
    added = client.post(
        "/tas/concerns/new",
        data={
            "csrf_token": csrf_from(form.text),
            "school_id": str(demo["alderbrook"]),
            "label": "TW Year 3",
            "concern": "Late most mornings.",
            "ask": "",
            "agreed": "yes",
            "agreed_day": "21",
            "agreed_month": "10",
            "agreed_year": "2026",
        },
    )
    assert added.status_code == 303, added.text
    assert concerns_of(session, demo["alderbrook"])[-1].parent_agreed_on == date(2026, 10, 21)
