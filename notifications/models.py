"""Outbound and inbound messages. Domain code writes to the outbox; only delivery talks SMTP."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from caseconf.db import Base, UTCDateTime, one_of


class OutboundStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class InboundKind(StrEnum):
    unclassified = "unclassified"
    rsvp = "rsvp"
    action_reply = "action_reply"
    status_query = "status_query"
    bounce = "bounce"


class InboundStatus(StrEnum):
    received = "received"
    applied = "applied"
    needs_human = "needs_human"
    ignored = "ignored"


class OutboundMessage(Base):
    __tablename__ = "outbound_message"
    __table_args__ = (
        one_of("status", OutboundStatus),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_outbound_message_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Names the email it stands for (e.g. "sign-in:42", "invite:7:12:3"); a repeat enqueue is a no-op.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    ics: Mapped[str | None] = mapped_column(Text)
    ics_method: Mapped[str | None] = mapped_column(String(20))
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # document ids + names
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(250))
    references: Mapped[str | None] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(320))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meeting.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=OutboundStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set just before the message goes to the mail server: after a crash it may have arrived.
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class InboundMessage(Base):
    """Every message the app mailbox receives, stored raw before anything is done with it."""

    __tablename__ = "inbound_message"
    __table_args__ = (one_of("kind", InboundKind), one_of("status", InboundStatus))

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the same message twice is stored once
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    message_id: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str | None] = mapped_column(String(320))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(20), default=InboundKind.unclassified)
    status: Mapped[str] = mapped_column(String(20), default=InboundStatus.received, index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
