"""How long one full weekly clinic cycle takes: invitations, the agenda frozen at its cut-off, the papers
built and circulated, the quorum check, and every email delivered to an SMTP server on loopback.

    .venv/bin/python bench/weekly_cycle.py [--referrals 40 --reps 10] [--database-url URL]

Two sizes in one run: the demo borough's next clinic as it stands, and the same clinic with `referrals`
items listed and `reps` agency members invited. Each step is the sweep's own service function, timed in
a transaction of its own as a flow task runs it; the Prefect run around each sweep adds about a second
(see bench/RESULTS.md), counted separately.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The demo's clinic of Thursday 3 December 2026 (the first with a referral listed) and its week, in GMT.
MONDAY = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
CUT_OFF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PAPERS = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
QUORUM = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CLINIC_DAY = date(2026, 12, 3)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _timed(label: str, step: Callable[[], object], figures: dict[str, float]) -> object:
    started = time.perf_counter()
    result = step()
    figures[label] = time.perf_counter() - started
    return result


def _enlarge(session, meeting, *, referrals: int, reps: int) -> None:
    """List copies of the demo's referrals up to `referrals` items and invite `reps` agency members."""
    from sqlalchemy import select

    from agencies.models import Agency, Person
    from meetings.models import AgendaItem, AgendaItemKind, Child, Referral, ReferralStatus, SeriesMember

    series = meeting.series
    series.capacity_items = referrals
    series.item_minutes = 3
    templates = session.scalars(select(Referral).where(Referral.reference.is_not(None)).order_by(Referral.id)).all()
    listed = {i.referral_id for i in meeting.items}
    for item in meeting.items:
        item.slot_minutes = 3  # forty items in the two hours
    columns = [c.key for c in Referral.__table__.columns if c.key not in ("id", "reference", "child_id", "status")]
    child_columns = [c.key for c in Child.__table__.columns if c.key != "id"]
    for n in range(referrals - len(listed)):
        source = templates[n % len(templates)]
        child = Child(**{k: getattr(source.child, k) for k in child_columns})
        child.legal_surname = f"{child.legal_surname}-{n}"
        session.add(child)
        session.flush()
        copy = Referral(**{k: getattr(source, k) for k in columns})
        copy.reference, copy.child_id, copy.status = f"BENCH-{n:04d}", child.id, ReferralStatus.accepted
        session.add(copy)
        session.flush()
        session.add(
            AgendaItem(
                meeting_id=meeting.id, kind=AgendaItemKind.referral, referral_id=copy.id, position=0, slot_minutes=3
            )
        )
    members = {m.agency_id for m in series.members}
    for agency in session.scalars(select(Agency).order_by(Agency.id)):
        if len(series.members) >= reps:
            break
        if agency.id in members:
            continue
        person = Person(name=f"{agency.name} bench rep", email=f"bench.{agency.code.lower()}@example.org")
        session.add(person)
        session.flush()
        series.members.append(SeriesMember(agency_id=agency.id, person_id=person.id))
    session.flush()


def run_cycle(database_url: str, data_dir: Path, smtp_port: int, *, referrals: int | None, reps: int | None):
    """One clinic's week; returns (figures in seconds, emails sent, items on the agenda, invitees)."""
    from sqlalchemy import func, select

    from caseconf.db import make_engine, make_session_factory, transaction
    from caseconf.migrate import upgrade
    from caseconf.settings import load_settings
    from meetings.demo import load_demo
    from meetings.models import AgendaItem, AgendaItemStatus, Invitation, Meeting
    from notifications import invites, papers_mail
    from notifications.delivery import deliver_pending
    from notifications.emails import MailContext

    settings = load_settings(data_dir=data_dir, database_url=database_url, smtp_url=f"smtp://127.0.0.1:{smtp_port}")
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    mail = MailContext.from_settings(settings)
    with transaction(factory) as session:
        load_demo(session, now=MONDAY)
        meeting = session.scalars(select(Meeting).where(Meeting.meeting_date == CLINIC_DAY)).one()
        meeting_id = meeting.id
        if referrals:
            _enlarge(session, meeting, referrals=referrals, reps=reps or 10)

    def step(fn):
        def run():
            with transaction(factory) as session:
                return fn(session)

        return run

    figures: dict[str, float] = {}
    _timed(
        "invitations queued",
        step(
            lambda s: invites.send_invitations(
                s, meeting_id, now=MONDAY, mail=mail, organizer_name=settings.mail_from_name
            )
        ),
        figures,
    )
    _timed("agenda frozen", step(lambda s: papers_mail.freeze_meeting(s, meeting_id, now=CUT_OFF, mail=mail)), figures)
    _timed(
        "papers built and queued",
        step(
            lambda s: papers_mail.circulate_papers(
                s, meeting_id, now=PAPERS, mail=mail, storage_dir=settings.documents_dir
            )
        ),
        figures,
    )
    _timed("quorum checked", step(lambda s: invites.check_quorum(s, meeting_id, now=QUORUM, mail=mail)), figures)
    report = _timed("emails delivered", lambda: deliver_pending(factory, settings, now=lambda: QUORUM), figures)
    with factory() as session:
        items = session.scalar(
            select(func.count())
            .select_from(AgendaItem)
            .where(AgendaItem.meeting_id == meeting_id, AgendaItem.status == AgendaItemStatus.listed)
        )
        invited = session.scalar(
            select(func.count()).select_from(Invitation).where(Invitation.meeting_id == meeting_id)
        )
    engine.dispose()
    return figures, report.sent, items, invited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=40)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--database-url", help="PostgreSQL URL of an empty database (default: SQLite in a temp dir)")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from aiosmtpd.controller import Controller

    from notifications.catcher import MaildirHandler

    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = Controller(MaildirHandler(Path(tmp) / "mail"), hostname="127.0.0.1", port=port)
        server.start()
        try:
            for label, referrals, reps, sub in (
                ("demo borough", None, None, "demo"),
                (f"{args.referrals} referrals, {args.reps} reps", args.referrals, args.reps, "large"),
            ):
                url = args.database_url or f"sqlite:///{Path(tmp) / sub / 'caseconf.db'}"
                (Path(tmp) / sub).mkdir()
                figures, sent, items, invited = run_cycle(url, Path(tmp) / sub, port, referrals=referrals, reps=reps)
                total = sum(figures.values())
                print(f"\n{label}: {items} items, {invited} invitees, {sent} emails; whole cycle {total:.2f} s")
                for what, seconds in figures.items():
                    print(f"  {what:<26}{seconds:7.2f} s")
                if args.database_url:
                    break  # one database given: the demo size only
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
