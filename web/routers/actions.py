"""The actions tracker (by agency, school, status and overdue; CSV), one action's page with its history and
the owner's update form, and the blockages page (referrals waiting on an outside agency)."""

from __future__ import annotations

import csv
import io
from datetime import date

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, Role
from caseconf import audit
from caseconf.clock import london_today
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import actions as action_service
from meetings import blockages
from meetings.access import Principal, access_action, can_on_action, can_on_meeting, can_on_referral, require
from meetings.models import ActionStatus, AgencyWait, NotDoneReason, Referral
from meetings.working_days import working_days_between
from notifications.chasing import after_update
from web.deps import DbSession, SignedIn, client_ip, mail_context, note_listed, now_of, render

router = APIRouter()

TABS = (
    ("open", "Open"),
    ("overdue", "Overdue"),
    ("done", "Done"),
    ("cancelled", "Cancelled"),
    ("all", "All"),
)
KIND_LABELS = {
    "assigned": "Agreed and sent to the owner",
    "reminder": "Reminder sent",
    "chase": "Chased",
    "escalation": "Escalated to the chair and the agency's lead",
    "update": "Progress update",
    "done": "Marked done",
    "cannot_do": "Cannot be done",
    "cancelled": "Cancelled",
}
DONE_MESSAGES = {
    "done": "The action is marked done.",
    "update": "Your update has been saved.",
    "cannot_do": "Recorded that the action cannot be done. The clinic coordinator has been told.",
    "cancelled": "The action has been cancelled.",
}


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else None


def _filters(tab: str, agency: str | None, school: str | None) -> action_service.TrackerFilters:
    status = tab if tab in action_service.TRACKER_STATUSES else None
    return action_service.TrackerFilters(agency_id=_int(agency), school_id=_int(school), status=status)


def _audit_read(request: Request, viewer: Principal, action_name: str, record_type: str, record_id, **detail) -> None:
    with transaction(request.app.state.session_factory) as audit_session:
        audit.record(
            audit_session,
            now=now_of(request),
            action=action_name,
            actor_person_id=viewer.person_id,
            actor_label=viewer.email,
            record_type=record_type,
            record_id=record_id,
            ip_address=client_ip(request),
            **detail,
        )


# ---- the tracker --------------------------------------------------------------------------------------


def _scope_text(viewer: Principal) -> str:
    """Which actions the tracker lists for this viewer, in words (as meetings.access.can_on_action)."""
    if Role.coordinator in viewer.roles:
        return "every action"
    parts = ["actions you own"]
    if viewer.scopes(Role.agency_rep):
        parts.append("your agency's actions")
    parts.append("actions agreed at meetings you chaired")
    if Role.eip in viewer.roles:
        parts.append("actions about schools in your area")
    if viewer.school_ids:
        parts.append("actions that involve your school")
    return ", ".join(parts[:-1]) + " and " + parts[-1]


@router.get("/actions")
def tracker(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    tab: str = "open",
    agency: str = "",
    school: str = "",
) -> Response:
    require(viewer, "actions.track")
    tab = tab if tab in dict(TABS) else "open"
    today = london_today(now_of(request))
    filters = _filters(tab, agency, school)
    found = action_service.tracker(session, viewer, filters, today=today)
    counts = action_service.tracker_counts(session, viewer, filters, today=today)
    counts["all"] = sum(counts[s] for s in ("open", "done", "cancelled"))
    agencies, schools = action_service.filter_choices(session, viewer, today=today)
    summary = (
        action_service.agency_summary(session, viewer, filters, today=today)
        if filters.agency_id is None and viewer.roles & {Role.coordinator, Role.eip, Role.admin}
        else []
    )
    query = "&".join(f"{k}={v}" for k, v in (("agency", filters.agency_id), ("school", filters.school_id)) if v)
    note_listed(viewer, "action", [a.id for a in found])
    return render(
        request,
        "actions/index.html",
        actions=found,
        summary=summary,
        tab=tab,
        tabs=TABS,
        counts=counts,
        agencies=agencies,
        schools=schools,
        filters=filters,
        query=query,
        today=today,
        status_labels=action_service.STATUS_LABELS,
        chase_count=action_service.chase_count,
        scope_text=_scope_text(viewer),
    )


@router.get("/actions.csv")
def tracker_csv(
    request: Request, session: DbSession, viewer: SignedIn, tab: str = "all", agency: str = "", school: str = ""
) -> Response:
    require(viewer, "actions.track")
    today = london_today(now_of(request))
    filters = _filters(tab, agency, school)
    found = action_service.tracker(session, viewer, filters, today=today)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(action_service.csv_rows(session, found, today=today))
    _audit_read(
        request,
        viewer,
        "actions.exported",
        "action",
        None,
        rows=len(found),
        ids=[a.id for a in found],
        tab=tab,
        agency_id=filters.agency_id,
        school_id=filters.school_id,
    )
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="actions-{today.isoformat()}.csv"',
            "Cache-Control": "no-store",
        },
    )


# ---- one action -----------------------------------------------------------------------------------------


def _may_cancel(viewer: Principal) -> bool:
    return bool(viewer.roles & {Role.coordinator, Role.eip, Role.admin})


def _action_page(
    request: Request,
    session: Session,
    viewer: Principal,
    action_id: int,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    action = access_action(session, viewer, action_id, "view")
    meeting = action_service.meeting_of(session, action)
    people = {
        p.id: p.name
        for p in session.scalars(
            select(Person).where(Person.id.in_([e.by_person_id for e in action.events if e.by_person_id]))
        )
    }
    referral = action.referral
    may_update = can_on_action(viewer, "update", action) and action.status == ActionStatus.open
    _audit_read(request, viewer, "action.viewed", "action", action.id, page=request.url.path)
    return render(
        request,
        "actions/action.html",
        status_code=status_code,
        action=action,
        meeting=meeting,
        referral=referral,
        can_see_referral=referral is not None and can_on_referral(viewer, "view", referral),
        can_see_meeting=meeting is not None and can_on_meeting(session, viewer, "view", meeting),
        people=people,
        may_update=may_update,
        may_cancel=may_update and _may_cancel(viewer),
        errors=errors or {},
        typed=typed or {},
        done=DONE_MESSAGES.get(done or ""),
        today=london_today(now_of(request)),
        kind_labels=KIND_LABELS,
        status_labels=action_service.STATUS_LABELS,
        reason_labels=action_service.REASON_LABELS,
        reasons=[(r.value, action_service.REASON_LABELS[r]) for r in NotDoneReason],
        chases=action_service.chase_count(action),
    )


@router.get("/actions/{action_id}")
def action_page(request: Request, session: DbSession, viewer: SignedIn, action_id: int, done: str = "") -> Response:
    return _action_page(request, session, viewer, action_id, done=done)


def _date_from(day: str, month: str, year: str) -> tuple[date | None, str | None]:
    parts = [p.strip() for p in (day, month, year)]
    if not any(parts):
        return None, None
    if not all(p.isdigit() for p in parts):
        return None, "Enter the new due date as numbers, for example 27 1 2027"
    try:
        return date(int(parts[2]), int(parts[1]), int(parts[0])), None
    except ValueError:
        return None, "Enter a real date for the new due date"


@router.post("/actions/{action_id}")
def update(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    action_id: int,
    kind: str = Form(""),
    note: str = Form(""),
    reason: str = Form(""),
    due_day: str = Form(""),
    due_month: str = Form(""),
    due_year: str = Form(""),
) -> Response:
    typed = {"kind": kind, "note": note, "reason": reason, "due_day": due_day, "due_month": due_month}
    typed["due_year"] = due_year
    now = now_of(request)
    try:
        with session.begin():
            action = access_action(session, viewer, action_id, "update")
            if kind == "cancelled" and not _may_cancel(viewer):
                raise Invalid({"kind": "Only the clinic coordinator or an Education Inclusion Partner can cancel"})
            new_due_on, date_problem = _date_from(due_day, due_month, due_year)
            if date_problem:
                raise Invalid({"new_due_on": date_problem})
            result = action_service.update_action(
                session,
                action,
                kind=kind,
                note=note,
                by_person_id=viewer.person_id,
                now=now,
                reason=(reason or None) if kind == "cannot_do" else None,
                new_due_on=new_due_on,
            )
            after_update(session, result, now=now, mail=mail_context(request))
    except Invalid as exc:
        session.rollback()
        problems = exc.problems if isinstance(exc.problems, dict) else {"kind": str(exc.problems)}
        return _action_page(request, session, viewer, action_id, status_code=400, errors=problems, typed=typed)
    except Conflict as exc:
        session.rollback()
        return _action_page(
            request, session, viewer, action_id, status_code=409, errors={"kind": str(exc)}, typed=typed
        )
    return RedirectResponse(f"/actions/{action_id}?done={kind}", status_code=303)


# ---- blockages -------------------------------------------------------------------------------------------


def _areas(viewer: Principal) -> frozenset[int] | None:
    """None: every area (the coordinator, an administrator); an EIP's own areas otherwise."""
    if viewer.roles & {Role.coordinator, Role.admin}:
        return None
    return viewer.area_ids


def _blockages_page(
    request: Request,
    session: Session,
    viewer: Principal,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    require(viewer, "blockages.view")
    now = now_of(request)
    today = london_today(now)
    waits = blockages.open_waits(session, area_ids=_areas(viewer))
    rows = [
        {
            "wait": w,
            "waited": working_days_between(london_today(w.since), today),
            "next_chase": blockages.next_chase_on(w, blockages.chase_every(session, w)),
        }
        for w in waits
    ]
    agencies = session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.name)).all()
    note_listed(viewer, "wait", [w.id for w in waits])
    return render(
        request,
        "actions/blockages.html",
        status_code=status_code,
        rows=rows,
        agencies=agencies,
        errors=errors or {},
        typed=typed or {},
        done=done,
        today=today,
    )


@router.get("/blockages")
def blockages_page(request: Request, session: DbSession, viewer: SignedIn, done: str = "") -> Response:
    message = {"opened": "The wait has been recorded.", "resolved": "The wait has been marked resolved."}.get(done)
    return _blockages_page(request, session, viewer, done=message)


@router.post("/blockages")
def open_wait(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    reference: str = Form(""),
    agency_id: str = Form(""),
    waiting_for: str = Form(""),
    flag_after: str = Form("3"),
) -> Response:
    typed = {"reference": reference, "agency_id": agency_id, "waiting_for": waiting_for, "flag_after": flag_after}
    try:
        with session.begin():
            require(viewer, "blockages.view")
            problems: dict[str, str] = {}
            referral = session.scalar(select(Referral).where(Referral.reference == reference.strip().upper()))
            if referral is None or not can_on_referral(viewer, "view", referral):
                problems["reference"] = "Enter the reference of a referral you can see, like VPHC-2026-0042"
            agency = session.get(Agency, _int(agency_id)) if _int(agency_id) else None
            if agency is None:
                problems["agency_id"] = "Choose the agency the referral is waiting on"
            days = _int(flag_after)
            if days is None:
                problems["flag_after"] = "Enter a number of working days from 1 to 60"
            if problems:
                raise Invalid(problems)
            blockages.open_wait(
                session,
                referral=referral,
                agency=agency,
                waiting_for=waiting_for,
                by_person_id=viewer.person_id,
                now=now_of(request),
                flag_after_working_days=days,
            )
    except Invalid as exc:
        session.rollback()
        return _blockages_page(request, session, viewer, status_code=400, errors=exc.problems, typed=typed)
    return RedirectResponse("/blockages?done=opened", status_code=303)


@router.post("/blockages/{wait_id}/resolve")
def resolve(
    request: Request, session: DbSession, viewer: SignedIn, wait_id: int, resolution: str = Form("")
) -> Response:
    try:
        with session.begin():
            require(viewer, "blockages.view")
            wait = session.get(AgencyWait, wait_id, with_for_update=True) if 0 < wait_id < 2**31 else None
            areas = _areas(viewer)
            if wait is None or (areas is not None and wait.referral.school.area_id not in areas):
                raise NotFound(f"wait {wait_id}")
            blockages.resolve_wait(
                session, wait, resolution=resolution, by_person_id=viewer.person_id, now=now_of(request)
            )
    except Invalid as exc:
        session.rollback()
        return _blockages_page(
            request,
            session,
            viewer,
            status_code=400,
            errors={f"resolution-{wait_id}": exc.problems["resolution"]},
            typed={f"resolution-{wait_id}": resolution},
        )
    return RedirectResponse("/blockages?done=resolved", status_code=303)
