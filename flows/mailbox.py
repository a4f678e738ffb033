"""Sweeps over the app mailbox and the weekly digest."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from caseconf.clock import FixedClock, SystemClock
from caseconf.db import transaction
from flows.context import run_context
from notifications.digests import queue_weekly_digests
from notifications.emails import MailContext
from notifications.imap import ImapProblem, keep_in_inbox, poll_imap
from notifications.inbox import process_inbox


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def fetch_imap(now: datetime | None) -> int:
    """Bring what waits in the app mailbox's IMAP folder into the inbox, each message in its own commit."""
    clock = FixedClock(now) if now else SystemClock()
    with run_context() as ctx:
        if not ctx.settings.imap_url:
            return 0
        return poll_imap(ctx.settings.imap_url, keep_in_inbox(ctx.session_factory, clock.now))


@task(retries=3, retry_delay_seconds=[5, 20, 60], cache_policy=NO_CACHE)
def answer_inbox(now: datetime | None) -> dict:
    moment = (FixedClock(now) if now else SystemClock()).now()
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        report = process_inbox(
            session, now=moment, mail=MailContext.from_settings(ctx.settings), own_address=ctx.settings.mail_from
        )
    return asdict(report)


@flow(name="read-inbox")
def read_inbox(now: datetime | None = None) -> dict:
    """Apply RSVPs, answer status requests and set aside what needs a person (replies go out through the
    outbox). With CASECONF_IMAP_URL set, the IMAP folder is fetched first; otherwise mail arrives by SMTP."""
    try:
        fetched = fetch_imap(now)
    except ImapProblem as problem:  # what has already arrived is still dealt with; the next run tries again
        get_run_logger().warning("Could not read the IMAP mailbox: %s", problem)
        fetched = 0
    return {"fetched_by_imap": fetched, **answer_inbox(now)}


@task(retries=3, retry_delay_seconds=[5, 20, 60], cache_policy=NO_CACHE)
def queue_digests(now: datetime | None) -> int:
    moment = (FixedClock(now) if now else SystemClock()).now()
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return queue_weekly_digests(session, now=moment, mail=MailContext.from_settings(ctx.settings))


@flow(name="weekly-digest")
def weekly_digest(now: datetime | None = None) -> int:
    """Each school's open referrals; once a week, however often it runs."""
    return queue_digests(now)
