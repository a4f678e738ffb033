"""Rehearse the schedule: move a simulated clock through the weeks, running each scheduled flow at the
times its cron schedule fires (worked out by the Prefect scheduler's own code), with invitees who answer
their invitations by email.

The flows are the production flows, called with `now` set to the simulated time. A firing at which a
sweep has nothing due is skipped, because that run would do nothing; the every-minute outbox and inbox
sweeps run at the first minute at which they have something to do.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from icalendar import Calendar, Event, vCalAddress
from prefect.server.schemas.schedules import CronSchedule
from sqlalchemy import func, select

from agencies.models import Agency, Person
from caseconf.clock import LONDON, london, write_rehearsal_time
from caseconf.db import transaction
from flows import clinic
from flows.context import run_context
from flows.delivery import deliver_outbox
from flows.deployments import SCHEDULED, TIMEZONE
from flows.mailbox import read_inbox
from meetings.models import (
    AgendaItem,
    AgendaItemStatus,
    Meeting,
    MeetingSeries,
    MeetingStatus,
    MeetingStatusChange,
    SeriesMember,
)
from meetings.working_days import is_working_day
from notifications.inbox import store_inbound
from notifications.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus

MINUTE = timedelta(minutes=1)
REPLY_HOURS = (10, 15)
REPLY_SLOTS_AHEAD = 4
EVERY_MINUTE = "* * * * *"
MEETING_STARTS = "meeting starts"


def firing_times(cron: str, start: datetime, end: datetime) -> list[datetime]:
    """When a Europe/London cron schedule fires in [start, end), in UTC, as Prefect's scheduler reckons it."""
    schedule = CronSchedule(cron=cron, timezone=TIMEZONE)
    times: list[datetime] = []
    day = start
    while day < end:  # a day at a time: the scheduler looks at most 1,000 dates ahead per call
        upto = min(day + timedelta(days=1), end)
        for moment in schedule._get_dates_generator(start=day, end=upto):
            as_utc = datetime.fromtimestamp(moment.timestamp(), UTC)
            if day <= as_utc < upto:
                times.append(as_utc)
        day = upto
    return sorted(set(times))


@dataclass(frozen=True)
class Invitee:
    """How a simulated invitee answers: by a stable hash of who they are and which meeting."""

    email: str
    uid: str
    sequence: int

    def choice(self) -> int:
        return int(hashlib.sha256(f"{self.email}|{self.uid}".encode()).hexdigest(), 16) % 100

    def partstat(self, on_leave: bool) -> str | None:
        if on_leave:
            return "DECLINED"
        n = self.choice()
        if n < 68:
            return "ACCEPTED"
        if n < 78:
            return "TENTATIVE"
        if n < 90:
            return "DECLINED"
        return None  # never answers

    def reply_at(self, sent_at: datetime) -> datetime:
        return reply_slot(sent_at, self.choice())


def reply_slot(sent_at: datetime, choice: int) -> datetime:
    """People deal with their email at 10:00 or 15:00 on a working day, within the next two days."""
    slots = []
    day = london(sent_at).date()
    while len(slots) < REPLY_SLOTS_AHEAD:
        if is_working_day(day):
            for hour in REPLY_HOURS:
                moment = datetime.combine(day, time(hour), tzinfo=LONDON).astimezone(UTC)
                if moment > sent_at and len(slots) < REPLY_SLOTS_AHEAD:
                    slots.append(moment)
        day += timedelta(days=1)
    return slots[choice % REPLY_SLOTS_AHEAD]


# The emails about an action its owner may answer, and how each kind of simulated owner answers them:
# (kind of owner, email kind) -> the reply's first line. Anything not listed goes unanswered.
ACTION_EMAILS = ("action_assigned", "action_reminder", "action_chase")
OWNER_REPLIES = {
    ("prompt", "action_reminder"): "Done",
    ("prompt", "action_chase"): "Done",
    ("progress", "action_assigned"): "update: first appointment booked for next week",
    ("progress", "action_chase"): "done",
    ("stuck", "action_chase"): "cannot do: the family have not agreed to the referral yet",
}


@dataclass(frozen=True)
class ActionOwner:
    """How a simulated action owner deals with the emails about one action, by a stable hash."""

    email: str
    thread: str  # the action's thread, so each owner behaves the same way about the same action

    def kind(self) -> str:
        n = int(hashlib.sha256(f"{self.email}|{self.thread}".encode()).hexdigest(), 16) % 100
        return "prompt" if n < 35 else "progress" if n < 60 else "stuck" if n < 75 else "silent"

    def reply_to(self, email_kind: str) -> str | None:
        return OWNER_REPLIES.get((self.kind(), email_kind))


def action_reply_email(
    sender: str, to: str, subject: str, message_id: str, thread: str | None, first_line: str
) -> bytes:
    """A plain reply as a mail client writes it: the answer on top, the original quoted below."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[1])
    message["In-Reply-To"] = message_id
    message["References"] = " ".join(part for part in (thread, message_id) if part)
    message.set_content(f"{first_line}\n\nOn the date below, the clinic team wrote:\n> (the original email)\n")
    return message.as_bytes()


def reply_email(invitee: Invitee, partstat: str, app_mailbox: str, now: datetime) -> bytes:
    """An iTIP REPLY as a calendar client sends it."""
    calendar = Calendar()
    calendar.add("prodid", "-//Simulated invitee//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REPLY")
    event = Event()
    event.add("uid", invitee.uid)
    event.add("sequence", invitee.sequence)
    event.add("dtstamp", now)
    attendee = vCalAddress(f"mailto:{invitee.email}")
    attendee.params["PARTSTAT"] = partstat
    event.add("attendee", attendee, encode=0)
    event.add("organizer", vCalAddress(f"mailto:{app_mailbox}"), encode=0)
    calendar.add_component(event)
    message = EmailMessage()
    message["From"] = invitee.email
    message["To"] = app_mailbox
    message["Subject"] = f"{partstat.title()}: clinic invitation"
    message["Message-ID"] = make_msgid(domain=invitee.email.rsplit("@", 1)[1])
    message.set_content(f"{partstat.title()}.")
    message.add_alternative(calendar.to_ical().decode(), subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes()


@dataclass
class Simulation:
    start: datetime
    end: datetime
    on_leave: Callable[[str, str], bool]  # (email, meeting uid) -> declines everything
    print_line: Callable[[str], None] = print
    replies: list[tuple[datetime, int, Invitee]] = field(default_factory=list)
    action_replies: list[tuple[datetime, int, bytes, str]] = field(default_factory=list)  # (when, id, raw, what)
    answered: set[int] = field(default_factory=set)  # outbound message ids already answered
    day: date | None = None
    totals: Counter = field(default_factory=Counter)
    clock: datetime | None = None  # the simulated time reached so far; it never goes back
    # Called as each meeting with an agenda starts (meeting id, series name, start): a person minutes it.
    at_meeting_start: Callable[[int, str, datetime], None] | None = None
    clock_file: Path | None = None  # where the web app's RehearsalClock reads the time reached

    def __post_init__(self) -> None:
        self.advance(self.start)

    def advance(self, moment: datetime) -> None:
        self.clock = max(moment, self.clock or moment)
        if self.clock_file is not None:
            write_rehearsal_time(self.clock_file, self.clock)

    def log(self, moment: datetime, what: str) -> None:
        local = london(moment)
        if local.date() != self.day:
            self.day = local.date()
            self.print_line(f"\n{local:%A %-d %B %Y}")
        self.print_line(f"  {local:%H:%M}  {what}")

    # The schedule ---------------------------------------------------------------------------------------

    def sweep_firings(self) -> Iterator[tuple[datetime, int, object, str]]:
        events = []
        for order, entry in enumerate(SCHEDULED):
            if entry.cron == EVERY_MINUTE:
                continue
            events += [
                (moment, order, entry.flow, entry.name) for moment in firing_times(entry.cron, self.start, self.end)
            ]
        if self.at_meeting_start is not None:
            events += [(moment, -1, None, MEETING_STARTS) for moment in self.meeting_starts()]
        events.sort(key=lambda e: (e[0], e[1]))
        yield from events

    def meeting_starts(self) -> list[datetime]:
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            return sorted(
                set(
                    session.scalars(
                        select(Meeting.starts_at).where(
                            Meeting.starts_at >= self.start,
                            Meeting.starts_at < self.end,
                            Meeting.status != MeetingStatus.cancelled,
                        )
                    )
                )
            )

    def hand_over_meetings(self, moment: datetime) -> None:
        """Each meeting starting now with something on its agenda is handed to a person to run."""
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            starting = session.execute(
                select(Meeting.id, MeetingSeries.name)
                .join(MeetingSeries, MeetingSeries.id == Meeting.series_id)
                .where(
                    Meeting.starts_at == moment,
                    Meeting.status.in_((MeetingStatus.agenda_frozen, MeetingStatus.papers_sent)),
                    select(AgendaItem.id)
                    .where(AgendaItem.meeting_id == Meeting.id, AgendaItem.status == AgendaItemStatus.listed)
                    .exists(),
                )
                .order_by(Meeting.id)
            ).all()
        for meeting_id, name in starting:
            self.log(moment, f"{name} starts: handed to its chair and minute-taker")
            self.at_meeting_start(meeting_id, name, moment)
            self.totals["meetings run"] += 1
            with run_context() as ctx, transaction(ctx.session_factory) as session:
                ended_at = session.scalar(select(Meeting.ended_at).where(Meeting.id == meeting_id))
            if ended_at is not None and ended_at > self.clock:
                # The rehearsal goes on from when the meeting ended; sweeps due meanwhile run then.
                self.log(ended_at, f"{name} ended")
                self.advance(ended_at)

    def run(self) -> Counter:
        for moment, _, flow, name in self.sweep_firings():
            if moment < self.clock:
                continue  # passed while a person ran a meeting; the next firing does its work
            self.mail_until(moment)
            self.advance(moment)
            if name == MEETING_STARTS:
                self.hand_over_meetings(moment)
                continue
            if name in clinic.SWEEPS:
                if not clinic.due_now(name, moment):
                    continue
                result = flow(now=moment)
                self.log(moment, f"{name}: {self.describe_sweep(result)}")
            else:
                result = flow(now=moment)
                self.log(moment, f"{name}: {self.describe_other(result)}")
            self.totals[name] += 1
        self.mail_until(self.end)
        return self.totals

    @staticmethod
    def describe_other(result) -> str:
        if isinstance(result, dict) and "dry_run" in result:  # the retention schedule
            done = result["apply"]["done"] if result["apply"] else "none (report only)"
            return f"{result['dry_run']['due']} records due, {done} redacted or deleted"
        return f"{result} emails"

    def describe_sweep(self, result: dict) -> str:
        record = result.get("record", "meeting")
        outcomes = result[f"{record}s"]
        if record != "meeting":  # actions and waits: how many of each step
            steps = Counter(str(outcome) for outcome in outcomes.values() if outcome)
            return ", ".join(f"{what} ({n} {record}{'' if n == 1 else 's'})" for what, n in sorted(steps.items()))
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            query = select(Meeting.id, Meeting.meeting_date).where(Meeting.id.in_(outcomes))
            days = dict(session.execute(query).tuples().all())
        parts = [
            f"{days[meeting_id]:%a %-d %b} meeting ({describe(outcome) or 'done'})"
            for meeting_id, outcome in outcomes.items()
        ]
        return "; ".join(parts)

    # Mail: delivery, invitees' replies and the app mailbox, minute by minute as they fall due ------------

    def mail_until(self, limit: datetime) -> None:
        while True:
            moment = self.next_mail_moment(limit)
            if moment is None:
                return
            self.advance(moment)
            self.deliver(moment)
            self.send_replies(moment)
            self.read_mailbox(moment)

    def next_mail_moment(self, limit: datetime) -> datetime | None:
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            next_send = session.scalar(
                select(func.min(OutboundMessage.next_attempt_at)).where(
                    OutboundMessage.status == OutboundStatus.pending
                )
            )
            waiting = session.scalar(
                select(func.count()).select_from(InboundMessage).where(InboundMessage.status == InboundStatus.received)
            )
        candidates = [next_send] if next_send else []
        if self.replies:
            candidates.append(self.replies[0][0])
        if self.action_replies:
            candidates.append(self.action_replies[0][0])
        if waiting:
            candidates.append(self.clock)  # mail waiting in the inbox: read it now
        if not candidates:
            return None
        # Every-minute sweeps fire on the minute after the work appears.
        moment = max(_next_minute(min(candidates)), self.clock)
        return moment if moment < limit else None

    def deliver(self, moment: datetime) -> None:
        report = deliver_outbox(now=moment)
        if report["claimed"]:
            self.totals["emails sent"] += report["sent"]
            self.log(moment, f"deliver-outbox: {report['sent']} sent, {report['retrying']} to retry")
        self.plan_replies(moment)
        self.plan_action_replies(moment)

    def plan_action_replies(self, moment: datetime) -> None:
        """Owners answer some emails about their actions by replying to them, as people do."""
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            sent = session.execute(
                select(
                    OutboundMessage.id,
                    OutboundMessage.kind,
                    OutboundMessage.recipient,
                    OutboundMessage.reply_to,
                    OutboundMessage.subject,
                    OutboundMessage.message_id,
                    OutboundMessage.in_reply_to,
                    OutboundMessage.sent_at,
                ).where(OutboundMessage.status == OutboundStatus.sent, OutboundMessage.kind.in_(ACTION_EMAILS))
            ).all()
            app_mailbox = ctx.settings.mail_from
        for message_id, kind, recipient, reply_to, subject, mid, thread, sent_at in sent:
            if message_id in self.answered:
                continue
            self.answered.add(message_id)
            owner = ActionOwner(recipient.lower(), thread or "")
            first_line = owner.reply_to(kind)
            if first_line is None:
                continue
            raw = action_reply_email(recipient, reply_to or app_mailbox, subject, mid, thread, first_line)
            when = reply_slot(max(sent_at or moment, moment), message_id)
            heapq.heappush(self.action_replies, (when, message_id, raw, first_line.split(":")[0].lower()))

    def plan_replies(self, moment: datetime) -> None:
        """Each invitee answers each invitation they were sent, some hours later (or never)."""
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            sent = session.execute(
                select(
                    OutboundMessage.id, OutboundMessage.recipient, OutboundMessage.ics, OutboundMessage.sent_at
                ).where(OutboundMessage.status == OutboundStatus.sent, OutboundMessage.ics_method == "REQUEST")
            ).all()
        for message_id, recipient, ics, sent_at in sent:
            if message_id in self.answered or not ics:
                continue
            self.answered.add(message_id)
            event = Calendar.from_ical(ics).walk("VEVENT")[0]
            invitee = Invitee(recipient, str(event["UID"]), int(event.get("SEQUENCE", 0)))
            if invitee.partstat(self.on_leave(recipient, invitee.uid)) is not None:
                heapq.heappush(self.replies, (invitee.reply_at(max(sent_at or moment, moment)), message_id, invitee))

    def send_replies(self, moment: datetime) -> None:
        self.send_action_replies(moment)
        due = []
        while self.replies and self.replies[0][0] <= moment:
            due.append(heapq.heappop(self.replies)[2])
        if not due:
            return
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            answers = Counter()
            for invitee in due:
                partstat = invitee.partstat(self.on_leave(invitee.email, invitee.uid))
                # Handed to the app mailbox exactly as its SMTP listener hands over what it receives.
                store_inbound(session, raw=reply_email(invitee, partstat, ctx.settings.mail_from, moment), now=moment)
                answers[partstat.lower()] += 1
        self.totals["replies"] += len(due)
        self.log(moment, "invitees replied: " + ", ".join(f"{n} {what}" for what, n in sorted(answers.items())))

    def send_action_replies(self, moment: datetime) -> None:
        due = []
        while self.action_replies and self.action_replies[0][0] <= moment:
            due.append(heapq.heappop(self.action_replies))
        if not due:
            return
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            for _, _, raw, _ in due:
                store_inbound(session, raw=raw, now=moment)
        answers = Counter(what for _, _, _, what in due)
        self.totals["action replies"] += len(due)
        self.log(moment, "action owners replied: " + ", ".join(f'{n} "{what}"' for what, n in sorted(answers.items())))

    def read_mailbox(self, moment: datetime) -> None:
        with run_context() as ctx, transaction(ctx.session_factory) as session:
            waiting = session.scalar(
                select(func.count()).select_from(InboundMessage).where(InboundMessage.status == InboundStatus.received)
            )
        if waiting:
            report = read_inbox(now=moment)
            self.log(moment, f"read-inbox: {describe(report)}")


def _next_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + MINUTE


def describe(result: object) -> str:
    if isinstance(result, dict):
        return ", ".join(f"{key} {value}" for key, value in result.items() if value not in (None, 0, "", [], {}))
    return str(result if result is not None else "")


def simulate(
    start_day: date,
    weeks: int,
    *,
    print_line: Callable[[str], None] = print,
    absent: tuple[str, ...] | None = None,
    at_meeting_start: Callable[[int, str, datetime], None] | None = None,
    clock_file: Path | None = None,
) -> Counter:
    """Run `weeks` of the schedule from the start of `start_day` (London). `absent` names invitees (by email)
    who decline every meeting in the second week; by default, the members of each series' required agencies,
    so the rehearsal shows the quorum check at work."""
    start = datetime.combine(start_day, time(0, 0), tzinfo=LONDON).astimezone(UTC)
    end = start + timedelta(weeks=weeks)
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        second_week = set(
            session.scalars(
                select(Meeting.calendar_uid).where(
                    Meeting.starts_at >= start + timedelta(weeks=1), Meeting.starts_at < start + timedelta(weeks=2)
                )
            )
        )
        away = {email.lower() for email in (absent if absent is not None else required_members(session))}
    if away and weeks > 1:
        print_line(f"Scenario: {', '.join(sorted(away))} cannot come to any meeting in the second week.")

    def on_leave(email: str, uid: str) -> bool:
        return email.lower() in away and uid in second_week

    simulation = Simulation(
        start=start,
        end=end,
        on_leave=on_leave,
        print_line=print_line,
        at_meeting_start=at_meeting_start,
        clock_file=clock_file,
    )
    try:
        totals = simulation.run()
    finally:
        if clock_file is not None:
            write_rehearsal_time(clock_file, None)
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        changes = Counter(
            session.scalars(
                select(MeetingStatusChange.to_status).where(
                    MeetingStatusChange.changed_at >= start, MeetingStatusChange.changed_at < end
                )
            )
        )
    totals.update({f"meetings {status.replace('_', ' ')}": n for status, n in changes.items()})
    return totals


def required_members(session) -> list[str]:
    """The named members of the agencies that active series need for a quorum."""
    rows = session.execute(
        select(MeetingSeries.quorum_required_agencies, Agency.code, Person.email)
        .join(SeriesMember, SeriesMember.series_id == MeetingSeries.id)
        .join(Agency, Agency.id == SeriesMember.agency_id)
        .join(Person, Person.id == SeriesMember.person_id)
        .where(MeetingSeries.active.is_(True))
    ).all()
    return sorted({email for required, code, email in rows if code in (required or [])})
