"""Minutes on the portal: who may read a draft, the chair's approval, circulation, each agency's view and
PDF, corrections and the chair's answer, the outcome on the school's referral page, and the series'
follow-through timings on the settings form."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader
from sqlalchemy import func, select

from caseconf.audit import AuditEvent
from caseconf.db import transaction
from meetings.models import Meeting, MeetingSeries, MinuteCorrection
from notifications import minutes_mail
from notifications.models import OutboundMessage
from tests.factories import MAIL
from tests.integration.test_minutes import (
    CAMHS_ONLY_MARK,
    CHAIR,
    COORDINATOR,
    HEALTH_MARK,
    POLICE,
    SAFETY_MARK,
    held_meeting,
)
from tests.web.conftest import csrf_from, sign_in

FRIDAY = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
SCHOOL_DSL = "dsl@kestrelford-academy.example.org"


def post_form(client, url: str, data: dict):
    page = client.get(url)
    assert page.status_code == 200, page.text[:500]
    return client.post(url, data={"csrf_token": csrf_from(page.text)} | data)


def test_minutes_from_draft_to_corrected_through_the_portal(client, session_factory, clock):
    meeting_id = held_meeting(session_factory)
    url = f"/meetings/{meeting_id}/minutes"
    clock.at = FRIDAY

    sign_in(client, session_factory, POLICE)
    assert client.get(url).status_code == 403  # a draft is for those who minute the meeting
    assert client.get(f"{url}/approve").status_code == 403

    sign_in(client, session_factory, CHAIR)
    draft = client.get(url)
    assert draft.status_code == 200
    assert "Draft" in draft.text and "Outcome to 1 school due Friday 4 December" in draft.text
    assert "Overdue" not in draft.text and HEALTH_MARK in draft.text and CAMHS_ONLY_MARK in draft.text
    assert f'href="{url}/approve"' in draft.text
    draft_pdf = client.get(f"/meetings/{meeting_id}/minutes.pdf")  # a draft is built as it stands
    assert (
        draft_pdf.status_code == 200 and "draft-minutes-2026-12-03-v1.pdf" in draft_pdf.headers["content-disposition"]
    )
    assert "Camhsonlymarker" in "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(draft_pdf.content)).pages)
    approved = post_form(client, f"{url}/approve", {})
    assert approved.status_code == 303 and approved.headers["location"] == f"{url}?done=approved"
    again = client.post(f"{url}/approve", data={"csrf_token": csrf_from(draft.text)})
    assert again.status_code == 409 and "These minutes have already been approved by the chair, " in again.text

    clock.at = TUESDAY  # the outcome was due on Friday
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(url)
    assert "Overdue" in page.text and 'class="app-overdue">Outcome to 1 school due Friday 4 December' in page.text
    circulated = post_form(client, f"{url}/circulate", {})
    assert circulated.status_code == 303
    with session_factory() as s:
        sent = s.scalar(
            select(func.count()).select_from(OutboundMessage).where(OutboundMessage.kind == "minutes_circulated")
        )
    assert sent == 9

    sign_in(client, session_factory, POLICE)
    police_page = client.get(url)
    assert police_page.status_code == 200 and "Circulated" in police_page.text
    assert SAFETY_MARK in police_page.text and HEALTH_MARK not in police_page.text
    assert "What is due" not in police_page.text  # the steps after the meeting are for those who run it
    assert CAMHS_ONLY_MARK not in police_page.text
    pdf = client.get(f"/meetings/{meeting_id}/minutes.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Safetymarker" in text and "Healthmarker" not in text
    with session_factory() as s:
        assert (
            s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "minutes.downloaded")) == 2
        )

    refused = post_form(client, f"{url}/corrections/new", {"item": "general", "body": "  "})
    assert refused.status_code == 400 and "Enter the correction you are asking for" in refused.text
    assert 'href="#body"' in refused.text
    with session_factory() as s:
        item_id = s.get(Meeting, meeting_id).items[0].id
    asked = post_form(
        client, f"{url}/corrections/new", {"item": str(item_id), "body": "The report was sent on 1 December."}
    )
    assert asked.status_code == 303
    assert "Waiting for the chair" in client.get(url).text
    with session_factory() as s:
        correction_id = s.scalar(select(MinuteCorrection.id))
    assert client.get(f"{url}/corrections/{correction_id}").status_code == 403  # the chair answers

    sign_in(client, session_factory, CHAIR)
    answer_url = f"{url}/corrections/{correction_id}"
    form = client.get(answer_url)
    assert "The school described progress since the referral." in form.text
    no_reason = client.post(answer_url, data={"csrf_token": csrf_from(form.text), "answer": "decline", "response": ""})
    assert no_reason.status_code == 400 and "Say why the correction is declined" in no_reason.text
    accepted = client.post(
        answer_url,
        data={
            "csrf_token": csrf_from(form.text),
            "answer": "accept",
            "response": "Thank you",
            "text": "The school described progress. The police report was sent on 1 December.",
            "base_version": "1",
        },
    )
    assert accepted.status_code == 303 and accepted.headers["location"].endswith("done=corrected#corrections")
    corrected = client.get(url).text
    assert "The police report was sent on 1 December." in corrected and "Accepted" in corrected
    with session_factory() as s:
        kinds = dict(
            s.execute(
                select(OutboundMessage.kind, func.count())
                .where(OutboundMessage.kind.in_(("minutes_circulated", "correction_answered")))
                .group_by(OutboundMessage.kind)
            ).all()
        )
    assert kinds == {"minutes_circulated": 18, "correction_answered": 1}


def test_the_school_sees_the_decision_and_its_actions_once_told(client, session_factory, clock):
    meeting_id = held_meeting(session_factory)
    clock.at = FRIDAY
    with session_factory() as s:
        referral_id = s.get(Meeting, meeting_id).items[0].referral_id
    sign_in(client, session_factory, SCHOOL_DSL)
    before = client.get(f"/referrals/{referral_id}")
    assert before.status_code == 200 and "The clinic's decision" not in before.text
    with transaction(session_factory) as s:
        minutes_mail.send_outcomes(s, meeting_id, now=FRIDAY, mail=MAIL)
    after = client.get(f"/referrals/{referral_id}").text
    assert "The clinic's decision" in after and "Support agreed" in after
    assert "Hold a review meeting with the family" in after and "10 December 2026" in after
    assert "Offer a CAMHS consultation" not in after  # not an action for the school
    assert "Needs persist" not in after  # the rationale stays in the minutes

    sign_in(client, session_factory, CHAIR)
    assert "The clinic's decision" not in client.get(f"/referrals/{referral_id}").text


def test_the_series_form_takes_the_follow_through_timings_as_whole_numbers_in_range(client, session_factory, clock):
    held_meeting(session_factory)
    with session_factory() as s:
        series = s.scalar(select(MeetingSeries))
        series_id = series.id
        chairs = [str(c) for c in series.chair_rotation]
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/admin/series/{series_id}/edit")
    assert 'name="outcome_due_working_days"' in page.text and 'name="blockage_working_days"' in page.text
    data = {
        "csrf_token": csrf_from(page.text),
        "start_time": "13:30",
        "duration_minutes": "120",
        "location": "Kestrelford Civic Centre",
        "capacity_items": "8",
        "item_minutes": "15",
        "cutoff_weekday": "0",
        "cutoff_time": "12:00",
        "papers_weekday": "1",
        "papers_time": "09:00",
        "quorum_min_agencies": "3",
        "quorum_check_time": "12:00",
        "invite_days_ahead": "28",
        "chair_rotation_every": "3",
        "chairs": chairs,
        "outcome_due_working_days": "0",
        "minutes_due_working_days": "five",
        "corrections_working_days": "15",
        "action_reminder_working_days": "2",
        "chase_every_working_days": "3",
        "escalate_after_chases": "2",
        "blockage_working_days": "4",
    }
    refused = client.post(f"/admin/series/{series_id}/edit", data=data)
    assert refused.status_code == 400
    assert "The working days to tell schools the outcome must be a whole number from 1 to 10" in refused.text
    assert "The working days to circulate the minutes must be a whole number from 1 to 20" in refused.text
    assert 'value="five"' in refused.text and 'href="#outcome_due_working_days"' in refused.text
    saved = client.post(
        f"/admin/series/{series_id}/edit",
        data=data | {"outcome_due_working_days": "2", "minutes_due_working_days": "7"},
    )
    assert saved.status_code == 303
    with session_factory() as s:
        series = s.get(MeetingSeries, series_id)
        assert (series.outcome_due_working_days, series.minutes_due_working_days) == (2, 7)
        assert (series.corrections_working_days, series.blockage_working_days) == (15, 4)


def demo_held_clinic(session_factory) -> int:
    """The demo's 12 November clinic, its minutes circulated by the demo itself (no PDF stored)."""
    from datetime import date

    from tests.factories import DEMO_MONDAY, load_demo_series

    return load_demo_series(session_factory, DEMO_MONDAY)[1][date(2026, 11, 12)]


def test_circulated_minutes_with_no_stored_pdf_get_one_on_first_download(client, session_factory, clock):
    from meetings.models import Document

    meeting_id = demo_held_clinic(session_factory)
    clock.at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/meetings/{meeting_id}/minutes")
    assert f'href="/meetings/{meeting_id}/minutes.pdf"' in page.text

    first = client.get(f"/meetings/{meeting_id}/minutes.pdf")
    assert first.status_code == 200 and first.headers["content-type"] == "application/pdf"
    assert "minutes-2026-11-12-v1.pdf" in first.headers["content-disposition"]
    assert "Minutes" in "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(first.content)).pages)
    with session_factory() as session:
        stored = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.meeting_id == meeting_id, Document.kind == "minutes")
        )
        built = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "minutes.pdfs_stored", AuditEvent.record_id == str(meeting_id))
        ).all()
    assert stored >= 2 and len(built) == 1  # the full minutes and the agencies' ones, built once

    assert client.get(f"/meetings/{meeting_id}/minutes.pdf").status_code == 200
    sign_in(client, session_factory, "police.rep@kestrelford.example.org")  # invited to the held clinic
    police = client.get(f"/meetings/{meeting_id}/minutes.pdf")
    assert police.status_code == 200 and "-police.pdf" in police.headers["content-disposition"]
    with session_factory() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.meeting_id == meeting_id, Document.kind == "minutes")
            )
            == stored
        )


def test_the_minutes_say_how_an_item_came_onto_the_agenda_not_the_referral_status_now(client, session_factory, clock):
    from meetings.models import AgendaItem, ReferralStatusChange

    meeting_id = demo_held_clinic(session_factory)
    with transaction(session_factory) as session:
        [item] = session.scalars(select(AgendaItem).where(AgendaItem.meeting_id == meeting_id)).all()
        referral = item.referral
        reference = referral.reference
        at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # after the meeting: the decision put it into review
        session.add(
            ReferralStatusChange(
                referral_id=referral.id, from_status=referral.status, to_status="review", changed_at=at
            )
        )
        referral.status = "review"
    clock.at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/meetings/{meeting_id}/minutes").text
    heading = page[page.index(reference) :].split("</h2>")[0]
    assert '<span class="govuk-caption-m">New</span>' in heading
    assert "Review" not in heading
    meeting_page = client.get(f"/meetings/{meeting_id}").text
    row = meeting_page[meeting_page.index(reference) :].split("</tr>")[0]
    assert ">New<" in row and ">Review<" not in row


def test_before_approval_the_coordinator_is_told_the_chair_must_approve_and_who_that_is(client, session_factory, clock):
    meeting_id = held_meeting(session_factory)
    url = f"/meetings/{meeting_id}/minutes"
    clock.at = FRIDAY
    with session_factory() as session:
        chair = session.get(Meeting, meeting_id).chair.name
    sign_in(client, session_factory, COORDINATOR)

    page = client.get(url).text
    assert f"Waiting for approval by the chair, {chair}." in page
    assert f'href="{url}/circulate"' not in page and f'href="{url}/approve"' not in page

    circulate = client.get(f"{url}/circulate")
    assert circulate.status_code == 200
    assert f"The minutes must be approved by the chair, {chair}, before they can be circulated." in circulate.text
    assert f'action="{url}/circulate"' not in circulate.text  # no button that would then refuse

    approve = client.get(f"{url}/approve")
    assert approve.status_code == 200
    assert f"Only the chair, {chair}, can approve these minutes." in approve.text
    assert f'action="{url}/approve"' not in approve.text
    assert client.post(f"{url}/approve", data={"csrf_token": csrf_from(page)}).status_code == 403

    refused = client.post(f"{url}/circulate", data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 409 and f"approved by the chair, {chair}, before" in refused.text


def test_a_review_at_a_date_reads_as_that_date_to_the_school_not_as_due(client, session_factory, clock):
    from datetime import date

    from meetings.models import Decision, Referral

    meeting_id = held_meeting(session_factory)
    clock.at = FRIDAY
    with transaction(session_factory) as s:
        item = s.get(Meeting, meeting_id).items[0]
        decision = s.scalar(select(Decision).where(Decision.agenda_item_id == item.id))
        decision.outcome, decision.review_on = "review_on_date", date(2027, 1, 14)
        s.get(Referral, item.referral_id).status = "review"
        referral_id = item.referral_id
        minutes_mail.send_outcomes(s, meeting_id, now=FRIDAY, mail=MAIL)
    sign_in(client, session_factory, SCHOOL_DSL)
    page = client.get(f"/referrals/{referral_id}").text
    assert "Review on 14 January 2027" in page and "Due for review" not in page

    clock.at = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)  # the date has come: now it is due
    sign_in(client, session_factory, SCHOOL_DSL)
    assert "Due for review" in client.get(f"/referrals/{referral_id}").text
