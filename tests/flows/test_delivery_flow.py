"""The outbox delivery flow, run for real under Prefect, and its schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from caseconf.db import transaction
from notifications.catcher import read_maildir, start_catcher
from notifications.models import OutboundMessage, OutboundStatus
from notifications.outbox import enqueue

pytestmark = pytest.mark.flows


def queue(session_factory, key: str, now: datetime) -> None:
    with transaction(session_factory) as session:
        enqueue(
            session,
            now=now,
            idempotency_key=key,
            kind="test",
            recipient="camhs.rep@kestrelford.example.org",
            subject=f"Papers ready ({key})",
            body_text="Papers are ready on the portal.",
            mail_domain="kestrelford.example.org",
        )


def test_flow_delivers_through_the_catcher_and_a_rerun_sends_nothing(flow_env, session_factory, session):
    from flows.delivery import deliver_outbox

    now = datetime(2026, 3, 26, 9, 0, tzinfo=UTC)
    queue(session_factory, "papers:1", now)
    queue(session_factory, "papers:2", now)
    catcher = start_catcher(flow_env.maildir, "127.0.0.1", flow_env.catcher_port)
    try:
        first = deliver_outbox(now=now)
        second = deliver_outbox(now=now)
    finally:
        catcher.stop()
    assert (first["claimed"], first["sent"]) == (2, 2)
    assert second["claimed"] == 0
    assert sorted(m.subject for m in read_maildir(flow_env.maildir)) == [
        "Papers ready (papers:1)",
        "Papers ready (papers:2)",
    ]
    statuses = session.scalars(select(OutboundMessage.status)).all()
    assert statuses == [OutboundStatus.sent, OutboundStatus.sent]


def test_one_run_sends_a_whole_burst_in_passes_of_its_limit(flow_env, session_factory, session):
    from flows.delivery import deliver_outbox

    now = datetime(2026, 3, 26, 9, 0, tzinfo=UTC)
    for n in range(7):
        queue(session_factory, f"papers:{n}", now)
    catcher = start_catcher(flow_env.maildir, "127.0.0.1", flow_env.catcher_port)
    try:
        report = deliver_outbox(now=now, limit=3)  # passes of 3, 3 and 1
    finally:
        catcher.stop()
    assert (report["claimed"], report["sent"]) == (7, 7)
    assert len(read_maildir(flow_env.maildir)) == 7
    assert set(session.scalars(select(OutboundMessage.status))) == {OutboundStatus.sent}


def test_flow_leaves_messages_queued_when_the_server_is_down(flow_env, session_factory, session):
    from flows.delivery import deliver_outbox

    now = datetime(2026, 3, 26, 9, 0, tzinfo=UTC)
    queue(session_factory, "papers:3", now)
    report = deliver_outbox(now=now)  # nothing listens on the catcher port
    assert (report["sent"], report["retrying"]) == (0, 1)
    message = session.scalars(select(OutboundMessage)).one()
    assert message.status == OutboundStatus.pending and message.last_error


def test_deployments_run_on_london_time():
    from flows.deployments import deployments

    by_name = {d.name: d for d in deployments()}
    crons = {name: (d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone) for name, d in by_name.items()}
    every_quarter = ("*/15 * * * *", "Europe/London")
    assert crons == {
        "freeze-agendas": every_quarter,
        "circulate-papers": every_quarter,
        "send-invitations": every_quarter,
        "check-quorum": every_quarter,
        "after-meetings": every_quarter,
        "follow-up-actions": ("*/15 8-17 * * 1-5", "Europe/London"),  # working hours on weekdays
        "chase-blockages": ("0 9 * * 1-5", "Europe/London"),
        "flag-overdue-minutes": ("30 8 * * 1-5", "Europe/London"),
        "finalise-minutes": ("0 8 * * *", "Europe/London"),
        "deliver-outbox": ("* * * * *", "Europe/London"),
        "read-inbox": ("* * * * *", "Europe/London"),
        "weekly-digest": ("0 7 * * 1", "Europe/London"),  # Monday morning, UK time, summer or winter
        "retention": ("30 2 * * *", "Europe/London"),  # nightly, when no one is working
    }
    # Sweeps never overlap themselves: a slow run is not joined by the next one.
    assert all(by_name[name].concurrency_limit == 1 for name in crons if name != "weekly-digest")
