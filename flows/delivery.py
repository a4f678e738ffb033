"""Deliver the outbox: send what is due, retrying temporary failures with backoff."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from caseconf.clock import FixedClock, SystemClock
from flows.context import run_context
from notifications.delivery import DeliveryReport, deliver_pending

# A burst (a clinic's invitations and papers) is sent in one run rather than one run a minute per pass;
# the budget stays under the one-minute schedule, so the next scheduled run is not kept waiting long.
RUN_BUDGET_SECONDS = 50


@task(retries=3, retry_delay_seconds=[5, 20, 60], cache_policy=NO_CACHE)
def deliver_batch(now: datetime | None, limit: int) -> dict:
    clock = FixedClock(now) if now else SystemClock()
    total = DeliveryReport()
    started = time.monotonic()
    with run_context() as ctx:
        while time.monotonic() - started < RUN_BUDGET_SECONDS:
            report = deliver_pending(ctx.session_factory, ctx.settings, now=clock.now, limit=limit)
            total.claimed += report.claimed
            total.sent += report.sent
            total.failed += report.failed
            total.retrying += report.retrying
            total.errors += report.errors
            if report.claimed < limit:
                break  # nothing more is due now
    return asdict(total)


@flow(name="deliver-outbox", log_prints=True)
def deliver_outbox(now: datetime | None = None, limit: int = 200) -> dict:
    """Send what is due, `limit` messages a pass, until nothing is due or the run's time budget is spent.
    `now` is for simulations and tests; scheduled runs use the real time."""
    report = deliver_batch(now, limit)
    if report["claimed"]:
        print(f"outbox: {report['sent']} sent, {report['retrying']} to retry, {report['failed']} failed")
    return report
