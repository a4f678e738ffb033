"""Fictional demo data: Kestrelford Borough Council, its clinic and eight invented pupils.

`load_demo` is idempotent: every row is looked up by a natural key and made only if missing, and
no date depends on `now` (it is used only for the audit trail), so a second run changes nothing.
The referrals' dates are fixed in the Autumn 2026 term: one referral is listed on the clinic of
3 December 2026 and one was discussed at the clinic of 12 November 2026. Alderbrook Primary also has a
Team Around the School, meeting half-termly (plus one extra meeting on 9 December 2026), with two pupils of
concern waiting for its next agenda.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.directory import ImportReport, import_directory
from agencies.models import Agency, Person, Role, RoleGrant, School
from caseconf import audit
from caseconf.clock import LONDON, london_today
from meetings.demo_pupils import (
    CHAIRS,
    HELD_ON,
    PERSONAS,
    TAS_AGENCIES,
    TAS_CHAIR,
    TAS_CONCERNS,
    TAS_EXTRA_MEETING,
    TAS_NAME,
    TAS_SCHOOL,
    Persona,
    london_time,
)
from meetings.invitations import invitees
from meetings.models import (
    Action,
    ActionEvent,
    ActionEventKind,
    ActionStatus,
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Attendance,
    Child,
    ConcernStatus,
    Decision,
    Invitation,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    MeetingStatusChange,
    Minute,
    MinutesStatus,
    OutcomeOption,
    PupilOfConcern,
    Referral,
    ReferralReasonOption,
    ReferralStatus,
    ReferralStatusChange,
    Rsvp,
    SeriesMember,
    Term,
)
from meetings.planning import meeting_dates, new_meeting
from meetings.referrals import issue_reference
from meetings.schedule import thursdays_in_term

DIRECTORY_FILE = Path(__file__).with_name("demo_directory.yaml")
CALENDAR_DOMAIN = "kestrelford.example.org"
SERIES_NAME = "Kestrelford Vulnerable Pupil Hot Clinic"
CORE_AGENCIES = ("CAMHS", "POLICE", "EARLY_HELP", "YARM", "MASH", "SAFEGUARDING", "HEALTH")
COORDINATOR = "clinic.coordinator@kestrelford.example.org"

# Sign-in addresses printed at start-up, one per audience.
DEMO_USERS: list[tuple[str, str]] = [
    ("EIP (North)", "eip.north@kestrelford.example.org"),
    ("Clinic coordinator", COORDINATOR),
    ("Agency rep (CAMHS)", "camhs.rep@kestrelford.example.org"),
    ("School referrer (Alderbrook Federation)", "dsl@alderbrook.example.org"),
    ("Administrator", "admin@kestrelford.example.org"),
    ("Data protection officer", "dpo@kestrelford.example.org"),
]

REASONS = (
    ("not_attending", "Not attending"),
    ("not_engaging", "Not engaging"),
    ("awaiting_mash_feedback", "Awaiting MASH feedback"),
    ("awaiting_camhs_feedback", "Awaiting CAMHS feedback"),
    ("serious_youth_violence_or_exploitation", "Serious youth violence or exploitation risk"),
    ("weapon_in_school", "Weapon in school"),
    ("gang_or_peer_on_peer_abuse", "Gang or peer-on-peer abuse"),
    ("ebsa", "Emotionally based school avoidance (EBSA)"),
    ("suspensions_or_pex_risk", "Two or more suspensions in a half-term, or at risk of permanent exclusion"),
    ("year_6_to_7_transition", "Year 6 to Year 7 transition"),
    ("no_recourse_or_housing", "No recourse to public funds, or housing"),
    ("bereavement", "Bereavement"),
    ("slcn", "Speech, language and communication needs (SLCN)"),
    ("autism_or_sensory", "Autism or sensory needs"),
    ("part_time_timetable_review", "Part-time timetable review"),
    ("coercive_behaviour", "Coercive behaviour"),
)

TERMS = (
    ("Autumn 2026", date(2026, 9, 1), date(2026, 12, 18), date(2026, 10, 26), date(2026, 10, 30)),
    ("Spring 2027", date(2027, 1, 5), date(2027, 3, 26), date(2027, 2, 15), date(2027, 2, 19)),
)

# The series was set up over the summer; fixed so that a second run writes the same history.
SET_UP_AT = datetime(2026, 7, 20, 9, 0, tzinfo=UTC)


@dataclass
class DemoReport:
    directory: ImportReport
    reasons_created: int = 0
    terms_created: int = 0
    series_created: int = 0
    meetings_created: int = 0
    referrals_created: int = 0
    concerns_created: int = 0
    decisions_labelled: int = 0
    held_completed: int = 0  # held clinics given attendance, the confidentiality statement or final minutes

    @property
    def changed(self) -> bool:
        created = (
            self.reasons_created,
            self.terms_created,
            self.series_created,
            self.meetings_created,
            self.referrals_created,
            self.concerns_created,
            self.decisions_labelled,
            self.held_completed,
        )
        return self.directory.changed or any(created)

    def __str__(self) -> str:
        if not self.changed:
            return "nothing changed; the demo data was already loaded"
        return (
            f"directory: {self.directory}. Created {self.reasons_created} referral reasons, {self.terms_created} "
            f"terms, {self.series_created} meeting series, {self.meetings_created} meetings, "
            f"{self.referrals_created} referrals and {self.concerns_created} pupils of concern"
        )


def load_demo(session: Session, *, now: datetime, team_around_school: bool = False) -> DemoReport:
    """Load (or complete) the demo borough. `team_around_school` adds Alderbrook Primary's Team Around the
    School, its meetings and pupils of concern (`caseconf demo` does; tests that need only the clinic do not)."""
    report = DemoReport(directory=import_directory(session, text=DIRECTORY_FILE.read_text(encoding="utf-8"), now=now))
    people = {p.email: p for p in session.scalars(select(Person))}
    reps = _agency_reps(session)
    report.reasons_created = _ensure_reasons(session)
    terms, report.terms_created = _ensure_terms(session)
    series, report.series_created = _ensure_series(session, people, reps)
    meetings, report.meetings_created = _ensure_meetings(session, series, terms, people)
    report.referrals_created = _ensure_referrals(session, people, reps, meetings)
    if team_around_school:
        tas, tas_created = _ensure_tas_series(session, people, reps)
        report.series_created += tas_created
        report.meetings_created += _ensure_tas_meetings(session, tas, terms)
        report.concerns_created = _ensure_concerns(session, tas, people)
    report.decisions_labelled = _label_decisions(session, series)
    report.held_completed = _complete_held(session, series, meetings, now=now)
    if report.changed:
        audit.record(
            session,
            now=now,
            action="demo.loaded",
            record_type="demo",
            directory=report.directory.as_dict(),
            reasons_created=report.reasons_created,
            terms_created=report.terms_created,
            series_created=report.series_created,
            meetings_created=report.meetings_created,
            referrals_created=report.referrals_created,
            concerns_created=report.concerns_created,
            decisions_labelled=report.decisions_labelled,
            held_completed=report.held_completed,
        )
    return report


def _agency_reps(session: Session) -> dict[str, tuple[Agency, Person]]:
    rows = session.execute(
        select(Agency, Person)
        .join(RoleGrant, RoleGrant.agency_id == Agency.id)
        .join(Person, Person.id == RoleGrant.person_id)
        .where(RoleGrant.role == Role.agency_rep)
        .order_by(Person.email)
    )
    reps: dict[str, tuple[Agency, Person]] = {}
    for agency, person in rows:
        reps.setdefault(agency.code, (agency, person))
    return reps


def _ensure_reasons(session: Session) -> int:
    existing = set(session.scalars(select(ReferralReasonOption.code)))
    missing = [(position, code, label) for position, (code, label) in enumerate(REASONS, 1) if code not in existing]
    session.add_all(ReferralReasonOption(code=code, label=label, position=pos) for pos, code, label in missing)
    return len(missing)


def _ensure_terms(session: Session) -> tuple[list[Term], int]:
    existing = {t.name: t for t in session.scalars(select(Term))}
    terms, created = [], 0
    for name, starts_on, ends_on, half_starts, half_ends in TERMS:
        term = existing.get(name)
        if term is None:
            term = Term(
                name=name,
                starts_on=starts_on,
                ends_on=ends_on,
                half_term_starts_on=half_starts,
                half_term_ends_on=half_ends,
            )
            session.add(term)
            created += 1
        terms.append(term)
    return terms, created


def _ensure_series(
    session: Session, people: dict[str, Person], reps: dict[str, tuple[Agency, Person]]
) -> tuple[MeetingSeries, int]:
    series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == SERIES_NAME))
    if series is not None:
        return series, 0
    series = MeetingSeries(
        name=SERIES_NAME,
        kind=MeetingKind.hot_clinic,
        area_id=None,  # the clinic serves the whole borough
        weekday=3,
        start_time=time(13, 30),
        duration_minutes=120,
        term_time_only=True,
        location="Committee Room 2, Kestrelford Civic Centre (or join online)",
        chair_rotation=[people[email].id for email in CHAIRS],
        chair_rotation_every=3,
        coordinator_id=people[COORDINATOR].id,
        capacity_items=8,
        item_minutes=15,
        quorum_required_agencies=["SAFEGUARDING"],
        members=[SeriesMember(agency_id=reps[code][0].id, person_id=reps[code][1].id) for code in CORE_AGENCIES],
    )
    session.add(series)
    session.flush()
    return series, 1


def _ensure_meetings(
    session: Session, series: MeetingSeries, terms: list[Term], people: dict[str, Person]
) -> tuple[dict[date, Meeting], int]:
    meetings = {m.meeting_date: m for m in session.scalars(select(Meeting).where(Meeting.series_id == series.id))}
    dates = sorted(
        day
        for term in terms
        for day in thursdays_in_term(
            term.starts_on, term.ends_on, term.half_term_starts_on, term.half_term_ends_on, series.weekday
        )
    )
    created = 0
    for index, day in enumerate(dates):
        if day in meetings:
            continue
        meeting = new_meeting(session, series, day, chair_index=index, calendar_domain=CALENDAR_DOMAIN)
        _meeting_history(session, meeting, None, MeetingStatus.planned, SET_UP_AT, None)
        if day in HELD_ON:
            _hold(session, meeting, people[COORDINATOR])
        meetings[day] = meeting
        created += 1
    return meetings, created


def _meeting_history(
    session: Session,
    meeting: Meeting,
    from_status: MeetingStatus | None,
    to_status: MeetingStatus,
    at: datetime,
    by: Person | None,
) -> None:
    session.add(
        MeetingStatusChange(
            meeting_id=meeting.id,
            from_status=from_status,
            to_status=to_status,
            changed_at=at,
            changed_by_id=by.id if by else None,
        )
    )


def _hold(session: Session, meeting: Meeting, coordinator: Person) -> None:
    """Take a past clinic through to circulated minutes, at the series' usual times."""
    day = meeting.meeting_date
    chair = session.get(Person, meeting.chair_id)

    def at(offset_days: int, hour: int, minute: int = 0) -> datetime:
        moment = day + timedelta(days=offset_days)
        return london_time(moment.year, moment.month, moment.day, hour, minute)

    steps = [
        (MeetingStatus.agenda_frozen, at(-3, 12), None),  # Monday cut-off
        (MeetingStatus.papers_sent, at(-2, 9), None),  # Tuesday papers
        (MeetingStatus.held, at(0, 15, 30), coordinator),
        (MeetingStatus.minutes_draft, at(0, 16, 30), coordinator),
        (MeetingStatus.minutes_approved, at(4, 10), chair),
        (MeetingStatus.minutes_circulated, at(4, 10, 15), coordinator),
    ]
    previous = MeetingStatus.planned
    for status, moment, by in steps:
        _meeting_history(session, meeting, previous, status, moment, by)
        previous = status
    meeting.status = MeetingStatus.minutes_circulated
    meeting.agenda_frozen_at = steps[0][1]
    meeting.papers_sent_at = steps[1][1]
    meeting.papers_version = 1  # its packs are built when first asked for (papers.ensure_packs)
    session.add(
        Minute(
            meeting_id=meeting.id,
            status=MinutesStatus.circulated,
            summary=(
                "Quorate: safeguarding, MASH, CAMHS, early help, police and school nursing present. "
                "Confidentiality statement read. Decisions and actions are recorded against each item."
            ),
            version=1,
            approved_by_id=chair.id,
            approved_at=steps[4][1],
            circulated_at=steps[5][1],
            corrections_until=day + timedelta(days=18),
        )
    )


def _complete_held(session: Session, series: MeetingSeries, meetings: dict[date, Meeting], *, now: datetime) -> int:
    """Make each held clinic agree with its minutes' summary, once (a clinic with invitations is done):
    everyone invited came (accepted and present) and the confidentiality statement was read; minutes whose
    corrections window had passed by `now` are final, as the finalising sweep would have made them (a later
    load leaves that to the sweep). Also completes a demo loaded before this."""
    completed = 0
    for day in HELD_ON:
        meeting = meetings.get(day)
        if meeting is None or meeting.series_id != series.id:
            continue
        if session.scalar(select(Invitation.id).where(Invitation.meeting_id == meeting.id).limit(1)):
            continue
        for invitee in invitees(session, meeting):
            session.add(
                Invitation(
                    meeting_id=meeting.id,
                    person_id=invitee.person.id,
                    agency_id=invitee.agency.id if invitee.agency else None,
                    role=invitee.role,
                    rsvp=Rsvp.accepted,
                    rsvp_at=meeting.papers_sent_at,
                    rsvp_source="portal",
                    sequence_sent=meeting.sequence,
                    attendance=Attendance.present,
                )
            )
        meeting.confidentiality_read = True
        minute = session.scalar(select(Minute).where(Minute.meeting_id == meeting.id))
        if (
            minute is not None
            and minute.status == MinutesStatus.circulated
            and minute.corrections_until is not None
            and minute.corrections_until < london_today(now)
        ):
            closed = minute.corrections_until + timedelta(days=1)
            minute.status = MinutesStatus.final
            minute.finalised_at = min(now, london_time(closed.year, closed.month, closed.day, 2))
        completed += 1
    session.flush()
    return completed


def _ensure_referrals(
    session: Session,
    people: dict[str, Person],
    reps: dict[str, tuple[Agency, Person]],
    meetings: dict[date, Meeting],
) -> int:
    schools = {s.urn: s for s in session.scalars(select(School))}
    created = 0
    for persona in PERSONAS:
        identity = persona.child
        exists = session.scalar(
            select(Child.id).where(
                Child.legal_first_name == identity["legal_first_name"],
                Child.legal_surname == identity["legal_surname"],
                Child.date_of_birth == identity["date_of_birth"],
            )
        )
        if exists is None:
            _make_referral(session, persona, schools[persona.school], people, reps, meetings)
            created += 1
    return created


def _make_referral(
    session: Session,
    persona: Persona,
    school: School,
    people: dict[str, Person],
    reps: dict[str, tuple[Agency, Person]],
    meetings: dict[date, Meeting],
) -> None:
    child = Child(school_id=school.id, **persona.child)
    session.add(child)
    first, last = persona.steps[0], persona.steps[-1]
    submitted = next((s for s in persona.steps if s.status == ReferralStatus.submitted), None)
    referral = Referral(
        child=child,
        school_id=school.id,
        referrer_id=people[first.by].id,
        status=last.status,
        created_at=first.at,
        updated_at=last.at,
        immediate_risk_checked_at=first.at,
        submitted_at=submitted.at if submitted else None,
        reference=issue_reference(session, year=submitted.at.astimezone(LONDON).year) if submitted else None,
        **persona.referral,
    )
    session.add(referral)
    session.flush()
    previous = None
    for step in persona.steps:
        session.add(
            ReferralStatusChange(
                referral_id=referral.id,
                from_status=previous,
                to_status=step.status,
                changed_at=step.at,
                changed_by_id=people[step.by].id,
                note=step.note,
            )
        )
        previous = step.status
    if persona.listed_on is None:
        return

    discussed = next((s for s in persona.steps if s.status == ReferralStatus.discussed), None)
    item = AgendaItem(
        meeting_id=meetings[persona.listed_on].id,
        kind=AgendaItemKind.referral,
        referral_id=referral.id,
        position=1,
        slot_minutes=15,
        status=AgendaItemStatus.discussed if discussed else AgendaItemStatus.listed,
        agencies_needed=list(persona.agencies_needed),
        notes=persona.item_notes,
        notes_version=1 if persona.item_notes else 0,
    )
    session.add(item)
    session.flush()
    if discussed is None:
        return
    coordinator = people[COORDINATOR]
    option = session.scalar(select(OutcomeOption).where(OutcomeOption.code == persona.decision["outcome"]))
    session.add(
        Decision(
            agenda_item_id=item.id,
            decided_at=discussed.at,
            recorded_by_id=coordinator.id,
            option_id=option.id if option else None,
            **persona.decision,
        )
    )
    for spec in persona.actions:
        agency, owner = reps[spec.agency]
        action = Action(
            agenda_item_id=item.id,
            referral_id=referral.id,
            description=spec.description,
            owner_agency_id=agency.id,
            owner_person_id=owner.id,
            due_on=spec.due_on,
            status=ActionStatus.done if spec.done_at else ActionStatus.open,
            created_at=discussed.at,
            completed_at=spec.done_at,
        )
        action.events.append(
            ActionEvent(kind=ActionEventKind.assigned, occurred_at=discussed.at, by_person_id=coordinator.id)
        )
        if spec.done_at:
            action.events.append(
                ActionEvent(kind=ActionEventKind.done, occurred_at=spec.done_at, by_person_id=owner.id)
            )
        session.add(action)


# ---- Team Around the School -------------------------------------------------------------------------


def _ensure_tas_series(
    session: Session, people: dict[str, Person], reps: dict[str, tuple[Agency, Person]]
) -> tuple[MeetingSeries, int]:
    series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == TAS_NAME))
    if series is not None:
        return series, 0
    school = session.scalar(select(School).where(School.urn == TAS_SCHOOL))
    series = MeetingSeries(
        name=TAS_NAME,
        kind=MeetingKind.team_around_school,
        area_id=school.area_id,  # the area's EIP chairs it
        school_id=school.id,
        weekday=2,  # Wednesdays after school
        start_time=time(15, 45),
        duration_minutes=90,
        term_time_only=True,
        location=f"{school.name}, family room",
        chair_rotation=[people[TAS_CHAIR].id],
        chair_rotation_every=1,
        coordinator_id=people[COORDINATOR].id,
        capacity_items=6,
        item_minutes=15,
        cutoff_weekday=4,  # the Friday before, at noon
        papers_weekday=0,  # the Monday before
        quorum_min_agencies=2,
        quorum_required_agencies=[],
        members=[SeriesMember(agency_id=reps[code][0].id, person_id=reps[code][1].id) for code in TAS_AGENCIES],
    )
    session.add(series)
    session.flush()
    return series, 1


def _ensure_tas_meetings(session: Session, series: MeetingSeries, terms: list[Term]) -> int:
    """One meeting a half-term (meetings.planning.half_termly_dates), and the extra one before Christmas."""
    existing = {m.meeting_date for m in session.scalars(select(Meeting).where(Meeting.series_id == series.id))}
    dates = sorted({*meeting_dates(series, terms), TAS_EXTRA_MEETING})
    created = 0
    for index, day in enumerate(dates):
        if day in existing:
            continue
        meeting = new_meeting(session, series, day, chair_index=index, calendar_domain=CALENDAR_DOMAIN)
        _meeting_history(session, meeting, None, MeetingStatus.planned, SET_UP_AT, None)
        created += 1
    return created


def _ensure_concerns(session: Session, series: MeetingSeries, people: dict[str, Person]) -> int:
    """The school's two pupils of concern, waiting for the next meeting's agenda (found by their label)."""
    labels = set(session.scalars(select(PupilOfConcern.label).where(PupilOfConcern.school_id == series.school_id)))
    dsl = people["dsl@alderbrook.example.org"]
    created = 0
    for spec in TAS_CONCERNS:
        if spec.label in labels:
            continue
        session.add(
            PupilOfConcern(
                school_id=series.school_id,
                series_id=series.id,
                label=spec.label,
                concern=spec.concern,
                ask=spec.ask,
                parent_agreed_on=spec.parent_agreed_on,
                status=ConcernStatus.open,
                added_by_id=dsl.id,
                added_at=spec.added_at,
            )
        )
        created += 1
    return created


def _label_decisions(session: Session, series: MeetingSeries) -> int:
    """Decisions on the demo clinic made before outcomes had labels: point each at the option of its code."""
    options = {o.code: o.id for o in session.scalars(select(OutcomeOption))}
    unlabelled = session.scalars(
        select(Decision)
        .join(AgendaItem, AgendaItem.id == Decision.agenda_item_id)
        .join(Meeting, Meeting.id == AgendaItem.meeting_id)
        .where(Meeting.series_id == series.id, Decision.option_id.is_(None))
    ).all()
    labelled = 0
    for decision in unlabelled:
        if decision.outcome in options:
            decision.option_id = options[decision.outcome]
            labelled += 1
    return labelled
