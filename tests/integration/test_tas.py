"""Team Around the School: half-termly planning, the agenda built from a school's list at the freeze,
carried over and taken off like other items, in the papers, and the demo's school series loaded once."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from agencies.models import Agency, Person, School
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import agenda, concerns, papers, planning
from meetings.demo import load_demo
from meetings.demo_pupils import TAS_EXTRA_MEETING, TAS_NAME
from meetings.invitations import invitees
from meetings.models import (
    AgendaItemKind,
    AgendaItemStatus,
    ConcernStatus,
    Decision,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    PupilOfConcern,
    Term,
)
from notifications.papers_mail import freeze_meeting
from tests.factories import DEMO_MONDAY, MAIL
from tests.integration.test_papers import pdf_text

AUTUMN = Term(
    name="Autumn 2026",
    starts_on=date(2026, 9, 1),
    ends_on=date(2026, 12, 18),
    half_term_starts_on=date(2026, 10, 26),
    half_term_ends_on=date(2026, 10, 30),
    closed_days=[],
)
SPRING = Term(
    name="Spring 2027",
    starts_on=date(2027, 1, 5),
    ends_on=date(2027, 3, 26),
    half_term_starts_on=date(2027, 2, 15),
    half_term_ends_on=date(2027, 2, 19),
    closed_days=[],
)
DSL = "dsl@alderbrook.example.org"


def tas(weekday: int = 2, term_time_only: bool = True) -> MeetingSeries:
    return MeetingSeries(
        id=7,
        name="TAS",
        kind=MeetingKind.team_around_school,
        school_id=1,
        weekday=weekday,
        start_time=time(15, 45),
        duration_minutes=90,
        term_time_only=term_time_only,
    )


# ---- planning ------------------------------------------------------------------------------------


def test_a_tas_meets_once_a_half_term_in_the_first_full_week_of_each_half():
    # Autumn starts on a Tuesday: its first full week is 7 September; the second half starts on 2 November.
    assert planning.meeting_dates(tas(), AUTUMN) == [date(2026, 9, 9), date(2026, 11, 4)]
    # Spring starts on Tuesday 5 January; the second half on Monday 22 February.
    assert planning.meeting_dates(tas(), SPRING) == [date(2027, 1, 13), date(2027, 2, 24)]
    assert planning.meeting_dates(tas(weekday=0), [AUTUMN, SPRING]) == [
        date(2026, 9, 7),
        date(2026, 11, 2),
        date(2027, 1, 11),
        date(2027, 2, 22),
    ]
    # The hot clinic stays weekly: every Wednesday of the term but half-term.
    weekly = MeetingSeries(id=8, name="Clinic", kind=MeetingKind.hot_clinic, weekday=2, term_time_only=True)
    assert len(planning.meeting_dates(weekly, AUTUMN)) == 15


def test_a_bank_holiday_or_closed_day_moves_the_meeting_a_week_on():
    summer = Term(
        name="Summer 2027",
        starts_on=date(2027, 5, 3),  # early May bank holiday, a Monday
        ends_on=date(2027, 7, 21),
        half_term_starts_on=date(2027, 5, 31),
        half_term_ends_on=date(2027, 6, 4),
        closed_days=["2027-06-09"],  # a training day on the second half's first Wednesday
    )
    assert planning.meeting_dates(tas(weekday=0), summer) == [date(2027, 5, 10), date(2027, 6, 7)]
    assert planning.meeting_dates(tas(weekday=2), summer) == [date(2027, 5, 5), date(2027, 6, 16)]
    no_half_term = Term(name="Short", starts_on=date(2027, 1, 5), ends_on=date(2027, 1, 29), closed_days=[])
    assert planning.meeting_dates(tas(), no_half_term) == [date(2027, 1, 13)]


@pytest.fixture
def demo(session_factory) -> dict:
    with transaction(session_factory) as session:
        load_demo(session, now=DEMO_MONDAY, team_around_school=True)
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == TAS_NAME))
        extra = session.scalar(
            select(Meeting).where(Meeting.series_id == series.id, Meeting.meeting_date == TAS_EXTRA_MEETING)
        )
        return {"series": series.id, "school": series.school_id, "extra": extra.id}


def test_planning_a_term_for_a_tas_series_makes_one_meeting_a_half_term_once(session_factory, demo):
    with transaction(session_factory) as session:
        series = session.get(MeetingSeries, demo["series"])
        summer = Term(
            name="Summer 2027",
            starts_on=date(2027, 4, 12),
            ends_on=date(2027, 7, 21),
            half_term_starts_on=date(2027, 5, 31),
            half_term_ends_on=date(2027, 6, 4),
            closed_days=[],
        )
        session.add(summer)
        session.flush()
        report = planning.plan_term(
            session, series=series, term=summer, now=DEMO_MONDAY, actor_id=None, calendar_domain="example.org"
        )
        assert [m.meeting_date for m in report.created] == [date(2027, 4, 14), date(2027, 6, 9)]
        again = planning.plan_term(
            session, series=series, term=summer, now=DEMO_MONDAY, actor_id=None, calendar_domain="example.org"
        )
        assert again.created == [] and again.already_planned == 2


# ---- the demo school's series ------------------------------------------------------------------------


def test_the_demo_school_has_a_half_termly_series_with_its_partners(session_factory, session, demo):
    series = session.get(MeetingSeries, demo["series"])
    days = session.scalars(select(Meeting.meeting_date).where(Meeting.series_id == series.id)).all()
    # Once a half-term in Autumn 2026 and Spring 2027, and the extra meeting before Christmas.
    assert sorted(days) == [
        date(2026, 9, 9),
        date(2026, 11, 4),
        TAS_EXTRA_MEETING,
        date(2027, 1, 13),
        date(2027, 2, 24),
    ]
    assert series.kind == MeetingKind.team_around_school
    assert sorted(m.agency.code for m in series.members) == ["EARLY_HELP", "HEALTH", "SAFEGUARDING"]
    meeting = session.get(Meeting, demo["extra"])
    who = {(i.person.email, i.role) for i in invitees(session, meeting)}
    assert (DSL, "school") in who and ("health.rep@kestrelford.example.org", "member") in who
    labels = session.scalars(select(PupilOfConcern.label).where(PupilOfConcern.school_id == demo["school"])).all()
    assert sorted(labels) == ["Anonymised: Year 3 pupil", "RM Year 5"]
    # The demo clinic's decisions carry the label of their outcome.
    decisions = session.scalars(select(Decision)).all()
    assert decisions and all(d.option is not None and d.option.code == d.outcome for d in decisions)


def test_loading_the_demo_with_its_tas_twice_adds_nothing(session_factory, demo):
    def counts():
        with session_factory() as s:
            return [s.scalar(select(func.count()).select_from(t)) for t in (MeetingSeries, Meeting, PupilOfConcern)]

    before = counts()
    with transaction(session_factory) as session:
        again = load_demo(session, now=DEMO_MONDAY + timedelta(days=40), team_around_school=True)
    assert not again.changed and counts() == before


# ---- the agenda at the freeze --------------------------------------------------------------------------


def freeze(session_factory, meeting_id: int):
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, meeting_id)
        return freeze_meeting(session, meeting_id, now=meeting.cutoff_at + timedelta(minutes=1), mail=MAIL)


def add(session_factory, demo, label: str, *, school_urn: str = "900001") -> int:
    with transaction(session_factory) as session:
        school = session.scalar(select(School).where(School.urn == school_urn))
        series = concerns.tas_series_for(session, school.id)
        return concerns.add_concern(
            session,
            school=school,
            series=series,
            added_by=session.scalar(select(Person).where(Person.email == DSL)),
            label=label,
            concern="Worried about attendance.",
            ask="Advice.",
            parent_agreed_on=None,
            now=DEMO_MONDAY,
        ).id


def test_the_agenda_is_built_from_the_schools_list_at_the_freeze(session_factory, session, demo):
    other_school = add(session_factory, demo, "KT Year 2", school_urn="900004")  # Copperbeech: not this TAS
    taken_off = add(session_factory, demo, "ZZ Year 6")
    with transaction(session_factory) as s:
        dsl = s.scalar(select(Person).where(Person.email == DSL))
        concerns.remove_concern(s, concern_id=taken_off, school_ids={demo["school"]}, by=dsl, now=DEMO_MONDAY)

    result = freeze(session_factory, demo["extra"])
    assert result is not None and len(result.concerns_added) == 2
    session.expire_all()
    meeting = session.get(Meeting, demo["extra"])
    assert meeting.status == MeetingStatus.agenda_frozen
    listed = agenda.listed_items(meeting)
    assert [i.kind for i in listed] == [AgendaItemKind.pupil_of_concern] * 2
    by_label = {session.get(PupilOfConcern, i.concern_id).label: i for i in listed}
    assert list(by_label) == ["RM Year 5", "Anonymised: Year 3 pupil"]  # oldest first
    assert all(i.referral_id is None and i.slot_minutes == 15 for i in listed)
    statuses = dict(session.execute(select(PupilOfConcern.label, PupilOfConcern.status)).tuples().all())
    assert statuses["RM Year 5"] == statuses["Anonymised: Year 3 pupil"] == ConcernStatus.listed
    assert statuses["ZZ Year 6"] == ConcernStatus.removed
    assert session.get(PupilOfConcern, other_school).status == ConcernStatus.open
    assert [agenda.item_label(i) for i in listed] == ["new", "new"]

    # Listed now: the school can no longer take it off itself; a pupil added now waits for the next meeting.
    with pytest.raises(Conflict), transaction(session_factory) as s:
        dsl = s.scalar(select(Person).where(Person.email == DSL))
        concerns.remove_concern(
            s, concern_id=listed[0].concern_id, school_ids={demo["school"]}, by=dsl, now=DEMO_MONDAY
        )
    late = add(session_factory, demo, "LT Year 1")
    next_meeting = session.scalar(
        select(Meeting).where(Meeting.series_id == demo["series"], Meeting.meeting_date == date(2027, 1, 13))
    )
    frozen_next = freeze(session_factory, next_meeting.id)
    assert [i.concern_id for i in frozen_next.concerns_added] == [late]


def test_the_papers_show_the_label_concern_and_ask_only(session_factory, session, demo):
    freeze(session_factory, demo["extra"])
    with session_factory() as s:
        meeting = s.get(Meeting, demo["extra"])
        early_help = s.scalar(select(Agency).where(Agency.code == "EARLY_HELP"))
        text = pdf_text(papers.build_pack(s, meeting, agency=early_help))
    flat = " ".join(text.split())
    assert "Pupil of concern: RM Year 5" in flat
    assert "Lateness has doubled since October" in flat
    assert "Is the family known to early help" in flat
    assert "Not recorded: discuss without naming the pupil" in flat  # the anonymised one


def test_over_capacity_a_pupil_is_carried_to_the_next_meeting(session_factory, session, demo):
    with transaction(session_factory) as s:
        s.get(MeetingSeries, demo["series"]).capacity_items = 1
    result = freeze(session_factory, demo["extra"])
    assert len(result.moved) == 1
    moved = result.moved[0]
    assert moved.new_item.kind == AgendaItemKind.pupil_of_concern and moved.new_item.carried_from_id is not None
    assert moved.meeting.meeting_date == date(2027, 1, 13)
    assert agenda.item_label(moved.new_item) == "carried forward"
    session.expire_all()
    assert session.get(PupilOfConcern, moved.new_item.concern_id).status == ConcernStatus.listed


def test_a_pupil_taken_off_the_agenda_waits_for_the_next_freeze(session_factory, session, demo):
    freeze(session_factory, demo["extra"])
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, demo["extra"])
        item = agenda.listed_items(meeting)[0]
        concern_id = item.concern_id
        agenda.remove_item(
            s,
            meeting=meeting,
            item_id=item.id,
            now=meeting.cutoff_at + timedelta(hours=1),
            actor_id=meeting.series.coordinator_id,
            to_next_meeting=False,
        )
        assert item.status == AgendaItemStatus.removed
    session.expire_all()
    assert session.get(PupilOfConcern, concern_id).status == ConcernStatus.open


def test_cancelling_a_frozen_tas_meeting_carries_its_pupils_of_concern(session_factory, session, demo):
    freeze(session_factory, demo["extra"])
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, demo["extra"])
        concern_ids = sorted(i.concern_id for i in agenda.listed_items(meeting))
        assert concern_ids
        carried = planning.cancel_meeting(
            s, meeting=meeting, reason="School closed: snow", now=meeting.cutoff_at + timedelta(hours=2), actor_id=None
        )
        assert sorted(i.concern_id for i in carried) == concern_ids
    session.expire_all()
    following = session.scalar(
        select(Meeting).where(Meeting.series_id == demo["series"], Meeting.meeting_date == date(2027, 1, 13))
    )
    listed = agenda.listed_items(following)
    assert sorted(i.concern_id for i in listed) == concern_ids
    assert all(i.kind == AgendaItemKind.pupil_of_concern and i.carried_from_id for i in listed)
    assert session.get(Meeting, demo["extra"]).status == MeetingStatus.cancelled
    assert {session.get(PupilOfConcern, c).status for c in concern_ids} == {ConcernStatus.listed}
    # The next meeting's freeze does not list them a second time.
    frozen_next = freeze(session_factory, following.id)
    assert frozen_next.concerns_added == []
    session.expire_all()
    assert sorted(i.concern_id for i in agenda.listed_items(session.get(Meeting, following.id))) == concern_ids


def test_a_hot_clinic_freeze_lists_no_pupils_of_concern(session_factory, session, demo):
    with session_factory() as s:
        clinic = s.scalar(
            select(Meeting)
            .join(MeetingSeries)
            .where(MeetingSeries.kind == MeetingKind.hot_clinic, Meeting.meeting_date == date(2026, 12, 3))
        )
        assert concerns.add_concerns(s, clinic, now=DEMO_MONDAY) == []
        s.rollback()


# ---- adding to the list ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("", "Enter the pupil's initials and year group, for example JB Year 8"),
        ("Ottilie Bramblewick", "Enter initials and year group only, not the pupil's name"),
        ("x" * 41, "Initials and year group must be 40 characters or fewer"),
    ],
)
def test_a_label_must_be_initials_not_a_name(label, problem):
    with pytest.raises(Invalid) as refused:
        concerns.check_concern(label=label, concern="c", ask="", parent_agreed_on=None, today=date(2026, 11, 23))
    assert refused.value.problems == {"label": problem}


def test_labels_that_are_not_names_are_accepted():
    for label in ("JB Year 8", "Year 8 pupil", "Anonymised: Year 3 pupil", "O.B. Reception", "Year Six Pupil"):
        assert (
            concerns.check_concern(label=label, concern="c", ask="", parent_agreed_on=None, today=date(2026, 11, 23))[0]
            == label
        )
    with pytest.raises(Invalid) as refused:
        concerns.check_concern(
            label="JB Year 8", concern="", ask="", parent_agreed_on=date(2026, 12, 1), today=date(2026, 11, 23)
        )
    assert set(refused.value.problems) == {"concern", "parent_agreed_on"}


def test_another_school_cannot_take_a_pupil_off(session_factory, demo):
    concern_id = add(session_factory, demo, "AB Year 3")
    with pytest.raises(NotFound), transaction(session_factory) as s:
        dsl = s.scalar(select(Person).where(Person.email == DSL))
        concerns.remove_concern(s, concern_id=concern_id, school_ids={999}, by=dsl, now=DEMO_MONDAY)


def test_the_cut_off_is_the_friday_before_at_noon(session, demo):
    meeting = session.get(Meeting, demo["extra"])
    assert meeting.cutoff_at == datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
