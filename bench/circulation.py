"""How long a county week's circulation takes: invitations and papers emails queued in the outbox and
delivered by the real delivery code, against the same messages sent by a plain aiosmtplib loop over one
connection, all to an SMTP server on loopback, in the same run.

    .venv/bin/python bench/circulation.py [--series 6 --referrals 40 --reps 10] [--quick]
                                          [--database-url URL] [--batch 200] [--no-flow]

Sizing, as issue 4 puts it: series x referrals x reps messages. Each series meets for case discussions of
two referrals a meeting (referrals / 2 meetings), every meeting has `reps` invitees, and each invitee gets
an invitation (text, HTML and the product's iCalendar REQUEST with its Europe/London VTIMEZONE) and a papers email
(text and HTML with the agenda's references and a portal link). No child's details anywhere.

Delivery is measured twice over the same rows: through the Prefect flow `deliver-outbox` run for real
in-process (ephemeral Prefect; one run sends a burst in passes of the batch size), and through
`deliver_pending` called directly.
Then the plain loop. The server counts every message by Message-ID, so the run also checks that each
message arrived exactly once in each phase and that every outbox row ends `sent`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from zoneinfo import ZoneInfo

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LONDON = ZoneInfo("Europe/London")
MAIL_DOMAIN = "kestrelford.example.org"
BASE_URL = "https://caseconf.kestrelford.example.org"
SENDER_ADDRESS = f"clinic@{MAIL_DOMAIN}"
SENDER_NAME = "Kestrelford Inclusion Team"
AREAS = ["North", "South", "East", "West", "Central", "Riverside", "Moor", "Coast"]
AGENCIES = ["camhs", "police", "mash", "early-help", "safeguarding", "health", "yarm", "send", "attendance", "eip"]
WEEK_THURSDAY = date(2026, 10, 8)  # a term-time week in the demo's autumn term


@dataclass(frozen=True)
class Sizing:
    series: int = 6
    referrals: int = 40
    reps: int = 10

    @property
    def meetings_per_series(self) -> int:
        return max(1, self.referrals // 2)

    @property
    def messages(self) -> int:
        return self.series * self.meetings_per_series * self.reps * 2


QUICK = Sizing(series=1, referrals=10, reps=5)


@dataclass
class PhaseCheck:
    """What the server saw in one phase, against what was queued."""

    expected: int
    arrived: int
    distinct: int
    duplicates: int
    missing: int
    unexpected: int

    @property
    def exactly_once(self) -> bool:
        return self.arrived == self.distinct == self.expected and not (self.missing or self.unexpected)


@dataclass
class Results:
    database: str
    sizing: Sizing
    messages: int
    bytes_total: int = 0
    enqueue_seconds: float = 0.0
    flow_startup_seconds: float | None = None
    flow_seconds: float | None = None
    flow_runs: int = 0
    direct_seconds: float = 0.0
    direct_passes: int = 0
    build_seconds: float = 0.0
    plain_seconds: float = 0.0
    checks: dict[str, PhaseCheck] = field(default_factory=dict)
    rows_not_sent: int = 0

    @property
    def all_correct(self) -> bool:
        return self.rows_not_sent == 0 and all(check.exactly_once for check in self.checks.values())


# --- the messages -------------------------------------------------------------------------------------


def invitation_ics(
    *, meeting: int, title: str, starts: datetime, location: str, link: str, attendee: str, name: str, now: datetime
) -> str:
    """The product's own iTIP REQUEST (notifications.calendar), built from unsaved rows."""
    from agencies.models import Person
    from meetings.models import Invitation, InviteeRole, Meeting, MeetingSeries
    from notifications.calendar import build_request

    occasion = Meeting(
        calendar_uid=f"meeting-{meeting}@{MAIL_DOMAIN}",
        sequence=0,
        meeting_date=starts.date(),
        starts_at=starts.astimezone(UTC),
        ends_at=(starts + timedelta(hours=2)).astimezone(UTC),
        location=location,
        series=MeetingSeries(name=title),
    )
    invitation = Invitation(person=Person(email=attendee, name=name), role=InviteeRole.member)
    return build_request(
        occasion, invitation, organizer_email=SENDER_ADDRESS, organizer_name=SENDER_NAME, portal_url=link, now=now
    )


def html_page(*paragraphs: str) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Case conferences</title></head>\n'
        '<body style="font-family: Arial, sans-serif; font-size: 19px; line-height: 1.4; color: #0b0c0c;'
        ' margin: 0; padding: 16px;">\n<p style="font-weight: bold; border-bottom: 8px solid #1d70b8;'
        f' padding-bottom: 8px;">Case conferences</p>\n{body}\n'
        f'<p style="color: #505a5f; font-size: 16px;">{SENDER_NAME}</p>\n</body>\n</html>\n'
    )


def queue_week(factory, sizing: Sizing, *, now: datetime) -> int:
    """Queue every invitation and papers email of the week, a transaction per meeting as a sweep would."""
    from caseconf.db import transaction
    from notifications.outbox import enqueue

    queued = 0
    meeting = 0
    for series in range(sizing.series):
        area = AREAS[series % len(AREAS)]
        title = f"{area} Vulnerable Pupil Hot Clinic"
        location = f"{area} Family Hub, meeting room 2 (or Teams: link on the portal)"
        for slot in range(sizing.meetings_per_series):
            meeting += 1
            starts = datetime.combine(WEEK_THURSDAY, datetime.min.time(), LONDON).replace(hour=9) + timedelta(
                minutes=30 * (slot % 16)
            )
            when = starts.strftime("%A %-d %B %Y at %-I:%M%p")
            link = f"{BASE_URL}/meetings/{meeting}"
            references = [f"KES-2026-{(meeting * 2 + n):05d}" for n in range(2)]
            with transaction(factory) as session:
                for rep in range(sizing.reps):
                    person = series * sizing.reps + rep + 1
                    agency = AGENCIES[rep % len(AGENCIES)]
                    recipient = f"rep{person}@{agency}.example.org"
                    name = f"{agency.upper()} representative {person}"
                    enqueue(
                        session,
                        now=now,
                        mail_domain=MAIL_DOMAIN,
                        idempotency_key=f"invite:{meeting}:{person}:0",
                        kind="invitation",
                        recipient=recipient,
                        subject=f"Invitation: {title}, {when}",
                        body_text=(
                            f"You are invited to the {title} on {when}.\n\nWhere: {location}\n\n"
                            f"Accept or decline in your calendar, or on the portal: {link}\n\n"
                            "If you cannot come, please send a deputy from your agency and say who on the portal.\n\n"
                            f"{SENDER_NAME}\n"
                        ),
                        body_html=html_page(
                            f"You are invited to the <strong>{title}</strong> on <strong>{when}</strong>.",
                            f"Where: {location}",
                            f'<a href="{link}">Accept or decline on the portal</a>, or answer in your calendar.',
                            "If you cannot come, please send a deputy from your agency and say who on the portal.",
                        ),
                        ics=invitation_ics(
                            meeting=meeting,
                            title=title,
                            starts=starts,
                            location=location,
                            link=link,
                            attendee=recipient,
                            name=name,
                            now=now,
                        ),
                        ics_method="REQUEST",
                    )
                    items = "\n".join(f"  {n + 1}. Referral {ref}" for n, ref in enumerate(references))
                    enqueue(
                        session,
                        now=now,
                        mail_domain=MAIL_DOMAIN,
                        idempotency_key=f"papers:{meeting}:1:{person}",
                        kind="papers",
                        recipient=recipient,
                        subject=f"Papers ready: {title}, {when}",
                        body_text=(
                            f"The papers for the {title} on {when} are ready.\n\nAgenda:\n{items}\n\n"
                            f"Read the papers and add your agency's information: {link}/papers\n\n"
                            "To protect the children, this email does not include their names or any details. "
                            "Sign in to see them.\n\n"
                            f"{SENDER_NAME}\n"
                        ),
                        body_html=html_page(
                            f"The papers for the <strong>{title}</strong> on <strong>{when}</strong> are ready.",
                            "Agenda:</p><ol>" + "".join(f"<li>Referral {ref}</li>" for ref in references) + "</ol><p>",
                            f'<a href="{link}/papers">Read the papers and add your agency\'s information</a>',
                            "To protect the children, this email does not include their names or any details. "
                            "Sign in to see them.",
                        ),
                    )
                    queued += 2
    return queued


# --- the server ---------------------------------------------------------------------------------------


class CountingHandler:
    """Counts what arrives by Message-ID (headers only, so the server does as little as it can)."""

    def __init__(self):
        self.seen: Counter[str] = Counter()
        self.bytes = 0
        self._parser = BytesHeaderParser()

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        self.bytes += len(raw)
        self.seen[str(self._parser.parsebytes(raw).get("Message-ID", "")).strip()] += 1
        return "250 Message accepted for delivery"

    def take(self) -> tuple[Counter[str], int]:
        seen, size = self.seen, self.bytes
        self.seen, self.bytes = Counter(), 0
        return seen, size


def _serve(port: int, commands) -> None:
    """The server process: counts what arrives and hands the counts over on request."""
    from aiosmtpd.controller import Controller

    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    commands.send("ready")
    try:
        while commands.recv() == "take":
            commands.send(handler.take())
    finally:
        controller.stop()


class CountingServer:
    """An aiosmtpd server on loopback in a process of its own, as a real mail server would be, so it
    does not compete with the code being measured for this process's interpreter lock."""

    def __init__(self):
        self.port = free_port()
        self._commands, theirs = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(target=_serve, args=(self.port, theirs))

    def __enter__(self) -> CountingServer:
        self._process.start()
        if not self._commands.poll(60) or self._commands.recv() != "ready":
            raise RuntimeError("the SMTP server process did not start")
        return self

    def take(self) -> tuple[Counter[str], int]:
        """What arrived since the last take: counts by Message-ID, and bytes."""
        self._commands.send("take")
        return self._commands.recv()

    def __exit__(self, *exc_info) -> None:
        self._commands.send("stop")
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()


def check_phase(seen: Counter[str], expected: set[str]) -> PhaseCheck:
    return PhaseCheck(
        expected=len(expected),
        arrived=sum(seen.values()),
        distinct=len(seen),
        duplicates=sum(n - 1 for n in seen.values() if n > 1),
        missing=len(expected - seen.keys()),
        unexpected=len(seen.keys() - expected),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def scoped_env(**values: str) -> Iterator[None]:
    """Set environment variables for this block only (the delivery code reads its settings from them)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- the phases ---------------------------------------------------------------------------------------


def back_to_pending(factory, *, now: datetime) -> None:
    """Make every row due again, so a second delivery path sends the very same rows."""
    from sqlalchemy import update

    from caseconf.db import transaction
    from notifications.models import OutboundMessage, OutboundStatus

    with transaction(factory) as session:
        session.execute(
            update(OutboundMessage).values(
                status=OutboundStatus.pending,
                attempts=0,
                next_attempt_at=now,
                claimed_at=None,
                handed_over_at=None,
                sent_at=None,
            )
        )


def rows_not_sent(factory) -> int:
    from sqlalchemy import func, select

    from caseconf.db import transaction
    from notifications.models import OutboundMessage, OutboundStatus

    with transaction(factory) as session:
        return session.scalar(
            select(func.count()).select_from(OutboundMessage).where(OutboundMessage.status != OutboundStatus.sent)
        )


async def plain_loop(port: int, rows, sender) -> tuple[float, float]:
    """The same messages, built and sent over one connection; returns (build seconds, build+send seconds)."""
    import aiosmtplib

    from notifications.delivery import build_email

    started = time.perf_counter()
    for row in rows:
        build_email(row, sender)
    build = time.perf_counter() - started
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        started = time.perf_counter()
        for row in rows:
            await client.send_message(build_email(row, sender))
        return build, time.perf_counter() - started


def bench_env(*, port: int, database_url: str, work: Path) -> dict[str, str]:
    """What the delivery code reads from the environment (set for this run only)."""
    return {
        "CASECONF_DATA_DIR": str(work / "data"),
        "CASECONF_DATABASE_URL": database_url,
        "CASECONF_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "CASECONF_MAIL_FROM": SENDER_ADDRESS,
        "CASECONF_MAIL_FROM_NAME": SENDER_NAME,
        "CASECONF_BASE_URL": BASE_URL,
        "CASECONF_SECRET_KEY": secrets.token_urlsafe(48),  # an https base URL needs one
    }


def run(sizing: Sizing, *, database_url: str, work: Path, use_flow: bool = True, batch: int = 200) -> Results:
    """Queue the week, deliver it (flow, then direct), send it plainly, and check every phase."""
    from caseconf.db import make_engine, make_session_factory
    from caseconf.migrate import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    results = Results(database=database_url.split(":")[0], sizing=sizing, messages=sizing.messages)
    try:
        with (
            CountingServer() as server,
            scoped_env(**bench_env(port=server.port, database_url=database_url, work=work)),
        ):
            measure(results, make_session_factory(engine), server, use_flow=use_flow, batch=batch)
    finally:
        engine.dispose()
    return results


def measure(results: Results, factory, server: CountingServer, *, use_flow: bool, batch: int) -> None:
    from sqlalchemy import select

    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from caseconf.settings import load_settings
    from notifications.delivery import Sender, deliver_pending
    from notifications.models import OutboundMessage

    clock = SystemClock()
    settings = load_settings()
    if use_flow:
        from flows.delivery import deliver_outbox

        # The first flow run starts the ephemeral Prefect server: timed apart from delivery.
        started = time.perf_counter()
        deliver_outbox()
        results.flow_startup_seconds = time.perf_counter() - started

    started = time.perf_counter()
    queued = queue_week(factory, results.sizing, now=clock.now())
    results.enqueue_seconds = time.perf_counter() - started
    with transaction(factory) as session:
        expected = set(session.scalars(select(OutboundMessage.message_id)))
    if not queued == len(expected) == results.messages:
        # An explicit check: a bench run with python -O must not time a week that was not fully queued.
        raise RuntimeError(f"queued {queued}, outbox has {len(expected)}, expected {results.messages} messages")

    if use_flow:
        started = time.perf_counter()
        # A run sends what is due in passes of `batch`, within its time budget; bounded, whatever happens.
        while rows_not_sent(factory) and results.flow_runs < 20:
            deliver_outbox(limit=batch)
            results.flow_runs += 1
        results.flow_seconds = time.perf_counter() - started
        seen, results.bytes_total = server.take()
        results.checks["flow"] = check_phase(seen, expected)
        results.rows_not_sent += rows_not_sent(factory)
        back_to_pending(factory, now=clock.now())

    started = time.perf_counter()
    claimed = True
    while claimed:
        claimed = deliver_pending(factory, settings, now=clock.now, limit=batch).claimed
        results.direct_passes += 1
    results.direct_seconds = time.perf_counter() - started
    seen, results.bytes_total = server.take()
    results.checks["direct"] = check_phase(seen, expected)
    results.rows_not_sent += rows_not_sent(factory)

    with transaction(factory) as session:
        rows = list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
    sender = Sender(address=settings.mail_from, name=settings.mail_from_name)
    results.build_seconds, results.plain_seconds = asyncio.run(plain_loop(server.port, rows, sender))
    seen, _ = server.take()
    results.checks["plain"] = check_phase(seen, expected)


# --- the report ---------------------------------------------------------------------------------------


def report(results: Results, *, batch: int) -> str:
    n = results.messages
    s = results.sizing
    plain = results.plain_seconds

    def line(label: str, seconds: float, extra: str = "") -> str:
        return f"{label:<44}: {seconds:7.2f} s  {n / seconds:7.0f} msg/s{extra}"

    lines = [
        f"database: {results.database}; {s.series} series x {s.referrals} referrals x {s.reps} reps"
        f" = {n} messages ({results.bytes_total / n / 1024:.1f} KB average);"
        " SMTP server in its own process on loopback",
        line("enqueue (a transaction per meeting)", results.enqueue_seconds),
    ]
    if results.flow_seconds is not None:
        lines.append(f"{'prefect ephemeral start (first flow run)':<44}: {results.flow_startup_seconds:7.2f} s")
        lines.append(
            line(
                f"outbox via flow deliver-outbox ({results.flow_runs} runs of {batch})",
                results.flow_seconds,
                f"  {results.flow_seconds / plain:5.2f}x plain",
            )
        )
    lines += [
        line(
            f"outbox via deliver_pending ({results.direct_passes} passes)",
            results.direct_seconds,
            f"  {results.direct_seconds / plain:5.2f}x plain",
        ),
        line("plain aiosmtplib loop, one connection", plain, "  (building the MIME included)"),
        f"{'  of which building the MIME':<44}: {results.build_seconds:7.2f} s",
    ]
    verdict = results.flow_seconds if results.flow_seconds is not None else results.direct_seconds
    lines.append(f"target: delivery within 1.5x of the plain loop: {'met' if verdict / plain <= 1.5 else 'NOT met'}")
    for phase, check in results.checks.items():
        lines.append(
            f"check {phase:<6}: {check.arrived} arrived, {check.distinct} distinct Message-IDs of {check.expected}"
            f" queued, {check.duplicates} duplicates, {check.missing} missing, {check.unexpected} unexpected"
            f" -> {'exactly once' if check.exactly_once else 'WRONG'}"
        )
    lines.append(f"check rows  : {results.rows_not_sent} outbox rows not `sent` after delivery")
    lines.append("all correct" if results.all_correct else "NOT CORRECT")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=Sizing.series)
    parser.add_argument("--referrals", type=int, default=Sizing.referrals)
    parser.add_argument("--reps", type=int, default=Sizing.reps)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.series}x{QUICK.referrals}x{QUICK.reps}")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway SQLite file)")
    parser.add_argument("--batch", type=int, default=200, help="messages a delivery pass (the flow's default)")
    parser.add_argument("--no-flow", action="store_true", help="skip the Prefect flow; deliver_pending only")
    args = parser.parse_args()
    sizing = QUICK if args.quick else Sizing(args.series, args.referrals, args.reps)
    work = Path(tempfile.mkdtemp(prefix="caseconf-circulation-"))
    # Prefect reads these when first imported: its own home, quiet, no telemetry, ephemeral server.
    (work / "prefect").mkdir()
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.pop("PREFECT_API_URL", None)
    database_url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    started = datetime.now(UTC)
    results = run(sizing, database_url=database_url, work=work, use_flow=not args.no_flow, batch=args.batch)
    print(f"run at {started:%Y-%m-%d %H:%M} UTC; work dir {work}")
    print(report(results, batch=args.batch))
    sys.exit(0 if results.all_correct else 1)


if __name__ == "__main__":
    main()
