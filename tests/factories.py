"""Plain, deterministic builders for test data. Each adds and flushes; the caller commits."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Area, Person, Role, RoleGrant, School
from caseconf.db import transaction
from meetings.demo import SERIES_NAME, load_demo
from meetings.models import Meeting, MeetingSeries
from notifications import invites
from notifications.emails import MailContext

# The Monday before the demo borough's 26 November clinic.
DEMO_MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MAIL = MailContext(base_url="http://127.0.0.1:8000", mail_domain="kestrelford.example.org", team_name="Team")


def make_area(session: Session, *, code: str = "N", name: str = "North") -> Area:
    area = Area(code=code, name=name)
    session.add(area)
    session.flush()
    return area


def make_school(session: Session, *, area: Area, urn: str = "900001", name: str = "Alderbrook Primary") -> School:
    school = School(
        urn=urn,
        name=name,
        phase="primary",
        area_id=area.id,
        email=f"office@{urn}.example.org",
        safeguarding_email=f"dsl@{urn}.example.org",
    )
    session.add(school)
    session.flush()
    return school


def make_agency(session: Session, *, code: str = "CAMHS", name: str = "CAMHS", group: str = "health") -> Agency:
    agency = Agency(code=code, name=name, mailbox=f"{code.lower()}@kestrelford.example.org", sharing_group=group)
    session.add(agency)
    session.flush()
    return agency


def make_person(
    session: Session,
    *,
    email: str,
    name: str = "Test Person",
    role: Role | None = None,
    active: bool = True,
    **scope: int,
) -> Person:
    person = Person(name=name, email=email.lower(), active=active)
    session.add(person)
    session.flush()
    if role is not None:
        session.add(RoleGrant(person_id=person.id, role=role, **scope))
        session.flush()
    return person


def make_submitted_referral(session_factory, now, *, urn: str, referrer_email: str, answers=None) -> tuple[int, str]:
    """A referral filled in with the valid answers and submitted; returns (id, reference)."""
    from meetings import referrals
    from tests.referral_answers import VALID

    with transaction(session_factory) as session:
        referrer = session.scalar(select(Person).where(Person.email == referrer_email))
        school = session.scalar(select(School).where(School.urn == urn))
        referral = referrals.start_referral(session, school_id=school.id, referrer_id=referrer.id, now=now)
        for key, page in (answers or VALID).items():
            referrals.save_page(session, referral=referral, key=key, answers=page, now=now, person_id=referrer.id)
        referrals.submit_referral(session, referral=referral, now=now, person_id=referrer.id)
        return referral.id, referral.reference


def load_demo_series(session_factory, now) -> tuple[int, dict[date, int]]:
    """The demo borough; returns its clinic series' id and that series' meeting ids by date."""
    with transaction(session_factory) as session:
        load_demo(session, now=now)
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == SERIES_NAME))
        meetings = session.scalars(select(Meeting).where(Meeting.series_id == series.id))
        return series.id, {m.meeting_date: m.id for m in meetings}


def load_demo_invited(session_factory, now, *, on: date = date(2026, 11, 26)) -> Meeting:
    """The demo borough with the invitations to the meeting on `on` sent; returns that meeting."""
    with transaction(session_factory) as session:
        load_demo(session, now=now)
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == on))
        invites.send_invitations(session, meeting.id, now=now, mail=MAIL, organizer_name="Team")
        return meeting


# The 3 December clinic's papers: its agenda frozen at the Monday cut-off and the papers out on Tuesday morning.
PAPERS_SENT = datetime(2026, 12, 1, 9, 1, tzinfo=UTC)


def send_papers(session_factory, settings, meeting_id: int) -> None:
    from notifications.papers_mail import circulate_papers, freeze_meeting

    mail = MailContext.from_settings(settings)
    with transaction(session_factory) as session:
        freeze_meeting(session, meeting_id, now=datetime(2026, 11, 30, 12, 1, tzinfo=UTC), mail=mail)
    with transaction(session_factory) as session:
        if not circulate_papers(session, meeting_id, now=PAPERS_SENT, mail=mail, storage_dir=settings.documents_dir):
            raise AssertionError(f"meeting {meeting_id}'s papers did not go out")
