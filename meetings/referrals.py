"""Referrals: drafting page by page, submitting, and every status change after that.

Service functions take the caller's session and never commit. Each change writes the status
history and an audit row in the caller's transaction; emails are queued by the caller (the edge)
from the ReferralStatusChange returned, so this package never imports notifications.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from agencies.models import School
from caseconf import audit
from caseconf.clock import london_today
from caseconf.errors import Conflict, Invalid, NotFound
from meetings.access import Principal, can_on_referral, has_consent_or_basis
from meetings.models import (
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Child,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    ReferenceCounter,
    Referral,
    ReferralReasonOption,
    ReferralStatus,
    ReferralStatusChange,
)
from meetings.referral_form import PAGES, Page, PageResult, check_page, page_for
from meetings.referral_rules import can_move
from meetings.working_days import working_days_between

REFERENCE_PREFIX = "VPHC"


def issue_reference(session: Session, *, year: int, prefix: str = REFERENCE_PREFIX) -> str:
    """The next reference of the year, e.g. VPHC-2026-0042.

    The year's counter is made if missing (a second maker does nothing) and then incremented in
    one UPDATE, which holds the row until the transaction ends: two submissions never share a
    number, and a failed submission gives its number back.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(ReferenceCounter)
        .values(prefix=prefix, year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["prefix", "year"])
    )
    number = session.execute(
        update(ReferenceCounter)
        .where(ReferenceCounter.prefix == prefix, ReferenceCounter.year == year)
        .values(last_number=ReferenceCounter.last_number + 1)
        .returning(ReferenceCounter.last_number)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return f"{prefix}-{year}-{number:04d}"


def get_referral(session: Session, referral_id: int) -> Referral:
    referral = session.get(Referral, referral_id)
    if referral is None:
        raise NotFound(f"referral {referral_id}")
    return referral


def get_referral_by_reference(session: Session, reference: str) -> Referral:
    # No reference is longer than its column: refuse longer ones without asking the database.
    referral = session.scalar(select(Referral).where(Referral.reference == reference)) if len(reference) <= 20 else None
    if referral is None:
        raise NotFound(f"referral {reference[:20]}")
    return referral


def get_school_by_urn(session: Session, urn: str) -> School:
    school = session.scalar(select(School).where(School.urn == urn))
    if school is None:
        raise NotFound(f"school {urn[:20]}")
    return school


def reason_options(session: Session) -> tuple[tuple[str, str], ...]:
    rows = session.execute(
        select(ReferralReasonOption.code, ReferralReasonOption.label)
        .where(ReferralReasonOption.active.is_(True))
        .order_by(ReferralReasonOption.position, ReferralReasonOption.id)
    ).all()
    return tuple((code, label) for code, label in rows)


def _record_change(
    session: Session,
    referral: Referral,
    to: ReferralStatus,
    *,
    now: datetime,
    person_id: int | None,
    note: str | None = None,
) -> ReferralStatusChange:
    if referral.status != ReferralStatus.draft or to != ReferralStatus.draft:
        if not can_move(referral.status, to):
            raise Conflict(f"A referral that is {referral.status} cannot become {to}")
    change = ReferralStatusChange(
        referral_id=referral.id,
        from_status=None if to == ReferralStatus.draft else referral.status,
        to_status=to,
        changed_at=now,
        changed_by_id=person_id,
        note=_without_nul(note),
    )
    referral.status = to
    referral.updated_at = now
    session.add(change)
    session.flush()
    audit.record(
        session,
        now=now,
        action=f"referral.{to}",
        actor_person_id=person_id,
        record_type="referral",
        record_id=referral.id,
        from_status=change.from_status,
    )
    return change


def start_referral(session: Session, *, school_id: int, referrer_id: int, now: datetime) -> Referral:
    referral = Referral(
        school_id=school_id,
        referrer_id=referrer_id,
        status=ReferralStatus.draft,
        created_at=now,
        updated_at=now,
        immediate_risk_checked_at=now,
        draft_answers={},
    )
    session.add(referral)
    session.flush()
    _record_change(session, referral, ReferralStatus.draft, now=now, person_id=referrer_id)
    return referral


def saved_answers(referral: Referral, key: str) -> dict[str, Any]:
    return dict((referral.draft_answers or {}).get(key, {}))


def page_state(session: Session, referral: Referral, page: Page, *, today: date) -> str:
    """not_started, in_progress or completed, for the task list."""
    answers = (referral.draft_answers or {}).get(page.key)
    if answers is None:
        return "not_started"
    result = check_page(page, answers, today=today, reasons=reason_options(session))
    return "completed" if result.ok else "in_progress"


def save_page(
    session: Session, *, referral: Referral, key: str, answers: dict[str, Any], now: datetime, person_id: int
) -> PageResult:
    """Keep what was typed whatever it is; copy it onto the referral when it is all valid."""
    page = page_for(key)
    if page is None:
        raise NotFound(f"page {key}")
    if referral.status != ReferralStatus.draft:
        raise Conflict("Only a draft referral can be changed")
    answers = _without_nul(answers)  # PostgreSQL text cannot hold NUL, and nobody types one on purpose
    referral.draft_answers = {**(referral.draft_answers or {}), key: answers}  # a new dict, so it is saved
    referral.updated_at = now
    result = check_page(page, answers, today=london_today(now), reasons=reason_options(session))
    if result.ok:
        _apply(session, referral, key, result.values)
    audit.record(
        session,
        now=now,
        action="referral.page_saved",
        actor_person_id=person_id,
        record_type="referral",
        record_id=referral.id,
        page=key,
        valid=result.ok,
    )
    return result


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    return value


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _lines(text: str | None, key: str) -> list[dict[str, str]]:
    return [{key: line.strip()} for line in (text or "").splitlines() if line.strip()]


def _apply(session: Session, referral: Referral, key: str, v: dict[str, Any]) -> None:
    """Copy a valid page's values onto the referral (and its child)."""
    if key == "child":
        child = referral.child or Child(school_id=referral.school_id)
        for name in ("legal_first_name", "legal_surname", "preferred_name", "date_of_birth", "year_group"):
            setattr(child, name, v.get(name))
        child.upn = v["upn"].upper() if v.get("upn") else None
        if referral.child is None:
            session.add(child)
            session.flush()
            referral.child_id = child.id
            referral.child = child
    elif key == "family":
        referral.family = {
            "parents": [{"name": v["parent_name"], "relationship": v["parent_relationship"]}],
            "parent_knows_of_referral": v["parent_knows"] == "yes",
            "why_not": v.get("parent_not_told_reason"),
        }
    elif key == "reasons":
        referral.reasons, referral.reasons_other = v["reasons"], v.get("reasons_other")
    elif key == "concerns":
        referral.what_is_happening, referral.strengths = v["what_is_happening"], v["strengths"]
        referral.urgency, referral.urgency_reason = v["urgency"], v.get("urgency_reason")
    elif key == "attendance":
        referral.attendance_percent = v["attendance_percent"]
    elif key == "suspensions":
        for name in ("suspensions_this_year", "suspension_days_this_year", "suspensions_this_half_term"):
            setattr(referral, name, v[name])
        referral.suspension_dates = v.get("suspension_dates") or []
    elif key == "exclusion":
        referral.permanent_exclusion = v["permanent_exclusion"]
        referral.permanent_exclusion_on = v.get("permanent_exclusion_on")
    elif key == "part_time":
        in_place = v["part_time_timetable"] == "yes"
        hours = v.get("part_time_hours")
        referral.part_time_timetable = {
            "in_place": in_place,
            "started_on": _iso(v.get("part_time_started_on")) if in_place else None,
            "hours_per_week": str(hours) if in_place and hours is not None else None,
            "la_notified": v.get("part_time_la_notified") == "yes" if in_place else None,
        }
    elif key == "send":
        referral.sen_status, referral.primary_need = v["sen_status"], v.get("primary_need")
        referral.graduated_response_stage = v["graduated_response_stage"]
        referral.interventions = _lines(v["interventions"], "what")
    elif key == "agencies":
        referral.social_care_statuses = v["social_care_statuses"]
        referral.early_help = {"status": v["early_help"]}
        referral.agencies_involved = _lines(v.get("agencies_involved"), "agency")
        referral.awaiting_feedback = [
            {"agency": agency, "referred_on": _iso(v.get(f"{agency.lower()}_referred_on"))}
            for agency in ("MASH", "CAMHS")
            if v.get(f"{agency.lower()}_referred_on")
        ]
    elif key == "voices":
        referral.voice_of_child, referral.voice_of_parent = v["voice_of_child"], v["voice_of_parent"]
        referral.aces_considered, referral.aces_notes = v["aces_considered"], v.get("aces_notes")
    elif key == "asks":
        referral.asks_of_clinic = v["asks_of_clinic"]
    elif key == "consent":
        given = v["consent_status"] == "given"
        referral.consent_status = v["consent_status"]
        referral.consent_given_by = v.get("consent_given_by") if given else None
        referral.consent_given_on = v.get("consent_given_on") if given else None
        referral.lawful_basis = None if given else v.get("lawful_basis")
        referral.lawful_basis_reason = None if given else v.get("lawful_basis_reason")
        referral.lawful_basis_decided_by = None if given else v.get("lawful_basis_decided_by")
        referral.child_view_on_sharing = v.get("child_view_on_sharing")


def submit_referral(session: Session, *, referral: Referral, now: datetime, person_id: int) -> ReferralStatusChange:
    """Check every page, then give the referral its reference and send it for triage."""
    today = london_today(now)
    unfinished = {
        page.key: f"Complete '{page.title}'"
        for page in PAGES
        if page_state(session, referral, page, today=today) != "completed"
    }
    if unfinished:
        raise Invalid(unfinished)
    if not has_consent_or_basis(referral):
        raise Invalid({"consent": "Record consent, or the lawful basis for sharing without it"})
    if not can_move(referral.status, ReferralStatus.submitted):
        raise Conflict("This referral has already been submitted")
    referral.reference = issue_reference(session, year=today.year)
    referral.submitted_at = now
    return _record_change(session, referral, ReferralStatus.submitted, now=now, person_id=person_id)


def request_information(
    session: Session, *, referral: Referral, question: str, now: datetime, person_id: int
) -> ReferralStatusChange:
    if not question.strip():
        raise Invalid({"question": "Enter what you need from the school"})
    return _record_change(
        session, referral, ReferralStatus.information_requested, now=now, person_id=person_id, note=question.strip()
    )


def provide_information(
    session: Session, *, referral: Referral, answer: str, now: datetime, person_id: int
) -> ReferralStatusChange:
    if not answer.strip():
        raise Invalid({"answer": "Enter your answer"})
    return _record_change(
        session, referral, ReferralStatus.submitted, now=now, person_id=person_id, note=answer.strip()
    )


def signpost(
    session: Session, *, referral: Referral, service: str, note: str, now: datetime, person_id: int
) -> ReferralStatusChange:
    if not service.strip():
        raise Invalid({"service": "Enter the service you are signposting to"})
    text = f"Signposted to {service.strip()}." + (f" {note.strip()}" if note.strip() else "")
    return _record_change(session, referral, ReferralStatus.signposted, now=now, person_id=person_id, note=text)


def decline(
    session: Session, *, referral: Referral, reason: str, now: datetime, person_id: int
) -> ReferralStatusChange:
    if not reason.strip():
        raise Invalid({"reason": "Enter why the referral is not going to clinic"})
    return _record_change(session, referral, ReferralStatus.declined, now=now, person_id=person_id, note=reason.strip())


def withdraw(
    session: Session, *, referral: Referral, reason: str, now: datetime, person_id: int
) -> ReferralStatusChange:
    return _record_change(
        session, referral, ReferralStatus.withdrawn, now=now, person_id=person_id, note=reason.strip() or None
    )


@dataclass(frozen=True)
class ClinicChoice:
    meeting: Meeting
    listed: int

    @property
    def remaining(self) -> int:
        return max(self.meeting.series.capacity_items - self.listed, 0)


def upcoming_clinics(session: Session, *, area_id: int, now: datetime, limit: int = 6) -> list[ClinicChoice]:
    """Hot clinics serving this area (or the whole borough) still open for items, soonest first."""
    listed = (
        select(AgendaItem.meeting_id, func.count().label("n"))
        .where(AgendaItem.status == AgendaItemStatus.listed)
        .group_by(AgendaItem.meeting_id)
        .subquery()
    )
    rows = session.execute(
        select(Meeting, func.coalesce(listed.c.n, 0))
        .join(MeetingSeries, MeetingSeries.id == Meeting.series_id)
        .outerjoin(listed, listed.c.meeting_id == Meeting.id)
        .where(
            Meeting.status == MeetingStatus.planned,
            Meeting.starts_at > now,
            MeetingSeries.kind == MeetingKind.hot_clinic,
            or_(MeetingSeries.area_id.is_(None), MeetingSeries.area_id == area_id),
        )
        .order_by(Meeting.starts_at)
        .limit(limit)
    ).all()
    return [ClinicChoice(meeting, count) for meeting, count in rows]


def accept_and_list(
    session: Session, *, referral: Referral, meeting_id: int, now: datetime, person_id: int, note: str = ""
) -> ReferralStatusChange:
    """Accept for clinic and put it on the chosen meeting's agenda, if it has room."""
    # The meeting row is locked first, so two listings at once cannot both take the last place.
    session.scalar(select(Meeting.id).where(Meeting.id == meeting_id).with_for_update())
    clinics = upcoming_clinics(session, area_id=referral.school.area_id, now=now, limit=50)
    choice = next((c for c in clinics if c.meeting.id == meeting_id), None)
    if choice is None:
        raise Invalid({"meeting_id": "Choose a clinic that has not yet closed its agenda"})
    if choice.remaining <= 0:
        raise Invalid({"meeting_id": "That clinic is full: choose another"})
    if referral.consent_withdrawn_at is not None:
        raise Invalid({"meeting_id": "Consent to share was withdrawn, so this referral cannot go to the clinic"})
    change = _record_change(
        session,
        referral,
        ReferralStatus.accepted,
        now=now,
        person_id=person_id,
        note=note.strip() or None,
    )
    position = session.scalar(
        select(func.coalesce(func.max(AgendaItem.position), 0)).where(AgendaItem.meeting_id == meeting_id)
    )
    session.add(
        AgendaItem(
            meeting_id=meeting_id,
            kind=AgendaItemKind.referral,
            referral_id=referral.id,
            position=position + 1,
            slot_minutes=choice.meeting.series.item_minutes,
            status=AgendaItemStatus.listed,
        )
    )
    session.flush()
    return change


@dataclass(frozen=True)
class QueueEntry:
    referral: Referral
    waiting_since: datetime
    working_days: int
    overdue: bool


def triage_queue(
    session: Session, *, area_ids: Collection[int] | None, now: datetime, triage_working_days: int
) -> list[QueueEntry]:
    """Referrals waiting for an EIP's decision, oldest first; area_ids None means every area."""
    query = (
        select(Referral)
        .join(School, School.id == Referral.school_id)
        .where(Referral.status == ReferralStatus.submitted)
    )
    if area_ids is not None:
        query = query.where(School.area_id.in_(area_ids))
    today = london_today(now)
    entries = []
    for referral in session.scalars(query):
        # Waiting since it last came into the queue (a school's answer puts it back).
        since = max(c.changed_at for c in referral.history if c.to_status == ReferralStatus.submitted)
        days = working_days_between(london_today(since), today)
        entries.append(QueueEntry(referral, since, days, days > triage_working_days))
    entries.sort(key=lambda e: e.waiting_since)
    return entries


def referrals_in_areas(session: Session, *, area_ids: Collection[int]) -> list[Referral]:
    """Every submitted referral from schools in these areas, most recently changed first."""
    return list(
        session.scalars(
            select(Referral)
            .join(School, School.id == Referral.school_id)
            .where(School.area_id.in_(area_ids), Referral.status != ReferralStatus.draft)
            .order_by(Referral.updated_at.desc())
        )
    )


def school_referrals(session: Session, *, school_ids: Collection[int]) -> list[Referral]:
    return list(
        session.scalars(select(Referral).where(Referral.school_id.in_(school_ids)).order_by(Referral.updated_at.desc()))
    )


def find_referrals_visible_to(session: Session, principal: Principal) -> list[Referral]:
    """Submitted referrals from the principal's schools and EIP areas that they may view, most recently changed first.

    Drafts are left out: they have no reference yet and are finished on the pages. A coordinator's wider
    view is not listed here.
    """
    found = (
        {r.id: r for r in school_referrals(session, school_ids=principal.school_ids)} if principal.school_ids else {}
    )
    if principal.area_ids:
        found |= {r.id: r for r in referrals_in_areas(session, area_ids=principal.area_ids)}
    visible = [r for r in found.values() if r.reference is not None and can_on_referral(principal, "view", r)]
    visible.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
    return visible


def next_meeting_for(session: Session, referral: Referral, *, now: datetime) -> Meeting | None:
    return session.scalar(
        select(Meeting)
        .join(AgendaItem, AgendaItem.meeting_id == Meeting.id)
        .where(
            AgendaItem.referral_id == referral.id,
            AgendaItem.status == AgendaItemStatus.listed,  # not an item moved on or taken off
            Meeting.starts_at > now,
            Meeting.status != MeetingStatus.cancelled,
        )
        .order_by(Meeting.starts_at)
        .limit(1)
    )
