"""Sign-in by emailed one-time link, and browser sessions.

Only hashes of tokens and session ids are stored. A link is consumed by a POST from its
confirmation page, never by the GET that mail scanners make.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from agencies.models import Person, SignInToken, WebSession
from caseconf import audit
from caseconf.errors import CaseconfError
from caseconf.security import new_token, token_hash

SESSION_LIFETIME = timedelta(hours=10)

# Refused tokens (a sign-in link, a calendar feed address, an API token) are audited under these actions.
# An address that sends TOKEN_FAILURES_ALLOWED of them within TOKEN_FAILURE_WINDOW has every token refused
# until enough of them are older than the window. Tokens are 256-bit, so this is not what keeps them
# unguessable: it stops anyone scanning for them and makes the attempt visible in the audit log.
TOKEN_FAILURE_ACTIONS = ("sign_in.link_refused", "calendar_feed.refused", "api.token_refused")
TOKEN_FAILURE_WINDOW = timedelta(minutes=15)
TOKEN_FAILURES_ALLOWED = 20


class RateLimited(CaseconfError):
    pass


class LinkNotUsable(CaseconfError):
    """The link is unknown, used or expired; the message says which, in plain English."""


@dataclass(frozen=True)
class IssuedLink:
    token_id: int
    raw_token: str
    person: Person


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_person_by_email(session: Session, email: str) -> Person | None:
    return session.scalar(select(Person).where(Person.email == normalise_email(email), Person.active.is_(True)))


def _recent_requests(session: Session, *, now: datetime, **match) -> int:
    query = (
        select(func.count())
        .select_from(audit.AuditEvent)
        .where(
            audit.AuditEvent.action == "sign_in.requested",
            audit.AuditEvent.occurred_at > now - timedelta(hours=1),
        )
    )
    if "email" in match:
        query = query.where(audit.AuditEvent.actor_label == match["email"])
    if "ip_address" in match:
        query = query.where(audit.AuditEvent.ip_address == match["ip_address"])
    return session.scalar(query) or 0


def token_retry_after(
    session: Session,
    *,
    ip_address: str | None,
    now: datetime,
    allowed: int = TOKEN_FAILURES_ALLOWED,
    window: timedelta = TOKEN_FAILURE_WINDOW,
) -> int | None:
    """Seconds until this address may try a token again, or None if it may now.

    Counts the address's refused-token audit rows in the window: the one place every token endpoint asks.
    """
    if not ip_address:
        return None
    recent = session.scalars(
        select(audit.AuditEvent.occurred_at)
        .where(
            audit.AuditEvent.action.in_(TOKEN_FAILURE_ACTIONS),
            audit.AuditEvent.ip_address == ip_address,
            audit.AuditEvent.occurred_at > now - window,
        )
        .order_by(audit.AuditEvent.occurred_at)
    ).all()
    if len(recent) < allowed:
        return None
    # Trying again is allowed once all but allowed - 1 of these have left the window.
    frees_at = recent[len(recent) - allowed] + window
    return max(1, int((frees_at - now).total_seconds()) + 1)


def request_sign_in(
    session: Session,
    *,
    email: str,
    now: datetime,
    valid_for: timedelta,
    per_hour: int,
    ip_address: str | None,
    next_path: str = "/",
) -> IssuedLink | None:
    """Issue a link for a known, active person; None for anyone else (the caller says the same either way).

    Raises RateLimited, having written nothing, when this email or address has asked too often.
    """
    email = normalise_email(email)
    if _recent_requests(session, now=now, email=email) >= per_hour or (
        ip_address and _recent_requests(session, now=now, ip_address=ip_address) >= per_hour * 4
    ):
        raise RateLimited("Too many sign-in requests")
    person = find_person_by_email(session, email)
    audit.record(
        session,
        now=now,
        action="sign_in.requested",
        actor_person_id=person.id if person else None,
        actor_label=email,
        ip_address=ip_address,
        known=person is not None,
    )
    if person is None:
        return None
    raw = new_token()
    token = SignInToken(
        token_hash=token_hash(raw),
        person_id=person.id,
        created_at=now,
        expires_at=now + valid_for,
        next_path=next_path,
    )
    session.add(token)
    session.flush()
    return IssuedLink(token_id=token.id, raw_token=raw, person=person)


def check_link(session: Session, *, raw_token: str, now: datetime) -> SignInToken:
    """The token behind a link if it can still be used; otherwise LinkNotUsable."""
    token = session.scalar(select(SignInToken).where(SignInToken.token_hash == token_hash(raw_token)))
    if token is None:
        raise LinkNotUsable("This sign-in link is not valid. Check you copied the whole link, or ask for a new one.")
    if token.used_at is not None:
        raise LinkNotUsable("This sign-in link has already been used. Ask for a new one.")
    if token.expires_at <= now:
        raise LinkNotUsable("This sign-in link has expired. Ask for a new one.")
    return token


def confirm_sign_in(
    session: Session, *, raw_token: str, now: datetime, ip_address: str | None
) -> tuple[str, SignInToken]:
    """Consume the link and open a session; returns the raw session id for the cookie."""
    token = check_link(session, raw_token=raw_token, now=now)
    # Conditional update: of two presses of the same link, only one signs in.
    used = session.execute(
        update(SignInToken)
        .where(SignInToken.id == token.id, SignInToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        raise LinkNotUsable("This sign-in link has already been used. Ask for a new one.")
    raw_session = new_token()
    session.add(
        WebSession(
            session_hash=token_hash(raw_session),
            person_id=token.person_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    person = session.get(Person, token.person_id)
    audit.record(
        session,
        now=now,
        action="sign_in.succeeded",
        actor_person_id=token.person_id,
        actor_label=person.email if person else "",
        ip_address=ip_address,
    )
    return raw_session, token


def person_for_session(session: Session, *, raw_session: str, now: datetime) -> Person | None:
    web_session = session.scalar(select(WebSession).where(WebSession.session_hash == token_hash(raw_session)))
    if web_session is None or web_session.ended_at is not None or web_session.expires_at <= now:
        return None
    if not web_session.person.active:
        return None
    return web_session.person


def sign_out(session: Session, *, raw_session: str, now: datetime, ip_address: str | None) -> None:
    web_session = session.scalar(select(WebSession).where(WebSession.session_hash == token_hash(raw_session)))
    if web_session is None or web_session.ended_at is not None:
        return
    web_session.ended_at = now
    audit.record(
        session,
        now=now,
        action="sign_out",
        actor_person_id=web_session.person_id,
        actor_label=web_session.person.email,
        ip_address=ip_address,
    )


def person_for_expired_session(session: Session, *, raw_session: str, now: datetime, grace: timedelta) -> Person | None:
    """Whose session this was, if it ran out by itself no more than `grace` ago.

    Used only so that answers posted just after a session times out are not lost; it never signs
    anyone in. A session ended by signing out, a live session and an inactive person give None.
    """
    web_session = session.scalar(select(WebSession).where(WebSession.session_hash == token_hash(raw_session)))
    if web_session is None or web_session.ended_at is not None:
        return None
    if not (now - grace <= web_session.expires_at <= now):
        return None
    if not web_session.person.active:
        return None
    return web_session.person
