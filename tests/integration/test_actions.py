"""The action service: updates and their checks, open actions back on the agenda, and the tracker's scoping."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from agencies.models import Person
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid
from meetings import agenda
from meetings.access import principal_for
from meetings.actions import TrackerFilters, add_action_reviews, csv_rows, tracker, tracker_counts, update_action
from meetings.models import Action, ActionStatus, AgendaItem, AgendaItemKind, AgendaItemStatus, Meeting
from tests.integration.actions_setup import at, child_names, load, make_action

NOW = at(date(2026, 11, 24))
TODAY = date(2026, 11, 24)


def principal(session, email: str):
    return principal_for(session.scalar(select(Person).where(Person.email == email)))


def test_updates_are_checked_recorded_and_audited(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=date(2026, 12, 2), now=NOW)
    with transaction(session_factory) as s:
        action = s.get(Action, action_id)
        with pytest.raises(Invalid) as empty:
            update_action(s, action, kind="update", note="  ", by_person_id=None, now=NOW)
        assert "note" in empty.value.problems
        with pytest.raises(Invalid) as bad:
            update_action(s, action, kind="cannot_do", note="x", reason="bored", by_person_id=None, now=NOW)
        assert "reason" in bad.value.problems
        with pytest.raises(Invalid) as past:
            update_action(s, action, kind="update", note="x", new_due_on=date(2026, 11, 1), by_person_id=None, now=NOW)
        assert "new_due_on" in past.value.problems
        with pytest.raises(Invalid):
            update_action(s, action, kind="finished", note="", by_person_id=None, now=NOW)
        update_action(s, action, kind="update", note="Seen once", by_person_id=None, now=NOW)
        update_action(
            s, action, kind="update", note="Seen twice", new_due_on=date(2026, 12, 9), by_person_id=None, now=NOW
        )
        update_action(
            s, action, kind="cannot_do", note="No consent", reason="circumstances_changed", by_person_id=None, now=NOW
        )
    action = session.get(Action, action_id)
    assert [(e.kind, e.step) for e in action.events] == [("update", 1), ("update", 2), ("cannot_do", 1)]
    assert action.due_on == date(2026, 12, 9) and action.status == ActionStatus.open
    assert action.not_done_reason == "circumstances_changed" and action.latest_update == "No consent"
    audited = session.scalars(
        select(AuditEvent.action).where(AuditEvent.record_type == "action", AuditEvent.record_id == str(action_id))
    ).all()
    assert audited == ["action.update", "action.update", "action.cannot_do"]
    with transaction(session_factory) as s:
        action = s.get(Action, action_id)
        update_action(s, action, kind="done", note="", by_person_id=None, now=NOW)
        with pytest.raises(Conflict):
            update_action(s, action, kind="update", note="late news", by_person_id=None, now=NOW)
    assert session.get(Action, action_id).status == ActionStatus.done


def _open_from_earlier(session, meeting: Meeting) -> set[int]:
    found = set()
    for action in session.scalars(select(Action).where(Action.status == ActionStatus.open)):
        origin = session.get(Meeting, action.meeting_id) if action.meeting_id else None
        if origin is None and action.agenda_item_id:
            origin = session.get(AgendaItem, action.agenda_item_id).meeting
        if origin.series_id == meeting.series_id and origin.starts_at < meeting.starts_at:
            found.add(action.id)
    return found


def test_open_actions_come_back_for_review_at_the_freeze_once(session_factory, session):
    load(session_factory)
    new_id = make_action(session_factory, due_on=date(2026, 11, 20), now=NOW)
    done_id = make_action(session_factory, due_on=date(2026, 11, 20), now=NOW)
    with transaction(session_factory) as s:
        update_action(s, s.get(Action, done_id), kind="done", note="", by_person_id=None, now=NOW)
    with transaction(session_factory) as s:
        meeting = s.scalar(select(Meeting).where(Meeting.meeting_date == date(2026, 11, 26)))
        expected = _open_from_earlier(s, meeting)
        result = agenda.freeze(s, meeting, now=meeting.cutoff_at)
        reviewed = {i.action_id for i in result.action_reviews}
        assert new_id in reviewed and done_id not in reviewed
        assert reviewed == expected
        assert all(i.kind == AgendaItemKind.action_review and i.referral_id is None for i in result.action_reviews)
        # Action reviews come after the cases, and never push a case off the agenda.
        listed = agenda.listed_items(meeting)
        assert [i.kind for i in listed][-len(reviewed) :] == ["action_review"] * len(reviewed)
        assert not any(m.old_item.kind == AgendaItemKind.action_review for m in result.moved)
        assert agenda.item_label(result.action_reviews[0]) == "review"
        # Asking again (a sweep re-run) lists nothing twice, nor on the next clinic while this one is to come.
        assert add_action_reviews(s, meeting, now=meeting.cutoff_at) == []
        following = s.scalar(select(Meeting).where(Meeting.meeting_date == date(2026, 12, 3)))
        assert add_action_reviews(s, following, now=meeting.cutoff_at) == []


def test_a_review_item_moved_on_is_carried_to_the_next_clinic(session_factory, session):
    load(session_factory)
    make_action(session_factory, due_on=date(2026, 11, 20), now=NOW)
    with transaction(session_factory) as s:
        meeting = s.scalar(select(Meeting).where(Meeting.meeting_date == date(2026, 11, 26)))
        item = agenda.freeze(s, meeting, now=meeting.cutoff_at).action_reviews[0]
        coordinator = principal(s, "clinic.coordinator@kestrelford.example.org")
        moved = agenda.remove_item(
            s,
            meeting=meeting,
            item_id=item.id,
            now=meeting.cutoff_at,
            actor_id=coordinator.person_id,
            to_next_meeting=True,
        )
        assert moved.new_item.action_id == item.action_id and moved.new_item.carried_from_id == item.id
        assert item.status == AgendaItemStatus.deferred and moved.new_item.status == AgendaItemStatus.listed


def test_the_tracker_shows_each_person_only_what_they_may_see(session_factory, session):
    load(session_factory)
    camhs_id = make_action(session_factory, due_on=date(2026, 11, 20), now=NOW, involves_school=True)
    police_id = make_action(
        session_factory,
        due_on=date(2026, 12, 20),
        now=NOW,
        agency="POLICE",
        owner_email="police.rep@kestrelford.example.org",
    )
    everyone = tracker(
        session, principal(session, "clinic.coordinator@kestrelford.example.org"), TrackerFilters(), today=TODAY
    )
    assert {camhs_id, police_id} <= {a.id for a in everyone}
    camhs = tracker(session, principal(session, "camhs.rep@kestrelford.example.org"), TrackerFilters(), today=TODAY)
    assert camhs_id in {a.id for a in camhs} and police_id not in {a.id for a in camhs}
    assert {a.owner_agency.code for a in camhs} == {"CAMHS"}
    police = principal(session, "police.rep@kestrelford.example.org")
    assert police_id in {a.id for a in tracker(session, police, TrackerFilters(), today=TODAY)}
    overdue = tracker(session, police, TrackerFilters(status="overdue"), today=TODAY)
    assert police_id not in {a.id for a in overdue}
    camhs_overdue = tracker(
        session, principal(session, "camhs.rep@kestrelford.example.org"), TrackerFilters(status="overdue"), today=TODAY
    )
    assert camhs_id in {a.id for a in camhs_overdue}
    counts = tracker_counts(
        session, principal(session, "camhs.rep@kestrelford.example.org"), TrackerFilters(), today=TODAY
    )
    assert counts["open"] >= counts["overdue"] >= 1
    # The school sees the actions that involve it, at its own school only.
    action = session.get(Action, camhs_id)
    school_id = action.referral.school_id
    referrer = session.scalar(select(Person).where(Person.email.like("%@%"), Person.grants.any(school_id=school_id)))
    school_view = tracker(session, principal_for(referrer), TrackerFilters(), today=TODAY)
    assert camhs_id in {a.id for a in school_view} and police_id not in {a.id for a in school_view}
    assert all(a.involves_school for a in school_view)
    # Filters by agency and school narrow the coordinator's view.
    coordinator = principal(session, "clinic.coordinator@kestrelford.example.org")
    by_agency = tracker(session, coordinator, TrackerFilters(agency_id=action.owner_agency_id), today=TODAY)
    assert by_agency and {a.owner_agency_id for a in by_agency} == {action.owner_agency_id}
    by_school = tracker(session, coordinator, TrackerFilters(school_id=school_id), today=TODAY)
    assert camhs_id in {a.id for a in by_school}


def test_csv_rows_carry_references_not_names(session_factory, session):
    load(session_factory)
    action_id = make_action(session_factory, due_on=date(2026, 11, 20), now=NOW, description="=HYPERLINK(evil)")
    coordinator = principal(session, "clinic.coordinator@kestrelford.example.org")
    rows = csv_rows(session, tracker(session, coordinator, TrackerFilters(), today=TODAY), today=TODAY)
    assert rows[0][0] == "Action" and len(rows) > 2
    row = next(r for r in rows if r[0] == f"ACT-{action_id}")
    action = session.get(Action, action_id)
    assert row[1] == action.referral.reference and row[5] == "'=HYPERLINK(evil)" and row[8] == "yes"
    for name in child_names():  # the case is named by its reference; no column is the child's name
        for r in rows:
            assert not any(re.fullmatch(rf"{re.escape(name)}", cell) for cell in r), name


def test_the_csv_updated_date_is_the_london_date(session_factory, session):
    from datetime import UTC, datetime

    load(session_factory)
    action_id = make_action(session_factory, due_on=date(2026, 12, 10), now=NOW)
    with transaction(session_factory) as s:
        s.get(Action, action_id).updated_at = datetime(2026, 10, 20, 23, 30, tzinfo=UTC)  # 00:30 on the 21st in London
    coordinator = principal(session, "clinic.coordinator@kestrelford.example.org")
    rows = csv_rows(session, tracker(session, coordinator, TrackerFilters(), today=TODAY), today=TODAY)
    row = next(r for r in rows if r[0] == f"ACT-{action_id}")
    assert row[rows[0].index("Updated")] == "2026-10-21"
