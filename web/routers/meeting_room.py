"""The live meeting room for the chair and the minute-taker: one page, with plain forms that work without
JavaScript, and small autosave endpoints that answer JSON to web/static/meeting-room.js.

An autosave request carries the header X-Autosave: 1 and the form fields csrf_token, text and
base_version. It gets {"version", "saved_at"} back, or 409 with {"theirs", "yours", "version"} when
someone saved newer text first, or 400 with {"errors"}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, Role, RoleGrant
from caseconf import audit
from caseconf.clock import london, london_today
from caseconf.db import transaction
from caseconf.errors import Conflict, Forbidden, Invalid
from meetings import meeting_room
from meetings.access import Principal, access_meeting, can_on_meeting, can_on_referral, note_cases_read
from meetings.edits import EditConflict
from meetings.models import Meeting, MeetingStatus, Rsvp
from notifications.papers_mail import queue_item_moved
from web.deps import DbSession, SignedIn, client_ip, mail_context, now_of, render

router = APIRouter(prefix="/meetings/{meeting_id}/room")

DONE = {
    "opened": "The meeting room is open. The meeting started now.",
    "attendance": "Attendance has been saved.",
    "attendee": "They have been added to the attendance list as present.",
    "confidentiality": "The confidentiality statement has been recorded.",
    "started": "The item is now the current item.",
    "ended": "The item has ended.",
    "deferred": "The item has been moved to the next meeting.",
    "saved": "Your changes have been saved.",
    "decision": "The decision has been recorded.",
    "action": "The action has been added.",
    "action-changed": "The action has been changed.",
    "action-removed": "The action has been removed.",
    "review": "The action review has been recorded.",
    "meeting-ended": "The meeting has ended. The minutes are in draft: you can still tidy them here.",
}
NOT_STARTED = {
    MeetingStatus.planned: "Not started: the agenda has not been closed yet",
    MeetingStatus.agenda_frozen: "Not started: the agenda is closed",
    MeetingStatus.papers_sent: "Not started: the agenda is closed and the papers have been sent",
}
AFTER_THE_END = {
    MeetingStatus.held: "the minutes are being started",
    MeetingStatus.minutes_draft: "the minutes are in draft",
    MeetingStatus.minutes_approved: "the minutes have been approved",
    MeetingStatus.minutes_circulated: "the minutes have been circulated",
}
RSVP_LABELS = {
    Rsvp.needs_action: "No reply",
    Rsvp.accepted: "Coming",
    Rsvp.tentative: "Maybe",
    Rsvp.declined: "Not coming",
    Rsvp.delegated: "Sending someone else",
}


def _time(moment) -> str:
    return london(moment).strftime("%-I:%M%p").lower()


def status_text(meeting: Meeting) -> str:
    """The meeting's state in plain words."""
    if meeting.status == MeetingStatus.cancelled:
        return "Cancelled"
    if meeting.started_at is None:
        return NOT_STARTED.get(meeting.status, "Not started")
    if meeting.ended_at is None:
        return f"In progress: started at {_time(meeting.started_at)}"
    after = AFTER_THE_END.get(meeting.status)
    ended = f"Ended at {_time(meeting.ended_at)} (started at {_time(meeting.started_at)})"
    return f"{ended}; {after}" if after else ended


def _autosave(request: Request) -> bool:
    return request.headers.get("x-autosave") == "1"


async def _form_of(request: Request) -> dict[str, str]:
    """The posted fields (read once already by the CSRF check, so this costs nothing)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _agency_codes(request: Request) -> list[str]:
    """The agencies ticked as allowed to see a contribution (a field sent once per agency)."""
    form = await request.form()
    return [value for value in form.getlist("visible_to_agencies") if isinstance(value, str)]


FormFields = Annotated[dict[str, str], Depends(_form_of)]
AgencyCodes = Annotated[list[str], Depends(_agency_codes)]


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _school_contacts(session: Session, state: meeting_room.RoomState) -> dict[int, list[Person]]:
    school_ids = set()
    for row in state.items:
        school = (
            row.item.referral.school if row.item.referral is not None else (row.concern.school if row.concern else None)
        )
        if school is not None:
            school_ids.add(school.id)
    contacts: dict[int, list[Person]] = {}
    rows = session.execute(
        select(RoleGrant.school_id, Person)
        .join(Person, Person.id == RoleGrant.person_id)
        .where(RoleGrant.role == Role.school_referrer, RoleGrant.school_id.in_(school_ids), Person.active.is_(True))
        .order_by(Person.name)
    ).all()
    for school_id, person in rows:
        contacts.setdefault(school_id, []).append(person)
    return contacts


def _room_page(
    request: Request,
    session: Session,
    viewer: Principal,
    meeting: Meeting,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    done: str | None = None,
    problem: str | None = None,
) -> Response:
    now = now_of(request)
    state = meeting_room.room_state(session, meeting, now=now)
    agencies = list(session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.name)))
    return render(
        request,
        "meeting_room/room.html",
        status_code=status_code,
        meeting=meeting,
        series=meeting.series,
        state=state,
        now_london=london(now),
        openable=meeting.started_at is None and meeting.status in meeting_room.OPENABLE,
        today=london_today(now),
        status_label=status_text(meeting),
        rsvp_labels=RSVP_LABELS,
        visibility_labels=meeting_room.VISIBILITY_LABELS,
        viewer_id=viewer.person_id,
        default_sharing=lambda agency: meeting_room.default_sharing(session, agency),
        agencies=agencies,
        people=meeting_room.directory_people(session),
        school_contacts=_school_contacts(session, state),
        attendance_labels=meeting_room.ATTENDANCE_LABELS,
        not_done_labels=meeting_room.NOT_DONE_LABELS,
        smart_warnings=meeting_room.smart_warnings,
        may_view=lambda referral: can_on_referral(viewer, "view", referral),
        is_chair=meeting.chair_id == viewer.person_id,
        can_coordinate=can_on_meeting(session, viewer, "coordinate", meeting),
        errors=errors or {},
        has_errors=lambda prefix: any(key.startswith(prefix) for key in errors or {}),
        typed=typed or {},
        done=DONE.get(done or ""),
        problem=problem,
    )


@router.get("")
def room(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, done: str = "") -> Response:
    meeting = access_meeting(session, viewer, meeting_id, "view")
    if meeting.status == MeetingStatus.minutes_circulated:
        # The room has closed for good: say so, and where the record of the meeting is now.
        return render(request, "meeting_room/over.html", meeting=meeting, series=meeting.series)
    if not can_on_meeting(session, viewer, "minute", meeting):
        raise Forbidden("meeting.minute", record_type="meeting", record_id=meeting.id)
    note_cases_read(session, viewer, meeting, "room")  # each listed referral's access log shows the look
    # The room shows case notes: who looked is recorded, as for a referral.
    with transaction(request.app.state.session_factory) as audit_session:
        audit.record(
            audit_session,
            now=now_of(request),
            action="meeting.room_viewed",
            actor_person_id=viewer.person_id,
            actor_label=viewer.email,
            record_type="meeting",
            record_id=meeting.id,
            ip_address=client_ip(request),
        )
    return _room_page(request, session, viewer, meeting, done=done)


def _change(
    request: Request,
    session: Session,
    viewer: Principal,
    meeting_id: int,
    change: Callable[[Meeting], str],
    *,
    typed: dict[str, str] | None = None,
    prefix: str = "",
    anchor: str = "",
) -> Response:
    """Run one change in its own transaction and go back to the room; show the room again with the problem
    (and what was typed) when it is refused. Nothing typed is lost: a form refused keeps its text."""
    try:
        with session.begin():
            meeting = access_meeting(session, viewer, meeting_id, "minute")
            done = change(meeting)
    except (Invalid, Conflict) as exc:
        session.rollback()
        errors, problem, code = {}, None, 409
        if isinstance(exc, Invalid):
            problems = exc.problems if isinstance(exc.problems, dict) else {"room": "; ".join(exc.problems)}
            errors = {
                key if key.startswith(("attendance-", "note-")) else f"{prefix}{key}": message
                for key, message in problems.items()
            }
            code = 400
        elif isinstance(exc, EditConflict):
            problem = (
                "Someone else saved a change here while you were typing, so yours was not saved over it. "
                f"Saved by someone else: “{exc.theirs}”. Your text is still in the form: save it again to keep it."
            )
        else:
            problem = f"{exc}. Nothing was changed."
        typed = {k: v for k, v in (typed or {}).items() if not k.endswith("base_version")}
        meeting = access_meeting(session, viewer, meeting_id, "minute")
        return _room_page(
            request, session, viewer, meeting, status_code=code, errors=errors, typed=typed, problem=problem
        )
    return RedirectResponse(f"/meetings/{meeting_id}/room?done={done}{anchor}", status_code=303)


def _prefixed(prefix: str, form: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}{key}": value for key, value in form.items() if key != "csrf_token"}


# ---- opening, attendance, the current item ---------------------------------------------------------------


@router.post("/open")
def open_room(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    def change(meeting):
        meeting_room.open_room(session, meeting, now=now_of(request), actor_id=viewer.person_id)
        return "opened"

    return _change(request, session, viewer, meeting_id, change)


@router.post("/attendance")
def attendance(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, form: FormFields):
    def change(meeting):
        problems = {}
        for row in meeting_room.live_invitations(session, meeting):
            key = f"attendance-{row.id}"
            if key not in form:
                continue
            try:
                meeting_room.set_attendance(
                    session,
                    meeting,
                    row.id,
                    status=form[key],
                    note=form.get(f"note-{row.id}", ""),
                    now=now_of(request),
                    actor_id=viewer.person_id,
                )
            except Invalid as exc:
                problems.update(exc.problems)
        if problems:
            raise Invalid(problems)
        return "attendance"

    return _change(request, session, viewer, meeting_id, change, typed=form, anchor="#attendance")


@router.post("/attendees")
def add_attendee(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, form: FormFields):
    def change(meeting):
        meeting_room.add_attendee(
            session,
            meeting,
            person_id=_int(form.get("person_id")),
            agency_id=_int(form.get("agency_id")),
            role=form.get("role", ""),
            now=now_of(request),
            actor_id=viewer.person_id,
        )
        return "attendee"

    typed = _prefixed("attendee-", form)
    return _change(request, session, viewer, meeting_id, change, typed=typed, prefix="attendee-", anchor="#attendance")


@router.post("/confidentiality")
def confidentiality(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, form: FormFields):
    def change(meeting):
        read = form.get("read") == "yes"
        meeting_room.set_confidentiality_read(
            session, meeting, read=read, now=now_of(request), actor_id=viewer.person_id
        )
        return "confidentiality"

    return _change(request, session, viewer, meeting_id, change, anchor="#attendance")


def _move(request: Request, session: Session, viewer: Principal, meeting_id: int, item_id: int, move: str):
    function, done = {
        "start": (meeting_room.start_item, "started"),
        "end": (meeting_room.end_item, "ended"),
        "defer": (meeting_room.defer_item, "deferred"),
    }[move]

    def change(meeting):
        result = function(session, meeting, item_id, now=now_of(request), actor_id=viewer.person_id)
        if move == "defer":
            queue_item_moved(session, moved=result, now=now_of(request), mail=mail_context(request), why="coordinator")
        return done

    return _change(request, session, viewer, meeting_id, change, anchor=f"#item-{item_id}")


@router.post("/items/{item_id}/start")
def start_item(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int) -> Response:
    return _move(request, session, viewer, meeting_id, item_id, "start")


@router.post("/items/{item_id}/end")
def end_item(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int) -> Response:
    return _move(request, session, viewer, meeting_id, item_id, "end")


@router.post("/items/{item_id}/defer")
def defer_item(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int) -> Response:
    return _move(request, session, viewer, meeting_id, item_id, "defer")


# ---- autosaved texts ------------------------------------------------------------------------------------


def _save_text(
    request: Request,
    session: Session,
    viewer: Principal,
    meeting_id: int,
    form: dict[str, str],
    *,
    field_id: str,
    anchor: str,
    save,
) -> Response:
    """One autosaved text: JSON for the script, or back to the room (or both texts) for a plain form."""
    text = form.get("text", "")
    base = _int(form.get("base_version"))
    saved = exc = None
    try:
        with session.begin():
            meeting = access_meeting(session, viewer, meeting_id, "minute")
            saved = save(meeting, text, base if base is not None else -1)
    except (Invalid, Conflict) as error:
        session.rollback()
        exc = error
    if _autosave(request):
        if saved is not None:
            at = london(now_of(request)).strftime("%H:%M")
            return JSONResponse({"version": saved.version, "changed": saved.changed, "saved_at": at})
        if isinstance(exc, EditConflict):
            return JSONResponse({"theirs": exc.theirs, "yours": exc.yours, "version": exc.version}, status_code=409)
        message = "; ".join(exc.problems.values()) if isinstance(exc, Invalid) else str(exc)
        return JSONResponse({"errors": [message]}, status_code=400 if isinstance(exc, Invalid) else 422)
    if saved is not None:
        return RedirectResponse(f"/meetings/{meeting_id}/room?done=saved{anchor}", status_code=303)
    meeting = access_meeting(session, viewer, meeting_id, "minute")
    if isinstance(exc, EditConflict):
        return render(
            request,
            "meeting_room/conflict.html",
            status_code=409,
            meeting=meeting,
            conflict=exc,
            action=request.url.path,
            back=f"/meetings/{meeting_id}/room{anchor}",
        )
    if isinstance(exc, Invalid):
        errors = {field_id: "; ".join(exc.problems.values())}
        return _room_page(request, session, viewer, meeting, status_code=400, errors=errors, typed={field_id: text})
    return _room_page(request, session, viewer, meeting, status_code=409, problem=f"{exc}. Nothing was changed.")


@router.post("/items/{item_id}/notes")
def save_notes(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int, form: FormFields):
    def save(meeting, text, base):
        return meeting_room.save_item_notes(
            session, meeting, item_id, text=text, base_version=base, now=now_of(request), actor_id=viewer.person_id
        )

    return _save_text(
        request, session, viewer, meeting_id, form, field_id=f"notes-{item_id}", anchor=f"#item-{item_id}", save=save
    )


@router.post("/items/{item_id}/contributions/{agency_id}")
def save_contribution(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    meeting_id: int,
    item_id: int,
    agency_id: int,
    form: FormFields,
    codes: AgencyCodes,
):
    def save(meeting, text, base):
        return meeting_room.save_contribution(
            session,
            meeting,
            item_id,
            agency_id,
            text=text,
            base_version=base,
            base_text=form.get("base_text"),
            visibility=form.get("visibility") or None,
            visible_to_agencies=codes,
            now=now_of(request),
            actor_id=viewer.person_id,
        )

    field_id = f"contribution-{item_id}-{agency_id}"
    return _save_text(
        request, session, viewer, meeting_id, form, field_id=field_id, anchor=f"#item-{item_id}", save=save
    )


@router.post("/items/{item_id}/decision/{field_name}")
def save_decision_text(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    meeting_id: int,
    item_id: int,
    field_name: str,
    form: FormFields,
):
    def save(meeting, text, base):
        return meeting_room.save_decision_text(
            session,
            meeting,
            item_id,
            field_name,
            text=text,
            base_version=base,
            base_text=form.get("base_text"),
            now=now_of(request),
            actor_id=viewer.person_id,
        )

    field_id = f"decision-{item_id}-{field_name}"
    return _save_text(
        request, session, viewer, meeting_id, form, field_id=field_id, anchor=f"#item-{item_id}", save=save
    )


@router.post("/summary")
def save_summary(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, form: FormFields):
    def save(meeting, text, base):
        return meeting_room.save_summary(
            session, meeting, text=text, base_version=base, now=now_of(request), actor_id=viewer.person_id
        )

    return _save_text(
        request, session, viewer, meeting_id, form, field_id="summary", anchor="#minutes-summary", save=save
    )


# ---- decisions, actions, reviews, the end ---------------------------------------------------------------


@router.post("/items/{item_id}/decision")
def save_decision(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int, form: FormFields
):
    def change(meeting):
        meeting_room.save_decision(
            session,
            meeting,
            item_id,
            option_code=form.get("option", ""),
            rationale=form.get("rationale", ""),
            service_name=form.get("service_name", ""),
            review_on=form.get("review_on", ""),
            dissent=form.get("dissent", ""),
            base_version=_int(form.get("base_version")) or 0,
            base_texts={name: form[f"base_{name}"] for name in meeting_room.DECISION_FIELDS if f"base_{name}" in form}
            or None,
            now=now_of(request),
            actor_id=viewer.person_id,
        )
        return "decision"

    prefix = f"decision-{item_id}-"
    return _change(
        request,
        session,
        viewer,
        meeting_id,
        change,
        typed=_prefixed(prefix, form),
        prefix=prefix,
        anchor=f"#item-{item_id}",
    )


def _action_fields(form: dict[str, str]) -> dict[str, Any]:
    return dict(
        description=form.get("description", ""),
        owner=form.get("owner", ""),
        owner_person_id=_int(form.get("owner_person_id")),
        due_on=form.get("due_on", ""),
        involves_school=form.get("involves_school") == "yes",
    )


@router.post("/items/{item_id}/actions")
def add_action(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int, form: FormFields):
    def change(meeting):
        fields = _action_fields(form)
        meeting_room.add_action(session, meeting, item_id, now=now_of(request), actor_id=viewer.person_id, **fields)
        return "action"

    prefix = f"action-{item_id}-"
    return _change(
        request,
        session,
        viewer,
        meeting_id,
        change,
        typed=_prefixed(prefix, form),
        prefix=prefix,
        anchor=f"#item-{item_id}",
    )


@router.post("/actions/{action_id}")
def edit_action(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, action_id: int, form: FormFields
):
    def change(meeting):
        meeting_room.edit_action(
            session,
            meeting,
            action_id,
            base_version=_int(form.get("base_version")) or 0,
            now=now_of(request),
            actor_id=viewer.person_id,
            **_action_fields(form),
        )
        return "action-changed"

    prefix = f"edit-{action_id}-"
    return _change(
        request,
        session,
        viewer,
        meeting_id,
        change,
        typed=_prefixed(prefix, form),
        prefix=prefix,
        anchor=f"#action-{action_id}",
    )


@router.post("/actions/{action_id}/remove")
def remove_action(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, action_id: int):
    def change(meeting):
        meeting_room.remove_action(session, meeting, action_id, now=now_of(request), actor_id=viewer.person_id)
        return "action-removed"

    return _change(request, session, viewer, meeting_id, change)


@router.post("/items/{item_id}/review")
def review_action(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int, form: FormFields
):
    def change(meeting):
        meeting_room.review_action(
            session,
            meeting,
            item_id,
            outcome=form.get("outcome", ""),
            new_due_on=form.get("new_due_on", ""),
            not_done_reason=form.get("not_done_reason", ""),
            note=form.get("note", ""),
            now=now_of(request),
            actor_id=viewer.person_id,
        )
        return "review"

    prefix = f"review-{item_id}-"
    return _change(
        request,
        session,
        viewer,
        meeting_id,
        change,
        typed=_prefixed(prefix, form),
        prefix=prefix,
        anchor=f"#item-{item_id}",
    )


@router.post("/end")
def end_meeting(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    def change(meeting):
        meeting_room.end_meeting(session, meeting, now=now_of(request), actor_id=viewer.person_id)
        return "meeting-ended"

    return _change(request, session, viewer, meeting_id, change, anchor="#end")
