"""The actions tracker, an action's page and its update form, and the blockages page, over HTTP and in a browser."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import blockages
from meetings.models import Action, ActionStatus, AgencyWait, Referral
from notifications.models import OutboundMessage
from tests.integration.actions_setup import at, load, make_action
from tests.web.conftest import csrf_from, shot, sign_in
from tests.web.test_triage_browser import sign_in_by_email

NOW = at(date(2026, 12, 17), 10)
CAMHS = "camhs.rep@kestrelford.example.org"
POLICE = "police.rep@kestrelford.example.org"
COORDINATOR = "clinic.coordinator@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def two_actions(session_factory):
    load(session_factory)
    camhs = make_action(session_factory, due_on=date(2026, 12, 10), now=NOW)
    police = make_action(
        session_factory,
        due_on=date(2027, 1, 20),
        now=NOW,
        agency="POLICE",
        owner_email=POLICE,
        description="Police schools officer to visit the family.",
    )
    return camhs, police


def test_an_agency_rep_sees_only_their_agencys_actions_and_can_download_them(client, session_factory, two_actions):
    camhs_id, police_id = two_actions
    sign_in(client, session_factory, CAMHS)
    page = client.get("/actions?tab=overdue")
    assert page.status_code == 200
    assert f"ACT-{camhs_id}" in page.text and f"ACT-{police_id}" not in page.text
    assert "Overdue" in page.text
    upcoming = client.get("/actions?tab=done")
    assert f"ACT-{camhs_id}" not in upcoming.text
    download = client.get("/actions.csv?tab=all")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0][0] == "Action"
    ids = {r[0] for r in rows[1:]}
    assert f"ACT-{camhs_id}" in ids and f"ACT-{police_id}" not in ids
    assert {r[3] for r in rows[1:]} == {"Kestrelford Child and Adolescent Mental Health Service"}
    with session_factory() as session:
        exported = session.scalar(select(AuditEvent).where(AuditEvent.action == "actions.exported"))
        assert exported.detail["rows"] == len(rows) - 1
    assert client.get(f"/actions/{police_id}").status_code == 403
    assert client.get("/blockages").status_code == 403


def test_an_empty_tracker_says_so(client, session_factory, two_actions):
    sign_in(client, session_factory, POLICE)
    page = client.get("/actions?tab=cancelled")
    assert 'id="empty"' in page.text and "There are no cancelled actions" in page.text


def test_the_owner_updates_an_action_from_the_portal(client, session_factory, two_actions):
    camhs_id, _ = two_actions
    sign_in(client, session_factory, CAMHS)
    page = client.get(f"/actions/{camhs_id}")
    assert page.status_code == 200 and "Update this action" in page.text and "Cancel it" not in page.text
    # A progress update with no note: the error is shown and the choice kept.
    bad = client.post(
        f"/actions/{camhs_id}",
        data={
            "kind": "update",
            "note": "",
            "due_day": "3",
            "due_month": "13",
            "due_year": "2027",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert bad.status_code == 400
    assert "There is a problem" in bad.text and "Enter a real date for the new due date" in bad.text
    assert 'value="update" checked' in bad.text and 'value="13"' in bad.text
    bad = client.post(f"/actions/{camhs_id}", data={"kind": "update", "note": "", "csrf_token": csrf_from(bad.text)})
    assert bad.status_code == 400 and "Enter the progress made" in bad.text
    good = client.post(
        f"/actions/{camhs_id}",
        data={
            "kind": "update",
            "note": "Appointment offered for 6 January",
            "due_day": "8",
            "due_month": "1",
            "due_year": "2027",
            "csrf_token": csrf_from(bad.text),
        },
    )
    assert good.status_code == 303 and good.headers["location"] == f"/actions/{camhs_id}?done=update"
    shown = client.get(good.headers["location"])
    assert "Your update has been saved" in shown.text and "Appointment offered for 6 January" in shown.text
    with session_factory() as session:
        action = session.get(Action, camhs_id)
        assert action.due_on == date(2027, 1, 8) and action.latest_update == "Appointment offered for 6 January"
    cannot = client.post(
        f"/actions/{camhs_id}",
        data={
            "kind": "cannot_do",
            "note": "Family declined",
            "reason": "circumstances_changed",
            "csrf_token": csrf_from(shown.text),
        },
    )
    assert cannot.status_code == 303
    with session_factory() as session:
        action = session.get(Action, camhs_id)
        assert action.status == ActionStatus.open and action.not_done_reason == "circumstances_changed"
        told = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "action_cannot_do")).all()
        assert [m.recipient for m in told] == [COORDINATOR]
    # No CSRF token: refused, nothing changed.
    refused = client.post(f"/actions/{camhs_id}", data={"kind": "done"})
    assert refused.status_code in (400, 403)
    with session_factory() as session:
        assert session.get(Action, camhs_id).status == ActionStatus.open


def test_the_coordinator_resolves_a_blockage(client, session_factory, two_actions):
    with transaction(session_factory) as session:
        coordinator = session.scalar(select(Person).where(Person.email == COORDINATOR))
        referral = session.scalar(select(Referral).where(Referral.status == "actions_open").order_by(Referral.id))
        mash = session.scalar(select(Agency).where(Agency.code == "MASH"))
        wait = blockages.open_wait(
            session,
            referral=referral,
            agency=mash,
            waiting_for="MASH decision",
            by_person_id=coordinator.id,
            now=at(date(2026, 12, 10)),
        )
        wait_id, reference = wait.id, referral.reference
    sign_in(client, session_factory, COORDINATOR)
    page = client.get("/blockages")
    assert page.status_code == 200 and reference in page.text and "MASH decision" in page.text
    bad = client.post(f"/blockages/{wait_id}/resolve", data={"resolution": " ", "csrf_token": csrf_from(page.text)})
    assert bad.status_code == 400 and "Enter what came back from the agency" in bad.text
    wrong = client.post(
        "/blockages",
        data={
            "reference": "VPHC-1999-0001",
            "agency_id": "",
            "waiting_for": "x",
            "flag_after": "3",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert wrong.status_code == 400 and "Choose the agency" in wrong.text and 'value="VPHC-1999-0001"' in wrong.text
    done = client.post(
        f"/blockages/{wait_id}/resolve",
        data={"resolution": "Strategy meeting held", "csrf_token": csrf_from(page.text)},
    )
    assert done.status_code == 303
    with session_factory() as session:
        assert session.get(AgencyWait, wait_id).resolved_at is not None
    assert 'id="empty"' in client.get("/blockages?done=resolved").text


def test_tracker_and_action_pages_in_a_browser(server, page, settings, session_factory, clock):
    # The server fixture has loaded the demo borough.
    action_id = make_action(session_factory, due_on=date(2026, 12, 10), now=NOW)
    sign_in_by_email(page, server, settings, session_factory, clock, CAMHS)
    page.goto(f"{server}/actions?tab=overdue")
    assert page.get_by_role("link", name=f"ACT-{action_id}").is_visible()
    shot(page, "actions-tracker")
    page.get_by_role("link", name=f"ACT-{action_id}").click()
    page.get_by_label("Progress update (it stays open)").check()
    page.get_by_role("button", name="Save update").click()
    assert page.get_by_text("Enter the progress made").first.is_visible()
    shot(page, "action-update-error")
    page.get_by_label("Note").fill("Seen at clinic on 16 December")
    page.get_by_role("button", name="Save update").click()
    assert page.get_by_text("Your update has been saved").is_visible()
    shot(page, "action-updated")


def test_the_coordinator_sees_open_actions_by_agency(client, session_factory, two_actions):
    camhs_id, _ = two_actions
    sign_in(client, session_factory, COORDINATOR)
    page = client.get("/actions")
    assert page.status_code == 200 and "Open actions by agency" in page.text
    summary = page.text.split("Open actions by agency")[1].split("</table>")[0]
    assert "Mental Health Service" in summary and "Police Schools and Youth Team" in summary
    # Most overdue first: an agency that keeps missing its actions is at the top.
    cells = [int(n) for n in re.findall(r'cell--numeric">(\d+)</td>', summary)]
    overdue = cells[1::3]
    assert overdue == sorted(overdue, reverse=True) and overdue[0] >= 1
    with session_factory() as session:
        camhs_agency = session.get(Action, camhs_id).owner_agency_id
    filtered = client.get(f"/actions?tab=open&agency={camhs_agency}")
    assert f"ACT-{camhs_id}" in filtered.text and "Open actions by agency" not in filtered.text


def test_the_chair_follows_up_the_actions_of_the_meeting_they_chaired(client, session_factory, two_actions):
    from agencies.models import Area
    from meetings.models import Meeting
    from tests.integration.actions_setup import HELD

    camhs_id, police_id = two_actions
    with session_factory() as session:
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == HELD))
        chair = meeting.chair
        school_area = session.get(Action, camhs_id).referral.school.area_id
        chair_areas = {g.area_id for g in chair.grants if g.area_id is not None}
        assert school_area not in chair_areas  # not theirs by area: only by having chaired it
        assert session.get(Area, school_area) is not None
    sign_in(client, session_factory, chair.email)
    tracker = client.get("/actions?tab=all")
    assert f"ACT-{camhs_id}" in tracker.text and f"ACT-{police_id}" in tracker.text
    page = client.get(f"/actions/{camhs_id}")
    assert page.status_code == 200
    updated = client.post(
        f"/actions/{camhs_id}",
        data={"kind": "update", "note": "Chased CAMHS by phone", "csrf_token": csrf_from(page.text)},
    )
    assert updated.status_code == 303
    with session_factory() as session:
        assert session.get(Action, camhs_id).latest_update == "Chased CAMHS by phone"


def test_the_empty_tracker_says_which_actions_it_lists(client, session_factory, two_actions):
    sign_in(client, session_factory, POLICE)
    page = client.get("/actions?tab=cancelled")
    assert "This list shows actions you own, your agency&#39;s actions" in page.text
    assert "meetings you chaired" in page.text and "once a meeting" not in page.text


def test_the_schools_referral_list_counts_the_actions_its_referral_page_shows(client, session_factory):
    from agencies.models import Role, RoleGrant
    from meetings.models import AgendaItem

    load(session_factory)
    agency_only = make_action(session_factory, due_on=date(2027, 1, 20), now=NOW)
    with session_factory() as session:
        action = session.get(Action, agency_only)
        referral = action.referral
        reference, referral_id, item_id = referral.reference, referral.id, action.agenda_item_id
        referrer = session.scalar(
            select(Person)
            .join(RoleGrant, RoleGrant.person_id == Person.id)
            .where(RoleGrant.role == Role.school_referrer, RoleGrant.school_id == referral.school_id)
        )
    sign_in(client, session_factory, referrer.email)

    def listed_count() -> int:
        row = client.get("/referrals").text.split(reference, 1)[1].split("</tr>", 1)[0]
        return int(re.findall(r"govuk-table__cell--numeric\">(\d+)<", row)[0])

    def shown_on_page() -> int:
        return client.get(f"/referrals/{referral_id}").text.count('<td class="govuk-table__cell">Open</td>')

    # An action for an agency alone is not the school's: neither the list nor the page counts it.
    assert listed_count() == shown_on_page() == 0
    involving = make_action(session_factory, due_on=date(2027, 1, 21), now=NOW, involves_school=True)
    assert listed_count() == shown_on_page() == 0  # the school has not been told the decision yet
    with transaction(session_factory) as session:
        session.get(AgendaItem, item_id).outcome_sent_at = NOW
    assert listed_count() == shown_on_page() == 1
    with transaction(session_factory) as session:
        session.get(Action, involving).status = ActionStatus.done
    assert listed_count() == 0


def test_the_action_page_links_back_to_the_tracker_the_case_and_the_meeting(client, session_factory, two_actions):
    camhs_id, _ = two_actions
    with session_factory() as session:
        action = session.get(Action, camhs_id)
        referral_id, reference, meeting_id = action.referral_id, action.referral.reference, action.meeting_id
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/actions/{camhs_id}").text
    assert 'class="govuk-back-link"' in page and 'href="/actions"' in page
    assert f'<a class="govuk-link" href="/referrals/{referral_id}">{reference}</a>' in page
    assert f'<a class="govuk-link" href="/meetings/{meeting_id}">' in page
    assert client.get(f"/meetings/{meeting_id}").status_code == 200
    assert "Needed for an update, cannot do or cancel" in page
    # The owner (an agency rep) may not cancel, nor open the referral: no word of cancelling, no link to it.
    client.cookies.clear()
    sign_in(client, session_factory, CAMHS)
    page = client.get(f"/actions/{camhs_id}").text
    assert 'href="/actions"' in page
    assert f'href="/referrals/{referral_id}"' not in page and reference in page
    assert "cancel" not in page.split('id="note-hint"', 1)[1].split("</div>", 1)[0].lower()
    assert 'value="cancelled"' not in page
    meeting_link = f'href="/meetings/{meeting_id}"' in page
    assert meeting_link == (client.get(f"/meetings/{meeting_id}").status_code == 200)


def test_an_admin_grant_does_not_widen_the_tracker_beyond_what_the_policy_lets_them_open(
    client, session_factory, two_actions
):
    """An admin runs the system, not the cases (meetings.access: no actions). A CAMHS rep who is also an admin
    sees their agency's actions, not every agency's: the tracker and its CSV list only actions they may open."""
    from agencies.models import Role, RoleGrant

    camhs_id, police_id = two_actions
    with transaction(session_factory) as session:
        rep = session.scalar(select(Person).where(Person.email == CAMHS))
        session.add(RoleGrant(person_id=rep.id, role=Role.admin))
    sign_in(client, session_factory, CAMHS)
    assert client.get(f"/actions/{police_id}").status_code == 403  # the policy: not theirs to open
    page = client.get("/actions?tab=all")
    assert page.status_code == 200 and f"ACT-{camhs_id}" in page.text
    assert f"ACT-{police_id}" not in page.text
    rows = list(csv.reader(io.StringIO(client.get("/actions.csv?tab=all").text)))
    assert {r[0] for r in rows[1:]} == {f"ACT-{camhs_id}"}
