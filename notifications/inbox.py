"""The app mailbox: every message is stored raw, then understood and answered, or kept for a person.

Calendar replies (iTIP REPLY, from a mail client's Accept/Decline) update the invitation they answer.
It also answers status requests from schools: "status VPHC-2026-0042" in the subject or body,
or a reply to any email about a referral. Only a registered contact of the referral's school gets
the status; anyone else gets the same polite refusal whether or not the reference exists.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agencies.models import Person, Role, RoleGrant
from meetings.models import Referral, ReferralStatus
from meetings.referral_rules import LABELS, SCHOOL_TODO
from notifications.calendar import MalformedCalendar, Reply, parse_reply
from notifications.chasing import handle_action_reply
from notifications.emails import MailContext, queue_about_referral, queue_email
from notifications.invites import apply_calendar_reply
from notifications.models import InboundKind, InboundMessage, InboundStatus, OutboundMessage

MAX_RAW_BYTES = 25 * 1024 * 1024
STATUS_QUERY = re.compile(r"\bstatus\s*:?\s*(VPHC-\d{4}-\d{4,6})\b", re.IGNORECASE)
THREAD = re.compile(r"<referral-(\d{1,9})@([^>\s]+)>")
# Automatic replies announce themselves in several ways; any one is enough not to answer.
AUTOMATIC_HEADERS = ("List-Id", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")
REPLIES_PER_SENDER_PER_DAY = 5
# The answers that count towards a sender's daily cap: status answers and refusals, and refused action replies.
ANSWER_KINDS = ("status_reply", "status_refusal", "action_reply_refused")


def store_inbound(session: Session, *, raw: bytes, now: datetime) -> InboundMessage | None:
    """Keep a received message exactly as it came; the same bytes twice are kept once, and so is a message with
    the Message-ID and sender of one already kept (the same message delivered by two routes)."""
    if not raw or len(raw) > MAX_RAW_BYTES:
        return None
    digest = hashlib.sha256(raw).hexdigest()
    existing = session.scalar(select(InboundMessage).where(InboundMessage.sha256 == digest))
    if existing is not None:
        return existing
    headers = _parse(raw)
    message_id = _header(headers, "Message-ID", 500)
    sender = parseaddr(_header(headers, "From", 1000) or "")[1].lower() or None
    if message_id and sender:
        # The same message may arrive twice by different routes (SMTP and IMAP, say) with different trace
        # headers: its Message-ID and sender say it is the one already kept.
        existing = session.scalar(
            select(InboundMessage)
            .where(InboundMessage.message_id == message_id, InboundMessage.sender == sender)
            .order_by(InboundMessage.id)
            .limit(1)
        )
        if existing is not None:
            return existing
    message = InboundMessage(
        sha256=digest,
        received_at=now,
        raw=raw,
        message_id=message_id,
        sender=sender,
        recipient=_header(headers, "To", 320),
        subject=_header(headers, "Subject", 500),
        kind=InboundKind.unclassified,
        status=InboundStatus.received,
    )
    session.add(message)
    session.flush()
    return message


def _parse(raw: bytes) -> EmailMessage | None:
    try:
        return message_from_bytes(raw, policy=policy.default)
    except Exception:  # anything malformed is kept raw for a person; parsing never loses it
        return None


def _header(message: EmailMessage | None, name: str, limit: int) -> str | None:
    if message is None:
        return None
    try:
        value = message.get(name)
    except Exception:
        return None
    return " ".join(str(value).replace("\x00", "").split())[:limit] if value else None


def _text_body(message: EmailMessage | None) -> str:
    if message is None:
        return ""
    try:
        part = message.get_body(preferencelist=("plain",))
        return part.get_content()[:20000] if part else ""
    except Exception:
        return ""


def _is_automatic(message: EmailMessage | None, sender: str | None, own_address: str) -> bool:
    """Never answer robots, lists or ourselves: that is how mail loops start."""
    if not sender or sender == own_address.lower() or sender.split("@")[0] in ("mailer-daemon", "postmaster"):
        return True
    auto = (_header(message, "Auto-Submitted", 50) or "no").lower()
    precedence = (_header(message, "Precedence", 50) or "").lower()
    return (
        auto != "no"
        or precedence in ("bulk", "list", "junk", "auto_reply")
        or any(_header(message, name, 50) for name in AUTOMATIC_HEADERS)
    )


COURTESIES = frozenset({"status", "please", "thanks", "thank", "you", "hi", "hello", "many", "kind", "regards"})


def _says_more_than_status(message: EmailMessage | None) -> bool:
    """A reply with words of its own (beyond "status?", quoted text and a signature) is for a person."""
    kept = []
    for line in _text_body(message).splitlines():
        stripped = line.strip()
        if stripped in ("--", "-- "):
            break  # a signature follows
        if stripped.startswith(">") or (stripped.startswith("On ") and stripped.endswith("wrote:")):
            continue
        kept.append(stripped)
    words = re.findall(r"[a-z]+", " ".join(kept).lower())
    return any(word not in COURTESIES for word in words)


def _replies_today(session: Session, sender: str, now: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(
                OutboundMessage.recipient == sender,
                OutboundMessage.kind.in_(ANSWER_KINDS),
                OutboundMessage.created_at > now - timedelta(days=1),
            )
        )
        or 0
    )


@dataclass
class InboxReport:
    status_answered: int = 0
    status_refused: int = 0
    for_a_person: int = 0
    ignored: int = 0
    rsvps: int = 0
    action_replies: int = 0


def _referral_asked_about(session: Session, message: EmailMessage | None, subject: str, mail_domain: str):
    """(what kind of message, the referral): "query" for "status VPHC-…", "reply" for a reply to our email."""
    found = STATUS_QUERY.search(subject or "") or STATUS_QUERY.search(_text_body(message))
    if found:
        return "query", session.scalar(select(Referral).where(Referral.reference == found.group(1).upper()))
    threads = " ".join(filter(None, (_header(message, "In-Reply-To", 2000), _header(message, "References", 5000))))
    for referral_id, domain in THREAD.findall(threads):
        if domain == mail_domain:
            return "reply", session.get(Referral, int(referral_id))
    return None, None


def is_school_contact(session: Session, referral: Referral, sender: str) -> bool:
    school = referral.school
    if sender in {school.email.lower(), school.safeguarding_email.lower()}:
        return True
    return (
        session.scalar(
            select(Person.id)
            .join(RoleGrant, RoleGrant.person_id == Person.id)
            .where(
                Person.email == sender,
                Person.active.is_(True),
                RoleGrant.role == Role.school_referrer,
                RoleGrant.school_id == school.id,
            )
        )
        is not None
    )


def process_inbox(
    session: Session, *, now: datetime, mail: MailContext, own_address: str, limit: int = 200
) -> InboxReport:
    """Deal with each waiting message in a savepoint of its own: one bad message never blocks the rest."""
    report = InboxReport()
    waiting = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.status == InboundStatus.received)
        .order_by(InboundMessage.id)
        .limit(limit)
    ).all()
    for inbound in waiting:
        try:
            with session.begin_nested():
                _handle(session, inbound, now=now, mail=mail, own_address=own_address, report=report)
        except Exception as exc:  # kept for a person with the reason, never retried in a loop
            inbound.status = InboundStatus.needs_human
            inbound.note = f"Could not be handled automatically: {type(exc).__name__}"[:500]
            report.for_a_person += 1
        inbound.processed_at = now
    return report


def _handle(
    session: Session,
    inbound: InboundMessage,
    *,
    now: datetime,
    mail: MailContext,
    own_address: str,
    report: InboxReport,
) -> None:
    message = _parse(inbound.raw)
    # Calendar replies come first: mail clients may mark them automatic, and they are never answered.
    if _handle_calendar_reply(session, inbound, message, now=now, report=report):
        return
    if not inbound.sender:
        # No address to answer, but it may be a person's message with a broken From: a person looks at it.
        inbound.status, inbound.note = InboundStatus.needs_human, "No sender address could be read: kept for the team"
        report.for_a_person += 1
        return
    if _is_automatic(message, inbound.sender, own_address):
        inbound.status, inbound.note = InboundStatus.ignored, "Automatic or looping message: not answered"
        report.ignored += 1
        return
    # Replies to action emails ("done", "update: ...", "cannot do: ...") before status requests.
    may_refuse = _replies_today(session, inbound.sender, now) < REPLIES_PER_SENDER_PER_DAY
    if handle_action_reply(session, inbound, message, _text_body(message), now=now, mail=mail, may_refuse=may_refuse):
        if inbound.status == InboundStatus.applied:
            report.action_replies += 1
        else:
            report.for_a_person += 1
        return
    kind, referral = _referral_asked_about(session, message, inbound.subject or "", mail.mail_domain)
    if kind is None or (kind == "reply" and _says_more_than_status(message)):
        about = f" about {referral.reference}" if kind and referral is not None and referral.reference else ""
        inbound.status, inbound.note = InboundStatus.needs_human, f"Kept for the team{about}"
        report.for_a_person += 1
        return
    if _replies_today(session, inbound.sender, now) >= REPLIES_PER_SENDER_PER_DAY:
        inbound.status, inbound.note = InboundStatus.ignored, "Too many requests from this address today"
        report.ignored += 1
        return
    inbound.kind = InboundKind.status_query
    inbound.status = InboundStatus.applied
    thread = inbound.message_id if inbound.message_id and len(inbound.message_id) < 250 else None
    if referral is not None and referral.reference and is_school_contact(session, referral, inbound.sender):
        status = ReferralStatus(referral.status)
        queue_about_referral(
            session,
            mail=mail,
            now=now,
            referral=referral,
            template="status_reply",
            key=f"status-reply:{inbound.id}",
            recipient=inbound.sender,
            link=f"/referrals/{referral.id}",
            status_label=LABELS[status],
            todo=SCHOOL_TODO.get(status, ""),
        )
        inbound.note = f"Answered with the status of {referral.reference}"
        report.status_answered += 1
    else:
        queue_email(
            session,
            mail=mail,
            now=now,
            template="status_refusal",
            key=f"status-refusal:{inbound.id}",
            recipient=inbound.sender,
            in_reply_to=thread,
        )
        inbound.note = "Refused: unknown reference or not a contact of the school"
        report.status_refused += 1


CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
MAX_CALENDAR_PARTS = 5


def _calendar_parts(message: EmailMessage | None) -> list[str]:
    """The text of each calendar part or .ics attachment (a few at most)."""
    if message is None:
        return []
    found = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = (part.get_filename() or "").lower()
        if part.get_content_type() not in CALENDAR_TYPES and not filename.endswith(".ics"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            found.append(payload.decode(charset, errors="replace"))
        except LookupError:  # an unknown charset name
            found.append(payload.decode("utf-8", errors="replace"))
        if len(found) >= MAX_CALENDAR_PARTS:
            break
    return found


def _handle_calendar_reply(
    session: Session, inbound: InboundMessage, message: EmailMessage | None, *, now: datetime, report: InboxReport
) -> bool:
    """Deal with a message carrying an iTIP REPLY; False when it carries none (other handling follows)."""
    parts = _calendar_parts(message)
    if not parts:
        return False
    reply: Reply | None = None
    malformed = False
    for text in parts:
        try:
            reply = parse_reply(text)
        except MalformedCalendar:
            malformed = True
            continue
        if reply is not None:
            break
    if reply is None:
        if not malformed:
            return False  # an invitation forwarded to us, say: not a reply
        inbound.kind = InboundKind.rsvp
        inbound.status, inbound.note = InboundStatus.needs_human, "Calendar attachment could not be read"
        report.for_a_person += 1
        return True
    inbound.kind = InboundKind.rsvp
    outcome = apply_calendar_reply(session, reply=reply, sender=inbound.sender, now=now)
    inbound.status = InboundStatus.applied if outcome.applied else InboundStatus.needs_human
    inbound.note = outcome.note[:500]
    if outcome.applied:
        report.rsvps += 1
    else:
        report.for_a_person += 1
    return True
