"""The live meeting room: opening it, attendance, the current item, notes, contributions as heard,
decisions, actions, action reviews, and ending the meeting (the referrals move on from their decisions).

Service functions take the caller's session and never commit; every change is audited. Texts that two
people (or a laptop that lost its wifi) may edit are saved through meetings.edits.save_text, so a stale
save never overwrites newer text. No emails are queued here: the outcome and the actions' first emails
are sent by the follow-through sweeps once the meeting has ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, Role, RoleGrant, School, SharingGroup
from caseconf import audit
from caseconf.clock import london, london_text, london_today
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import agenda
from meetings.edits import EditConflict, Saved, save_text
from meetings.models import (
    Action,
    ActionEvent,
    ActionEventKind,
    ActionStatus,
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Attendance,
    ConcernStatus,
    Contribution,
    Decision,
    Invitation,
    InviteeRole,
    Meeting,
    MeetingStatus,
    Minute,
    MinutesStatus,
    NotDoneReason,
    Outcome,
    OutcomeOption,
    PupilOfConcern,
    Referral,
    ReferralStatus,
    Rsvp,
    Visibility,
)
from meetings.papers import COMMUNITY_SAFETY_GROUPS, HEALTH_GROUPS
from meetings.referrals import _record_change
from meetings.working_days import is_working_day

# The room opens once the agenda is closed; the meeting runs until it is ended.
OPENABLE = frozenset({MeetingStatus.agenda_frozen, MeetingStatus.papers_sent})
# Notes, decisions and actions may be tidied until the chair approves the minutes.
TIDYING = frozenset({MeetingStatus.held, MeetingStatus.minutes_draft})
ROOM_ITEM_STATUSES = frozenset({AgendaItemStatus.listed, AgendaItemStatus.discussed})
ON_THE_DAY_ROLES = frozenset({InviteeRole.deputy, InviteeRole.observer})
ATTENDANCE_LABELS = {
    Attendance.present: "Present",
    Attendance.apologies: "Apologies",
    Attendance.information_sent: "Apologies, information sent",
    Attendance.absent: "Absent",
}
REVIEW_OUTCOMES = ("done", "keep_open", "cancel")
NOT_DONE_LABELS = {
    NotDoneReason.circumstances_changed: "Circumstances changed",
    NotDoneReason.agency_did_not_act: "Agency did not act",
    NotDoneReason.other: "Other",
}
MAX_TEXT = 20_000
MAX_NOTE = 500


# ---- checks ------------------------------------------------------------------------------------------


def is_running(meeting: Meeting) -> bool:
    return meeting.started_at is not None and meeting.ended_at is None and meeting.status in OPENABLE


def is_editable(meeting: Meeting) -> bool:
    """Notes, decisions and actions can be changed: the meeting is running, or its minutes are in draft."""
    return meeting.started_at is not None and (is_running(meeting) or meeting.status in TIDYING)


def _check_running(meeting: Meeting) -> None:
    if meeting.started_at is None:
        raise Conflict("Open the meeting room first")
    if not is_running(meeting):
        raise Conflict("The meeting has ended")


LOCKED_AFTER_THE_END = (
    "The meeting has ended: its decisions and actions have gone to the school and to the owners, so they "
    "can no longer be changed here. Change an action from the action tracker; only notes and the summary "
    "can still be tidied"
)


def _check_deciding(meeting: Meeting) -> None:
    """Decisions and actions are made while the meeting runs; once it has ended they are on their way to the
    school and the owners, so they are locked (a change here would never reach the referral or the school)."""
    if meeting.started_at is None:
        raise Conflict("Open the meeting room first")
    if not is_running(meeting):
        raise Conflict(LOCKED_AFTER_THE_END)


def _check_editable(meeting: Meeting) -> None:
    if meeting.started_at is None:
        raise Conflict("Open the meeting room first")
    if not is_editable(meeting):
        raise Conflict("The minutes have been approved: they can no longer be changed here")


def _item(meeting: Meeting, item_id: int) -> AgendaItem:
    item = next((i for i in meeting.items if i.id == item_id and i.status in ROOM_ITEM_STATUSES), None)
    if item is None:
        raise NotFound(f"agenda item {item_id} on meeting {meeting.id}")
    return item


def _text(value: str | None, *, limit: int = MAX_TEXT) -> str:
    value = (value or "").replace("\x00", "").replace("\r\n", "\n")
    return value[:limit]


def item_reference(item: AgendaItem) -> str:
    if item.referral is not None:
        return item.referral.reference or f"referral {item.referral_id}"
    if item.kind == AgendaItemKind.action_review:
        return f"action review {item.action_id}"
    if item.kind == AgendaItemKind.pupil_of_concern:
        return f"pupil of concern {item.concern_id}"
    return f"item {item.position}"


def _audit(
    session: Session, *, now: datetime, action: str, actor_id: int | None, record_type: str, record_id, **detail
):
    audit.record(
        session,
        now=now,
        action=action,
        actor_person_id=actor_id,
        record_type=record_type,
        record_id=record_id,
        **detail,
    )


# ---- opening the room --------------------------------------------------------------------------------


def open_room(session: Session, meeting: Meeting, *, now: datetime, actor_id: int) -> bool:
    """Start the meeting in the room; True the first time, False when it was already open."""
    if meeting.started_at is not None:
        return False
    if meeting.status == MeetingStatus.planned:
        raise Conflict("The meeting room opens once the agenda has been closed")
    if meeting.status not in OPENABLE:
        raise Conflict("This meeting cannot be opened in the meeting room")
    if london_today(now) < meeting.meeting_date:
        raise Conflict(
            f"The meeting room opens on the day of the meeting, {london_text(meeting.starts_at, '%A %-d %B %Y')}"
        )
    meeting.started_at = now
    _audit(
        session, now=now, action="meeting.room_opened", actor_id=actor_id, record_type="meeting", record_id=meeting.id
    )
    return True


# ---- what the page shows -----------------------------------------------------------------------------


@dataclass
class RoomItem:
    item: AgendaItem
    number: int
    starts: datetime  # planned slot, Europe/London
    ends: datetime
    used_minutes: int
    current: bool
    decision: Decision | None
    contributions: dict[int, Contribution]  # by agency id
    actions: list[Action]
    review_action: Action | None = None
    concern: PupilOfConcern | None = None
    settled: bool = False  # decided, or (an action review) reviewed at this meeting or closed before it
    reviewed_here: bool = False  # an action review recorded at this meeting

    @property
    def over_time(self) -> bool:
        return self.used_minutes > self.item.slot_minutes

    @property
    def reference(self) -> str:
        action = self.review_action
        if action is not None:
            about = action.referral.reference if action.referral is not None else "a pupil of concern"
            owner = action.owner_agency.name if action.owner_agency is not None else "the school"
            return f"Action review for {about} ({owner})"
        if self.concern is not None:
            return f"Pupil of concern: {self.concern.label}"
        return item_reference(self.item)


@dataclass
class AttendanceRow:
    invitation: Invitation
    person: Person
    agency: Agency | None


@dataclass
class RoomState:
    meeting: Meeting
    items: list[RoomItem]
    current: RoomItem | None
    used_minutes: int
    planned_minutes: int
    elapsed_minutes: int
    attendance: list[AttendanceRow]
    agencies: list[Agency]  # invited agencies: one contribution each per item
    options: list[OutcomeOption]
    running: bool
    editable: bool
    unsettled: list[RoomItem] = field(default_factory=list)
    minute: Minute | None = None  # created when the meeting ends

    @property
    def deciding(self) -> bool:
        """Decisions and actions can be made or changed: only while the meeting runs."""
        return self.running


def _minutes(start: datetime | None, end: datetime | None, now: datetime) -> int:
    if start is None:
        return 0
    return max(int(((end or now) - start).total_seconds() // 60), 0)


def room_items(meeting: Meeting) -> list[AgendaItem]:
    return sorted((i for i in meeting.items if i.status in ROOM_ITEM_STATUSES), key=lambda i: (i.position, i.id))


def live_invitations(session: Session, meeting: Meeting) -> list[Invitation]:
    return list(
        session.scalars(
            select(Invitation)
            .where(Invitation.meeting_id == meeting.id, Invitation.cancelled_at.is_(None))
            .order_by(Invitation.id)
        )
    )


def _reviewed_here(action: Action, meeting: Meeting) -> bool:
    started = meeting.started_at
    return started is not None and any(
        e.occurred_at >= started
        and e.kind in (ActionEventKind.update, ActionEventKind.done, ActionEventKind.cancelled)
        and e.note is not None
        and e.note.startswith(REVIEW_NOTE_PREFIX)
        for e in action.events
    )


def room_state(session: Session, meeting: Meeting, *, now: datetime) -> RoomState:
    items = room_items(meeting)
    ids = [i.id for i in items]
    decisions = {d.agenda_item_id: d for d in session.scalars(select(Decision).where(Decision.agenda_item_id.in_(ids)))}
    contributions: dict[int, dict[int, Contribution]] = {}
    for row in session.scalars(select(Contribution).where(Contribution.agenda_item_id.in_(ids))):
        contributions.setdefault(row.agenda_item_id, {})[row.agency_id] = row
    actions: dict[int, list[Action]] = {}
    for action in session.scalars(select(Action).where(Action.agenda_item_id.in_(ids)).order_by(Action.id)):
        actions.setdefault(action.agenda_item_id, []).append(action)

    rows, start, used = [], meeting.starts_at, 0
    for number, item in enumerate(items, 1):
        end = start + timedelta(minutes=item.slot_minutes)
        minutes = _minutes(item.started_at, item.ended_at, now)
        used += minutes
        row = RoomItem(
            item=item,
            number=number,
            starts=london(start),
            ends=london(end),
            used_minutes=minutes,
            current=item.started_at is not None and item.ended_at is None,
            decision=decisions.get(item.id),
            contributions=contributions.get(item.id, {}),
            actions=actions.get(item.id, []),
        )
        if item.kind == AgendaItemKind.action_review and item.action_id is not None:
            row.review_action = session.get(Action, item.action_id)
            row.reviewed_here = row.review_action is not None and _reviewed_here(row.review_action, meeting)
            row.settled = row.review_action is not None and (
                row.review_action.status != ActionStatus.open or row.reviewed_here
            )
        else:
            row.settled = row.decision is not None
        if item.concern_id is not None:
            row.concern = session.get(PupilOfConcern, item.concern_id)
        rows.append(row)
        start = end

    invitations = live_invitations(session, meeting)
    agency_ids = sorted({i.agency_id for i in invitations if i.agency_id is not None})
    agencies = list(session.scalars(select(Agency).where(Agency.id.in_(agency_ids)).order_by(Agency.name)))
    names = {a.id: a.name for a in agencies}
    attendance = [AttendanceRow(i, i.person, i.agency) for i in invitations]
    attendance.sort(key=lambda r: (0 if r.agency is None else 1, names.get(r.invitation.agency_id, ""), r.person.name))
    options = list(
        session.scalars(select(OutcomeOption).where(OutcomeOption.active.is_(True)).order_by(OutcomeOption.position))
    )
    current = next((r for r in rows if r.current), None)
    return RoomState(
        meeting=meeting,
        items=rows,
        current=current,
        used_minutes=used,
        planned_minutes=sum(i.slot_minutes for i in items),
        elapsed_minutes=_minutes(meeting.started_at, meeting.ended_at, now),
        attendance=attendance,
        agencies=agencies,
        options=options,
        running=is_running(meeting),
        editable=is_editable(meeting),
        unsettled=[r for r in rows if r.item.status == AgendaItemStatus.listed and not r.settled],
        minute=session.scalar(select(Minute).where(Minute.meeting_id == meeting.id)),
    )


# ---- attendance --------------------------------------------------------------------------------------


def set_attendance(
    session: Session,
    meeting: Meeting,
    invitation_id: int,
    *,
    status: str,
    note: str = "",
    now: datetime,
    actor_id: int,
) -> bool:
    """Record whether an invitee came; True when anything changed."""
    _check_editable(meeting)
    invitation = session.get(Invitation, invitation_id)
    if invitation is None or invitation.meeting_id != meeting.id or invitation.cancelled_at is not None:
        raise NotFound(f"invitation {invitation_id} on meeting {meeting.id}")
    if status not in {a.value for a in Attendance} and status != "":
        raise Invalid({f"attendance-{invitation_id}": "Choose whether they were present, sent apologies or absent"})
    note = _text(note, limit=10 * MAX_NOTE).strip()
    if len(note) > MAX_NOTE:
        raise Invalid({f"note-{invitation_id}": f"The note must be {MAX_NOTE} characters or fewer"})
    new_status, new_note = status or None, note or None
    if (invitation.attendance, invitation.attendance_note) == (new_status, new_note):
        return False
    invitation.attendance, invitation.attendance_note = new_status, new_note
    _audit(
        session,
        now=now,
        action="meeting.attendance_recorded",
        actor_id=actor_id,
        record_type="invitation",
        record_id=invitation.id,
        meeting_id=meeting.id,
        person_id=invitation.person_id,
        attendance=new_status,
    )
    return True


def add_attendee(
    session: Session,
    meeting: Meeting,
    *,
    person_id: int | None,
    agency_id: int | None,
    role: str,
    now: datetime,
    actor_id: int,
) -> Invitation:
    """Someone who came on the day (a deputy, or an observer) from the directory: invited and present."""
    _check_editable(meeting)
    problems = {}
    person = session.get(Person, person_id) if person_id else None
    if person is None or not person.active:
        problems["person_id"] = "Choose who came from the directory"
    agency = session.get(Agency, agency_id) if agency_id else None
    if agency is None or not agency.active:
        problems["agency_id"] = "Choose the agency they came for"
    if role not in ON_THE_DAY_ROLES:
        problems["role"] = "Choose whether they came as a deputy or an observer"
    if problems:
        raise Invalid(problems)
    invitation = session.scalar(
        select(Invitation).where(Invitation.meeting_id == meeting.id, Invitation.person_id == person.id)
    )
    if invitation is not None and invitation.cancelled_at is None:
        raise Invalid({"person_id": f"{person.name} is already on the attendance list"})
    if invitation is None:
        invitation = Invitation(meeting_id=meeting.id, person_id=person.id)
        session.add(invitation)
    invitation.cancelled_at = None
    invitation.agency_id = agency.id
    invitation.role = role
    invitation.rsvp, invitation.rsvp_at, invitation.rsvp_source = Rsvp.accepted, now, "portal"
    invitation.attendance = Attendance.present
    invitation.attendance_note = "Came on the day"
    # They are here: no calendar invitation is to be sent for a meeting already under way.
    invitation.sequence_sent = meeting.sequence
    session.flush()
    _audit(
        session,
        now=now,
        action="meeting.attendee_added",
        actor_id=actor_id,
        record_type="invitation",
        record_id=invitation.id,
        meeting_id=meeting.id,
        person_id=person.id,
        agency_id=agency.id,
        role=role,
    )
    return invitation


def set_confidentiality_read(session: Session, meeting: Meeting, *, read: bool, now: datetime, actor_id: int) -> None:
    _check_editable(meeting)
    if meeting.confidentiality_read == read:
        return
    meeting.confidentiality_read = read
    _audit(
        session,
        now=now,
        action="meeting.confidentiality_read",
        actor_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        read=read,
    )


def directory_people(session: Session) -> list[tuple[Person, str]]:
    """Active people with an agency (for adding someone on the day): (person, agency name)."""
    rows = session.execute(
        select(Person, Agency.name)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .join(Agency, Agency.id == RoleGrant.agency_id)
        .where(Person.active.is_(True), RoleGrant.role == Role.agency_rep)
        .order_by(Agency.name, Person.name)
    ).all()
    return [(person, name) for person, name in rows]


# ---- the current item --------------------------------------------------------------------------------


def start_item(session: Session, meeting: Meeting, item_id: int, *, now: datetime, actor_id: int) -> AgendaItem:
    """Make the item the current one; the item under discussion until now ends."""
    _check_running(meeting)
    item = _item(meeting, item_id)
    for other in meeting.items:
        if other.id != item.id and other.started_at is not None and other.ended_at is None:
            other.ended_at = now
    if item.started_at is None:
        item.started_at = now
    item.ended_at = None  # returning to an item carries on its clock
    _audit(
        session, now=now, action="agenda_item.started", actor_id=actor_id, record_type="agenda_item", record_id=item.id
    )
    return item


def end_item(session: Session, meeting: Meeting, item_id: int, *, now: datetime, actor_id: int) -> AgendaItem:
    _check_running(meeting)
    item = _item(meeting, item_id)
    if item.started_at is None or item.ended_at is not None:
        raise Conflict(f"{item_reference(item)} is not the current item")
    item.ended_at = now
    _audit(
        session, now=now, action="agenda_item.ended", actor_id=actor_id, record_type="agenda_item", record_id=item.id
    )
    return item


def defer_item(session: Session, meeting: Meeting, item_id: int, *, now: datetime, actor_id: int) -> agenda.MovedItem:
    """Not reached, or not ready: the referral goes to the series' next planned meeting."""
    _check_running(meeting)
    item = _item(meeting, item_id)
    if item.referral_id is None:
        raise Conflict("Only a referral can be moved to the next meeting")
    if item.status != AgendaItemStatus.listed:
        raise Conflict(f"{item_reference(item)} has already been discussed")
    moved = agenda._carry(session, item, now=now)
    if item.started_at is not None and item.ended_at is None:
        item.ended_at = now
    _audit(
        session,
        now=now,
        action="agenda_item.deferred_in_meeting",
        actor_id=actor_id,
        record_type="agenda_item",
        record_id=item.id,
        to_meeting_id=moved.meeting.id,
    )
    return moved


# ---- autosaved texts ---------------------------------------------------------------------------------


def _save_own_text(row, field: str, version_field: str, *, text: str, base_version: int, base_text: str | None):
    """save_text, with the text the page last saw (`base_text`) checked as well as the version. Several texts
    can share one version (a decision's rationale and dissent): a save of one must not be refused because
    the other moved on, and must never overwrite a text someone else changed since the page saw it."""
    stored = getattr(row, field) or ""
    version = getattr(row, version_field) or 0
    if base_text is not None and text != stored:
        base_text = _text(base_text)
        if stored != base_text:
            raise EditConflict(field=field, theirs=stored, yours=text, version=version)
        base_version = version  # this text is as the page saw it: only another text in its group moved on
    return save_text(row, field, version_field, text=text, base_version=base_version)


def save_item_notes(
    session: Session, meeting: Meeting, item_id: int, *, text: str, base_version: int, now: datetime, actor_id: int
) -> Saved:
    _check_editable(meeting)
    item = _item(meeting, item_id)
    saved = save_text(item, "notes", "notes_version", text=_text(text), base_version=base_version)
    if saved.changed:
        _audit(
            session,
            now=now,
            action="agenda_item.notes_saved",
            actor_id=actor_id,
            record_type="agenda_item",
            record_id=item.id,
            version=saved.version,
        )
    return saved


VISIBILITY_LABELS = {
    Visibility.all_invitees: "Everyone invited",
    Visibility.chair_only: "The chair only",
    Visibility.named_agencies: "Only the agencies named",
}


def default_sharing(session: Session, agency: Agency) -> tuple[str, list[str]]:
    """Who may see what an agency said in the room, until someone chooses: health information only the
    agencies that may read the health sections, police information only those that may read the community
    safety sections (meetings.papers); everyone invited for the rest."""
    groups = {SharingGroup.health: HEALTH_GROUPS, SharingGroup.police: COMMUNITY_SAFETY_GROUPS}.get(
        agency.sharing_group
    )
    if groups is None:
        return Visibility.all_invitees.value, []
    codes = session.scalars(
        select(Agency.code).where(Agency.active.is_(True), Agency.sharing_group.in_(sorted(groups)))
    ).all()
    return Visibility.named_agencies.value, sorted({agency.code, *codes})


def _sharing(session: Session, visibility: str, codes: list[str] | None) -> tuple[str, list[str]]:
    if visibility not in {v.value for v in Visibility}:
        raise Invalid({"visibility": "Choose who may see what the agency said"})
    if visibility != Visibility.named_agencies:
        return visibility, []
    known = set(session.scalars(select(Agency.code).where(Agency.active.is_(True))))
    chosen = sorted({c.strip().upper() for c in codes or [] if c and c.strip()})
    if not chosen:
        raise Invalid({"visible_to_agencies": "Choose at least one agency that may see what the agency said"})
    if unknown := [c for c in chosen if c not in known]:
        raise Invalid({"visible_to_agencies": f"Unknown agency: {', '.join(unknown)}"})
    return visibility, chosen


def save_contribution(
    session: Session,
    meeting: Meeting,
    item_id: int,
    agency_id: int,
    *,
    text: str,
    base_version: int,
    base_text: str | None = None,
    visibility: str | None = None,
    visible_to_agencies: list[str] | None = None,
    now: datetime,
    actor_id: int,
) -> Saved:
    """The agency's contribution as heard in the meeting (version 0: there was none yet). Who may see it:
    `visibility` (and the agency codes for named agencies) when the page chose, else as it was; a new one
    starts from the agency's sharing group (default_sharing)."""
    _check_editable(meeting)
    item = _item(meeting, item_id)
    invited = {i.agency_id for i in live_invitations(session, meeting)}
    if agency_id not in invited:
        raise NotFound(f"agency {agency_id} is not invited to meeting {meeting.id}")
    agency = session.get(Agency, agency_id)
    sharing = _sharing(session, visibility, visible_to_agencies) if visibility else None
    row = session.scalar(
        select(Contribution)
        .where(Contribution.agenda_item_id == item.id, Contribution.agency_id == agency_id)
        .with_for_update()
    )
    text = _text(text)
    if row is None:
        if base_version != 0:
            raise EditConflict(field="body", theirs="", yours=text, version=0)
        if not text:
            return Saved("body", 0, changed=False)
        default, codes = sharing or default_sharing(session, agency)
        row = Contribution(
            agenda_item_id=item.id,
            agency_id=agency_id,
            author_id=actor_id,
            body="",
            created_at=now,
            version=0,
            visibility=default,
            visible_to_agencies=codes,
        )
        session.add(row)
        sharing = None  # set above
    before = row.version or 0
    saved = _save_own_text(row, "body", "version", text=text, base_version=base_version, base_text=base_text)
    sharing_changed = sharing is not None and (row.visibility, list(row.visible_to_agencies or [])) != sharing
    if sharing_changed:
        if not saved.changed and base_version != before and (base_text is None or row.body != _text(base_text)):
            raise EditConflict(field="body", theirs=row.body or "", yours=text, version=before)
        row.visibility, row.visible_to_agencies = sharing[0], list(sharing[1])
        if not saved.changed:
            row.version = before + 1
            saved = Saved("body", row.version, changed=True)
    if saved.changed:
        row.updated_at = now
        session.flush()
        _audit(
            session,
            now=now,
            action="contribution.saved_in_meeting",
            actor_id=actor_id,
            record_type="contribution",
            record_id=row.id,
            agenda_item_id=item.id,
            agency_id=agency_id,
            version=saved.version,
            visibility=row.visibility,
            visible_to_agencies=list(row.visible_to_agencies or []),
        )
    return saved


def save_summary(
    session: Session, meeting: Meeting, *, text: str, base_version: int, now: datetime, actor_id: int
) -> Saved:
    """The minutes' summary, written once the meeting has ended and while the minutes are in draft (ending
    the meeting creates the minutes; nothing is created before)."""
    _check_editable(meeting)
    minute = session.scalar(select(Minute).where(Minute.meeting_id == meeting.id).with_for_update())
    if minute is None or meeting.ended_at is None:
        raise Conflict("The summary is written once the meeting has ended")
    if minute.status != MinutesStatus.draft:
        raise Conflict("The minutes have been approved: they can no longer be changed here")
    saved = save_text(minute, "summary", "version", text=_text(text), base_version=base_version)
    if saved.changed:
        _audit(
            session,
            now=now,
            action="minute.summary_saved",
            actor_id=actor_id,
            record_type="minute",
            record_id=minute.id,
            meeting_id=meeting.id,
            version=saved.version,
        )
    return saved


DECISION_TEXTS = ("rationale", "dissent")


def save_decision_text(
    session: Session,
    meeting: Meeting,
    item_id: int,
    field_name: str,
    *,
    text: str,
    base_version: int,
    base_text: str | None = None,
    now: datetime,
    actor_id: int,
) -> Saved:
    """Autosave the rationale or the dissent of a decision already recorded. The two share the decision's
    version: `base_text`, the text of this field the page last saw, keeps each save to its own text."""
    _check_deciding(meeting)
    item = _item(meeting, item_id)
    if field_name not in DECISION_TEXTS:
        raise NotFound(f"decision field {field_name}")
    decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item.id).with_for_update())
    if decision is None:
        raise Conflict("Record the decision first")
    text = _text(text)
    if field_name == "rationale" and not text.strip():
        raise Invalid({"rationale": "Enter the reasons for the decision"})
    saved = _save_own_text(decision, field_name, "version", text=text, base_version=base_version, base_text=base_text)
    if saved.changed:
        _audit(
            session,
            now=now,
            action="decision.text_saved",
            actor_id=actor_id,
            record_type="decision",
            record_id=decision.id,
            field=field_name,
            version=saved.version,
        )
    return saved


# ---- decisions ---------------------------------------------------------------------------------------


def _parse_date(value: str | date | None) -> date | None:
    if isinstance(value, date) or value is None:
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


DECISION_FIELDS = ("option", "rationale", "dissent", "service_name", "review_on")


def _decision_fields(decision: Decision) -> dict[str, str]:
    """A decision's fields as the decision form shows them (what the page saw, sent back as base_*)."""
    return {
        "option": decision.option.code if decision.option is not None else "",
        "rationale": decision.rationale or "",
        "dissent": decision.dissent or "",
        "service_name": decision.service_name or "",
        "review_on": decision.review_on.isoformat() if decision.review_on else "",
    }


def save_decision(
    session: Session,
    meeting: Meeting,
    item_id: int,
    *,
    option_code: str,
    rationale: str,
    service_name: str = "",
    review_on: date | str | None = None,
    dissent: str = "",
    base_version: int = 0,
    base_texts: dict[str, str] | None = None,
    now: datetime,
    actor_id: int,
) -> Decision:
    """Record or change the item's decision. base_version: the decision's version the form was showing
    (0: there was none); when someone has saved a different decision since, EditConflict. base_texts: the
    rationale and dissent the page last saw (autosaved apart from the form): a text changed by someone else
    since is never overwritten, even when the form's version has moved on with the page's own saves."""
    _check_deciding(meeting)
    item = _item(meeting, item_id)
    if item.kind == AgendaItemKind.action_review:
        raise Conflict("An action review is settled by reviewing the action, not by a decision")
    option = session.scalar(
        select(OutcomeOption).where(OutcomeOption.code == (option_code or ""), OutcomeOption.active.is_(True))
    )
    rationale, dissent, service_name = _text(rationale).strip(), _text(dissent).strip(), _text(service_name, limit=400)
    service_name = service_name.strip()
    review_date = _parse_date(review_on) if review_on not in (None, "") else None
    problems = {}
    if option is None:
        problems["option"] = "Choose the outcome"
    if not rationale:
        problems["rationale"] = "Enter the reasons for the decision"
    if option is not None and option.needs_service and not service_name:
        problems["service_name"] = "Enter the name of the service"
    elif len(service_name) > 200:
        problems["service_name"] = "The service name must be 200 characters or fewer"
    if review_on not in (None, "") and review_date is None:
        problems["review_on"] = "Enter the review date as a real date"
    elif option is not None and option.needs_review_date and review_date is None:
        problems["review_on"] = "Enter the date of the review"
    elif review_date is not None and review_date <= meeting.meeting_date:
        problems["review_on"] = "The review date must be after the meeting"
    if problems:
        raise Invalid(problems)
    decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item.id).with_for_update())
    values = dict(
        outcome=option.effect,
        option_id=option.id,
        rationale=rationale,
        service_name=service_name or None,
        review_on=review_date if (option.needs_review_date or review_date) else None,
        dissent=dissent or None,
    )
    if decision is None:
        if base_version not in (0, None):
            raise EditConflict(field="decision", theirs="", yours=rationale, version=0)
        decision = Decision(agenda_item_id=item.id, decided_at=now, recorded_by_id=actor_id, version=1, **values)
        session.add(decision)
        session.flush()
        changed = True
    else:
        changed = any(getattr(decision, k) != v for k, v in values.items())
        if base_texts is not None:
            stored_now = _decision_fields(decision)
            yours_now = {
                "option": option.code,
                "rationale": rationale,
                "dissent": dissent,
                "service_name": service_name,
                "review_on": values["review_on"].isoformat() if values["review_on"] else "",
            }
            for name, stored in stored_now.items():
                seen = base_texts.get(name)
                if seen is not None and yours_now[name] != stored and stored != _text(seen).strip():
                    raise EditConflict(field=name, theirs=stored, yours=yours_now[name], version=decision.version)
            if all(name in base_texts for name in stored_now):
                base_version = decision.version  # every field is as the page saw it, or the page's own save
        if changed and decision.version != base_version:
            raise EditConflict(field="rationale", theirs=decision.rationale, yours=rationale, version=decision.version)
        if changed:
            for key, value in values.items():
                setattr(decision, key, value)
            decision.version += 1
            decision.decided_at, decision.recorded_by_id = now, actor_id
    if changed:
        _audit(
            session,
            now=now,
            action="decision.recorded",
            actor_id=actor_id,
            record_type="decision",
            record_id=decision.id,
            agenda_item_id=item.id,
            outcome=decision.outcome,
            option=option.code,
            version=decision.version,
        )
    return decision


# ---- actions -----------------------------------------------------------------------------------------

VAGUE = (
    "consider",
    "look into",
    "looking into",
    "monitor",
    "explore",
    "think about",
    "keep an eye",
    "liaise",
    "try to",
)
# Verbs a SMART action usually starts with or contains; not a complete list, only a prompt.
VERBS = frozenset(
    "arrange ask assess attend book call chase check complete confirm contact send share email meet offer "
    "provide refer review visit write update agree allocate apply carry deliver discuss make observe phone "
    "plan prepare request run schedule set start submit tell give hold invite notify record report".split()
)
MEASURES = re.compile(r"\b(by|before|within|weekly|daily|fortnightly|each|every|until|on)\b|\d", re.IGNORECASE)


def smart_warnings(description: str) -> list[str]:
    """Prompts for a vague action (shown, never refused): who does what, by when, and how we will know."""
    text = description.strip()
    words = re.findall(r"[A-Za-z']+", text.lower())
    warnings = []
    if len(words) < 5:
        warnings.append("This action is very short: say who will do what, and what will be different when it is done.")
    if not VERBS & set(words):
        warnings.append("Start with what will be done (for example: arrange, contact, refer, send, visit).")
    vague = next((v for v in VAGUE if v in text.lower()), None)
    if vague and not MEASURES.search(text):
        warnings.append(f"“{vague.capitalize()}” is hard to check: add what will be done, how often, or by when.")
    return warnings


@dataclass
class ActionResult:
    action: Action
    warnings: list[str]


def _school_of(session: Session, item: AgendaItem) -> School | None:
    if item.referral is not None:
        return item.referral.school
    if item.concern_id is not None:
        concern = session.get(PupilOfConcern, item.concern_id)
        return concern.school if concern else None
    return None


def _is_school_contact(session: Session, person_id: int, school_id: int) -> bool:
    return (
        session.scalar(
            select(RoleGrant.id).where(
                RoleGrant.person_id == person_id,
                RoleGrant.role == Role.school_referrer,
                RoleGrant.school_id == school_id,
            )
        )
        is not None
    )


def _is_in_agency(session: Session, person_id: int, agency_id: int) -> bool:
    return (
        session.scalar(
            select(RoleGrant.id).where(
                RoleGrant.person_id == person_id, RoleGrant.role == Role.agency_rep, RoleGrant.agency_id == agency_id
            )
        )
        is not None
    )


def _check_action(
    session: Session,
    meeting: Meeting,
    item: AgendaItem,
    *,
    description: str,
    owner: str,
    owner_person_id: int | None,
    due_on: date | str | None,
) -> tuple[dict, list[str]]:
    """Validate an action's fields; returns the values to set and the SMART warnings."""
    description = _text(description, limit=4000).strip()
    problems = {}
    if not description:
        problems["description"] = "Enter what will be done"
    elif len(description) > 2000:
        problems["description"] = "The action must be 2000 characters or fewer"
    school = _school_of(session, item)
    agency = None
    if owner == "school":
        if school is None:
            problems["owner"] = "This item has no school: choose an agency"
    elif owner.startswith("agency:") and owner[7:].isdigit():
        agency = session.get(Agency, int(owner[7:]))
        if agency is None or not agency.active:
            problems["owner"] = "Choose who owns the action"
    else:
        problems["owner"] = "Choose who owns the action"
    person = session.get(Person, owner_person_id) if owner_person_id else None
    if owner_person_id and (person is None or not person.active):
        problems["owner_person_id"] = "Choose a named person from the directory"
    elif agency is not None and person is None:
        problems["owner_person_id"] = f"Choose the named person at {agency.name}"
    elif person is not None and "owner" not in problems:
        in_agency = agency is not None and _is_in_agency(session, person.id, agency.id)
        school_contact = school is not None and _is_school_contact(session, person.id, school.id)
        if not (in_agency or school_contact):
            where = agency.name if agency is not None else "the school"
            problems["owner_person_id"] = f"{person.name} is not a contact at {where}: choose someone who is"
    due = _parse_date(due_on) if due_on not in (None, "") else None
    if due_on in (None, ""):
        problems["due_on"] = "Enter the date the action is due"
    elif due is None:
        problems["due_on"] = "Enter the due date as a real date"
    elif due <= meeting.meeting_date:
        problems["due_on"] = "The due date must be after the meeting"
    elif not is_working_day(due):
        problems["due_on"] = "The due date must be a working day (not a weekend or bank holiday)"
    if problems:
        raise Invalid(problems)
    school_owned = owner == "school"
    values = dict(
        description=description,
        owner_agency_id=agency.id if agency else None,
        owner_school_id=school.id if school_owned else None,
        owner_person_id=person.id if person else None,
        due_on=due,
    )
    return values, smart_warnings(description)


def add_action(
    session: Session,
    meeting: Meeting,
    item_id: int,
    *,
    description: str,
    owner: str,
    owner_person_id: int | None = None,
    due_on: date | str | None,
    involves_school: bool = False,
    now: datetime,
    actor_id: int,
) -> ActionResult:
    """owner: "agency:<id>" or "school". No email here: the owner is told once the meeting has ended."""
    _check_deciding(meeting)
    item = _item(meeting, item_id)
    values, warnings = _check_action(
        session, meeting, item, description=description, owner=owner, owner_person_id=owner_person_id, due_on=due_on
    )
    action = Action(
        agenda_item_id=item.id,
        referral_id=item.referral_id,
        concern_id=item.concern_id,
        meeting_id=meeting.id,
        involves_school=involves_school or values["owner_school_id"] is not None,
        status=ActionStatus.open,
        created_at=now,
        version=1,
        **values,
    )
    session.add(action)
    session.flush()
    _audit(
        session,
        now=now,
        action="action.agreed",
        actor_id=actor_id,
        record_type="action",
        record_id=action.id,
        meeting_id=meeting.id,
        agenda_item_id=item.id,
        owner_agency_id=action.owner_agency_id,
        owner_school_id=action.owner_school_id,
        owner_person_id=action.owner_person_id,
        due_on=action.due_on.isoformat(),
        warnings=len(warnings),
    )
    return ActionResult(action, warnings)


def _meeting_action(session: Session, meeting: Meeting, action_id: int) -> Action:
    action = session.get(Action, action_id, with_for_update=True)
    if action is None or action.meeting_id != meeting.id:
        raise NotFound(f"action {action_id} agreed at meeting {meeting.id}")
    return action


OWNER_FIELDS = frozenset({"owner_agency_id", "owner_school_id", "owner_person_id"})


def _assigned(action: Action) -> bool:
    return any(e.kind == ActionEventKind.assigned for e in action.events)


def edit_action(
    session: Session,
    meeting: Meeting,
    action_id: int,
    *,
    description: str,
    owner: str,
    owner_person_id: int | None = None,
    due_on: date | str | None,
    involves_school: bool = False,
    base_version: int,
    now: datetime,
    actor_id: int,
) -> ActionResult:
    _check_deciding(meeting)
    action = _meeting_action(session, meeting, action_id)
    if action.status != ActionStatus.open:
        raise Conflict("This action is no longer open: change it from the action tracker")
    item = _item(meeting, action.agenda_item_id)
    values, warnings = _check_action(
        session, meeting, item, description=description, owner=owner, owner_person_id=owner_person_id, due_on=due_on
    )
    values["involves_school"] = involves_school or values["owner_school_id"] is not None
    changed = {k: v for k, v in values.items() if getattr(action, k) != v}
    if not changed:
        return ActionResult(action, warnings)
    if changed.keys() & OWNER_FIELDS and _assigned(action):
        raise Conflict(
            "Its owner has already been sent this action: change who owns it from the action tracker, "
            "so that the new owner is told"
        )
    if action.version != base_version:
        raise EditConflict(
            field="description", theirs=action.description, yours=values["description"], version=action.version
        )
    for key, value in changed.items():
        setattr(action, key, value)
    action.version += 1
    action.updated_at = now
    _audit(
        session,
        now=now,
        action="action.changed_in_meeting",
        actor_id=actor_id,
        record_type="action",
        record_id=action.id,
        fields=sorted(changed),
        version=action.version,
    )
    return ActionResult(action, warnings)


def remove_action(session: Session, meeting: Meeting, action_id: int, *, now: datetime, actor_id: int) -> None:
    """Take back an action agreed by mistake, before its owner has been told of it."""
    _check_deciding(meeting)
    action = _meeting_action(session, meeting, action_id)
    if _assigned(action) or action.status != ActionStatus.open:
        raise Conflict("Its owner has already been sent this action: cancel it from the action tracker instead")
    _audit(
        session,
        now=now,
        action="action.removed_in_meeting",
        actor_id=actor_id,
        record_type="action",
        record_id=action.id,
        description=action.description,
        agenda_item_id=action.agenda_item_id,
    )
    session.delete(action)
    session.flush()


# ---- action reviews ----------------------------------------------------------------------------------

REVIEW_NOTE_PREFIX = "Reviewed at the meeting"


def _next_step(session: Session, action: Action, kind: ActionEventKind) -> int:
    last = session.scalar(
        select(func.max(ActionEvent.step)).where(ActionEvent.action_id == action.id, ActionEvent.kind == kind)
    )
    return 1 if last is None else last + 1


def review_action(
    session: Session,
    meeting: Meeting,
    item_id: int,
    *,
    outcome: str,
    new_due_on: date | str | None = None,
    not_done_reason: str = "",
    note: str = "",
    now: datetime,
    actor_id: int,
) -> Action:
    """An open action brought back for review: done, kept open with a new due date, or cancelled; when it
    was not done, why (circumstances changed, agency did not act, other)."""
    _check_deciding(meeting)
    item = _item(meeting, item_id)
    if item.kind != AgendaItemKind.action_review or item.action_id is None:
        raise NotFound(f"action review item {item_id}")
    action = session.get(Action, item.action_id, with_for_update=True, populate_existing=True)
    note = _text(note, limit=4000).strip()
    problems = {}
    if outcome not in REVIEW_OUTCOMES:
        problems["outcome"] = "Choose whether the action is done, kept open or cancelled"
    if outcome in ("keep_open", "cancel") and not_done_reason not in {r.value for r in NotDoneReason}:
        problems["not_done_reason"] = "Choose why the action was not done"
    if outcome in ("keep_open", "cancel") and not_done_reason == NotDoneReason.other and not note:
        problems["note"] = "Say why the action was not done"
    due = None
    if outcome == "keep_open":
        due = _parse_date(new_due_on) if new_due_on not in (None, "") else None
        if new_due_on in (None, ""):
            problems["new_due_on"] = "Enter the new due date"
        elif due is None:
            problems["new_due_on"] = "Enter the new due date as a real date"
        elif due <= meeting.meeting_date:
            problems["new_due_on"] = "The new due date must be after the meeting"
        elif not is_working_day(due):
            problems["new_due_on"] = "The new due date must be a working day (not a weekend or bank holiday)"
    if problems:
        raise Invalid(problems)
    if action.status != ActionStatus.open:
        raise Conflict("This action has already been closed")
    when = london_text(meeting.starts_at, "%-d %B %Y")
    if outcome == "done":
        kind, text = ActionEventKind.done, f"{REVIEW_NOTE_PREFIX} of {when}: done."
        action.status, action.completed_at = ActionStatus.done, now
    elif outcome == "cancel":
        kind, text = ActionEventKind.cancelled, f"{REVIEW_NOTE_PREFIX} of {when}: cancelled."
        action.status, action.not_done_reason = ActionStatus.cancelled, not_done_reason
    else:
        kind = ActionEventKind.update
        text = f"{REVIEW_NOTE_PREFIX} of {when}: kept open, now due {due.strftime('%-d %B %Y')}."
        action.due_on, action.not_done_reason = due, not_done_reason
    if note:
        text += f" {note}"
    # What the action's page shows as its latest news: the note, or what the meeting decided.
    action.latest_update = note or text
    action.events.append(
        ActionEvent(
            kind=kind, step=_next_step(session, action, kind), occurred_at=now, by_person_id=actor_id, note=text
        )
    )
    action.updated_at = now
    action.version += 1
    session.flush()
    _audit(
        session,
        now=now,
        action=f"action.reviewed_{outcome}",
        actor_id=actor_id,
        record_type="action",
        record_id=action.id,
        meeting_id=meeting.id,
        not_done_reason=action.not_done_reason,
        due_on=action.due_on.isoformat(),
    )
    return action


# ---- ending the meeting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralMove:
    referral_id: int
    reference: str
    from_status: str
    to_status: str


@dataclass
class EndResult:
    meeting: Meeting
    minute: Minute
    moves: list[ReferralMove]


def _move_referral(
    session: Session, referral: Referral, decision: Decision, has_open_actions: bool, *, now: datetime, actor_id: int
) -> ReferralMove | None:
    start = referral.status
    note = f"Discussed at the meeting of {london_text(now, '%-d %B %Y')}"
    if start == ReferralStatus.review:
        # Back on an agenda for review: listed again, then discussed (the status rules have no shortcut).
        _record_change(
            session, referral, ReferralStatus.accepted, now=now, person_id=actor_id, note="Listed for review"
        )
    if referral.status != ReferralStatus.accepted:
        return None  # withdrawn, or moved on by someone else meanwhile: left as it is
    _record_change(session, referral, ReferralStatus.discussed, now=now, person_id=actor_id, note=note)
    effect = decision.outcome
    if effect in (Outcome.closed, Outcome.signposted):
        _record_change(session, referral, ReferralStatus.closed, now=now, person_id=actor_id, note=decision.rationale)
    elif effect in (Outcome.review_on_date, Outcome.deferred_for_information):
        _record_change(session, referral, ReferralStatus.review, now=now, person_id=actor_id, note=decision.rationale)
    elif has_open_actions:
        _record_change(session, referral, ReferralStatus.actions_open, now=now, person_id=actor_id)
    return ReferralMove(referral.id, referral.reference or "", start, referral.status)


def end_meeting(session: Session, meeting: Meeting, *, now: datetime, actor_id: int) -> EndResult:
    """Close the meeting: every listed item needs a decision (or, for an action review, its review) unless it
    was moved to the next meeting; the minutes start in draft and each referral moves on by its decision."""
    _check_running(meeting)
    state = room_state(session, meeting, now=now)
    if state.unsettled:
        names = ", ".join(row.reference for row in state.unsettled)
        raise Conflict(
            f"Record a decision for {names} before ending the meeting, or move "
            f"{'it' if len(state.unsettled) == 1 else 'them'} to the next meeting"
        )
    for item in meeting.items:
        if item.started_at is not None and item.ended_at is None:
            item.ended_at = now
    meeting.ended_at = now
    moves = []
    for row in state.items:
        item = row.item
        if item.status != AgendaItemStatus.listed:
            continue
        item.status = AgendaItemStatus.discussed
        if row.concern is not None and row.concern.status in (ConcernStatus.open, ConcernStatus.listed):
            row.concern.status = ConcernStatus.discussed
        if item.referral is not None and row.decision is not None:
            open_actions = any(
                a.status == ActionStatus.open
                for a in session.scalars(select(Action).where(Action.referral_id == item.referral_id))
            )
            move = _move_referral(session, item.referral, row.decision, open_actions, now=now, actor_id=actor_id)
            if move is not None:
                moves.append(move)
    agenda.set_status(session, meeting, MeetingStatus.held, now=now, by=actor_id)
    agenda.set_status(session, meeting, MeetingStatus.minutes_draft, now=now, by=actor_id)
    minute = session.scalar(select(Minute).where(Minute.meeting_id == meeting.id))
    if minute is None:
        minute = Minute(meeting_id=meeting.id, status=MinutesStatus.draft, summary="", version=1)
        session.add(minute)
    session.flush()
    _audit(
        session,
        now=now,
        action="meeting.ended",
        actor_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        minute_id=minute.id,
        moves={m.reference: [m.from_status, m.to_status] for m in moves},
        confidentiality_read=meeting.confidentiality_read,
    )
    return EndResult(meeting, minute, moves)
