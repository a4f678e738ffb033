"""Queueing the emails the product sends. Each builder renders and enqueues in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Person, Role, RoleGrant, School
from caseconf.clock import london_text
from caseconf.settings import Settings
from meetings.models import Meeting, Referral, ReferralStatus, ReferralStatusChange
from meetings.referral_rules import LABELS, SCHOOL_TODO
from meetings.referrals import next_meeting_for
from notifications.compose import render_email
from notifications.models import OutboundMessage
from notifications.outbox import enqueue

SERVICE_NAME = "Case conferences"


@dataclass(frozen=True)
class MailContext:
    """What every email needs to know about where it comes from."""

    base_url: str
    mail_domain: str
    team_name: str
    # The app mailbox and the signing key, for per-action reply addresses (left empty: replies thread only).
    app_address: str = ""
    reply_secret: str = field(default="", repr=False)  # never in a log line

    @classmethod
    def from_settings(cls, settings: Settings) -> MailContext:
        return cls(
            base_url=settings.base_url,
            mail_domain=settings.mail_from.rsplit("@", 1)[1],
            team_name=settings.mail_from_name,
            app_address=settings.mail_from,
            reply_secret=settings.secret(),
        )


def queue_sign_in_link(
    session: Session,
    *,
    mail: MailContext,
    now: datetime,
    token_id: int,
    raw_token: str,
    recipient: str,
    name: str,
    valid_minutes: int,
) -> OutboundMessage:
    return queue_email(
        session,
        mail=mail,
        now=now,
        template="sign_in",
        key=f"sign-in:{token_id}",
        recipient=recipient,
        name=name,
        link=f"{mail.base_url}/sign-in/confirm?token={raw_token}",
        valid_minutes=valid_minutes,
    )


def referral_thread(referral_id: int, mail_domain: str) -> str:
    """Every email about one referral points at the same root, so mail clients thread them."""
    return f"<referral-{referral_id}@{mail_domain}>"


def meeting_thread(meeting_id: int, mail_domain: str) -> str:
    """Every email about one meeting points at the same root, so mail clients thread them."""
    return f"<meeting-{meeting_id}@{mail_domain}>"


def school_recipients(referral: Referral) -> list[str]:
    """The referrer and the school's safeguarding contact, once each."""
    addresses = [referral.referrer.email, referral.school.safeguarding_email]
    return list(dict.fromkeys(a.lower() for a in addresses if a))


def eip_recipients(session: Session, referral: Referral) -> list[Person]:
    return list(
        session.scalars(
            select(Person)
            .join(RoleGrant, RoleGrant.person_id == Person.id)
            .where(RoleGrant.role == Role.eip, RoleGrant.area_id == referral.school.area_id, Person.active.is_(True))
            .order_by(Person.id)
        )
    )


def queue_about_referral(
    session: Session,
    *,
    mail: MailContext,
    now: datetime,
    referral: Referral,
    template: str,
    key: str,
    recipient: str,
    link: str,
    **context,
) -> OutboundMessage:
    # Only the reference, the status and a link: never the child's name or anything identifying.
    return queue_email(
        session,
        mail=mail,
        now=now,
        template=template,
        key=key,
        recipient=recipient,
        in_reply_to=referral_thread(referral.id, mail.mail_domain),
        referral_id=referral.id,
        reference=referral.reference,
        link=f"{mail.base_url}{link}",
        **context,
    )


def queue_about_meeting(
    session: Session,
    *,
    mail: MailContext,
    now: datetime,
    meeting: Meeting,
    person: Person,
    template: str,
    key: str,
    **context,
) -> OutboundMessage:
    """An email to one person about a meeting, threaded on the meeting; the template gets their name and
    the series' name (never anything about the children on the agenda)."""
    return queue_email(
        session,
        mail=mail,
        now=now,
        template=template,
        key=key,
        recipient=person.email,
        in_reply_to=meeting_thread(meeting.id, mail.mail_domain),
        meeting_id=meeting.id,
        name=person.name,
        series_name=meeting.series.name,
        **context,
    )


def queue_referral_submitted(session: Session, *, mail: MailContext, now: datetime, referral: Referral) -> int:
    """Acknowledge to the school and tell the area's EIPs; returns how many emails were queued."""
    queued = 0
    for recipient in school_recipients(referral):
        queue_about_referral(
            session,
            mail=mail,
            now=now,
            referral=referral,
            template="referral_received",
            key=f"referral-received:{referral.id}:{recipient}",
            recipient=recipient,
            link=f"/referrals/{referral.id}",
        )
        queued += 1
    for eip in eip_recipients(session, referral):
        queue_about_referral(
            session,
            mail=mail,
            now=now,
            referral=referral,
            template="referral_for_triage",
            key=f"referral-for-triage:{referral.id}:{eip.id}",
            recipient=eip.email,
            link=f"/triage/{referral.id}",
            area=referral.school.area.name,
        )
        queued += 1
    return queued


def queue_referral_status(
    session: Session, *, mail: MailContext, now: datetime, referral: Referral, change: ReferralStatusChange
) -> int:
    """Tell the school its referral's new status (one email per change per recipient); when the
    school has answered a question, tell the area's EIPs it is back in their queue."""
    status = ReferralStatus(change.to_status)
    if change.from_status == ReferralStatus.information_requested and status == ReferralStatus.submitted:
        for eip in eip_recipients(session, referral):
            queue_about_referral(
                session,
                mail=mail,
                now=now,
                referral=referral,
                template="referral_answered",
                key=f"referral-answered:{change.id}:{eip.id}",
                recipient=eip.email,
                link=f"/triage/{referral.id}",
            )
    # A clinic date is no detail about the child, and the school needs it to plan.
    meeting = next_meeting_for(session, referral, now=now) if status == ReferralStatus.accepted else None
    clinic = london_text(meeting.starts_at, "%A %-d %B %Y at %-I:%M%p") if meeting else ""
    for recipient in school_recipients(referral):
        queue_about_referral(
            session,
            mail=mail,
            now=now,
            referral=referral,
            template="referral_status",
            clinic=clinic,
            key=f"referral-status:{change.id}:{recipient}",
            recipient=recipient,
            link=f"/referrals/{referral.id}",
            status_label=LABELS[status],
            todo=SCHOOL_TODO.get(status, ""),
        )
    return len(school_recipients(referral))


def queue_email(
    session: Session,
    *,
    mail: MailContext,
    now: datetime,
    template: str,
    key: str,
    recipient: str,
    in_reply_to: str | None = None,
    reply_to: str | None = None,
    referral_id: int | None = None,
    meeting_id: int | None = None,
    ics: str | None = None,
    ics_method: str | None = None,
    attachments: list[dict] | None = None,
    **context,
) -> OutboundMessage:
    """Render a template and queue it under `key` (a key already queued is not queued again).
    `attachments` go on the message only while it has none and is not yet sent."""
    rendered = render_email(template, service_name=SERVICE_NAME, team_name=mail.team_name, **context)
    message = enqueue(
        session,
        now=now,
        idempotency_key=key,
        kind=template,
        recipient=recipient,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        ics=ics,
        ics_method=ics_method,
        mail_domain=mail.mail_domain,
        in_reply_to=in_reply_to,
        references=in_reply_to,
        reply_to=reply_to,
        referral_id=referral_id,
        meeting_id=meeting_id,
    )
    if attachments and not message.attachments and message.sent_at is None:
        message.attachments = attachments
    return message


def school_contacts(session: Session, school: School) -> list[str]:
    """The school's safeguarding address and its registered referrers, once each."""
    referrers = session.scalars(
        select(Person.email)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == Role.school_referrer, RoleGrant.school_id == school.id, Person.active.is_(True))
        .order_by(Person.email)
    ).all()
    return list(dict.fromkeys(a.lower() for a in (school.safeguarding_email, *referrers) if a))
