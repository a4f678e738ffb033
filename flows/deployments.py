"""The schedules, in Europe/London wall-clock time, and serving them."""

from __future__ import annotations

from prefect import serve
from prefect.schedules import Cron

from flows.delivery import deliver_outbox
from flows.mailbox import read_inbox, weekly_digest
from flows.triggers import DELIVER_OUTBOX

TIMEZONE = "Europe/London"


def deployments() -> list:
    return [
        deliver_outbox.to_deployment(
            name=DELIVER_OUTBOX.split("/")[1],
            schedules=[Cron("* * * * *", timezone=TIMEZONE)],
            concurrency_limit=1,  # one delivery at a time; a run started meanwhile waits its turn
            description="Send queued email; temporary failures are retried with backoff.",
        ),
        read_inbox.to_deployment(
            name="read-inbox",
            schedules=[Cron("* * * * *", timezone=TIMEZONE)],
            concurrency_limit=1,
            description="Answer status requests from schools; keep anything else for a person.",
        ),
        weekly_digest.to_deployment(
            name="weekly-digest",
            schedules=[Cron("0 7 * * 1", timezone=TIMEZONE)],
            description="Monday 07:00: each school's open referrals and what each is waiting for.",
        ),
    ]


def serve_all() -> None:
    serve(*deployments(), print_starting_message=False)
