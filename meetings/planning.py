"""Planning a series' meetings: dates in term, chairs in rotation, and when each sweep falls due."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agencies.models import Agency, Area, Person, Role, RoleGrant, School
from caseconf import audit
from caseconf.errors import Conflict, Invalid, NotFound
from meetings.models import (
    AgendaItem,
    AgendaItemStatus,
    Meeting,
    MeetingKind,
    MeetingSeries,
    MeetingStatus,
    MeetingStatusChange,
    Rsvp,
    Term,
)
from meetings.schedule import calendar_uid, chair_for, meeting_deadlines, meeting_window, thursdays_in_term
from meetings.working_days import is_working_day


def ask_again(meeting: Meeting) -> None:
    """A meeting at a new time: the calendar update asks everyone to reply again (as calendars do), so
    earlier replies no longer count towards the quorum, which is checked again before the new time."""
    for invitation in meeting.invitations:
        invitation.rsvp, invitation.rsvp_at, invitation.rsvp_source = Rsvp.needs_action, None, None
    meeting.quorum_checked_at = None


def new_meeting(
    session: Session, series: MeetingSeries, day: date, *, chair_index: int, calendar_domain: str
) -> Meeting:
    """A planned meeting of the series on `day` at its usual time and place, chaired by the rotation's
    `chair_index`-th turn, minuted by the series' coordinator; added and flushed (it has an id)."""
    meeting = Meeting(
        series_id=series.id,
        meeting_date=day,
        start_time=series.start_time,
        location=series.location,
        chair_id=chair_for(series.chair_rotation, chair_index, series.chair_rotation_every),
        minute_taker_id=series.coordinator_id,
        status=MeetingStatus.planned,
        calendar_uid=calendar_uid(series.id, day, calendar_domain),
        sequence=0,
    )
    apply_times(meeting, series)
    session.add(meeting)
    session.flush()
    return meeting


def apply_times(meeting: Meeting, series: MeetingSeries) -> None:
    """Set the meeting's UTC window and sweep deadlines from its date, local start time and the series."""
    meeting.starts_at, meeting.ends_at = meeting_window(
        meeting.meeting_date, meeting.start_time, series.duration_minutes
    )
    deadlines = meeting_deadlines(
        meeting.meeting_date,
        cutoff_weekday=series.cutoff_weekday,
        cutoff_time=series.cutoff_time,
        papers_weekday=series.papers_weekday,
        papers_time=series.papers_time,
        quorum_check_time=series.quorum_check_time,
    )
    meeting.cutoff_at = deadlines.cutoff_at
    meeting.papers_due_at = deadlines.papers_due_at
    meeting.quorum_check_at = deadlines.quorum_check_at


# --- dates in term --------------------------------------------------------------------------------


def meeting_dates(series: MeetingSeries, terms: Term | Iterable[Term]) -> list[date]:
    """The series' meeting days in the given terms: its weekday from each term's start to end, leaving out
    weekends and England and Wales bank holidays and, for a term-time-only series, half-term and closed days.
    A Team Around the School meets half-termly instead (half_termly_dates)."""
    days: set[date] = set()
    for term in [terms] if isinstance(terms, Term) else terms:
        closed = {date.fromisoformat(d) for d in term.closed_days or ()}
        if series.kind == MeetingKind.team_around_school:
            days.update(half_termly_dates(term, series.weekday, closed))
            continue
        if series.term_time_only:
            half_start, half_end = term.half_term_starts_on, term.half_term_ends_on
        else:
            half_start = half_end = None
            closed = set()
        days.update(
            day
            for day in thursdays_in_term(term.starts_on, term.ends_on, half_start, half_end, series.weekday)
            if is_working_day(day) and day not in closed
        )
    return sorted(days)


def half_terms(term: Term) -> list[tuple[date, date]]:
    """The term's halves, first and last day of each: before and after its half-term holiday (one half
    when the term has none)."""
    if term.half_term_starts_on is None or term.half_term_ends_on is None:
        return [(term.starts_on, term.ends_on)]
    return [
        (term.starts_on, term.half_term_starts_on - timedelta(days=1)),
        (term.half_term_ends_on + timedelta(days=1), term.ends_on),
    ]


def half_termly_dates(term: Term, weekday: int, closed: set[date] = frozenset()) -> list[date]:
    """One meeting a half-term: the series' weekday in the first full week (Monday to Friday) of each half,
    or the next such weekday in that half when that one is a bank holiday or a closed day. A half too short
    to hold a full week meets on its first open weekday of the series' kind, if any."""
    days = []
    for start, end in half_terms(term):
        monday = start + timedelta(days=(7 - start.weekday()) % 7)
        first_full_week = monday if monday + timedelta(days=4) <= end else start - timedelta(days=start.weekday())
        day = first_full_week + timedelta(days=weekday)
        while day < start:
            day += timedelta(days=7)
        while day <= end and (not is_working_day(day) or day in closed):
            day += timedelta(days=7)
        if day <= end:
            days.append(day)
    return days


def original_date(meeting: Meeting) -> date:
    """The date a meeting was planned for, kept in its calendar UID when it moves."""
    stamp = meeting.calendar_uid.removeprefix(f"meeting-{meeting.series_id}-")[:8]
    try:
        return datetime.strptime(stamp, "%Y%m%d").date()  # noqa: DTZ007 (a calendar date, no time)
    except ValueError:
        return meeting.meeting_date


@dataclass
class PlanReport:
    term: str
    created: list[Meeting] = field(default_factory=list)
    already_planned: int = 0
    in_the_past: int = 0


def series_meetings(session: Session, series_id: int) -> list[Meeting]:
    return list(
        session.scalars(
            select(Meeting).where(Meeting.series_id == series_id).order_by(Meeting.meeting_date, Meeting.id)
        )
    )


def plan_term(
    session: Session,
    *,
    series: MeetingSeries,
    term: Term,
    now: datetime,
    actor_id: int | None,
    calendar_domain: str,
) -> PlanReport:
    """Make the series' missing meetings in `term`. Running it again makes none: a meeting is present for
    the date it was planned on (its calendar UID), wherever it has moved since. Days already past are left."""
    existing = series_meetings(session, series.id)
    planned_for = {original_date(m) for m in existing}
    taken = {m.meeting_date for m in existing}
    report = PlanReport(term=term.name)
    wanted = []
    for day in meeting_dates(series, term):
        if day in planned_for or day in taken:
            report.already_planned += 1
        elif meeting_window(day, series.start_time, series.duration_minutes)[0] <= now:
            report.in_the_past += 1
        else:
            wanted.append(day)
    # The rotation counts every meeting of the series in date order, so it carries on across terms.
    every_date = sorted(planned_for | set(wanted))
    for day in wanted:
        meeting = new_meeting(session, series, day, chair_index=every_date.index(day), calendar_domain=calendar_domain)
        _status_change(session, meeting, None, MeetingStatus.planned, now=now, actor_id=actor_id, note=term.name)
        audit.record(
            session,
            now=now,
            action="meeting.planned",
            actor_person_id=actor_id,
            record_type="meeting",
            record_id=meeting.id,
            series_id=series.id,
            term=term.name,
            meeting_date=day.isoformat(),
            chair_id=meeting.chair_id,
        )
        report.created.append(meeting)
    return report


def _status_change(
    session: Session,
    meeting: Meeting,
    from_status: str | None,
    to_status: MeetingStatus,
    *,
    now: datetime,
    actor_id: int | None,
    note: str | None = None,
) -> None:
    session.add(
        MeetingStatusChange(
            meeting_id=meeting.id,
            from_status=from_status,
            to_status=to_status,
            changed_at=now,
            changed_by_id=actor_id,
            note=note,
        )
    )
    meeting.status = to_status


# --- changing one meeting -------------------------------------------------------------------------

NOT_STARTED = (MeetingStatus.planned, MeetingStatus.agenda_frozen, MeetingStatus.papers_sent)


def _must_be_upcoming(meeting: Meeting, now: datetime, doing: str) -> None:
    if meeting.status not in NOT_STARTED or meeting.starts_at <= now:
        raise Conflict(f"Only a meeting that has not yet started and is not cancelled can be {doing}")


def move_meeting(
    session: Session,
    *,
    meeting: Meeting,
    new_date: date,
    new_start_time: time | None = None,
    new_location: str | None = None,
    now: datetime,
    actor_id: int | None,
    reason: str,
) -> Meeting:
    """Move a meeting that has not started. Its calendar UID stays, its SEQUENCE goes up by one (the
    invitations sweep sends the update), and its cut-off, papers and quorum-check times follow it."""
    _must_be_upcoming(meeting, now, "moved")
    series = meeting.series
    start_time = new_start_time or meeting.start_time
    location = meeting.location if new_location is None else new_location.strip()
    reason = (reason or "").strip()
    problems: dict[str, str] = {}
    if meeting_window(new_date, start_time, series.duration_minutes)[0] <= now:
        problems["new_date"] = "The new date and time must be in the future"
    elif not is_working_day(new_date):
        problems["new_date"] = f"{new_date:%A %-d %B %Y} is a weekend or bank holiday: choose a working day"
    elif new_date != meeting.meeting_date and session.scalar(
        select(Meeting.id).where(Meeting.series_id == meeting.series_id, Meeting.meeting_date == new_date)
    ):
        problems["new_date"] = f"The series already has a meeting on {new_date:%A %-d %B %Y}"
    if len(location) > 200:
        problems["new_location"] = "The location must be 200 characters or fewer"
    if not reason:
        problems["reason"] = "Enter why the meeting is moving"
    if not problems and (new_date, start_time, location) == (
        meeting.meeting_date,
        meeting.start_time,
        meeting.location,
    ):
        problems["new_date"] = "The new date, time and place are the same as now: change at least one"
    if problems:
        raise Invalid(problems)
    before = {
        "date": meeting.meeting_date.isoformat(),
        "start": meeting.start_time.isoformat(),
        "location": meeting.location,
    }
    when_changed = (new_date, start_time) != (meeting.meeting_date, meeting.start_time)
    meeting.meeting_date, meeting.start_time, meeting.location = new_date, start_time, location
    apply_times(meeting, series)
    meeting.sequence += 1
    if when_changed:
        ask_again(meeting)
    # A frozen agenda stays frozen when the new cut-off is still ahead: the agenda is already settled,
    # and unfreezing it would let the freeze sweep run again and send a second round of notices.
    audit.record(
        session,
        now=now,
        action="meeting.moved",
        actor_person_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        before=before,
        after={"date": new_date.isoformat(), "start": start_time.isoformat(), "location": location},
        sequence=meeting.sequence,
        reason=reason,
    )
    return meeting


def next_meeting_of_series(session: Session, meeting: Meeting) -> Meeting | None:
    """The series' next meeting that items can go to: a planned one if there is one, else one already frozen."""
    later = [
        m
        for m in series_meetings(session, meeting.series_id)
        if m.starts_at > meeting.starts_at and m.id != meeting.id and m.status in NOT_STARTED
    ]
    later.sort(key=lambda m: m.starts_at)
    return next((m for m in later if m.status == MeetingStatus.planned), later[0] if later else None)


def cancel_meeting(
    session: Session, *, meeting: Meeting, reason: str, now: datetime, actor_id: int | None
) -> list[AgendaItem]:
    """Cancel a meeting that has not started and carry its listed items to the series' next meeting.

    The old items become `deferred`; the new ones point back at them (carried_from_id). Returns the new
    items, so the caller can tell their schools. SEQUENCE goes up: the invitations sweep sends the CANCEL.
    """
    _must_be_upcoming(meeting, now, "cancelled")
    reason = (reason or "").strip()
    if not reason:
        raise Invalid({"reason": "Enter why the meeting is cancelled"})
    listed = [item for item in meeting.items if item.status == AgendaItemStatus.listed]
    target = next_meeting_of_series(session, meeting) if listed else None
    if listed and target is None:
        raise Invalid(
            {
                "reason": f"The meeting has {len(listed)} agenda items and the series has no later meeting to "
                "move them to: plan the next term's meetings first"
            }
        )
    carried = []
    if target is not None:
        # What an item is about: its referral, its pupil of concern (Team Around the School) or its action.
        def about(item: AgendaItem) -> tuple[str, int | None]:
            if item.referral_id is not None:
                return ("referral", item.referral_id)
            if item.concern_id is not None:
                return ("concern", item.concern_id)
            return ("action", item.action_id)

        on_target: dict[tuple[str, int | None], AgendaItem] = {}
        for item in target.items:
            if item.status == AgendaItemStatus.listed or item.referral_id is not None:
                on_target.setdefault(about(item), item)
        position = max((item.position for item in target.items), default=0)
        for item in listed:
            item.status = AgendaItemStatus.deferred
            existing = on_target.get(about(item))
            if existing is not None and existing.status == AgendaItemStatus.listed:
                continue  # already on the next agenda
            position += 1
            # A referral once taken off the next agenda has a row there already (one row a meeting): reuse it.
            new_item = existing or AgendaItem(meeting_id=target.id, referral_id=item.referral_id)
            new_item.kind, new_item.action_id, new_item.position = item.kind, item.action_id, position
            new_item.concern_id = item.concern_id
            new_item.slot_minutes, new_item.status = item.slot_minutes, AgendaItemStatus.listed
            new_item.carried_from_id, new_item.added_at = item.id, now
            new_item.agencies_needed = list(item.agencies_needed or [])
            session.add(new_item)
            carried.append(new_item)
        if carried and target.status != MeetingStatus.planned:
            target.agenda_changed_at = now  # papers are rebuilt and sent again
    _status_change(session, meeting, meeting.status, MeetingStatus.cancelled, now=now, actor_id=actor_id, note=reason)
    meeting.cancelled_reason = reason
    meeting.sequence += 1
    session.flush()
    audit.record(
        session,
        now=now,
        action="meeting.cancelled",
        actor_person_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        reason=reason,
        sequence=meeting.sequence,
        items_moved_to=target.id if carried else None,
        items=[item.id for item in carried],
    )
    return carried


def eip_people(session: Session) -> list[Person]:
    """Active people holding the EIP role: those who may chair."""
    return list(
        session.scalars(
            select(Person)
            .where(
                Person.active.is_(True), Person.id.in_(select(RoleGrant.person_id).where(RoleGrant.role == Role.eip))
            )
            .order_by(Person.name)
        )
    )


def change_chair(session: Session, *, meeting: Meeting, chair_id: int, now: datetime, actor_id: int | None) -> Meeting:
    _must_be_upcoming(meeting, now, "given a new chair")
    if chair_id not in {person.id for person in eip_people(session)}:
        raise Invalid({"chair_id": "Choose an Education Inclusion Partner to chair"})
    if chair_id == meeting.chair_id:
        raise Invalid({"chair_id": "They already chair this meeting: choose someone else"})
    before, meeting.chair_id = meeting.chair_id, chair_id
    # The invitations sweep invites the new chair; the calendar entry itself (time, place) is unchanged.
    audit.record(
        session,
        now=now,
        action="meeting.chair_changed",
        actor_person_id=actor_id,
        record_type="meeting",
        record_id=meeting.id,
        before=before,
        after=chair_id,
    )
    return meeting


# --- series settings ------------------------------------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# field -> (label for messages, lowest, highest) for the whole-number settings
NUMBERS = {
    "duration_minutes": ("The meeting length", 15, 480),
    "capacity_items": ("The number of agenda items", 1, 40),
    "item_minutes": ("The minutes for each item", 5, 120),
    "quorum_min_agencies": ("The number of agencies for quorum", 0, 20),
    "invite_days_ahead": ("How many days ahead invitations go", 1, 120),
    "chair_rotation_every": ("How many meetings each chair takes", 1, 20),
    "agency_access_days": ("The days agencies may read a meeting's cases afterwards", 0, 365),
}
# After the meeting, in working days (notes/meetings-practice.md section 5 for the defaults).
FOLLOW_THROUGH = {
    "outcome_due_working_days": ("The working days to tell schools the outcome", 1, 10),
    "minutes_due_working_days": ("The working days to circulate the minutes", 1, 20),
    "corrections_working_days": ("The working days for corrections to the minutes", 1, 20),
    "action_reminder_working_days": ("The working days before an action is due to remind its owner", 0, 20),
    "chase_every_working_days": ("The working days between chases of an overdue action", 1, 20),
    "escalate_after_chases": ("The number of chases before escalating", 1, 10),
    "blockage_working_days": ("The working days before a wait on an agency is flagged", 1, 30),
}
NUMBERS |= FOLLOW_THROUGH
TIMES = {
    "start_time": "The start time",
    "cutoff_time": "The cut-off time",
    "papers_time": "The papers time",
    "quorum_check_time": "The quorum check time",
}
DAYS = {"cutoff_weekday": "The cut-off day", "papers_weekday": "The papers day"}
SERIES_FIELDS = (
    *NUMBERS,
    *TIMES,
    *DAYS,
    "location",
    "quorum_required_agencies",
    "chair_rotation",
)
# Settings that move a meeting or one of its deadlines.
TIMING_FIELDS = frozenset(
    {"start_time", "duration_minutes", "cutoff_weekday", "cutoff_time", "papers_weekday", "papers_time"}
    | {"quorum_check_time", "location"}
)


def parse_time(value: object) -> time | None:
    if isinstance(value, time):
        return value
    text = str(value).strip().lower().replace(".", ":")
    for pattern in ("%H:%M", "%I:%M%p", "%I%p"):
        try:
            return datetime.strptime(text.replace(" ", ""), pattern).time()  # noqa: DTZ007 (a wall-clock time)
        except ValueError:
            continue
    return None


def _parse_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() and len(text) < 7 else None


def _parse_list(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).replace("\n", ",").split(",") if part.strip()]


def check_series_values(session: Session, series: MeetingSeries, values: dict) -> dict:
    """The new settings, typed; Invalid maps each wrong field to what is wrong with it."""
    problems: dict[str, str] = {}
    clean: dict = {}
    for name, value in values.items():
        if name not in SERIES_FIELDS:
            problems[name] = f"{name} is not a setting that can be changed here"
        elif name in NUMBERS:
            label, low, high = NUMBERS[name]
            number = _parse_int(value)
            if number is None or not low <= number <= high:
                problems[name] = f"{label} must be a whole number from {low} to {high}"
            else:
                clean[name] = number
        elif name in TIMES:
            parsed = parse_time(value)
            if parsed is None:
                problems[name] = f"{TIMES[name]} must be a time like 13:30"
            else:
                clean[name] = parsed
        elif name in DAYS:
            day = _parse_int(value)
            if day is None or not 0 <= day <= 6:
                problems[name] = f"{DAYS[name]} must be a day of the week"
            else:
                clean[name] = day
        elif name == "location":
            location = str(value).strip()
            if not location:
                problems[name] = "Enter where the meeting is held"
            elif len(location) > 200:
                problems[name] = "The location must be 200 characters or fewer"
            else:
                clean[name] = location
        elif name == "quorum_required_agencies":
            codes = [code.upper() for code in _parse_list(value)]
            known = set(session.scalars(select(Agency.code).where(Agency.active.is_(True))))
            unknown = [code for code in codes if code not in known]
            if unknown:
                problems[name] = f"No active agency has the code {', '.join(unknown)[:200]}"
            else:
                clean[name] = list(dict.fromkeys(codes))
        else:  # chair_rotation
            ids = [_parse_int(v) for v in _parse_list(value)]
            eips = {person.id for person in eip_people(session)}
            if not ids:
                problems[name] = "Choose at least one Education Inclusion Partner to chair"
            elif any(i not in eips for i in ids):
                problems[name] = "Chairs must be active Education Inclusion Partners"
            elif len(set(ids)) != len(ids):
                problems[name] = "Each chair can be in the rotation once"
            else:
                clean[name] = ids
    merged = {
        "duration_minutes": series.duration_minutes,
        "capacity_items": series.capacity_items,
        "item_minutes": series.item_minutes,
    } | {k: v for k, v in clean.items() if k in ("duration_minutes", "capacity_items", "item_minutes")}
    needed = merged["capacity_items"] * merged["item_minutes"]
    if not problems and needed > merged["duration_minutes"]:
        problems["capacity_items"] = (
            f"{merged['capacity_items']} items of {merged['item_minutes']} minutes need {needed} minutes, "
            f"but the meeting lasts {merged['duration_minutes']}"
        )
    if problems:
        raise Invalid(problems)
    return clean


def _shown(value: object) -> object:
    return value.isoformat() if isinstance(value, time | date) else value


def update_series(
    session: Session, *, series: MeetingSeries, values: dict, now: datetime, actor_id: int | None
) -> list[Meeting]:
    """Change series settings. Upcoming meetings follow changed times and deadlines; those still at the
    series' old start time or place take the new one (a meeting moved on its own keeps its own) and
    their SEQUENCE goes up when their calendar entry changed. Returns the meetings whose entry changed."""
    clean = check_series_values(session, series, values)
    changes = {
        name: [_shown(getattr(series, name)), _shown(value)]
        for name, value in clean.items()
        if getattr(series, name) != value
    }
    if not changes:
        return []
    old_start, old_location = series.start_time, series.location
    for name in changes:
        setattr(series, name, clean[name])
    updated = []
    if TIMING_FIELDS & changes.keys():
        for meeting in series_meetings(session, series.id):
            if meeting.status not in NOT_STARTED or meeting.starts_at <= now:
                continue
            entry = (meeting.starts_at, meeting.ends_at, meeting.location)
            if meeting.start_time == old_start:
                meeting.start_time = series.start_time
            if meeting.location == old_location:
                meeting.location = series.location
            apply_times(meeting, series)
            if (meeting.starts_at, meeting.ends_at) != entry[:2]:
                ask_again(meeting)
            if (meeting.starts_at, meeting.ends_at, meeting.location) != entry:
                meeting.sequence += 1
                updated.append(meeting)
    session.flush()
    audit.record(
        session,
        now=now,
        action="series.updated",
        actor_person_id=actor_id,
        record_type="meeting_series",
        record_id=series.id,
        changes=changes,
        meetings_updated=[m.id for m in updated],
    )
    return updated


def find_series(session: Session) -> list[MeetingSeries]:
    return list(session.scalars(select(MeetingSeries).order_by(MeetingSeries.name)))


def get_series(session: Session, name_or_id: str | int) -> MeetingSeries:
    """A series by id or by exact name (as the CLI takes it)."""
    text = str(name_or_id).strip()
    series = session.get(MeetingSeries, int(text)) if text.isdigit() and len(text) < 10 else None
    series = series or session.scalar(select(MeetingSeries).where(MeetingSeries.name == text[:200]))
    if series is None:
        raise NotFound(f"meeting series {text[:200]}")
    return series


# --- a new series ---------------------------------------------------------------------------------

# A new series' settings when none are given: the model's defaults, written out because a series that is
# not yet saved has none of them (check_series_values weighs capacity against length before saving).
SERIES_DEFAULTS = {
    "duration_minutes": 120,
    "capacity_items": 8,
    "item_minutes": 15,
    "cutoff_weekday": 0,
    "cutoff_time": time(12, 0),
    "papers_weekday": 1,
    "papers_time": time(9, 0),
    "quorum_min_agencies": 3,
    "quorum_required_agencies": [],
    "quorum_check_time": time(12, 0),
    "invite_days_ahead": 28,
    "chair_rotation_every": 3,
    "agency_access_days": 28,
    "outcome_due_working_days": 1,
    "minutes_due_working_days": 5,
    "corrections_working_days": 10,
    "action_reminder_working_days": 2,
    "chase_every_working_days": 3,
    "escalate_after_chases": 2,
    "blockage_working_days": 3,
}
# What only a new series sets; the rest are the settings update_series changes too.
CREATE_FIELDS = ("name", "kind", "area_id", "school_id", "weekday", "coordinator_id", "term_time_only")


def coordinator_choices(session: Session) -> list[Person]:
    """Active clinic coordinators and EIPs: the people meetings.access lets run a series' meetings."""
    holders = select(RoleGrant.person_id).where(RoleGrant.role.in_((Role.coordinator, Role.eip)))
    return list(
        session.scalars(select(Person).where(Person.active.is_(True), Person.id.in_(holders)).order_by(Person.name))
    )


def _may_coordinate(person: Person, area_id: int | None) -> bool:
    """A clinic coordinator runs every series; an EIP one serving their area, or a borough-wide one."""
    roles = {(grant.role, grant.area_id) for grant in person.grants}
    if any(role == Role.coordinator for role, _ in roles):
        return True
    return any(role == Role.eip and (area_id is None or scope == area_id) for role, scope in roles)


def _chosen(session: Session, model, value: object):
    number = _parse_int(value) if value not in (None, "") else None
    return session.get(model, number) if number and 0 < number < 2**31 else None


def _check_new_series(session: Session, values: dict) -> tuple[dict, dict]:
    """The series' own fields, typed, and what is wrong with them (field -> message)."""
    problems: dict[str, str] = {}
    clean: dict = {}
    name = " ".join(str(values.get("name") or "").split())
    if not name:
        problems["name"] = "Enter a name for the series"
    elif len(name) > 200:
        problems["name"] = "The name must be 200 characters or fewer"
    elif session.scalar(select(MeetingSeries.id).where(func.lower(MeetingSeries.name) == name.lower())):
        problems["name"] = f"A series called {name} already exists"
    clean["name"] = name

    kind = str(values.get("kind") or "")
    clean["kind"] = kind
    clean["area_id"] = clean["school_id"] = None
    if kind == MeetingKind.hot_clinic:
        if values.get("area_id") not in (None, ""):
            area = _chosen(session, Area, values["area_id"])
            if area is None:
                problems["area_id"] = "Choose an area, or all areas"
            else:
                clean["area_id"] = area.id
    elif kind == MeetingKind.team_around_school:
        school = _chosen(session, School, values.get("school_id"))
        if school is None or not school.active:
            problems["school_id"] = "Choose the school the series is for"
        else:
            # The school's area, so that area's EIPs run it (meetings.access); hot clinic lists go by kind.
            clean["school_id"], clean["area_id"] = school.id, school.area_id
    else:
        problems["kind"] = "Choose whether it is a hot clinic or a team around the school"

    weekday = _parse_int(values.get("weekday", ""))
    if weekday is None or not 0 <= weekday <= 4:
        problems["weekday"] = "Choose a day from Monday to Friday"
    clean["weekday"] = weekday

    coordinator = _chosen(session, Person, values.get("coordinator_id"))
    if coordinator is None or not coordinator.active or not _may_coordinate(coordinator, None):
        problems["coordinator_id"] = "Choose a clinic coordinator or an Education Inclusion Partner to coordinate"
    elif "area_id" not in problems and not _may_coordinate(coordinator, clean["area_id"]):
        problems["coordinator_id"] = (
            f"{coordinator.name} is an Education Inclusion Partner for another area: choose a clinic coordinator "
            "or an EIP for this area"
        )
    clean["coordinator_id"] = coordinator.id if coordinator is not None else None
    clean["term_time_only"] = bool(values.get("term_time_only", True))
    return clean, problems


def create_series(session: Session, *, values: dict, now: datetime, actor_id: int | None) -> MeetingSeries:
    """A new series with the given settings, the rest as SERIES_DEFAULTS. It has no members or meetings
    yet: add its core members, then plan its meetings a term at a time (plan_term).

    `values` holds name, kind (a MeetingKind), area_id (a hot clinic; none for all areas) or school_id
    (a team around the school), weekday (0-4), start_time, location, coordinator_id, chair_rotation and any
    of the settings update_series takes. Invalid names every wrong field at once."""
    own, problems = _check_new_series(session, values)
    settings = {k: v for k, v in values.items() if k not in CREATE_FIELDS}
    for needed in ("start_time", "location", "chair_rotation"):
        settings.setdefault(needed, "")
    defaults = SERIES_DEFAULTS | {"quorum_required_agencies": []}  # a list of its own
    draft = MeetingSeries(**defaults)
    try:
        clean = check_series_values(session, draft, settings)
    except Invalid as exc:
        problems |= exc.problems
        clean = {}
    if problems:
        raise Invalid(problems)
    series = MeetingSeries(**(defaults | clean | own), quorum_chair_required=True, active=True)
    try:
        with session.begin_nested():  # someone else may have taken the name since the check
            session.add(series)
            session.flush()
    except IntegrityError as exc:
        raise Invalid({"name": f"A series called {own['name']} already exists"}) from exc
    audit.record(
        session,
        now=now,
        action="series.created",
        actor_person_id=actor_id,
        record_type="meeting_series",
        record_id=series.id,
        settings={name: _shown(value) for name, value in (defaults | clean | own).items()},
    )
    return series
