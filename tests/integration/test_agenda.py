"""The agenda on a real database: the freeze at cut-off, overflow, review items and the coordinator's edits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from agencies.models import Person, Role, School
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid
from meetings import agenda
from meetings.models import (
    AgendaItem,
    AgendaItemStatus,
    Child,
    Decision,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    MeetingStatusChange,
    Referral,
)
from meetings.planning import apply_times
from meetings.referrals import issue_reference, next_meeting_for
from meetings.schedule import calendar_uid
from notifications.emails import MailContext
from notifications.models import OutboundMessage
from notifications.papers_mail import freeze_meeting, meetings_due_freeze
from tests.factories import make_area, make_person, make_school

MAIL = MailContext(base_url="http://127.0.0.1:8000", mail_domain="kestrelford.example.org", team_name="Inclusion Team")
CLINIC = date(2026, 12, 3)  # a Thursday; cut-off Monday 30 November 12:00, papers Tuesday 09:00
AFTER_CUTOFF = datetime(2026, 11, 30, 12, 5, tzinfo=UTC)
BEFORE_CUTOFF = datetime(2026, 11, 30, 11, 55, tzinfo=UTC)
FIRST_NAMES = [
    "Juniper",
    "Marigold",
    "Tobias",
    "Ottilie",
    "Caspian",
    "Wren",
    "Ignatius",
    "Fenella",
    "Lysander",
    "Briar",
]


# ---- builders shared with the papers tests ---------------------------------------------------------


def make_world(session, *, capacity: int = 8, dates=(CLINIC, CLINIC + timedelta(days=7))) -> dict:
    area = make_area(session)
    school = make_school(session, area=area)
    coordinator = make_person(
        session, email="coordinator@kestrelford.example.org", name="Cleo Coordinator", role=Role.coordinator
    )
    chair = make_person(
        session, email="eip.north@kestrelford.example.org", name="Priya North", role=Role.eip, area_id=area.id
    )
    referrer = make_person(
        session, email="dsl@alderbrook.example.org", name="Sam Dsl", role=Role.school_referrer, school_id=school.id
    )
    series = MeetingSeries(
        name="North Hot Clinic",
        kind=MeetingKind.hot_clinic,
        area_id=area.id,
        weekday=3,
        start_time=time(13, 30),
        duration_minutes=120,
        location="Committee Room 2",
        chair_rotation=[chair.id],
        coordinator_id=coordinator.id,
        capacity_items=capacity,
        item_minutes=15,
        quorum_required_agencies=["SAFEGUARDING"],
    )
    session.add(series)
    session.flush()
    meetings = [make_meeting(session, series, day, chair_id=chair.id) for day in dates]
    return {
        "area": area,
        "school": school,
        "coordinator": coordinator,
        "chair": chair,
        "referrer": referrer,
        "series": series,
        "meetings": meetings,
    }


def make_meeting(session, series, day: date, *, chair_id=None) -> Meeting:
    meeting = Meeting(
        series_id=series.id,
        meeting_date=day,
        start_time=series.start_time,
        location=series.location,
        chair_id=chair_id,
        status=MeetingStatus.planned,
        calendar_uid=calendar_uid(series.id, day, "kestrelford.example.org"),
        sequence=0,
    )
    apply_times(meeting, series)
    session.add(meeting)
    session.flush()
    return meeting


def make_referral(
    session,
    world,
    *,
    first_name: str = "Juniper",
    submitted_at: datetime = datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    urgency: str = "routine",
    status: str = "accepted",
    consent: bool = True,
) -> Referral:
    child = Child(
        legal_first_name=first_name,
        legal_surname="Quillfeather",
        date_of_birth=date(2016, 5, 14),
        school_id=world["school"].id,
        year_group="Year 5",
    )
    session.add(child)
    referral = Referral(
        reference=issue_reference(session, year=2026),
        status=status,
        child=child,
        school_id=world["school"].id,
        referrer_id=world["referrer"].id,
        created_at=submitted_at,
        updated_at=submitted_at,
        submitted_at=submitted_at,
        reasons=["not_attending"],
        what_is_happening=f"{first_name} has stopped coming in on Mondays.",
        strengths="Loves art.",
        voice_of_child="I get a funny tummy.",
        voice_of_parent="Mum wants help.",
        asks_of_clinic="Advice on EBSA support.",
        urgency=urgency,
        health={"camhs_history": "awaiting", "notes": "HEALTHSECRET sleep clinic"},
        community_safety={"concerns": ["exploitation"], "notes": "COMMUNITYSECRET bus station"},
        consent_status="given" if consent else "not_sought",
        consent_given_by="Rowan Quillfeather (mother)" if consent else None,
        consent_given_on=date(2026, 11, 1) if consent else None,
    )
    session.add(referral)
    session.flush()
    return referral


def list_on(session, meeting: Meeting, referral: Referral, *, position: int | None = None) -> AgendaItem:
    item = AgendaItem(
        meeting_id=meeting.id,
        kind="referral",
        referral_id=referral.id,
        position=position or len(meeting.items) + 1,
        slot_minutes=15,
        status=AgendaItemStatus.listed,
    )
    session.add(item)
    session.flush()
    session.refresh(meeting)
    return item


def listed_references(session, meeting_id: int) -> list[str]:
    session.expire_all()
    meeting = session.get(Meeting, meeting_id)
    return [i.referral.reference for i in agenda.listed_items(meeting)]


@pytest.fixture
def world(session_factory):
    with transaction(session_factory) as session:
        w = make_world(session, capacity=3)
        return {k: (v.id if hasattr(v, "id") else [m.id for m in v]) for k, v in w.items()}


def people_of(session, world_ids) -> dict:
    return {"school": session.get(School, world_ids["school"]), "referrer": session.get(Person, world_ids["referrer"])}


def add_referrals(session_factory, world_ids, specs) -> list[str]:
    """specs: (first name, days before 2 December it was submitted, urgency); returns references."""
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, world_ids["meetings"][0])
        w = {"school": meeting.series.area and None}
        from agencies.models import Person, School

        w = {"school": session.get(School, world_ids["school"]), "referrer": session.get(Person, world_ids["referrer"])}
        references = []
        for name, days, urgency in specs:
            referral = make_referral(
                session,
                w,
                first_name=name,
                submitted_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC) - timedelta(days=days),
                urgency=urgency,
            )
            list_on(session, meeting, referral)
            references.append(referral.reference)
        return references


# ---- the freeze ---------------------------------------------------------------------------------------


def test_only_due_meetings_are_frozen_and_only_once(session_factory, session, world):
    add_referrals(session_factory, world, [("Juniper", 20, "routine")])
    first, second = world["meetings"]
    with session_factory() as s:
        assert meetings_due_freeze(s, now=BEFORE_CUTOFF) == []
        assert meetings_due_freeze(s, now=AFTER_CUTOFF) == [first]
        # Once the meeting has started it is never frozen, whatever its status says.
        assert meetings_due_freeze(s, now=datetime(2026, 12, 3, 14, 0, tzinfo=UTC)) == []

    with transaction(session_factory) as s:
        assert freeze_meeting(s, first, now=BEFORE_CUTOFF, mail=MAIL) is None
    with transaction(session_factory) as s:
        result = freeze_meeting(s, first, now=AFTER_CUTOFF, mail=MAIL)
        assert result is not None and result.moved == []
    with transaction(session_factory) as s:
        assert freeze_meeting(s, first, now=AFTER_CUTOFF + timedelta(minutes=5), mail=MAIL) is None

    session.expire_all()
    meeting = session.get(Meeting, first)
    assert meeting.status == MeetingStatus.agenda_frozen
    assert meeting.agenda_frozen_at == AFTER_CUTOFF
    changes = session.scalars(select(MeetingStatusChange).where(MeetingStatusChange.meeting_id == first)).all()
    assert [(c.from_status, c.to_status) for c in changes] == [("planned", "agenda_frozen")]
    assert session.scalar(select(func.count()).where(AuditEvent.action == "meeting.agenda_frozen")) == 1
    assert session.get(Meeting, second).status == MeetingStatus.planned


def test_overflow_moves_the_lowest_priority_items_and_tells_school_and_eip_once(session_factory, session, world):
    # Capacity 3: five items, one urgent. The two newest routine ones move on.
    refs = add_referrals(
        session_factory,
        world,
        [("Juniper", 5, "routine"), ("Marigold", 30, "routine"), ("Tobias", 1, "priority"),
         ("Ottilie", 2, "routine"), ("Caspian", 20, "routine")],
    )  # fmt: skip
    first, second = world["meetings"]
    for _ in range(2):  # a second sweep finds nothing to do
        with transaction(session_factory) as s:
            for meeting_id in meetings_due_freeze(s, now=AFTER_CUTOFF):
                freeze_meeting(s, meeting_id, now=AFTER_CUTOFF, mail=MAIL)

    juniper, marigold, tobias, ottilie, caspian = refs
    assert listed_references(session, first) == [tobias, marigold, caspian]
    assert listed_references(session, second) == [juniper, ottilie]
    moved = session.scalars(select(AgendaItem).where(AgendaItem.meeting_id == second)).all()
    old = {i.referral_id: i for i in session.scalars(select(AgendaItem).where(AgendaItem.meeting_id == first))}
    for item in moved:
        assert item.carried_from_id == old[item.referral_id].id
        assert old[item.referral_id].status == AgendaItemStatus.deferred
        assert item.added_at == AFTER_CUTOFF

    notices = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "agenda_item_moved")).all()
    # Each moved item: the referrer, the school's DSL address and the area's EIP; queued once for all the sweeps.
    assert len(notices) == 2 * 3
    assert {n.recipient for n in notices} == {
        "dsl@alderbrook.example.org",
        "dsl@900001.example.org",
        "eip.north@kestrelford.example.org",
    }
    for notice in notices:
        assert "agenda was full, so referral" in notice.body_text
        assert "Thursday 10 December 2026 at 1:30pm" in notice.body_text
        assert notice.subject.startswith("Referral VPHC-2026-")
        for name in ("Juniper", "Ottilie", "Quillfeather"):
            assert name not in notice.subject + notice.body_text + (notice.body_html or "")
    # The school's status page and emails give the clinic it is now on, not the one it left.
    for item in moved:
        assert next_meeting_for(session, item.referral, now=AFTER_CUTOFF).id == second


def test_overflow_by_minutes_as_well_as_count(session_factory, session, world):
    add_referrals(session_factory, world, [("Juniper", 5, "routine"), ("Marigold", 30, "routine")])
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, world["meetings"][0])
        agenda.listed_items(meeting)[0].slot_minutes = 110  # the oldest needs most of the two hours
    with transaction(session_factory) as s:
        result = freeze_meeting(s, world["meetings"][0], now=AFTER_CUTOFF, mail=MAIL)
        assert [m.new_item.referral.what_is_happening.split()[0] for m in result.moved] == ["Juniper"]


def test_with_no_later_meeting_the_overflow_stays(session_factory, session):
    with transaction(session_factory) as s:
        w = make_world(s, capacity=1, dates=(CLINIC,))
        for name in ("Juniper", "Marigold"):
            list_on(s, w["meetings"][0], make_referral(s, w, first_name=name))
        meeting_id = w["meetings"][0].id
    with transaction(session_factory) as s:
        result = freeze_meeting(s, meeting_id, now=AFTER_CUTOFF, mail=MAIL)
        assert result.moved == [] and len(result.kept_over_capacity) == 1
    assert len(listed_references(session, meeting_id)) == 2


def test_review_items_due_are_added_at_the_freeze(session_factory, session):
    with transaction(session_factory) as s:
        w = make_world(s, dates=(date(2026, 11, 12), CLINIC, CLINIC + timedelta(days=7)))
        past, clinic, _ = w["meetings"]
        due = make_referral(s, w, first_name="Juniper", status="review")
        later = make_referral(s, w, first_name="Marigold", status="review")
        already = make_referral(s, w, first_name="Tobias", status="review")
        for referral, review_on in ((due, CLINIC), (later, CLINIC + timedelta(days=30)), (already, CLINIC)):
            item = list_on(s, past, referral)
            item.status = AgendaItemStatus.discussed
            s.add(
                Decision(
                    agenda_item_id=item.id,
                    outcome="review_on_date",
                    rationale="Review progress",
                    review_on=review_on,
                    decided_at=datetime(2026, 11, 12, 15, 0, tzinfo=UTC),
                )
            )
        list_on(s, clinic, already)  # the coordinator listed it already
        ids = (clinic.id, due.reference, already.reference)
    clinic_id, due_ref, already_ref = ids
    with transaction(session_factory) as s:
        result = freeze_meeting(s, clinic_id, now=AFTER_CUTOFF, mail=MAIL)
        assert [i.referral.reference for i in result.reviews_added] == [due_ref]
    assert sorted(listed_references(session, clinic_id)) == sorted([due_ref, already_ref])
    item = session.scalar(
        select(AgendaItem).where(AgendaItem.meeting_id == clinic_id, AgendaItem.added_at.is_not(None))
    )
    assert item.added_at == AFTER_CUTOFF and agenda.item_label(item) == "review"


# ---- the coordinator's edits ------------------------------------------------------------------------------


def test_move_add_and_remove(session_factory, session, world):
    juniper, marigold, tobias = add_referrals(
        session_factory, world, [("Juniper", 5, "routine"), ("Marigold", 30, "routine"), ("Tobias", 1, "priority")]
    )
    first, second = world["meetings"]
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    coordinator = world["coordinator"]
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, first)
        agenda.arrange(meeting)
    assert listed_references(session, first) == [tobias, marigold, juniper]

    with transaction(session_factory) as s:
        meeting = s.get(Meeting, first)
        juniper_item = next(i for i in meeting.items if i.referral.reference == juniper)
        agenda.move_item(s, meeting=meeting, item_id=juniper_item.id, direction="up", now=now, actor_id=coordinator)
    assert listed_references(session, first) == [tobias, juniper, marigold]
    assert session.get(Meeting, first).agenda_order_locked
    assert session.get(Meeting, first).agenda_changed_at is None  # papers not sent yet: no update needed

    with transaction(session_factory) as s, pytest.raises(Invalid):
        meeting = s.get(Meeting, first)
        top = agenda.listed_items(meeting)[0]
        agenda.move_item(s, meeting=meeting, item_id=top.id, direction="up", now=now, actor_id=coordinator)

    # A new referral goes to the end once the coordinator has set the order, even though it is urgent.
    with transaction(session_factory) as s:
        urgent = make_referral(s, people_of(s, world), first_name="Wren", urgency="priority")
        meeting = s.get(Meeting, first)
        assert urgent in agenda.addable_referrals(s, meeting, now=now)
        agenda.add_referral(s, meeting=meeting, referral=urgent, now=now, actor_id=coordinator)
        wren = urgent.reference
    assert listed_references(session, first) == [tobias, juniper, marigold, wren]

    with transaction(session_factory) as s, pytest.raises(Invalid):
        meeting = s.get(Meeting, first)
        agenda.add_referral(s, meeting=meeting, referral=meeting.items[0].referral, now=now, actor_id=coordinator)

    with transaction(session_factory) as s:
        meeting = s.get(Meeting, first)
        marigold_item = next(i for i in meeting.items if i.referral.reference == marigold)
        juniper_item = next(i for i in meeting.items if i.referral.reference == juniper)
        agenda.remove_item(s, meeting=meeting, item_id=marigold_item.id, now=now, actor_id=coordinator,
                           to_next_meeting=False)  # fmt: skip
        moved = agenda.remove_item(
            s, meeting=meeting, item_id=juniper_item.id, now=now, actor_id=coordinator, to_next_meeting=True
        )
        assert moved.meeting.id == second
    assert listed_references(session, first) == [tobias, wren]
    assert listed_references(session, second) == [juniper]
    # A removed referral can be put back on.
    with session_factory() as s:
        meeting = s.get(Meeting, first)
        assert marigold in [r.reference for r in agenda.addable_referrals(s, meeting, now=now)]
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("agenda.%"))).all()
    assert sorted(actions) == ["agenda.item_added", "agenda.item_moved", "agenda.item_removed", "agenda.item_removed"]


def test_changes_after_papers_mark_the_agenda_changed(session_factory, session, world):
    (juniper, marigold) = add_referrals(session_factory, world, [("Juniper", 5, "routine"), ("Marigold", 3, "routine")])
    first = world["meetings"][0]
    sent_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, first)
        meeting.status, meeting.papers_sent_at = MeetingStatus.papers_sent, sent_at
    later = sent_at + timedelta(hours=3)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, first)
        last = agenda.listed_items(meeting)[-1]
        agenda.move_item(s, meeting=meeting, item_id=last.id, position=1, now=later, actor_id=world["coordinator"])
    session.expire_all()
    assert session.get(Meeting, first).agenda_changed_at == later
    assert listed_references(session, first) == [marigold, juniper]

    # Once the meeting has started, nothing changes.
    started = datetime(2026, 12, 3, 13, 31, tzinfo=UTC)
    with transaction(session_factory) as s, pytest.raises(Conflict):
        meeting = s.get(Meeting, first)
        item = agenda.listed_items(meeting)[0]
        agenda.remove_item(s, meeting=meeting, item_id=item.id, now=started, actor_id=1, to_next_meeting=False)
