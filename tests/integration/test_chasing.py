"""Reminders, chases and escalation of an action across simulated working days, each step once."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select

from caseconf.db import transaction
from meetings.actions import Step, next_step, update_action
from meetings.models import Action, ActionEvent, ActionEventKind, Meeting
from notifications.chasing import follow_up_action, reply_token
from tests.integration.actions_setup import (
    HELD,
    LOADED_AT,
    MAIL,
    at,
    child_names,
    emails_about,
    load,
    make_action,
    sweep,
)

DUE = date(2026, 12, 23)  # a Wednesday; Christmas (Fri 25) and the substitute Boxing Day (Mon 28) follow


def test_every_step_once_on_working_days_skipping_weekends_and_bank_holidays(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=DUE, now=at(date(2026, 12, 16), 8))
    taken: dict[date, list[str]] = {}
    day = date(2026, 12, 16)
    while day <= date(2027, 1, 12):
        for hour in (9, 9, 15):  # the sweep runs more than once a day, and twice at the same moment
            for _, step in sweep(session_factory, at(day, hour), only=action_id):
                taken.setdefault(day, []).append(step)
        day += timedelta(days=1)

    assert taken == {
        date(2026, 12, 16): ["assigned"],
        date(2026, 12, 21): ["reminder"],  # 2 working days before the Wednesday due date
        date(2026, 12, 23): ["chase 1"],  # on the due date
        # 3 working days on: Thu 24, (Fri 25 bank holiday, weekend, Mon 28 bank holiday) Tue 29, Wed 30
        date(2026, 12, 30): ["chase 2"],
        # after 2 chases: Thu 31, (Fri 1 January bank holiday, weekend) Mon 4, Tue 5
        date(2027, 1, 5): ["escalation"],
        date(2027, 1, 8): ["chase 3"],  # chasing carries on every 3 working days while open
    }

    emails = emails_about(session, action_id)
    assert len({e.idempotency_key for e in emails}) == len(emails) == 7
    by_kind = {}
    for e in emails:
        by_kind.setdefault(e.kind, []).append(e.recipient)
    meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == HELD))
    escalated = sorted(by_kind.pop("action_escalation"))
    assert escalated == sorted([meeting.chair.email, "camhs.lead@kestrelford.example.org"])
    assert by_kind == {
        "action_assigned": ["camhs.rep@kestrelford.example.org"],
        "action_reminder": ["camhs.rep@kestrelford.example.org"],
        "action_chase": ["camhs.rep@kestrelford.example.org"] * 3,
    }

    token = reply_token(action_id, MAIL.reply_secret)
    action = session.get(Action, action_id)
    for e in emails:
        # One thread per action, a reply address carrying the action's token, the tag in the subject.
        assert e.in_reply_to == f"<action-{action_id}@kestrelford.example.org>"
        assert e.reply_to == f"clinic+action-{token}@kestrelford.example.org"
        assert f"[ACT-{action_id}-{token[:8]}]" in e.subject
        assert "Start your reply with one of" in e.body_text or e.kind == "action_escalation"
        assert "update:" in e.body_text and "cannot do:" in e.body_text
        for text in (e.subject, e.body_text, e.body_html):
            assert action.description not in text
            for name in child_names():
                assert not re.search(rf"\b{re.escape(name)}\b", text), (e.kind, name)
    events = session.scalars(select(ActionEvent).where(ActionEvent.action_id == action_id)).all()
    assert sorted((e.kind, e.step) for e in events) == [
        ("assigned", 0),
        ("chase", 1),
        ("chase", 2),
        ("chase", 3),
        ("escalation", 0),
        ("reminder", 0),
    ]
    assert action.escalated_at is not None


def test_a_step_taken_twice_sends_once(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=DUE, now=at(date(2026, 12, 16), 8))
    now = at(date(2026, 12, 16))
    with transaction(session_factory) as s:
        assert follow_up_action(s, action_id, now=now, mail=MAIL) == "assigned"
    with transaction(session_factory) as s:
        assert follow_up_action(s, action_id, now=now, mail=MAIL) is None
    assert len(emails_about(session, action_id)) == 1


def test_new_action_waits_until_the_meeting_has_ended(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=DUE, now=at(date(2026, 12, 16), 8), ended=False)
    assert sweep(session_factory, at(date(2026, 12, 16)), only=action_id) == []
    with transaction(session_factory) as s:
        meeting = s.scalar(select(Meeting).where(Meeting.meeting_date == HELD))
        meeting.ended_at = at(date(2026, 12, 16), 10)
    assert sweep(session_factory, at(date(2026, 12, 16), 11), only=action_id) == [(action_id, "assigned")]


def test_demo_actions_are_never_announced_again(session_factory):
    load(session_factory)
    steps = sweep(session_factory, LOADED_AT)
    assert all(step != "assigned" for _, step in steps)


def test_a_done_action_is_no_longer_chased(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=DUE, now=at(date(2026, 12, 16), 8))
    sweep(session_factory, at(date(2026, 12, 16)), only=action_id)
    with transaction(session_factory) as s:
        action = s.get(Action, action_id)
        update_action(s, action, kind="done", note="", by_person_id=None, now=at(date(2026, 12, 22)))
    for offset in range(0, 20):
        sweep(session_factory, at(DUE + timedelta(days=offset)), only=action_id)
    assert [e.kind for e in emails_about(session, action_id)] == ["action_assigned"]


class _Series:
    action_reminder_working_days = 2
    chase_every_working_days = 3
    escalate_after_chases = 2


def _action(due: date, *events: tuple[str, int, date]) -> Action:
    action = Action(id=1, due_on=due, status="open", description="x")
    for kind, step, when in events:
        action.events.append(ActionEvent(kind=kind, step=step, occurred_at=at(when)))
    return action


def test_next_step_is_one_at_a_time_and_never_on_a_weekend():
    assigned = ("assigned", 0, date(2026, 12, 1))
    late = _action(DUE, assigned)
    # First seen long after the due date: no reminder then, chase 1 straight away.
    assert next_step(late, _Series, date(2027, 1, 6)) == Step(ActionEventKind.chase, 1)
    assert next_step(late, _Series, date(2027, 1, 9)) is None  # a Saturday
    assert next_step(late, _Series, date(2026, 12, 25)) is None  # Christmas Day
    assert next_step(late, _Series, date(2026, 12, 18)) is None  # before the reminder is due
    assert next_step(_action(DUE), _Series, date(2026, 12, 26)) == Step(ActionEventKind.assigned, 0)
    chased = _action(DUE, assigned, ("chase", 1, DUE), ("chase", 2, date(2026, 12, 30)))
    assert next_step(chased, _Series, date(2027, 1, 4)) is None
    assert next_step(chased, _Series, date(2027, 1, 5)) == Step(ActionEventKind.escalation, 0)


def test_a_new_due_date_gets_a_new_reminder_and_chase_before_any_escalation(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=DUE, now=at(date(2026, 12, 16), 8))

    def run(first: date, last: date) -> dict[date, list[str]]:
        taken: dict[date, list[str]] = {}
        day = first
        while day <= last:
            for hour in (9, 9, 15):
                for _, step in sweep(session_factory, at(day, hour), only=action_id):
                    taken.setdefault(day, []).append(step)
            day += timedelta(days=1)
        return taken

    before = run(date(2026, 12, 16), date(2026, 12, 30))
    assert before[date(2026, 12, 30)] == ["chase 2"]  # two chases: escalation would be next
    with transaction(session_factory) as s:
        update_action(
            s,
            s.get(Action, action_id),
            kind="update",
            note="Waiting for the family; new date agreed",
            by_person_id=None,
            now=at(date(2026, 12, 31), 10),
            new_due_on=date(2027, 1, 20),
        )
    after = run(date(2026, 12, 31), date(2027, 1, 28))
    assert after == {
        date(2027, 1, 18): ["reminder"],  # 2 working days before the new due date
        date(2027, 1, 20): ["chase 3"],  # the new date's first chase (ledger numbers carry on)
        date(2027, 1, 25): ["chase 4"],
        date(2027, 1, 28): ["escalation"],  # only after two chases about the new date
    }
    session.expire_all()
    ledger = [(e.kind, e.step) for e in session.get(Action, action_id).events if e.kind != "update"]
    assert len(ledger) == len(set(ledger))  # each step recorded once
    chases = [e for e in emails_about(session, action_id) if e.kind == "action_chase"]
    assert "This is reminder" not in chases[2].body_text  # the new date's first chase
    assert "This is reminder 2." in chases[3].body_text


def test_with_no_one_to_send_to_no_step_is_taken_and_the_coordinators_are_told_once(session_factory, session):
    from agencies.models import Agency
    from notifications.models import OutboundMessage

    load(session_factory)
    with transaction(session_factory) as s:
        s.scalar(select(Agency).where(Agency.code == "CAMHS")).mailbox = ""
    action_id = make_action(session_factory, due_on=DUE, now=at(date(2026, 12, 16), 8), owner_email=None)
    day = date(2026, 12, 16)
    while day <= date(2027, 1, 12):
        for hour in (9, 15):
            assert sweep(session_factory, at(day, hour), only=action_id) == []
        day += timedelta(days=1)
    session.expire_all()
    assert [e.kind for e in session.get(Action, action_id).events] == []  # nothing recorded as sent
    told = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "action_no_recipient")).all()
    assert [m.recipient for m in told] == ["clinic.coordinator@kestrelford.example.org"]
    assert f"ACT-{action_id}" in told[0].subject and f"/actions/{action_id}" in told[0].body_text
    assert not any(name in told[0].body_text for name in child_names())
    assert not session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "action_escalation")).all()
    # Once the agency has a mailbox the action goes out, and chasing starts from there.
    with transaction(session_factory) as s:
        s.scalar(select(Agency).where(Agency.code == "CAMHS")).mailbox = "camhs@kestrelford.example.org"
    assert sweep(session_factory, at(date(2027, 1, 13), 9), only=action_id) == [(action_id, "assigned")]
    assert sweep(session_factory, at(date(2027, 1, 13), 10), only=action_id) == [(action_id, "chase 1")]
