"""The clinic cycle's deployments' flows, run for real under Prefect against the demo borough, and the
rehearsal that drives them through a simulated fortnight."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.models import Child, Invitation, Meeting, MeetingStatus, Rsvp
from notifications.catcher import read_maildir, start_catcher
from notifications.models import InboundMessage, OutboundMessage, OutboundStatus

pytestmark = pytest.mark.flows

MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # the demo's clinic on Thursday 26 November is next
CUT_OFF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday 12:00 London (GMT)
PAPERS = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
QUORUM_CHECK = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def demo(flow_env, session_factory):
    with transaction(session_factory) as session:
        load_demo(session, now=MONDAY)
    catcher = start_catcher(flow_env.maildir, "127.0.0.1", flow_env.catcher_port)
    yield flow_env
    catcher.stop()


def _clinic(session, day: date) -> Meeting:
    return session.scalars(select(Meeting).where(Meeting.meeting_date == day)).one()


def _readable(message) -> str:
    """Subject and every text part, decoded (a name could hide in base64 or quoted-printable)."""
    parts = [str(message["Subject"])]
    parts += [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    return "\n".join(parts)


def _outbox_keys(session_factory) -> Counter:
    with transaction(session_factory) as session:
        return Counter(k.split(":")[0] for k in session.scalars(select(OutboundMessage.idempotency_key)))


def test_each_sweep_runs_under_prefect_when_due_and_a_second_run_does_nothing(demo, session_factory):
    from flows.clinic import check_quorum, circulate_papers, freeze_agendas, send_invitations
    from flows.delivery import deliver_outbox

    invited = send_invitations(now=MONDAY)
    assert len(invited["meetings"]) == 4  # the clinics of the next 28 days
    assert freeze_agendas(now=MONDAY)["meetings"] == {}  # not yet the cut-off
    frozen = freeze_agendas(now=CUT_OFF)
    papers = circulate_papers(now=PAPERS)
    quorum = check_quorum(now=QUORUM_CHECK)
    first = _outbox_keys(session_factory)

    for sweep, moment in (
        (send_invitations, MONDAY),
        (freeze_agendas, CUT_OFF),
        (circulate_papers, PAPERS),
        (check_quorum, QUORUM_CHECK),
    ):
        assert sweep(now=moment)["meetings"] == {}, sweep.name
    assert _outbox_keys(session_factory) == first

    with transaction(session_factory) as session:
        clinic = _clinic(session, date(2026, 11, 26))
        assert clinic.status == MeetingStatus.papers_sent and clinic.quorum_checked_at == QUORUM_CHECK
        clinic_id = clinic.id
    assert list(frozen["meetings"]) == list(papers["meetings"]) == list(quorum["meetings"]) == [clinic_id]
    # What each run says it did, in words (as the rehearsal prints it).
    # No case was listed by the cut-off; the demo's three open actions from earlier clinics come back for review.
    assert frozen["meetings"][clinic_id] == "3 items on the agenda"
    assert papers["meetings"][clinic_id].startswith("version 1: ") and papers["meetings"][clinic_id].endswith(
        "9 emails"
    )
    assert quorum["meetings"][clinic_id].startswith("not quorate (")
    # Nobody has replied, so the chair and the coordinator are alerted, once each.
    assert first["invite"] == 4 * 9 and first["papers"] == 9 and first["quorum-alert"] == 2
    # Open actions to review make the agenda not empty: nobody is asked whether the clinic still meets.
    assert first["agenda-empty"] == 0

    with transaction(session_factory) as session:
        names = {n for child in session.scalars(select(Child)) for n in (child.legal_first_name, child.legal_surname)}
    assert len(names) >= 8
    report = deliver_outbox(now=QUORUM_CHECK)
    assert report["sent"] == sum(first.values()) and report["failed"] == 0
    caught = read_maildir(demo.maildir)
    invitations = [m for m in caught if m.part("text/calendar")]
    assert len(invitations) == 36
    for caught_message in caught:
        text = _readable(caught_message.message)
        # Whole words: a rep called Wrenfield is not a child called Wren.
        assert not any(re.search(rf"\b{re.escape(name)}\b", text) for name in names), caught_message.subject
    calendar = Calendar.from_ical(invitations[0].part("text/calendar"))
    assert calendar["METHOD"] == "REQUEST"
    assert calendar.walk("VEVENT")[0]["DTSTART"].params["TZID"] == "Europe/London"


def test_a_fortnight_rehearsed_gives_frozen_agendas_papers_replies_and_a_quorum_alert(demo, session_factory):
    from flows.simulate import simulate

    lines: list[str] = []
    totals = simulate(date(2026, 11, 23), 2, print_line=lines.append)
    text = "\n".join(lines)

    with transaction(session_factory) as session:
        first, second = _clinic(session, date(2026, 11, 26)), _clinic(session, date(2026, 12, 3))
        assert first.status == second.status == MeetingStatus.papers_sent
        by_email = Counter(
            session.scalars(
                select(Invitation.rsvp).where(Invitation.meeting_id == first.id, Invitation.rsvp_source == "email")
            )
        )
        keys = list(session.scalars(select(OutboundMessage.idempotency_key)))
        unsent = session.scalar(
            select(func.count()).select_from(OutboundMessage).where(OutboundMessage.status != OutboundStatus.sent)
        )
        left_for_a_person = session.scalar(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.status != "applied")
        )
        second_id = second.id

    # Replies came back by email and are the attendance list.
    assert by_email[Rsvp.accepted] >= 3 and sum(by_email.values()) >= 6
    assert left_for_a_person == 0
    # The safeguarding rep is away in the second week: that clinic, and only that one, is not quorate.
    alerts = [k for k in keys if k.startswith("quorum-alert:")]
    assert alerts and all(k.startswith(f"quorum-alert:{second_id}:") for k in alerts)
    assert unsent == 0 and totals["emails sent"] == len(keys)
    assert len(read_maildir(demo.maildir)) == len(keys)
    assert "Monday 23 November 2026" in text and "freeze-agendas" in text and "check-quorum" in text
    assert re.search(r"02:30  retention: \d+ records due, \d+ redacted or deleted", text), text  # each night
    assert totals["meetings agenda frozen"] == 2 and totals["meetings papers sent"] == 2


def test_one_meeting_failing_does_not_hold_up_the_others_and_the_run_says_so(demo, session_factory, monkeypatch):
    from flows import clinic

    real = clinic.SWEEPS["send-invitations"]
    with transaction(session_factory) as session:
        broken = _clinic(session, date(2026, 12, 3)).id

    def step(session, meeting_id, now, ctx):
        if meeting_id == broken:
            raise RuntimeError("mail template missing")
        return real.step(session, meeting_id, now, ctx)

    monkeypatch.setitem(clinic.SWEEPS, "send-invitations", clinic.Sweep(real.name, real.due, step))
    monkeypatch.setattr(clinic.sweep_record, "retries", 0)
    with pytest.raises(clinic.SweepIncomplete, match=rf"meetings \[{broken}\] failed after retries; 3 others"):
        clinic.send_invitations(now=MONDAY)
    keys = _outbox_keys(session_factory)
    assert keys["invite"] == 3 * 9  # the other three clinics were invited
