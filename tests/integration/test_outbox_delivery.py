"""Outbox delivery through a real SMTP server on loopback."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from caseconf.db import transaction
from notifications.catcher import read_maildir, start_catcher
from notifications.delivery import LEASE, Sender, claim_due, deliver_due
from notifications.models import OutboundMessage, OutboundStatus
from notifications.outbox import enqueue
from tests.conftest import free_port
from tests.mailservers import start_picky_server

SENDER = Sender(address="clinic@kestrelford.example.org", name="Kestrelford Inclusion Team")


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def maildir(tmp_path):
    return tmp_path / "mail"


@pytest.fixture
def catcher(maildir, port):
    controller = start_catcher(maildir, "127.0.0.1", port)
    yield controller
    controller.stop()


def queue(session_factory, clock, key, recipient="eip.north@kestrelford.example.org", **extra):
    with transaction(session_factory) as session:
        enqueue(
            session,
            now=clock.now(),
            idempotency_key=key,
            kind="test",
            recipient=recipient,
            subject=f"Subject for {key}",
            body_text=f"Body for {key}",
            mail_domain="kestrelford.example.org",
            **extra,
        )


def deliver(session_factory, clock, port, **kwargs):
    return deliver_due(session_factory, smtp_url=f"smtp://127.0.0.1:{port}", sender=SENDER, now=clock.now, **kwargs)


def message(session, key) -> OutboundMessage:
    session.expire_all()
    return session.scalars(select(OutboundMessage).where(OutboundMessage.idempotency_key == key)).one()


def test_enqueue_same_key_twice_keeps_one_message(session_factory, session, clock):
    queue(session_factory, clock, "sign-in:1")
    queue(session_factory, clock, "sign-in:1")
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 1


def test_enqueue_refuses_header_injection(session_factory, clock):
    from caseconf.errors import Invalid

    with pytest.raises(Invalid):
        queue(session_factory, clock, "bad", recipient="a@example.org\r\nBcc: evil@example.org")


def test_delivers_to_real_smtp_server_and_records_it(session_factory, session, clock, catcher, maildir, port):
    queue(session_factory, clock, "sign-in:1", body_html="<p>Hello</p>")
    report = deliver(session_factory, clock, port)
    assert (report.claimed, report.sent, report.failed) == (1, 1, 0)
    row = message(session, "sign-in:1")
    assert row.status == OutboundStatus.sent
    assert row.sent_at == clock.now()
    assert row.attempts == 1
    caught = read_maildir(maildir)
    assert len(caught) == 1
    assert caught[0].message["Message-ID"] == row.message_id
    assert caught[0].subject == "Subject for sign-in:1"
    assert caught[0].part("text/plain").strip() == "Body for sign-in:1"
    assert caught[0].part("text/html").strip() == "<p>Hello</p>"


def test_rerun_sends_nothing_twice(session_factory, clock, catcher, maildir, port):
    queue(session_factory, clock, "a")
    queue(session_factory, clock, "b")
    assert deliver(session_factory, clock, port).sent == 2
    clock.advance(hours=1)
    assert deliver(session_factory, clock, port).claimed == 0
    queue(session_factory, clock, "a")  # the same email asked for again
    assert deliver(session_factory, clock, port).claimed == 0
    assert len(read_maildir(maildir)) == 2


def test_connection_refused_retries_with_backoff_then_delivers(session_factory, session, clock, maildir, port):
    queue(session_factory, clock, "retry-me")
    report = deliver(session_factory, clock, port)  # nothing listens on the port yet
    assert (report.sent, report.retrying) == (0, 1)
    row = message(session, "retry-me")
    assert row.status == OutboundStatus.pending
    assert row.attempts == 1
    assert "Connect" in row.last_error or "refused" in row.last_error.lower()
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)

    clock.advance(seconds=10)
    assert deliver(session_factory, clock, port).claimed == 0  # not due yet

    clock.advance(seconds=21)
    report = deliver(session_factory, clock, port)  # second failure doubles the wait
    assert report.retrying == 1
    assert message(session, "retry-me").next_attempt_at == clock.now() + timedelta(seconds=60)

    controller = start_catcher(maildir, "127.0.0.1", port)
    try:
        clock.advance(seconds=61)
        assert deliver(session_factory, clock, port).sent == 1
    finally:
        controller.stop()
    row = message(session, "retry-me")
    assert (row.status, row.attempts, row.last_error) == (OutboundStatus.sent, 3, None)
    assert len(read_maildir(maildir)) == 1


def test_permanent_5xx_marks_failed_with_reason_and_never_retries(session_factory, session, clock, maildir, port):
    queue(session_factory, clock, "bounce", recipient="reject-me@kestrelford.example.org")
    queue(session_factory, clock, "fine")
    controller = start_picky_server(maildir, port)
    try:
        report = deliver(session_factory, clock, port)
        assert (report.sent, report.failed) == (1, 1)
        row = message(session, "bounce")
        assert row.status == OutboundStatus.failed
        assert "550" in row.last_error
        clock.advance(days=1)
        assert deliver(session_factory, clock, port).claimed == 0
    finally:
        controller.stop()
    assert [m.subject for m in read_maildir(maildir)] == ["Subject for fine"]


def test_temporary_4xx_retries_and_gives_up_after_max_attempts(session_factory, session, clock, maildir, port):
    queue(session_factory, clock, "busy", recipient="busy-box@kestrelford.example.org")
    controller = start_picky_server(maildir, port)
    try:
        for _ in range(3):
            report = deliver(session_factory, clock, port, max_attempts=3)
            assert report.claimed == 1
            clock.advance(hours=7)
        row = message(session, "busy")
        assert row.status == OutboundStatus.failed
        assert row.attempts == 3
        assert "451" in row.last_error and "Gave up after 3 attempts" in row.last_error
    finally:
        controller.stop()


def test_racing_deliveries_send_each_message_once(session_factory, clock, catcher, maildir, port):
    for n in range(30):
        queue(session_factory, clock, f"race:{n}")
    reports = []

    def run():
        reports.append(deliver(session_factory, clock, port, limit=30))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in reports) == 30
    subjects = [m.subject for m in read_maildir(maildir)]
    assert len(subjects) == 30 and len(set(subjects)) == 30


def test_crash_mid_delivery_is_picked_up_after_the_lease_with_the_same_message_id(
    session_factory, session, clock, catcher, maildir, port
):
    queue(session_factory, clock, "crashy")
    with transaction(session_factory) as s:
        assert len(claim_due(s, now=clock.now(), limit=10)) == 1  # then the process "dies"
    assert deliver(session_factory, clock, port).claimed == 0  # still leased to the dead process
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert deliver(session_factory, clock, port).sent == 1
    row = message(session, "crashy")
    assert row.attempts == 2
    assert read_maildir(maildir)[0].message["Message-ID"] == row.message_id


def test_calendar_part_method_matches_and_parses(session_factory, clock, catcher, maildir, port):
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//caseconf//EN\r\nMETHOD:REQUEST\r\n"
        "BEGIN:VEVENT\r\nUID:meeting-1@kestrelford.example.org\r\nDTSTAMP:20260112T090000Z\r\n"
        "DTSTART:20260115T133000Z\r\nSUMMARY:Hot clinic\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    queue(session_factory, clock, "invite", ics=ics, ics_method="REQUEST")
    deliver(session_factory, clock, port)
    caught = read_maildir(maildir)[0]
    part = next(p for p in caught.message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(part.get_content())
    assert calendar["METHOD"] == "REQUEST"
