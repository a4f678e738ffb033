"""Three weeks of the demo borough rehearsed, with the 3 December clinic minuted in a real browser as it
starts: outcomes reach the schools, and the actions agreed are announced, reminded, chased, escalated
and closed by their owners' email replies, all in the mail catcher and on the tracker."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.clock import FixedClock
from caseconf.db import transaction
from flows.simulate import ActionOwner
from meetings import meeting_room
from meetings.models import (
    Action,
    ActionEventKind,
    ActionStatus,
    AgendaItemKind,
    Child,
    Meeting,
    MeetingStatus,
    Referral,
)
from notifications.catcher import read_maildir
from notifications.models import InboundMessage, OutboundMessage, OutboundStatus
from tests.web.conftest import page, server, shot  # noqa: F401 (the browser and the web app, as fixtures)
from tests.web.test_triage_browser import sign_in_by_email

pytestmark = [pytest.mark.flows, pytest.mark.browser]

START = date(2026, 11, 30)  # the Monday before the demo clinic of Thursday 3 December
CLINIC_DAY = date(2026, 12, 3)
COORDINATOR = "clinic.coordinator@kestrelford.example.org"
# Who the first case's actions go to: (agency code, person, what they are to do).
OWNERS = (
    ("CAMHS", "camhs.rep@kestrelford.example.org", "Send the first CAMHS appointment date to the school by email"),
    ("POLICE", "police.rep@kestrelford.example.org", "Share the safer-route-home plan with the school and family"),
    (
        "SAFEGUARDING",
        "safeguarding.rep@kestrelford.example.org",
        "Confirm in writing whether the MASH enquiry led to a plan",
    ),
    (
        "EARLY_HELP",
        "early-help.rep@kestrelford.example.org",
        "Offer the family an early help assessment and record their answer",
    ),
)
DUE = "2026-12-08"  # Tuesday: a reminder the Friday before, chases from the due date, then escalation


@pytest.fixture
def clock():
    return FixedClock(datetime.combine(START, datetime.min.time(), tzinfo=UTC))


def _minute_the_clinic(page, server, settings, session_factory, clock, meeting_id: int, at: datetime) -> list[str]:
    """The coordinator runs the clinic in the room: a decision on each case, four actions on the first,
    the open actions brought back marked done, then the meeting ends. Returns the references decided."""
    clock.at = at
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, meeting_id)
        items = [(i.id, i.kind, meeting_room.item_reference(i)) for i in meeting_room.room_items(meeting)]
        agencies = {code: session.scalar(select(Agency.id).where(Agency.code == code)) for code, _, _ in OWNERS}
        people = {email: session.scalar(select(Person.id).where(Person.email == email)) for _, email, _ in OWNERS}
    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)
    page.goto(f"{server}/meetings/{meeting_id}/room")
    page.get_by_role("button", name="Open the meeting room").click()
    page.get_by_text("The meeting room is open.").wait_for()

    cases = [(item_id, ref) for item_id, kind, ref in items if kind == AgendaItemKind.referral]
    assert cases, "the demo clinic of 3 December has cases listed"
    for position, (item_id, reference) in enumerate(cases):
        page.get_by_role("button", name=re.compile(f"^Start this item ?: {re.escape(reference)}$")).click()
        page.locator(f"#notes-{item_id}").fill(f"Discussed {reference}; views of the school and agencies heard.")
        page.locator(f"#decision-{item_id}-option").select_option("support_agreed" if position == 0 else "closed")
        page.locator(f"#decision-{item_id}-rationale").fill("Agreed by those present, on the information shared.")
        page.get_by_role("button", name=f"Record the decision for {reference}").click()
        page.get_by_text("The decision has been recorded.").wait_for()
        if position == 0:  # the first case: four actions, each with an owner and a due date
            section = page.locator(f"section[aria-labelledby='item-{item_id}']")
            prefix = f"#action-{item_id}-"
            for code, email, description in OWNERS:
                page.locator(f"{prefix}description").fill(description)
                page.locator(f"{prefix}owner").select_option(f"agency:{agencies[code]}")
                if email:
                    page.locator(f"{prefix}owner_person_id").select_option(str(people[email]))
                page.locator(f"{prefix}due_on").fill(DUE)
                section.get_by_role("button", name="Add the action").click()
                page.get_by_text(re.compile("The action has been added|There is a problem")).first.wait_for()
                problems = page.locator(".govuk-error-summary")
                assert problems.count() == 0, problems.inner_text()
    for item_id, kind, _ in items:
        if kind == AgendaItemKind.action_review:
            section = page.locator(f"section[aria-labelledby='item-{item_id}']")
            section.get_by_role("button", name=re.compile("^Start this item")).click()
            if page.locator(f"#review-{item_id}-outcome").count() == 0:
                continue  # closed by its owner's email reply since the agenda was frozen: nothing to record
            page.locator(f"#review-{item_id}-outcome").check()
            page.locator(f"section[aria-labelledby='item-{item_id}']").get_by_role(
                "button", name=re.compile("^Record the review")
            ).click()
            page.get_by_text(re.compile("review has been recorded", re.I)).wait_for()
    shot(page, "rehearsal-clinic-minuted")
    clock.at = at.replace(hour=15, minute=15)
    page.get_by_role("button", name="End the meeting").click()
    page.get_by_text(re.compile("The meeting has ended|There is a problem")).first.wait_for()
    problems = page.locator(".govuk-error-summary")
    assert problems.count() == 0, problems.inner_text()
    return [ref for _, ref in cases]


def test_three_weeks_with_a_clinic_minuted_in_the_browser_follow_every_action_through(
    flow_env, server, page, settings, session_factory, clock
):
    from flows.simulate import simulate

    decided: list[str] = []
    handed_over: list[int] = []

    def run_meeting(meeting_id: int, name: str, at: datetime) -> None:
        handed_over.append(meeting_id)
        with transaction(session_factory) as session:
            day = session.get(Meeting, meeting_id).meeting_date
        if day == CLINIC_DAY and "Hot Clinic" in name:
            decided.extend(_minute_the_clinic(page, server, settings, session_factory, clock, meeting_id, at))

    lines: list[str] = []
    totals = simulate(START, 3, print_line=lines.append, absent=(), at_meeting_start=run_meeting)
    text = "\n".join(lines)
    assert decided and handed_over

    with transaction(session_factory) as session:
        clinic = session.scalars(
            select(Meeting).where(Meeting.meeting_date == CLINIC_DAY, Meeting.series_id == 1)
        ).one()
        assert clinic.status == MeetingStatus.minutes_draft and clinic.ended_at is not None
        actions = session.scalars(select(Action).where(Action.meeting_id == clinic.id).order_by(Action.id)).all()
        assert len(actions) == len(OWNERS)
        ledger = {a.id: Counter(e.kind for e in a.events) for a in actions}
        status = {a.id: a.status for a in actions}
        owners = {a.id: (a.owner_person.email if a.owner_person else a.owner_agency.mailbox) for a in actions}
        referral_status = {
            r.reference: r.status for r in session.scalars(select(Referral).where(Referral.reference.in_(decided)))
        }
        sent = session.execute(
            select(OutboundMessage.kind, OutboundMessage.recipient, OutboundMessage.status, OutboundMessage.in_reply_to)
        ).all()
        replies = session.scalars(select(InboundMessage).where(InboundMessage.kind == "action_reply")).all()
        names = {n for child in session.scalars(select(Child)) for n in (child.legal_first_name, child.legal_surname)}

    # Every email went out, once each, and reached the mail catcher.
    assert all(s == OutboundStatus.sent for _, _, s, _ in sent)
    caught = read_maildir(settings.maildir)
    assert len(caught) >= len(sent)  # sign-in links were delivered too
    # Each school heard its outcome, naming no child.
    outcomes = [m for m in caught if "decision" in m.subject.lower()]
    assert {ref for ref in decided for m in outcomes if ref in m.subject} == set(decided), [m.subject for m in caught]
    assert all("kestrelford.example.org" not in m.recipient for m in outcomes)  # to the schools
    for message in caught:
        body = "\n".join(p.get_content() for p in message.message.walk() if p.get_content_maintype() == "text")
        assert not any(re.search(rf"\b{re.escape(n)}\b", f"{message.subject}\n{body}") for n in names), message.subject
    # Every action was announced once, and each owner's way of answering had its effect.
    domain = settings.mail_from.rsplit("@", 1)[1]
    for action_id, counts in ledger.items():
        assert counts[ActionEventKind.assigned] == 1, counts
        kind = ActionOwner(owners[action_id].lower(), f"<action-{action_id}@{domain}>").kind()
        if kind == "prompt":  # "Done" to the reminder
            assert status[action_id] == ActionStatus.done and counts[ActionEventKind.chase] == 0, (kind, counts)
        elif kind == "progress":  # an update, then "done" to the first chase
            assert status[action_id] == ActionStatus.done and counts[ActionEventKind.update] >= 1, (kind, counts)
            assert counts[ActionEventKind.chase] == 1, (kind, counts)
        else:  # no answer, or "cannot do": chased, then escalated once, still open
            assert status[action_id] == ActionStatus.open, (kind, counts)
            assert counts[ActionEventKind.chase] >= 2 and counts[ActionEventKind.escalation] == 1, (kind, counts)
    kinds = {ActionOwner(owners[a].lower(), f"<action-{a}@{domain}>").kind() for a in ledger}
    assert kinds & {"prompt", "progress"} and kinds & {"silent", "stuck"}, kinds  # closed by reply, and escalated
    assert replies and all(r.status == "applied" for r in replies)
    assert {k for k, _, _, _ in sent} >= {"clinic_outcome", "action_assigned", "action_reminder", "action_chase"}
    assert "action_escalation" in {k for k, _, _, _ in sent}
    # The first case is followed through its actions; the others were closed at the clinic.
    assert referral_status[decided[0]] in ("actions_open", "review")
    assert all(referral_status[ref] == "closed" for ref in decided[1:])
    assert totals["action replies"] == len(replies)
    assert "follow-up-actions" in text and "after-meetings" in text

    # The tracker shows the same: the coordinator sees each action with its status.
    clock.at = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)  # a new day, a new sign-in
    page.goto(f"{server}/actions?tab=all")
    for action_id in ledger:
        assert page.get_by_role("link", name=re.compile(f"ACT-{action_id}\\b")).count() >= 1
    shot(page, "rehearsal-tracker")
