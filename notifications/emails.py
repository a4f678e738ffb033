"""Queueing the emails the product sends. Each builder renders and enqueues in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

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
    rendered = render_email(
        "sign_in",
        name=name,
        link=f"{mail.base_url}/sign-in/confirm?token={raw_token}",
        valid_minutes=valid_minutes,
        service_name=SERVICE_NAME,
        team_name=mail.team_name,
    )
    return enqueue(
        session,
        now=now,
        idempotency_key=f"sign-in:{token_id}",
        kind="sign_in",
        recipient=recipient,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        mail_domain=mail.mail_domain,
    )
