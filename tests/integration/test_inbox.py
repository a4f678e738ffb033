"""The app mailbox over real SMTP: status requests answered only for a school's own contacts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import aiosmtplib
import pytest
from sqlalchemy import func, select

from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings.demo import load_demo
from notifications.catcher import read_maildir, start_catcher, start_inbox_listener
from notifications.delivery import deliver_pending
from notifications.digests import queue_weekly_digests
from notifications.emails import MailContext
from notifications.inbox import process_inbox, store_inbound
from notifications.models import InboundMessage, InboundStatus, OutboundMessage
from tests.conftest import free_port
from tests.factories import make_submitted_referral
from tests.referral_answers import CHILD_FIRST, CHILD_LAST

MAIL = MailContext(base_url="http://127.0.0.1:8000", mail_domain="kestrelford.example.org", team_name="Team")
APP = "clinic@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def referral(session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
    # Copperbeech Infant: the referrer is dsl@alderbrook, the safeguarding contact dsl@copperbeech.
    return make_submitted_referral(
        session_factory, clock.now(), urn="900004", referrer_email="dsl@alderbrook.example.org"
    )


def email(sender: str, subject: str, body: str = "Thanks", **headers) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, APP, subject
    message["Message-ID"] = f"<{abs(hash((sender, subject, body)))}@school.example.org>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def receive(session_factory, clock, raw: bytes) -> None:
    with transaction(session_factory) as session:
        store_inbound(session, raw=raw, now=clock.now())


def process(session_factory, clock):
    with transaction(session_factory) as session:
        return process_inbox(session, now=clock.now(), mail=MAIL, own_address=APP)


def replies(session, kind: str) -> list[OutboundMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboundMessage).where(OutboundMessage.kind == kind)))


def test_a_status_request_over_smtp_is_stored_and_answered(session_factory, session, clock, referral):
    referral_id, reference = referral
    port = free_port()
    listener = start_inbox_listener("127.0.0.1", port, lambda raw: receive(session_factory, clock, raw))
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "DSL <dsl@copperbeech.example.org>", APP, "Query"
        message.set_content(f"Hello, please send me the status {reference} thanks")
        asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=port))
    finally:
        listener.stop()
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    report = process(session_factory, clock)
    assert report.status_answered == 1
    (reply,) = replies(session, "status_reply")
    assert reply.recipient == "dsl@copperbeech.example.org"
    assert reference in reply.subject and "Waiting for triage" in reply.body_text
    assert CHILD_FIRST not in reply.body_text + reply.subject and CHILD_LAST not in reply.body_text
    assert reply.references == f"<referral-{referral_id}@kestrelford.example.org>"


def test_a_reply_to_a_referral_email_is_a_status_request(session_factory, session, clock, referral):
    referral_id, reference = referral
    raw = email(
        "dsl@alderbrook.example.org", "Re: something", In_Reply_To=f"<referral-{referral_id}@kestrelford.example.org>"
    )
    receive(session_factory, clock, raw)
    assert process(session_factory, clock).status_answered == 1
    assert reference in replies(session, "status_reply")[0].subject


def test_anyone_else_gets_the_same_refusal_whether_or_not_the_reference_exists(
    session_factory, session, clock, referral
):
    _, reference = referral
    receive(session_factory, clock, email("nosy@elsewhere.example.org", f"status {reference}"))
    receive(session_factory, clock, email("dsl@copperbeech.example.org", "status VPHC-2026-9999"))
    report = process(session_factory, clock)
    assert (report.status_answered, report.status_refused) == (0, 2)
    refusals = replies(session, "status_refusal")
    assert len(refusals) == 2
    assert refusals[0].subject == refusals[1].subject and refusals[0].body_text == refusals[1].body_text
    assert reference not in refusals[0].body_text and "triage" not in refusals[0].body_text.lower()
    assert replies(session, "status_reply") == []


def test_robots_are_never_answered_and_the_unclear_is_kept_for_a_person(session_factory, session, clock, referral):
    _, reference = referral
    receive(
        session_factory,
        clock,
        email("dsl@copperbeech.example.org", f"status {reference}", Auto_Submitted="auto-replied"),
    )
    receive(session_factory, clock, email("mailer-daemon@school.example.org", f"status {reference}"))
    receive(session_factory, clock, email("dsl@copperbeech.example.org", "Can we talk about Thursday?"))
    # No sender to answer, but perhaps a person's message with a broken From: kept for a person, not answered.
    receive(session_factory, clock, b"\x00\xff not an email at all")
    report = process(session_factory, clock)
    assert (report.ignored, report.for_a_person, report.status_answered) == (2, 2, 0)
    statuses = sorted(session.scalars(select(InboundMessage.status)))
    assert statuses == sorted([InboundStatus.ignored] * 2 + [InboundStatus.needs_human] * 2)
    assert (
        session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.kind.in_(["status_reply", "status_refusal"]))
        )
        == 0
    )


def test_the_same_message_twice_is_stored_and_answered_once(session_factory, session, clock, referral):
    _, reference = referral
    raw = email("dsl@copperbeech.example.org", f"Status {reference}")
    receive(session_factory, clock, raw)
    receive(session_factory, clock, raw)
    process(session_factory, clock)
    process(session_factory, clock)
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert len(replies(session, "status_reply")) == 1


def test_weekly_digest_lists_open_referrals_once_a_week(session_factory, session, settings, clock, referral):
    _, reference = referral
    with transaction(session_factory) as s:
        first = queue_weekly_digests(s, now=clock.now(), mail=MAIL)
    with transaction(session_factory) as s:
        again = queue_weekly_digests(s, now=clock.now() + timedelta(hours=5), mail=MAIL)
    digests = replies(session, "weekly_digest")
    assert first > 0 and len(digests) == first  # the rerun added nothing
    assert again == first  # the same emails, found again by their keys
    copperbeech = [d for d in digests if d.recipient == "dsl@copperbeech.example.org"]
    assert len(copperbeech) == 1
    assert f"{reference}: Waiting for triage. Waiting for the inclusion team: triage." in copperbeech[0].body_text
    for digest in digests:
        assert CHILD_FIRST not in digest.body_text and CHILD_LAST not in digest.body_text
    catcher = start_catcher(settings.maildir, "127.0.0.1", settings.catcher_port)
    try:
        assert deliver_pending(session_factory, settings, now=clock.now).failed == 0
    finally:
        catcher.stop()
    delivered = [m for m in read_maildir(settings.maildir) if m.subject.startswith("This week's referrals")]
    assert len(delivered) == first
    for message in delivered:
        # The words a reader sees (not the MIME boundaries, whose random digits may contain "2016").
        whole = message.subject + "".join(
            part.get_content() for part in message.message.walk() if part.get_content_maintype() == "text"
        )
        assert "VPHC-2026-" in message.part("text/plain")
        assert CHILD_FIRST not in whole and CHILD_LAST not in whole and "2016" not in whole
    with transaction(session_factory) as s:
        queue_weekly_digests(s, now=clock.now() + timedelta(days=7), mail=MAIL)
    assert len(replies(session, "weekly_digest")) == 2 * first


def test_a_crafted_message_does_not_block_the_mailbox(session_factory, session, clock, referral):
    _, reference = referral
    receive(
        session_factory,
        clock,
        email(
            "x@elsewhere.example.org",
            "Re: hi",
            In_Reply_To="<referral-99999999999999999999999@kestrelford.example.org>",
        ),
    )
    receive(session_factory, clock, email("dsl@copperbeech.example.org", f"status {reference}"))
    report = process(session_factory, clock)
    assert report.status_answered == 1
    assert (
        session.scalar(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.status == InboundStatus.received)
        )
        == 0
    )


def test_an_emailed_answer_is_kept_for_a_person_not_auto_answered(session_factory, session, clock, referral):
    referral_id, reference = referral
    raw = email(
        "dsl@copperbeech.example.org",
        "Re: More information needed",
        body="He has been absent every Monday since half-term.\n\nOn Mon, the team wrote:\n> More information needed",
        In_Reply_To=f"<referral-{referral_id}@kestrelford.example.org>",
    )
    receive(session_factory, clock, raw)
    report = process(session_factory, clock)
    assert (report.for_a_person, report.status_answered) == (1, 0)
    kept = session.scalars(select(InboundMessage)).one()
    assert kept.status == InboundStatus.needs_human and reference in kept.note


def test_other_autoresponders_and_floods_are_not_answered(session_factory, session, clock, referral):
    _, reference = referral
    receive(session_factory, clock, email("dsl@copperbeech.example.org", f"status {reference}", X_Autoreply="yes"))
    for n in range(7):
        receive(session_factory, clock, email("nosy@elsewhere.example.org", f"status {reference}", body=f"try {n}"))
    report = process(session_factory, clock)
    assert report.status_refused == 5 and report.ignored == 3
