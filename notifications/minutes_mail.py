"""After the meeting: the outcome to each school, the minutes to those invited, answers to corrections,
overdue steps flagged to the chair and coordinator, and the minutes made final.

Sweeps come in halves (flows/clinic.py registers them): a due function listing meeting ids (read only)
and a step that locks the meeting, re-checks, does the work and queues emails under idempotency keys,
so a second run, a late run or one after a crash does each thing once.

No email names a child: a reference, what is needed and a portal link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Person
from caseconf import audit
from caseconf.clock import london_today
from meetings import agenda, minutes
from meetings.models import (
    Action,
    ActionStatus,
    AgendaItem,
    Decision,
    Meeting,
    MeetingStatus,
    Minute,
    MinuteCorrection,
    MinutesStatus,
    ReferralStatus,
)
from meetings.referral_rules import LABELS
from notifications.emails import (
    MailContext,
    queue_about_meeting,
    queue_about_referral,
    school_contacts,
    school_recipients,
)
from notifications.models import OutboundMessage

CLINIC_DATE = "%A %-d %B %Y"
# How far back the overdue check looks: older meetings are the coordinator's to tidy by hand.
OVERDUE_LOOKBACK = timedelta(days=120)


def _clinic(meeting: Meeting) -> str:
    return f"{meeting.meeting_date:{CLINIC_DATE}}"


# ---- outcomes to schools ----------------------------------------------------------------------------


def meetings_due_outcomes(session: Session, *, now: datetime) -> list[int]:
    """Meetings that have ended with a decided referral item whose school has not been told."""
    return list(
        session.scalars(
            select(Meeting.id)
            .join(AgendaItem, AgendaItem.meeting_id == Meeting.id)
            .join(Decision, Decision.agenda_item_id == AgendaItem.id)
            .where(
                Meeting.ended_at.is_not(None),
                Meeting.ended_at <= now,
                Meeting.status != MeetingStatus.cancelled,
                AgendaItem.referral_id.is_not(None),
                AgendaItem.outcome_sent_at.is_(None),
            )
            .distinct()
            .order_by(Meeting.id)
        )
    )


def _school_actions(session: Session, item_id: int) -> list[Action]:
    return list(
        session.scalars(
            select(Action)
            .where(
                Action.agenda_item_id == item_id,
                Action.involves_school.is_(True),
                Action.status != ActionStatus.cancelled,
            )
            .order_by(Action.due_on, Action.id)
        )
    )


def outcome_recipients(session: Session, referral) -> list[str]:
    """The referrer, the school's safeguarding address and its registered referrers, once each."""
    return list(dict.fromkeys([*school_recipients(referral), *school_contacts(session, referral.school)]))


def send_outcomes(session: Session, meeting_id: int, *, now: datetime, mail: MailContext) -> list[OutboundMessage]:
    """Tell each referring school the decision on its referral: the decision's label, how many actions
    involve the school and when they are due (what they are is on the portal), and the referral's status."""
    meeting = agenda.lock_meeting(session, meeting_id)
    if meeting is None or meeting.ended_at is None or meeting.ended_at > now:
        return []
    sent: list[OutboundMessage] = []
    for item in minutes.outcomes_waiting(session, meeting):
        session.refresh(item, with_for_update=True)
        if item.outcome_sent_at is not None:
            continue
        referral = item.referral
        decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item.id))
        actions = _school_actions(session, item.id)
        due_dates = sorted({a.due_on for a in actions})
        status = ReferralStatus(referral.status)
        for recipient in outcome_recipients(session, referral):
            sent.append(
                queue_about_referral(
                    session,
                    mail=mail,
                    now=now,
                    referral=referral,
                    template="clinic_outcome",
                    key=f"outcome:{item.id}:{recipient}",
                    recipient=recipient,
                    link=f"/referrals/{referral.id}#outcome",
                    meeting_id=meeting.id,
                    series_name=meeting.series.name,
                    clinic=_clinic(meeting),
                    decision_label=minutes.decision_label(session, decision),
                    status_label=LABELS.get(status, str(status)),
                    school_actions=len(actions),
                    due_dates=", ".join(f"{d:%-d %B %Y}" for d in due_dates),
                )
            )
        item.outcome_sent_at = now
        audit.record(
            session,
            now=now,
            action="outcome.sent",
            record_type="agenda_item",
            record_id=item.id,
            meeting_id=meeting.id,
            referral_id=referral.id,
            school_actions=len(actions),
            recipients=len(outcome_recipients(session, referral)),
        )
    return sent


# ---- circulation and corrections ------------------------------------------------------------------------


def attendees(meeting: Meeting) -> list[Person]:
    """Everyone invited and not withdrawn, once each, in invitation order."""
    people: dict[int, Person] = {}
    for invitation in sorted(meeting.invitations, key=lambda i: i.id):
        if invitation.cancelled_at is None and invitation.person.active:
            people.setdefault(invitation.person_id, invitation.person)
    return list(people.values())


def _queue_minutes(
    session: Session, meeting: Meeting, minute: Minute, *, now: datetime, mail: MailContext
) -> list[OutboundMessage]:
    corrected = minute.version > 1
    return [
        queue_about_meeting(
            session,
            mail=mail,
            now=now,
            meeting=meeting,
            person=person,
            template="minutes_circulated",
            key=f"minutes:{meeting.id}:{minute.version}:{person.id}",
            clinic=_clinic(meeting),
            corrected=corrected,
            version=minute.version,
            corrections_until=f"{minute.corrections_until:%A %-d %B %Y}",
            link=f"{mail.base_url}/meetings/{meeting.id}/minutes",
        )
        for person in attendees(meeting)
    ]


def circulate_minutes(
    session: Session, meeting: Meeting, *, person_id: int, now: datetime, mail: MailContext, storage_dir: Path
) -> list[OutboundMessage]:
    """Circulate approved minutes (meetings.minutes.circulate) and email each attendee a portal link."""
    minute = minutes.circulate(session, meeting, person_id=person_id, now=now, storage_dir=storage_dir)
    return _queue_minutes(session, meeting, minute, now=now, mail=mail)


@dataclass(frozen=True)
class Answered:
    correction: MinuteCorrection
    changed: bool
    emails: list[OutboundMessage]


def answer_correction(
    session: Session, meeting: Meeting, correction_id: int, *, now: datetime, mail: MailContext, **given: Any
) -> Answered:
    """The chair's answer (meetings.minutes.answer_correction, whose keyword arguments `given` carries); the
    person who asked is told, and corrected minutes go to every attendee again."""
    answer = minutes.answer_correction(session, meeting, correction_id, now=now, **given)
    asker = session.get(Person, answer.correction.person_id)
    emails = [
        queue_about_meeting(
            session,
            mail=mail,
            now=now,
            meeting=meeting,
            person=asker,
            template="correction_answered",
            key=f"correction-answered:{answer.correction.id}",
            clinic=_clinic(meeting),
            accepted=answer.correction.status == "accepted",
            corrected=answer.changed,
            link=f"{mail.base_url}/meetings/{meeting.id}/minutes#corrections",
        )
    ]
    if answer.changed:
        minute = minutes.minute_of(session, meeting)
        emails += _queue_minutes(session, meeting, minute, now=now, mail=mail)
    return Answered(answer.correction, answer.changed, emails)


# ---- overdue steps ------------------------------------------------------------------------------------


def _overdue_key(meeting: Meeting, step: minutes.Step, person_id: int) -> str:
    return f"overdue:{meeting.id}:{step.code}:{step.due_on.isoformat()}:{person_id}"


def runs_the_meeting(session: Session, meeting: Meeting) -> list[Person]:
    """The chair and the series' coordinator, once each, leaving out anyone no longer active (never sent
    anything, so never waited on)."""
    people = (session.get(Person, i) for i in sorted({meeting.chair_id, meeting.series.coordinator_id} - {None}))
    return [person for person in people if person is not None and person.active]


def _already_flagged(session: Session, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    return set(
        session.scalars(select(OutboundMessage.idempotency_key).where(OutboundMessage.idempotency_key.in_(keys)))
    )


def meetings_due_overdue_check(session: Session, *, now: datetime) -> list[int]:
    """Recent meetings with an overdue step the chair or coordinator has not been told of yet."""
    since = london_today(now - OVERDUE_LOOKBACK)
    candidates = session.scalars(
        select(Meeting)
        .where(
            Meeting.status.in_(minutes.AFTER_THE_MEETING),
            Meeting.meeting_date >= since,
            Meeting.meeting_date < london_today(now),
        )
        .order_by(Meeting.meeting_date, Meeting.id)
    ).all()
    due = []
    for meeting in candidates:
        keys = [
            _overdue_key(meeting, s, p.id)
            for s in minutes.overdue_steps(session, meeting, now)
            for p in runs_the_meeting(session, meeting)
        ]
        if keys and len(_already_flagged(session, keys)) < len(keys):
            due.append(meeting.id)
    return due


def flag_overdue(session: Session, meeting_id: int, *, now: datetime, mail: MailContext) -> list[OutboundMessage]:
    """Email the chair and coordinator once per overdue step (a step's due date moving makes it new)."""
    meeting = agenda.lock_meeting(session, meeting_id)
    if meeting is None:
        return []
    queued = []
    for step in minutes.overdue_steps(session, meeting, now):
        for person in runs_the_meeting(session, meeting):
            key = _overdue_key(meeting, step, person.id)
            if _already_flagged(session, [key]):
                continue
            queued.append(
                queue_about_meeting(
                    session,
                    mail=mail,
                    now=now,
                    meeting=meeting,
                    person=person,
                    template="minutes_overdue",
                    key=key,
                    clinic=_clinic(meeting),
                    step_title={"outcomes": "outcome to schools", "minutes": "minutes", "corrections": "corrections"}[
                        step.code
                    ],
                    step_text=step.text,
                    overdue_since=f"{step.due_on:%A %-d %B}",
                    link=f"{mail.base_url}/meetings/{meeting.id}/minutes",
                )
            )
            audit.record(
                session,
                now=now,
                action="minutes.overdue_flagged",
                record_type="meeting",
                record_id=meeting.id,
                step=step.code,
                due_on=step.due_on.isoformat(),
                person_id=person.id,
            )
    return queued


# ---- final ---------------------------------------------------------------------------------------------


def meetings_due_finalise(session: Session, *, now: datetime) -> list[int]:
    return minutes.minutes_due_finalise(session, now=now)


def finalise_minutes(session: Session, meeting_id: int, *, now: datetime, mail: MailContext) -> Minute | None:
    """Make the minutes final once the corrections window has passed with nothing open (no email)."""
    minute = minutes.finalise(session, meeting_id, now=now)
    return minute if minute is not None and minute.status == MinutesStatus.final else None
