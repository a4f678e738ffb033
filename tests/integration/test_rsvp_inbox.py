"""RSVP by email: iTIP REPLY messages arriving in the app mailbox update the invitation they answer."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from icalendar import Calendar, Event, vCalAddress
from sqlalchemy import func, select

from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings.models import Invitation, Meeting, Rsvp
from notifications import invites
from notifications.inbox import process_inbox, store_inbound
from notifications.models import InboundKind, InboundMessage, InboundStatus, OutboundMessage
from tests.factories import DEMO_MONDAY, MAIL, load_demo_invited

APP = "clinic@kestrelford.example.org"
REP = "camhs.rep@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def meeting(session_factory, clock) -> Meeting:
    return load_demo_invited(session_factory, clock.now())


def reply_ics(uid: str, attendee: str, partstat: str, *, sequence: int = 0, delegated_to: str | None = None) -> str:
    """What Outlook or Thunderbird sends back after Accept/Decline."""
    calendar = Calendar()
    calendar.add("prodid", "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REPLY")
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", datetime(2026, 11, 23, 11, 0, tzinfo=UTC))
    event.add("dtstart", datetime(2026, 11, 26, 13, 30, tzinfo=UTC))
    event.add("summary", "Kestrelford Vulnerable Pupil Hot Clinic")
    event.add("organizer", vCalAddress(f"mailto:{APP}"))
    address = vCalAddress(f"mailto:{attendee}")
    address.params["PARTSTAT"] = partstat
    address.params["CN"] = "Dr Nadia Fenwick"
    if delegated_to:
        address.params["DELEGATED-TO"] = f"mailto:{delegated_to}"
    event.add("attendee", address)
    calendar.add_component(event)
    return calendar.to_ical().decode()


def reply_email(sender: str, ics: str, *, subject: str = "Accepted: Hot Clinic", attach: bool = False) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, APP, subject
    message["Message-ID"] = f"<{abs(hash((sender, ics)))}@mail.example.org>"
    message.set_content("Dr Nadia Fenwick has accepted this invitation.")
    if attach:
        message.add_attachment(ics.encode(), maintype="application", subtype="ics", filename="invite.ics")
    else:
        message.add_alternative(ics, subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes()


def deliver(session_factory, clock, raw: bytes):
    with transaction(session_factory) as session:
        store_inbound(session, raw=raw, now=clock.now())
    with transaction(session_factory) as session:
        return process_inbox(session, now=clock.now(), mail=MAIL, own_address=APP)


def invitation(session, meeting: Meeting, email: str = REP) -> Invitation:
    session.expire_all()
    return next(i for i in session.get(Meeting, meeting.id).invitations if i.person.email == email)


def latest_inbound(session) -> InboundMessage:
    session.expire_all()
    return session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()


# --- RSVP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partstat", "rsvp"),
    [("ACCEPTED", Rsvp.accepted), ("DECLINED", Rsvp.declined), ("TENTATIVE", Rsvp.tentative)],
)
def test_a_calendar_reply_updates_the_invitation(session_factory, session, clock, meeting, partstat, rsvp):
    report = deliver(session_factory, clock, reply_email(REP, reply_ics(meeting.calendar_uid, REP, partstat)))
    assert report.rsvps == 1 and report.for_a_person == 0
    updated = invitation(session, meeting)
    assert updated.rsvp == rsvp and updated.rsvp_source == "email" and updated.rsvp_at == clock.now()
    inbound = latest_inbound(session)
    assert (inbound.kind, inbound.status) == (InboundKind.rsvp, InboundStatus.applied)
    assert REP in inbound.note and rsvp.value in inbound.note
    # Never answered: no status replies or refusals go back to a calendar reply.
    assert (
        session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.kind.in_(["status_reply", "status_refusal"]))
        )
        == 0
    )


def test_a_delegated_reply_as_an_ics_attachment(session_factory, session, clock, meeting):
    ics = reply_ics(meeting.calendar_uid, REP, "DELEGATED", delegated_to="colleague@camhs.example.org")
    report = deliver(session_factory, clock, reply_email(REP, ics, attach=True))
    assert report.rsvps == 1
    updated = invitation(session, meeting)
    assert updated.rsvp == Rsvp.delegated and updated.delegated_to == "colleague@camhs.example.org"


def test_a_malformed_calendar_is_kept_for_a_person_and_the_inbox_carries_on(session_factory, session, clock, meeting):
    broken = "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nDTSTART:notadate\r\nATTENDEE;PARTSTAT\r\n"
    with transaction(session_factory) as s:
        store_inbound(s, raw=reply_email(REP, broken, subject="Accepted"), now=clock.now())
        store_inbound(s, raw=reply_email(REP, reply_ics(meeting.calendar_uid, REP, "ACCEPTED")), now=clock.now())
    with transaction(session_factory) as s:
        report = process_inbox(s, now=clock.now(), mail=MAIL, own_address=APP)
    assert report.for_a_person == 1 and report.rsvps == 1
    session.expire_all()
    first, second = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
    assert first.status == InboundStatus.needs_human and "could not be read" in first.note
    assert second.status == InboundStatus.applied
    assert invitation(session, meeting).rsvp == Rsvp.accepted


def test_a_reply_for_an_unknown_meeting_is_kept_for_a_person(session_factory, session, clock, meeting):
    report = deliver(
        session_factory, clock, reply_email(REP, reply_ics("meeting-9-20990101@x.example", REP, "ACCEPTED"))
    )
    assert report.for_a_person == 1 and report.rsvps == 0
    inbound = latest_inbound(session)
    assert inbound.status == InboundStatus.needs_human and "do not know" in inbound.note
    assert invitation(session, meeting).rsvp == Rsvp.needs_action


def test_a_reply_from_someone_not_invited_is_kept_for_a_person(session_factory, session, clock, meeting):
    stranger = "lado.rep@kestrelford.example.org"
    deliver(session_factory, clock, reply_email(stranger, reply_ics(meeting.calendar_uid, stranger, "ACCEPTED")))
    inbound = latest_inbound(session)
    assert inbound.status == InboundStatus.needs_human and "not invited" in inbound.note
    answered = select(func.count()).where(Invitation.meeting_id == meeting.id, Invitation.rsvp != "needs_action")
    assert session.scalar(answered) == 0


def test_a_reply_sent_for_someone_else_is_not_applied(session_factory, session, clock, meeting):
    deliver(session_factory, clock, reply_email("police.rep@kestrelford.example.org",
                                                reply_ics(meeting.calendar_uid, REP, "DECLINED")))  # fmt: skip
    inbound = latest_inbound(session)
    assert inbound.status == InboundStatus.needs_human and "another address" in inbound.note
    assert invitation(session, meeting).rsvp == Rsvp.needs_action


def test_a_reply_to_an_old_version_is_not_applied(session_factory, session, clock, meeting):
    with transaction(session_factory) as s:
        s.get(Meeting, meeting.id).sequence = 2
        invites.send_invitations(s, meeting.id, now=clock.now(), mail=MAIL, organizer_name="Team")
    deliver(session_factory, clock, reply_email(REP, reply_ics(meeting.calendar_uid, REP, "ACCEPTED", sequence=1)))
    inbound = latest_inbound(session)
    assert inbound.status == InboundStatus.needs_human and "Out-of-date" in inbound.note
    assert invitation(session, meeting).rsvp == Rsvp.needs_action
    deliver(session_factory, clock, reply_email(REP, reply_ics(meeting.calendar_uid, REP, "ACCEPTED", sequence=2)))
    assert invitation(session, meeting).rsvp == Rsvp.accepted


def test_a_reply_to_the_old_time_arriving_before_the_update_goes_out_is_not_applied(
    session_factory, session, clock, meeting
):
    # Version 0 went out; the meeting then moved (version 1), and the update has not been sent yet.
    with transaction(session_factory) as s:
        s.get(Meeting, meeting.id).sequence += 1
    deliver(session_factory, clock, reply_email(REP, reply_ics(meeting.calendar_uid, REP, "ACCEPTED", sequence=0)))
    inbound = latest_inbound(session)
    assert inbound.status == InboundStatus.needs_human and "has changed since" in inbound.note
    assert invitation(session, meeting).rsvp == Rsvp.needs_action


def test_a_forwarded_invitation_is_not_a_reply(session_factory, session, clock, meeting):
    ics = reply_ics(meeting.calendar_uid, REP, "ACCEPTED").replace("METHOD:REPLY", "METHOD:REQUEST")
    report = deliver(session_factory, clock, reply_email(REP, ics, subject="Fwd: clinic"))
    assert report.rsvps == 0 and report.for_a_person == 1
    inbound = latest_inbound(session)
    assert inbound.kind != InboundKind.rsvp and inbound.status == InboundStatus.needs_human
