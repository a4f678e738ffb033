"""The EIP's triage queue and decisions, through the real app and database with the demo borough."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from agencies.models import Person, School
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import referrals
from meetings.demo import load_demo
from meetings.models import AgendaItem, Referral, ReferralStatus
from notifications.models import OutboundMessage
from tests.referral_answers import CHILD_FIRST, VALID
from tests.web.conftest import csrf_from, sign_in


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def submitted(session_factory, clock):
    """A referral from Alderbrook Primary (North), submitted today."""
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        referrer = session.scalar(select(Person).where(Person.email == "dsl@alderbrook.example.org"))
        school = session.scalar(select(School).where(School.urn == "900001"))
        referral = referrals.start_referral(session, school_id=school.id, referrer_id=referrer.id, now=clock.now())
        for key, answers in VALID.items():
            referrals.save_page(
                session, referral=referral, key=key, answers=answers, now=clock.now(), person_id=referrer.id
            )
        referrals.submit_referral(session, referral=referral, now=clock.now(), person_id=referrer.id)
        return referral.id, referral.reference


def status_of(session, referral_id):
    session.expire_all()
    return session.get(Referral, referral_id).status


def test_queue_lists_the_area_referrals_oldest_first(client, session_factory, submitted):
    referral_id, reference = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    page = client.get("/triage")
    assert page.status_code == 200
    assert reference in page.text
    assert f'href="/triage/{referral_id}"' in page.text
    detail = client.get(f"/triage/{referral_id}")
    assert detail.status_code == 200 and CHILD_FIRST in detail.text


def test_accepting_lists_it_on_the_clinic_and_emails_the_school(client, session_factory, session, submitted, clock):
    referral_id, reference = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    with session_factory() as s:
        area = s.scalar(select(School.area_id).where(School.urn == "900001"))
        clinic = referrals.upcoming_clinics(s, area_id=area, now=clock.now())[0].meeting.id
    detail = client.get(f"/triage/{referral_id}")
    response = client.post(
        f"/triage/{referral_id}/accept", data={"meeting_id": str(clinic), "csrf_token": csrf_from(detail.text)}
    )
    assert response.status_code == 303
    banner = client.get(response.headers["location"])
    assert f"{reference} accepted and listed" in banner.text
    assert status_of(session, referral_id) == ReferralStatus.accepted
    assert (
        session.scalar(select(func.count()).select_from(AgendaItem).where(AgendaItem.referral_id == referral_id)) == 1
    )
    emails = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "referral_status")).all()
    assert emails and all(reference in m.subject and CHILD_FIRST not in m.body_text for m in emails)


def test_a_decision_without_its_details_is_refused_and_changes_nothing(client, session_factory, session, submitted):
    referral_id, _ = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    detail = client.get(f"/triage/{referral_id}")
    response = client.post(
        f"/triage/{referral_id}/signpost",
        data={"service": "", "note": "Try the EPS drop-in", "csrf_token": csrf_from(detail.text)},
    )
    assert response.status_code == 400
    assert "Enter the service you are signposting to" in response.text
    assert "Try the EPS drop-in" in response.text  # what was typed is kept
    assert status_of(session, referral_id) == ReferralStatus.submitted


def test_a_second_decision_is_a_clear_conflict(client, session_factory, session, submitted):
    referral_id, _ = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    token = csrf_from(client.get(f"/triage/{referral_id}").text)
    assert (
        client.post(f"/triage/{referral_id}/decline", data={"reason": "Single agency", "csrf_token": token}).status_code
        == 303
    )
    again = client.post(f"/triage/{referral_id}/request-information", data={"question": "Why?", "csrf_token": token})
    assert again.status_code == 409
    assert "Nothing was changed" in again.text
    assert status_of(session, referral_id) == ReferralStatus.declined


def test_other_areas_and_schools_cannot_triage(client, session_factory, submitted):
    referral_id, _ = submitted
    sign_in(client, session_factory, "eip.east@kestrelford.example.org")
    assert client.get(f"/triage/{referral_id}").status_code == 403
    assert submitted[1] not in client.get("/triage").text
    sign_in(client, session_factory, "dsl@alderbrook.example.org")
    assert client.get("/triage").status_code == 403
    assert client.get(f"/triage/{referral_id}").status_code == 403


def test_request_information_shows_in_waiting_for_schools(client, session_factory, session, submitted):
    referral_id, reference = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    token = csrf_from(client.get(f"/triage/{referral_id}").text)
    response = client.post(
        f"/triage/{referral_id}/request-information",
        data={"question": "Please add the attendance report.", "csrf_token": token},
    )
    assert response.status_code == 303
    queue = client.get("/triage").text
    waiting_part = queue.split("Waiting for schools", 1)[1]
    assert reference in waiting_part
    assert status_of(session, referral_id) == ReferralStatus.information_requested


def test_looking_at_a_referral_is_audited(client, session_factory, session, submitted):
    from caseconf.audit import AuditEvent

    referral_id, _ = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    client.get(f"/triage/{referral_id}")
    client.get(f"/referrals/{referral_id}")
    client.get(f"/referrals/{referral_id}/documents")
    session.expire_all()
    views = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "referral.viewed", AuditEvent.record_id == str(referral_id))
    ).all()
    assert [v.detail["path"] for v in views] == [
        f"/triage/{referral_id}",
        f"/referrals/{referral_id}",
        f"/referrals/{referral_id}/documents",
    ]
    assert all(v.actor_label == "eip.north@kestrelford.example.org" for v in views)


def test_the_listing_email_gives_the_clinic_date(client, session_factory, session, submitted, clock):
    referral_id, reference = submitted
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    with session_factory() as s:
        area = s.scalar(select(School.area_id).where(School.urn == "900001"))
        clinic = referrals.upcoming_clinics(s, area_id=area, now=clock.now())[0].meeting
        clinic_id, starts = clinic.id, clinic.starts_at
    token = csrf_from(client.get(f"/triage/{referral_id}").text)
    client.post(f"/triage/{referral_id}/accept", data={"meeting_id": str(clinic_id), "csrf_token": token})
    email = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "referral_status")).first()
    from caseconf.clock import london_text

    assert f"Clinic: {london_text(starts, '%A %-d %B %Y at %-I:%M%p')}" in email.body_text
    assert "1:30pm" in email.body_text
