"""The outcome to the school after the meeting: one email per school contact, sent once however often the
sweep runs, with the reference, the decision's label, the school's actions counted and dated, the new
status, and never the child's name."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from caseconf.db import transaction
from meetings.demo_pupils import PERSONAS
from meetings.models import AgendaItem, Meeting
from notifications import minutes_mail
from notifications.models import OutboundMessage
from tests.factories import MAIL
from tests.integration.test_minutes import ENDED, held_meeting

AFTER = ENDED + timedelta(minutes=5)


def child_names() -> set[str]:
    names = set()
    for persona in PERSONAS:
        for key in ("legal_first_name", "legal_surname", "preferred_name"):
            if persona.child.get(key):
                names.add(persona.child[key])
    return names


def test_each_school_contact_gets_the_outcome_once_with_no_child_name(session_factory):
    meeting_id = held_meeting(session_factory)
    with session_factory() as s:
        assert minutes_mail.meetings_due_outcomes(s, now=ENDED - timedelta(minutes=1)) == []
        assert minutes_mail.meetings_due_outcomes(s, now=AFTER) == [meeting_id]
        meeting = s.get(Meeting, meeting_id)
        referral = meeting.items[0].referral
        expected = minutes_mail.outcome_recipients(s, referral)
        reference, child = referral.reference, referral.child
    assert expected == ["dsl@kestrelford-academy.example.org"]  # the referrer is the DSL here

    with transaction(session_factory) as s:
        first = minutes_mail.send_outcomes(s, meeting_id, now=AFTER, mail=MAIL)
        assert sorted(m.recipient for m in first) == sorted(expected)
    with transaction(session_factory) as s:
        assert minutes_mail.send_outcomes(s, meeting_id, now=AFTER + timedelta(minutes=5), mail=MAIL) == []
        assert minutes_mail.meetings_due_outcomes(s, now=AFTER) == []

    with session_factory() as s:
        messages = s.scalars(select(OutboundMessage).where(OutboundMessage.kind == "clinic_outcome")).all()
        assert len(messages) == len(expected)
        names = child_names() | {child.legal_first_name, child.legal_surname}
        for message in messages:
            assert message.subject == f"Referral {reference}: the clinic's decision"
            assert reference in message.body_text and "Decision: Support agreed" in message.body_text
            assert "Referral status: Actions in progress" in message.body_text
            assert "Actions for the school: 1, due 10 December 2026" in message.body_text
            assert "Hold a review meeting" not in message.body_text  # the description is on the portal only
            assert "Needs persist" not in message.body_text  # so is the rationale
            for text in (message.subject, message.body_text, message.body_html or ""):
                assert not any(name in text for name in names)
            assert message.in_reply_to == f"<referral-{referral.id}@{MAIL.mail_domain}>"
            assert f"/referrals/{referral.id}" in message.body_text
        item = s.scalar(select(AgendaItem).where(AgendaItem.meeting_id == meeting_id))
        assert item.outcome_sent_at == AFTER
        assert s.scalar(
            select(func.count()).select_from(OutboundMessage).where(OutboundMessage.kind == "clinic_outcome")
        ) == len(expected)


def test_a_meeting_not_yet_closed_in_the_room_sends_nothing(session_factory):
    meeting_id = held_meeting(session_factory)
    with transaction(session_factory) as s:
        s.get(Meeting, meeting_id).ended_at = None
    with transaction(session_factory) as s:
        assert minutes_mail.meetings_due_outcomes(s, now=AFTER) == []
        assert minutes_mail.send_outcomes(s, meeting_id, now=AFTER, mail=MAIL) == []
