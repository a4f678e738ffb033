"""Referral drafting, submission and every status change, on a real database with the demo borough."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from agencies.models import Person, School
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid
from meetings import referrals
from meetings.demo import load_demo
from meetings.models import AgendaItem, Referral, ReferralStatus, ReferralStatusChange
from notifications.catcher import read_maildir, start_catcher
from notifications.delivery import deliver_pending
from notifications.emails import MailContext, queue_referral_status, queue_referral_submitted
from tests.referral_answers import CHILD_DOB, CHILD_FIRST, CHILD_LAST, VALID

MAIL = MailContext(base_url="http://127.0.0.1:8000", mail_domain="kestrelford.example.org", team_name="Team")


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def borough(session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        people = {p.email: p.id for p in session.scalars(select(Person))}
        schools = {s.urn: s.id for s in session.scalars(select(School))}
    return {"people": people, "schools": schools}


def new_referral(session_factory, clock, borough, *, urn="900004", answers=VALID) -> int:
    referrer = borough["people"]["dsl@alderbrook.example.org"]
    with transaction(session_factory) as session:
        referral = referrals.start_referral(
            session, school_id=borough["schools"][urn], referrer_id=referrer, now=clock.now()
        )
        for key, page_answers in answers.items():
            referrals.save_page(
                session, referral=referral, key=key, answers=page_answers, now=clock.now(), person_id=referrer
            )
        return referral.id


def submit(session_factory, clock, borough, referral_id) -> str:
    referrer = borough["people"]["dsl@alderbrook.example.org"]
    with transaction(session_factory) as session:
        referral = referrals.get_referral(session, referral_id)
        referrals.submit_referral(session, referral=referral, now=clock.now(), person_id=referrer)
        queue_referral_submitted(session, mail=MAIL, now=clock.now(), referral=referral)
        return referral.reference


def test_a_complete_referral_submits_with_a_reference_and_history(session_factory, session, clock, borough):
    referral_id = new_referral(session_factory, clock, borough)
    reference = submit(session_factory, clock, borough, referral_id)
    assert reference == "VPHC-2026-0008"  # the demo has issued seven already this year
    referral = session.get(Referral, referral_id)
    assert referral.status == ReferralStatus.submitted
    assert referral.child.legal_first_name == CHILD_FIRST
    assert str(referral.attendance_percent) == "82.5"
    assert referral.reasons == ["not_attending", "ebsa"]
    assert [(c.from_status, c.to_status) for c in referral.history] == [(None, "draft"), ("draft", "submitted")]
    assert (
        session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "referral.submitted"))
        == 1
    )


def test_what_was_typed_is_kept_even_when_wrong(session_factory, session, clock, borough):
    referrer = borough["people"]["dsl@alderbrook.example.org"]
    bad = {**VALID["suspensions"], "suspensions_this_half_term": "3", "suspension_dates": "9 9 2026"}
    with transaction(session_factory) as s:
        referral = referrals.start_referral(
            s, school_id=borough["schools"]["900001"], referrer_id=referrer, now=clock.now()
        )
        result = referrals.save_page(
            s, referral=referral, key="suspensions", answers=bad, now=clock.now(), person_id=referrer
        )
        referral_id = referral.id
    assert "cannot be more than this year" in result.errors["suspensions_this_half_term"]
    stored = session.get(Referral, referral_id)
    assert stored.draft_answers["suspensions"]["suspensions_this_half_term"] == "3"
    assert stored.suspensions_this_year is None and stored.suspension_dates == []  # nothing invalid is kept


def test_submission_is_refused_until_every_page_and_consent_are_done(session_factory, clock, borough):
    no_consent = {k: v for k, v in VALID.items() if k != "consent"}
    referral_id = new_referral(session_factory, clock, borough, answers=no_consent)
    with pytest.raises(Invalid) as caught:
        submit(session_factory, clock, borough, referral_id)
    assert caught.value.problems == {"consent": "Complete 'Consent to share'"}
    without_basis = {**VALID, "consent": {"consent_status": "not_sought", "lawful_basis": "public_task"}}
    referral_id = new_referral(session_factory, clock, borough, answers=without_basis)
    with pytest.raises(Invalid):
        submit(session_factory, clock, borough, referral_id)


def test_emails_carry_the_reference_and_nothing_identifying(session_factory, settings, clock, borough):
    referral_id = new_referral(session_factory, clock, borough)
    reference = submit(session_factory, clock, borough, referral_id)
    with transaction(session_factory) as session:
        referral = referrals.get_referral(session, referral_id)
        eip = borough["people"]["eip.north@kestrelford.example.org"]
        change = referrals.request_information(
            session,
            referral=referral,
            question="Please attach the attendance report.",
            now=clock.now(),
            person_id=eip,
        )
        queue_referral_status(session, mail=MAIL, now=clock.now(), referral=referral, change=change)
    catcher = start_catcher(settings.maildir, "127.0.0.1", settings.catcher_port)
    try:
        report = deliver_pending(session_factory, settings, now=clock.now)
    finally:
        catcher.stop()
    caught = read_maildir(settings.maildir)
    assert report.sent == len(caught) == 5  # 2 school contacts + 1 EIP, then 2 status emails
    recipients = sorted(m.recipient for m in caught)
    assert recipients.count("eip.north@kestrelford.example.org") == 1
    assert recipients.count("dsl@copperbeech.example.org") == 2
    dob_forms = ("14/05/2016", "2016-05-14", "14 May 2016", "/".join(CHILD_DOB))
    for message in caught:
        whole = message.message.as_string()
        assert reference in message.subject and reference in message.part("text/plain")
        for secret in (CHILD_FIRST, CHILD_LAST, "Rowan", *dob_forms):
            assert secret not in whole
    status = [m for m in caught if "More information needed" in m.subject]
    assert len(status) == 2
    assert "Answer the Education Inclusion Partner" in status[0].part("text/plain")
    assert "Please attach" not in status[0].part("text/plain")  # the question is read on the portal


def test_every_transition_and_the_forbidden_ones(session_factory, clock, borough):
    eip = borough["people"]["eip.north@kestrelford.example.org"]
    referrer = borough["people"]["dsl@alderbrook.example.org"]
    referral_id = new_referral(session_factory, clock, borough)
    submit(session_factory, clock, borough, referral_id)
    with transaction(session_factory) as session:
        referral = referrals.get_referral(session, referral_id)
        referrals.request_information(
            session, referral=referral, question="Which days?", now=clock.now(), person_id=eip
        )
        with pytest.raises(Conflict):  # it is with the school, not in the queue
            referrals.decline(session, referral=referral, reason="No", now=clock.now(), person_id=eip)
        referrals.provide_information(session, referral=referral, answer="Mondays", now=clock.now(), person_id=referrer)
        clinic = referrals.upcoming_clinics(session, area_id=referral.school.area_id, now=clock.now())[0]
        referrals.accept_and_list(
            session, referral=referral, meeting_id=clinic.meeting.id, now=clock.now(), person_id=eip
        )
        with pytest.raises(Conflict):
            referrals.signpost(session, referral=referral, service="EPS", note="", now=clock.now(), person_id=eip)
        referrals.withdraw(session, referral=referral, reason="Family moved away", now=clock.now(), person_id=referrer)
        with pytest.raises(Conflict):
            referrals.decline(session, referral=referral, reason="Too late", now=clock.now(), person_id=eip)
        statuses = [c.to_status for c in referral.history]
    assert statuses == ["draft", "submitted", "information_requested", "submitted", "accepted", "withdrawn"]


def test_listing_respects_clinic_capacity(session_factory, session, clock, borough):
    eip = borough["people"]["eip.north@kestrelford.example.org"]
    with transaction(session_factory) as s:
        area = s.get(School, borough["schools"]["900004"]).area_id
        clinic = referrals.upcoming_clinics(s, area_id=area, now=clock.now())[0]
        meeting_id, room = clinic.meeting.id, clinic.remaining
    ids = []
    for _ in range(room + 1):
        ids.append(new_referral(session_factory, clock, borough))
        submit(session_factory, clock, borough, ids[-1])
    for referral_id in ids[:room]:
        with transaction(session_factory) as s:
            referrals.accept_and_list(
                s,
                referral=referrals.get_referral(s, referral_id),
                meeting_id=meeting_id,
                now=clock.now(),
                person_id=eip,
            )
    with pytest.raises(Invalid) as caught, transaction(session_factory) as s:
        referrals.accept_and_list(
            s, referral=referrals.get_referral(s, ids[-1]), meeting_id=meeting_id, now=clock.now(), person_id=eip
        )
    assert "full" in caught.value.problems["meeting_id"]
    assert (
        session.scalar(select(func.count()).select_from(AgendaItem).where(AgendaItem.meeting_id == meeting_id))
        == clinic.listed + room
    )
    assert session.get(Referral, ids[-1]).status == ReferralStatus.submitted  # nothing half-applied


def test_concurrent_submissions_get_distinct_sequential_references(session_factory, clock, borough):
    ids = [new_referral(session_factory, clock, borough) for _ in range(6)]
    references, errors = [], []

    def run(referral_id):
        try:
            references.append(submit(session_factory, clock, borough, referral_id))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(references) == [f"VPHC-2026-{n:04d}" for n in range(8, 14)]


def test_first_reference_of_a_new_year(session_factory, clock, borough):
    with transaction(session_factory) as session:
        assert referrals.issue_reference(session, year=2031) == "VPHC-2031-0001"
        assert referrals.issue_reference(session, year=2031) == "VPHC-2031-0002"


def test_triage_queue_is_oldest_first_with_overdue_flags(session_factory, clock, borough):
    north = borough["schools"]["900001"]
    first = new_referral(session_factory, clock, borough, urn="900001")
    submit(session_factory, clock, borough, first)  # Monday 23 November
    clock.advance(days=3)
    second = new_referral(session_factory, clock, borough, urn="900001")
    submit(session_factory, clock, borough, second)  # Thursday 26 November
    clock.advance(days=1)  # Friday 27 November: 4 working days after the first
    with transaction(session_factory) as session:
        area = session.get(School, north).area_id
        queue = referrals.triage_queue(session, area_ids=[area], now=clock.now(), triage_working_days=3)
        mine = [(e.referral.id, e.working_days, e.overdue) for e in queue if e.referral.id in (first, second)]
        other_area = referrals.triage_queue(session, area_ids=[area + 100], now=clock.now(), triage_working_days=3)
    assert mine == [(first, 4, True), (second, 1, False)]
    assert other_area == []


def test_status_history_is_written_for_each_change(session_factory, session, clock, borough):
    referral_id = new_referral(session_factory, clock, borough)
    submit(session_factory, clock, borough, referral_id)
    count = session.scalar(
        select(func.count()).select_from(ReferralStatusChange).where(ReferralStatusChange.referral_id == referral_id)
    )
    assert count == 2


def test_an_answered_question_tells_the_eip(session_factory, session, clock, borough):
    eip = borough["people"]["eip.north@kestrelford.example.org"]
    referrer = borough["people"]["dsl@alderbrook.example.org"]
    referral_id = new_referral(session_factory, clock, borough)
    reference = submit(session_factory, clock, borough, referral_id)
    with transaction(session_factory) as s:
        referral = referrals.get_referral(s, referral_id)
        asked = referrals.request_information(
            s, referral=referral, question="Which days?", now=clock.now(), person_id=eip
        )
        queue_referral_status(s, mail=MAIL, now=clock.now(), referral=referral, change=asked)
        answered = referrals.provide_information(
            s, referral=referral, answer="Mondays", now=clock.now(), person_id=referrer
        )
        queue_referral_status(s, mail=MAIL, now=clock.now(), referral=referral, change=answered)
    from notifications.models import OutboundMessage

    back = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "referral_answered")).all()
    assert [m.recipient for m in back] == ["eip.north@kestrelford.example.org"]
    assert reference in back[0].subject and "Mondays" not in back[0].body_text


def test_only_hot_clinics_for_the_referrals_area_are_offered(session_factory, session, clock, borough):
    from datetime import time as clock_time

    from agencies.models import Area
    from meetings.models import Meeting, MeetingKind, MeetingSeries
    from meetings.schedule import meeting_window

    eip = borough["people"]["eip.north@kestrelford.example.org"]
    with transaction(session_factory) as s:
        north = s.get(School, borough["schools"]["900004"]).area_id
        east = s.scalar(select(Area.id).where(Area.id != north))
        starts, ends = meeting_window(date(2026, 12, 1), clock_time(9, 0), 60)
        for name, kind, area, school in (
            ("East clinic", MeetingKind.hot_clinic, east, None),
            ("Alderbrook TAS", MeetingKind.team_around_school, None, borough["schools"]["900001"]),
        ):
            series = MeetingSeries(
                name=name,
                kind=kind,
                area_id=area,
                school_id=school,
                weekday=1,
                start_time=clock_time(9, 0),
                duration_minutes=60,
            )
            s.add(series)
            s.flush()
            s.add(
                Meeting(
                    series_id=series.id,
                    meeting_date=starts.date(),
                    start_time=clock_time(9, 0),
                    starts_at=starts,
                    ends_at=ends,
                    calendar_uid=f"{name}@test",
                )
            )
        s.flush()
        offered = {
            c.meeting.series.name for c in referrals.upcoming_clinics(s, area_id=north, now=clock.now(), limit=50)
        }
        outsider = s.scalar(select(Meeting.id).join(MeetingSeries).where(MeetingSeries.name == "East clinic"))
    assert offered == {"Kestrelford Vulnerable Pupil Hot Clinic"}
    referral_id = new_referral(session_factory, clock, borough)
    submit(session_factory, clock, borough, referral_id)
    with pytest.raises(Invalid), transaction(session_factory) as s:
        referrals.accept_and_list(
            s, referral=referrals.get_referral(s, referral_id), meeting_id=outsider, now=clock.now(), person_id=eip
        )
