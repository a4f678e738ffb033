"""A meeting's agenda: priority order, time slots, the freeze at cut-off, and the coordinator's edits.

Service functions take the caller's session and never commit; every change is audited. Emails about
moved items are queued by the caller (notifications.papers_mail) from the FreezeResult returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from agencies.models import School
from caseconf import audit
from caseconf.clock import london
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import actions, concerns
from meetings.models import (
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Decision,
    Meeting,
    MeetingKind,
    MeetingStatus,
    MeetingStatusChange,
    Referral,
    ReferralStatus,
    Urgency,
)

# While these, and before the meeting starts, the coordinator may still change the agenda.
EDITABLE = frozenset({MeetingStatus.planned, MeetingStatus.agenda_frozen, MeetingStatus.papers_sent})
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Slot:
    item: AgendaItem
    starts: datetime  # Europe/London
    ends: datetime


@dataclass(frozen=True)
class MovedItem:
    old_item: AgendaItem
    new_item: AgendaItem
    meeting: Meeting  # where it went


@dataclass
class FreezeResult:
    meeting: Meeting
    reviews_added: list[AgendaItem] = field(default_factory=list)
    moved: list[MovedItem] = field(default_factory=list)
    # Over capacity with no later meeting planned in the series: left on this agenda.
    kept_over_capacity: list[AgendaItem] = field(default_factory=list)
    action_reviews: list[AgendaItem] = field(default_factory=list)  # open actions brought back for review
    concerns_added: list[AgendaItem] = field(default_factory=list)  # a Team Around the School's pupils


# ---- order and slots ---------------------------------------------------------------------------


def priority_key(item: AgendaItem) -> tuple:
    """Urgent first; within the same urgency, carried-forward items before new ones, then oldest
    referral first; action reviews last."""
    if item.kind == AgendaItemKind.pupil_of_concern:  # a school's pupils: after referrals, before reviews
        return (0, 2, 0 if item.carried_from_id is not None else 1, item.added_at or _LONG_AGO, item.id or 0)
    if item.kind == AgendaItemKind.action_review or item.referral is None:
        return (1, 1, 1, _LONG_AGO, item.id or 0)
    referral = item.referral
    return (
        0,
        0 if referral.urgency == Urgency.priority else 1,
        0 if item.carried_from_id is not None else 1,
        referral.submitted_at or referral.created_at or _LONG_AGO,
        item.id or 0,
    )


def listed_items(meeting: Meeting) -> list[AgendaItem]:
    return sorted((i for i in meeting.items if i.status == AgendaItemStatus.listed), key=lambda i: (i.position, i.id))


def arrange(meeting: Meeting) -> None:
    """Number the listed items 1..n in priority order, or keep the coordinator's order once they
    have set one (new items were put at the end when added). Other items follow."""
    listed = listed_items(meeting)
    if not meeting.agenda_order_locked:
        listed.sort(key=priority_key)
    others = sorted((i for i in meeting.items if i.status != AgendaItemStatus.listed), key=lambda i: i.id)
    for position, item in enumerate([*listed, *others], 1):
        item.position = position


def slots(meeting: Meeting) -> list[Slot]:
    """Each listed item's start and end on the London clock, one after another from the meeting start."""
    start = london(meeting.starts_at)
    result = []
    for item in listed_items(meeting):
        end = london(start + timedelta(minutes=item.slot_minutes))
        result.append(Slot(item, start, end))
        start = end
    return result


def item_label(item: AgendaItem) -> str:
    """new, review or carried forward: how the item came onto the agenda."""
    if item.carried_from_id is not None:
        return "carried forward"
    if item.kind == AgendaItemKind.action_review or (
        item.referral is not None and item.referral.status == ReferralStatus.review
    ):
        return "review"
    return "new"


# ---- helpers ------------------------------------------------------------------------------------


def lock_meeting(session: Session, meeting_id: int) -> Meeting | None:
    """The meeting row, locked for this transaction and re-read, so a sweep sees what another committed."""
    return session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)


def set_status(session: Session, meeting: Meeting, to: MeetingStatus, *, now: datetime, by: int | None) -> None:
    session.add(
        MeetingStatusChange(
            meeting_id=meeting.id, from_status=meeting.status, to_status=to, changed_at=now, changed_by_id=by
        )
    )
    meeting.status = to


def next_meeting(session: Session, meeting: Meeting) -> Meeting | None:
    """The series' next planned meeting after this one (cancelled ones are skipped)."""
    return session.scalar(
        select(Meeting)
        .where(
            Meeting.series_id == meeting.series_id,
            Meeting.status == MeetingStatus.planned,
            Meeting.starts_at > meeting.starts_at,
        )
        .order_by(Meeting.starts_at)
        .limit(1)
    )


def _listed_on_future_meeting(referral_id_column, now: datetime):
    """SQL: the referral has a listed item on a meeting still to come."""
    item, meeting = aliased(AgendaItem), aliased(Meeting)
    return exists(
        select(item.id)
        .join(meeting, meeting.id == item.meeting_id)
        .where(
            item.referral_id == referral_id_column,
            item.status == AgendaItemStatus.listed,
            meeting.starts_at > now,
            meeting.status != MeetingStatus.cancelled,
        )
    )


def _serves(meeting: Meeting):
    """SQL: the referral's school is one this meeting's series serves."""
    series = meeting.series
    if series.kind == MeetingKind.team_around_school:
        return Referral.school_id == series.school_id
    if series.area_id is None:
        return true()
    return School.area_id == series.area_id


def _put_on(session: Session, meeting: Meeting, referral: Referral, *, now: datetime, carried_from_id=None):
    """List the referral on the meeting, reusing its row there if it was once removed or deferred."""
    item = next((i for i in meeting.items if i.referral_id == referral.id), None)
    if item is not None and item.status == AgendaItemStatus.listed:
        raise Conflict(f"{referral.reference} is already on the agenda of that meeting")
    last = max((i.position for i in meeting.items), default=0)
    if item is None:
        item = AgendaItem(meeting_id=meeting.id, kind=AgendaItemKind.referral, referral_id=referral.id)
        session.add(item)
        meeting.items.append(item)
    item.status = AgendaItemStatus.listed
    item.position = last + 1
    item.slot_minutes = meeting.series.item_minutes
    item.carried_from_id = carried_from_id
    item.added_at = now
    item.referral = referral
    session.flush()
    return item


def _put_copy_on(session: Session, meeting: Meeting, item: AgendaItem, *, now: datetime) -> AgendaItem:
    """Carry an item that is not a referral (an action review or a pupil of concern) to another meeting:
    a new item there, marked as carried from this one."""
    new_item = AgendaItem(
        meeting_id=meeting.id,
        kind=item.kind,
        action_id=item.action_id,
        concern_id=item.concern_id,
        status=AgendaItemStatus.listed,
        position=max((i.position for i in meeting.items), default=0) + 1,
        slot_minutes=item.slot_minutes,
        carried_from_id=item.id,
        added_at=now,
    )
    session.add(new_item)
    meeting.items.append(new_item)
    session.flush()
    return new_item


def _carry(session: Session, item: AgendaItem, *, now: datetime) -> MovedItem:
    """Defer the item and list it on the series' next planned meeting."""
    target = next_meeting(session, item.meeting)
    if target is None:
        raise Conflict("There is no later meeting planned in this series to move the item to")
    item.status = AgendaItemStatus.deferred
    if item.kind in (AgendaItemKind.pupil_of_concern, AgendaItemKind.action_review):
        new_item = _put_copy_on(session, target, item, now=now)
    else:
        new_item = _put_on(session, target, item.referral, now=now, carried_from_id=item.id)
    new_item.agencies_needed = list(item.agencies_needed or [])
    arrange(target)
    return MovedItem(old_item=item, new_item=new_item, meeting=target)


def _check_editable(meeting: Meeting, now: datetime) -> None:
    if meeting.status not in EDITABLE or meeting.starts_at <= now:
        raise Conflict("This meeting's agenda can no longer be changed")


def _changed(meeting: Meeting, now: datetime) -> None:
    # After the papers have gone, any change means updated papers (the papers sweep looks at this).
    if meeting.status == MeetingStatus.papers_sent:
        meeting.agenda_changed_at = now


def _item_on(meeting: Meeting, item_id: int) -> AgendaItem:
    item = next((i for i in meeting.items if i.id == item_id and i.status == AgendaItemStatus.listed), None)
    if item is None:
        raise NotFound(f"agenda item {item_id} on meeting {meeting.id}")
    return item


# ---- review items and the freeze --------------------------------------------------------------------


def due_reviews(session: Session, meeting: Meeting, *, now: datetime) -> list[Referral]:
    """Referrals in review whose latest decision set a review date on or before this meeting, served
    by this series, and not already listed on a meeting still to come."""
    latest = (
        select(AgendaItem.referral_id, func.max(Decision.decided_at).label("decided_at"))
        .join(Decision, Decision.agenda_item_id == AgendaItem.id)
        .group_by(AgendaItem.referral_id)
        .subquery()
    )
    review_due = (
        select(AgendaItem.referral_id)
        .join(Decision, Decision.agenda_item_id == AgendaItem.id)
        .join(
            latest,
            and_(latest.c.referral_id == AgendaItem.referral_id, latest.c.decided_at == Decision.decided_at),
        )
        .where(Decision.review_on.is_not(None), Decision.review_on <= meeting.meeting_date)
    )
    return list(
        session.scalars(
            select(Referral)
            .join(School, School.id == Referral.school_id)
            .where(
                Referral.status == ReferralStatus.review,
                Referral.consent_withdrawn_at.is_(None),
                Referral.id.in_(review_due),
                _serves(meeting),
                ~_listed_on_future_meeting(Referral.id, now),
            )
            .order_by(Referral.submitted_at, Referral.id)
        )
    )


def is_due_for_freeze(meeting: Meeting, now: datetime) -> bool:
    return (
        meeting.status == MeetingStatus.planned
        and meeting.cutoff_at is not None
        and meeting.cutoff_at <= now < meeting.starts_at
    )


def freeze(session: Session, meeting: Meeting, *, now: datetime) -> FreezeResult:
    """Close the agenda at cut-off: add due reviews, put items in order, and move what does not fit
    (by count or by minutes) to the next meeting of the series, lowest priority first."""
    if not is_due_for_freeze(meeting, now):
        raise Conflict("This meeting's agenda is not due to be frozen")
    result = FreezeResult(meeting=meeting)
    for referral in due_reviews(session, meeting, now=now):
        result.reviews_added.append(_put_on(session, meeting, referral, now=now))
    result.action_reviews = actions.add_action_reviews(session, meeting, now=now)
    result.concerns_added = concerns.add_concerns(session, meeting, now=now)
    arrange(meeting)

    series = meeting.series
    minutes, fitted = 0, 0
    over: list[AgendaItem] = []
    for item in listed_items(meeting):
        if item.kind == AgendaItemKind.action_review:
            continue  # open actions are reviewed together at the end: they never push a case off the agenda
        if fitted < series.capacity_items and minutes + item.slot_minutes <= series.duration_minutes:
            fitted += 1
            minutes += item.slot_minutes
        else:
            over.append(item)
    if over and next_meeting(session, meeting) is None:
        result.kept_over_capacity = over
    else:
        result.moved = [_carry(session, item, now=now) for item in over]
    arrange(meeting)

    set_status(session, meeting, MeetingStatus.agenda_frozen, now=now, by=None)
    meeting.agenda_frozen_at = now
    audit.record(
        session,
        now=now,
        action="meeting.agenda_frozen",
        record_type="meeting",
        record_id=meeting.id,
        listed=len(listed_items(meeting)),
        reviews_added=[i.referral_id for i in result.reviews_added],
        moved={m.old_item.referral_id: m.meeting.id for m in result.moved},
        kept_over_capacity=[i.referral_id for i in result.kept_over_capacity],
    )
    return result


# ---- the coordinator's edits -----------------------------------------------------------------------


def move_item(
    session: Session,
    *,
    meeting: Meeting,
    item_id: int,
    now: datetime,
    actor_id: int,
    direction: str | None = None,
    position: int | None = None,
) -> AgendaItem:
    """Move an item up or down one place, or to a position (1 is first). From then on the agenda keeps
    the coordinator's order."""
    _check_editable(meeting, now)
    item = _item_on(meeting, item_id)
    listed = listed_items(meeting)
    index = listed.index(item)
    if direction is not None:
        if direction not in ("up", "down"):
            raise Invalid({"direction": "Choose up or down"})
        target = index - 1 if direction == "up" else index + 1
    elif position is not None:
        target = position - 1
    else:
        raise Invalid({"position": "Choose where to move the item"})
    if not 0 <= target < len(listed):
        raise Invalid({"position": f"Choose a position from 1 to {len(listed)}"})
    listed.insert(target, listed.pop(index))
    for number, entry in enumerate(listed, 1):
        entry.position = number
    meeting.agenda_order_locked = True
    arrange(meeting)
    _changed(meeting, now)
    audit.record(
        session,
        now=now,
        action="agenda.item_moved",
        actor_person_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        item_id=item.id,
        referral_id=item.referral_id,
        from_position=index + 1,
        to_position=target + 1,
    )
    return item


def addable_referrals(session: Session, meeting: Meeting, *, now: datetime) -> list[Referral]:
    """Accepted or in-review referrals this series serves that are on no meeting still to come."""
    return list(
        session.scalars(
            select(Referral)
            .join(School, School.id == Referral.school_id)
            .where(
                or_(Referral.status == ReferralStatus.accepted, Referral.status == ReferralStatus.review),
                Referral.consent_withdrawn_at.is_(None),
                _serves(meeting),
                ~_listed_on_future_meeting(Referral.id, now),
            )
            .order_by(Referral.submitted_at, Referral.id)
        )
    )


def add_referral(session: Session, *, meeting: Meeting, referral: Referral, now: datetime, actor_id: int) -> AgendaItem:
    _check_editable(meeting, now)
    if referral.id not in {r.id for r in addable_referrals(session, meeting, now=now)}:
        raise Invalid(
            {"referral_id": "Choose an accepted referral, or one due for review, that is not on another agenda"}
        )
    item = _put_on(session, meeting, referral, now=now)
    arrange(meeting)
    _changed(meeting, now)
    audit.record(
        session,
        now=now,
        action="agenda.item_added",
        actor_person_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        item_id=item.id,
        referral_id=referral.id,
    )
    return item


def remove_item(
    session: Session, *, meeting: Meeting, item_id: int, now: datetime, actor_id: int, to_next_meeting: bool
) -> MovedItem | None:
    """Take an item off the agenda: removed, or deferred and listed on the next meeting."""
    _check_editable(meeting, now)
    item = _item_on(meeting, item_id)
    moved = _carry(session, item, now=now) if to_next_meeting else None
    if moved is None:
        item.status = AgendaItemStatus.removed
        concerns.back_to_list(session, item)
    arrange(meeting)
    _changed(meeting, now)
    audit.record(
        session,
        now=now,
        action="agenda.item_removed",
        actor_person_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        item_id=item.id,
        referral_id=item.referral_id,
        moved_to_meeting=moved.meeting.id if moved else None,
    )
    return moved
