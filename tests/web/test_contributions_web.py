"""Agency contributions on the portal, through the real app: what each invited agency reads and shares,
errors kept, a stale form showing both texts, and no adding once the meeting has started or if not invited."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from agencies.models import Agency
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from meetings.models import AgendaItem, Contribution, Meeting
from tests.factories import DEMO_MONDAY, PAPERS_SENT, load_demo_invited, send_papers
from tests.web.conftest import csrf_from, sign_in

CAMHS = "camhs.rep@kestrelford.example.org"
POLICE = "police.rep@kestrelford.example.org"
HEALTH = "health.rep@kestrelford.example.org"
LADO = "lado.rep@kestrelford.example.org"  # not a member of the clinic: never invited
COORDINATOR = "clinic.coordinator@kestrelford.example.org"
DECEMBER_CLINIC = date(2026, 12, 3)


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def clinic(session_factory, clock, settings) -> dict:
    meeting = load_demo_invited(session_factory, clock.now(), on=DECEMBER_CLINIC)
    send_papers(session_factory, settings, meeting.id)  # agencies read the cases once the papers are out
    clock.at = PAPERS_SENT + timedelta(hours=1)
    with session_factory() as session:
        item = session.scalars(
            select(AgendaItem).where(AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None))
        ).one()
        return {"meeting": meeting.id, "item": item.id, "reference": item.referral.reference}


def url(clinic) -> str:
    return f"/meetings/{clinic['meeting']}/contributions"


def post(client, clinic, page_text: str, **fields):
    data = {"csrf_token": csrf_from(page_text), "base_version": "0", "visibility": "all_invitees"} | fields
    return client.post(f"/meetings/{clinic['meeting']}/items/{clinic['item']}/contribution", data=data)


def stored(session, clinic, code: str) -> Contribution | None:
    session.expire_all()
    return session.scalar(
        select(Contribution)
        .join(Agency, Agency.id == Contribution.agency_id)
        .where(Contribution.agenda_item_id == clinic["item"], Agency.code == code)
    )


def test_a_rep_adds_health_only_information_that_police_cannot_read(client, session_factory, session, clinic):
    sign_in(client, session_factory, CAMHS)
    page = client.get(url(clinic))
    assert page.status_code == 200
    assert clinic["reference"] in page.text and "1 of 1</strong> item still needs" in page.text
    assert "Health and wellbeing (restricted)" in page.text  # CAMHS reads health
    assert "Community safety (restricted)" not in page.text
    saved = post(
        client,
        clinic,
        page.text,
        body="Open to CAMHS since March; next appointment booked.",
        visibility="named_agencies",
        agencies=["HEALTH"],
    )
    assert saved.status_code == 303
    shown = client.get(saved.headers["location"])
    assert "Your agency&#39;s information has been saved." in shown.text
    assert "0 of 1</strong> item still needs" in shown.text
    row = stored(session, clinic, "CAMHS")
    assert (row.version, row.visibility, row.visible_to_agencies) == (1, "named_agencies", ["HEALTH"])
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "contribution.added")).one()
    assert event.record_id == str(row.id) and event.detail["agency"] == "CAMHS"

    client.cookies.clear()
    sign_in(client, session_factory, POLICE)
    police = client.get(url(clinic))
    assert police.status_code == 200
    assert "Open to CAMHS since March" not in police.text
    assert "Health and wellbeing (restricted)" not in police.text and "Community safety (restricted)" in police.text
    assert "No other agency has shared anything with you about this item yet." in police.text

    client.cookies.clear()
    sign_in(client, session_factory, HEALTH)
    assert "Open to CAMHS since March" in client.get(url(clinic)).text

    client.cookies.clear()
    sign_in(client, session_factory, COORDINATOR)
    meeting_page = client.get(f"/meetings/{clinic['meeting']}")
    assert "Agencies' information" in meeting_page.text and "Open to CAMHS since March" in meeting_page.text


def test_chair_only_is_read_by_the_chair_and_not_by_other_reps(client, session_factory, session, clinic):
    sign_in(client, session_factory, POLICE)
    page = client.get(url(clinic))
    assert post(client, clinic, page.text, body="Known to the youth team.", visibility="chair_only").status_code == 303
    client.cookies.clear()
    sign_in(client, session_factory, CAMHS)
    assert "Known to the youth team." not in client.get(url(clinic)).text
    client.cookies.clear()
    sign_in(client, session_factory, COORDINATOR)
    assert "Known to the youth team." in client.get(f"/meetings/{clinic['meeting']}").text


def test_nothing_known_is_shared_as_such(client, session_factory, session, clinic):
    sign_in(client, session_factory, POLICE)
    page = client.get(url(clinic))
    assert post(client, clinic, page.text, nothing_known="yes").status_code == 303
    row = stored(session, clinic, "POLICE")
    assert row.nothing_known and row.body == ""
    client.cookies.clear()
    sign_in(client, session_factory, CAMHS)
    assert "Nothing known to this agency." in client.get(url(clinic)).text


def test_mistakes_are_shown_with_what_was_typed_kept(client, session_factory, session, clinic):
    sign_in(client, session_factory, CAMHS)
    page = client.get(url(clinic))
    empty = post(client, clinic, page.text, body="  ", visibility="chair_only")
    assert empty.status_code == 400
    assert "There is a problem" in empty.text
    assert f'href="#body-{clinic["item"]}"' in empty.text
    assert "Enter your agency&#39;s information, or mark that your agency knows nothing" in empty.text
    assert re.search(r'value="chair_only" checked', empty.text)  # the choice is kept

    unnamed = post(client, clinic, page.text, body="Seen in clinic last week.", visibility="named_agencies")
    assert unnamed.status_code == 400
    assert "Choose at least one agency that may see this" in unnamed.text
    assert "Seen in clinic last week." in unnamed.text
    both = post(client, clinic, page.text, body="Seen.", nothing_known="yes")
    assert both.status_code == 400 and "not both" in both.text
    assert stored(session, clinic, "CAMHS") is None


def test_a_stale_form_shows_both_texts_and_overwrites_nothing(client, session_factory, session, clinic):
    sign_in(client, session_factory, CAMHS)
    first = client.get(url(clinic))  # two tabs opened at version 0
    second = client.get(url(clinic))
    assert post(client, clinic, first.text, body="Text from the first tab.").status_code == 303
    stale = post(client, clinic, second.text, body="Text from the second tab.")
    assert stale.status_code == 409
    assert "Text from the first tab." in stale.text and "Text from the second tab." in stale.text
    assert 'name="base_version" value="1"' in stale.text
    assert stored(session, clinic, "CAMHS").body == "Text from the first tab."
    # Saving again from the conflict page keeps the second text on purpose.
    again = post(client, clinic, stale.text, body="Text from the second tab.", base_version="1")
    assert again.status_code == 303
    row = stored(session, clinic, "CAMHS")
    assert (row.body, row.version) == ("Text from the second tab.", 2)


def test_a_rep_who_is_not_invited_is_refused(client, session_factory, session, clinic):
    sign_in(client, session_factory, LADO)
    assert client.get(url(clinic)).status_code == 403
    csrf_page = client.get("/my-meetings")
    refused = post(client, clinic, csrf_page.text, body="Not invited.")
    assert refused.status_code == 403
    assert stored(session, clinic, "LADO") is None


def test_once_the_room_is_opened_nothing_more_can_be_added(client, session_factory, session, clinic):
    sign_in(client, session_factory, CAMHS)
    page = client.get(url(clinic))
    with session_factory.begin() as s:
        meeting = s.get(Meeting, clinic["meeting"])
        meeting.started_at = meeting.starts_at - timedelta(minutes=10)  # the chair opened the room early
    late = post(client, clinic, page.text, body="Too late.")
    assert late.status_code == 403
    assert stored(session, clinic, "CAMHS") is None
    closed = client.get(url(clinic))
    assert closed.status_code == 200 and "agencies can no longer add or change their information" in closed.text
    assert f"/items/{clinic['item']}/contribution" not in closed.text  # no form


def test_once_the_start_time_has_come_nothing_more_can_be_added(client, session_factory, session, clinic, clock):
    clock.at = session.get(Meeting, clinic["meeting"]).starts_at + timedelta(minutes=1)
    sign_in(client, session_factory, CAMHS)
    page = client.get(url(clinic))
    assert "agencies can no longer add or change their information" in page.text
    late = post(client, clinic, page.text, body="Too late.")
    assert late.status_code == 403
    assert stored(session, clinic, "CAMHS") is None


def test_your_meetings_says_how_many_items_still_need_the_agency(client, session_factory, session, clinic):
    sign_in(client, session_factory, CAMHS)
    listing = client.get("/my-meetings")
    assert listing.status_code == 200
    assert "1 of 1 item to add" in listing.text
    page = client.get(url(clinic))
    post(client, clinic, page.text, body="Known to CAMHS.")
    assert "All 1 added" in client.get("/my-meetings").text
