from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agencies.models import Role
from caseconf.db import transaction
from notifications.models import OutboundMessage
from tests.factories import make_area, make_person, make_school
from web.app import create_app


@pytest.fixture
def app(settings, session_factory, clock):
    return create_app(settings, session_factory=session_factory, clock=clock)


@pytest.fixture
def client(app):
    with TestClient(
        app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=("127.0.0.1", 50000)
    ) as client:
        yield client


@pytest.fixture
def people(session_factory):
    """An EIP for North, a school referrer and an admin."""
    with transaction(session_factory) as session:
        north = make_area(session)
        school = make_school(session, area=north)
        eip = make_person(
            session, email="eip.north@kestrelford.example.org", name="Priya North", role=Role.eip, area_id=north.id
        )
        referrer = make_person(
            session, email="dsl@alderbrook.example.org", name="Sam Dsl", role=Role.school_referrer, school_id=school.id
        )
        admin = make_person(session, email="admin@kestrelford.example.org", name="Ada Admin", role=Role.admin)
        return {"eip": eip.email, "referrer": referrer.email, "admin": admin.email}


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def latest_link(session_factory, recipient: str, base: str = "http://127.0.0.1:8000") -> str:
    with session_factory() as session:
        message = session.scalars(
            select(OutboundMessage).where(OutboundMessage.recipient == recipient).order_by(OutboundMessage.id.desc())
        ).first()
    assert message is not None, f"no email queued for {recipient}"
    match = re.search(re.escape(base) + r"/sign-in/confirm\?token=\S+", message.body_text)
    assert match, message.body_text
    return match.group(0)


def sign_in(client, session_factory, email: str) -> None:
    page = client.get("/sign-in")
    response = client.post("/sign-in", data={"email": email, "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    link = latest_link(session_factory, email)
    confirm = client.get(link.replace("http://127.0.0.1:8000", ""))
    assert confirm.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
    response = client.post("/sign-in/confirm", data={"token": token, "csrf_token": csrf_from(confirm.text)})
    assert response.status_code == 303
