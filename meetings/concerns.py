"""Team Around the School: pupils of concern a school puts on its next meeting without a clinic referral.

A pupil of concern is known by a label only (initials and year group, or "Year 8 pupil" for an anonymised
consultation), the concern, what the school asks of the meeting, and the date the family agreed to the
discussion. The school adds it at any time; it goes onto the agenda of the series' next meeting when
that meeting's agenda is frozen (add_concerns), and back to the list if it is taken off again.

Must not import meetings.agenda (agenda imports this module to list the concerns at the freeze).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Person, School
from caseconf import audit
from caseconf.clock import london_today
from caseconf.errors import Conflict, Invalid, NotFound
from caseconf.validation import has_control_characters
from meetings.models import (
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Child,
    ConcernStatus,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    PupilOfConcern,
)

MAX_LABEL = 40
MAX_TEXT = 4_000
# Two or more words that each start with a capital and go on in lower case ("Ottilie Bramblewick")
# look like a name; initials ("O.B.", "OB"), year groups and "pupil" do not.
_NAME_LIKE = re.compile(r"\b[A-Z][a-z]{2,}(?:[-'][A-Za-z]+)?\s+[A-Z][a-z]{2,}")
_ALLOWED_WORDS = frozenset({"Year", "Reception", "Nursery", "Pupil", "Anonymised", "Boy", "Girl", "Child"})

# What a school may still take off its list, and what is still to be discussed.
OPEN = frozenset({ConcernStatus.open, ConcernStatus.listed})
STATUS_WORDS = {
    ConcernStatus.open: "Waiting for the next meeting",
    ConcernStatus.listed: "On the agenda",
    ConcernStatus.discussed: "Discussed",
    ConcernStatus.removed: "Taken off",
}


def _looks_like_a_name(label: str) -> bool:
    for match in _NAME_LIKE.finditer(label):
        words = match.group(0).split()
        if not {w.capitalize() for w in words} & _ALLOWED_WORDS:
            return True
    return False


def check_concern(
    *, label: str, concern: str, ask: str, parent_agreed_on: date | None, today: date
) -> tuple[str, str, str]:
    """The cleaned label, concern and ask; Invalid names every problem (field -> message)."""
    problems: dict[str, str] = {}
    label = " ".join((label or "").split())
    concern = (concern or "").replace("\x00", "").replace("\r\n", "\n").strip()
    ask = (ask or "").replace("\x00", "").replace("\r\n", "\n").strip()
    if not label:
        problems["label"] = "Enter the pupil's initials and year group, for example JB Year 8"
    elif len(label) > MAX_LABEL:
        problems["label"] = f"Initials and year group must be {MAX_LABEL} characters or fewer"
    elif has_control_characters(label):
        problems["label"] = "Initials and year group must not contain special characters"
    elif _looks_like_a_name(label):
        problems["label"] = "Enter initials and year group only, not the pupil's name"
    if not concern:
        problems["concern"] = "Enter what the school is worried about"
    elif len(concern) > MAX_TEXT:
        problems["concern"] = f"The concern must be {MAX_TEXT:,} characters or fewer"
    if len(ask) > MAX_TEXT:
        problems["ask"] = f"What you are asking for must be {MAX_TEXT:,} characters or fewer"
    if parent_agreed_on is not None and parent_agreed_on > today:
        problems["parent_agreed_on"] = "The date the family agreed must be today or in the past"
    if problems:
        raise Invalid(problems)
    return label, concern, ask


def tas_series_for(session: Session, school_id: int) -> MeetingSeries | None:
    """The school's active Team Around the School series, if it has one."""
    return session.scalar(
        select(MeetingSeries)
        .where(
            MeetingSeries.kind == MeetingKind.team_around_school,
            MeetingSeries.school_id == school_id,
            MeetingSeries.active.is_(True),
        )
        .order_by(MeetingSeries.id)
        .limit(1)
    )


def next_tas_meeting(session: Session, series: MeetingSeries, *, now: datetime) -> Meeting | None:
    """The series' next meeting still to start (not cancelled)."""
    return session.scalar(
        select(Meeting)
        .where(
            Meeting.series_id == series.id,
            Meeting.status != MeetingStatus.cancelled,
            Meeting.starts_at > now,
        )
        .order_by(Meeting.starts_at, Meeting.id)
        .limit(1)
    )


def add_concern(
    session: Session,
    *,
    school: School,
    series: MeetingSeries | None,
    added_by: Person,
    label: str,
    concern: str,
    ask: str,
    parent_agreed_on: date | None,
    now: datetime,
    child: Child | None = None,
) -> PupilOfConcern:
    """Put a pupil on the school's list for its next Team Around the School meeting. Access ("concerns.add"
    and the school in the person's scope) is the caller's check."""
    if series is not None and (series.kind != MeetingKind.team_around_school or series.school_id != school.id):
        raise Invalid({"series": "Choose this school's Team Around the School"})
    if child is not None and child.school_id != school.id:
        raise Invalid({"child": "The pupil is not on this school's roll"})
    label, concern, ask = check_concern(
        label=label, concern=concern, ask=ask, parent_agreed_on=parent_agreed_on, today=london_today(now)
    )
    row = PupilOfConcern(
        school_id=school.id,
        series_id=series.id if series else None,
        child_id=child.id if child else None,
        label=label,
        concern=concern,
        ask=ask,
        parent_agreed_on=parent_agreed_on,
        status=ConcernStatus.open,
        added_by_id=added_by.id,
        added_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        now=now,
        action="concern.added",
        actor_person_id=added_by.id,
        actor_label=added_by.email,
        record_type="pupil_of_concern",
        record_id=row.id,
        school_id=school.id,
        series_id=row.series_id,
        parent_agreed=parent_agreed_on is not None,
    )
    return row


def list_concerns(session: Session, school_id: int, *, include_closed: bool = False) -> list[PupilOfConcern]:
    """The school's pupils of concern, newest first: those still to be discussed, or all."""
    query = select(PupilOfConcern).where(PupilOfConcern.school_id == school_id)
    if not include_closed:
        query = query.where(PupilOfConcern.status.in_(tuple(OPEN)))
    return list(session.scalars(query.order_by(PupilOfConcern.added_at.desc(), PupilOfConcern.id.desc())))


def listed_item(session: Session, concern: PupilOfConcern) -> AgendaItem | None:
    """The concern's item on an agenda, while it is listed there."""
    return session.scalar(
        select(AgendaItem)
        .where(AgendaItem.concern_id == concern.id, AgendaItem.status == AgendaItemStatus.listed)
        .order_by(AgendaItem.id.desc())
        .limit(1)
    )


def remove_concern(
    session: Session, *, concern_id: int, school_ids: frozenset[int] | set[int], by: Person, now: datetime
) -> PupilOfConcern:
    """Take a pupil off the school's list. Once on a frozen agenda it can only be taken off by those who
    run the meeting (the agenda's own edits), so the papers and the list agree."""
    concern = session.get(PupilOfConcern, concern_id, with_for_update=True) if 0 < concern_id < 2**31 else None
    if concern is None or concern.school_id not in school_ids:
        raise NotFound(f"pupil of concern {concern_id}")
    if concern.status not in OPEN:
        raise Conflict("This pupil has already been discussed or taken off the list")
    if concern.status == ConcernStatus.listed:
        raise Conflict(
            "This pupil is already on the agenda of the next meeting: ask the meeting's coordinator to take it off"
        )
    concern.status = ConcernStatus.removed
    audit.record(
        session,
        now=now,
        action="concern.removed",
        actor_person_id=by.id,
        actor_label=by.email,
        record_type="pupil_of_concern",
        record_id=concern.id,
        school_id=concern.school_id,
    )
    return concern


def add_concerns(session: Session, meeting: Meeting, *, now: datetime) -> list[AgendaItem]:
    """At a Team Around the School freeze: list the school's open pupils of concern (oldest first) as items
    of this meeting, and mark them listed. Other kinds of series have none."""
    series = meeting.series
    if series.kind != MeetingKind.team_around_school or series.school_id is None:
        return []
    waiting = session.scalars(
        select(PupilOfConcern)
        .where(
            PupilOfConcern.school_id == series.school_id,
            PupilOfConcern.status == ConcernStatus.open,
            (PupilOfConcern.series_id.is_(None)) | (PupilOfConcern.series_id == series.id),
        )
        .order_by(PupilOfConcern.added_at, PupilOfConcern.id)
        .with_for_update()
    ).all()
    last = max((i.position for i in meeting.items), default=0)
    added = []
    for number, concern in enumerate(waiting, 1):
        item = AgendaItem(
            meeting_id=meeting.id,
            kind=AgendaItemKind.pupil_of_concern,
            concern_id=concern.id,
            position=last + number,
            slot_minutes=series.item_minutes,
            status=AgendaItemStatus.listed,
            added_at=now,
        )
        session.add(item)
        meeting.items.append(item)
        concern.status = ConcernStatus.listed
        added.append(item)
    session.flush()
    if added:
        audit.record(
            session,
            now=now,
            action="agenda.concerns_listed",
            record_type="meeting",
            record_id=meeting.id,
            concern_ids=[i.concern_id for i in added],
        )
    return added


def concern_of(session: Session, item: AgendaItem) -> PupilOfConcern | None:
    return session.get(PupilOfConcern, item.concern_id) if item.concern_id else None


def back_to_list(session: Session, item: AgendaItem) -> None:
    """An item taken off an agenda (not moved on): its pupil waits for the next freeze again."""
    concern = concern_of(session, item)
    if concern is not None and concern.status == ConcernStatus.listed:
        concern.status = ConcernStatus.open
