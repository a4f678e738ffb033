"""Minutes from draft to final: each reader's view (restricted sections as the papers), approval and
circulation by the right people only, PDFs read back with pypdf, corrections inside the window only,
working-day due dates, overdue alerts once each, and finalising after the window."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from agencies.models import Agency, Person
from caseconf.db import transaction
from caseconf.errors import Conflict, Forbidden, Invalid
from meetings import minutes
from meetings.access import principal_for
from meetings.documents import document_path
from meetings.edits import EditConflict
from meetings.models import (
    Action,
    AgendaItem,
    Attendance,
    Contribution,
    CorrectionStatus,
    Decision,
    Document,
    DocumentKind,
    Meeting,
    MeetingSeries,
    MeetingStatus,
    Minute,
    MinutesStatus,
    OutcomeOption,
    Visibility,
)
from notifications import minutes_mail
from notifications.models import OutboundMessage
from tests.factories import DEMO_MONDAY, MAIL, load_demo_invited

CLINIC_DAY = date(2026, 12, 3)  # Thursday
ENDED = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
CHAIR = "eip.east@kestrelford.example.org"
COORDINATOR = "clinic.coordinator@kestrelford.example.org"
CAMHS = "camhs.rep@kestrelford.example.org"
POLICE = "police.rep@kestrelford.example.org"
SAFEGUARDING = "safeguarding.rep@kestrelford.example.org"

HEALTH_MARK = "Healthmarker sleep clinic review"
SAFETY_MARK = "Safetymarker seen near the station"
SHARED_MARK = "Sharedmarker school nurse drop in"
CAMHS_ONLY_MARK = "Camhsonlymarker chair only note"
POLICE_NAMED_MARK = "Policenamedmarker for police eyes"


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def person(session, email: str) -> Person:
    return session.scalar(select(Person).where(Person.email == email))


def agency(session, code: str) -> Agency:
    return session.scalar(select(Agency).where(Agency.code == code))


def held_meeting(session_factory) -> int:
    """The demo clinic of 3 December, held and minuted in draft, set up row by row as the meeting room
    leaves it: attendance, a decision with dissent, two actions (one for the school) and a contribution of
    each visibility; the referral's health and community safety sections carry marker text."""
    meeting = load_demo_invited(session_factory, DEMO_MONDAY, on=CLINIC_DAY)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting.id)
        coordinator = person(s, COORDINATOR)
        meeting.started_at = datetime(2026, 12, 3, 13, 30, tzinfo=UTC)
        meeting.ended_at = ENDED
        meeting.confidentiality_read = True
        meeting.status = MeetingStatus.minutes_draft
        meeting.papers_sent_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        for invitation in meeting.invitations:
            invitation.attendance = Attendance.present
        police_invite = next(i for i in meeting.invitations if i.person.email == POLICE)
        police_invite.attendance = Attendance.information_sent
        police_invite.attendance_note = "Report sent on 2 December"
        item = meeting.items[0]
        item.status = "discussed"
        item.notes = "The school described progress since the referral."
        item.notes_version = 1
        referral = item.referral
        referral.health = {"camhs_history": HEALTH_MARK}
        referral.community_safety = {"notes": SAFETY_MARK}
        referral.status = "actions_open"
        option = s.scalar(select(OutcomeOption).where(OutcomeOption.code == "support_agreed"))
        s.add(
            Decision(
                agenda_item_id=item.id,
                outcome=option.effect,
                option_id=option.id,
                rationale="Needs persist; a coordinated plan is proportionate.",
                dissent="Police would have preferred a strategy discussion.",
                decided_at=ENDED,
                recorded_by_id=coordinator.id,
            )
        )
        camhs = agency(s, "CAMHS")
        s.add_all(
            [
                Action(
                    agenda_item_id=item.id,
                    meeting_id=meeting.id,
                    referral_id=referral.id,
                    description="Offer a CAMHS consultation to the school by the due date",
                    owner_agency_id=camhs.id,
                    owner_person_id=person(s, CAMHS).id,
                    due_on=date(2026, 12, 17),
                    created_at=ENDED,
                ),
                Action(
                    agenda_item_id=item.id,
                    meeting_id=meeting.id,
                    referral_id=referral.id,
                    description="Hold a review meeting with the family",
                    owner_school_id=referral.school_id,
                    due_on=date(2026, 12, 10),
                    involves_school=True,
                    created_at=ENDED,
                ),
            ]
        )
        for code, body, visibility, named in (
            ("EARLY_HELP", SHARED_MARK, Visibility.all_invitees, []),
            ("CAMHS", CAMHS_ONLY_MARK, Visibility.chair_only, []),
            ("MASH", POLICE_NAMED_MARK, Visibility.named_agencies, ["POLICE"]),
        ):
            s.add(
                Contribution(
                    agenda_item_id=item.id,
                    agency_id=agency(s, code).id,
                    author_id=person(s, CAMHS).id,
                    body=body,
                    visibility=visibility,
                    visible_to_agencies=named,
                    created_at=ENDED,
                    updated_at=ENDED,
                )
            )
        s.add(Minute(meeting_id=meeting.id, status=MinutesStatus.draft, summary="Quorate. One item discussed."))
        return meeting.id


@pytest.fixture
def meeting_id(session_factory):
    return held_meeting(session_factory)


def approve(session_factory, meeting_id: int, email: str = CHAIR, *, now=ENDED + timedelta(hours=2)):
    with transaction(session_factory) as s:
        return minutes.approve(s, s.get(Meeting, meeting_id), person_id=person(s, email).id, now=now).status


def circulate(session_factory, meeting_id, tmp_path, *, now=datetime(2026, 12, 7, 10, 0, tzinfo=UTC)):
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        emails = minutes_mail.circulate_minutes(
            s, meeting, person_id=person(s, COORDINATOR).id, now=now, mail=MAIL, storage_dir=tmp_path
        )
        return [e.recipient for e in emails]


def text_for(session, meeting_id: int, email: str) -> str:
    meeting = session.get(Meeting, meeting_id)
    reader = minutes.reader_for(session, principal_for(person(session, email)), meeting)
    return minutes.render_html(minutes.build(session, meeting, reader))


# ---- reading ----------------------------------------------------------------------------------------


def test_the_chair_reads_everything_and_each_agency_what_its_sharing_group_may(session, meeting_id):
    full = text_for(session, meeting_id, CHAIR)
    for mark in (HEALTH_MARK, SAFETY_MARK, SHARED_MARK, CAMHS_ONLY_MARK, POLICE_NAMED_MARK):
        assert mark in full
    assert "OFFICIAL-SENSITIVE" in full and "Support agreed" in full
    assert "no onward sharing without the agreement" in full and "Destroy after" not in full
    assert "Police would have preferred a strategy discussion." in full
    assert "Apologies, information sent: Report sent on 2 December" in full
    assert "The chair read the confidentiality statement" in full
    assert "Hold a review meeting with the family (involves the school)" in full
    assert f' (chair only)</p><p class="pre">{CAMHS_ONLY_MARK}' in full
    assert f' (shared with POLICE)</p><p class="pre">{POLICE_NAMED_MARK}' in full

    police = text_for(session, meeting_id, POLICE)
    assert "(shared with POLICE)" not in police
    assert SAFETY_MARK in police and POLICE_NAMED_MARK in police and SHARED_MARK in police
    assert HEALTH_MARK not in police and CAMHS_ONLY_MARK not in police

    camhs = text_for(session, meeting_id, CAMHS)  # its own chair-only contribution, the health section
    assert HEALTH_MARK in camhs and CAMHS_ONLY_MARK in camhs and SHARED_MARK in camhs
    assert SAFETY_MARK not in camhs and POLICE_NAMED_MARK not in camhs

    safeguarding = text_for(session, meeting_id, SAFEGUARDING)
    assert HEALTH_MARK in safeguarding and SAFETY_MARK in safeguarding
    assert CAMHS_ONLY_MARK not in safeguarding and POLICE_NAMED_MARK not in safeguarding


def test_draft_minutes_are_for_those_who_minute_and_circulated_ones_for_every_invitee(session_factory, meeting_id):
    with session_factory() as s:
        meeting = s.get(Meeting, meeting_id)
        minute = minutes.minute_of(s, meeting)
        may = {
            e: minutes.may_read(s, principal_for(person(s, e)), meeting, minute) for e in (CHAIR, COORDINATOR, POLICE)
        }
    assert may == {CHAIR: True, COORDINATOR: True, POLICE: False}


# ---- lifecycle ----------------------------------------------------------------------------------------


def test_only_the_chair_approves_and_only_once(session_factory, session, meeting_id):
    with pytest.raises(Forbidden):
        approve(session_factory, meeting_id, POLICE)
    with pytest.raises(Forbidden):
        approve(session_factory, meeting_id, COORDINATOR)
    assert approve(session_factory, meeting_id) == MinutesStatus.approved
    with pytest.raises(Conflict):
        approve(session_factory, meeting_id)
    meeting = session.get(Meeting, meeting_id)
    minute = minutes.minute_of(session, meeting)
    assert meeting.status == MeetingStatus.minutes_approved
    assert minute.approved_by_id == person(session, CHAIR).id and minute.approved_at is not None


def test_circulation_needs_approval_then_stores_a_pdf_per_view_and_emails_each_attendee(
    session_factory, session, meeting_id, tmp_path
):
    with pytest.raises(Conflict):
        circulate(session_factory, meeting_id, tmp_path)
    approve(session_factory, meeting_id)
    recipients = circulate(session_factory, meeting_id, tmp_path)
    assert len(recipients) == 9 and POLICE in recipients and CHAIR in recipients
    meeting = session.get(Meeting, meeting_id)
    minute = minutes.minute_of(session, meeting)
    assert meeting.status == MeetingStatus.minutes_circulated and minute.status == MinutesStatus.circulated
    # Monday 7 December + 10 working days: the Christmas bank holidays are not counted
    assert minute.corrections_until == date(2026, 12, 21)

    documents = session.scalars(select(Document).where(Document.kind == DocumentKind.minutes)).all()
    assert {d.agency_id for d in documents} == {None} | {agency(session, c).id for c in ("CAMHS", "POLICE")} | {
        agency(session, c).id for c in ("EARLY_HELP", "YARM", "MASH", "SAFEGUARDING", "HEALTH")
    }
    police_pdf = minutes.current_pdf(session, meeting, agency_id=agency(session, "POLICE").id)
    text = pdf_text(document_path(tmp_path, police_pdf).read_bytes())
    assert "VPHC-2026-0005" in text and "Support agreed" in text and "Safetymarker" in text
    assert "Healthmarker" not in text and "Camhsonlymarker" not in text
    full = pdf_text(document_path(tmp_path, minutes.current_pdf(session, meeting, agency_id=None)).read_bytes())
    assert "Healthmarker" in full and "Camhsonlymarker" in full

    body = session.scalar(
        select(OutboundMessage).where(OutboundMessage.recipient == POLICE, OutboundMessage.kind == "minutes_circulated")
    ).body_text
    assert f"/meetings/{meeting_id}/minutes" in body and "Monday 21 December 2026" in body
    # Running it again is refused and sends nothing more.
    with pytest.raises(Conflict):
        circulate(session_factory, meeting_id, tmp_path)
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == len(recipients) + 9  # + invites


def test_corrections_open_until_the_window_closes_and_the_chair_answers_them(session_factory, meeting_id, tmp_path):
    approve(session_factory, meeting_id)
    circulate(session_factory, meeting_id, tmp_path)  # corrections until Monday 21 December
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        item_id = meeting.items[0].id
        with pytest.raises(Invalid):
            minutes.request_correction(
                s, meeting, person_id=person(s, POLICE).id, agenda_item_id=None, body=" ", now=ENDED
            )
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, meeting_id)
        asked = minutes.request_correction(
            s,
            meeting,
            person_id=person(s, POLICE).id,
            agenda_item_id=item_id,
            body="The police report was sent on 1 December, not 2 December.",
            now=datetime(2026, 12, 21, 16, 0, tzinfo=UTC),  # the last day
        ).id
        general = minutes.request_correction(
            s, meeting, person_id=person(s, CAMHS).id, agenda_item_id=None, body="Add CAMHS to the summary.", now=ENDED
        ).id
    with transaction(session_factory) as s, pytest.raises(Forbidden):  # not invited: the school's DSL
        minutes.request_correction(
            s,
            s.get(Meeting, meeting_id),
            person_id=person(s, "dsl@kestrelford-academy.example.org").id,
            agenda_item_id=None,
            body="Not at the meeting",
            now=ENDED,
        )
    with transaction(session_factory) as s, pytest.raises(Conflict, match="Corrections closed on Monday 21 December"):
        minutes.request_correction(
            s,
            s.get(Meeting, meeting_id),
            person_id=person(s, POLICE).id,
            agenda_item_id=None,
            body="Too late",
            now=datetime(2026, 12, 22, 9, 0, tzinfo=UTC),
        )

    answered_at = datetime(2026, 12, 22, 10, 0, tzinfo=UTC)
    with transaction(session_factory) as s, pytest.raises(Forbidden):
        minutes_mail.answer_correction(
            s, s.get(Meeting, meeting_id), asked, person_id=person(s, COORDINATOR).id, accept=False,
            response="No", text=None, base_version=0, now=answered_at, mail=MAIL, storage_dir=tmp_path,
        )  # fmt: skip
    with transaction(session_factory) as s, pytest.raises(EditConflict) as stale:
        minutes_mail.answer_correction(
            s, s.get(Meeting, meeting_id), asked, person_id=person(s, CHAIR).id, accept=True,
            response="", text="Corrected notes", base_version=0, now=answered_at, mail=MAIL, storage_dir=tmp_path,
        )  # fmt: skip
    assert stale.value.theirs == "The school described progress since the referral."
    with transaction(session_factory) as s:
        answer = minutes_mail.answer_correction(
            s, s.get(Meeting, meeting_id), asked, person_id=person(s, CHAIR).id, accept=True,
            response="Thank you", text="The school described progress. Police report sent on 1 December.",
            base_version=1, now=answered_at, mail=MAIL, storage_dir=tmp_path,
        )  # fmt: skip
        assert answer.changed
        kinds = sorted({(e.kind, e.recipient == POLICE) for e in answer.emails})
        assert ("correction_answered", True) in kinds and ("minutes_circulated", False) in kinds
        assert len(answer.emails) == 1 + 9
        assert "corrected (version 2)" in answer.emails[-1].body_text
    with transaction(session_factory) as s:
        declined = minutes_mail.answer_correction(
            s, s.get(Meeting, meeting_id), general, person_id=person(s, CHAIR).id, accept=False,
            response="CAMHS is already listed as present.", text=None, base_version=0, now=answered_at,
            mail=MAIL, storage_dir=tmp_path,
        )  # fmt: skip
        assert not declined.changed and [e.recipient for e in declined.emails] == [CAMHS]
    with transaction(session_factory) as s, pytest.raises(Conflict):
        minutes_mail.answer_correction(
            s, s.get(Meeting, meeting_id), general, person_id=person(s, CHAIR).id, accept=False,
            response="Again", text=None, base_version=0, now=answered_at, mail=MAIL, storage_dir=tmp_path,
        )  # fmt: skip
    with session_factory() as s:
        meeting = s.get(Meeting, meeting_id)
        assert minutes.minute_of(s, meeting).version == 2
        assert [c.status for c in minutes.corrections(s, meeting)] == [
            CorrectionStatus.accepted,
            CorrectionStatus.declined,
        ]
        police_pdf = minutes.current_pdf(s, meeting, agency_id=agency(s, "POLICE").id)
        assert police_pdf.papers_version == 2
        assert "Police report sent on 1 December" in pdf_text(document_path(tmp_path, police_pdf).read_bytes())


def test_minutes_become_final_after_the_window_once_no_correction_is_open(session_factory, meeting_id, tmp_path):
    approve(session_factory, meeting_id)
    circulate(session_factory, meeting_id, tmp_path)
    with transaction(session_factory) as s:
        open_one = minutes.request_correction(
            s, s.get(Meeting, meeting_id), person_id=person(s, POLICE).id, agenda_item_id=None, body="Fix", now=ENDED
        ).id
    last_day = datetime(2026, 12, 21, 22, 0, tzinfo=UTC)
    after = datetime(2026, 12, 22, 6, 0, tzinfo=UTC)
    with session_factory() as s:
        assert meeting_id not in minutes_mail.meetings_due_finalise(s, now=last_day)
        assert meeting_id not in minutes_mail.meetings_due_finalise(s, now=after)  # a correction is still open
    with transaction(session_factory) as s:
        minutes_mail.answer_correction(
            s, s.get(Meeting, meeting_id), open_one, person_id=person(s, CHAIR).id, accept=False,
            response="Not needed", text=None, base_version=0, now=after, mail=MAIL, storage_dir=tmp_path,
        )  # fmt: skip
    with session_factory() as s:
        assert meeting_id in minutes_mail.meetings_due_finalise(s, now=after)
    with transaction(session_factory) as s:
        assert minutes_mail.finalise_minutes(s, meeting_id, now=after, mail=MAIL).status == MinutesStatus.final
    with transaction(session_factory) as s:
        assert minutes_mail.finalise_minutes(s, meeting_id, now=after, mail=MAIL) is None
        assert meeting_id not in minutes_mail.meetings_due_finalise(s, now=after)
        minute = minutes.minute_of(s, s.get(Meeting, meeting_id))
        assert minute.finalised_at is not None
        with pytest.raises(Conflict):
            minutes.request_correction(
                s, s.get(Meeting, meeting_id), person_id=person(s, POLICE).id, agenda_item_id=None, body="x", now=after
            )


# ---- due dates and overdue steps ---------------------------------------------------------------------


def test_due_dates_count_working_days_across_weekends_and_bank_holidays():
    series = MeetingSeries(outcome_due_working_days=1, minutes_due_working_days=5)
    thursday = Meeting(meeting_date=date(2026, 12, 3), series=series)
    assert minutes.outcome_due_on(thursday) == date(2026, 12, 4)
    assert minutes.minutes_due_on(thursday) == date(2026, 12, 10)  # over one weekend
    friday = Meeting(meeting_date=date(2026, 12, 4), series=series)
    assert minutes.outcome_due_on(friday) == date(2026, 12, 7)  # Monday
    christmas_eve = Meeting(meeting_date=date(2026, 12, 24), series=series)
    # Christmas Day, the weekend and the Boxing Day substitute (Monday 28th) are skipped
    assert minutes.outcome_due_on(christmas_eve) == date(2026, 12, 29)
    assert minutes.minutes_due_on(christmas_eve) == date(2027, 1, 5)  # and New Year's Day


def test_overdue_steps_are_flagged_to_the_chair_and_coordinator_once_each(session_factory, meeting_id):
    friday = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    late_minutes = datetime(2026, 12, 11, 9, 0, tzinfo=UTC)
    with session_factory() as s:
        meeting = s.get(Meeting, meeting_id)
        due = minutes.steps(s, meeting, now=friday)
        assert [(x.code, x.overdue) for x in due] == [("outcomes", False), ("minutes", False)]
        assert due[0].text == "Outcome to 1 school due Friday 4 December"
        assert minutes_mail.meetings_due_overdue_check(s, now=friday) == []
        assert [x.code for x in minutes.overdue_steps(s, meeting, monday)] == ["outcomes"]
        assert minutes_mail.meetings_due_overdue_check(s, now=monday) == [meeting_id]

    def flag(now):
        with transaction(session_factory) as s:
            return sorted(
                (m.recipient, m.subject) for m in minutes_mail.flag_overdue(s, meeting_id, now=now, mail=MAIL)
            )

    first = flag(monday)
    assert first == [
        (COORDINATOR, "Overdue after the clinic on Thursday 3 December 2026: outcome to schools"),
        (CHAIR, "Overdue after the clinic on Thursday 3 December 2026: outcome to schools"),
    ]
    assert flag(monday) == [] and flag(monday + timedelta(days=1)) == []
    with session_factory() as s:
        assert minutes_mail.meetings_due_overdue_check(s, now=monday) == []
    assert [subject.rsplit(": ", 1)[1] for _, subject in flag(late_minutes)] == ["minutes", "minutes"]
    with session_factory() as s:
        assert (
            s.scalar(select(func.count()).select_from(OutboundMessage).where(OutboundMessage.kind == "minutes_overdue"))
            == 4
        )
        assert (
            s.scalar(select(func.count()).select_from(AgendaItem).where(AgendaItem.outcome_sent_at.is_not(None))) == 0
        )


def test_an_inactive_chair_is_not_waited_on_by_the_overdue_check(session_factory, meeting_id):
    """Only active people are told; the check must not find the meeting due again for someone never told."""
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    with transaction(session_factory) as s:
        s.get(Meeting, meeting_id).chair.active = False
    with transaction(session_factory) as s:
        sent = minutes_mail.flag_overdue(s, meeting_id, now=monday, mail=MAIL)
    assert [m.recipient for m in sent] == [COORDINATOR]
    with session_factory() as s:
        assert minutes_mail.meetings_due_overdue_check(s, now=monday) == []
