"""Recording email to send. Called inside the transaction of the change that causes it."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from caseconf import audit
from caseconf.errors import Invalid
from caseconf.validation import has_control_characters, is_email_address
from meetings.access import listed_referral_ids
from meetings.models import Document, DocumentKind
from notifications.models import OutboundMessage, OutboundStatus


def message_id_for(idempotency_key: str, mail_domain: str) -> str:
    """The same key always gives the same Message-ID, so a resend after a crash is recognisable."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{mail_domain}>"


def _check_headers(recipient: str, **headers: str | None) -> None:
    """Refuse what would break or inject email headers, before anything is stored."""
    if not is_email_address(recipient):
        raise Invalid({"recipient": f"{recipient!r} is not an email address"})
    for name, value in headers.items():
        if value is not None and has_control_characters(value):
            raise Invalid({name: f"The {name} of an email must be a single line of text"})


def enqueue(
    session: Session,
    *,
    now: datetime,
    idempotency_key: str,
    kind: str,
    recipient: str,
    subject: str,
    body_text: str,
    mail_domain: str,
    body_html: str | None = None,
    ics: str | None = None,
    ics_method: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    reply_to: str | None = None,
    referral_id: int | None = None,
    meeting_id: int | None = None,
) -> OutboundMessage:
    """Queue one email; a key already queued returns the existing message unchanged."""
    _check_headers(recipient, subject=subject, reply_to=reply_to, in_reply_to=in_reply_to, references=references)
    existing = session.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    message = OutboundMessage(
        idempotency_key=idempotency_key,
        kind=kind,
        recipient=recipient,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        ics=ics,
        ics_method=ics_method,
        message_id=message_id_for(idempotency_key, mail_domain),
        in_reply_to=in_reply_to,
        references=references,
        reply_to=reply_to,
        referral_id=referral_id,
        meeting_id=meeting_id,
        status=OutboundStatus.pending,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        attachments=[],
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        # Another transaction queued the same key first: theirs stands.
        return session.scalars(select(OutboundMessage).where(OutboundMessage.idempotency_key == idempotency_key)).one()
    return message


# Emails about an action are threaded on it (notifications.chasing.action_thread) and keyed by it.
ACTION_THREAD = re.compile(r"<action-([0-9]+)@")
ACTION_KEY = re.compile(r"action(?:-cannot-do|-no-recipient)?:([0-9]+):")


def case_record(message: OutboundMessage) -> tuple[str, int] | None:
    """The case record an email is about: its action, else its referral, else its meeting; None if none."""
    found = ACTION_THREAD.match(message.in_reply_to or "") or ACTION_KEY.match(message.idempotency_key)
    if found:
        return "action", int(found.group(1))
    if message.referral_id is not None:
        return "referral", message.referral_id
    if message.meeting_id is not None:
        return "meeting", message.meeting_id
    return None


def _referrals_in_attached_packs(session: Session, document_ids: list[int]) -> dict[int, tuple[int, int]]:
    """The referrals listed on the meetings whose papers packs are attached: {referral id: (pack, meeting)}."""
    if not document_ids:
        return {}
    packs = session.execute(
        select(Document.id, Document.meeting_id).where(
            Document.id.in_(document_ids), Document.kind == DocumentKind.papers_pack, Document.meeting_id.is_not(None)
        )
    ).all()
    found: dict[int, tuple[int, int]] = {}
    for document_id, meeting_id in packs:
        for referral_id in listed_referral_ids(session, meeting_id):
            found.setdefault(referral_id, (document_id, meeting_id))
    return found


def audit_sent(session: Session, message: OutboundMessage, *, now: datetime) -> None:
    """Record that an email about a case went to the mail server: the record and the recipient, never the body.
    An attached papers pack speaks of every child listed at its meeting: each of those referrals gets an
    'email.sent' row of its own too, so the email shows on its access log."""
    about = case_record(message)
    if about is None:
        return
    record_type, record_id = about
    attached = [entry.get("document_id") for entry in message.attachments or []]
    in_packs = _referrals_in_attached_packs(session, [i for i in attached if isinstance(i, int)])
    common = {"recipient": message.recipient, "kind": message.kind, "message_id": message.message_id}
    audit.record(
        session,
        now=now,
        action="email.sent",
        actor_label="outbox",
        record_type=record_type,
        record_id=record_id,
        **common,
        referral_id=message.referral_id,
        meeting_id=message.meeting_id,
        attachments=attached,
        **({"referrals_in_attachments": sorted(in_packs)} if in_packs else {}),
    )
    for referral_id, (document_id, meeting_id) in sorted(in_packs.items()):
        if (record_type, record_id) == ("referral", referral_id):
            continue  # the email's own row names it
        audit.record(
            session,
            now=now,
            action="email.sent",
            actor_label="outbox",
            record_type="referral",
            record_id=referral_id,
            **common,
            via="attached papers",
            meeting_id=meeting_id,
            document_id=document_id,
        )
