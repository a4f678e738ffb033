"""Calendar invitations, updates, cancellations and the quorum check, on the demo borough's clinic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from agencies.models import Agency, Person
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import referrals
from meetings.demo import COORDINATOR, SERIES_NAME, load_demo
from meetings.invitations import apply_rsvp, attendance_summary, invitees, sync_invitations
from meetings.models import (
    Invitation,
    InviteeRole,
    Meeting,
    MeetingSeries,
    MeetingStatus,
    Rsvp,
    SeriesMember,
)
from meetings.planning import apply_times
from notifications import invites
from notifications.delivery import Sender, build_email
from notifications.emails import MailContext
from notifications.models import OutboundMessage
from tests.factories import make_person, make_submitted_referral
from tests.referral_answers import CHILD_FIRST, CHILD_LAST

MAIL = MailContext(base_url="http://127.0.0.1:8000", mail_domain="kestrelford.example.org", team_name="Team")
APP = "clinic@kestrelford.example.org"
SENDER = Sender(APP, "Kestrelford Inclusion Team")
CLINIC_DAY = date(2026, 11, 26)


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # the Monday before a clinic


@pytest.fixture
def demo(session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())


def meeting_on(session, day: date) -> Meeting:
    session.expire_all()
    return session.scalar(select(Meeting).where(Meeting.meeting_date == day))


def send(session_factory, clock, meeting_id: int) -> int:
    with transaction(session_factory) as session:
        return invites.send_invitations(
            session, meeting_id, now=clock.now(), mail=MAIL, organizer_name="Kestrelford Inclusion Team",
            organizer_email=APP,
        )  # fmt: skip


def sweep(session_factory, clock) -> int:
    with transaction(session_factory) as session:
        due = invites.meetings_due_invitations(session, now=clock.now())
    return sum(send(session_factory, clock, meeting_id) for meeting_id in due)


def emails(session, **where) -> list[OutboundMessage]:
    session.expire_all()
    query = select(OutboundMessage).where(OutboundMessage.kind.in_(["invitation", "invitation_cancelled"]))
    for name, value in where.items():
        query = query.where(getattr(OutboundMessage, name) == value)
    return list(session.scalars(query.order_by(OutboundMessage.id)))


def parsed(message: OutboundMessage):
    """The email as a mail client gets it, and its calendar part parsed back."""
    raw = build_email(message, SENDER).as_bytes()
    email = message_from_bytes(raw, policy=policy.default)
    (part,) = [p for p in email.walk() if p.get_content_type() == "text/calendar"]
    return email, part, Calendar.from_ical(part.get_content())


def wall(moment: datetime) -> tuple[date, time]:
    """The local date and clock time as written in the calendar (TZID=Europe/London)."""
    assert str(moment.tzinfo) == "Europe/London"
    return moment.date(), moment.time()


def event_of(calendar: Calendar):
    (event,) = calendar.walk("VEVENT")
    return event


def test_everyone_is_invited_once_with_a_calendar_request(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    sent = send(session_factory, clock, meeting_id)
    meeting = meeting_on(session, CLINIC_DAY)
    people = {i.person.email: i for i in meeting.invitations}
    # Chair, coordinator as minute-taker, and the seven core agencies' reps.
    assert sent == len(people) == 9
    assert people[meeting.chair.email].role == InviteeRole.chair
    assert people[COORDINATOR].role == InviteeRole.minute_taker
    assert sum(1 for i in people.values() if i.role == InviteeRole.member) == 7
    messages = emails(session, meeting_id=meeting_id)
    assert sorted(m.recipient for m in messages) == sorted(people)
    assert all(i.sequence_sent == 0 for i in people.values())

    message = next(m for m in messages if m.recipient == "camhs.rep@kestrelford.example.org")
    assert message.subject == f"Invitation: {SERIES_NAME}, Thursday 26 November 2026 at 1:30pm"
    assert message.idempotency_key == f"invite:{meeting_id}:{people[message.recipient].person_id}:0"
    assert message.in_reply_to == message.references == f"<meeting-{meeting_id}@kestrelford.example.org>"
    email, part, calendar = parsed(message)
    assert email.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in email.iter_parts()] == ["text/plain", "text/html", "text/calendar"]
    assert calendar["METHOD"] == "REQUEST" == part.get_param("method")
    event = event_of(calendar)
    assert str(event["UID"]) == meeting.calendar_uid
    assert event["SEQUENCE"] == 0
    assert event.decoded("DTSTAMP") == clock.now()
    assert str(event["SUMMARY"]) == SERIES_NAME
    assert str(event["LOCATION"]) == meeting.location
    assert f"http://127.0.0.1:8000/meetings/{meeting_id}/rsvp" in str(event["DESCRIPTION"])
    start = event["DTSTART"]
    assert start.params["TZID"] == "Europe/London" and wall(start.dt) == (date(2026, 11, 26), time(13, 30))
    assert event.decoded("DTEND").astimezone(UTC) == meeting.ends_at
    (timezone,) = calendar.walk("VTIMEZONE")
    assert str(timezone["TZID"]) == "Europe/London"
    assert {c.name for c in timezone.subcomponents} == {"STANDARD", "DAYLIGHT"}
    assert len(timezone.to_ical()) < 700  # a year of rules, not 1970-2038
    organizer = event["ORGANIZER"]
    assert str(organizer).lower() == f"mailto:{APP}" and organizer.params["CN"] == "Kestrelford Inclusion Team"
    attendee = event["ATTENDEE"]  # only this recipient: who else comes is not theirs to see
    assert str(attendee).lower() == "mailto:camhs.rep@kestrelford.example.org"
    assert attendee.params["RSVP"] == "TRUE"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"


def test_summer_meetings_keep_their_local_start(session_factory, session, demo):
    september = FixedClock(datetime(2026, 9, 1, 8, 0, tzinfo=UTC))
    meeting = meeting_on(session, date(2026, 9, 3))
    assert meeting.starts_at == datetime(2026, 9, 3, 12, 30, tzinfo=UTC)  # BST
    send(session_factory, september, meeting.id)
    _, _, calendar = parsed(emails(session, meeting_id=meeting.id)[0])
    start = event_of(calendar)["DTSTART"]
    assert start.params["TZID"] == "Europe/London"
    assert wall(start.dt) == (date(2026, 9, 3), time(13, 30))
    assert start.dt.astimezone(UTC) == meeting.starts_at


def test_no_child_details_in_any_invitation(session_factory, session, clock, demo):
    referral_id, reference = make_submitted_referral(
        session_factory, clock.now(), urn="900001", referrer_email="dsl@alderbrook.example.org"
    )
    meeting_id = meeting_on(session, CLINIC_DAY).id
    with transaction(session_factory) as s:
        referral = referrals.get_referral(s, referral_id)
        eip = s.scalar(select(Person).where(Person.email == "eip.north@kestrelford.example.org"))
        referrals.accept_and_list(s, referral=referral, meeting_id=meeting_id, now=clock.now(), person_id=eip.id)
    send(session_factory, clock, meeting_id)
    with transaction(session_factory) as s:
        s.get(Meeting, meeting_id).status = MeetingStatus.cancelled
        s.get(Meeting, meeting_id).sequence += 1
    send(session_factory, clock, meeting_id)
    messages = emails(session, meeting_id=meeting_id)
    assert len(messages) == 18
    for message in messages:
        raw = build_email(message, SENDER).as_string()
        for secret in (CHILD_FIRST, CHILD_LAST, reference):
            for text in (message.subject, message.body_text, message.body_html, message.ics, raw):
                assert secret.lower() not in text.lower()


def test_sending_twice_sends_once(session_factory, session, clock, demo):
    first = sweep(session_factory, clock)
    assert first == 9 * 4  # the four clinics within 28 days
    assert sweep(session_factory, clock) == 0
    with transaction(session_factory) as s:
        assert invites.meetings_due_invitations(s, now=clock.now()) == []
    assert len(emails(session)) == first


def test_a_crash_part_way_then_a_rerun_sends_each_once(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    with pytest.raises(RuntimeError):
        with transaction(session_factory) as s:
            assert invites.send_invitations(s, meeting_id, now=clock.now(), mail=MAIL, organizer_name="T") == 9
            raise RuntimeError("the worker died before committing")
    assert emails(session) == []
    assert session.scalar(select(func.count()).where(Invitation.meeting_id == meeting_id)) == 0
    assert send(session_factory, clock, meeting_id) == 9
    assert send(session_factory, clock, meeting_id) == 0
    keys = [m.idempotency_key for m in emails(session)]
    assert len(keys) == len(set(keys)) == 9


def test_moving_a_meeting_sends_everyone_an_update_with_the_same_uid(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        meeting.start_time = time(10, 0)
        meeting.sequence += 1
        apply_times(meeting, meeting.series)
    with transaction(session_factory) as s:
        assert meeting_id in invites.meetings_due_invitations(s, now=clock.now())
    assert send(session_factory, clock, meeting_id) == 9
    updates = emails(session, meeting_id=meeting_id)[9:]
    assert all(m.subject.startswith("Updated: ") and "at 10:00am" in m.subject for m in updates)
    first = event_of(parsed(emails(session, meeting_id=meeting_id)[0])[2])
    update = event_of(parsed(next(m for m in updates if m.recipient == emails(session)[0].recipient))[2])
    assert str(update["UID"]) == str(first["UID"])
    assert update["SEQUENCE"] == first["SEQUENCE"] + 1 == 1
    assert wall(update["DTSTART"].dt) == (date(2026, 11, 26), time(10, 0))


def test_cancelling_sends_method_cancel_with_the_same_uid(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        meeting.status, meeting.sequence = MeetingStatus.cancelled, meeting.sequence + 1
    with transaction(session_factory) as s:
        assert meeting_id in invites.meetings_due_invitations(s, now=clock.now())
    assert send(session_factory, clock, meeting_id) == 9
    assert send(session_factory, clock, meeting_id) == 0
    cancels = emails(session, kind="invitation_cancelled")
    assert len(cancels) == 9 and all(m.subject.startswith("Cancelled: ") for m in cancels)
    email, part, calendar = parsed(cancels[0])
    assert calendar["METHOD"] == "CANCEL" == part.get_param("method")
    event = event_of(calendar)
    assert str(event["UID"]) == meeting_on(session, CLINIC_DAY).calendar_uid
    assert event["SEQUENCE"] == 1 and str(event["STATUS"]) == "CANCELLED"
    assert cancels[0].idempotency_key.startswith(f"invite-cancel:{meeting_id}:")
    with transaction(session_factory) as s:
        assert meeting_id not in invites.meetings_due_invitations(s, now=clock.now())


def test_a_rep_added_late_gets_the_current_version_only(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        meeting.sequence = 3  # moved a few times
    send(session_factory, clock, meeting_id)
    with transaction(session_factory) as s:
        lado = s.scalar(select(Agency).where(Agency.code == "LADO"))
        rep = s.scalar(select(Person).where(Person.email == "lado.rep@kestrelford.example.org"))
        series = s.scalar(select(MeetingSeries))
        s.add(SeriesMember(series_id=series.id, agency_id=lado.id, person_id=rep.id))
    with transaction(session_factory) as s:
        assert meeting_id in invites.meetings_due_invitations(s, now=clock.now())
    assert send(session_factory, clock, meeting_id) == 1
    (late,) = emails(session, recipient="lado.rep@kestrelford.example.org", meeting_id=meeting_id)
    assert late.subject.startswith("Invitation: ")
    assert late.idempotency_key.endswith(":3")
    assert event_of(parsed(late)[2])["SEQUENCE"] == 3


def test_a_new_chair_is_invited_and_the_old_one_gets_a_cancel(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    old_chair = meeting_on(session, CLINIC_DAY).chair
    with transaction(session_factory) as s:
        new_chair = s.scalar(select(Person).where(Person.email == "eip.west@kestrelford.example.org"))
        s.get(Meeting, meeting_id).chair_id = new_chair.id
    with transaction(session_factory) as s:
        assert meeting_id in invites.meetings_due_invitations(s, now=clock.now())
    assert send(session_factory, clock, meeting_id) == 2
    assert send(session_factory, clock, meeting_id) == 0
    (cancel,) = emails(session, recipient=old_chair.email, kind="invitation_cancelled")
    assert "no longer invited" in cancel.body_text and parsed(cancel)[2]["METHOD"] == "CANCEL"
    (invite,) = emails(session, recipient="eip.west@kestrelford.example.org", meeting_id=meeting_id)
    assert invite.subject.startswith("Invitation: ")
    # Back to the first chair: they are invited again with a newer version than the cancellation.
    with transaction(session_factory) as s:
        s.get(Meeting, meeting_id).chair_id = old_chair.id
    assert send(session_factory, clock, meeting_id) == 1 + 1 + 8  # invite back, cancel west, update the rest
    session.expire_all()
    back = emails(session, recipient=old_chair.email, meeting_id=meeting_id)[-1]
    assert back.kind == "invitation" and event_of(parsed(back)[2])["SEQUENCE"] == 1


def test_a_deputy_is_invited_when_the_member_declines(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    with transaction(session_factory) as s:
        deputy = make_person(s, email="camhs.deputy@kestrelford.example.org", name="Dee Puty")
        member = s.scalar(
            select(SeriesMember).join(Agency, Agency.id == SeriesMember.agency_id).where(Agency.code == "CAMHS")
        )
        member.deputy_id = deputy.id
    send(session_factory, clock, meeting_id)
    assert emails(session, recipient="camhs.deputy@kestrelford.example.org") == []
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        invitation = next(i for i in meeting.invitations if i.person.email == "camhs.rep@kestrelford.example.org")
        apply_rsvp(s, invitation=invitation, partstat="DECLINED", now=clock.now(), source="portal")
    with transaction(session_factory) as s:
        assert meeting_id in invites.meetings_due_invitations(s, now=clock.now())
    assert send(session_factory, clock, meeting_id) == 1
    (invite,) = emails(session, recipient="camhs.deputy@kestrelford.example.org")
    assert "as deputy for" in invite.body_text
    attendee = event_of(parsed(invite)[2])["ATTENDEE"]
    assert attendee.params["ROLE"] == "OPT-PARTICIPANT"
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        (deputy_invitation,) = [i for i in meeting.invitations if i.role == InviteeRole.deputy]
        assert deputy_invitation.deputy_for_id is not None
        assert {i.person.email for i in invitees(s, meeting)} >= {"camhs.deputy@kestrelford.example.org"}


def test_meetings_beyond_the_invitation_window_or_past_are_left_alone(session_factory, session, clock, demo):
    with transaction(session_factory) as s:
        due = invites.meetings_due_invitations(s, now=clock.now())
        days = sorted(s.get(Meeting, m).meeting_date for m in due)
    assert days == [date(2026, 11, 26), date(2026, 12, 3), date(2026, 12, 10), date(2026, 12, 17)]
    past = meeting_on(session, date(2026, 11, 19))
    assert send(session_factory, clock, past.id) == 0


# --- quorum ---------------------------------------------------------------------------------


def reply_all(session_factory, clock, meeting_id, answers: dict[str, str]) -> None:
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        for invitation in meeting.invitations:
            code = invitation.agency.code if invitation.agency else invitation.role
            if code in answers:
                apply_rsvp(s, invitation=invitation, partstat=answers[code], now=clock.now(), source="portal")


def check(session_factory, clock, meeting_id):
    with transaction(session_factory) as s:
        return invites.check_quorum(s, meeting_id, now=clock.now(), mail=MAIL)


def quorum_clock(session) -> FixedClock:
    return FixedClock(meeting_on(session, CLINIC_DAY).quorum_check_at + timedelta(minutes=5))


def test_quorum_met_sends_no_alert(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    reply_all(
        session_factory, clock, meeting_id, {"chair": "ACCEPTED", "SAFEGUARDING": "ACCEPTED", "CAMHS": "ACCEPTED",
                                             "POLICE": "ACCEPTED", "MASH": "TENTATIVE"},
    )  # fmt: skip
    later = quorum_clock(session)
    with transaction(session_factory) as s:
        assert invites.meetings_due_quorum_check(s, now=clock.now()) == []
        assert invites.meetings_due_quorum_check(s, now=later.now()) == [meeting_id]
    result = check(session_factory, later, meeting_id)
    assert result.checked and result.quorum_met and result.alerts_queued == 0
    with transaction(session_factory) as s:
        assert invites.meetings_due_quorum_check(s, now=later.now()) == []
    assert session.scalar(select(func.count()).where(OutboundMessage.kind == "quorum_alert")) == 0


def test_quorum_not_met_alerts_chair_and_coordinator_once(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    # Tentative does not count; safeguarding is required; only two agencies accept.
    reply_all(
        session_factory, clock, meeting_id, {"CAMHS": "ACCEPTED", "POLICE": "ACCEPTED", "MASH": "TENTATIVE",
                                             "SAFEGUARDING": "DECLINED"},
    )  # fmt: skip
    with session_factory() as s:
        summary = attendance_summary(s, s.get(Meeting, meeting_id))
        assert not summary.quorum_met and summary.agencies_coming == 2
        assert "the chair has not accepted" in summary.reasons
        assert [a.code for a in summary.missing_agencies] == ["SAFEGUARDING"]
        mash = next(row for row in summary.agencies if row.agency.code == "MASH")
        assert len(mash.tentative) == 1 and not mash.coming
    later = quorum_clock(session)
    result = check(session_factory, later, meeting_id)
    assert result.checked and not result.quorum_met and result.alerts_queued == 2
    again = check(session_factory, later, meeting_id)
    assert not again.checked and again.alerts_queued == 0
    session.expire_all()
    alerts = list(session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "quorum_alert")))
    meeting = meeting_on(session, CLINIC_DAY)
    assert sorted(a.recipient for a in alerts) == sorted([meeting.chair.email, COORDINATOR])
    alert = alerts[0]
    assert alert.subject.startswith("Quorum not met: ")
    assert "The chair has not accepted" in alert.body_text
    assert "Kestrelford Education Safeguarding Team" in alert.body_text
    assert "only 2 agencies have accepted; 3 are needed" in alert.body_text.lower()
    assert "So far 2 agencies have accepted (3 needed)" in alert.body_text
    assert f"/meetings/{meeting_id}/attendance" in alert.body_text
    assert alert.idempotency_key == f"quorum-alert:{meeting_id}:{alert_person(session, alert.recipient)}:0"
    assert meeting.quorum_checked_at == later.now()


def alert_person(session, email: str) -> int:
    return session.scalar(select(Person.id).where(Person.email == email))


def test_sync_withdraws_and_marks_nobody_twice(session_factory, session, clock, demo):
    meeting_id = meeting_on(session, CLINIC_DAY).id
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        first = sync_invitations(s, meeting, now=clock.now())
        second = sync_invitations(s, meeting, now=clock.now())
    assert len(first.added) == 9 and not second.changed


def test_a_new_time_asks_everyone_again_and_the_quorum_is_checked_again(session_factory, session, clock, demo):
    from meetings.planning import move_meeting

    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    reply_all(
        session_factory, clock, meeting_id, {"chair": "ACCEPTED", "SAFEGUARDING": "ACCEPTED", "CAMHS": "DECLINED"}
    )
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        meeting.quorum_checked_at = clock.now()
        move_meeting(
            s, meeting=meeting, new_date=date(2026, 11, 25), now=clock.now(), actor_id=None, reason="Room needed"
        )
    session.expire_all()
    meeting = session.get(Meeting, meeting_id)
    # The calendar update says NEEDS-ACTION, and so do the pages: old replies no longer count.
    assert {i.rsvp for i in meeting.invitations} == {Rsvp.needs_action}
    assert meeting.quorum_checked_at is None and not attendance_summary(session, meeting).quorum_met
    reply_all(session_factory, clock, meeting_id, {"chair": "ACCEPTED"})
    with transaction(session_factory) as s:
        # Only the place changing keeps what people said.
        meeting = s.get(Meeting, meeting_id)
        move_meeting(s, meeting=meeting, new_date=meeting.meeting_date, new_location="Room 4", now=clock.now(),
                     actor_id=None, reason="Bigger room")  # fmt: skip
    session.expire_all()
    chair = next(i for i in session.get(Meeting, meeting_id).invitations if i.role == "chair")
    assert chair.rsvp == Rsvp.accepted


def test_a_meeting_moved_after_its_alert_is_checked_and_alerted_again_at_its_new_time(
    session_factory, session, clock, demo
):
    from meetings.planning import move_meeting

    meeting_id = meeting_on(session, CLINIC_DAY).id
    send(session_factory, clock, meeting_id)
    first_check = quorum_clock(session)
    assert check(session_factory, first_check, meeting_id).alerts_queued == 2
    with transaction(session_factory) as s:
        move_meeting(s, meeting=s.get(Meeting, meeting_id), new_date=date(2026, 12, 2), now=first_check.now(),
                     actor_id=None, reason="Room needed")  # fmt: skip
    # A sweep that found it due before the move must not check it now, with everyone's replies just reset.
    assert not check(session_factory, first_check, meeting_id).checked
    session.expire_all()
    new_check = FixedClock(session.get(Meeting, meeting_id).quorum_check_at + timedelta(minutes=5))
    with transaction(session_factory) as s:
        assert invites.meetings_due_quorum_check(s, now=new_check.now()) == [meeting_id]
    assert check(session_factory, new_check, meeting_id).alerts_queued == 2
    alerts = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "quorum_alert")).all()
    assert len(alerts) == 4 and {a.idempotency_key.rsplit(":", 1)[1] for a in alerts} == {"0", "1"}
