"""Whose session ran out by itself, recently: the only rule that keeps answers posted after a timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agencies.auth import (
    SESSION_LIFETIME,
    confirm_sign_in,
    person_for_expired_session,
    person_for_session,
    request_sign_in,
    sign_out,
)
from agencies.models import Person
from caseconf.db import transaction
from tests.factories import make_person

GRACE = timedelta(hours=24)
SIGNED_IN_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
EXPIRES_AT = SIGNED_IN_AT + SESSION_LIFETIME


@pytest.fixture
def raw_session(session_factory) -> str:
    with transaction(session_factory) as session:
        person = make_person(session, email="dsl@alderbrook.example.org")
        link = request_sign_in(
            session,
            email=person.email,
            now=SIGNED_IN_AT,
            valid_for=timedelta(minutes=15),
            per_hour=5,
            ip_address=None,
        )
        raw, _ = confirm_sign_in(session, raw_token=link.raw_token, now=SIGNED_IN_AT, ip_address=None)
    return raw


def expired_person(session_factory, raw: str, now: datetime) -> str | None:
    with session_factory() as session:
        person = person_for_expired_session(session, raw_session=raw, now=now, grace=GRACE)
        return person.email if person else None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (SIGNED_IN_AT + timedelta(hours=1), None),  # still live: the ordinary rule applies, not this one
        (EXPIRES_AT, "dsl@alderbrook.example.org"),
        (EXPIRES_AT + timedelta(hours=3), "dsl@alderbrook.example.org"),
        (EXPIRES_AT + GRACE, "dsl@alderbrook.example.org"),
        (EXPIRES_AT + GRACE + timedelta(seconds=1), None),  # too long ago
    ],
)
def test_a_session_that_ran_out_recently_counts(session_factory, raw_session, now, expected):
    assert expired_person(session_factory, raw_session, now) == expected


def test_live_sessions_are_for_person_for_session_only(session_factory, raw_session):
    with session_factory() as session:
        assert person_for_session(session, raw_session=raw_session, now=EXPIRES_AT - timedelta(minutes=1))
        assert person_for_session(session, raw_session=raw_session, now=EXPIRES_AT + timedelta(minutes=1)) is None


def test_a_session_ended_by_signing_out_never_counts(session_factory, raw_session):
    with transaction(session_factory) as session:
        sign_out(session, raw_session=raw_session, now=SIGNED_IN_AT + timedelta(hours=2), ip_address=None)
    assert expired_person(session_factory, raw_session, EXPIRES_AT + timedelta(minutes=5)) is None


def test_unknown_cookie_and_inactive_person_do_not_count(session_factory, raw_session):
    assert expired_person(session_factory, "not-a-session", EXPIRES_AT + timedelta(minutes=5)) is None
    with transaction(session_factory) as session:
        session.query(Person).update({Person.active: False})
    assert expired_person(session_factory, raw_session, EXPIRES_AT + timedelta(minutes=5)) is None
