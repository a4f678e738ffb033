"""The mailbox and digest sweeps, run for real under Prefect."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from caseconf.db import transaction
from meetings.demo import load_demo
from notifications.inbox import store_inbound
from notifications.models import OutboundMessage
from tests.factories import make_submitted_referral

pytestmark = pytest.mark.flows
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


def test_read_inbox_answers_and_weekly_digest_queues_once(flow_env, session_factory, session):
    from flows.mailbox import read_inbox, weekly_digest

    with transaction(session_factory) as s:
        load_demo(s, now=NOW)
    _, reference = make_submitted_referral(
        session_factory, NOW, urn="900004", referrer_email="dsl@alderbrook.example.org"
    )
    request = EmailMessage()
    request["From"], request["To"], request["Subject"] = (
        "dsl@copperbeech.example.org",
        "clinic@x",
        f"status {reference}",
    )
    request.set_content("Thanks")
    with transaction(session_factory) as s:
        store_inbound(s, raw=request.as_bytes(), now=NOW)

    assert read_inbox(now=NOW)["status_answered"] == 1
    assert read_inbox(now=NOW)["status_answered"] == 0  # nothing new the second time
    first = weekly_digest(now=NOW)
    again = weekly_digest(now=NOW)
    kinds = session.scalars(select(OutboundMessage.kind)).all()
    assert kinds.count("status_reply") == 1
    assert first == again and kinds.count("weekly_digest") == first > 0
