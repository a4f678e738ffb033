"""Sweeps over the app mailbox and the weekly digest."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from caseconf.clock import FixedClock, SystemClock
from caseconf.db import transaction
from flows.context import run_context
from notifications.digests import queue_weekly_digests
from notifications.emails import MailContext
from notifications.inbox import process_inbox


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
    """Answer status requests and set aside what needs a person; replies go out through the outbox."""
    return answer_inbox(now)


@task(retries=3, retry_delay_seconds=[5, 20, 60], cache_policy=NO_CACHE)
def queue_digests(now: datetime | None) -> int:
    moment = (FixedClock(now) if now else SystemClock()).now()
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return queue_weekly_digests(session, now=moment, mail=MailContext.from_settings(ctx.settings))


@flow(name="weekly-digest")
def weekly_digest(now: datetime | None = None) -> int:
    """Each school's open referrals; once a week, however often it runs."""
    return queue_digests(now)
