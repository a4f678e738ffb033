"""Bearer tokens for the JSON API. Each acts as one person, with that person's role grants.

Only the SHA-256 of a token is stored, so the raw token is shown once, when it is made, and
never again. A token is looked up by its hash: the secret itself is never compared byte by byte,
so response times say nothing about how much of a guess was right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import ApiToken, Person
from caseconf import audit
from caseconf.errors import Invalid, NotFound
from caseconf.security import new_token, token_hash

# Recognisable in logs and by secret scanners; part of the hashed value.
TOKEN_PREFIX = "cc_"  # noqa: S105 - a public marker on every token, not a secret  # nosec B105
MAX_LIFETIME = timedelta(days=366)
NAME_MAX_LENGTH = 100


@dataclass(frozen=True)
class IssuedApiToken:
    token_id: int
    raw_token: str
    expires_at: datetime


def create_api_token(
    session: Session, *, person_id: int, name: str, now: datetime, valid_for: timedelta, actor_label: str
) -> IssuedApiToken:
    """Make a token for an active person; the raw token is in the result and nowhere else."""
    name = name.strip()
    problems = {}
    if not name:
        problems["name"] = "Enter what the token is for"
    elif len(name) > NAME_MAX_LENGTH:
        problems["name"] = f"The token's name must be {NAME_MAX_LENGTH} characters or fewer"
    if not timedelta(0) < valid_for <= MAX_LIFETIME:
        problems["days"] = f"A token must last between 1 and {MAX_LIFETIME.days} days"
    person = session.get(Person, person_id)
    if person is None or not person.active:
        problems["person"] = "Tokens can only be made for an active person in the directory"
    if problems:
        raise Invalid(problems)
    raw = TOKEN_PREFIX + new_token()
    token = ApiToken(
        person_id=person_id, name=name, token_hash=token_hash(raw), created_at=now, expires_at=now + valid_for
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        now=now,
        action="api_token.created",
        actor_label=actor_label,
        record_type="api_token",
        record_id=token.id,
        person_id=person_id,
        name=name,
        expires_at=token.expires_at.isoformat(),
    )
    return IssuedApiToken(token_id=token.id, raw_token=raw, expires_at=token.expires_at)


def authenticate_api_token(session: Session, *, raw_token: str, now: datetime) -> ApiToken | None:
    """The token if it may be used now (not revoked, not expired, its person active), noting the use."""
    if not raw_token.startswith(TOKEN_PREFIX) or len(raw_token) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(raw_token)))
    if token is None or token.revoked_at is not None or token.expires_at <= now or not token.person.active:
        return None
    token.last_used_at = now
    return token


def revoke_api_token(session: Session, *, token_id: int, now: datetime, actor_label: str) -> ApiToken:
    """Stop a token working from now on; revoking it again changes nothing."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"api token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(
            session,
            now=now,
            action="api_token.revoked",
            actor_label=actor_label,
            record_type="api_token",
            record_id=token.id,
            person_id=token.person_id,
            name=token.name,
        )
    return token


def find_api_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
