"""Admin pages for meeting series, meetings and term dates, through the real app with the demo borough."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from caseconf.clock import FixedClock
from meetings.demo import COORDINATOR, SERIES_NAME
from meetings.models import AgendaItem, AgendaItemStatus, Meeting, MeetingSeries, MeetingStatus, Term
from notifications.models import OutboundMessage
from tests.factories import DEMO_MONDAY, load_demo_series
from tests.web.conftest import csrf_from, sign_in

EIP_EAST = "eip.east@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock):
    series_id, meetings = load_demo_series(session_factory, clock.now())
    return {"series": series_id, "meetings": meetings}


def fresh(session, model, id_):
    session.expire_all()
    return session.get(model, id_)


@pytest.mark.parametrize("email", ["dsl@alderbrook.example.org", "camhs.rep@kestrelford.example.org", EIP_EAST])
def test_only_admins_and_the_coordinator_may_manage_meetings(client, session_factory, demo, email):
    meeting_id = demo["meetings"][date(2026, 12, 10)]
    sign_in(client, session_factory, email)
    for path in ("/admin/series", f"/admin/series/{demo['series']}", f"/admin/meetings/{meeting_id}", "/admin/terms"):
        assert client.get(path).status_code == 403, path
    token = csrf_from(client.get("/").text)
    refused = client.post(f"/admin/meetings/{meeting_id}/cancel", data={"reason": "x", "csrf_token": token})
    assert refused.status_code == 403
    assert client.get("/admin/terms.csv").status_code == 403


def test_the_coordinator_sees_the_series_and_its_meetings_in_london_time(client, session_factory, demo):
    sign_in(client, session_factory, COORDINATOR)
    listing = client.get("/admin/series")
    assert listing.status_code == 200 and SERIES_NAME in listing.text
    assert "Thursday 26 November 2026, 13:30" in listing.text  # the next meeting, in GMT
    page = client.get(f"/admin/series/{demo['series']}")
    assert page.status_code == 200
    assert "Thu 22 Oct 2026, 13:30" in page.text and "Thu 5 Nov 2026, 13:30" in page.text  # across the clock change
    assert "Autumn 2026" in page.text and "Plan meetings for Autumn 2026" in page.text
    assert "Plan meetings for Spring 2027" in page.text
    assert "Minutes circulated" in page.text  # the demo's held meetings
    assert "Not recorded as held" in page.text  # past demo meetings left planned


def test_admins_may_too_and_the_admin_page_links_here(client, session_factory, demo):
    sign_in(client, session_factory, "admin@kestrelford.example.org")
    home = client.get("/admin").text
    assert 'href="/admin/series"' in home and 'href="/admin/terms"' in home
    assert client.get(f"/admin/series/{demo['series']}/edit").status_code == 200


def test_editing_the_series_keeps_what_was_typed_on_error_and_saves_when_right(client, session_factory, session, demo):
    sign_in(client, session_factory, COORDINATOR)
    form_page = client.get(f"/admin/series/{demo['series']}/edit")
    assert 'value="13:30"' in form_page.text
    data = {
        "csrf_token": csrf_from(form_page.text),
        "start_time": "25:99",
        "duration_minutes": "120",
        "location": "Council Chamber, Town Hall",
        "capacity_items": "8",
        "item_minutes": "15",
        "cutoff_weekday": "0",
        "cutoff_time": "12:00",
        "papers_weekday": "1",
        "papers_time": "09:00",
        "quorum_min_agencies": "3",
        "quorum_required_agencies": ["SAFEGUARDING", "MASH"],
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
    }
    refused = client.post(f"/admin/series/{demo['series']}/edit", data=data)
    assert refused.status_code == 400
    assert "The start time must be a time like 13:30" in refused.text
    assert 'href="#start_time"' in refused.text and 'href="#chair-1"' in refused.text
    assert 'value="Council Chamber, Town Hall"' in refused.text and 'value="25:99"' in refused.text
    assert fresh(session, MeetingSeries, demo["series"]).location != "Council Chamber, Town Hall"

    with session_factory() as s:
        chairs = fresh(s, MeetingSeries, demo["series"]).chair_rotation
    saved = client.post(
        f"/admin/series/{demo['series']}/edit",
        data=data | {"start_time": "14:00", "chairs": [str(c) for c in chairs]},
    )
    assert saved.status_code == 303
    banner = client.get(saved.headers["location"]).text
    # the autumn's last four and the spring's eleven
    assert "The series settings have been saved. 15 upcoming meetings were updated to match." in banner
    series = fresh(session, MeetingSeries, demo["series"])
    assert series.location == "Council Chamber, Town Hall" and series.quorum_required_agencies == [
        "SAFEGUARDING",
        "MASH",
    ]
    meeting = session.get(Meeting, demo["meetings"][date(2026, 12, 10)])
    assert meeting.starts_at == datetime(2026, 12, 10, 14, 0, tzinfo=UTC) and meeting.sequence == 1


def test_moving_a_meeting_from_its_page(client, session_factory, session, demo):
    meeting_id = demo["meetings"][date(2026, 12, 10)]
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/admin/meetings/{meeting_id}")
    assert page.status_code == 200 and "Thursday 10 December 2026" in page.text
    move = {
        "csrf_token": csrf_from(page.text),
        "new_date-day": "12",
        "new_date-month": "12",
        "new_date-year": "2026",
        "new_start_time": "10:00",
        "new_location": "Room 4",
        "reason": "The committee room is needed for a council meeting",
    }
    refused = client.post(f"/admin/meetings/{meeting_id}/move", data=move)
    assert refused.status_code == 400
    assert "weekend or bank holiday" in refused.text and 'href="#new_date-day"' in refused.text
    assert "The committee room is needed for a council meeting" in refused.text and 'value="Room 4"' in refused.text
    moved = client.post(f"/admin/meetings/{meeting_id}/move", data=move | {"new_date-day": "9"})
    assert moved.status_code == 303
    after = client.get(moved.headers["location"]).text
    assert "The meeting has been moved" in after and "Wednesday 9 December 2026" in after and "10:00 to 12:00" in after
    meeting = fresh(session, Meeting, meeting_id)
    assert meeting.meeting_date == date(2026, 12, 9) and meeting.sequence == 1 and meeting.location == "Room 4"
    nonsense = client.post(f"/admin/meetings/{meeting_id}/move", data=move | {"new_date-month": "13"})
    assert nonsense.status_code == 400 and "Enter a real date" in nonsense.text


def test_a_past_meeting_offers_no_changes_and_refuses_them(client, session_factory, demo):
    meeting_id = demo["meetings"][date(2026, 11, 19)]
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/admin/meetings/{meeting_id}")
    assert "can no longer be moved" in page.text and "Move the meeting" not in page.text
    refused = client.post(
        f"/admin/meetings/{meeting_id}/cancel", data={"reason": "Too late", "csrf_token": csrf_from(page.text)}
    )
    assert refused.status_code == 409 and "Nothing was changed" in refused.text


def test_cancelling_asks_first_needs_a_reason_and_carries_the_agenda(client, session_factory, session, demo):
    meeting_id = demo["meetings"][date(2026, 12, 3)]
    listed = session.scalars(
        select(AgendaItem).where(AgendaItem.meeting_id == meeting_id, AgendaItem.status == AgendaItemStatus.listed)
    ).all()
    assert listed, "the demo lists a referral on 3 December"
    sign_in(client, session_factory, COORDINATOR)
    confirm = client.get(f"/admin/meetings/{meeting_id}/cancel")
    assert confirm.status_code == 200
    assert "Are you sure you want to cancel the meeting on Thursday 3 December 2026" in confirm.text
    assert "will move to\n  the meeting on Thursday 10 December 2026" in confirm.text
    token = csrf_from(confirm.text)
    refused = client.post(f"/admin/meetings/{meeting_id}/cancel", data={"reason": "  ", "csrf_token": token})
    assert refused.status_code == 400 and "Enter why the meeting is cancelled" in refused.text
    done = client.post(f"/admin/meetings/{meeting_id}/cancel", data={"reason": "Snow", "csrf_token": token})
    assert done.status_code == 303
    banner = client.get(done.headers["location"]).text
    assert f"{len(listed)} agenda items were carried to the next meeting" in banner and "Snow" in banner
    meeting = fresh(session, Meeting, meeting_id)
    assert meeting.status == MeetingStatus.cancelled and meeting.sequence == 1
    carried = session.scalars(select(AgendaItem).where(AgendaItem.carried_from_id == listed[0].id)).one()
    assert carried.meeting_id == demo["meetings"][date(2026, 12, 10)]
    # The school and the area's EIP are told where the referral went (reference and date only).
    notices = session.scalars(
        select(OutboundMessage).where(OutboundMessage.idempotency_key.like(f"item-moved:{carried.id}:%"))
    ).all()
    assert notices and all("cancelled" in n.body_text and "10 December 2026" in n.body_text for n in notices)
    assert carried.referral.school.safeguarding_email in {n.recipient for n in notices}
    child = carried.referral.child
    assert all(child.legal_first_name not in n.body_text + n.subject for n in notices)


def test_changing_the_chair_offers_only_eips(client, session_factory, session, demo):
    meeting_id = demo["meetings"][date(2026, 12, 10)]
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/admin/meetings/{meeting_id}")
    token = csrf_from(page.text)
    with session_factory() as s:
        from agencies.models import Person

        coordinator = s.scalar(select(Person).where(Person.email == COORDINATOR))
        east = s.scalar(select(Person).where(Person.email == EIP_EAST))
    assert f'value="{coordinator.id}"' not in page.text.split('id="chair_id"', 1)[1].split("</select>")[0]
    refused = client.post(
        f"/admin/meetings/{meeting_id}/chair", data={"chair_id": str(coordinator.id), "csrf_token": token}
    )
    assert refused.status_code == 400 and "Choose an Education Inclusion Partner" in refused.text
    current = fresh(session, Meeting, meeting_id).chair_id
    new_chair = east.id if current != east.id else fresh(session, MeetingSeries, demo["series"]).chair_rotation[0]
    changed = client.post(f"/admin/meetings/{meeting_id}/chair", data={"chair_id": str(new_chair), "csrf_token": token})
    assert changed.status_code == 303
    assert fresh(session, Meeting, meeting_id).chair_id == new_chair


SUMMER = (
    "name,starts_on,ends_on,half_term_starts_on,half_term_ends_on,closed_days\n"
    "Summer 2027,2027-04-12,2027-07-21,2027-05-31,2027-06-04,2027-06-10\n"
)


def test_term_dates_upload_shows_every_problem_or_imports_and_plans(client, session_factory, session, demo):
    sign_in(client, session_factory, COORDINATOR)
    page = client.get("/admin/terms")
    assert page.status_code == 200 and "Autumn 2026" in page.text
    token = csrf_from(page.text)
    bad = SUMMER + "Broken,2027-09-01,2027-08-01,,,\nWorse,someday,2027-12-01,,,\n"
    refused = client.post(
        "/admin/terms", data={"csrf_token": token}, files={"terms_file": ("terms.csv", bad.encode(), "text/csv")}
    )
    assert refused.status_code == 400
    assert "line 3: the term ends (2027-08-01) before it starts" in refused.text
    assert "line 4: starts_on &#39;someday&#39; is not a date" in refused.text
    assert 'href="#terms_file"' in refused.text
    assert session.scalar(select(Term).where(Term.name == "Summer 2027")) is None
    empty = client.post("/admin/terms", data={"csrf_token": token}, files={"terms_file": ("", b"", "text/csv")})
    assert empty.status_code == 400 and "Choose a CSV or ICS file" in empty.text

    imported = client.post(
        "/admin/terms", data={"csrf_token": token}, files={"terms_file": ("terms.csv", SUMMER.encode(), "text/csv")}
    )
    assert imported.status_code == 200 and "Term dates imported" in imported.text and "1 created" in imported.text
    download = client.get("/admin/terms.csv")
    assert download.headers["content-type"].startswith("text/csv") and "Summer 2027,2027-04-12" in download.text

    series_page = client.get(f"/admin/series/{demo['series']}")
    term_id = session.scalar(select(Term.id).where(Term.name == "Summer 2027"))
    planned = client.post(
        f"/admin/series/{demo['series']}/plan",
        data={"term_id": str(term_id), "csrf_token": csrf_from(series_page.text)},
    )
    assert planned.status_code == 303
    assert "12 meetings planned." in client.get(planned.headers["location"]).text
    again = client.post(
        f"/admin/series/{demo['series']}/plan",
        data={"term_id": str(term_id), "csrf_token": csrf_from(series_page.text)},
    )
    assert "Nothing to plan" in client.get(again.headers["location"]).text


def test_unknown_ids_are_not_found(client, session_factory, demo):
    sign_in(client, session_factory, COORDINATOR)
    assert client.get("/admin/meetings/99999").status_code == 404
    assert client.get("/admin/series/99999999999").status_code == 404


def test_both_series_forms_show_the_follow_through_timings_from_one_partial(client, session_factory, demo):
    sign_in(client, session_factory, "admin@kestrelford.example.org")
    for url in (f"/admin/series/{demo['series']}/edit", "/admin/series/new"):
        page = client.get(url).text
        assert "After the meeting" in page
        for name in (
            "outcome_due_working_days",
            "minutes_due_working_days",
            "corrections_working_days",
            "action_reminder_working_days",
            "chase_every_working_days",
            "escalate_after_chases",
            "blockage_working_days",
        ):
            assert f'name="{name}"' in page, (url, name)
    edit = client.get(f"/admin/series/{demo['series']}/edit").text
    assert 'id="corrections_working_days" name="corrections_working_days" type="text" value="10"' in edit
