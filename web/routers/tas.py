"""Team Around the School for school staff: their school's series and next meeting, the pupils of concern
waiting for it, and the open actions that involve the school. A pupil added here goes onto the next
meeting's agenda when that agenda closes; no clinic referral is needed."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from agencies.models import Person, School
from caseconf.clock import london_today
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import concerns
from meetings.access import Principal, can_on_action, can_on_meeting, require
from meetings.models import Action, ActionStatus, PupilOfConcern, Referral
from web.deps import DbSession, SignedIn, note_listed, now_of, render

router = APIRouter(prefix="/tas")

DONE = {
    "added": "The pupil has been added. They will be on the agenda of your next Team Around the School meeting.",
    "removed": "The pupil has been taken off your list.",
}


def _schools(session: Session, viewer: Principal) -> list[School]:
    require(viewer, "concerns.add")
    return list(
        session.scalars(
            select(School).where(School.id.in_(viewer.school_ids), School.active.is_(True)).order_by(School.name)
        )
    )


def _open_actions(session: Session, viewer: Principal, school_id: int) -> list[Action]:
    """Open actions that involve the school: its own, those on its referrals it is told about, and those
    agreed about its pupils of concern (each checked with meetings.access)."""
    referral_ids = select(Referral.id).where(Referral.school_id == school_id)
    concern_ids = select(PupilOfConcern.id).where(PupilOfConcern.school_id == school_id)
    rows = session.scalars(
        select(Action)
        .where(
            Action.status == ActionStatus.open,
            or_(
                Action.owner_school_id == school_id,
                Action.referral_id.in_(referral_ids) & Action.involves_school.is_(True),
                Action.concern_id.in_(concern_ids),
            ),
        )
        .order_by(Action.due_on, Action.id)
    )
    return [a for a in rows if can_on_action(viewer, "view", a)]


def _index(
    request: Request,
    session: Session,
    viewer: Principal,
    *,
    status_code: int = 200,
    done: str = "",
    error: str | None = None,
) -> Response:
    now = now_of(request)
    schools = []
    for school in _schools(session, viewer):
        series = concerns.tas_series_for(session, school.id)
        upcoming = concerns.next_tas_meeting(session, series, now=now) if series else None
        schools.append(
            {
                "school": school,
                "series": series,
                "next": upcoming,
                # The meeting page opens to the school once it is invited (the invitations sweep).
                "next_link": upcoming is not None and can_on_meeting(session, viewer, "view", upcoming),
                "concerns": concerns.list_concerns(session, school.id, include_closed=True),
                "actions": _open_actions(session, viewer, school.id),
            }
        )
    note_listed(viewer, "concern", [c.id for s in schools for c in s["concerns"]])
    note_listed(viewer, "action", [a.id for s in schools for a in s["actions"]])
    return render(
        request,
        "tas/index.html",
        status_code=status_code,
        schools=schools,
        status_words=concerns.STATUS_WORDS,
        done=DONE.get(done),
        error=error,
        today=london_today(now),
    )


@router.get("")
def index(request: Request, session: DbSession, viewer: SignedIn, done: str = "") -> Response:
    return _index(request, session, viewer, done=done)


def _form(request: Request, session: Session, viewer: Principal, *, typed: dict, errors: dict, status_code=200):
    schools = _schools(session, viewer)
    if not schools:
        raise NotFound("a school to add pupils of concern for")
    return render(
        request,
        "tas/new.html",
        status_code=status_code,
        schools=schools,
        typed=typed,
        errors=errors,
        max_label=concerns.MAX_LABEL,
    )


@router.get("/concerns/new")
def new_concern(request: Request, session: DbSession, viewer: SignedIn, school: str = "") -> Response:
    return _form(request, session, viewer, typed={"school_id": school}, errors={})


def _typed_date(day: str, month: str, year: str) -> tuple[date | None, str | None]:
    parts = [p.strip() for p in (day, month, year)]
    if not any(parts):
        return None, None
    if not all(p.isdigit() and len(p) <= 4 for p in parts):
        return None, "Enter the date the family agreed as numbers, for example 13 11 2026"
    try:
        return date(int(parts[2]), int(parts[1]), int(parts[0])), None
    except ValueError:
        return None, "Enter a real date for when the family agreed"


@router.post("/concerns/new")
def add_concern(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    school_id: str = Form(""),
    label: str = Form(""),
    concern: str = Form(""),
    ask: str = Form(""),
    agreed: str = Form(""),
    agreed_day: str = Form(""),
    agreed_month: str = Form(""),
    agreed_year: str = Form(""),
) -> Response:
    typed = {
        "school_id": school_id,
        "label": label,
        "concern": concern,
        "ask": ask,
        "agreed": agreed,
        "agreed_day": agreed_day,
        "agreed_month": agreed_month,
        "agreed_year": agreed_year,
    }
    now = now_of(request)
    try:
        with session.begin():
            schools = {str(s.id): s for s in _schools(session, viewer)}
            problems: dict[str, str] = {}
            school = schools.get(school_id) or (next(iter(schools.values())) if len(schools) == 1 else None)
            if school is None:
                problems["school_id"] = "Choose the school"
            agreed_on, date_problem = _typed_date(agreed_day, agreed_month, agreed_year)
            if agreed not in ("yes", "no"):
                problems["agreed"] = "Say whether the family has agreed to the pupil being discussed"
            elif agreed == "yes" and agreed_on is None:
                problems["agreed_on"] = date_problem or "Enter the date the family agreed"
            elif agreed == "no":
                agreed_on = None
            try:
                concerns.check_concern(
                    label=label, concern=concern, ask=ask, parent_agreed_on=agreed_on, today=london_today(now)
                )
            except Invalid as exc:
                problems |= {("agreed_on" if k == "parent_agreed_on" else k): v for k, v in exc.problems.items()}
            if problems:
                raise Invalid(problems)
            concerns.add_concern(
                session,
                school=school,
                series=concerns.tas_series_for(session, school.id),
                added_by=session.get(Person, viewer.person_id),
                label=label,
                concern=concern,
                ask=ask,
                parent_agreed_on=agreed_on,
                now=now,
            )
    except Invalid as exc:
        session.rollback()
        return _form(request, session, viewer, typed=typed, errors=exc.problems, status_code=400)
    return RedirectResponse("/tas?done=added", status_code=303)


@router.post("/concerns/{concern_id}/remove")
def remove_concern(request: Request, session: DbSession, viewer: SignedIn, concern_id: int) -> Response:
    try:
        with session.begin():
            require(viewer, "concerns.add")
            concerns.remove_concern(
                session,
                concern_id=concern_id,
                school_ids=viewer.school_ids,
                by=session.get(Person, viewer.person_id),
                now=now_of(request),
            )
    except Conflict as exc:
        session.rollback()
        return _index(request, session, viewer, status_code=409, error=f"{exc}.")
    return RedirectResponse("/tas?done=removed", status_code=303)
