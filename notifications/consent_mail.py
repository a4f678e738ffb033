"""Consent withdrawal's emails: the coordinator and the next meeting's chair are told (the reference only), and
emails about the referral still queued for agencies are not sent. The school keeps getting its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, Role, RoleGrant
from caseconf import audit
from caseconf.clock import london_text
from meetings import consent, referrals
from meetings.consent import Withdrawal
from meetings.models import Meeting, Referral
from notifications.chasing import coordinators
from notifications.emails import MailContext, queue_about_referral
from notifications.models import OutboundMessage, OutboundStatus

CLINIC_DATE = "%A %-d %B %Y at %-I:%M%p"
NOT_SENT = "Not sent: consent to share the referral was withdrawn"


def record_withdrawal(
    session: Session,
    *,
    referral: Referral,
    person_id: int,
    note: str,
    now: datetime,
    mail: MailContext,
    ip_address: str | None = None,
) -> Withdrawal:
    """Withdraw consent (meetings.consent), tell those running the next meeting, and stop agency emails."""
    result = consent.withdraw_consent(
        session, referral=referral, person_id=person_id, note=note, now=now, ip_address=ip_address
    )
    stop_agency_emails(session, referral, now=now)
    tell_of_withdrawal(session, result, now=now, mail=mail)
    return result


def _next_meeting(session: Session, result: Withdrawal, now: datetime) -> Meeting | None:
    if result.removed_from:
        return result.removed_from[0]
    clinics = referrals.upcoming_clinics(session, area_id=result.referral.school.area_id, now=now, limit=1)
    return clinics[0].meeting if clinics else None


def tell_of_withdrawal(session: Session, result: Withdrawal, *, now: datetime, mail: MailContext) -> list[str]:
    """The coordinator and the next meeting's chair, once each; the reference and the clinic date only."""
    referral = result.referral
    meeting = _next_meeting(session, result, now)
    people: list[Person] = []
    if meeting is not None:
        for person_id in (meeting.series.coordinator_id, meeting.chair_id):
            person = session.get(Person, person_id) if person_id else None
            if person is not None and person.active:
                people.append(person)
    if meeting is None or meeting.series.coordinator_id is None:
        people += coordinators(session)
    told = []
    for person in {p.id: p for p in people}.values():
        queue_about_referral(
            session,
            mail=mail,
            now=now,
            referral=referral,
            template="consent_withdrawn",
            key=f"consent-withdrawn:{referral.id}:{person.id}",
            recipient=person.email,
            link=f"/meetings/{meeting.id}" if meeting is not None else "/",
            clinic=london_text(meeting.starts_at, CLINIC_DATE) if result.removed_from else "",
        )
        told.append(person.email)
    return told


def agency_addresses(session: Session) -> set[str]:
    """Every address that reaches an agency: mailboxes, lead contacts and agency representatives."""
    found = set()
    for mailbox, lead in session.execute(select(Agency.mailbox, Agency.lead_contact_email)):
        found |= {a.lower() for a in (mailbox, lead) if a}
    reps = select(Person.email).join(RoleGrant, RoleGrant.person_id == Person.id)
    found |= {e.lower() for e in session.scalars(reps.where(RoleGrant.role == Role.agency_rep))}
    return found


def stop_agency_emails(session: Session, referral: Referral, *, now: datetime) -> list[int]:
    """Emails about the referral still waiting to go to an agency are marked as not sent."""
    addresses = agency_addresses(session)
    stopped = []
    for message in session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.referral_id == referral.id, OutboundMessage.status == OutboundStatus.pending
        )
    ):
        if message.recipient.lower() in addresses:
            message.status = OutboundStatus.failed
            message.last_error = NOT_SENT
            stopped.append(message.id)
    if stopped:
        audit.record(
            session,
            now=now,
            action="outbox.stopped_consent_withdrawn",
            record_type="referral",
            record_id=referral.id,
            messages=stopped,
        )
    return stopped
