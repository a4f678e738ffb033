"""Deliver the outbox: send what is due, retrying temporary failures with backoff."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from caseconf.clock import FixedClock, SystemClock
from flows.context import run_context
from notifications.delivery import deliver_pending


@task(retries=3, retry_delay_seconds=[5, 20, 60], cache_policy=NO_CACHE)
def deliver_batch(now: datetime | None, limit: int) -> dict:
    clock = FixedClock(now) if now else SystemClock()
    with run_context() as ctx:
        report = deliver_pending(ctx.session_factory, ctx.settings, now=clock.now, limit=limit)
    return asdict(report)


@flow(name="deliver-outbox", log_prints=True)
def deliver_outbox(now: datetime | None = None, limit: int = 200) -> dict:
    """`now` is for simulations and tests; scheduled runs use the real time."""
    report = deliver_batch(now, limit)
    if report["claimed"]:
        print(f"outbox: {report['sent']} sent, {report['retrying']} to retry, {report['failed']} failed")
    return report
