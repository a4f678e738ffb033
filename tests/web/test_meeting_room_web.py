"""The meeting room page and its endpoints through the web app: who may use it, the plain forms (no script),
and the autosave endpoints' JSON answers."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.audit import AuditEvent
from caseconf.db import transaction
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
from tests.factories import DEMO_MONDAY, load_demo_series
from tests.integration.test_meeting_room import COORDINATOR, ON_THE_DAY, set_up_clinic
from tests.web.conftest import csrf_from, sign_in

REP = "camhs.rep@kestrelford.example.org"


@pytest.fixture
def clinic(session_factory, clock):
    meeting_id = set_up_clinic(session_factory, extra=1)
    clock.at = ON_THE_DAY
    return meeting_id


def first_referral_item(session, meeting_id) -> AgendaItem:
    session.expire_all()
    meeting = session.get(Meeting, meeting_id)
    return next(i for i in sorted(meeting.items, key=lambda i: i.position) if i.kind == AgendaItemKind.referral)


def room(client, meeting_id):
    page = client.get(f"/meetings/{meeting_id}/room")
    assert page.status_code == 200, page.text
    return page


def post(client, url, data, **headers):
    token = csrf_from(client.get(url.split("/room")[0] + "/room").text)
    return client.post(url, data={"csrf_token": token, **data}, headers=headers)


def test_who_may_use_the_room(client, session_factory, session, clinic):
    meeting = session.get(Meeting, clinic)
    chair_email = meeting.chair.email
    sign_in(client, session_factory, REP)
    assert client.get(f"/meetings/{clinic}").status_code == 200  # invited: may see the meeting
    assert client.get(f"/meetings/{clinic}/room").status_code == 403  # but not minute it
    client.cookies.clear()
    sign_in(client, session_factory, chair_email)
    assert "Open the meeting room" in room(client, clinic).text
    client.cookies.clear()
    sign_in(client, session_factory, COORDINATOR)
    page = room(client, clinic)
    assert "Open the meeting room" in page.text
    viewed = session.scalars(select(AuditEvent.action).where(AuditEvent.record_id == str(clinic))).all()
    assert viewed.count("meeting.room_viewed") == 2  # the chair's look and the coordinator's
    meeting_page = client.get(f"/meetings/{clinic}")
    assert f'href="/meetings/{clinic}/room"' in meeting_page.text
    with transaction(session_factory) as s:
        s.get(Meeting, clinic).status = MeetingStatus.cancelled
    assert client.get(f"/meetings/{clinic}/room").status_code == 403
    assert client.get("/meetings/999999/room").status_code == 404


def test_the_room_without_a_script(client, session_factory, session, clinic):
    """Open, attendance, notes, a decision refused then recorded, an action with a SMART prompt, the end."""
    sign_in(client, session_factory, COORDINATOR)
    base = f"/meetings/{clinic}/room"
    response = post(client, f"{base}/open", {})
    assert response.status_code == 303
    item = first_referral_item(session, clinic)
    page = room(client, clinic)
    assert "Go to the current item" not in page.text
    assert post(client, f"{base}/items/{item.id}/start", {}).status_code == 303
    page = room(client, clinic)
    assert f'href="#item-{item.id}">Go to the current item' in page.text

    invitation = session.scalar(
        select(Invitation)
        .join(Agency, Agency.id == Invitation.agency_id)
        .where(Invitation.meeting_id == clinic, Agency.code == "POLICE")
    )
    response = post(
        client, f"{base}/attendance", {f"attendance-{invitation.id}": "apologies", f"note-{invitation.id}": "Ill"}
    )
    assert response.status_code == 303
    session.expire_all()
    assert session.get(Invitation, invitation.id).attendance == "apologies"

    response = post(client, f"{base}/items/{item.id}/notes", {"text": "Typed without a script", "base_version": "0"})
    assert response.status_code == 303
    stale = post(client, f"{base}/items/{item.id}/notes", {"text": "From an old tab", "base_version": "0"})
    assert stale.status_code == 409
    assert "Typed without a script" in stale.text and "From an old tab" in stale.text and "Keep theirs" in stale.text

    refused = post(client, f"{base}/items/{item.id}/decision", {"option": "review_on_date", "rationale": "Needs time"})
    assert refused.status_code == 400
    assert "Enter the date of the review" in refused.text
    assert "Needs time" in refused.text  # what was typed is kept
    assert f'href="#decision-{item.id}-review_on"' in refused.text
    recorded = post(
        client,
        f"{base}/items/{item.id}/decision",
        {"option": "support_agreed", "rationale": "All agreed", "base_version": "0"},
    )
    assert recorded.status_code == 303
    assert session.scalar(select(Decision.outcome).where(Decision.agenda_item_id == item.id)) == "support_agreed"

    camhs = session.scalar(select(Agency.id).where(Agency.code == "CAMHS"))
    added = post(
        client,
        f"{base}/items/{item.id}/actions",
        {"description": "Monitor", "owner": f"agency:{camhs}", "owner_person_id": "", "due_on": "2026-12-10"},
    )
    assert added.status_code == 400
    assert "Choose the named person at" in added.text
    assert 'value="Monitor"' not in added.text and ">Monitor</textarea>" in added.text
    rep = re.search(r'<option value="(\d+)">[^<]*\(Kestrelford Child and Adolescent', added.text).group(1)
    added = post(
        client,
        f"{base}/items/{item.id}/actions",
        {"description": "Monitor", "owner": f"agency:{camhs}", "owner_person_id": rep, "due_on": "2026-12-10"},
    )
    assert added.status_code == 303
    page = room(client, clinic)
    assert "is hard to check" in page.text  # the SMART prompt, shown beside the action
    assert session.scalar(select(Action.description).where(Action.agenda_item_id == item.id)) == "Monitor"

    refused = post(client, f"{base}/end", {})
    assert refused.status_code == 409
    assert "Record a decision for" in refused.text
    session.expire_all()
    for other in session.get(Meeting, clinic).items:
        if other.id != item.id and other.kind == AgendaItemKind.referral:
            post(client, f"{base}/items/{other.id}/decision", {"option": "closed", "rationale": "Resolved"})
        elif other.kind == AgendaItemKind.action_review:
            post(client, f"{base}/items/{other.id}/review", {"outcome": "done"})
    assert post(client, f"{base}/end", {}).status_code == 303
    session.expire_all()
    assert session.get(Meeting, clinic).status == MeetingStatus.minutes_draft
    assert session.get(Referral, item.referral_id).status == "actions_open"
    page = room(client, clinic)
    assert "The minutes are in draft" in page.text
    assert "End the meeting</button>" not in page.text


def test_autosave_answers_json(client, session_factory, session, clinic):
    sign_in(client, session_factory, COORDINATOR)
    base = f"/meetings/{clinic}/room"
    item = first_referral_item(session, clinic)
    early = post(client, f"{base}/items/{item.id}/notes", {"text": "x", "base_version": "0"}, **{"X-Autosave": "1"})
    assert early.status_code == 422 and "Open the meeting room first" in early.json()["errors"][0]
    post(client, f"{base}/open", {})
    saved = post(client, f"{base}/items/{item.id}/notes", {"text": "First", "base_version": "0"}, **{"X-Autosave": "1"})
    assert saved.status_code == 200
    assert saved.json() == {"version": 1, "changed": True, "saved_at": "13:30"}
    conflict = post(
        client, f"{base}/items/{item.id}/notes", {"text": "Other", "base_version": "0"}, **{"X-Autosave": "1"}
    )
    assert conflict.status_code == 409
    assert conflict.json() == {"theirs": "First", "yours": "Other", "version": 1}
    camhs = session.scalar(select(Agency.id).where(Agency.code == "CAMHS"))
    said = post(
        client,
        f"{base}/items/{item.id}/contributions/{camhs}",
        {"text": "Triage booked", "base_version": "0"},
        **{"X-Autosave": "1"},
    )
    assert said.json()["version"] == 1
    no_decision = post(
        client,
        f"{base}/items/{item.id}/decision/rationale",
        {"text": "Why", "base_version": "0"},
        **{"X-Autosave": "1"},
    )
    assert no_decision.status_code == 422
    without_token = client.post(f"{base}/items/{item.id}/notes", data={"text": "x", "base_version": "1"})
    assert without_token.status_code == 403


def end_the_meeting(client, session, clinic) -> AgendaItem:
    """Open, decide every item (one action on the first), end; returns the first referral item."""
    base = f"/meetings/{clinic}/room"
    post(client, f"{base}/open", {})
    item = first_referral_item(session, clinic)
    for other in session.get(Meeting, clinic).items:
        if other.kind == AgendaItemKind.referral:
            assert post(
                client, f"{base}/items/{other.id}/decision", {"option": "support_agreed", "rationale": "Agreed"}
            )
        elif other.kind == AgendaItemKind.action_review:
            post(client, f"{base}/items/{other.id}/review", {"outcome": "done"})
    camhs = session.scalar(select(Agency.id).where(Agency.code == "CAMHS"))
    rep = session.scalar(select(Person.id).where(Person.email == REP))
    added = post(
        client,
        f"{base}/items/{item.id}/actions",
        {
            "description": "Book a CAMHS assessment and tell the school the date",
            "owner": f"agency:{camhs}",
            "owner_person_id": str(rep),
            "due_on": "2026-12-10",
        },
    )
    assert added.status_code == 303
    assert post(client, f"{base}/end", {}).status_code == 303
    session.expire_all()
    return item


def test_after_the_end_only_notes_and_the_summary_are_open(client, session_factory, session, clinic):
    sign_in(client, session_factory, COORDINATOR)
    base = f"/meetings/{clinic}/room"
    page = room(client, clinic)
    assert "Not started: the agenda is closed" in page.text
    item = end_the_meeting(client, session, clinic)
    action_id = session.scalar(select(Action.id).where(Action.agenda_item_id == item.id))
    page = room(client, clinic).text
    assert f'action="{base}/items/{item.id}/decision"' not in page
    assert f'action="{base}/items/{item.id}/actions"' not in page
    assert f'action="{base}/actions/{action_id}"' not in page
    assert f'action="{base}/actions/{action_id}/remove"' not in page
    assert "can no longer be changed here" in page
    assert f'action="{base}/items/{item.id}/notes"' in page
    assert 'id="summary"' in page and f'action="{base}/summary"' in page
    assert "Ended at 1:30pm (started at 1:30pm); the minutes are in draft" in page
    refused = post(client, f"{base}/items/{item.id}/decision", {"option": "closed", "rationale": "Later"})
    assert refused.status_code == 409 and "decisions and actions have gone to the school" in refused.text
    assert session.scalar(select(Decision.outcome).where(Decision.agenda_item_id == item.id)) == "support_agreed"
    saved = post(
        client, f"{base}/summary", {"text": "Quorate; two referrals.", "base_version": "1"}, **{"X-Autosave": "1"}
    )
    assert saved.status_code == 200 and saved.json()["version"] == 2
    assert session.scalar(select(Minute.summary).where(Minute.meeting_id == clinic)) == "Quorate; two referrals."


def test_the_room_of_a_meeting_whose_minutes_are_circulated(client, session_factory, session, clinic):
    sign_in(client, session_factory, COORDINATOR)
    with transaction(session_factory) as s:
        s.get(Meeting, clinic).status = MeetingStatus.minutes_circulated
    page = client.get(f"/meetings/{clinic}/room")
    assert page.status_code == 200
    assert "The meeting is over" in page.text and "minutes have been circulated" in page.text
    assert f'href="/meetings/{clinic}/minutes"' in page.text


def test_a_past_meeting_never_closed_says_it_was_not_held(client, session_factory, session, clock):
    _, meetings = load_demo_series(session_factory, DEMO_MONDAY)
    meeting_id = meetings[date(2026, 12, 3)]
    clock.at = ON_THE_DAY + timedelta(days=7)
    sign_in(client, session_factory, COORDINATOR)
    page = room(client, meeting_id).text
    assert "was not held here" in page and "no agenda" in page
    assert "opens on the day of the meeting" not in page
    assert "Changes are saved" not in page


def test_plain_words_for_replies_and_states(client, session_factory, session, clinic):
    sign_in(client, session_factory, COORDINATOR)
    base = f"/meetings/{clinic}/room"
    post(client, f"{base}/open", {})
    page = room(client, clinic).text
    assert "needs action" not in page and "Reply: No reply" in page
    assert "In progress: started at 1:30pm" in page
    assert "Papers sent:" not in page


def test_contribution_sharing_chosen_without_a_script(client, session_factory, session, clinic):
    sign_in(client, session_factory, COORDINATOR)
    base = f"/meetings/{clinic}/room"
    post(client, f"{base}/open", {})
    item = first_referral_item(session, clinic)
    camhs = session.scalar(select(Agency.id).where(Agency.code == "CAMHS"))
    page = room(client, clinic).text
    assert f'id="contribution-{item.id}-{camhs}-visibility"' in page
    # Every agency CAMHS shares with by default is sent with the form, invited to this meeting or not.
    for code in ("CAMHS", "HEALTH", "LADO", "MASH", "SAFEGUARDING", "SOCIAL_CARE"):
        assert f'value="{code}" data-sharing-of="contribution-{item.id}-{camhs}"' in page, code
    assert f'value="POLICE" data-sharing-of="contribution-{item.id}-{camhs}" checked' not in page
    response = client.post(
        f"{base}/items/{item.id}/contributions/{camhs}",
        data={
            "csrf_token": csrf_from(page),
            "text": "Open to CAMHS",
            "base_version": "0",
            "visibility": "named_agencies",
            "visible_to_agencies": ["CAMHS", "MASH"],
        },
    )
    assert response.status_code == 303
    row = session.scalar(select(Contribution).where(Contribution.agenda_item_id == item.id))
    assert (row.visibility, row.visible_to_agencies) == ("named_agencies", ["CAMHS", "MASH"])


def test_autosave_checks_its_own_text(client, session_factory, session, clinic):
    sign_in(client, session_factory, COORDINATOR)
    base = f"/meetings/{clinic}/room"
    post(client, f"{base}/open", {})
    item = first_referral_item(session, clinic)
    post(client, f"{base}/items/{item.id}/decision", {"option": "support_agreed", "rationale": "Agreed"})
    auto = {"X-Autosave": "1"}
    url = f"{base}/items/{item.id}/decision"
    assert post(client, f"{url}/dissent", {"text": "Police disagree", "base_version": "1", "base_text": ""}, **auto)
    ours = post(
        client, f"{url}/rationale", {"text": "Agreed by most", "base_version": "1", "base_text": "Agreed"}, **auto
    )
    assert ours.status_code == 200 and ours.json()["version"] == 3
    stale = post(client, f"{url}/dissent", {"text": "None", "base_version": "3", "base_text": ""}, **auto)
    assert stale.status_code == 409
    assert stale.json() == {"theirs": "Police disagree", "yours": "None", "version": 3}
    # The whole decision form carries the texts its page saw: a stale one is refused, a fresh one saved.
    stale_form = {"option": "closed", "rationale": "Agreed by most", "dissent": "", "base_version": "3"}
    stale_form.update(base_option="support_agreed", base_rationale="Agreed by most", base_dissent="")
    stale_form.update(base_service_name="", base_review_on="")
    refused = post(client, url, stale_form)
    assert refused.status_code == 409 and "Police disagree" in refused.text
    page = room(client, clinic).text
    assert 'name="base_dissent" value="Police disagree"' in page
    fresh = dict(stale_form, dissent="Police disagree", base_dissent="Police disagree")
    assert post(client, url, fresh).status_code == 303
    session.expire_all()
    decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item.id))
    assert (decision.outcome, decision.dissent) == ("closed", "Police disagree")
