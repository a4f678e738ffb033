"""The weekly digest: each school's open referrals and what is awaited from whom."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agencies.models import School
from caseconf.clock import london_today
from meetings.models import Action, ActionStatus, Referral, ReferralStatus
from meetings.referral_rules import LABELS, OPEN_STATUSES
from meetings.referrals import next_meeting_for
from notifications.emails import MailContext, queue_email, school_contacts

S = ReferralStatus


def awaited(session: Session, referral: Referral, *, now: datetime) -> str:
    """Who the referral is waiting for, in a few words."""
    if referral.status == S.draft:
        return "your school: finish and submit it"
    if referral.status == S.information_requested:
        return "your school: answer the inclusion team's question"
    if referral.status == S.submitted:
        return "the inclusion team: triage"
    if referral.status in (S.accepted, S.review):
        meeting = next_meeting_for(session, referral, now=now)
        return f"the clinic on {meeting.meeting_date:%-d %B %Y}" if meeting else "the clinic: a date to be set"
    open_actions = session.scalar(
        select(func.count())
        .select_from(Action)
        .where(Action.referral_id == referral.id, Action.status == ActionStatus.open)
    )
    return f"agencies: {open_actions} open action{'s' if open_actions != 1 else ''}" if open_actions else "nobody"


def queue_weekly_digests(session: Session, *, now: datetime, mail: MailContext) -> int:
    """One email per school contact listing open referrals; once per ISO week whatever the reruns."""
    year, week, _ = london_today(now).isocalendar()
    queued = 0
    for school in session.scalars(select(School).where(School.active.is_(True)).order_by(School.id)):
        open_referrals = session.scalars(
            select(Referral)
            .where(Referral.school_id == school.id, Referral.status.in_(OPEN_STATUSES))
            .order_by(Referral.created_at)
        ).all()
        if not open_referrals:
            continue
        lines = [
            {
                "reference": r.reference or "Draft (no reference yet)",
                "status": LABELS[S(r.status)],
                "awaiting": awaited(session, r, now=now),
            }
            for r in open_referrals
        ]
        for recipient in school_contacts(session, school):
            queue_email(
                session,
                mail=mail,
                now=now,
                template="weekly_digest",
                key=f"digest:{school.id}:{year}-W{week:02d}:{recipient}",
                recipient=recipient,
                school_name=school.name,
                lines=lines,
                link=f"{mail.base_url}/referrals",
            )
            queued += 1
    return queued
