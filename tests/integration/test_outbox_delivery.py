"""Outbox delivery through a real SMTP server on loopback."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar
from sqlalchemy import func, select, update

from caseconf.db import transaction
from notifications.catcher import MaildirHandler, read_maildir, start_catcher
from notifications.delivery import INTERRUPTED, LEASE, Sender, claim_due, deliver_due, hand_over, hand_over_many
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
        assert row.last_error.startswith("Refused: 550")
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


def test_crash_before_handing_over_is_sent_after_the_lease(session_factory, session, clock, catcher, maildir, port):
    queue(session_factory, clock, "crashy")
    with transaction(session_factory) as s:
        assert list(claim_due(s, now=clock.now(), limit=10)) == [1]  # then the process "dies"
    assert deliver(session_factory, clock, port).claimed == 0  # still leased to the dead process
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert deliver(session_factory, clock, port).sent == 1
    row = message(session, "crashy")
    assert row.attempts == 2
    assert [m.message["Message-ID"] for m in read_maildir(maildir)] == [row.message_id]


def test_crash_after_handing_over_is_never_sent_again(session_factory, session, clock, catcher, maildir, port):
    queue(session_factory, clock, "maybe-arrived")
    with transaction(session_factory) as s:
        claimed = claim_due(s, now=clock.now(), limit=10)
    with transaction(session_factory) as s:
        assert hand_over(s, message_id=1, attempt=claimed[1], now=clock.now())  # then the process "dies"
    clock.advance(seconds=LEASE.total_seconds() + 1)
    report = deliver(session_factory, clock, port)
    assert report.claimed == 0
    row = message(session, "maybe-arrived")
    assert row.status == OutboundStatus.failed
    assert row.last_error == INTERRUPTED
    assert read_maildir(maildir) == []


def test_a_slow_delivery_loses_a_message_it_no_longer_owns(session_factory, session, clock, catcher, maildir, port):
    queue(session_factory, clock, "slow")
    with transaction(session_factory) as s:
        slow_claim = claim_due(s, now=clock.now(), limit=10)  # a delivery that stalls before sending
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert deliver(session_factory, clock, port).sent == 1  # another delivery takes it over
    with transaction(session_factory) as s:
        assert not hand_over(s, message_id=1, attempt=slow_claim[1], now=clock.now())  # the stalled one wakes
    assert len(read_maildir(maildir)) == 1


def test_a_chunk_is_handed_over_only_where_this_delivery_still_owns_each_message(
    session_factory, session, clock, catcher, maildir, port
):
    for key in ("a", "b", "c"):
        queue(session_factory, clock, key)
    with transaction(session_factory) as s:
        stalled = claim_due(s, now=clock.now(), limit=10)  # stalls before handing over
    clock.advance(seconds=LEASE.total_seconds() + 1)
    deliver(session_factory, clock, port, limit=0)  # past the lease, never handed over: pending again
    with transaction(session_factory) as s:
        # Another delivery claims all three and has handed over message 2 so far.
        fresh = claim_due(s, now=clock.now(), limit=10)
        assert hand_over_many(s, claims={2: fresh[2]}, now=clock.now()) == {2}
    with transaction(session_factory) as s:
        # The stalled delivery wakes: its claims are stale (an older attempt), so it may send nothing.
        assert hand_over_many(s, claims=stalled, now=clock.now()) == set()
        # The current delivery may hand over the rest, but not message 2 a second time.
        assert hand_over_many(s, claims=fresh, now=clock.now()) == {1, 3}
    assert read_maildir(maildir) == []


def test_a_message_that_cannot_be_sent_does_not_hold_up_the_rest(
    session_factory, session, clock, catcher, maildir, port
):
    queue(session_factory, clock, "good-1")
    queue(session_factory, clock, "poison")
    queue(session_factory, clock, "good-2")
    with transaction(session_factory) as s:
        # As if stored before today's checks: a recipient no mail client will accept.
        s.execute(update(OutboundMessage).where(OutboundMessage.idempotency_key == "poison").values(recipient=""))
    report = deliver(session_factory, clock, port)
    assert (report.sent, report.failed, report.retrying) == (2, 1, 0)
    assert message(session, "poison").status == OutboundStatus.failed
    clock.advance(hours=1)
    assert deliver(session_factory, clock, port).claimed == 0
    assert sorted(m.subject for m in read_maildir(maildir)) == ["Subject for good-1", "Subject for good-2"]


def test_a_server_refusing_our_sender_is_temporary_not_a_bad_message(session_factory, session, clock, maildir, port):
    queue(session_factory, clock, "needs-login")
    controller = Controller(
        MaildirHandler(maildir), hostname="127.0.0.1", port=port, auth_required=True, auth_require_tls=False
    )
    controller.start()
    try:
        report = deliver(session_factory, clock, port)
    finally:
        controller.stop()
    assert (report.failed, report.retrying) == (0, 1)
    row = message(session, "needs-login")
    assert row.status == OutboundStatus.pending and "530" in row.last_error


def test_enqueue_refuses_a_recipient_that_is_not_an_address(session_factory, clock):
    from caseconf.errors import Invalid

    for bad in ("", "no-at-sign", "a\x01b@example.org"):
        with pytest.raises(Invalid):
            queue(session_factory, clock, f"bad:{bad!r}", recipient=bad)


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
