"""The meeting room page and its endpoints through the web app: who may use it, the plain forms (no script),
and the autosave endpoints' JSON answers."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from agencies.models import Agency
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from meetings.models import Action, AgendaItem, AgendaItemKind, Decision, Invitation, Meeting, MeetingStatus, Referral
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
