"""The live meeting room's rules: opening, attendance, autosaved texts, decisions, actions, action reviews
and ending the meeting with the referrals moved on by their decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid
from meetings import agenda, invitations, meeting_room
from meetings.edits import EditConflict
from meetings.models import (
    Action,
    ActionEvent,
    ActionStatus,
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Contribution,
    Decision,
    Invitation,
    Meeting,
    MeetingStatus,
    Minute,
    PupilOfConcern,
    Referral,
    ReferralStatus,
)
from meetings.referrals import accept_and_list
from tests.factories import DEMO_MONDAY, load_demo_series, make_submitted_referral

CLINIC_DAY = date(2026, 12, 3)
ON_THE_DAY = datetime(2026, 12, 3, 13, 30, tzinfo=UTC)  # 1:30pm in London (GMT in December)
COORDINATOR = "clinic.coordinator@kestrelford.example.org"


def person_id(session, email: str) -> int:
    return session.scalar(select(Person.id).where(Person.email == email))


def agency_id(session, code: str) -> int:
    return session.scalar(select(Agency.id).where(Agency.code == code))


def set_up_clinic(session_factory, *, extra: int = 2) -> int:
    """The demo clinic of 3 December with `extra` more referrals listed, its agenda frozen at cut-off and
    its invitations made; returns the meeting id."""
    _, meetings = load_demo_series(session_factory, DEMO_MONDAY)
    meeting_id = meetings[CLINIC_DAY]
    for _ in range(extra):
        referral_id, _ = make_submitted_referral(
            session_factory, DEMO_MONDAY, urn="900001", referrer_email="dsl@alderbrook.example.org"
        )
        with transaction(session_factory) as session:
            eip = person_id(session, "eip.north@kestrelford.example.org")
            referral = session.get(Referral, referral_id)
            accept_and_list(session, referral=referral, meeting_id=meeting_id, now=DEMO_MONDAY, person_id=eip)
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, meeting_id)
        invitations.sync_invitations(session, meeting, now=DEMO_MONDAY)
        agenda.freeze(session, meeting, now=meeting.cutoff_at)
    return meeting_id


@pytest.fixture
def clinic(session_factory):
    return set_up_clinic(session_factory)


def run(session_factory, meeting_id, change, *, now=ON_THE_DAY):
    """Run one change as the coordinator in its own transaction."""
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, meeting_id)
        return change(session, meeting, now, person_id(session, COORDINATOR))


def opened(session_factory, meeting_id):
    run(session_factory, meeting_id, lambda s, m, now, me: meeting_room.open_room(s, m, now=now, actor_id=me))


def items(session, meeting_id) -> list[AgendaItem]:
    """The referral items in agenda order (the freeze may also have listed open actions for review)."""
    session.expire_all()
    return [i for i in meeting_room.room_items(session.get(Meeting, meeting_id)) if i.kind == AgendaItemKind.referral]


def settle_reviews(session_factory, session, meeting_id) -> None:
    """Mark done any open action the freeze brought back for review."""
    session.expire_all()
    for item in meeting_room.room_items(session.get(Meeting, meeting_id)):
        if item.kind == AgendaItemKind.action_review:
            run(
                session_factory,
                meeting_id,
                lambda s, m, now, me, item_id=item.id: meeting_room.review_action(
                    s, m, item_id, outcome="done", now=now, actor_id=me
                ),
            )


def audit_actions(session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# ---- opening --------------------------------------------------------------------------------------------


def test_the_room_opens_on_the_day_not_before(session_factory, session, clinic):
    day_before = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    with pytest.raises(Conflict, match="opens on the day of the meeting, Thursday 3 December 2026"):
        run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.open_room(s, m, now=now, actor_id=me),
            now=day_before,
        )
    first = run(session_factory, clinic, lambda s, m, now, me: meeting_room.open_room(s, m, now=now, actor_id=me))
    again = run(session_factory, clinic, lambda s, m, now, me: meeting_room.open_room(s, m, now=now, actor_id=me))
    assert (first, again) == (True, False)
    assert session.get(Meeting, clinic).started_at == ON_THE_DAY
    assert audit_actions(session).count("meeting.room_opened") == 1


def test_a_planned_meeting_cannot_be_opened(session_factory, session):
    _, meetings = load_demo_series(session_factory, DEMO_MONDAY)
    with pytest.raises(Conflict, match="once the agenda has been closed"):
        run(
            session_factory,
            meetings[CLINIC_DAY],
            lambda s, m, now, me: meeting_room.open_room(s, m, now=now, actor_id=me),
        )


# ---- attendance -----------------------------------------------------------------------------------------


def test_attendance_and_someone_who_came_on_the_day(session_factory, session, clinic):
    opened(session_factory, clinic)
    camhs = session.scalar(
        select(Invitation)
        .join(Agency, Agency.id == Invitation.agency_id)
        .where(Invitation.meeting_id == clinic, Agency.code == "CAMHS")
    )
    run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.set_attendance(
            s, m, camhs.id, status="information_sent", note="Report emailed", now=now, actor_id=me
        ),
    )
    with pytest.raises(Invalid) as bad:
        run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.set_attendance(s, m, camhs.id, status="asleep", now=now, actor_id=me),
        )
    assert f"attendance-{camhs.id}" in bad.value.problems

    deputy = person_id(session, "lado.rep@kestrelford.example.org")
    lado = agency_id(session, "LADO")
    added = run(
        session_factory,
        clinic,
        lambda s, m, now, me: (
            meeting_room.add_attendee(s, m, person_id=deputy, agency_id=lado, role="deputy", now=now, actor_id=me).id
        ),
    )
    with pytest.raises(Invalid, match="already on the attendance list"):
        run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.add_attendee(
                s, m, person_id=deputy, agency_id=lado, role="observer", now=now, actor_id=me
            ),
        )
    session.expire_all()
    camhs_row = session.get(Invitation, camhs.id)
    assert (camhs_row.attendance, camhs_row.attendance_note) == ("information_sent", "Report emailed")
    new = session.get(Invitation, added)
    meeting = session.get(Meeting, clinic)
    assert (new.role, new.attendance, new.agency_id) == ("deputy", "present", lado)
    assert new.sequence_sent == meeting.sequence  # no calendar invitation goes to someone already in the room
    assert {"meeting.attendance_recorded", "meeting.attendee_added"} <= set(audit_actions(session))


# ---- autosaved texts ------------------------------------------------------------------------------------


def test_notes_conflict_shows_both_texts_and_a_retry_is_not_a_conflict(session_factory, session, clinic):
    opened(session_factory, clinic)
    item_id = items(session, clinic)[0].id

    def save(text, base):
        return run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.save_item_notes(
                s, m, item_id, text=text, base_version=base, now=now, actor_id=me
            ),
        )

    first = save("School reports attendance at 82%.", 0)
    assert (first.version, first.changed) == (1, True)
    assert save("School reports attendance at 82%.", 0).changed is False  # the same text again: a retry
    save("School reports attendance at 82%. CAMHS: referral triaged.", 1)
    with pytest.raises(EditConflict) as conflict:
        save("School reports attendance at 82%. Police: nothing known.", 1)  # typed offline from version 1
    assert conflict.value.theirs == "School reports attendance at 82%. CAMHS: referral triaged."
    assert conflict.value.yours == "School reports attendance at 82%. Police: nothing known."
    assert conflict.value.version == 2
    kept = save("School reports attendance at 82%. Police: nothing known.", 2)  # "Keep mine"
    assert kept.version == 3
    session.expire_all()
    assert session.get(AgendaItem, item_id).notes.endswith("Police: nothing known.")
    assert audit_actions(session).count("agenda_item.notes_saved") == 3


def test_contributions_as_heard_one_per_agency(session_factory, session, clinic):
    opened(session_factory, clinic)
    item_id = items(session, clinic)[0].id
    police = agency_id(session, "POLICE")

    def save(text, base):
        return run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.save_contribution(
                s, m, item_id, police, text=text, base_version=base, now=now, actor_id=me
            ),
        )

    assert save("", 0).changed is False
    assert save("Known to the schools team; one stop and search.", 0).version == 1
    assert save("Known to the schools team; one stop and search in October.", 1).version == 2
    with pytest.raises(EditConflict):
        save("Something else", 1)
    rows = session.scalars(select(Contribution).where(Contribution.agenda_item_id == item_id)).all()
    assert [(r.agency_id, r.version, r.author_id) for r in rows] == [(police, 2, person_id(session, COORDINATOR))]


# ---- decisions ------------------------------------------------------------------------------------------


def decide(session_factory, meeting_id, item_id, **fields):
    fields.setdefault("rationale", "Agreed by all present.")
    return run(
        session_factory,
        meeting_id,
        lambda s, m, now, me: meeting_room.save_decision(s, m, item_id, now=now, actor_id=me, **fields).id,
    )


def test_decisions_are_checked_against_the_outcome_list(session_factory, session, clinic):
    opened(session_factory, clinic)
    item_id = items(session, clinic)[0].id
    cases = [
        (dict(option_code="", rationale=""), {"option", "rationale"}),
        (dict(option_code="no_such_outcome"), {"option"}),
        (dict(option_code="referred_to_service"), {"service_name"}),
        (dict(option_code="review_on_date"), {"review_on"}),
        (dict(option_code="review_on_date", review_on="2026-12-03"), {"review_on"}),
        (dict(option_code="review_on_date", review_on="2026-02-31"), {"review_on"}),
    ]
    for fields, wrong in cases:
        with pytest.raises(Invalid) as bad:
            decide(session_factory, clinic, item_id, **fields)
        assert set(bad.value.problems) == wrong, fields
    decision_id = decide(
        session_factory, clinic, item_id, option_code="referred_to_service", service_name="Kestrelford Sleep Clinic"
    )
    decision = session.get(Decision, decision_id)
    assert (decision.outcome, decision.option.code, decision.version) == (
        "referred_to_service",
        "referred_to_service",
        1,
    )
    # A second device still showing no decision is told, with both texts, instead of overwriting it.
    with pytest.raises(EditConflict):
        decide(session_factory, clinic, item_id, option_code="closed", rationale="No further action", base_version=0)
    decide(
        session_factory,
        clinic,
        item_id,
        option_code="review_on_date",
        review_on="2027-01-14",
        dissent="Police would have closed it.",
        base_version=1,
    )
    session.expire_all()
    decision = session.get(Decision, decision_id)
    assert (decision.outcome, decision.review_on, decision.version) == ("review_on_date", date(2027, 1, 14), 2)
    assert decision.dissent == "Police would have closed it."
    saved = run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.save_decision_text(
            s,
            m,
            item_id,
            "rationale",
            text="Agreed by all present but the police.",
            base_version=2,
            now=now,
            actor_id=me,
        ),
    )
    assert saved.version == 3
    assert audit_actions(session).count("decision.recorded") == 2


# ---- actions --------------------------------------------------------------------------------------------


def add(session_factory, meeting_id, item_id, **fields):
    def change(s, m, now, me):
        result = meeting_room.add_action(s, m, item_id, now=now, actor_id=me, **fields)
        return result.action.id, result.warnings

    return run(session_factory, meeting_id, change)


def test_actions_are_checked_and_vague_ones_prompted(session_factory, session, clinic):
    opened(session_factory, clinic)
    item = items(session, clinic)[0]
    camhs = agency_id(session, "CAMHS")
    camhs_rep = person_id(session, "camhs.rep@kestrelford.example.org")
    police_rep = person_id(session, "police.rep@kestrelford.example.org")
    with pytest.raises(Invalid) as bad:
        add(session_factory, clinic, item.id, description="", owner="", due_on="")
    assert set(bad.value.problems) == {"description", "owner", "due_on"}
    with pytest.raises(Invalid) as bad:
        add(
            session_factory,
            clinic,
            item.id,
            description="Book a CAMHS appointment",
            owner=f"agency:{camhs}",
            owner_person_id=police_rep,
            due_on="2026-12-05",  # a Saturday
        )
    assert "is not a contact at" in bad.value.problems["owner_person_id"]
    assert "working day" in bad.value.problems["due_on"]
    with pytest.raises(Invalid, match="after the meeting"):
        add(
            session_factory,
            clinic,
            item.id,
            description="Book a CAMHS appointment",
            owner=f"agency:{camhs}",
            owner_person_id=camhs_rep,
            due_on="2026-12-03",
        )

    good_id, good_warnings = add(
        session_factory,
        clinic,
        item.id,
        description="Send the CAMHS triage outcome to the school by email",
        owner=f"agency:{camhs}",
        owner_person_id=camhs_rep,
        due_on="2026-12-10",
    )
    assert good_warnings == []
    vague_id, vague_warnings = add(
        session_factory, clinic, item.id, description="Monitor", owner="school", due_on="2026-12-10"
    )
    assert len(vague_warnings) == 3 and any("hard to check" in w for w in vague_warnings)
    vague = session.get(Action, vague_id)
    school_id = item.referral.school_id
    assert (vague.owner_school_id, vague.involves_school, vague.meeting_id) == (school_id, True, clinic)
    good = session.get(Action, good_id)
    assert (good.referral_id, good.agenda_item_id, good.events) == (item.referral_id, item.id, [])

    with pytest.raises(EditConflict):
        run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.edit_action(
                s,
                m,
                good_id,
                description="Changed",
                owner=f"agency:{camhs}",
                owner_person_id=camhs_rep,
                due_on="2026-12-10",
                base_version=0,
                now=now,
                actor_id=me,
            ),
        )
    run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.edit_action(
            s,
            m,
            good_id,
            description="Send the CAMHS triage outcome to the school",
            owner=f"agency:{camhs}",
            owner_person_id=camhs_rep,
            due_on="2026-12-11",
            base_version=1,
            now=now,
            actor_id=me,
        ),
    )
    run(session_factory, clinic, lambda s, m, now, me: meeting_room.remove_action(s, m, vague_id, now=now, actor_id=me))
    session.expire_all()
    assert session.get(Action, vague_id) is None
    assert (session.get(Action, good_id).due_on, session.get(Action, good_id).version) == (date(2026, 12, 11), 2)
    assert {"action.agreed", "action.changed_in_meeting", "action.removed_in_meeting"} <= set(audit_actions(session))


def test_an_open_action_brought_back_is_reviewed(session_factory, session, clinic):
    """Kept open with a reason and a new date; then, at the same meeting, marked done."""
    opened(session_factory, clinic)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, clinic)
        review = next((i for i in meeting.items if i.kind == AgendaItemKind.action_review), None)
        if review is None:  # the freeze lists open actions for review; make one if it did not
            action = s.scalars(select(Action).where(Action.status == ActionStatus.open)).first()
            review = AgendaItem(
                meeting_id=clinic, kind=AgendaItemKind.action_review, action_id=action.id, position=99, slot_minutes=5
            )
            s.add(review)
            meeting.items.append(review)
            s.flush()
        action_id, review_id = review.action_id, review.id
    with pytest.raises(Invalid) as bad:
        run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.review_action(
                s, m, review_id, outcome="keep_open", now=now, actor_id=me
            ),
        )
    assert set(bad.value.problems) == {"not_done_reason", "new_due_on"}
    run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.review_action(
            s,
            m,
            review_id,
            outcome="keep_open",
            new_due_on="2026-12-17",
            not_done_reason="agency_did_not_act",
            now=now,
            actor_id=me,
        ),
    )
    state = run(session_factory, clinic, lambda s, m, now, me: meeting_room.room_state(s, m, now=now).unsettled)
    assert review_id not in [row.item.id for row in state]  # reviewed at this meeting: settled
    run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.review_action(s, m, review_id, outcome="done", now=now, actor_id=me),
    )
    session.expire_all()
    action = session.get(Action, action_id)
    assert (action.status, action.not_done_reason, action.due_on) == ("done", "agency_did_not_act", date(2026, 12, 17))
    kinds = [(e.kind, e.step) for e in session.scalars(select(ActionEvent).where(ActionEvent.action_id == action_id))]
    assert ("update", 1) in kinds and kinds[-1][0] == "done"


# ---- ending the meeting ---------------------------------------------------------------------------------


def test_end_meeting_refuses_an_item_without_a_decision_and_then_moves_the_referrals(session_factory, session):
    meeting_id = set_up_clinic(session_factory, extra=3)
    opened(session_factory, meeting_id)
    listed = items(session, meeting_id)
    assert len(listed) == 4
    references = [i.referral.reference for i in listed]
    decide(session_factory, meeting_id, listed[0].id, option_code="support_agreed")
    with pytest.raises(Conflict) as refused:
        run(session_factory, meeting_id, lambda s, m, now, me: meeting_room.end_meeting(s, m, now=now, actor_id=me))
    assert "Record a decision for" in str(refused.value)
    for reference in references[1:]:
        assert reference in str(refused.value)
    assert references[0] not in str(refused.value)

    camhs = agency_id(session, "CAMHS")
    camhs_rep = person_id(session, "camhs.rep@kestrelford.example.org")
    add(
        session_factory,
        meeting_id,
        listed[0].id,
        description="Book a CAMHS assessment and tell the school the date",
        owner=f"agency:{camhs}",
        owner_person_id=camhs_rep,
        due_on="2026-12-10",
    )
    decide(session_factory, meeting_id, listed[1].id, option_code="signposted", service_name="Young carers")
    decide(session_factory, meeting_id, listed[2].id, option_code="review_on_date", review_on="2027-01-14")
    decide(session_factory, meeting_id, listed[3].id, option_code="support_agreed")  # no actions: stays discussed
    settle_reviews(session_factory, session, meeting_id)
    run(
        session_factory,
        meeting_id,
        lambda s, m, now, me: meeting_room.start_item(s, m, listed[3].id, now=now, actor_id=me),
    )
    result = run(
        session_factory,
        meeting_id,
        lambda s, m, now, me: [
            (mv.reference, mv.to_status) for mv in meeting_room.end_meeting(s, m, now=now, actor_id=me).moves
        ],
    )
    assert result == [
        (references[0], "actions_open"),
        (references[1], "closed"),
        (references[2], "review"),
        (references[3], "discussed"),
    ]
    session.expire_all()
    meeting = session.get(Meeting, meeting_id)
    assert (meeting.status, meeting.ended_at) == (MeetingStatus.minutes_draft, ON_THE_DAY)
    assert session.scalar(select(Minute.status).where(Minute.meeting_id == meeting_id)) == "draft"
    assert {i.status for i in meeting_room.room_items(meeting)} == {AgendaItemStatus.discussed}
    assert all(i.ended_at is not None for i in meeting.items if i.started_at is not None)
    first = session.get(Referral, listed[0].referral_id)
    assert [c.to_status for c in first.history][-2:] == [ReferralStatus.discussed, ReferralStatus.actions_open]
    assert "meeting.ended" in audit_actions(session)
    # The minutes stay open for tidying while in draft; the meeting itself cannot end twice.
    assert meeting_room.is_editable(meeting) and not meeting_room.is_running(meeting)
    with pytest.raises(Conflict, match="has ended"):
        run(session_factory, meeting_id, lambda s, m, now, me: meeting_room.end_meeting(s, m, now=now, actor_id=me))


@pytest.mark.parametrize(
    ("code", "extra", "expected"),
    [
        ("closed", {}, "closed"),
        ("deferred_for_information", {}, "review"),
        ("escalated_to_mash", {}, "discussed"),
    ],
)
def test_each_effect_moves_the_referral(session_factory, session, code, extra, expected):
    meeting_id = set_up_clinic(session_factory, extra=0)
    opened(session_factory, meeting_id)
    item = items(session, meeting_id)[0]
    decide(session_factory, meeting_id, item.id, option_code=code, **extra)
    settle_reviews(session_factory, session, meeting_id)
    run(session_factory, meeting_id, lambda s, m, now, me: meeting_room.end_meeting(s, m, now=now, actor_id=me))
    session.expire_all()
    assert session.get(Referral, item.referral_id).status == expected


def test_a_deferred_item_goes_to_the_next_meeting_and_does_not_block_the_end(session_factory, session, clinic):
    opened(session_factory, clinic)
    first, second, third = items(session, clinic)
    for item in (first, second):
        decide(session_factory, clinic, item.id, option_code="closed")
    moved_to = run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.defer_item(s, m, third.id, now=now, actor_id=me).meeting.meeting_date,
    )
    assert moved_to == date(2026, 12, 10)
    settle_reviews(session_factory, session, clinic)
    run(session_factory, clinic, lambda s, m, now, me: meeting_room.end_meeting(s, m, now=now, actor_id=me))
    session.expire_all()
    assert session.get(AgendaItem, third.id).status == AgendaItemStatus.deferred
    assert session.get(Referral, third.referral_id).status == ReferralStatus.accepted


def test_a_pupil_of_concern_item_takes_notes_a_decision_and_actions(session_factory, session, clinic):
    """A Team Around the School item has no referral: its actions carry the concern, and it is discussed."""
    with transaction(session_factory) as s:
        school = s.get(Referral, items(s, clinic)[0].referral_id).school
        concern = PupilOfConcern(
            school_id=school.id,
            label="J.Q., Year 8",
            concern="Late most mornings since October",
            ask="Ideas for a morning routine",
            status="listed",
            added_by_id=person_id(s, "dsl@kestrelford-academy.example.org"),
            added_at=DEMO_MONDAY,
        )
        s.add(concern)
        s.flush()
        meeting = s.get(Meeting, clinic)
        item = AgendaItem(
            meeting_id=clinic, kind=AgendaItemKind.pupil_of_concern, concern_id=concern.id, position=50, slot_minutes=10
        )
        s.add(item)
        meeting.items.append(item)
        s.flush()
        concern_id, item_id = concern.id, item.id
    opened(session_factory, clinic)
    state = run(session_factory, clinic, lambda s, m, now, me: meeting_room.room_state(s, m, now=now))
    row = next(r for r in state.items if r.item.id == item_id)
    assert row.reference == "Pupil of concern: J.Q., Year 8" and row in state.unsettled
    decide(session_factory, clinic, item_id, option_code="support_agreed")
    action_id, _ = add(
        session_factory,
        clinic,
        item_id,
        description="Offer a breakfast club place from Monday",
        owner="school",
        due_on="2026-12-07",
    )
    for item in items(session, clinic):
        decide(session_factory, clinic, item.id, option_code="closed")
    settle_reviews(session_factory, session, clinic)
    run(session_factory, clinic, lambda s, m, now, me: meeting_room.end_meeting(s, m, now=now, actor_id=me))
    session.expire_all()
    action = session.get(Action, action_id)
    assert (action.concern_id, action.referral_id, action.owner_school_id) == (concern_id, None, school.id)
    assert session.get(PupilOfConcern, concern_id).status == "discussed"
    assert session.get(AgendaItem, item_id).status == AgendaItemStatus.discussed


# ---- after the end: locked decisions and actions; the summary ---------------------------------------------


def ended_with_a_decision_and_an_action(session_factory, session, meeting_id) -> tuple[int, int]:
    """Open, decide every item, one action on the first; end the meeting. Returns (item id, action id)."""
    opened(session_factory, meeting_id)
    listed = items(session, meeting_id)
    for item in listed:
        decide(session_factory, meeting_id, item.id, option_code="support_agreed")
    action_id, _ = add(
        session_factory,
        meeting_id,
        listed[0].id,
        description="Book a CAMHS assessment and tell the school the date",
        owner=f"agency:{agency_id(session, 'CAMHS')}",
        owner_person_id=person_id(session, "camhs.rep@kestrelford.example.org"),
        due_on="2026-12-10",
    )
    settle_reviews(session_factory, session, meeting_id)
    run(session_factory, meeting_id, lambda s, m, now, me: meeting_room.end_meeting(s, m, now=now, actor_id=me))
    return listed[0].id, action_id


def test_decisions_and_actions_are_locked_once_the_meeting_has_ended(session_factory, session, clinic):
    item_id, action_id = ended_with_a_decision_and_an_action(session_factory, session, clinic)
    decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item_id))
    camhs = agency_id(session, "CAMHS")
    camhs_rep = person_id(session, "camhs.rep@kestrelford.example.org")
    changes = [
        lambda s, m, now, me: meeting_room.save_decision(
            s, m, item_id, option_code="closed", rationale="Changed later", base_version=1, now=now, actor_id=me
        ),
        lambda s, m, now, me: meeting_room.save_decision_text(
            s, m, item_id, "dissent", text="Added later", base_version=decision.version, now=now, actor_id=me
        ),
        lambda s, m, now, me: meeting_room.add_action(
            s,
            m,
            item_id,
            description="Send the family the leaflet by Friday",
            owner=f"agency:{camhs}",
            owner_person_id=camhs_rep,
            due_on="2026-12-10",
            now=now,
            actor_id=me,
        ),
        lambda s, m, now, me: meeting_room.edit_action(
            s,
            m,
            action_id,
            description="Something else entirely, done by Friday",
            owner=f"agency:{camhs}",
            owner_person_id=camhs_rep,
            due_on="2026-12-10",
            base_version=1,
            now=now,
            actor_id=me,
        ),
        lambda s, m, now, me: meeting_room.remove_action(s, m, action_id, now=now, actor_id=me),
    ]
    for change in changes:
        with pytest.raises(Conflict, match="decisions and actions have gone to the school"):
            run(session_factory, clinic, change)
    session.expire_all()
    assert session.get(Decision, decision.id).outcome == "support_agreed"
    assert session.get(Action, action_id).description.startswith("Book a CAMHS assessment")
    # Notes stay open for tidying while the minutes are in draft.
    saved = run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.save_item_notes(
            s, m, item_id, text="Tidied after the meeting", base_version=0, now=now, actor_id=me
        ),
    )
    assert saved.changed


def test_the_summary_is_written_after_the_end_while_the_minutes_are_draft(session_factory, session, clinic):
    def save(text, base):
        return run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.save_summary(s, m, text=text, base_version=base, now=now, actor_id=me),
        )

    opened(session_factory, clinic)
    with pytest.raises(Conflict, match="once the meeting has ended"):
        save("Too early", 1)
    assert session.scalar(select(Minute.id).where(Minute.meeting_id == clinic)) is None  # nothing created early
    ended_with_a_decision_and_an_action(session_factory, session, clinic)
    assert save("Four referrals discussed; quorate.", 1).version == 2
    with pytest.raises(EditConflict) as conflict:
        save("From a stale tab", 1)
    assert conflict.value.theirs == "Four referrals discussed; quorate."
    session.expire_all()
    minute = session.scalar(select(Minute).where(Minute.meeting_id == clinic))
    assert (minute.summary, minute.version) == ("Four referrals discussed; quorate.", 2)
    assert "minute.summary_saved" in audit_actions(session)
    with transaction(session_factory) as s:
        s.get(Meeting, clinic).status = MeetingStatus.minutes_approved
        s.get(Minute, minute.id).status = "approved"
    with pytest.raises(Conflict, match="approved"):
        save("After approval", 2)


# ---- who may see what an agency said --------------------------------------------------------------------


def test_health_and_police_contributions_are_not_circulated_to_everyone_by_default(session_factory, session, clinic):
    opened(session_factory, clinic)
    item_id = items(session, clinic)[0].id

    def save(code, text, base=0, **sharing):
        return run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.save_contribution(
                s, m, item_id, agency_id(s, code), text=text, base_version=base, now=now, actor_id=me, **sharing
            ),
        )

    def sharing_of(code):
        session.expire_all()
        row = session.scalar(
            select(Contribution).where(
                Contribution.agenda_item_id == item_id, Contribution.agency_id == agency_id(session, code)
            )
        )
        return row.visibility, row.visible_to_agencies, row.version

    save("CAMHS", "Open to CAMHS; medication reviewed.")
    visibility, codes, _ = sharing_of("CAMHS")
    assert visibility == "named_agencies" and "CAMHS" in codes and "MASH" in codes
    assert "POLICE" not in codes and "EARLY_HELP" not in codes
    save("POLICE", "One stop and search in October.")
    visibility, codes, _ = sharing_of("POLICE")
    assert visibility == "named_agencies" and {"POLICE", "YARM", "MASH"} <= set(codes)
    assert "CAMHS" not in codes and "EARLY_HELP" not in codes
    save("EARLY_HELP", "Family support worker allocated.")
    assert sharing_of("EARLY_HELP")[0] == "all_invitees"
    # Chosen in the room: the chair only, with the same text (a new version, audited).
    saved = save("CAMHS", "Open to CAMHS; medication reviewed.", base=1, visibility="chair_only")
    assert saved.changed and sharing_of("CAMHS") == ("chair_only", [], 2)
    save("POLICE", "One stop and search in October.", base=1, visibility="named_agencies", visible_to_agencies=["mash"])
    assert sharing_of("POLICE") == ("named_agencies", ["MASH"], 2)
    with pytest.raises(Invalid):
        save("POLICE", "One stop and search in October.", base=2, visibility="named_agencies", visible_to_agencies=[])
    with pytest.raises(Invalid):
        save("POLICE", "One stop and search in October.", base=2, visibility="everyone")


# ---- texts that share a version ------------------------------------------------------------------------


def test_a_stale_page_never_overwrites_dissent_saved_by_someone_else(session_factory, session, clinic):
    opened(session_factory, clinic)
    item_id = items(session, clinic)[0].id
    decide(session_factory, clinic, item_id, option_code="support_agreed", rationale="Agreed.")

    def text(field, value, base, seen):
        return run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.save_decision_text(
                s, m, item_id, field, text=value, base_version=base, base_text=seen, now=now, actor_id=me
            ),
        )

    # Laptop B records a dissent; laptop A (still at version 1) then saves its rationale: its own text is as
    # A saw it, so that is saved (no false conflict)...
    assert text("dissent", "Police would have closed it.", 1, "").version == 2
    assert text("rationale", "Agreed by those present.", 1, "Agreed.").version == 3
    # ...but A's empty dissent box, whatever version it now names, does not overwrite B's dissent.
    with pytest.raises(EditConflict) as conflict:
        text("dissent", "No dissent.", 3, "")
    assert (conflict.value.theirs, conflict.value.yours) == ("Police would have closed it.", "No dissent.")
    # Nor does the whole decision form sent from A with the version moved on by A's own saves.
    seen = {"option": "support_agreed", "rationale": "Agreed by those present.", "dissent": "", "service_name": ""}
    seen["review_on"] = ""
    with pytest.raises(EditConflict) as conflict:
        decide(
            session_factory,
            clinic,
            item_id,
            option_code="support_agreed",
            rationale="Agreed by those present.",
            dissent="",
            base_version=3,
            base_texts=seen,
        )
    assert conflict.value.theirs == "Police would have closed it."
    session.expire_all()
    decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item_id))
    assert (decision.rationale, decision.dissent) == ("Agreed by those present.", "Police would have closed it.")
    # With what is stored now in view, the form saves.
    seen["dissent"] = "Police would have closed it."
    decide(
        session_factory,
        clinic,
        item_id,
        option_code="closed",
        rationale="Agreed by those present.",
        dissent="Police would have closed it.",
        base_version=1,
        base_texts=seen,
    )
    session.expire_all()
    assert session.get(Decision, decision.id).outcome == "closed"


# ---- an action already sent ----------------------------------------------------------------------------


def test_an_action_sent_to_its_owner_keeps_its_owner_in_the_room(session_factory, session, clinic):
    opened(session_factory, clinic)
    item_id = items(session, clinic)[0].id
    camhs, police = agency_id(session, "CAMHS"), agency_id(session, "POLICE")
    camhs_rep = person_id(session, "camhs.rep@kestrelford.example.org")
    action_id, _ = add(
        session_factory,
        clinic,
        item_id,
        description="Book a CAMHS assessment and tell the school the date",
        owner=f"agency:{camhs}",
        owner_person_id=camhs_rep,
        due_on="2026-12-10",
    )
    with transaction(session_factory) as s:
        s.add(ActionEvent(action_id=action_id, kind="assigned", step=1, occurred_at=ON_THE_DAY))
    police_rep = session.scalar(select(Person.id).where(Person.email == "police.rep@kestrelford.example.org"))
    fields = dict(description="Book a CAMHS assessment and tell the school the date", due_on="2026-12-10")
    with pytest.raises(Conflict, match="from the action tracker"):
        run(
            session_factory,
            clinic,
            lambda s, m, now, me: meeting_room.edit_action(
                s,
                m,
                action_id,
                owner=f"agency:{police}",
                owner_person_id=police_rep,
                base_version=1,
                now=now,
                actor_id=me,
                **fields,
            ),
        )
    session.expire_all()
    assert session.get(Action, action_id).owner_agency_id == camhs
    # The wording can still be tidied while the meeting runs.
    fields["description"] = "Book a CAMHS assessment by 10 December and tell the school the date"
    run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.edit_action(
            s,
            m,
            action_id,
            owner=f"agency:{camhs}",
            owner_person_id=camhs_rep,
            base_version=1,
            now=now,
            actor_id=me,
            **fields,
        ),
    )
    session.expire_all()
    assert session.get(Action, action_id).description.startswith("Book a CAMHS assessment by 10 December")


def test_a_review_kept_open_records_why_and_the_latest_update(session_factory, session, clinic):
    opened(session_factory, clinic)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, clinic)
        action = s.scalars(select(Action).where(Action.status == ActionStatus.open)).first()
        review = AgendaItem(
            meeting_id=clinic, kind=AgendaItemKind.action_review, action_id=action.id, position=99, slot_minutes=5
        )
        meeting.items.append(review)
        s.flush()
        action_id, review_id = action.id, review.id
    state = run(session_factory, clinic, lambda s, m, now, me: meeting_room.room_state(s, m, now=now))
    row = next(r for r in state.items if r.item.id == review_id)
    assert not row.reviewed_here  # nothing recorded yet: the page must not say "Reviewed"
    run(
        session_factory,
        clinic,
        lambda s, m, now, me: meeting_room.review_action(
            s,
            m,
            review_id,
            outcome="keep_open",
            new_due_on="2026-12-17",
            not_done_reason="agency_did_not_act",
            now=now,
            actor_id=me,
        ),
    )
    session.expire_all()
    action = session.get(Action, action_id)
    assert action.not_done_reason == "agency_did_not_act"
    assert action.updated_at == ON_THE_DAY
    assert "kept open, now due 17 December 2026" in action.latest_update
