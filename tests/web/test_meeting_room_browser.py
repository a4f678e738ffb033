"""The minute-taker's journey in a real browser: open the room on the day, attendance, notes, a decision and
two actions; the wifi drops and comes back with nothing lost; someone else's newer text is shown beside
theirs and "Keep mine" keeps it; a stale dissent is never saved over someone else's; the meeting ends and the
summary is written; text stranded by the approval is shown for copying; signing out forgets kept text. Each
main state is checked with axe."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import meeting_room
from meetings.models import (
    Action,
    AgendaItem,
    AgendaItemKind,
    Contribution,
    Decision,
    Invitation,
    Meeting,
    MeetingStatus,
    Minute,
    Referral,
)
from tests.factories import DEMO_MONDAY
from tests.integration.test_meeting_room import COORDINATOR, ON_THE_DAY, set_up_clinic
from tests.web.conftest import shot
from tests.web.test_triage_browser import sign_in_by_email

pytestmark = pytest.mark.browser


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


def notes_of(session, item_id) -> str:
    session.expire_all()
    return session.get(AgendaItem, item_id).notes


def wait_for_db(check, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the change did not reach the database"
        time.sleep(0.1)


def test_minute_taker_journey(server, page, settings, session_factory, session, clock):
    meeting_id = set_up_clinic(session_factory, extra=1)
    clock.at = ON_THE_DAY
    meeting = session.get(Meeting, meeting_id)
    item = next(i for i in meeting_room.room_items(meeting) if i.kind == AgendaItemKind.referral)
    item_id, reference = item.id, item.referral.reference
    camhs_id = session.scalar(select(Agency.id).where(Agency.code == "CAMHS"))
    camhs_rep = session.scalar(select(Person).where(Person.email == "camhs.rep@kestrelford.example.org"))
    me = session.scalar(select(Person.id).where(Person.email == COORDINATOR))
    police = session.scalar(
        select(Invitation)
        .join(Agency, Agency.id == Invitation.agency_id)
        .where(Invitation.meeting_id == meeting_id, Agency.code == "POLICE")
    )
    safeguarding = session.scalar(
        select(Invitation)
        .join(Agency, Agency.id == Invitation.agency_id)
        .where(Invitation.meeting_id == meeting_id, Agency.code == "SAFEGUARDING")
    )

    sign_in_by_email(page, server, settings, session_factory, clock, COORDINATOR)
    page.goto(f"{server}/meetings/{meeting_id}")
    page.get_by_role("link", name="Open the meeting room").click()
    page.get_by_role("heading", name="Meeting room: Thursday 3 December 2026").wait_for()
    shot(page, "meeting-room-closed")
    page.get_by_role("button", name="Open the meeting room").click()
    page.get_by_text("The meeting room is open.").wait_for()

    # Attendance, and the confidentiality statement.
    page.locator(f"#attendance-{safeguarding.id}").select_option("present")
    page.locator(f"#attendance-{police.id}").select_option("information_sent")
    page.locator(f"#note-{police.id}").fill("Report emailed on Tuesday")
    page.get_by_role("button", name="Save attendance").click()
    page.get_by_text("Attendance has been saved.").wait_for()
    page.get_by_role("button", name="Record that the statement was read").click()
    page.get_by_text("The chair has read the confidentiality statement.").wait_for()
    session.expire_all()
    assert session.get(Invitation, police.id).attendance == "information_sent"
    assert session.get(Meeting, meeting_id).confidentiality_read

    # The first item: start it, type notes (saved as typed).
    page.get_by_role("button", name=re.compile(f"^Start this item ?: {reference}$")).click()
    page.get_by_role("link", name=f"Go to the current item: 1. {reference}").click()
    notes = page.locator(f"#notes-{item_id}")
    notes.fill("School: attendance 86.9%, two suspensions this half-term.")
    page.get_by_text(re.compile(r"Saved at \d\d:\d\d")).wait_for()
    assert notes_of(session, item_id) == "School: attendance 86.9%, two suspensions this half-term."
    page.locator(f"#contribution-{item_id}-{camhs_id}").fill("Referral triaged as routine; first appointment offered.")
    page.locator(f"#notes-{item_id}").focus()  # leaving the field saves it at once
    said = "Referral triaged as routine; first appointment offered."

    def contribution_saved() -> bool:
        session.expire_all()
        body = session.scalar(
            select(Contribution.body).where(Contribution.agenda_item_id == item_id, Contribution.agency_id == camhs_id)
        )
        return body == said

    wait_for_db(contribution_saved)
    shot(page, "meeting-room-notes")

    # The decision.
    page.locator(f"#decision-{item_id}-option").select_option("support_agreed")
    page.locator(f"#decision-{item_id}-rationale").fill("Agreed that school and CAMHS act together on the route home.")
    page.get_by_role("button", name=f"Record the decision for {reference}").click()
    page.get_by_text("The decision has been recorded.").wait_for()
    session.expire_all()
    assert session.scalar(select(Decision.outcome).where(Decision.agenda_item_id == item_id)) == "support_agreed"

    # The chair records a dissent from another laptop; this page saves its rationale (its own text, so no
    # false conflict), but its empty dissent box never overwrites the chair's dissent: both are shown.
    with transaction(session_factory) as s:
        m = s.get(Meeting, meeting_id)
        meeting_room.save_decision_text(
            s,
            m,
            item_id,
            "dissent",
            text="Police would have closed it.",
            base_version=1,
            now=ON_THE_DAY,
            actor_id=m.chair_id,
        )
    rationale = "Agreed that school and CAMHS act together on the route home, from next week."
    page.locator(f"#decision-{item_id}-rationale").fill(rationale)

    def decision_texts():
        session.expire_all()
        row = session.scalar(select(Decision).where(Decision.agenda_item_id == item_id))
        return row.rationale, row.dissent

    wait_for_db(lambda: decision_texts()[0] == rationale)
    assert page.locator(".app-room-conflict").count() == 0
    page.locator(f"#decision-{item_id}-dissent").fill("None.")
    dissent_conflict = page.locator(".app-room-conflict")
    dissent_conflict.wait_for()
    assert dissent_conflict.locator("[data-conflict='theirs']").inner_text() == "Police would have closed it."
    assert decision_texts() == (rationale, "Police would have closed it.")
    dissent_conflict.get_by_role("button", name="Keep theirs").click()
    assert page.locator(f"#decision-{item_id}-dissent").input_value() == "Police would have closed it."

    # Two actions: one for CAMHS, one for the school (vague at first: the page prompts).
    section = page.locator(f"section[aria-labelledby='item-{item_id}']")
    prefix = f"#action-{item_id}-"
    page.locator(f"{prefix}description").fill("Send the CAMHS appointment date to the school by email")
    page.locator(f"{prefix}owner").select_option(f"agency:{camhs_id}")
    page.locator(f"{prefix}owner_person_id").select_option(str(camhs_rep.id))
    page.locator(f"{prefix}due_on").fill("2026-12-10")
    section.get_by_role("button", name="Add the action").click()
    page.get_by_text("The action has been added.").wait_for()
    page.locator(f"{prefix}description").fill("Monitor")
    page.locator(f"{prefix}owner").select_option("school")
    page.locator(f"{prefix}due_on").fill("2026-12-11")
    page.locator(f"{prefix}involves_school").check()
    section.get_by_role("button", name="Add the action").click()
    page.get_by_text("The action has been added.").wait_for()
    assert page.get_by_text("is hard to check").count() == 1
    shot(page, "meeting-room-decision-and-actions")
    actions = session.scalars(select(Action).where(Action.agenda_item_id == item_id).order_by(Action.id)).all()
    assert [(a.owner_agency_id, a.owner_person_id, str(a.due_on)) for a in actions] == [
        (camhs_id, camhs_rep.id, "2026-12-10"),
        (None, None, "2026-12-11"),
    ]
    assert actions[1].involves_school and actions[1].owner_school_id == item.referral.school_id

    # The wifi drops: typing goes on, the page says so, and the text is kept in the browser.
    status = page.locator("#room-save-status")
    page.context.set_offline(True)
    typed_offline = "School: attendance 86.9%, two suspensions this half-term. Police: no further incidents."
    notes = page.locator(f"#notes-{item_id}")
    notes.fill(typed_offline)
    page.get_by_text(re.compile("Offline — 1 change waiting")).wait_for()
    kept = page.evaluate(f"() => JSON.parse(localStorage.getItem('caseconf-room:{me}:{meeting_id}:notes-{item_id}'))")
    assert kept["text"] == typed_offline
    assert notes_of(session, item_id) != typed_offline
    shot(page, "meeting-room-offline")

    # Back online: the waiting text is sent with its base version and reaches the database.
    page.context.set_offline(False)
    page.get_by_text(re.compile(r"Saved at \d\d:\d\d")).wait_for()
    wait_for_db(lambda: notes_of(session, item_id) == typed_offline)
    assert "Offline" not in status.inner_text()
    assert page.evaluate(f"() => localStorage.getItem('caseconf-room:{me}:{meeting_id}:notes-{item_id}')") is None

    # Someone else (the chair, on another laptop) saves a newer text; this page's next save is refused and
    # both texts are shown; "Keep mine" saves it over theirs on purpose.
    theirs = typed_offline + " Chair: review in January."
    with transaction(session_factory) as s:
        m = s.get(Meeting, meeting_id)
        version = s.get(AgendaItem, item_id).notes_version
        chair = m.chair_id
        meeting_room.save_item_notes(s, m, item_id, text=theirs, base_version=version, now=ON_THE_DAY, actor_id=chair)
    mine = typed_offline + " School nurse to be invited next time."
    notes.fill(mine)
    conflict = page.locator(".app-room-conflict")
    conflict.wait_for()
    assert conflict.locator("[data-conflict='yours']").inner_text() == mine
    assert conflict.locator("[data-conflict='theirs']").inner_text() == theirs
    assert notes_of(session, item_id) == theirs  # nothing overwritten
    assert "someone else changed a text" in status.inner_text()
    shot(page, "meeting-room-conflict")
    conflict.get_by_role("button", name="Keep mine").click()
    page.get_by_text(re.compile(r"Saved at \d\d:\d\d")).wait_for()
    wait_for_db(lambda: notes_of(session, item_id) == mine)
    assert page.locator(".app-room-conflict").count() == 0

    # The page is reloaded (or the laptop closed) straight after typing: the text comes back and is sent.
    final = mine + " Next review: 14 January."
    page.locator(f"#notes-{item_id}").fill(final)
    page.reload()
    assert page.locator(f"#notes-{item_id}").input_value() == final
    wait_for_db(lambda: notes_of(session, item_id) == final)

    # The rest of the agenda is settled (another item decided, open actions reviewed), then the meeting ends.
    with transaction(session_factory) as s:
        m = s.get(Meeting, meeting_id)
        for other in meeting_room.room_items(m):
            if other.id == item_id:
                continue
            if other.kind == AgendaItemKind.action_review:
                meeting_room.review_action(s, m, other.id, outcome="done", now=ON_THE_DAY, actor_id=m.minute_taker_id)
            else:
                meeting_room.save_decision(
                    s,
                    m,
                    other.id,
                    option_code="closed",
                    rationale="Resolved",
                    now=ON_THE_DAY,
                    actor_id=m.minute_taker_id,
                )
    clock.at = ON_THE_DAY.replace(hour=15, minute=20)
    page.reload()
    page.get_by_role("button", name="End the meeting").click()
    page.get_by_text("The meeting has ended.").wait_for()
    shot(page, "meeting-room-ended")
    session.expire_all()
    ended = session.get(Meeting, meeting_id)
    assert ended.status == MeetingStatus.minutes_draft
    assert ended.ended_at == clock.now()
    assert session.get(Referral, item.referral_id).status == "actions_open"
    assert notes_of(session, item_id) == final

    # After the end: no decision or action forms; the summary of the minutes is saved as it is typed.
    assert page.locator(f"#decision-{item_id}-option").count() == 0
    assert page.get_by_role("button", name="Add the action").count() == 0
    page.locator("#summary").fill("Two referrals discussed; the meeting was quorate.")

    def summary() -> str:
        session.expire_all()
        return session.scalar(select(Minute.summary).where(Minute.meeting_id == meeting_id))

    wait_for_db(lambda: summary() == "Two referrals discussed; the meeting was quorate.")

    # Text typed offline is stranded when the chair approves the minutes meanwhile: shown for copying.
    page.context.set_offline(True)
    stranded = final + " One more line typed on the train."
    page.locator(f"#notes-{item_id}").fill(stranded)
    page.get_by_text(re.compile("Offline — 1 change waiting")).wait_for()
    with transaction(session_factory) as s:
        s.get(Meeting, meeting_id).status = MeetingStatus.minutes_approved
    page.context.set_offline(False)
    page.reload()
    copy = page.locator(f"textarea[data-stranded='notes-{item_id}']")
    copy.wait_for()
    assert copy.input_value() == stranded
    assert notes_of(session, item_id) == final
    assert "Changes are saved as you type" not in page.locator("#room-save-status").inner_text()
    shot(page, "meeting-room-stranded")

    # Signing out forgets what this browser kept for the room.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    left = page.evaluate("() => Object.keys(localStorage).filter((key) => key.startsWith('caseconf-room:'))")
    assert left == []
