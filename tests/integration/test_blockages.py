"""Blockages: a referral waiting on an outside agency is flagged, the agency chased and the school told, once a step."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.db import transaction
from caseconf.errors import Invalid
from meetings import blockages
from meetings.models import AgencyWait, AgendaItem, Decision, Meeting, Outcome, Referral
from notifications.chasing import chase_wait, waits_due_chase
from notifications.emails import school_recipients
from notifications.models import OutboundMessage
from tests.integration.actions_setup import HELD, MAIL, at, child_names, load


def escalate_and_end(session_factory) -> int:
    """The demo clinic of 12 November ends with its first case escalated to MASH; returns the referral id."""
    with transaction(session_factory) as session:
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == HELD))
        meeting.ended_at = meeting.ends_at
        decision = session.scalar(
            select(Decision)
            .join(AgendaItem, AgendaItem.id == Decision.agenda_item_id)
            .where(AgendaItem.meeting_id == meeting.id)
            .order_by(AgendaItem.id)
        )
        decision.outcome, decision.option_id = Outcome.escalated_to_mash, None
        return session.get(AgendaItem, decision.agenda_item_id).referral_id


def open_for_meeting(session_factory, now) -> list[int]:
    with transaction(session_factory) as session:
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == HELD))
        return [w.id for w in blockages.open_waits_for_ended_meeting(session, meeting, now=now)]


def chase_day(session_factory, now) -> list[int]:
    with transaction(session_factory) as session:
        due = waits_due_chase(session, now=now)
    done = []
    for wait_id in due:
        with transaction(session_factory) as session:
            if chase_wait(session, wait_id, now=now, mail=MAIL) is not None:
                done.append(wait_id)
    return done


def test_a_wait_opens_once_when_the_meeting_ends_with_an_escalation(session_factory, session):
    load(session_factory)
    referral_id = escalate_and_end(session_factory)
    opened = open_for_meeting(session_factory, at(date(2026, 11, 12), 16))
    assert len(opened) == 1
    assert open_for_meeting(session_factory, at(date(2026, 11, 12), 17)) == []  # the sweep again: nothing new
    wait = session.get(AgencyWait, opened[0])
    assert wait.referral_id == referral_id and wait.agency.code == "MASH"
    assert wait.flag_after_working_days == 3 and wait.decision_id is not None


def test_flagged_after_three_working_days_then_chased_every_three_with_the_school_told(session_factory, session):
    load(session_factory)
    referral_id = escalate_and_end(session_factory)
    (wait_id,) = open_for_meeting(session_factory, at(date(2026, 11, 12), 16))
    chased_on = []
    day = date(2026, 11, 12)
    while day <= date(2026, 11, 26):
        for hour in (9, 9, 14):
            if chase_day(session_factory, at(day, hour)):
                chased_on.append(day)
        day += timedelta(days=1)
    # Thu 12 (ended) -> Fri 13, Mon 16, Tue 17: flagged; then Fri 20 and Wed 25 (weekends skipped).
    assert chased_on == [date(2026, 11, 17), date(2026, 11, 20), date(2026, 11, 25)]
    wait = session.get(AgencyWait, wait_id)
    assert wait.chases == 3 and wait.flagged_at == at(date(2026, 11, 17))
    agency_mail = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "wait_chase")).all()
    assert [m.recipient for m in agency_mail] == ["mash@kestrelford.example.org"] * 3
    referral = session.get(Referral, referral_id)
    school_mail = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "wait_chase_school")).all()
    assert len(school_mail) == 3 * len(school_recipients(referral))
    assert {m.recipient for m in school_mail} == set(school_recipients(referral))
    for message in agency_mail + school_mail:
        assert referral.reference in message.subject
        for name in child_names():
            assert not re.search(rf"\b{re.escape(name)}\b", message.subject + message.body_text + message.body_html)
    assert "we have chased" in school_mail[0].subject.lower()


def test_a_resolved_wait_is_not_chased(session_factory, session):
    load(session_factory)
    escalate_and_end(session_factory)
    (wait_id,) = open_for_meeting(session_factory, at(date(2026, 11, 12), 16))
    coordinator = session.scalar(select(Person).where(Person.email == "clinic.coordinator@kestrelford.example.org"))
    with transaction(session_factory) as s:
        wait = s.get(AgencyWait, wait_id)
        with pytest.raises(Invalid):
            blockages.resolve_wait(s, wait, resolution=" ", by_person_id=coordinator.id, now=at(date(2026, 11, 16)))
        blockages.resolve_wait(
            s,
            wait,
            resolution="MASH replied: strategy discussion held",
            by_person_id=coordinator.id,
            now=at(date(2026, 11, 16)),
        )
    assert chase_day(session_factory, at(date(2026, 11, 17))) == []
    assert session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "wait_chase")).all() == []


def test_a_wait_opened_by_hand_is_checked(session_factory, session):
    load(session_factory)
    coordinator = session.scalar(select(Person).where(Person.email == "clinic.coordinator@kestrelford.example.org"))
    referral = session.scalar(select(Referral).where(Referral.status == "actions_open").order_by(Referral.id))
    camhs = session.scalar(select(Agency).where(Agency.code == "CAMHS"))
    with transaction(session_factory) as s:
        with pytest.raises(Invalid) as problem:
            blockages.open_wait(
                s,
                referral=s.get(Referral, referral.id),
                agency=s.get(Agency, camhs.id),
                waiting_for="",
                by_person_id=coordinator.id,
                now=at(date(2026, 11, 23)),
            )
        assert "waiting_for" in problem.value.problems
        wait = blockages.open_wait(
            s,
            referral=s.get(Referral, referral.id),
            agency=s.get(Agency, camhs.id),
            waiting_for="CAMHS triage outcome",
            by_person_id=coordinator.id,
            now=at(date(2026, 11, 23)),
            flag_after_working_days=5,
        )
        wait_id = wait.id
    # Mon 23 + 5 working days = Mon 30 November.
    assert chase_day(session_factory, at(date(2026, 11, 27))) == []
    assert chase_day(session_factory, at(date(2026, 11, 30))) == [wait_id]


def test_a_closed_referral_is_not_chased(session_factory, session):
    load(session_factory)
    referral_id = escalate_and_end(session_factory)
    open_for_meeting(session_factory, at(date(2026, 11, 12), 16))
    with transaction(session_factory) as s:
        s.get(Referral, referral_id).status = "closed"
    with transaction(session_factory) as s:
        assert waits_due_chase(s, now=at(date(2026, 11, 18))) == []
