"""API tokens on a real database: made, used, expired and revoked, with only their hashes at rest."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from agencies.api_tokens import authenticate_api_token, create_api_token, revoke_api_token
from agencies.models import ApiToken, Person, Role
from caseconf.audit import AuditEvent
from caseconf.clock import SystemClock
from caseconf.db import transaction
from caseconf.errors import Invalid, NotFound
from tests.factories import make_area, make_person, make_school

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def referrer_id(session_factory) -> int:
    with transaction(session_factory) as session:
        school = make_school(session, area=make_area(session))
        return make_person(
            session, email="dsl@alderbrook.example.org", role=Role.school_referrer, school_id=school.id
        ).id


def issue(session_factory, person_id: int, *, days: int = 30, name: str = "MIS sync"):
    with transaction(session_factory) as session:
        return create_api_token(
            session, person_id=person_id, name=name, now=NOW, valid_for=timedelta(days=days), actor_label="test"
        )


def authenticate(session_factory, raw: str, now: datetime = NOW) -> ApiToken | None:
    with transaction(session_factory) as session:
        return authenticate_api_token(session, raw_token=raw, now=now)


def audit_actions(session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(session_factory, session, referrer_id):
    issued = issue(session_factory, referrer_id)
    assert issued.raw_token.startswith("cc_") and len(issued.raw_token) > 40
    assert issued.expires_at == NOW + timedelta(days=30)
    row = session.get(ApiToken, issued.token_id)
    assert row.token_hash == hashlib.sha256(issued.raw_token.encode()).hexdigest()
    stored = [str(value) for value in session.execute(select(ApiToken.__table__)).one()]
    assert not any(issued.raw_token in value or issued.raw_token[3:] in value for value in stored)
    created = session.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.created")).one()
    assert created.record_id == str(issued.token_id) and created.detail["person_id"] == referrer_id
    assert issued.raw_token[3:] not in str(created.detail)


def test_a_token_authenticates_as_its_person_and_notes_when_it_was_used(session_factory, session, referrer_id):
    issued = issue(session_factory, referrer_id)
    later = NOW + timedelta(days=2)
    token = authenticate(session_factory, issued.raw_token, later)
    assert token is not None and token.person_id == referrer_id
    assert session.get(ApiToken, issued.token_id).last_used_at == later


@pytest.mark.parametrize(
    "mangle",
    [lambda raw: raw[:-1], lambda raw: raw + "x", lambda raw: raw[3:], lambda raw: "cc_" + "A" * 43, lambda raw: ""],
    ids=["shortened", "lengthened", "without-prefix", "made-up", "empty"],
)
def test_anything_but_the_exact_token_is_refused(session_factory, session, referrer_id, mangle):
    issued = issue(session_factory, referrer_id)
    assert authenticate(session_factory, mangle(issued.raw_token)) is None
    assert session.get(ApiToken, issued.token_id).last_used_at is None


def test_a_token_stops_working_when_it_expires(session_factory, referrer_id):
    issued = issue(session_factory, referrer_id, days=7)
    assert authenticate(session_factory, issued.raw_token, issued.expires_at - timedelta(seconds=1)) is not None
    assert authenticate(session_factory, issued.raw_token, issued.expires_at) is None


def test_a_revoked_token_stops_working_and_revoking_again_changes_nothing(session_factory, session, referrer_id):
    issued = issue(session_factory, referrer_id)
    later = NOW + timedelta(hours=1)
    with transaction(session_factory) as s:
        revoke_api_token(s, token_id=issued.token_id, now=later, actor_label="test")
    with transaction(session_factory) as s:
        revoke_api_token(s, token_id=issued.token_id, now=later + timedelta(hours=1), actor_label="test")
    assert session.get(ApiToken, issued.token_id).revoked_at == later
    assert authenticate(session_factory, issued.raw_token, later) is None
    assert audit_actions(session).count("api_token.revoked") == 1


def test_a_token_of_a_person_made_inactive_is_refused(session_factory, referrer_id):
    issued = issue(session_factory, referrer_id)
    with transaction(session_factory) as s:
        s.get(Person, referrer_id).active = False
    assert authenticate(session_factory, issued.raw_token) is None


def test_a_token_needs_a_name_a_sensible_lifetime_and_an_active_person(session_factory, session, referrer_id):
    with pytest.raises(Invalid) as nameless:
        issue(session_factory, referrer_id, name="  ")
    assert set(nameless.value.problems) == {"name"}
    for days in (0, 367):
        with pytest.raises(Invalid) as lifetime:
            issue(session_factory, referrer_id, days=days)
        assert set(lifetime.value.problems) == {"days"}
    with pytest.raises(Invalid) as nobody:
        issue(session_factory, 999_999)
    assert set(nobody.value.problems) == {"person"}
    assert session.scalars(select(ApiToken)).all() == []


def test_revoking_an_unknown_token_is_not_found(session_factory):
    with pytest.raises(NotFound), transaction(session_factory) as s:
        revoke_api_token(s, token_id=12345, now=NOW, actor_label="test")


def run_cli(database_url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASECONF_")}
    env.update(CASECONF_DATABASE_URL=database_url, CASECONF_DATA_DIR=str(tmp_path / "var"))
    return subprocess.run(
        [sys.executable, "-m", "caseconf.cli", "api-token", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_command_line_creates_lists_and_revokes_tokens(session_factory, database_url, tmp_path, referrer_id):
    made = run_cli(database_url, tmp_path, "create", "--email", "DSL@alderbrook.example.org", "--name", "MIS sync")
    assert made.returncode == 0, made.stderr
    raw = made.stdout.strip().splitlines()[-1]
    assert raw.startswith("cc_") and "school_referrer" in made.stdout
    now = SystemClock().now()
    token = authenticate(session_factory, raw, now)
    assert token is not None and token.person_id == referrer_id

    listed = run_cli(database_url, tmp_path, "list")
    assert listed.returncode == 0 and "MIS sync" in listed.stdout and "dsl@alderbrook.example.org" in listed.stdout
    assert raw not in listed.stdout and raw[3:] not in listed.stdout

    revoked = run_cli(database_url, tmp_path, "revoke", str(token.id))
    assert revoked.returncode == 0, revoked.stderr
    assert authenticate(session_factory, raw, now) is None

    unknown = run_cli(database_url, tmp_path, "create", "--email", "nobody@example.org", "--name", "x")
    assert unknown.returncode == 1 and "No active person" in unknown.stderr
    too_long = run_cli(
        database_url, tmp_path, "create", "--email", "dsl@alderbrook.example.org", "--name", "x", "--days", "400"
    )
    assert too_long.returncode == 1 and "between 1 and 366 days" in too_long.stderr
