"""Administration of meeting series, their meetings and the term dates (admins and the clinic coordinator)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Area, School
from caseconf.clock import london_text, london_today
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import membership, planning, terms
from meetings.access import Principal, require
from meetings.agenda import MovedItem
from meetings.models import AgendaItem, AgendaItemStatus, Meeting, MeetingSeries
from notifications.papers_mail import queue_item_moved
from web.deps import DbSession, SignedIn, mail_context, now_of, render

router = APIRouter(prefix="/admin")

# What the series forms send: the settings (new and edit pages) and what only a new series chooses.
SETTINGS_FIELDS = (
    "start_time", "duration_minutes", "location", "capacity_items", "item_minutes", "cutoff_weekday",
    "cutoff_time", "papers_weekday", "papers_time", "quorum_min_agencies", "quorum_check_time",
    "invite_days_ahead", "chair_rotation_every", *planning.FOLLOW_THROUGH,
)  # fmt: skip
NEW_SERIES_FIELDS = ("name", "kind", "area_id", "school_id", "weekday", "coordinator_id")


async def _series_form(request: Request) -> tuple[dict, list[str]]:
    """The fields as typed (kept to show again on an error) and the chairs in order."""
    form = await request.form()
    typed = {name: str(form.get(name, "")) for name in NEW_SERIES_FIELDS + SETTINGS_FIELDS}
    typed["quorum_required_agencies"] = [str(v) for v in form.getlist("quorum_required_agencies")]
    return typed, [str(v) for v in form.getlist("chairs")]


SeriesForm = Annotated[tuple[dict, list[str]], Depends(_series_form)]


MAX_TERMS_FILE = 512 * 1024
MAX_CHAIRS = 6
STATUS_LABELS = {
    "planned": "Planned",
    "agenda_frozen": "Agenda closed",
    "papers_sent": "Papers sent",
    "held": "Held",
    "minutes_draft": "Minutes in draft",
    "minutes_approved": "Minutes approved",
    "minutes_circulated": "Minutes circulated",
    "cancelled": "Cancelled",
}
KIND_LABELS = {"hot_clinic": "Hot clinic", "team_around_school": "Team around the school"}
# Success messages, chosen by a code in the redirect so nothing typed ends up in a URL.
DONE = {
    "moved": "The meeting has been moved. Invitees will be sent the updated calendar entry.",
    "chair": "The chair has been changed.",
    "cancelled": "The meeting has been cancelled. Invitees will be sent a cancellation.",
    "updated": "The series settings have been saved.",
    "created": "The series has been created. Next, add its core members below, then plan its meetings for a "
    "term: it has none yet.",
    "member_added": "The member has been added. They will be invited to the upcoming meetings.",
    "member_removed": "The member has been removed. They will be sent a cancellation for any meeting they were "
    "invited to.",
    "deputy": "The deputy has been changed. A deputy is invited to a meeting when their member cannot come.",
}


def _manager(viewer: Principal) -> None:
    require(viewer, "meetings.manage")


def _series(session: Session, series_id: int, *, for_update: bool = False) -> MeetingSeries:
    series = session.get(MeetingSeries, series_id, with_for_update=for_update) if 0 < series_id < 2**31 else None
    if series is None:
        raise NotFound(f"series {series_id}")
    return series


def _meeting(session: Session, meeting_id: int, *, for_update: bool = False) -> Meeting:
    meeting = session.get(Meeting, meeting_id, with_for_update=for_update) if 0 < meeting_id < 2**31 else None
    if meeting is None:
        raise NotFound(f"meeting {meeting_id}")
    return meeting


def _refused(exc: Invalid | Conflict, field: str) -> tuple[int, dict]:
    """The status and form errors for a refused change: the form's problems (400), or the meeting's
    state shown at `field` (409)."""
    if isinstance(exc, Invalid):
        return 400, exc.problems
    return 409, {field: f"{exc}. Nothing was changed."}


def _done_message(done: str | None) -> str | None:
    code, _, count = (done or "").partition(":")
    if not count.isdigit() or len(count) > 4:
        return DONE.get(code)
    n = int(count)
    if code == "planned":
        return f"{n} meetings planned." if n else "Nothing to plan: every meeting of that term is already planned."
    if code == "updated":
        return f"The series settings have been saved. {n} upcoming meetings were updated to match."
    if code == "cancelled":
        return f"{DONE['cancelled']} {n} agenda items were carried to the next meeting."
    return None


# --- series --------------------------------------------------------------------------------------


@router.get("/series")
def series_list(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    _manager(viewer)
    now = now_of(request)
    rows = []
    for series in planning.find_series(session):
        upcoming = [m for m in planning.series_meetings(session, series.id) if m.starts_at > now]
        rows.append((series, upcoming[0] if upcoming else None))
    return render(request, "admin/series/index.html", rows=rows, kinds=KIND_LABELS, weekdays=planning.WEEKDAYS)


def _new_series_page(request: Request, session: Session, *, typed: dict, errors=None, status_code=200) -> Response:
    return render(
        request,
        "admin/series/new.html",
        status_code=status_code,
        typed=typed,
        errors=errors or {},
        areas=session.scalars(select(Area).order_by(Area.name)).all(),
        schools=session.scalars(select(School).where(School.active.is_(True)).order_by(School.name)).all(),
        coordinators=planning.coordinator_choices(session),
        agencies=membership.active_agencies(session),
        eips=planning.eip_people(session),
        kinds=KIND_LABELS,
        weekdays=planning.WEEKDAYS,
        max_chairs=MAX_CHAIRS,
    )


def _default_values() -> dict:
    defaults = planning.SERIES_DEFAULTS
    typed = {name: str(defaults[name]) for name in (*planning.NUMBERS, *planning.DAYS)}
    typed |= {name: defaults[name].strftime("%H:%M") for name in planning.TIMES if name in defaults}
    return typed | {"quorum_required_agencies": [], "chairs": [""] * MAX_CHAIRS}


# Declared before /series/{series_id}, which would otherwise take "new" for an id.
@router.get("/series/new")
def new_series_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    _manager(viewer)
    return _new_series_page(request, session, typed=_default_values())


@router.post("/series/new")
def create_series(request: Request, session: DbSession, viewer: SignedIn, form: SeriesForm) -> Response:
    _manager(viewer)
    typed, chairs = form
    try:
        with session.begin():
            series = planning.create_series(
                session,
                values=typed | {"chair_rotation": [c for c in chairs if c.strip()]},
                now=now_of(request),
                actor_id=viewer.person_id,
            )
            series_id = series.id
    except Invalid as exc:
        session.rollback()
        chosen = (chairs + [""] * MAX_CHAIRS)[:MAX_CHAIRS]
        return _new_series_page(
            request, session, typed=typed | {"chairs": chosen}, errors=exc.problems, status_code=400
        )
    return RedirectResponse(f"/admin/series/{series_id}?done=created", status_code=303)


def _series_page(request: Request, session: Session, series: MeetingSeries, **context) -> Response:
    now = now_of(request)
    meetings = planning.series_meetings(session, series.id)
    all_terms = terms.find_terms(session)
    by_term = []
    placed: set[int] = set()
    for term in all_terms:
        inside = [m for m in meetings if term.starts_on <= m.meeting_date <= term.ends_on]
        placed.update(m.id for m in inside)
        by_term.append((term, inside, term.ends_on >= london_today(now)))
    outside = [m for m in meetings if m.id not in placed]
    people = {p.id: p for p in planning.eip_people(session)}
    context.setdefault("errors", {})
    context.setdefault("typed", {})
    return render(
        request,
        "admin/series/show.html",
        members=membership.core_members(series),
        agencies=membership.active_agencies(session),
        people_groups=membership.active_people_by_organisation(session),
        series=series,
        by_term=by_term,
        outside=outside,
        chairs=[people[i].name if i in people else f"Person {i} (no longer an EIP)" for i in series.chair_rotation],
        weekdays=planning.WEEKDAYS,
        kinds=KIND_LABELS,
        statuses=STATUS_LABELS,
        now=now,
        **context,
    )


@router.get("/series/{series_id}")
def series_page(request: Request, session: DbSession, viewer: SignedIn, series_id: int, done: str | None = None):
    _manager(viewer)
    return _series_page(request, session, _series(session, series_id), done=_done_message(done))


@router.post("/series/{series_id}/plan")
def plan(request: Request, session: DbSession, viewer: SignedIn, series_id: int, term_id: str = Form("")) -> Response:
    _manager(viewer)
    with session.begin():
        series = _series(session, series_id)
        term = next((t for t in terms.find_terms(session) if str(t.id) == term_id), None)
        if term is None:
            raise NotFound(f"term {term_id[:20]}")
        report = planning.plan_term(
            session,
            series=series,
            term=term,
            now=now_of(request),
            actor_id=viewer.person_id,
            calendar_domain=mail_context(request).mail_domain,
        )
        made = len(report.created)
    return RedirectResponse(f"/admin/series/{series_id}?done=planned:{made}", status_code=303)


def _series_values(series: MeetingSeries) -> dict:
    def hhmm(value):
        return value.strftime("%H:%M")

    values = {name: str(getattr(series, name)) for name in planning.NUMBERS} | {
        name: hhmm(getattr(series, name)) for name in planning.TIMES
    }
    values |= {name: str(getattr(series, name)) for name in planning.DAYS}
    values["location"] = series.location
    values["quorum_required_agencies"] = list(series.quorum_required_agencies or [])
    values["chairs"] = [str(i) for i in series.chair_rotation] + [""] * (MAX_CHAIRS - len(series.chair_rotation))
    return values


def _edit_page(request: Request, session: Session, series: MeetingSeries, *, typed, errors=None, status_code=200):
    agencies = session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.name)).all()
    return render(
        request,
        "admin/series/edit.html",
        status_code=status_code,
        series=series,
        typed=typed,
        errors=errors or {},
        agencies=agencies,
        eips=planning.eip_people(session),
        weekdays=planning.WEEKDAYS,
        max_chairs=MAX_CHAIRS,
    )


@router.get("/series/{series_id}/edit")
def edit_series_page(request: Request, session: DbSession, viewer: SignedIn, series_id: int) -> Response:
    _manager(viewer)
    series = _series(session, series_id)
    return _edit_page(request, session, series, typed=_series_values(series))


@router.post("/series/{series_id}/edit")
def edit_series(request: Request, session: DbSession, viewer: SignedIn, series_id: int, form: SeriesForm) -> Response:
    _manager(viewer)
    typed, chairs = form
    typed = {key: value for key, value in typed.items() if key not in NEW_SERIES_FIELDS}
    values = typed | {"chair_rotation": [c for c in chairs if c.strip()]}
    try:
        with session.begin():
            series = _series(session, series_id)
            updated = planning.update_series(
                session, series=series, values=values, now=now_of(request), actor_id=viewer.person_id
            )
            count = len(updated)
    except Invalid as exc:
        session.rollback()
        chosen = (chairs + [""] * MAX_CHAIRS)[:MAX_CHAIRS]
        return _edit_page(
            request,
            session,
            _series(session, series_id),
            typed=typed | {"chairs": chosen},
            errors=exc.problems,
            status_code=400,
        )
    return RedirectResponse(f"/admin/series/{series_id}?done=updated:{count}", status_code=303)


# --- core members --------------------------------------------------------------------------------


def _chosen_id(value: str) -> int | None:
    """A chosen id from a select: None for no choice; 0 (which matches nothing) for anything that is not an id."""
    value = value.strip()
    if not value:
        return None
    return int(value) if value.isdigit() and len(value) < 10 else 0


@router.post("/series/{series_id}/members")
def add_member(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    series_id: int,
    agency_id: str = Form(""),
    person_id: str = Form(""),
    deputy_id: str = Form(""),
) -> Response:
    _manager(viewer)
    try:
        with session.begin():
            membership.add_member(
                session,
                series=_series(session, series_id, for_update=True),
                agency_id=_chosen_id(agency_id),
                person_id=_chosen_id(person_id),
                deputy_id=_chosen_id(deputy_id),
                now=now_of(request),
                actor_id=viewer.person_id,
            )
    except Invalid as exc:
        session.rollback()
        typed = {"agency_id": agency_id, "person_id": person_id, "deputy_id": deputy_id}
        return _series_page(
            request, session, _series(session, series_id), status_code=400, errors=exc.problems, typed=typed
        )
    return RedirectResponse(f"/admin/series/{series_id}?done=member_added#members", status_code=303)


@router.get("/series/{series_id}/members/{member_id}/remove")
def remove_member_page(request: Request, session: DbSession, viewer: SignedIn, series_id: int, member_id: int):
    _manager(viewer)
    series = _series(session, series_id)
    return render(
        request, "admin/series/remove_member.html", series=series, member=membership.get_member(series, member_id)
    )


@router.post("/series/{series_id}/members/{member_id}/remove")
def remove_member(request: Request, session: DbSession, viewer: SignedIn, series_id: int, member_id: int):
    _manager(viewer)
    with session.begin():
        membership.remove_member(
            session,
            series=_series(session, series_id, for_update=True),
            member_id=member_id,
            now=now_of(request),
            actor_id=viewer.person_id,
        )
    return RedirectResponse(f"/admin/series/{series_id}?done=member_removed#members", status_code=303)


@router.post("/series/{series_id}/members/{member_id}/deputy")
def change_deputy(
    request: Request, session: DbSession, viewer: SignedIn, series_id: int, member_id: int, deputy_id: str = Form("")
):
    _manager(viewer)
    field = f"deputy-{member_id}"  # each row's select has its own id, for the error summary's link
    try:
        with session.begin():
            membership.set_deputy(
                session,
                series=_series(session, series_id, for_update=True),
                member_id=member_id,
                deputy_id=_chosen_id(deputy_id),
                now=now_of(request),
                actor_id=viewer.person_id,
            )
    except Invalid as exc:
        session.rollback()
        errors = {field: "; ".join(exc.problems.values())}
        return _series_page(
            request, session, _series(session, series_id), status_code=400, errors=errors, typed={field: deputy_id}
        )
    return RedirectResponse(f"/admin/series/{series_id}?done=deputy#members", status_code=303)


# --- one meeting ---------------------------------------------------------------------------------


def _meeting_page(
    request: Request, session: Session, meeting: Meeting, *, status_code=200, errors=None, typed=None, done=None
):
    now = now_of(request)
    listed = [item for item in meeting.items if item.status == AgendaItemStatus.listed]
    return render(
        request,
        "admin/meetings/show.html",
        status_code=status_code,
        meeting=meeting,
        listed=listed,
        upcoming=meeting.status in planning.NOT_STARTED and meeting.starts_at > now,
        statuses=STATUS_LABELS,
        eips=planning.eip_people(session),
        errors=errors or {},
        typed=typed or {},
        done=done,
    )


@router.get("/meetings/{meeting_id}")
def meeting_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, done: str | None = None):
    _manager(viewer)
    return _meeting_page(request, session, _meeting(session, meeting_id), done=_done_message(done))


def _typed_date(day: str, month: str, year: str) -> date | None:
    if not all(re.fullmatch(r"[0-9]{1,4}", part.strip()) for part in (day, month, year)):
        return None
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


@router.post("/meetings/{meeting_id}/move")
def move(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    meeting_id: int,
    day: str = Form("", alias="new_date-day"),
    month: str = Form("", alias="new_date-month"),
    year: str = Form("", alias="new_date-year"),
    new_start_time: str = Form(""),
    new_location: str = Form(""),
    reason: str = Form(""),
) -> Response:
    _manager(viewer)
    typed = {
        "day": day,
        "month": month,
        "year": year,
        "time": new_start_time,
        "location": new_location,
        "reason": reason,
    }
    try:
        with session.begin():
            meeting = _meeting(session, meeting_id, for_update=True)
            problems = {}
            new_date = _typed_date(day, month, year)
            if new_date is None:
                problems["new_date"] = "Enter a real date, for example 3 12 2026"
            start = planning.parse_time(new_start_time) if new_start_time.strip() else meeting.start_time
            if start is None:
                problems["new_start_time"] = "Enter a time like 13:30"
            if problems:
                raise Invalid(problems)
            planning.move_meeting(
                session,
                meeting=meeting,
                new_date=new_date,
                new_start_time=start,
                new_location=new_location or None,
                now=now_of(request),
                actor_id=viewer.person_id,
                reason=reason,
            )
    except (Invalid, Conflict) as exc:
        session.rollback()
        status_code, problems = _refused(exc, "new_date")
        meeting = _meeting(session, meeting_id)
        return _meeting_page(
            request,
            session,
            meeting,
            status_code=status_code,
            errors=problems,
            typed=typed,
        )
    return RedirectResponse(f"/admin/meetings/{meeting_id}?done=moved", status_code=303)


@router.post("/meetings/{meeting_id}/chair")
def chair(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, chair_id: str = Form("")):
    _manager(viewer)
    try:
        with session.begin():
            meeting = _meeting(session, meeting_id, for_update=True)
            planning.change_chair(
                session,
                meeting=meeting,
                chair_id=int(chair_id) if chair_id.isdigit() and len(chair_id) < 10 else 0,
                now=now_of(request),
                actor_id=viewer.person_id,
            )
    except (Invalid, Conflict) as exc:
        session.rollback()
        status_code, problems = _refused(exc, "chair_id")
        return _meeting_page(
            request,
            session,
            _meeting(session, meeting_id),
            status_code=status_code,
            errors=problems,
            typed={"chair_id": chair_id},
        )
    return RedirectResponse(f"/admin/meetings/{meeting_id}?done=chair", status_code=303)


def _cancel_page(request: Request, session: Session, meeting: Meeting, *, status_code=200, errors=None, reason=""):
    listed = [item for item in meeting.items if item.status == AgendaItemStatus.listed]
    return render(
        request,
        "admin/meetings/cancel.html",
        status_code=status_code,
        meeting=meeting,
        listed=listed,
        next_meeting=planning.next_meeting_of_series(session, meeting) if listed else None,
        errors=errors or {},
        reason=reason,
    )


@router.get("/meetings/{meeting_id}/cancel")
def cancel_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    _manager(viewer)
    return _cancel_page(request, session, _meeting(session, meeting_id))


@router.post("/meetings/{meeting_id}/cancel")
def cancel(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, reason: str = Form("")):
    _manager(viewer)
    try:
        with session.begin():
            meeting = _meeting(session, meeting_id, for_update=True)
            carried = planning.cancel_meeting(
                session, meeting=meeting, reason=reason, now=now_of(request), actor_id=viewer.person_id
            )
            for item in carried:
                moved = MovedItem(session.get(AgendaItem, item.carried_from_id), item, item.meeting)
                queue_item_moved(session, moved=moved, now=now_of(request), mail=mail_context(request), why="cancelled")
            count = len(carried)
    except (Invalid, Conflict) as exc:
        session.rollback()
        status_code, problems = _refused(exc, "reason")
        return _cancel_page(
            request,
            session,
            _meeting(session, meeting_id),
            status_code=status_code,
            errors=problems,
            reason=reason,
        )
    return RedirectResponse(f"/admin/meetings/{meeting_id}?done=cancelled:{count}", status_code=303)


# --- term dates ----------------------------------------------------------------------------------


def _terms_page(request: Request, session: Session, *, status_code=200, problems=None, report=None) -> Response:
    return render(
        request,
        "admin/series/terms.html",
        status_code=status_code,
        terms=terms.find_terms(session),
        problems=problems or [],
        errors={"terms_file": "The file was not imported"} if problems else {},
        report=report,
    )


@router.get("/terms")
def terms_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    _manager(viewer)
    return _terms_page(request, session)


@router.post("/terms")
def upload_terms(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    terms_file: UploadFile | None = File(None),  # noqa: B008
) -> Response:
    _manager(viewer)
    content = terms_file.file.read(MAX_TERMS_FILE + 1) if terms_file is not None else b""
    filename = (terms_file.filename or "") if terms_file is not None else ""
    try:
        if not content:
            raise Invalid(["Choose a CSV or ICS file of term dates"])
        if len(content) > MAX_TERMS_FILE:
            raise Invalid(["The file is larger than 512 KB: a file of term dates is much smaller"])
        with session.begin():
            report = terms.import_terms_file(
                session, filename=filename, content=content, now=now_of(request), actor_id=viewer.person_id
            )
    except Invalid as exc:
        session.rollback()
        problems = list(exc.problems.values() if isinstance(exc.problems, dict) else exc.problems)
        return _terms_page(request, session, status_code=400, problems=problems)
    return _terms_page(request, session, report=report)


@router.get("/terms.csv")
def terms_csv(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    _manager(viewer)
    stamp = london_text(now_of(request), "%Y-%m-%d")
    return Response(
        terms.export_terms_csv(session),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="term-dates-{stamp}.csv"'},
    )
