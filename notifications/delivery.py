"""Delivering the outbox, at most once per message.

1. Claim (one short transaction): due `pending` messages become `sending` and count an attempt.
2. Build every claimed email, outside any write transaction.
3. In chunks of HANDOVER_CHUNK: record in one transaction that the chunk's messages are being handed
   to the mail server (only those this delivery still owns), send them over one connection, then
   record their outcomes in one transaction.
4. A message left `sending` past the lease (its delivery died) is sent again only if it was never
   handed over. One that was handed over may already have arrived, so it is marked failed for a
   person to check rather than risk sending it twice. A delivery that dies mid-chunk therefore
   leaves at most one chunk of messages to check by hand: the price of not paying three
   transactions for every message (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from caseconf.db import transaction
from caseconf.security import one_line
from caseconf.settings import Settings
from meetings.documents import document_path
from meetings.models import Document
from notifications.compose import ONE_LINE_HEADERS
from notifications.models import OutboundMessage, OutboundStatus
from notifications.outbox import audit_sent
from notifications.smtp import SendResult, SmtpConnection

MAX_BACKOFF = timedelta(hours=6)
HANDOVER_CHUNK = 25
LEASE = timedelta(minutes=10)
# Bodies that carry a live credential (a sign-in link) are blanked once the email has gone or failed.
REDACT_WHEN_DONE = frozenset({"sign_in"})
REDACTED = "(Removed: this email contained a one-time sign-in link.)"
INTERRUPTED = (
    "Delivery was interrupted after the message was handed to the mail server, so it may have arrived. "
    "It was not sent again; check with the recipient before sending it another way."
)


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


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def read_attachments(session: Session, message: OutboundMessage, storage_dir: Path | None) -> list[Attachment]:
    """The stored documents a message carries; raises (so that message fails) if one cannot be read."""
    found = []
    for entry in message.attachments or []:
        if storage_dir is None:
            raise ValueError("attachments need the documents storage directory")
        document = session.get(Document, int(entry["document_id"]))
        if document is None:
            raise ValueError(f"attachment document {entry['document_id']} no longer exists")
        if document.withdrawn_at is not None:  # e.g. a pack withdrawn when consent was withdrawn
            raise ValueError(f"attachment {entry.get('filename')!r} has been withdrawn")
        try:
            data = document_path(storage_dir, document).read_bytes()
        except OSError as exc:
            raise ValueError(f"attachment {entry.get('filename')!r} cannot be read: {exc.strerror}") from exc
        found.append(Attachment(entry.get("filename") or document.original_filename, document.content_type, data))
    return found


def build_email(message: OutboundMessage, sender: Sender, attachments: Sequence[Attachment] = ()) -> EmailMessage:
    email = EmailMessage(policy=ONE_LINE_HEADERS)  # every header one line, whatever text it is given
    email["From"] = formataddr((one_line(sender.name), sender.address))  # encoded, so cleaned before
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
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        # An RFC 2231-encoded name would carry a U+2028 past the policy: made one line first.
        filename = one_line(attachment.filename, 200) or "attachment"
        email.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=filename)
    return email


def _finish(message: OutboundMessage, status: OutboundStatus, error: str | None) -> None:
    message.status = status
    message.last_error = error
    if message.kind in REDACT_WHEN_DONE and status in (OutboundStatus.sent, OutboundStatus.failed):
        message.body_text, message.body_html = REDACTED, None


def settle_interrupted(session: Session, *, now: datetime, max_attempts: int) -> int:
    """Deal with messages whose delivery died mid-way (past the lease); returns how many."""
    stale = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.status == OutboundStatus.sending, OutboundMessage.claimed_at <= now - LEASE
        )
    ).all()
    for message in stale:
        if message.handed_over_at is not None:
            _finish(message, OutboundStatus.failed, INTERRUPTED)
        elif message.attempts >= max_attempts:
            _finish(message, OutboundStatus.failed, f"Gave up after {message.attempts} interrupted attempts")
        else:
            message.status = OutboundStatus.pending
            message.next_attempt_at = now
    return len(stale)


def claim_due(session: Session, *, now: datetime, limit: int) -> dict[int, int]:
    """Mark due messages `sending` and count the attempt; returns {id: attempt} for those now owned."""
    due = (
        select(OutboundMessage.id)
        .where(OutboundMessage.status == OutboundStatus.pending, OutboundMessage.next_attempt_at <= now)
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
        .limit(limit)
    )
    # One conditional UPDATE: of two deliveries claiming at once, each row goes to whichever updates it
    # first (the other's `status = pending` no longer matches), and RETURNING says which rows are ours.
    claimed = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(due.scalar_subquery()), OutboundMessage.status == OutboundStatus.pending)
        .values(
            status=OutboundStatus.sending,
            attempts=OutboundMessage.attempts + 1,
            claimed_at=now,
            handed_over_at=None,
        )
        .returning(OutboundMessage.id, OutboundMessage.attempts)
        .execution_options(synchronize_session=False)
    )
    return dict(claimed.tuples().all())


def hand_over_many(session: Session, *, claims: dict[int, int], now: datetime) -> set[int]:
    """Record that these messages ({id: attempt}) are going to the server; returns the ids this delivery
    still owned (status `sending`, the same attempt, not yet handed over), which alone may be sent."""
    if not claims:
        return set()
    owned = session.execute(
        update(OutboundMessage)
        .where(
            tuple_(OutboundMessage.id, OutboundMessage.attempts).in_(list(claims.items())),
            OutboundMessage.status == OutboundStatus.sending,
            OutboundMessage.handed_over_at.is_(None),
        )
        .values(handed_over_at=now)
        .returning(OutboundMessage.id)
        .execution_options(synchronize_session=False)
    )
    return set(owned.scalars())


def hand_over(session: Session, *, message_id: int, attempt: int, now: datetime) -> bool:
    """Record that one message is going to the server, if this delivery still owns it."""
    return message_id in hand_over_many(session, claims={message_id: attempt}, now=now)


def record_result(
    message: OutboundMessage,
    result: SendResult,
    *,
    now: datetime,
    max_attempts: int,
    backoff: timedelta,
) -> str:
    """Apply one send outcome; returns the message's new status."""
    if result.ok:
        message.sent_at = now
        _finish(message, OutboundStatus.sent, None)
    elif result.permanent:
        _finish(message, OutboundStatus.failed, f"Refused: {result.error}")
    elif message.attempts >= max_attempts:
        _finish(message, OutboundStatus.failed, f"Gave up after {message.attempts} attempts: {result.error}")
    else:
        message.status = OutboundStatus.pending
        message.handed_over_at = None
        message.next_attempt_at = now + min(backoff * 2 ** (message.attempts - 1), MAX_BACKOFF)
        message.last_error = result.error
    return message.status


def _record_outcomes(
    factory: sessionmaker[Session],
    claimed: dict[int, int],
    outcomes: dict[int, tuple[SendResult, bool]],
    report: DeliveryReport,
    *,
    now: datetime,
    max_attempts: int,
    backoff: timedelta,
) -> None:
    """Apply each message's send outcome (and whether it was handed over), in one transaction."""
    if not outcomes:
        return
    with transaction(factory) as session:
        for message in session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(outcomes))):
            if message.status != OutboundStatus.sending or message.attempts != claimed[message.id]:
                continue  # no longer ours
            result, handed_over = outcomes[message.id]
            if not handed_over:
                message.handed_over_at = None
            status = record_result(message, result, now=now, max_attempts=max_attempts, backoff=backoff)
            if status == OutboundStatus.sent:
                report.sent += 1
                audit_sent(session, message, now=now)
            elif status == OutboundStatus.failed:
                report.failed += 1
                report.errors.append(f"message {message.id}: {result.error}")
            else:
                report.retrying += 1


def deliver_due(
    factory: sessionmaker[Session],
    *,
    smtp_url: str,
    sender: Sender,
    now: Callable[[], datetime],
    max_attempts: int = 8,
    backoff: timedelta = timedelta(seconds=30),
    limit: int = 100,
    storage_dir: Path | None = None,
) -> DeliveryReport:
    """One delivery pass over what is due now."""
    report = DeliveryReport()
    with transaction(factory) as session:
        settle_interrupted(session, now=now(), max_attempts=max_attempts)
        claimed = claim_due(session, now=now(), limit=limit)
    report.claimed = len(claimed)
    if not claimed:
        return report

    def record(outcomes: dict[int, tuple[SendResult, bool]]) -> None:
        _record_outcomes(factory, claimed, outcomes, report, now=now(), max_attempts=max_attempts, backoff=backoff)

    emails: dict[int, EmailMessage] = {}
    unbuildable: dict[int, tuple[SendResult, bool]] = {}
    with factory() as session:
        for message in session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(claimed))):
            try:
                emails[message.id] = build_email(message, sender, read_attachments(session, message, storage_dir))
            except Exception as exc:  # a message that cannot be built will never send
                unbuildable[message.id] = (SendResult(ok=False, permanent=True, error=f"cannot be built: {exc}"), False)
    record(unbuildable)

    with SmtpConnection(smtp_url) as smtp:
        ids = sorted(emails)
        for chunk in (ids[n : n + HANDOVER_CHUNK] for n in range(0, len(ids), HANDOVER_CHUNK)):
            if not smtp.usable:
                record({message_id: (smtp.problem, False) for message_id in chunk})
                continue
            with transaction(factory) as session:
                owned = hand_over_many(session, claims={i: claimed[i] for i in chunk}, now=now())
            going = [message_id for message_id in chunk if message_id in owned]
            sent = smtp.send_many([emails[message_id] for message_id in going])
            record({message_id: (result, True) for message_id, result in zip(going, sent, strict=True)})
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
        storage_dir=settings.documents_dir,
    )
