"""Meeting pages through the real app with the demo borough: who may see what, agenda edits, papers download."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from agencies.models import Agency, Person
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import agenda
from meetings.demo import COORDINATOR
from meetings.models import AgendaItem, Invitation, Meeting, MeetingStatus, Referral
from notifications.models import OutboundMessage
from tests.factories import DEMO_MONDAY, load_demo_series, make_submitted_referral, send_papers
from tests.web.conftest import csrf_from, sign_in

CLINIC = date(2026, 12, 3)  # the demo lists Kofi's referral on this clinic
CAMHS_REP = "camhs.rep@kestrelford.example.org"
POLICE_REP = "police.rep@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock):
    """The demo borough, with the CAMHS rep invited to the 3 December clinic; returns its meeting id."""
    meeting_id = load_demo_series(session_factory, clock.now())[1][CLINIC]
    with transaction(session_factory) as session:
        rep = session.scalar(select(Person).where(Person.email == CAMHS_REP))
        camhs = session.scalar(select(Agency).where(Agency.code == "CAMHS"))
        if session.scalar(
            select(Invitation).where(Invitation.meeting_id == meeting_id, Invitation.person_id == rep.id)
        ):
            return meeting_id  # the invitation sweep's own demo data may have made it already
        session.add(Invitation(meeting_id=meeting_id, person_id=rep.id, agency_id=camhs.id, role="member"))
        return meeting_id


def accepted_referral(session_factory, clock) -> tuple[int, str]:
    """A referral accepted but not yet on any agenda."""
    referral_id, reference = make_submitted_referral(
        session_factory, clock.now(), urn="900001", referrer_email="dsl@alderbrook.example.org"
    )
    with transaction(session_factory) as session:
        session.get(Referral, referral_id).status = "accepted"
    return referral_id, reference


def listed(session, meeting_id) -> list[str]:
    session.expire_all()
    return [i.referral.reference for i in agenda.listed_items(session.get(Meeting, meeting_id))]


def test_coordinator_sees_upcoming_meetings_and_the_agenda_with_slots(client, session_factory, session, demo):
    sign_in(client, session_factory, COORDINATOR)
    page = client.get("/meetings")
    assert page.status_code == 200
    assert f'href="/meetings/{demo}"' in page.text
    assert "Thursday 3 December 2026, 1:30pm" in page.text and "1 of 8" in page.text
    upcoming, recent = page.text.split('id="recent"')
    assert "Thursday 12 November" not in upcoming  # past meetings are listed apart, with their minutes
    assert "Thursday 12 November 2026, 1:30pm" in recent

    detail = client.get(f"/meetings/{demo}")
    assert detail.status_code == 200
    [reference] = listed(session, demo)
    assert reference in detail.text and "13:30 to 13:45" in detail.text
    assert "Kestrelford Academy" in detail.text and "Add a referral" in detail.text
    assert f'href="/meetings/{demo}/attendance"' in detail.text and f'href="/admin/meetings/{demo}"' in detail.text
    assert f'href="/meetings/{demo}/rsvp"' not in detail.text  # no invitation has gone out to them yet


def test_school_referrers_and_uninvited_reps_are_refused(client, session_factory, settings, demo):
    sign_in(client, session_factory, "dsl@alderbrook.example.org")
    assert client.get("/meetings").status_code == 403
    assert client.get(f"/meetings/{demo}").status_code == 403
    assert client.get(f"/meetings/{demo}/papers").status_code == 403

    send_papers(session_factory, settings, demo)
    client.cookies.clear()
    sign_in(client, session_factory, POLICE_REP)
    assert f'href="/meetings/{demo}"' not in client.get("/meetings").text
    assert client.get(f"/meetings/{demo}").status_code == 403
    assert client.get(f"/meetings/{demo}/papers").status_code == 403


def test_an_invited_rep_downloads_their_agency_pack_and_it_is_audited(
    client, session_factory, session, settings, demo, clock
):
    sign_in(client, session_factory, CAMHS_REP)
    page = client.get("/meetings")
    assert f'href="/meetings/{demo}"' in page.text
    detail = client.get(f"/meetings/{demo}")
    assert detail.status_code == 200 and "Add a referral" not in detail.text and "/items/" not in detail.text

    before = client.get(f"/meetings/{demo}/papers")
    assert before.status_code == 404 and "There are no papers for you yet" in before.text

    send_papers(session_factory, settings, demo)
    clock.at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # the papers went at 09:01
    client.cookies.clear()
    sign_in(client, session_factory, CAMHS_REP)
    response = client.get(f"/meetings/{demo}/papers")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith('attachment; filename="papers-2026-12-03-v1-camhs.pdf"')
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert "Kofi Thistlethorpe" in text
    assert "Health and wellbeing" in text and "Community safety" not in text  # CAMHS is in the health group
    downloads = session.scalars(select(AuditEvent).where(AuditEvent.action == "papers.downloaded")).all()
    assert len(downloads) == 1 and downloads[0].detail["meeting_id"] == demo


def test_the_coordinator_gets_the_full_pack(client, session_factory, settings, demo):
    send_papers(session_factory, settings, demo)
    sign_in(client, session_factory, COORDINATOR)
    response = client.get(f"/meetings/{demo}/papers")
    assert response.status_code == 200
    assert 'filename="papers-2026-12-03-v1.pdf"' in response.headers["content-disposition"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert "Health and wellbeing" in text and "Community safety" in text


def test_coordinator_adds_moves_and_removes_items(client, session_factory, session, clock, demo):
    referral_id, reference = accepted_referral(session_factory, clock)
    [kofi] = listed(session, demo)
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/meetings/{demo}")
    assert f'<option value="{referral_id}"' in page.text

    # Nothing chosen: the page comes back with the problem.
    refused = client.post(f"/meetings/{demo}/items", data={"referral_id": "", "csrf_token": csrf_from(page.text)})
    assert refused.status_code == 400 and "Choose a referral to add" in refused.text
    assert listed(session, demo) == [kofi]

    added = client.post(
        f"/meetings/{demo}/items", data={"referral_id": str(referral_id), "csrf_token": csrf_from(page.text)}
    )
    assert added.status_code == 303
    banner = client.get(added.headers["location"])
    assert "The referral has been added to the agenda." in banner.text
    assert listed(session, demo) == [kofi, reference]

    new_item = session.scalar(select(AgendaItem).where(AgendaItem.referral_id == referral_id))
    moved = client.post(
        f"/meetings/{demo}/items/{new_item.id}/move", data={"direction": "up", "csrf_token": csrf_from(page.text)}
    )
    assert moved.status_code == 303
    assert listed(session, demo) == [reference, kofi]
    assert "13:30 to 13:45" in client.get(f"/meetings/{demo}").text

    removed = client.post(
        f"/meetings/{demo}/items/{new_item.id}/remove", data={"to": "next", "csrf_token": csrf_from(page.text)}
    )
    assert removed.status_code == 303
    assert "moved to the next meeting" in client.get(removed.headers["location"]).text
    assert listed(session, demo) == [kofi]
    next_meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == CLINIC + timedelta(days=7)))
    assert listed(session, next_meeting.id) == [reference]
    notices = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "agenda_item_moved")).all()
    assert notices and {"dsl@alderbrook.example.org", "eip.north@kestrelford.example.org"} <= {
        n.recipient for n in notices
    }
    for notice in notices:
        assert "coordinator has moved referral " + reference in notice.body_text
        assert "Thursday 10 December 2026" in notice.body_text and "Juniper" not in notice.body_text

    # Without the CSRF token nothing happens.
    kofi_item = session.scalar(select(AgendaItem).where(AgendaItem.meeting_id == demo))
    forged = client.post(f"/meetings/{demo}/items/{kofi_item.id}/remove", data={"to": "off"})
    assert forged.status_code == 403
    assert listed(session, demo) == [kofi]


def test_after_papers_a_change_warns_and_marks_the_agenda_changed(client, session_factory, session, settings, demo):
    send_papers(session_factory, settings, demo)
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/meetings/{demo}")
    assert "updated papers go to everyone invited" in page.text
    item = session.scalar(select(AgendaItem).where(AgendaItem.meeting_id == demo))
    response = client.post(
        f"/meetings/{demo}/items/{item.id}/remove", data={"to": "off", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 303
    session.expire_all()
    meeting = session.get(Meeting, demo)
    assert meeting.status == MeetingStatus.papers_sent and meeting.agenda_changed_at is not None
    assert session.scalar(select(func.count()).where(AuditEvent.action == "agenda.item_removed")) == 1


def test_an_agenda_that_can_no_longer_change_says_so(client, session_factory, session, demo):
    with transaction(session_factory) as s:
        s.get(Meeting, demo).status = MeetingStatus.held
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/meetings/{demo}")
    assert "/items/" not in page.text
    item = session.scalar(select(AgendaItem).where(AgendaItem.meeting_id == demo))
    response = client.post(
        f"/meetings/{demo}/items/{item.id}/move", data={"direction": "down", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 409 and "can no longer be changed" in response.text


def test_a_held_meeting_shows_the_agenda_it_had_with_each_decision(client, session_factory, session, demo):
    """The 12 November clinic discussed one referral: its page and the list count it, with the decision."""
    held = load_demo_series(session_factory, DEMO_MONDAY)[1][date(2026, 11, 12)]
    [item] = session.scalars(select(AgendaItem).where(AgendaItem.meeting_id == held)).all()
    sign_in(client, session_factory, COORDINATOR)

    page = client.get(f"/meetings/{held}")
    assert page.status_code == 200
    assert "Nothing is on the agenda yet" not in page.text and "0 of 8" not in page.text
    assert "The agenda as it was at the meeting: 1 item." in page.text
    assert item.referral.reference in page.text and "13:30 to 13:45" in page.text
    assert "Support agreed" in page.text and ">New<" in page.text.replace("\n", "").replace(" ", "")

    recent = client.get("/meetings").text.split('id="recent"')[1]
    row = recent[recent.index(f'href="/meetings/{held}"') :].split("</tr>")[0]
    assert '<td class="govuk-table__cell">1</td>' in row
    assert f'href="/meetings/{held}/minutes">Circulated: open for corrections</a>' in row


def test_the_coordinators_home_links_minutes_to_do_and_overdue_actions(client, session_factory, clock, demo):
    from meetings.models import Minute

    held = load_demo_series(session_factory, DEMO_MONDAY)[1][date(2026, 11, 12)]
    sign_in(client, session_factory, COORDINATOR)
    home = client.get("/").text
    assert "Coming next" not in home
    assert "No minutes are waiting to be written, approved or circulated." in home
    assert 'href="/actions?tab=overdue"' in home and "overdue action" in home  # the police action due 20 November

    with transaction(session_factory) as session:
        meeting = session.get(Meeting, held)
        meeting.status = MeetingStatus.minutes_draft
        session.scalar(select(Minute).where(Minute.meeting_id == held)).status = "draft"
        chair = meeting.chair.name
    home = client.get("/").text
    assert f'href="/meetings/{held}/minutes">' in home
    assert f"minutes to approve by the chair, {chair}" in home
    assert "Overdue</strong> (due Thursday 19 November)" in home  # five working days after the meeting
