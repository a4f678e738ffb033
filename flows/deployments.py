"""The schedules, in Europe/London wall-clock time, and serving them. `caseconf simulate` reads the same
table, so a rehearsal fires exactly what production would."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import serve
from prefect.schedules import Cron

from flows import clinic
from flows.delivery import deliver_outbox
from flows.mailbox import read_inbox, weekly_digest
from flows.retention import apply_retention
from flows.triggers import DELIVER_OUTBOX

TIMEZONE = "Europe/London"


@dataclass(frozen=True)
class Scheduled:
    flow: object
    name: str
    cron: str
    description: str
    concurrency_limit: int | None = 1  # one run at a time; a run started meanwhile waits its turn


SCHEDULED = (
    Scheduled(
        clinic.freeze_agendas,
        "freeze-agendas",
        "*/15 * * * *",
        "Close each agenda at its referral cut-off; items over capacity move to the next clinic.",
    ),
    Scheduled(
        clinic.circulate_papers,
        "circulate-papers",
        "*/15 * * * *",
        "Build and send the papers when due, and again after an agenda change.",
    ),
    Scheduled(
        clinic.send_invitations,
        "send-invitations",
        "*/15 * * * *",
        "Calendar invitations, updates and cancellations for the coming weeks' meetings.",
    ),
    Scheduled(
        clinic.check_quorum,
        "check-quorum",
        "*/15 * * * *",
        "The working day before a meeting: alert the chair when the replies do not make a quorum.",
    ),
    Scheduled(
        clinic.after_meetings,
        "after-meetings",
        "*/15 * * * *",
        "Once a meeting has ended: each school told its outcome, and waits on outside agencies opened.",
    ),
    Scheduled(
        clinic.follow_up_actions,
        "follow-up-actions",
        "*/15 8-17 * * 1-5",
        "New actions to their owners; reminders, chases and escalation (working days, 08:00 to 18:00).",
    ),
    Scheduled(
        clinic.chase_blockages,
        "chase-blockages",
        "0 9 * * 1-5",
        "09:00 on weekdays: referrals waiting too long on an outside agency are chased, the school told.",
    ),
    Scheduled(
        clinic.flag_overdue_minutes,
        "flag-overdue-minutes",
        "30 8 * * 1-5",
        "08:30 on weekdays: outcomes, minutes and corrections past due are flagged to the chair.",
    ),
    Scheduled(
        clinic.finalise_minutes,
        "finalise-minutes",
        "0 8 * * *",
        "08:00: minutes whose corrections window has closed become final.",
    ),
    Scheduled(
        deliver_outbox,
        DELIVER_OUTBOX.split("/")[1],
        "* * * * *",
        "Send queued email; temporary failures are retried with backoff.",
    ),
    Scheduled(
        read_inbox,
        "read-inbox",
        "* * * * *",
        "RSVPs and status requests from the app mailbox; anything else is kept for a person.",
    ),
    Scheduled(
        weekly_digest,
        "weekly-digest",
        "0 7 * * 1",
        "Monday 07:00: each school's open referrals and what each is waiting for.",
        concurrency_limit=None,
    ),
    Scheduled(
        apply_retention,
        "retention",
        "30 2 * * *",
        "02:30: the retention schedule's dry-run report, then what it lists redacted or deleted (unless report-only).",
    ),
)


def deployments() -> list:
    return [
        entry.flow.to_deployment(
            name=entry.name,
            schedules=[Cron(entry.cron, timezone=TIMEZONE)],
            concurrency_limit=entry.concurrency_limit,
            description=entry.description,
        )
        for entry in SCHEDULED
    ]


def serve_all() -> None:
    serve(*deployments(), print_starting_message=False)
