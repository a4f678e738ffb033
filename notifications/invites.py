"""Calendar invitations and quorum alerts, as sweeps the clinic flows run meeting by meeting.

Each function that changes a meeting locks its row first and is safe to run again: what was sent is
recorded on the invitation (sequence_sent) in the same transaction as the queued email, and every
email has an idempotency key naming the meeting, the person and the SEQUENCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from agencies.models import Person
from caseconf import audit
from caseconf.clock import london_text
from caseconf.errors import Invalid
from meetings.agenda import lock_meeting
from meetings.invitations import apply_rsvp, attendance_summary, invitations_of, sync_invitations
from meetings.models import Invitation, InviteeRole, Meeting, MeetingSeries, MeetingStatus, Rsvp, SeriesMember
from notifications.calendar import Reply, build_cancel, build_request
from notifications.emails import MailContext, queue_about_meeting

WHEN = "%A %-d %B %Y at %-I:%M%p"
# Meetings still to come that may need invitations: the held and later ones never do.
OPEN_STATUSES = (MeetingStatus.planned, MeetingStatus.agenda_frozen, MeetingStatus.papers_sent)


def rsvp_url(mail: MailContext, meeting_id: int) -> str:
    return f"{mail.base_url}/meetings/{meeting_id}/rsvp"


def attendance_url(mail: MailContext, meeting_id: int) -> str:
    return f"{mail.base_url}/meetings/{meeting_id}/attendance"


def _live_invitation(person_id):
    return exists().where(
        Invitation.meeting_id == Meeting.id, Invitation.person_id == person_id, Invitation.cancelled_at.is_(None)
    )


def meetings_due_invitations(session: Session, *, now: datetime) -> list[int]:
    """Meetings not yet started with invitations to send: new invitees, a raised SEQUENCE, someone to
    withdraw, or a cancellation. Only meetings within their series' invite_days_ahead are invited for
    the first time; once anyone has been sent one, every change is sent whatever the distance."""
    live = Invitation.cancelled_at.is_(None)
    unsent = exists().where(
        Invitation.meeting_id == Meeting.id,
        or_(
            and_(live, or_(Invitation.sequence_sent.is_(None), Invitation.sequence_sent != Meeting.sequence)),
            and_(Invitation.cancelled_at.is_not(None), Invitation.sequence_sent.is_not(None)),
        ),
    )
    sent_before = exists().where(Invitation.meeting_id == Meeting.id, live, Invitation.sequence_sent.is_not(None))
    cancel_due = exists().where(
        Invitation.meeting_id == Meeting.id,
        live,
        Invitation.sequence_sent.is_not(None),
        Invitation.sequence_sent != Meeting.sequence,
    )
    member = aliased(SeriesMember)
    member_reply = aliased(Invitation)
    member_missing = exists().where(
        SeriesMember.series_id == Meeting.series_id,
        SeriesMember.person_id == Person.id,
        Person.active.is_(True),
        ~_live_invitation(SeriesMember.person_id),
    )
    deputy_missing = exists().where(
        member.series_id == Meeting.series_id,
        member.deputy_id.is_not(None),
        exists().where(
            member_reply.meeting_id == Meeting.id,
            member_reply.person_id == member.person_id,
            member_reply.cancelled_at.is_(None),
            member_reply.rsvp.in_((Rsvp.declined, Rsvp.delegated)),
        ),
        ~_live_invitation(member.deputy_id),
    )
    # Someone invited as a member who is no longer one, or as a deputy for a member who no longer names them.
    was_member = aliased(Invitation)
    member_gone = exists().where(
        was_member.meeting_id == Meeting.id,
        was_member.cancelled_at.is_(None),
        was_member.role == InviteeRole.member,
        ~exists().where(SeriesMember.series_id == Meeting.series_id, SeriesMember.person_id == was_member.person_id),
    )
    was_deputy = aliased(Invitation)
    deputy_gone = exists().where(
        was_deputy.meeting_id == Meeting.id,
        was_deputy.cancelled_at.is_(None),
        was_deputy.role == InviteeRole.deputy,
        ~exists().where(
            SeriesMember.series_id == Meeting.series_id,
            SeriesMember.person_id == was_deputy.deputy_for_id,
            SeriesMember.deputy_id == was_deputy.person_id,
        ),
    )
    old_chair = exists().where(
        Invitation.meeting_id == Meeting.id,
        live,
        Invitation.role == InviteeRole.chair,
        or_(Meeting.chair_id.is_(None), Invitation.person_id != Meeting.chair_id),
    )
    minute_taker = func.coalesce(Meeting.minute_taker_id, MeetingSeries.coordinator_id)
    changed = or_(
        unsent,
        member_missing,
        deputy_missing,
        member_gone,
        deputy_gone,
        old_chair,
        and_(Meeting.chair_id.is_not(None), ~_live_invitation(Meeting.chair_id)),
        and_(minute_taker.is_not(None), ~_live_invitation(minute_taker)),
    )
    rows = session.execute(
        select(Meeting.id, Meeting.starts_at, MeetingSeries.invite_days_ahead, sent_before)
        .join(MeetingSeries, MeetingSeries.id == Meeting.series_id)
        .where(
            Meeting.starts_at > now,
            or_(
                and_(Meeting.status.in_(OPEN_STATUSES), changed),
                and_(Meeting.status == MeetingStatus.cancelled, cancel_due),
            ),
        )
        .order_by(Meeting.starts_at, Meeting.id)
    ).all()
    return [
        meeting_id
        for meeting_id, starts_at, days_ahead, was_sent in rows
        if was_sent or starts_at <= now + timedelta(days=days_ahead)
    ]


def send_invitations(
    session: Session,
    meeting_id: int,
    *,
    now: datetime,
    mail: MailContext,
    organizer_name: str,
    organizer_email: str | None = None,
) -> int:
    """Queue each invitee the current version of the meeting: a REQUEST (new or updated), or a CANCEL
    when the meeting is off or they are no longer invited. Returns how many emails were queued."""
    meeting = lock_meeting(session, meeting_id)
    if meeting is None or meeting.starts_at <= now:
        return 0
    organizer_email = organizer_email or f"clinic@{mail.mail_domain}"
    sync_invitations(session, meeting, now=now)

    def send(invitation: Invitation, kind: str) -> None:
        _queue(
            session,
            meeting,
            invitation,
            kind,
            now=now,
            mail=mail,
            organizer_name=organizer_name,
            organizer_email=organizer_email,
        )

    queued = 0
    for invitation in invitations_of(session, meeting):
        if invitation.cancelled_at is not None:
            if invitation.sequence_sent is None:
                continue  # never sent anything, or already told
            send(invitation, "withdrawn")
            invitation.sequence_sent = None
        elif invitation.sequence_sent == meeting.sequence:
            continue
        elif meeting.status == MeetingStatus.cancelled:
            if invitation.sequence_sent is None:
                continue  # never told of it: nothing to take back
            send(invitation, "cancelled")
            invitation.sequence_sent = meeting.sequence
        else:
            send(invitation, "updated" if invitation.sequence_sent is not None else "new")
            invitation.sequence_sent = meeting.sequence
        queued += 1
    if queued:
        audit.record(
            session,
            now=now,
            action="meeting.invitations_sent",
            record_type="meeting",
            record_id=meeting.id,
            sequence=meeting.sequence,
            emails=queued,
        )
    return queued


SUBJECT_PREFIX = {"new": "Invitation", "updated": "Updated", "cancelled": "Cancelled", "withdrawn": "Cancelled"}


def _queue(
    session: Session,
    meeting: Meeting,
    invitation: Invitation,
    kind: str,
    *,
    now: datetime,
    mail: MailContext,
    organizer_name: str,
    organizer_email: str,
) -> None:
    person = invitation.person
    link = rsvp_url(mail, meeting.id)
    cancel = kind in ("cancelled", "withdrawn")
    build = build_cancel if cancel else build_request
    ics = build(
        meeting, invitation, organizer_email=organizer_email, organizer_name=organizer_name, portal_url=link, now=now
    )
    deputy_for = session.get(Person, invitation.deputy_for_id) if invitation.deputy_for_id else None
    key = "invite-cancel" if cancel else "invite"
    queue_about_meeting(
        session,
        mail=mail,
        now=now,
        meeting=meeting,
        person=person,
        template="invitation_cancelled" if cancel else "invitation",
        key=f"{key}:{meeting.id}:{person.id}:{meeting.sequence}",
        ics=ics,
        ics_method="CANCEL" if cancel else "REQUEST",
        prefix=SUBJECT_PREFIX[kind],
        kind=kind,
        when=london_text(meeting.starts_at, WHEN),
        until=london_text(meeting.ends_at, "%-I:%M%p"),
        location=meeting.location,
        role=invitation.role,
        deputy_for=deputy_for.name if deputy_for else "",
        link=link,
    )


def meetings_due_quorum_check(session: Session, *, now: datetime) -> list[int]:
    """Meetings whose quorum check time has come and which have not started or been checked."""
    return list(
        session.scalars(
            select(Meeting.id)
            .where(
                Meeting.quorum_check_at <= now,
                Meeting.starts_at > now,
                Meeting.quorum_checked_at.is_(None),
                Meeting.status.in_(OPEN_STATUSES),
            )
            .order_by(Meeting.starts_at, Meeting.id)
        )
    )


@dataclass(frozen=True)
class QuorumResult:
    meeting_id: int
    checked: bool
    quorum_met: bool
    alerts_queued: int
    reasons: str


def check_quorum(session: Session, meeting_id: int, *, now: datetime, mail: MailContext) -> QuorumResult:
    """Check the replies against the quorum rule once; when short, alert the chair and coordinator."""
    meeting = lock_meeting(session, meeting_id)
    if (
        meeting is None
        or meeting.quorum_checked_at is not None
        or meeting.quorum_check_at is None
        or meeting.quorum_check_at > now  # moved since the sweep found it due
        or meeting.status not in OPEN_STATUSES
        or meeting.starts_at <= now
    ):
        return QuorumResult(meeting_id, checked=False, quorum_met=False, alerts_queued=0, reasons="")
    summary = attendance_summary(session, meeting)
    meeting.quorum_checked_at = now
    reasons = "; ".join(summary.reasons)
    audit.record(
        session,
        now=now,
        action="meeting.quorum_checked",
        record_type="meeting",
        record_id=meeting.id,
        quorum_met=summary.quorum_met,
        reasons=summary.reasons,
    )
    queued = 0
    if not summary.quorum_met:
        recipients = [meeting.chair_id, meeting.series.coordinator_id]
        for person_id in dict.fromkeys(p for p in recipients if p is not None):
            person = session.get(Person, person_id)
            if person is None or not person.active:
                continue
            queue_about_meeting(
                session,
                mail=mail,
                now=now,
                meeting=meeting,
                person=person,
                template="quorum_alert",
                # A moved meeting is checked again before its new date, and may need alerting again.
                key=f"quorum-alert:{meeting.id}:{person.id}:{meeting.sequence}",
                when=london_text(meeting.starts_at, WHEN),
                reasons=summary.reasons,
                missing=[a.name for a in summary.missing_agencies],
                coming=summary.agencies_coming,
                needed=meeting.series.quorum_min_agencies,
                link=attendance_url(mail, meeting.id),
            )
            queued += 1
    return QuorumResult(meeting_id, checked=True, quorum_met=summary.quorum_met, alerts_queued=queued, reasons=reasons)


@dataclass(frozen=True)
class ReplyOutcome:
    applied: bool
    note: str


def apply_calendar_reply(session: Session, *, reply: Reply, sender: str | None, now: datetime) -> ReplyOutcome:
    """Apply an emailed iTIP REPLY to the invitation it answers, or say why it needs a person."""
    meeting = session.scalar(select(Meeting).where(Meeting.calendar_uid == reply.uid))
    if meeting is None:
        return ReplyOutcome(False, f"Calendar reply for a meeting we do not know (UID {reply.uid[:80]})")
    what = f"{meeting.series.name} on {london_text(meeting.starts_at, WHEN)}"
    person = session.scalar(select(Person).where(Person.email == reply.attendee_email))
    invitation = (
        session.scalar(select(Invitation).where(Invitation.meeting_id == meeting.id, Invitation.person_id == person.id))
        if person is not None
        else None
    )
    if invitation is None or invitation.cancelled_at is not None:
        return ReplyOutcome(False, f"Calendar reply from {reply.attendee_email}, who is not invited to the {what}")
    if (sender or "").lower() != reply.attendee_email:
        # Anyone can type an attendee's address into a reply: only their own mailbox answers for them.
        return ReplyOutcome(
            False, f"Calendar reply for {reply.attendee_email} sent from another address ({sender}): not applied"
        )
    if meeting.status == MeetingStatus.cancelled:
        return ReplyOutcome(False, f"Calendar reply from {reply.attendee_email} to the cancelled {what}")
    if reply.sequence < meeting.sequence:
        # A reply to a version before a move or change: the updated invitation asks for a new one.
        return ReplyOutcome(
            False,
            f"Out-of-date calendar reply from {reply.attendee_email} (to version {reply.sequence}; "
            f"the meeting has changed since, to version {meeting.sequence}): not applied",
        )
    try:
        rsvp = apply_rsvp(
            session,
            invitation=invitation,
            partstat=reply.partstat,
            now=now,
            source="email",
            delegated_to=reply.delegated_to,
        )
    except Invalid as exc:
        return ReplyOutcome(False, f"Calendar reply from {reply.attendee_email} not understood: {exc}")
    return ReplyOutcome(True, f"Reply applied: {reply.attendee_email} {rsvp.value} the {what}")
