"""Consent withdrawal: recorded on the referral, and circulation stopped.

The school (its own referral) or the area's EIP records it with a note. From then on the referral is taken
off every agenda not yet held (updated papers without it go out when papers had already gone), the stored
papers packs and minutes that included it are withdrawn (only the meeting's chair and coordinators may still
download them), waits on outside agencies are closed so no agency is chased, and the papers and minutes
leave it out (meetings.papers.may_circulate). The emails (to the coordinator and the next meeting's chair,
and stopping those queued to agencies) are notifications.consent_mail's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Role
from caseconf import audit
from caseconf.errors import Conflict, Invalid
from meetings import agenda
from meetings.access import Principal
from meetings.models import (
    AgencyWait,
    AgendaItem,
    AgendaItemStatus,
    Document,
    DocumentKind,
    Meeting,
    MeetingStatus,
    Referral,
    ReferralStatus,
)

MAX_NOTE = 2000
NOT_YET_HELD = (MeetingStatus.planned, MeetingStatus.agenda_frozen, MeetingStatus.papers_sent)


@dataclass
class Withdrawal:
    referral: Referral
    removed_from: list[Meeting] = field(default_factory=list)  # agendas it was taken off, soonest first
    withdrawn_documents: list[int] = field(default_factory=list)
    closed_waits: list[int] = field(default_factory=list)


def may_withdraw(principal: Principal | None, referral: Referral) -> bool:
    """The referring school (its own referral) or an EIP for the school's area."""
    if principal is None or referral.status == ReferralStatus.draft:
        return False
    return referral.school_id in principal.school_ids or referral.school.area_id in principal.area_ids


def why_not(referral: Referral) -> str | None:
    """Why consent cannot be withdrawn on this referral, in words for the page; None when it can."""
    if referral.consent_withdrawn_at is not None:
        return "Consent has already been withdrawn for this referral."
    if referral.redacted_at is not None:
        return "This referral has been redacted under the retention schedule."
    if referral.consent_status != "given":
        return (
            "This referral is shared on a recorded lawful basis, not on consent. To stop it being shared,"
            " speak to the Education Inclusion Partner for the area."
        )
    return None


def clean_note(note: str | None) -> str:
    text = (note or "").strip().replace("\x00", "")
    if not text:
        raise Invalid({"note": "Enter who withdrew consent, when and how"})
    if len(text) > MAX_NOTE:
        raise Invalid({"note": f"The note must be {MAX_NOTE} characters or fewer"})
    return text


def withdraw_consent(
    session: Session, *, referral: Referral, person_id: int, note: str, now: datetime, ip_address: str | None = None
) -> Withdrawal:
    """Record the withdrawal and stop circulation; the caller has locked the referral (access_referral)."""
    reason = why_not(referral)
    if reason:
        raise Conflict(reason)
    text = clean_note(note)
    referral.consent_withdrawn_at = now
    referral.consent_withdrawn_by_id = person_id
    referral.consent_withdrawal_note = text
    referral.updated_at = now
    result = Withdrawal(referral=referral)

    items = session.scalars(select(AgendaItem).where(AgendaItem.referral_id == referral.id)).all()
    meeting_ids = {i.meeting_id for i in items}
    for item in items:
        meeting = agenda.lock_meeting(session, item.meeting_id)
        if (
            item.status != AgendaItemStatus.listed
            or meeting.status not in NOT_YET_HELD
            or meeting.starts_at <= now
            or meeting.started_at is not None
        ):
            continue
        item.status = AgendaItemStatus.removed
        agenda.arrange(meeting)
        if meeting.status == MeetingStatus.papers_sent:
            meeting.agenda_changed_at = now  # updated papers, without it, go out on the next papers sweep
        result.removed_from.append(meeting)
    result.removed_from.sort(key=lambda m: m.starts_at)

    if meeting_ids:
        for document in session.scalars(
            select(Document).where(
                Document.meeting_id.in_(meeting_ids),
                Document.kind.in_((DocumentKind.papers_pack, DocumentKind.minutes)),
                Document.withdrawn_at.is_(None),
            )
        ):
            document.withdrawn_at = now
            result.withdrawn_documents.append(document.id)
    for wait in session.scalars(
        select(AgencyWait).where(AgencyWait.referral_id == referral.id, AgencyWait.resolved_at.is_(None))
    ):
        wait.resolved_at = now
        wait.resolution = "Closed: consent was withdrawn"
        result.closed_waits.append(wait.id)
    session.flush()
    audit.record(
        session,
        now=now,
        action="referral.consent_withdrawn",
        actor_person_id=person_id,
        record_type="referral",
        record_id=referral.id,
        ip_address=ip_address,
        removed_from_meetings=[m.id for m in result.removed_from],
        withdrawn_documents=sorted(result.withdrawn_documents),
        closed_waits=result.closed_waits,
    )
    return result


def runs_meeting(principal: Principal, meeting: Meeting) -> bool:
    """The meeting's chair and coordinators: who may still read what was withdrawn."""
    return (
        principal.person_id in (meeting.chair_id, meeting.series.coordinator_id) or Role.coordinator in principal.roles
    )


def may_download(session: Session, principal: Principal, document: Document) -> bool:
    """A withdrawn document is served only to its meeting's chair and coordinators, and only while its file is
    kept; anything else may be downloaded as its own rules allow."""
    if document.withdrawn_at is None:
        return True
    if document.file_deleted_at is not None or document.meeting_id is None:
        return False
    meeting = session.get(Meeting, document.meeting_id)
    return meeting is not None and runs_meeting(principal, meeting)
