"""Planning a term's meetings, moving, cancelling, changing the chair and the series settings, on a real database."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from agencies.models import Role
from caseconf.audit import AuditEvent
from caseconf.errors import Conflict, Invalid
from meetings import planning
from meetings.models import (
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    MeetingStatusChange,
    Referral,
    ReferralStatus,
    Term,
)
from meetings.schedule import calendar_uid
from tests.factories import make_agency, make_area, make_person, make_school

NOW = datetime(2026, 8, 3, 9, 0, tzinfo=UTC)  # summer holiday, before the school year
DOMAIN = "kestrelford.example.org"


@contextmanager
def unit(session):
    """One unit of work, as an edge runs it; what the test read before is let go first."""
    if session.in_transaction():
        session.rollback()
    with session.begin():
        yield


@pytest.fixture
def world(session):
    area = make_area(session)
    chairs = [
        make_person(session, email=f"eip{n}@k.example.org", name=f"Eip {n}", role=Role.eip, area_id=area.id)
        for n in (1, 2, 3)
    ]
    coordinator = make_person(session, email="coord@k.example.org", name="Coord", role=Role.coordinator)
    make_agency(session, code="SAFEGUARDING", name="Safeguarding", group="safeguarding")
    series = MeetingSeries(
        name="Hot Clinic",
        kind=MeetingKind.hot_clinic,
        area_id=area.id,
        weekday=3,
        start_time=time(13, 30),
        duration_minutes=120,
        location="Room 2",
        chair_rotation=[c.id for c in chairs],
        chair_rotation_every=3,
        coordinator_id=coordinator.id,
        quorum_required_agencies=["SAFEGUARDING"],
    )
    autumn = Term(
        name="Autumn 2026",
        starts_on=date(2026, 9, 1),
        ends_on=date(2026, 12, 18),
        half_term_starts_on=date(2026, 10, 26),
        half_term_ends_on=date(2026, 10, 30),
        closed_days=["2026-11-26"],
    )
    spring = Term(
        name="Spring 2027",
        starts_on=date(2027, 1, 5),
        ends_on=date(2027, 3, 26),
        half_term_starts_on=date(2027, 2, 15),
        half_term_ends_on=date(2027, 2, 19),
        closed_days=[],
    )
    session.add_all([series, autumn, spring])
    session.commit()
    return {"series": series, "autumn": autumn, "spring": spring, "chairs": [c.id for c in chairs], "area": area}


def plan(session, world, term, now=NOW):
    with unit(session):
        return planning.plan_term(
            session, series=world["series"], term=world[term], now=now, actor_id=None, calendar_domain=DOMAIN
        )


def meetings_of(session, series):
    session.expire_all()
    return session.scalars(select(Meeting).where(Meeting.series_id == series.id).order_by(Meeting.meeting_date)).all()


def test_planning_a_term_makes_its_meetings_with_times_deadlines_history_and_audit(session, world):
    report = plan(session, world, "autumn")
    assert len(report.created) == 14 and report.already_planned == 0
    meetings = meetings_of(session, world["series"])
    first = meetings[0]
    assert first.meeting_date == date(2026, 9, 3) and first.status == MeetingStatus.planned
    assert first.starts_at == datetime(2026, 9, 3, 12, 30, tzinfo=UTC)  # 13:30 BST
    assert first.cutoff_at == datetime(2026, 8, 31, 11, 0, tzinfo=UTC) - timedelta(
        days=3
    )  # Friday: Monday is a bank holiday
    assert first.papers_due_at == datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    assert first.calendar_uid == calendar_uid(world["series"].id, date(2026, 9, 3), DOMAIN)
    assert first.minute_taker_id == world["series"].coordinator_id and first.location == "Room 2"
    histories = session.scalar(select(func.count()).select_from(MeetingStatusChange))
    audits = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "meeting.planned"))
    assert histories == 14 and audits == 14


def test_thursday_1330_stays_1330_in_london_either_side_of_the_clocks_changing(session, world):
    plan(session, world, "autumn")
    plan(session, world, "spring")
    by_date = {m.meeting_date: m for m in meetings_of(session, world["series"])}
    assert by_date[date(2026, 10, 22)].starts_at == datetime(2026, 10, 22, 12, 30, tzinfo=UTC)  # BST
    assert by_date[date(2026, 11, 5)].starts_at == datetime(2026, 11, 5, 13, 30, tzinfo=UTC)  # GMT
    assert by_date[date(2027, 3, 25)].starts_at == datetime(2027, 3, 25, 13, 30, tzinfo=UTC)  # GMT, before 28 March
    assert by_date[date(2027, 3, 25)].ends_at == datetime(2027, 3, 25, 15, 30, tzinfo=UTC)


def test_chairs_rotate_every_three_meetings_across_two_terms(session, world):
    plan(session, world, "autumn")
    plan(session, world, "spring")  # planned later: the rotation carries on from the autumn
    chairs = [m.chair_id for m in meetings_of(session, world["series"])]
    a, b, c = world["chairs"]
    expected = [[a, b, c][(i // 3) % 3] for i in range(len(chairs))]
    assert chairs == expected
    assert len(chairs) == 14 + 11  # the autumn's 14 and the spring's 11 (12 Thursdays less half-term)


def test_planning_twice_makes_nothing_new_and_keeps_a_moved_meeting(session, world):
    plan(session, world, "autumn")
    with unit(session):
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == date(2026, 12, 3)))
        planning.move_meeting(
            session, meeting=meeting, new_date=date(2026, 12, 2), now=NOW, actor_id=None, reason="Room booked"
        )
    again = plan(session, world, "autumn")
    assert again.created == [] and again.already_planned == 14
    days = [m.meeting_date for m in meetings_of(session, world["series"])]
    assert date(2026, 12, 2) in days and date(2026, 12, 3) not in days and len(days) == 14


def test_days_already_past_are_not_planned(session, world):
    report = plan(session, world, "autumn", now=datetime(2026, 10, 1, 12, 0, tzinfo=UTC))
    assert report.in_the_past == 4 and len(report.created) == 10  # 1 October itself starts at 13:30 BST


def test_moving_raises_the_sequence_keeps_the_uid_and_recomputes_deadlines(session, world):
    plan(session, world, "autumn")
    meeting = meetings_of(session, world["series"])[10]
    assert meeting.meeting_date == date(2026, 11, 19)
    uid = meeting.calendar_uid
    with unit(session):
        planning.move_meeting(
            session,
            meeting=meeting,
            new_date=date(2026, 11, 24),
            new_start_time=time(10, 0),
            new_location="Room 5",
            now=NOW,
            actor_id=world["chairs"][0],
            reason="Ofsted visit",
        )
    session.expire_all()
    assert meeting.sequence == 1 and meeting.calendar_uid == uid
    assert meeting.starts_at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC) and meeting.location == "Room 5"
    assert meeting.cutoff_at == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the Monday before the Tuesday
    assert meeting.quorum_check_at == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    moved = session.scalar(select(AuditEvent).where(AuditEvent.action == "meeting.moved"))
    assert moved.detail["reason"] == "Ofsted visit" and moved.detail["before"]["date"] == "2026-11-19"


@pytest.mark.parametrize(
    ("new_date", "reason", "field", "message"),
    [
        (date(2026, 7, 30), "x", "new_date", "must be in the future"),
        (date(2026, 11, 21), "x", "new_date", "weekend or bank holiday"),
        (date(2026, 12, 25), "x", "new_date", "weekend or bank holiday"),
        (date(2026, 11, 12), "x", "new_date", "already has a meeting"),
        (date(2026, 11, 24), " ", "reason", "Enter why"),
    ],
)
def test_moving_refuses_bad_dates_clearly(session, world, new_date, reason, field, message):
    plan(session, world, "autumn")
    meeting = meetings_of(session, world["series"])[10]
    with pytest.raises(Invalid) as refused, unit(session):
        planning.move_meeting(session, meeting=meeting, new_date=new_date, now=NOW, actor_id=None, reason=reason)
    assert message in refused.value.problems[field]
    assert meetings_of(session, world["series"])[10].sequence == 0


def test_a_meeting_that_has_started_cannot_be_moved_or_cancelled(session, world):
    plan(session, world, "autumn")
    meeting = meetings_of(session, world["series"])[0]
    later = meeting.starts_at + timedelta(minutes=1)
    with pytest.raises(Conflict), unit(session):
        planning.move_meeting(
            session, meeting=meeting, new_date=date(2026, 12, 1), now=later, actor_id=None, reason="late"
        )
    with pytest.raises(Conflict), unit(session):
        planning.cancel_meeting(session, meeting=meeting, reason="late", now=later, actor_id=None)


def add_item(session, meeting, referral, position):
    item = AgendaItem(
        meeting_id=meeting.id,
        kind=AgendaItemKind.referral,
        referral_id=referral.id,
        position=position,
        slot_minutes=15,
        status=AgendaItemStatus.listed,
        added_at=NOW,
    )
    session.add(item)
    session.flush()
    return item


def make_referral(session, school, referrer, reference):
    referral = Referral(
        reference=reference,
        status=ReferralStatus.accepted,
        school_id=school.id,
        referrer_id=referrer.id,
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(referral)
    session.flush()
    return referral


def test_cancelling_carries_listed_items_to_the_next_meeting_and_raises_the_sequence(session, world):
    plan(session, world, "autumn")
    meetings = meetings_of(session, world["series"])
    cancelled, following = meetings[10], meetings[11]
    with unit(session):
        school = make_school(session, area=world["area"])
        referrer = make_person(session, email="dsl@school.example.org")
        one, two, three = (make_referral(session, school, referrer, f"VPHC-2026-000{n}") for n in (1, 2, 3))
        kept = add_item(session, following, three, 1)
        first, second = add_item(session, cancelled, one, 1), add_item(session, cancelled, two, 2)
    with unit(session):
        new_items = planning.cancel_meeting(
            session, meeting=cancelled, reason="Chair unwell", now=NOW, actor_id=world["chairs"][0]
        )
        new_ids = [item.id for item in new_items]
    session.expire_all()
    assert cancelled.status == MeetingStatus.cancelled and cancelled.cancelled_reason == "Chair unwell"
    assert cancelled.sequence == 1
    assert first.status == second.status == AgendaItemStatus.deferred
    carried = [session.get(AgendaItem, i) for i in new_ids]
    assert [(i.meeting_id, i.carried_from_id, i.referral_id) for i in carried] == [
        (following.id, first.id, one.id),
        (following.id, second.id, two.id),
    ]
    assert [i.position for i in carried] == [kept.position + 1, kept.position + 2]
    assert all(i.added_at == NOW and i.status == AgendaItemStatus.listed for i in carried)
    change = session.scalar(select(MeetingStatusChange).where(MeetingStatusChange.to_status == MeetingStatus.cancelled))
    assert change.note == "Chair unwell" and change.from_status == MeetingStatus.planned


def test_cancelling_relists_a_referral_once_taken_off_the_next_agenda(session, world):
    plan(session, world, "autumn")
    meetings = meetings_of(session, world["series"])
    cancelled, following = meetings[10], meetings[11]
    with unit(session):
        school = make_school(session, area=world["area"])
        referrer = make_person(session, email="dsl@school.example.org")
        referral = make_referral(session, school, referrer, "VPHC-2026-0004")
        taken_off = add_item(session, following, referral, 1)
        taken_off.status = AgendaItemStatus.removed  # listed on the later clinic, then taken off it
        listed = add_item(session, cancelled, referral, 1)  # and listed on the earlier one
    with unit(session):
        carried = planning.cancel_meeting(session, meeting=cancelled, reason="Snow", now=NOW, actor_id=None)
    session.expire_all()
    # Still on an agenda: the row it had on the later clinic is listed again, pointing back.
    assert [item.id for item in carried] == [taken_off.id]
    assert taken_off.status == AgendaItemStatus.listed and taken_off.carried_from_id == listed.id
    assert listed.status == AgendaItemStatus.deferred


def test_cancelling_needs_a_reason_and_a_later_meeting_for_its_items(session, world):
    plan(session, world, "autumn")
    last = meetings_of(session, world["series"])[-1]
    with unit(session):
        school = make_school(session, area=world["area"])
        referrer = make_person(session, email="dsl@school.example.org")
        add_item(session, last, make_referral(session, school, referrer, "VPHC-2026-0009"), 1)
    with pytest.raises(Invalid) as no_reason, unit(session):
        planning.cancel_meeting(session, meeting=last, reason="", now=NOW, actor_id=None)
    assert "Enter why" in no_reason.value.problems["reason"]
    with pytest.raises(Invalid) as nowhere, unit(session):
        planning.cancel_meeting(session, meeting=last, reason="Snow", now=NOW, actor_id=None)
    assert "plan the next term" in nowhere.value.problems["reason"]
    plan(session, world, "spring")
    with unit(session):
        carried = planning.cancel_meeting(session, meeting=last, reason="Snow", now=NOW, actor_id=None)
        assert carried[0].meeting.meeting_date == date(2027, 1, 7)


def test_the_chair_must_be_an_active_eip(session, world):
    plan(session, world, "autumn")
    meeting = meetings_of(session, world["series"])[0]
    with unit(session):
        outsider = make_person(session, email="rep@camhs.example.org", role=Role.coordinator)
        retired = make_person(session, email="old@k.example.org", role=Role.eip, area_id=world["area"].id, active=False)
    for person_id in (outsider.id, retired.id, 999_999):
        with pytest.raises(Invalid), unit(session):
            planning.change_chair(session, meeting=meeting, chair_id=person_id, now=NOW, actor_id=None)
    new_chair = world["chairs"][2]
    with unit(session):
        planning.change_chair(session, meeting=meeting, chair_id=new_chair, now=NOW, actor_id=None)
    session.expire_all()
    assert meeting.chair_id == new_chair
    assert (
        session.scalar(select(AuditEvent).where(AuditEvent.action == "meeting.chair_changed")).detail["after"]
        == new_chair
    )


def test_series_settings_are_checked_field_by_field(session, world):
    values = {
        "start_time": "25:00",
        "duration_minutes": "0",
        "location": "",
        "quorum_required_agencies": "SAFEGUARDING, NOPE",
        "chair_rotation": [world["chairs"][0], 424242],
        "cutoff_weekday": "9",
    }
    with pytest.raises(Invalid) as refused, unit(session):
        planning.update_series(session, series=world["series"], values=values, now=NOW, actor_id=None)
    assert set(refused.value.problems) == set(values)
    assert "NOPE" in refused.value.problems["quorum_required_agencies"]
    with pytest.raises(Invalid) as too_full, unit(session):
        planning.update_series(session, series=world["series"], values={"capacity_items": "10"}, now=NOW, actor_id=None)
    assert "need 150 minutes" in too_full.value.problems["capacity_items"]


def test_changing_the_start_time_moves_upcoming_meetings_but_not_past_or_individually_moved_ones(session, world):
    plan(session, world, "autumn")
    meetings = meetings_of(session, world["series"])
    with unit(session):
        planning.move_meeting(
            session,
            meeting=meetings[12],
            new_date=meetings[12].meeting_date,
            new_start_time=time(9, 30),
            now=NOW,
            actor_id=None,
            reason="Morning this week",
        )
    later = datetime(2026, 9, 20, 9, 0, tzinfo=UTC)  # three meetings have been held by then
    first, _, third = world["chairs"]
    with unit(session):
        changed = planning.update_series(
            session,
            series=world["series"],
            values={"start_time": "14:00", "cutoff_time": "10:00", "chair_rotation": f"{third}, {first}"},
            now=later,
            actor_id=None,
        )
    meetings = meetings_of(session, world["series"])
    assert len(changed) == 10  # 14 less the 3 past and the one moved on its own
    assert meetings[0].start_time == time(13, 30) and meetings[0].sequence == 0
    assert meetings[3].starts_at == datetime(2026, 9, 24, 13, 0, tzinfo=UTC) and meetings[3].sequence == 1
    assert meetings[3].cutoff_at == datetime(2026, 9, 21, 9, 0, tzinfo=UTC)
    assert meetings[12].start_time == time(9, 30) and meetings[12].sequence == 1  # only its own move
    assert meetings[12].cutoff_at.hour == 10  # deadlines still follow the series (10:00 GMT)
    assert world["series"].chair_rotation == [third, first]
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "series.updated"))
    assert event.detail["changes"]["start_time"] == ["13:30:00", "14:00:00"]
