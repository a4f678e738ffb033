"""Delivering the outbox: claim due messages, send them outside any transaction, record the outcome.

A message is claimed by a conditional UPDATE, so two deliveries running at once never both send it.
A crash after the SMTP server accepted a message but before it was marked sent leaves it `sending`;
after the lease it is sent again with the same Message-ID (at-least-once on the wire, which mail
clients de-duplicate by Message-ID).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from caseconf.db import transaction
from caseconf.settings import Settings
from notifications.models import OutboundMessage, OutboundStatus
from notifications.smtp import SendResult, send_messages

MAX_BACKOFF = timedelta(hours=6)
# Bodies that carry a live credential (a sign-in link) are blanked once the email has gone.
REDACT_AFTER_SENDING = frozenset({"sign_in"})
REDACTED = "(Removed after sending: this email contained a one-time sign-in link.)"
LEASE = timedelta(minutes=10)


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sender:
    address: str
    name: str


def build_email(message: OutboundMessage, sender: Sender) -> EmailMessage:
    email = EmailMessage()
    email["From"] = formataddr((sender.name, sender.address))
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Message-ID"] = message.message_id
    email["Date"] = format_datetime(message.created_at)
    email["Auto-Submitted"] = "auto-generated"
    if message.in_reply_to:
        email["In-Reply-To"] = message.in_reply_to
    if message.references:
        email["References"] = message.references
    if message.reply_to:
        email["Reply-To"] = message.reply_to
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    if message.ics:
        # The calendar part comes last and its method= matches the METHOD inside (Outlook insists).
        email.add_alternative(message.ics, subtype="calendar", params={"method": message.ics_method or "REQUEST"})
    return email


def claim_due(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Mark due messages `sending` and count the attempt; returns the ids this caller now owns."""
    candidates = session.execute(
        select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.attempts)
        .where(
            or_(
                (OutboundMessage.status == OutboundStatus.pending) & (OutboundMessage.next_attempt_at <= now),
                (OutboundMessage.status == OutboundStatus.sending) & (OutboundMessage.claimed_at <= now - LEASE),
            )
        )
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
        .limit(limit)
    ).all()
    claimed = []
    for message_id, status, attempts in candidates:
        result = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id == message_id,
                OutboundMessage.status == status,
                OutboundMessage.attempts == attempts,
            )
            .values(status=OutboundStatus.sending, attempts=attempts + 1, claimed_at=now)
        )
        if result.rowcount == 1:
            claimed.append(message_id)
    return claimed


def record_result(
    session: Session,
    message: OutboundMessage,
    result: SendResult,
    *,
    now: datetime,
    max_attempts: int,
    backoff: timedelta,
) -> str:
    """Apply one send outcome; returns the message's new status."""
    if result.ok:
        message.status = OutboundStatus.sent
        message.sent_at = now
        message.last_error = None
        if message.kind in REDACT_AFTER_SENDING:
            message.body_text, message.body_html = REDACTED, None
    elif result.permanent:
        message.status = OutboundStatus.failed
        message.last_error = f"Refused by the mail server: {result.error}"
    elif message.attempts >= max_attempts:
        message.status = OutboundStatus.failed
        message.last_error = f"Gave up after {message.attempts} attempts: {result.error}"
    else:
        message.status = OutboundStatus.pending
        message.next_attempt_at = now + min(backoff * 2 ** (message.attempts - 1), MAX_BACKOFF)
        message.last_error = result.error
    return message.status


def deliver_due(
    factory: sessionmaker[Session],
    *,
    smtp_url: str,
    sender: Sender,
    now: Callable[[], datetime],
    max_attempts: int = 8,
    backoff: timedelta = timedelta(seconds=30),
    limit: int = 100,
    send: Callable[[str, Sequence[EmailMessage]], list[SendResult]] = send_messages,
) -> DeliveryReport:
    """One delivery pass: claim (short transaction), send (no transaction), mark (short transaction)."""
    report = DeliveryReport()
    with transaction(factory) as session:
        ids = claim_due(session, now=now(), limit=limit)
        messages = session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(ids))).all()
        emails = {m.id: build_email(m, sender) for m in messages}
        attempts = {m.id: m.attempts for m in messages}
    report.claimed = len(ids)
    if not ids:
        return report
    order = sorted(emails)
    results = dict(zip(order, send(smtp_url, [emails[i] for i in order]), strict=True))
    with transaction(factory) as session:
        finished_at = now()
        for message in session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(order))):
            if message.status != OutboundStatus.sending or message.attempts != attempts[message.id]:
                continue  # the lease ran out and another delivery took it over
            status = record_result(
                session, message, results[message.id], now=finished_at, max_attempts=max_attempts, backoff=backoff
            )
            if status == OutboundStatus.sent:
                report.sent += 1
            elif status == OutboundStatus.failed:
                report.failed += 1
                report.errors.append(f"message {message.id}: {message.last_error}")
            else:
                report.retrying += 1
    return report


def deliver_pending(
    factory: sessionmaker[Session], settings: Settings, *, now: Callable[[], datetime], limit: int = 100
) -> DeliveryReport:
    """A delivery pass with the configured server, sender, attempts and backoff."""
    return deliver_due(
        factory,
        smtp_url=settings.effective_smtp_url,
        sender=Sender(address=settings.mail_from, name=settings.mail_from_name),
        now=now,
        max_attempts=settings.outbox_max_attempts,
        backoff=timedelta(seconds=settings.outbox_backoff_seconds),
        limit=limit,
    )
