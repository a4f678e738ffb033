"""The agenda-freeze and papers sweeps, with the emails they send.

Each call runs in the caller's transaction (one per meeting, opened by the flow task): the meeting
row is locked and the work re-checked as due, so two sweeps at once, a late one, or one re-run after
a crash do each thing once. A crash before commit leaves nothing behind: no status change, no
Document rows or files, no queued email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person
from caseconf import audit
from caseconf.clock import london_text
from meetings import agenda, papers
from meetings.agenda import FreezeResult
from meetings.models import Document, Meeting, MeetingStatus
from notifications.emails import (
    MailContext,
    eip_recipients,
    queue_about_meeting,
    queue_about_referral,
    queue_email,
    referral_thread,
    school_recipients,
)
from notifications.models import OutboundMessage

CLINIC_DATE = "%A %-d %B %Y at %-I:%M%p"


@dataclass
class PapersResult:
    meeting_id: int
    papers_version: int
    documents: list[Document] = field(default_factory=list)
    emails: list[OutboundMessage] = field(default_factory=list)
    held_item_ids: list[int] = field(default_factory=list)


# ---- the freeze --------------------------------------------------------------------------------------


def meetings_due_freeze(session: Session, *, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(Meeting.id)
            .where(Meeting.status == MeetingStatus.planned, Meeting.cutoff_at <= now, Meeting.starts_at > now)
            .order_by(Meeting.starts_at, Meeting.id)
        )
    )


def freeze_meeting(session: Session, meeting_id: int, *, now: datetime, mail: MailContext) -> FreezeResult | None:
    """Freeze one meeting's agenda if it is still due, and tell schools and EIPs of items moved."""
    meeting = agenda.lock_meeting(session, meeting_id)
    if meeting is None or not agenda.is_due_for_freeze(meeting, now):
        return None
    result = agenda.freeze(session, meeting, now=now)
    for moved in result.moved:
        queue_item_moved(session, moved=moved, now=now, mail=mail)
    if not agenda.listed_items(meeting):
        _tell_of_empty_agenda(session, meeting, now=now, mail=mail)
    return result


def _tell_of_empty_agenda(session: Session, meeting: Meeting, *, now: datetime, mail: MailContext) -> None:
    """Nothing was listed by the cut-off: the chair and coordinator decide whether the clinic still meets."""
    people = {meeting.series.coordinator_id, meeting.chair_id} - {None}
    for person in session.scalars(select(Person).where(Person.id.in_(people)).order_by(Person.id)):
        queue_about_meeting(
            session,
            mail=mail,
            now=now,
            meeting=meeting,
            person=person,
            template="agenda_empty",
            key=f"agenda-empty:{meeting.id}:{person.id}",
            clinic=london_text(meeting.starts_at, CLINIC_DATE),
            link=f"{mail.base_url}/admin/meetings/{meeting.id}",
        )


def queue_item_moved(
    session: Session, *, moved: agenda.MovedItem, now: datetime, mail: MailContext, why: str = "agenda_full"
) -> int:
    """The reference and the new clinic date only, to the school contacts and the area's EIPs.
    `why`: "agenda_full", "coordinator" (moved by hand) or "cancelled" (its clinic was called off)."""
    referral = moved.new_item.referral
    if referral is None:
        return 0  # a pupil of concern or an action review: no referral, its school sees the agenda itself
    clinic = london_text(moved.meeting.starts_at, CLINIC_DATE)
    recipients = [(address, f"/referrals/{referral.id}") for address in school_recipients(referral)]
    recipients += [(eip.email, f"/meetings/{moved.meeting.id}") for eip in eip_recipients(session, referral)]
    for recipient, link in dict(recipients).items():
        queue_about_referral(
            session,
            mail=mail,
            now=now,
            referral=referral,
            template="agenda_item_moved",
            key=f"item-moved:{moved.new_item.id}:{recipient}",
            recipient=recipient,
            link=link,
            clinic=clinic,
            why=why,
        )
    return len(dict(recipients))


# ---- papers ------------------------------------------------------------------------------------------


def _papers_due(now: datetime):
    return and_(
        Meeting.starts_at > now,
        or_(
            and_(Meeting.status == MeetingStatus.agenda_frozen, Meeting.papers_due_at <= now),
            and_(
                Meeting.status == MeetingStatus.papers_sent,
                Meeting.agenda_changed_at.is_not(None),
                or_(Meeting.papers_sent_at.is_(None), Meeting.agenda_changed_at > Meeting.papers_sent_at),
            ),
        ),
    )


def meetings_due_papers(session: Session, *, now: datetime) -> list[int]:
    return list(session.scalars(select(Meeting.id).where(_papers_due(now)).order_by(Meeting.starts_at, Meeting.id)))


def _is_papers_due(meeting: Meeting, now: datetime) -> bool:
    if meeting.starts_at <= now:
        return False
    if meeting.status == MeetingStatus.agenda_frozen:
        return meeting.papers_due_at is not None and meeting.papers_due_at <= now
    return (
        meeting.status == MeetingStatus.papers_sent
        and meeting.agenda_changed_at is not None
        and (meeting.papers_sent_at is None or meeting.agenda_changed_at > meeting.papers_sent_at)
    )


@dataclass(frozen=True)
class _Reader:
    person: Person
    agency: Agency | None  # None: the full pack (chair, coordinator)


def _readers(session: Session, meeting: Meeting) -> list[_Reader]:
    """Every active invitee, and the chair and coordinator, once each. Those who run the meeting read
    the full pack whatever agency they were invited for."""
    runs_it = {meeting.chair_id, meeting.series.coordinator_id} - {None}
    readers: dict[int, _Reader] = {}
    for invitation in sorted(meeting.invitations, key=lambda i: i.id):
        if invitation.cancelled_at is not None or not invitation.person.active:
            continue
        agency = None if invitation.person_id in runs_it else invitation.agency
        readers[invitation.person_id] = _Reader(invitation.person, agency)
    for person_id in sorted(runs_it):
        if person_id not in readers:
            person = session.get(Person, person_id)
            if person is not None and person.active:
                readers[person_id] = _Reader(person, None)
    return list(readers.values())


def circulate_papers(
    session: Session, meeting_id: int, *, now: datetime, mail: MailContext, storage_dir: Path
) -> PapersResult | None:
    """Build and store this version's packs and email every reader a link (the pack attached only for
    agencies that asked for attachments). Items without consent or lawful basis are held back and the
    coordinator is told."""
    meeting = agenda.lock_meeting(session, meeting_id)
    if meeting is None or not _is_papers_due(meeting, now):
        return None
    meeting.papers_version += 1
    result = PapersResult(meeting_id=meeting.id, papers_version=meeting.papers_version)
    held = papers.held_items(meeting)
    result.held_item_ids = [item.id for item in held]

    readers = _readers(session, meeting)
    # An invitee without an agency (and not running the meeting) gets no pack: nothing says what they may see.
    agencies = list({r.agency.id: r.agency for r in readers if r.agency is not None}.values())
    packs = papers.build_and_store_packs(session, meeting, agencies=agencies, now=now, storage_dir=storage_dir)
    result.documents = list(packs.values())

    first_time = meeting.status == MeetingStatus.agenda_frozen
    if first_time:
        agenda.set_status(session, meeting, MeetingStatus.papers_sent, now=now, by=None)
    # These papers include every change made so far, even one made after this run began (its `now`).
    meeting.papers_sent_at = max(now, meeting.agenda_changed_at or now)

    clinic = london_text(meeting.starts_at, CLINIC_DATE)
    for reader in readers:
        pack = packs.get(reader.agency.id if reader.agency else None)
        attach = pack is not None and reader.agency is not None and reader.agency.attach_papers
        result.emails.append(
            queue_about_meeting(
                session,
                mail=mail,
                now=now,
                meeting=meeting,
                person=reader.person,
                template="papers",
                key=f"papers:{meeting.id}:{meeting.papers_version}:{reader.person.id}",
                attachments=[{"document_id": pack.id, "filename": pack.original_filename}] if attach else [],
                clinic=clinic,
                version=meeting.papers_version,
                has_pack=pack is not None,
                attached=attach,
                link=f"{mail.base_url}/meetings/{meeting.id}/papers",
                meeting_link=f"{mail.base_url}/meetings/{meeting.id}",
            )
        )
    _tell_coordinator_of_held(session, meeting, held, now=now, mail=mail, clinic=clinic)
    audit.record(
        session,
        now=now,
        action="papers.circulated",
        record_type="meeting",
        record_id=meeting.id,
        papers_version=meeting.papers_version,
        documents=[d.id for d in result.documents],
        emails=len(result.emails),
        held_items=result.held_item_ids,
    )
    return result


def _tell_coordinator_of_held(
    session: Session, meeting: Meeting, held: list, *, now: datetime, mail: MailContext, clinic: str
) -> None:
    coordinator_id = meeting.series.coordinator_id or meeting.chair_id
    coordinator = session.get(Person, coordinator_id) if coordinator_id else None
    if coordinator is None:
        return
    for item in held:
        referral = item.referral
        queue_email(
            session,
            mail=mail,
            now=now,
            template="papers_held",
            key=f"papers-held:{meeting.id}:{item.id}",
            recipient=coordinator.email,
            in_reply_to=referral_thread(referral.id, mail.mail_domain),
            referral_id=referral.id,
            meeting_id=meeting.id,
            reference=referral.reference,
            clinic=clinic,
            link=f"{mail.base_url}/meetings/{meeting.id}",
        )
