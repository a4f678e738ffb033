"""Actions agreed at meetings, followed to done: updates, the chasing ledger, tracker queries.

Must not import meetings.agenda (agenda imports this module to bring open actions back for review).

The chasing ledger is the action's ActionEvent rows of kind assigned / reminder / chase / escalation,
unique per (action, kind, step): a step recorded once is never taken again. Steps come in order:
the owner is told of the action (assigned), reminded some working days before it is due, chased on
the due date and then every few working days while it stays open, and after a number of chases the
chair and the owning agency's lead are told (escalation, once). Chasing carries on after that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from agencies.models import Agency, Role, School
from caseconf import audit
from caseconf.clock import london, london_today
from caseconf.errors import Conflict, Invalid
from meetings.access import Principal, action_place
from meetings.models import (
    Action,
    ActionEvent,
    ActionEventKind,
    ActionStatus,
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Meeting,
    MeetingSeries,
    MeetingStatus,
    NotDoneReason,
    PupilOfConcern,
    Referral,
    ReferralStatus,
    ReferralStatusChange,
)
from meetings.referrals import _record_change  # the one way a referral's status changes
from meetings.working_days import add_working_days, is_working_day

UPDATE_KINDS = ("done", "update", "cannot_do", "cancelled")
MAX_NOTE = 4000
REVIEW_MINUTES = 5  # an open action's slot at the next meeting

# The ledger's kinds, in the order they are first taken.
LEDGER_KINDS = (ActionEventKind.assigned, ActionEventKind.reminder, ActionEventKind.chase, ActionEventKind.escalation)

REASON_LABELS = {
    NotDoneReason.circumstances_changed: "Circumstances changed",
    NotDoneReason.agency_did_not_act: "Agency did not act",
    NotDoneReason.other: "Other",
}
STATUS_LABELS = {ActionStatus.open: "Open", ActionStatus.done: "Done", ActionStatus.cancelled: "Cancelled"}


# ---- where an action was agreed -------------------------------------------------------------------


def meeting_of(session: Session, action: Action) -> Meeting | None:
    """The meeting the action was agreed at: its own meeting_id, or its agenda item's meeting."""
    if action.meeting_id is not None:
        return session.get(Meeting, action.meeting_id)
    if action.agenda_item_id is not None:
        item = session.get(AgendaItem, action.agenda_item_id)
        return item.meeting if item is not None else None
    return None


def _meeting_id_column():
    """SQL: the id of the meeting an action was agreed at (needs an outer join to AgendaItem as origin_item)."""
    return func.coalesce(Action.meeting_id, _ORIGIN.meeting_id)


_ORIGIN = aliased(AgendaItem, name="origin_item")


# ---- updates ------------------------------------------------------------------------------------


@dataclass
class UpdateResult:
    action: Action
    event: ActionEvent
    referral_change: ReferralStatusChange | None = None  # the referral went to review: its last action closed


def _next_update_step(action: Action, kind: str) -> int:
    return max((e.step for e in action.events if e.kind == kind), default=0) + 1


def update_action(
    session: Session,
    action: Action,
    *,
    kind: str,
    note: str,
    by_person_id: int | None,
    now: datetime,
    reason: str | None = None,
    new_due_on: date | None = None,
) -> UpdateResult:
    """Record an owner's (or the clinic's) update: done, a progress note, cannot do (with a reason; the action
    stays open), or cancelled. A new due date may come with any but done. Raises Invalid with a message per
    field, or Conflict when the action is no longer open."""
    note = (note or "").replace("\x00", "").strip()
    problems: dict[str, str] = {}
    if kind not in UPDATE_KINDS:
        problems["kind"] = "Choose what has happened to the action"
    if kind == "update" and not note:
        problems["note"] = "Enter the progress made"
    if kind in ("cannot_do", "cancelled") and not note:
        problems["note"] = "Enter why the action cannot be done" if kind == "cannot_do" else "Enter why it is cancelled"
    if len(note) > MAX_NOTE:
        problems["note"] = f"Enter no more than {MAX_NOTE} characters"
    if kind == "cannot_do":
        if reason is None:
            reason = NotDoneReason.other
        if reason not in {r.value for r in NotDoneReason}:
            problems["reason"] = "Choose why the action cannot be done"
    if new_due_on is not None and kind == "done":
        problems["new_due_on"] = "A done action needs no new due date"
    elif new_due_on is not None and new_due_on < london_today(now):
        problems["new_due_on"] = "The new due date must be today or in the future"
    if problems:
        raise Invalid(problems)
    if action.status != ActionStatus.open:
        raise Conflict(f"This action is already {action.status}")

    step = _next_update_step(action, kind)
    event = ActionEvent(
        action_id=action.id, kind=kind, step=step, occurred_at=now, by_person_id=by_person_id, note=note or None
    )
    action.events.append(event)
    old_due = action.due_on
    if new_due_on is not None:
        action.due_on = new_due_on
    if kind == "done":
        action.status = ActionStatus.done
        action.completed_at = now
        action.not_done_reason = None
    elif kind == "cancelled":
        action.status = ActionStatus.cancelled
        action.completed_at = now
    elif kind == "cannot_do":
        action.not_done_reason = reason
    action.latest_update = note or ("Done" if kind == "done" else action.latest_update)
    action.updated_at = now
    action.version = (action.version or 1) + 1
    session.flush()
    audit.record(
        session,
        now=now,
        action=f"action.{kind}",
        actor_person_id=by_person_id,
        record_type="action",
        record_id=action.id,
        step=step,
        reason=reason if kind == "cannot_do" else None,
        due_on=action.due_on.isoformat(),
        old_due_on=old_due.isoformat() if new_due_on is not None else None,
    )
    result = UpdateResult(action=action, event=event)
    if action.status != ActionStatus.open:
        result.referral_change = _review_when_last_closed(session, action, now=now, by_person_id=by_person_id)
    return result


def _review_when_last_closed(
    session: Session, action: Action, *, now: datetime, by_person_id: int | None
) -> ReferralStatusChange | None:
    """When the referral's last open action closes, the referral goes to review (back to the next clinic)."""
    referral = action.referral
    if referral is None or referral.status != ReferralStatus.actions_open:
        return None
    still_open = session.scalar(
        select(func.count())
        .select_from(Action)
        .where(Action.referral_id == referral.id, Action.status == ActionStatus.open, Action.id != action.id)
    )
    if still_open:
        return None
    session.refresh(referral, with_for_update=True)
    if referral.status != ReferralStatus.actions_open:
        return None
    return _record_change(
        session,
        referral,
        ReferralStatus.review,
        now=now,
        person_id=by_person_id,
        note="All actions from the clinic are done or cancelled: due for review.",
    )


def set_not_done_reason(
    session: Session, action: Action, *, reason: str, by_person_id: int | None, now: datetime
) -> None:
    """At a review, the clinic records why an action was not done (circumstances changed, agency did not act...)."""
    if reason not in {r.value for r in NotDoneReason}:
        raise Invalid({"reason": "Choose why the action was not done"})
    action.not_done_reason = reason
    action.updated_at = now
    audit.record(
        session,
        now=now,
        action="action.reason_recorded",
        actor_person_id=by_person_id,
        record_type="action",
        record_id=action.id,
        reason=reason,
    )


# ---- the chasing schedule (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    kind: ActionEventKind
    step: int

    @property
    def name(self) -> str:
        if self.kind == ActionEventKind.chase:
            return f"chase {self.step}"
        return self.kind.value


def working_days_before(day: date, days: int) -> date:
    """The working day `days` working days before `day`."""
    while days > 0:
        day -= timedelta(days=1)
        days -= is_working_day(day)
    return day


def next_step(
    action: Action, series: MeetingSeries | None, today: date, *, since: datetime | None = None
) -> Step | None:
    """Which ledger step is due today for an open action, or None. One step at a time, in order:
    assigned first (any day); then, on working days only, the reminder (from `reminder` working days
    before the due date, until the day before it), chase 1 on (or from) the due date, and each next
    chase `chase_every` working days after the last chase or escalation; after `escalate_after`
    chases, the escalation comes in the next chase's place, once.

    `since`: when the due date last changed (due_date_changed_at). Reminders, chases and escalations taken
    before then were for the old date: the new date gets its own reminder, chase 1 and escalation. Step
    numbers carry on from the old ones, so each ledger step is still recorded once."""
    if action.status != ActionStatus.open:
        return None
    reminder_days = series.action_reminder_working_days if series is not None else 2
    every = series.chase_every_working_days if series is not None else 3
    escalate_after = series.escalate_after_chases if series is not None else 2
    taken: dict[str, list[ActionEvent]] = {}
    earlier: dict[str, list[ActionEvent]] = {}
    for event in action.events:
        current = since is None or event.kind == ActionEventKind.assigned or event.occurred_at >= since
        (taken if current else earlier).setdefault(event.kind, []).append(event)
    if ActionEventKind.assigned not in taken:
        return Step(ActionEventKind.assigned, 0)
    if not is_working_day(today):
        return None

    def next_number(kind: ActionEventKind, first: int) -> int:
        steps = [e.step for e in taken.get(kind, []) + earlier.get(kind, [])]
        return max(steps) + 1 if steps else first

    due = action.due_on
    chases = taken.get(ActionEventKind.chase, [])
    if today < due:
        if ActionEventKind.reminder not in taken and not chases and today >= working_days_before(due, reminder_days):
            return Step(ActionEventKind.reminder, next_number(ActionEventKind.reminder, 0))
        return None
    if not chases:
        return Step(ActionEventKind.chase, next_number(ActionEventKind.chase, 1))
    escalations = taken.get(ActionEventKind.escalation, [])
    last = max(e.occurred_at for e in chases + escalations)
    if today < add_working_days(london_today(last), every):
        return None
    if len(chases) >= escalate_after and not escalations:
        return Step(ActionEventKind.escalation, next_number(ActionEventKind.escalation, 0))
    return Step(ActionEventKind.chase, next_number(ActionEventKind.chase, 1))


KEPT_OPEN_AT_REVIEW = "action.reviewed_keep_open"  # the meeting room's review: kept open with a new due date


def due_date_changed_at(session: Session, action: Action) -> datetime | None:
    """When the action's due date last changed after it was agreed (an update with a new due date, or kept
    open at a review with one), from its audit trail; None when it never has."""
    changes = session.scalars(
        select(audit.AuditEvent)
        .where(
            audit.AuditEvent.record_type == "action",
            audit.AuditEvent.record_id == str(action.id),
            audit.AuditEvent.action.in_([*(f"action.{kind}" for kind in UPDATE_KINDS), KEPT_OPEN_AT_REVIEW]),
        )
        .order_by(audit.AuditEvent.occurred_at.desc(), audit.AuditEvent.id.desc())
    )
    for change in changes:
        if change.action == KEPT_OPEN_AT_REVIEW:
            return change.occurred_at  # a meeting kept it open with a new due date
        detail = change.detail or {}
        if detail.get("old_due_on") and detail.get("old_due_on") != detail.get("due_on"):
            return change.occurred_at
    return None


def take_step(action: Action, step: Step, *, now: datetime, note: str | None = None) -> ActionEvent:
    """Record a ledger step on the action (the caller has checked it is the one due)."""
    event = ActionEvent(action_id=action.id, kind=step.kind, step=step.step, occurred_at=now, note=note)
    action.events.append(event)
    if step.kind == ActionEventKind.escalation:
        action.escalated_at = now
    return event


def is_overdue(action: Action, today: date) -> bool:
    return action.status == ActionStatus.open and action.due_on < today


def chase_count(action: Action, *, since: datetime | None = None) -> int:
    """The chases taken (since the due date last changed, with `since`)."""
    return sum(
        1 for e in action.events if e.kind == ActionEventKind.chase and (since is None or e.occurred_at >= since)
    )


# ---- open actions back on the agenda -------------------------------------------------------------------


def add_action_reviews(session: Session, meeting: Meeting, *, now: datetime) -> list[AgendaItem]:
    """At the agenda freeze: list for review each action still open that was agreed at an earlier meeting of
    the same series and is not already listed on a meeting still to come (this one included). Done and
    cancelled actions are not listed: the tracker shows them. Returns the items added."""
    review_item, later = aliased(AgendaItem), aliased(Meeting)
    already_listed = exists(
        select(review_item.id)
        .join(later, later.id == review_item.meeting_id)
        .where(
            review_item.action_id == Action.id,
            review_item.kind == AgendaItemKind.action_review,
            review_item.status == AgendaItemStatus.listed,
            or_(later.id == meeting.id, and_(later.starts_at > now, later.status != MeetingStatus.cancelled)),
        )
    )
    origin = aliased(Meeting)
    found = session.scalars(
        select(Action)
        .outerjoin(_ORIGIN, _ORIGIN.id == Action.agenda_item_id)
        .join(origin, origin.id == _meeting_id_column())
        .where(
            Action.status == ActionStatus.open,
            origin.series_id == meeting.series_id,
            origin.starts_at < meeting.starts_at,
            origin.id != meeting.id,
            ~already_listed,
        )
        .order_by(Action.due_on, Action.id)
    ).all()
    added = []
    for action in found:
        item = AgendaItem(
            meeting_id=meeting.id,
            kind=AgendaItemKind.action_review,
            action_id=action.id,
            slot_minutes=REVIEW_MINUTES,
            status=AgendaItemStatus.listed,
            added_at=now,
            position=len(meeting.items) + 1,
        )
        session.add(item)
        meeting.items.append(item)
        added.append(item)
    if added:
        session.flush()
        audit.record(
            session,
            now=now,
            action="agenda.action_reviews_added",
            record_type="meeting",
            record_id=meeting.id,
            action_ids=[i.action_id for i in added],
        )
    return added


# ---- the tracker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackerFilters:
    agency_id: int | None = None
    school_id: int | None = None
    status: str | None = None  # open / done / cancelled / overdue; None: all
    mine: bool = False


TRACKER_STATUSES = ("open", "overdue", "done", "cancelled")


_ORIGIN_MEETING = aliased(Meeting, name="origin_meeting")
_ORIGIN_SERIES = aliased(MeetingSeries, name="origin_series")
_CONCERN = aliased(PupilOfConcern, name="action_concern")


def _school_id_column():
    """SQL: the action's school (as meetings.access.action_place): its referral's, its pupil of concern's, its
    meeting series' or its owning school (needs the joins of _with_place)."""
    return func.coalesce(Referral.school_id, _CONCERN.school_id, _ORIGIN_SERIES.school_id, Action.owner_school_id)


def _with_place(statement):
    """Outer joins for an action's referral, pupil of concern, meeting (its own or its item's), series and school."""
    return (
        statement.select_from(Action)
        .outerjoin(Referral, Referral.id == Action.referral_id)
        .outerjoin(_CONCERN, _CONCERN.id == Action.concern_id)
        .outerjoin(_ORIGIN, _ORIGIN.id == Action.agenda_item_id)
        .outerjoin(_ORIGIN_MEETING, _ORIGIN_MEETING.id == _meeting_id_column())
        .outerjoin(_ORIGIN_SERIES, _ORIGIN_SERIES.id == _ORIGIN_MEETING.series_id)
        .outerjoin(School, School.id == _school_id_column())
    )


def _scope(principal: Principal):
    """SQL: the actions this principal may see on the tracker (as meetings.access.can_on_action)."""
    roles = principal.roles
    if Role.coordinator in roles:  # an admin runs the system, not the cases: no actions of their own
        return None
    conditions = [Action.owner_person_id == principal.person_id, _ORIGIN_MEETING.chair_id == principal.person_id]
    agency_ids = {g.agency_id for g in principal.scopes(Role.agency_rep) if g.agency_id is not None}
    if agency_ids:
        conditions.append(Action.owner_agency_id.in_(agency_ids))
    if Role.eip in roles:
        area = func.coalesce(School.area_id, _ORIGIN_SERIES.area_id)
        conditions.append(area.is_(None) | area.in_(principal.area_ids))
    if principal.school_ids:
        conditions.append(Action.involves_school.is_(True) & _school_id_column().in_(principal.school_ids))
    return or_(*conditions)


def tracker_query(principal: Principal, filters: TrackerFilters, *, today: date):
    statement = _with_place(select(Action))
    scope = _scope(principal)
    if scope is not None:
        statement = statement.where(scope)
    if filters.agency_id is not None:
        statement = statement.where(Action.owner_agency_id == filters.agency_id)
    if filters.school_id is not None:
        statement = statement.where(_school_id_column() == filters.school_id)
    if filters.mine:
        statement = statement.where(Action.owner_person_id == principal.person_id)
    if filters.status == "overdue":
        statement = statement.where(Action.status == ActionStatus.open, Action.due_on < today)
    elif filters.status in ("open", "done", "cancelled"):
        statement = statement.where(Action.status == filters.status)
    order_open_first = case((Action.status == ActionStatus.open, 0), else_=1)
    return statement.order_by(order_open_first, Action.due_on, Action.id)


def tracker(session: Session, principal: Principal, filters: TrackerFilters, *, today: date) -> list[Action]:
    return list(session.scalars(tracker_query(principal, filters, today=today)).unique())


def tracker_counts(session: Session, principal: Principal, filters: TrackerFilters, *, today: date) -> dict[str, int]:
    """How many of the principal's visible actions (within the agency/school filters) are in each status tab."""
    counts = {}
    for status in TRACKER_STATUSES:
        query = tracker_query(principal, TrackerFilters(filters.agency_id, filters.school_id, status), today=today)
        counts[status] = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return counts


def filter_choices(session: Session, principal: Principal, *, today: date) -> tuple[list[Agency], list[School]]:
    """The agencies and schools that own or are involved in actions the principal can see."""
    visible = tracker_query(principal, TrackerFilters(), today=today).order_by(None).subquery()
    agencies = session.scalars(
        select(Agency).where(Agency.id.in_(select(visible.c.owner_agency_id))).order_by(Agency.name)
    ).all()
    school_ids = _with_place(select(_school_id_column())).where(Action.id.in_(select(visible.c.id)))
    schools = session.scalars(select(School).where(School.id.in_(school_ids)).order_by(School.name)).all()
    return list(agencies), list(schools)


@dataclass(frozen=True)
class AgencyLine:
    agency: Agency
    open: int
    overdue: int
    escalated: int


def agency_summary(session: Session, principal: Principal, filters: TrackerFilters, *, today: date) -> list[AgencyLine]:
    """Open, overdue and escalated actions per owning agency (within the school filter), most overdue first:
    an agency that keeps missing its actions shows at the top."""
    visible = tracker_query(principal, TrackerFilters(school_id=filters.school_id, status="open"), today=today)
    counts: dict[int, list[int]] = {}
    for action in session.scalars(visible).unique():
        if action.owner_agency_id is None:
            continue
        line = counts.setdefault(action.owner_agency_id, [0, 0, 0])
        line[0] += 1
        line[1] += action.due_on < today
        line[2] += action.escalated_at is not None
    agencies = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_(counts)))}
    lines = [AgencyLine(agencies[i], *c) for i, c in counts.items()]
    return sorted(lines, key=lambda line: (-line.overdue, -line.open, line.agency.name))


CSV_HEADER = (
    "Action",
    "Reference",
    "School",
    "Agency",
    "Owner",
    "Description",
    "Due",
    "Status",
    "Overdue",
    "Chases",
    "Escalated",
    "Latest update",
    "Updated",
    "Reason not done",
)


def _plain(value: str) -> str:
    """No spreadsheet formulas from typed text: a leading = + - @ is made inert."""
    value = " ".join((value or "").split())
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_rows(session: Session, actions: list[Action], *, today: date) -> list[tuple[str, ...]]:
    """One row per action for the CSV export: the reference, never the child's name."""
    rows = [CSV_HEADER]
    schools = {s.id: s.name for s in session.scalars(select(School))}
    for action in actions:
        referral = action.referral
        school_id = action_place(action).school_id
        rows.append(
            (
                f"ACT-{action.id}",
                _plain(referral.reference or "" if referral is not None else ""),
                _plain(schools.get(school_id, "")),
                _plain(action.owner_agency.name if action.owner_agency else ""),
                _plain(action.owner_person.name if action.owner_person else ""),
                _plain(action.description),
                action.due_on.isoformat(),
                STATUS_LABELS[ActionStatus(action.status)],
                "yes" if is_overdue(action, today) else "no",
                str(chase_count(action)),
                "yes" if action.escalated_at else "no",
                _plain(action.latest_update or ""),
                london(action.updated_at).date().isoformat() if action.updated_at else "",
                REASON_LABELS[NotDoneReason(action.not_done_reason)] if action.not_done_reason else "",
            )
        )
    return rows
