"""A series' core members: adding, removing and changing deputies, and what the invitations sweep does after."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from caseconf.errors import Invalid, NotFound
from meetings import membership
from meetings.invitations import apply_rsvp
from meetings.models import Invitation, Meeting, MeetingSeries, SeriesMember
from notifications import invites
from notifications.models import OutboundMessage
from tests.factories import DEMO_MONDAY, MAIL, load_demo_series, make_person

CLINIC_DAY = date(2026, 11, 26)
INVITED_DAYS = [date(2026, 11, 26), date(2026, 12, 3), date(2026, 12, 10), date(2026, 12, 17)]


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock):
    series_id, meetings = load_demo_series(session_factory, clock.now())
    return {"series": series_id, "meetings": meetings}


def agency(s, code: str) -> Agency:
    return s.scalar(select(Agency).where(Agency.code == code))


def person(s, email: str) -> Person:
    return s.scalar(select(Person).where(Person.email == email))


def member_of(s, series_id: int, code: str) -> SeriesMember:
    return s.scalar(select(SeriesMember).join(Agency).where(SeriesMember.series_id == series_id, Agency.code == code))


def coordinator_id(s) -> int:
    return person(s, "clinic.coordinator@kestrelford.example.org").id


def refused(s, clock, demo, **fields) -> dict[str, str]:
    series = s.get(MeetingSeries, demo["series"])
    with pytest.raises(Invalid) as exc:
        membership.add_member(s, series=series, now=clock.now(), actor_id=None, **fields)
    return exc.value.problems


# --- the rules -------------------------------------------------------------------------------------


def test_adding_a_member_checks_the_agency_person_and_deputy(session, clock, demo):
    lado = agency(session, "LADO")
    rep = person(session, "lado.rep@kestrelford.example.org")
    camhs = agency(session, "CAMHS")
    camhs_rep = person(session, "camhs.rep@kestrelford.example.org")
    gone = make_person(session, email="left@kestrelford.example.org", name="Left Already", active=False)

    assert refused(session, clock, demo, agency_id=None, person_id=None) == {
        "agency_id": "Choose an active agency",
        "person_id": "Choose an active person as the member",
    }
    assert refused(session, clock, demo, agency_id=999999, person_id=rep.id) == {"agency_id": "Choose an active agency"}
    problems = refused(session, clock, demo, agency_id=camhs.id, person_id=rep.id)
    assert problems == {
        "agency_id": f"{camhs.name} already has a member in this series ({camhs_rep.name}): change or remove them first"
    }
    assert refused(session, clock, demo, agency_id=lado.id, person_id=camhs_rep.id) == {
        "person_id": f"{camhs_rep.name} is already a member of this series"
    }
    assert refused(session, clock, demo, agency_id=lado.id, person_id=gone.id)["person_id"].startswith("Choose")
    assert refused(session, clock, demo, agency_id=lado.id, person_id=rep.id, deputy_id=rep.id) == {
        "deputy_id": "The deputy must be someone other than the member"
    }
    assert refused(session, clock, demo, agency_id=lado.id, person_id=rep.id, deputy_id=gone.id) == {
        "deputy_id": "Choose an active person as the deputy, or no deputy"
    }
    lado.active = False
    session.flush()
    assert refused(session, clock, demo, agency_id=lado.id, person_id=rep.id) == {
        "agency_id": "Choose an active agency"
    }
    assert len(session.get(MeetingSeries, demo["series"]).members) == 7


def test_adding_removing_and_changing_a_deputy_are_audited(session_factory, session, clock, demo):
    with transaction(session_factory) as s:
        series = s.get(MeetingSeries, demo["series"])
        deputy = make_person(s, email="lado.deputy@kestrelford.example.org", name="Dana Deputy")
        actor = coordinator_id(s)
        added = membership.add_member(
            s,
            series=series,
            agency_id=agency(s, "LADO").id,
            person_id=person(s, "lado.rep@kestrelford.example.org").id,
            deputy_id=deputy.id,
            now=clock.now(),
            actor_id=actor,
        )
        added_id, deputy_id = added.id, deputy.id
    with transaction(session_factory) as s:
        series = s.get(MeetingSeries, demo["series"])
        codes = [m.agency.code for m in membership.core_members(series)]
        assert codes == ["CAMHS", "EARLY_HELP", "SAFEGUARDING", "MASH", "POLICE", "HEALTH", "LADO", "YARM"]
        with pytest.raises(Invalid, match="Dana Deputy is already the deputy"):
            membership.set_deputy(
                s, series=series, member_id=added_id, deputy_id=deputy_id, now=clock.now(), actor_id=actor
            )
        membership.set_deputy(s, series=series, member_id=added_id, deputy_id=None, now=clock.now(), actor_id=actor)
    with transaction(session_factory) as s:
        series = s.get(MeetingSeries, demo["series"])
        with pytest.raises(Invalid, match="has no deputy already"):
            membership.set_deputy(s, series=series, member_id=added_id, deputy_id=None, now=clock.now(), actor_id=actor)
        membership.remove_member(s, series=series, member_id=added_id, now=clock.now(), actor_id=actor)
    with transaction(session_factory) as s:
        series = s.get(MeetingSeries, demo["series"])
        assert [m for m in series.members if m.id == added_id] == []
        assert s.get(SeriesMember, added_id) is None
        with pytest.raises(NotFound):
            membership.remove_member(s, series=series, member_id=added_id, now=clock.now(), actor_id=actor)

    events = session.scalars(select(AuditEvent).where(AuditEvent.action.like("series.%")).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["series.member_added", "series.deputy_changed", "series.member_removed"]
    assert all(e.actor_person_id == actor and e.record_id == str(demo["series"]) for e in events)
    assert events[0].detail["agency"] == "LADO" and events[0].detail["deputy_id"] == deputy_id
    assert events[1].detail["before"] == deputy_id and events[1].detail["after"] is None
    assert events[2].detail["member_id"] == added_id and events[2].detail["deputy_id"] is None


def test_a_member_of_another_series_cannot_be_changed_through_this_one(session_factory, session, clock, demo):
    with transaction(session_factory) as s:
        other = MeetingSeries(
            name="Other series",
            kind="hot_clinic",
            weekday=2,
            start_time=s.get(MeetingSeries, demo["series"]).start_time,
            location="Elsewhere",
        )
        s.add(other)
        s.flush()
        other_id = other.id
    series = session.get(MeetingSeries, other_id)
    camhs = member_of(session, demo["series"], "CAMHS")
    with pytest.raises(NotFound):
        membership.set_deputy(
            session, series=series, member_id=camhs.id, deputy_id=None, now=clock.now(), actor_id=None
        )
    with pytest.raises(NotFound):
        membership.remove_member(session, series=series, member_id=camhs.id, now=clock.now(), actor_id=None)


# --- what the invitations sweep does after ---------------------------------------------------------


def sweep(session_factory, clock) -> list[OutboundMessage]:
    """Run the invitations sweep once; the emails it queued."""
    with transaction(session_factory) as s:
        before = s.scalar(select(OutboundMessage.id).order_by(OutboundMessage.id.desc()).limit(1)) or 0
        due = invites.meetings_due_invitations(s, now=clock.now())
    for meeting_id in due:
        with transaction(session_factory) as s:
            invites.send_invitations(s, meeting_id, now=clock.now(), mail=MAIL, organizer_name="Team")
    with session_factory() as s:
        return list(s.scalars(select(OutboundMessage).where(OutboundMessage.id > before).order_by(OutboundMessage.id)))


def sent_to(messages) -> set[tuple[str, str, int]]:
    """(recipient, calendar method, meeting id) for each email."""
    return {(m.recipient, m.ics_method, m.meeting_id) for m in messages}


@pytest.fixture
def invited(session_factory, clock, demo):
    """The demo with every meeting in the invitation window invited."""
    first = sweep(session_factory, clock)
    assert {m.meeting_id for m in first} == {demo["meetings"][day] for day in INVITED_DAYS}
    assert sweep(session_factory, clock) == []
    return demo


def change(session_factory, clock, demo, do, **kwargs):
    with transaction(session_factory) as s:
        series = s.get(MeetingSeries, demo["series"])
        return do(s, series=series, now=clock.now(), actor_id=coordinator_id(s), **kwargs)


def test_a_new_member_is_invited_to_the_meetings_already_invited_and_no_one_else_hears(session_factory, clock, invited):
    with session_factory() as s:
        lado, rep = agency(s, "LADO").id, person(s, "lado.rep@kestrelford.example.org").id
    change(session_factory, clock, invited, membership.add_member, agency_id=lado, person_id=rep)
    queued = sweep(session_factory, clock)
    invited_ids = {invited["meetings"][day] for day in INVITED_DAYS}
    assert sent_to(queued) == {("lado.rep@kestrelford.example.org", "REQUEST", m) for m in invited_ids}
    assert all(m.subject.startswith("Invitation: ") for m in queued)
    assert sweep(session_factory, clock) == []


def test_a_removed_member_is_sent_a_cancel_and_no_one_else_hears(session_factory, clock, invited):
    with session_factory() as s:
        police = member_of(s, invited["series"], "POLICE").id
    change(session_factory, clock, invited, membership.remove_member, member_id=police)
    queued = sweep(session_factory, clock)
    invited_ids = {invited["meetings"][day] for day in INVITED_DAYS}
    assert sent_to(queued) == {("police.rep@kestrelford.example.org", "CANCEL", m) for m in invited_ids}
    assert all(m.kind == "invitation_cancelled" for m in queued)
    assert sweep(session_factory, clock) == []
    with session_factory() as s:
        cancelled = s.scalars(
            select(Invitation)
            .join(Person, Person.id == Invitation.person_id)
            .where(Person.email == "police.rep@kestrelford.example.org", Invitation.meeting_id.in_(invited_ids))
        ).all()
        assert len(cancelled) == 4 and all(i.cancelled_at == clock.now() for i in cancelled)


def test_a_deputy_change_reaches_only_the_meetings_where_the_member_cannot_come(session_factory, clock, invited):
    clinic = invited["meetings"][CLINIC_DAY]
    with transaction(session_factory) as s:
        first = make_person(s, email="camhs.deputy@kestrelford.example.org", name="First Deputy").id
        second = make_person(s, email="camhs.second@kestrelford.example.org", name="Second Deputy").id
        camhs = member_of(s, invited["series"], "CAMHS").id
        meeting = s.get(Meeting, clinic)
        invitation = next(i for i in meeting.invitations if i.person.email == "camhs.rep@kestrelford.example.org")
        apply_rsvp(s, invitation=invitation, partstat="DECLINED", now=clock.now(), source="portal")

    # The member cannot come to the 26 November clinic only: their deputy is invited to that one.
    change(session_factory, clock, invited, membership.set_deputy, member_id=camhs, deputy_id=first)
    assert sent_to(sweep(session_factory, clock)) == {("camhs.deputy@kestrelford.example.org", "REQUEST", clinic)}

    # A new deputy: the first is sent a cancellation and the second an invitation, for that meeting alone.
    change(session_factory, clock, invited, membership.set_deputy, member_id=camhs, deputy_id=second)
    assert sent_to(sweep(session_factory, clock)) == {
        ("camhs.deputy@kestrelford.example.org", "CANCEL", clinic),
        ("camhs.second@kestrelford.example.org", "REQUEST", clinic),
    }

    # No deputy at all: the second is sent a cancellation.
    change(session_factory, clock, invited, membership.set_deputy, member_id=camhs, deputy_id=None)
    assert sent_to(sweep(session_factory, clock)) == {("camhs.second@kestrelford.example.org", "CANCEL", clinic)}
    assert sweep(session_factory, clock) == []


def test_a_deputy_for_a_member_who_is_coming_is_not_invited(session_factory, clock, invited):
    with transaction(session_factory) as s:
        deputy = make_person(s, email="police.deputy@kestrelford.example.org", name="Pat Deputy").id
        police = member_of(s, invited["series"], "POLICE").id
    change(session_factory, clock, invited, membership.set_deputy, member_id=police, deputy_id=deputy)
    assert sweep(session_factory, clock) == []


def test_removing_a_member_whose_deputy_stands_in_cancels_both(session_factory, clock, invited):
    clinic = invited["meetings"][CLINIC_DAY]
    with transaction(session_factory) as s:
        deputy = make_person(s, email="mash.deputy@kestrelford.example.org", name="Mo Deputy").id
        mash = member_of(s, invited["series"], "MASH")
        mash.deputy_id = deputy
        mash_id = mash.id
        invitation = next(
            i for i in s.get(Meeting, clinic).invitations if i.person.email == "mash.rep@kestrelford.example.org"
        )
        apply_rsvp(s, invitation=invitation, partstat="DECLINED", now=clock.now(), source="portal")
    assert sent_to(sweep(session_factory, clock)) == {("mash.deputy@kestrelford.example.org", "REQUEST", clinic)}
    change(session_factory, clock, invited, membership.remove_member, member_id=mash_id)
    queued = sent_to(sweep(session_factory, clock))
    assert ("mash.deputy@kestrelford.example.org", "CANCEL", clinic) in queued
    assert {r for r, method, _ in queued} == {"mash.rep@kestrelford.example.org", "mash.deputy@kestrelford.example.org"}
    assert {method for _, method, _ in queued} == {"CANCEL"}
