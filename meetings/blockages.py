"""Blockages: a referral waiting on an outside agency (MASH or CAMHS feedback, say) beyond a set time.

A wait opens by itself when a meeting ends with a decision that escalates to MASH or refers to a named
service the directory knows, or by hand (the coordinator or an EIP). An unresolved wait older than its
number of working days is flagged and the agency chased; then chased again every few working days
(the series' chase_every_working_days) until someone marks it resolved. Emails are queued by
notifications.chasing from what these functions say is due.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from agencies.models import Agency, School
from caseconf import audit
from caseconf.clock import london_today
from caseconf.errors import Conflict, Invalid
from meetings.models import (
    AgencyWait,
    AgendaItem,
    Decision,
    Meeting,
    MeetingSeries,
    Outcome,
    Referral,
)
from meetings.referral_rules import OPEN_STATUSES
from meetings.working_days import add_working_days

WAITING_EFFECTS = frozenset({Outcome.escalated_to_mash, Outcome.referred_to_service})
DEFAULT_CHASE_EVERY = 3
MAX_TEXT = 300


def _effect(decision: Decision) -> str:
    return decision.option.effect if decision.option is not None else decision.outcome


def _agency_for(session: Session, decision: Decision) -> Agency | None:
    """MASH for an escalation; for a referral to a named service, the directory's agency of that code or name."""
    if _effect(decision) == Outcome.escalated_to_mash:
        return session.scalar(select(Agency).where(func.upper(Agency.code) == "MASH"))
    name = (decision.service_name or "").strip()
    if not name:
        return None
    return session.scalar(
        select(Agency)
        .where(or_(func.upper(Agency.code) == name.upper(), func.lower(Agency.name) == name.lower()))
        .order_by(Agency.id)
        .limit(1)
    )


def open_waits_for_ended_meeting(session: Session, meeting: Meeting, *, now: datetime) -> list[AgencyWait]:
    """For an ended meeting: one wait per decision that escalated to MASH or referred to a service the directory
    knows (a decision already waited on is skipped, so running this again opens nothing new)."""
    if meeting.ended_at is None:
        return []
    decisions = session.scalars(
        select(Decision)
        .join(AgendaItem, AgendaItem.id == Decision.agenda_item_id)
        .where(AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None))
        .order_by(Decision.id)
    ).all()
    opened = []
    for decision in decisions:
        if _effect(decision) not in WAITING_EFFECTS:
            continue
        if session.scalar(select(AgencyWait.id).where(AgencyWait.decision_id == decision.id)) is not None:
            continue
        agency = _agency_for(session, decision)
        if agency is None:
            continue
        item = session.get(AgendaItem, decision.agenda_item_id)
        what = "MASH decision on next steps" if _effect(decision) == Outcome.escalated_to_mash else "Feedback"
        wait = AgencyWait(
            referral_id=item.referral_id,
            agency_id=agency.id,
            waiting_for=f"{what} after the clinic on {meeting.meeting_date:%-d %B %Y}"[:MAX_TEXT],
            since=meeting.ended_at,
            flag_after_working_days=meeting.series.blockage_working_days,
            decision_id=decision.id,
            created_by_id=decision.recorded_by_id,
        )
        session.add(wait)
        session.flush()
        audit.record(
            session,
            now=now,
            action="blockage.opened",
            record_type="agency_wait",
            record_id=wait.id,
            referral_id=wait.referral_id,
            agency=agency.code,
            decision_id=decision.id,
        )
        opened.append(wait)
    return opened


def open_wait(
    session: Session,
    *,
    referral: Referral,
    agency: Agency,
    waiting_for: str,
    by_person_id: int,
    now: datetime,
    flag_after_working_days: int = 3,
) -> AgencyWait:
    """Record by hand that a referral waits on an agency."""
    waiting_for = " ".join((waiting_for or "").split())
    problems = {}
    if not waiting_for:
        problems["waiting_for"] = "Enter what the referral is waiting for"
    elif len(waiting_for) > MAX_TEXT:
        problems["waiting_for"] = f"Enter no more than {MAX_TEXT} characters"
    if not 1 <= flag_after_working_days <= 60:
        problems["flag_after"] = "Enter a number of working days from 1 to 60"
    if referral.status not in OPEN_STATUSES:
        problems["reference"] = "That referral is no longer open"
    if problems:
        raise Invalid(problems)
    wait = AgencyWait(
        referral_id=referral.id,
        agency_id=agency.id,
        waiting_for=waiting_for,
        since=now,
        flag_after_working_days=flag_after_working_days,
        created_by_id=by_person_id,
    )
    session.add(wait)
    session.flush()
    audit.record(
        session,
        now=now,
        action="blockage.opened",
        actor_person_id=by_person_id,
        record_type="agency_wait",
        record_id=wait.id,
        referral_id=referral.id,
        agency=agency.code,
    )
    return wait


def resolve_wait(session: Session, wait: AgencyWait, *, resolution: str, by_person_id: int, now: datetime) -> None:
    resolution = (resolution or "").replace("\x00", "").strip()
    if not resolution:
        raise Invalid({"resolution": "Enter what came back from the agency"})
    if len(resolution) > 2000:
        raise Invalid({"resolution": "Enter no more than 2000 characters"})
    if wait.resolved_at is not None:
        raise Conflict("This wait is already resolved")
    wait.resolved_at = now
    wait.resolution = resolution
    audit.record(
        session,
        now=now,
        action="blockage.resolved",
        actor_person_id=by_person_id,
        record_type="agency_wait",
        record_id=wait.id,
        referral_id=wait.referral_id,
    )


def series_of(session: Session, wait: AgencyWait) -> MeetingSeries | None:
    if wait.decision_id is None:
        return None
    return session.scalar(
        select(MeetingSeries)
        .join(Meeting, Meeting.series_id == MeetingSeries.id)
        .join(AgendaItem, AgendaItem.meeting_id == Meeting.id)
        .join(Decision, Decision.agenda_item_id == AgendaItem.id)
        .where(Decision.id == wait.decision_id)
    )


def chase_every(session: Session, wait: AgencyWait) -> int:
    series = series_of(session, wait)
    return series.chase_every_working_days if series is not None else DEFAULT_CHASE_EVERY


def next_chase_on(wait: AgencyWait, every: int):
    """The London date the next chase is due: `flag_after` working days after it began, then every `every`."""
    if wait.last_chased_at is None:
        return add_working_days(london_today(wait.since), wait.flag_after_working_days)
    return add_working_days(london_today(wait.last_chased_at), every)


def is_due(wait: AgencyWait, every: int, *, now: datetime) -> bool:
    return wait.resolved_at is None and london_today(now) >= next_chase_on(wait, every)


def waits_due(session: Session, *, now: datetime) -> list[int]:
    """Unresolved waits due a chase: past their flag time and not chased, or chased `every` working days ago.
    A referral no longer open (closed, withdrawn) waits on no one: its waits are left for the coordinator."""
    waits = session.scalars(
        select(AgencyWait)
        .join(Referral, Referral.id == AgencyWait.referral_id)
        .where(AgencyWait.resolved_at.is_(None), Referral.status.in_(OPEN_STATUSES))
        .order_by(AgencyWait.id)
    )
    return [w.id for w in waits if is_due(w, chase_every(session, w), now=now)]


def record_chase(session: Session, wait: AgencyWait, *, now: datetime) -> int:
    """Flag the wait (first time) and count the chase; returns the chase's number."""
    wait.chases += 1
    wait.flagged_at = wait.flagged_at or now
    wait.last_chased_at = now
    audit.record(
        session,
        now=now,
        action="blockage.chased",
        record_type="agency_wait",
        record_id=wait.id,
        referral_id=wait.referral_id,
        chase=wait.chases,
    )
    return wait.chases


def open_waits(session: Session, *, area_ids: frozenset[int] | None = None) -> list[AgencyWait]:
    """Unresolved waits, oldest first; an EIP's limited to their areas (None: all)."""
    statement = (
        select(AgencyWait)
        .join(Referral, Referral.id == AgencyWait.referral_id)
        .join(School, School.id == Referral.school_id)
        .where(AgencyWait.resolved_at.is_(None))
        .order_by(AgencyWait.since, AgencyWait.id)
    )
    if area_ids is not None:
        statement = statement.where(School.area_id.in_(area_ids))
    return list(session.scalars(statement))
