"""The school referrer's pages: their referrals, the referral form page by page, submitting, and after."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from agencies.auth import person_for_expired_session
from agencies.models import School
from caseconf import audit
from caseconf.clock import london_today
from caseconf.errors import Conflict, Forbidden, Invalid, NotFound
from flows.triggers import request_delivery
from meetings import minutes, referrals
from meetings.access import (
    CaseView,
    Principal,
    access_referral,
    agency_listings,
    can_on_referral,
    case_view,
    principal_for,
    require,
)
from meetings.models import Action, ActionStatus, AgendaItem, Decision, Referral, ReferralStatus
from meetings.papers import facts, summary
from meetings.referral_form import PAGES, Page, page_for
from meetings.referral_rules import LABELS, OPEN_STATUSES, SCHOOL_TODO
from notifications.emails import queue_referral_status, queue_referral_submitted
from web.deps import (
    SESSION_COOKIE,
    DbSession,
    SignedIn,
    Viewer,
    client_ip,
    mail_context,
    note_listed,
    now_of,
    read_referral,
    render,
    settings_of,
    sign_in_url,
)
from web.referral_views import (
    TAG_CLASSES,
    ListedReferral,
    answer_cards,
    child_name,
    field_views,
    flatten,
    timeline_entry,
)

router = APIRouter(prefix="/referrals")

# Answers posted this long after a session ran out by itself are still kept (never after sign-out).
EXPIRED_SESSION_GRACE = timedelta(hours=24)
# What is kept of one typed value: far beyond any field's limit, so the person sees their own text
# and the limit's message, but a bounded size in the draft.
MAX_KEPT_CHARACTERS = 10_000


async def posted_form(request: Request) -> FormData:
    return await request.form()  # already parsed (and cached) by the CSRF check


PostedForm = Annotated[FormData, Depends(posted_form)]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _status(referral: Referral) -> ReferralStatus:
    return ReferralStatus(referral.status)


def _schools_of(session: Session, viewer: Principal) -> list[School]:
    if not viewer.school_ids:
        return []
    return list(session.scalars(select(School).where(School.id.in_(viewer.school_ids)).order_by(School.name)))


def _editable_draft(session: Session, viewer: Principal | None, referral_id: int) -> Referral | None:
    """The draft to edit; None when it has been submitted (the caller shows its status instead)."""
    referral = access_referral(session, viewer, referral_id, "view")
    if referral.status != ReferralStatus.draft:
        return None
    if not can_on_referral(viewer, "edit_draft", referral):
        raise Forbidden("referral.edit_draft")
    return referral


# --- Your referrals ---------------------------------------------------------------------------------


@router.get("")
def your_referrals(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "referrals.list")
    now = now_of(request)
    found = sorted(
        referrals.school_referrals(session, school_ids=viewer.school_ids),
        key=lambda r: (r.created_at, r.id),
        reverse=True,
    )
    # The actions the referral's page shows the school (minutes.school_outcomes): those involving the school,
    # agreed on an item whose decision has been sent to it. Here, those still open.
    open_actions = dict(
        session.execute(
            select(Action.referral_id, func.count())
            .join(AgendaItem, AgendaItem.id == Action.agenda_item_id)
            .where(
                Action.referral_id.in_([r.id for r in found]),
                Action.status == ActionStatus.open,
                Action.involves_school.is_(True),
                AgendaItem.outcome_sent_at.is_not(None),
                exists().where(Decision.agenda_item_id == AgendaItem.id),
            )
            .group_by(Action.referral_id)
        ).all()
    )
    rows = [
        ListedReferral(
            referral=r,
            child_name=child_name(r),
            status_label=LABELS[_status(r)],
            tag_classes=TAG_CLASSES[_status(r)],
            next_meeting=referrals.next_meeting_for(session, r, now=now),
            open_actions=open_actions.get(r.id, 0),
            todo=SCHOOL_TODO.get(_status(r), ""),
        )
        for r in found
    ]
    note_listed(viewer, "referral", [r.id for r in found])
    return render(request, "referrals/index.html", rows=rows, schools=_schools_of(session, viewer))


# --- Starting: the immediate-risk question ----------------------------------------------------------


def _new_page(request: Request, schools: list[School], *, status_code: int = 200, errors=None, typed=None):
    return render(
        request,
        "referrals/new.html",
        status_code=status_code,
        schools=schools,
        errors=errors or {},
        typed=typed or {"immediate_risk": "", "school_id": ""},
    )


@router.get("/new")
def new_referral_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "referral.create")
    return _new_page(request, _schools_of(session, viewer))


@router.post("/new")
def start_new_referral(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    immediate_risk: str = Form(""),
    school_id: str = Form(""),
) -> Response:
    require(viewer, "referral.create")
    now = now_of(request)
    with session.begin():
        schools = _schools_of(session, viewer)
        errors = {}
        if immediate_risk not in ("yes", "no"):
            errors["immediate_risk"] = "Select yes if the child is at immediate risk of significant harm"
        chosen = schools[0].id if len(schools) == 1 else next((s.id for s in schools if str(s.id) == school_id), None)
        if chosen is None and immediate_risk != "yes":  # a child at risk never waits on a form question
            errors["school_id"] = "Select the child's school"
        if errors:
            referral_id = None
        elif immediate_risk == "yes":
            # No referral: the clinic is a planning forum, not a safeguarding response. Record that we said so.
            audit.record(
                session,
                now=now,
                action="referral.immediate_risk_shown",
                actor_person_id=viewer.person_id,
                actor_label=viewer.email,
                record_type="school",
                record_id=chosen,
                ip_address=client_ip(request),
            )
            referral_id = None
        else:
            referral_id = referrals.start_referral(session, school_id=chosen, referrer_id=viewer.person_id, now=now).id
    if errors:
        typed = {"immediate_risk": immediate_risk, "school_id": school_id}
        return _new_page(request, schools, status_code=400, errors=errors, typed=typed)
    if referral_id is None:
        return _redirect("/referrals/immediate-risk")
    return _redirect(f"/referrals/{referral_id}")


@router.get("/immediate-risk")
def immediate_risk(request: Request, viewer: SignedIn) -> Response:
    require(viewer, "referral.create")
    return render(request, "referrals/immediate_risk.html")


# --- A referral: the task list while a draft, its status page after --------------------------------


def _task_list(request: Request, session: Session, referral: Referral) -> Response:
    today = london_today(now_of(request))
    states = {page.key: referrals.page_state(session, referral, page, today=today) for page in PAGES}
    return render(
        request,
        "referrals/task_list.html",
        referral=referral,
        child_name=child_name(referral),
        pages=PAGES,
        states=states,
        completed=sum(state == "completed" for state in states.values()),
        ready=all(state == "completed" for state in states.values()),
    )


def _status_page(
    request: Request,
    session: Session,
    viewer: Principal,
    referral: Referral,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    answer: str = "",
    done: str | None = None,
) -> Response:
    status = _status(referral)
    history = sorted(referral.history, key=lambda c: (c.changed_at, c.id))
    question = next((c.note for c in reversed(history) if c.to_status == ReferralStatus.information_requested), None)
    submitted_on = london_today(referral.submitted_at) if referral.submitted_at else london_today(now_of(request))
    # Referrals made before this form (the demo's, imports) have no page-by-page answers to show.
    sent_with_this_form = set(referral.draft_answers or {}) >= {p.key for p in PAGES}
    outcomes = minutes.school_outcomes(session, referral.id) if referral.school_id in viewer.school_ids else []
    status_label = LABELS[status]
    review_on = next((o.review_on for o in outcomes if o.review_on), None)
    if status == ReferralStatus.review and review_on and review_on > london_today(now_of(request)):
        status_label = f"Review on {review_on:%-d %B %Y}"  # "due for review" would read as overdue
    return render(
        request,
        "referrals/status.html",
        status_code=status_code,
        referral=referral,
        child_name=child_name(referral),
        status_label=status_label,
        tag_classes=TAG_CLASSES[status],
        todo=SCHOOL_TODO.get(status, ""),
        next_meeting=referrals.next_meeting_for(session, referral, now=now_of(request)),
        outcomes=outcomes,
        history=[timeline_entry(c) for c in history],
        question=question,
        can_answer=can_on_referral(viewer, "answer", referral),
        can_withdraw=can_on_referral(viewer, "withdraw", referral) and status in OPEN_STATUSES,
        cards=answer_cards(session, referral, today=submitted_on, editable=False) if sent_with_this_form else [],
        errors=errors or {},
        answer=answer,
        done=done,
    )


@router.get("/{referral_id}")
def referral_page(
    request: Request, session: DbSession, viewer: SignedIn, referral_id: int, done: str | None = None
) -> Response:
    referral = read_referral(request, session, viewer, referral_id, "view")
    view = case_view(viewer, referral)
    if view is not None and not view.full:
        return _agency_page(request, session, viewer, referral, view)
    if referral.status == ReferralStatus.draft:
        if not can_on_referral(viewer, "edit_draft", referral):
            raise Forbidden("referral.edit_draft")
        return _task_list(request, session, referral)
    return _status_page(request, session, viewer, referral, done=done)


def _agency_page(request: Request, session: Session, viewer: Principal, referral, view: CaseView) -> Response:
    """What an invited agency reads: what its papers show of the child, while its view is open."""
    restricted = [
        (title, facts(getattr(referral, section)))
        for section, title in (("health", "Health and wellbeing"), ("community_safety", "Community safety"))
        if view.shows(section)
    ]
    reasons = dict(referrals.reason_options(session))
    return render(
        request,
        "referrals/shared.html",
        referral=referral,
        child_name=child_name(referral),
        until=view.until,
        meetings=sorted((m for m, _ in agency_listings(viewer, referral)), key=lambda m: m.starts_at),
        rows=summary(referral, reasons, london_today(now_of(request))),
        restricted=restricted,
    )


@router.post("/{referral_id}/answer")
def answer_question(
    request: Request, session: DbSession, viewer: SignedIn, referral_id: int, answer: str = Form("")
) -> Response:
    now = now_of(request)
    try:
        with session.begin():
            referral = access_referral(session, viewer, referral_id, "answer")
            change = referrals.provide_information(
                session, referral=referral, answer=answer[:MAX_KEPT_CHARACTERS], now=now, person_id=viewer.person_id
            )
            queue_referral_status(session, mail=mail_context(request), now=now, referral=referral, change=change)
    except Invalid as exc:
        referral = access_referral(session, viewer, referral_id, "answer")
        return _status_page(request, session, viewer, referral, status_code=400, errors=exc.problems, answer=answer)
    request_delivery()
    return _redirect(f"/referrals/{referral_id}?done=answered")


def _withdraw_page(request: Request, referral: Referral, *, status_code: int = 200, problem: str = "", reason=""):
    return render(
        request,
        "referrals/withdraw.html",
        status_code=status_code,
        referral=referral,
        child_name=child_name(referral),
        problem=problem,
        errors={"reason": problem} if problem else {},
        reason=reason,
    )


def _withdrawable(session: Session, viewer: Principal, referral_id: int) -> Referral:
    referral = access_referral(session, viewer, referral_id, "withdraw")
    if referral.status == ReferralStatus.draft:
        raise NotFound("only a submitted referral is withdrawn")
    return referral


@router.get("/{referral_id}/withdraw")
def withdraw_page(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    referral = _withdrawable(session, viewer, referral_id)
    if _status(referral) not in OPEN_STATUSES:
        return _redirect(f"/referrals/{referral_id}")
    return _withdraw_page(request, referral)


@router.post("/{referral_id}/withdraw")
def withdraw_referral(
    request: Request, session: DbSession, viewer: SignedIn, referral_id: int, reason: str = Form("")
) -> Response:
    now = now_of(request)
    try:
        with session.begin():
            referral = _withdrawable(session, viewer, referral_id)
            change = referrals.withdraw(
                session, referral=referral, reason=reason[:MAX_KEPT_CHARACTERS], now=now, person_id=viewer.person_id
            )
            queue_referral_status(session, mail=mail_context(request), now=now, referral=referral, change=change)
    except Conflict:
        referral = _withdrawable(session, viewer, referral_id)
        problem = f"This referral is {LABELS[_status(referral)].lower()} and can no longer be withdrawn"
        return _withdraw_page(request, referral, status_code=409, problem=problem, reason=reason)
    request_delivery()
    return _redirect(f"/referrals/{referral_id}?done=withdrawn")


# --- The question pages -----------------------------------------------------------------------------


def _kept(value: Any) -> str:
    return value[:MAX_KEPT_CHARACTERS] if isinstance(value, str) else ""


def _answers_from(form: FormData, page: Page) -> dict[str, Any]:
    """Exactly what was typed for this page's questions, and nothing else that was posted."""
    answers: dict[str, Any] = {}
    for f in page.fields:
        if f.kind == "date":
            for part in ("day", "month", "year"):
                answers[f"{f.name}-{part}"] = _kept(form.get(f"{f.name}-{part}"))[:20]
        elif f.kind == "checkboxes":
            answers[f.name] = [_kept(v) for v in form.getlist(f.name)][:50]
        else:
            answers[f.name] = _kept(form.get(f.name))
    return answers


def _question_page(
    request: Request,
    session: Session,
    referral: Referral,
    page: Page,
    answers: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    return_to: str = "",
) -> Response:
    errors = errors or {}
    views = field_views(page, answers, errors, referrals.reason_options(session))
    by_name = {v.field.name: v for v in flatten(views)}
    index = PAGES.index(page)
    back = (
        f"/referrals/{referral.id}/check"
        if return_to == "check"
        else (f"/referrals/{referral.id}/pages/{PAGES[index - 1].key}" if index else f"/referrals/{referral.id}")
    )
    return render(
        request,
        "referrals/question.html",
        status_code=status_code,
        referral=referral,
        page=page,
        number=index + 1,
        total=len(PAGES),
        views=views,
        error_list=[{"text": errors[f.name], "href": by_name[f.name].href} for f in page.fields if f.name in errors],
        errors=errors,
        back=back,
        return_to=return_to,
    )


@router.get("/{referral_id}/pages/{key}")
def question_page(
    request: Request, session: DbSession, viewer: SignedIn, referral_id: int, key: str, return_to: str = ""
) -> Response:
    referral = _editable_draft(session, viewer, referral_id)
    if referral is None:
        return _redirect(f"/referrals/{referral_id}")
    page = page_for(key)
    if page is None:
        raise NotFound(f"page {key}")
    return _question_page(
        request,
        session,
        referral,
        page,
        referrals.saved_answers(referral, key),
        return_to="check" if return_to == "check" else "",
    )


@router.post("/{referral_id}/pages/{key}")
def save_question_page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    form: PostedForm,
    referral_id: int,
    key: str,
) -> Response:
    page = page_for(key)
    if viewer is None:
        return _keep_answers_of_expired_session(request, session, form, referral_id, key)
    if page is None:
        access_referral(session, viewer, referral_id, "view")
        raise NotFound(f"page {key}")
    answers = _answers_from(form, page)
    return_to = "check" if form.get("return_to") == "check" else ""
    now = now_of(request)
    with session.begin():
        referral = _editable_draft(session, viewer, referral_id)
        if referral is None:
            return _redirect(f"/referrals/{referral_id}")
        result = referrals.save_page(
            session, referral=referral, key=key, answers=answers, now=now, person_id=viewer.person_id
        )
        if result.ok:
            states = {p.key: referrals.page_state(session, referral, p, today=london_today(now)) for p in PAGES}
    if form.get("action") == "later":
        # Saved as typed, mistakes and all: the task list shows the section as in progress.
        return _redirect(f"/referrals/{referral_id}")
    if not result.ok:
        return _question_page(
            request, session, referral, page, answers, errors=result.errors, status_code=400, return_to=return_to
        )
    all_done = all(state == "completed" for state in states.values())
    index = PAGES.index(page)
    if return_to == "check" or (index == len(PAGES) - 1 and all_done):
        return _redirect(f"/referrals/{referral_id}/check")
    if index == len(PAGES) - 1:
        return _redirect(f"/referrals/{referral_id}")
    return _redirect(f"/referrals/{referral_id}/pages/{PAGES[index + 1].key}")


def _keep_answers_of_expired_session(
    request: Request, session: Session, form: FormData, referral_id: int, key: str
) -> Response:
    """Save what was posted after the session timed out, then ask them to sign in again."""
    page = page_for(key)
    raw = request.cookies.get(SESSION_COOKIE)
    if page is not None and raw:
        now = now_of(request)
        with session.begin():
            person = person_for_expired_session(session, raw_session=raw, now=now, grace=EXPIRED_SESSION_GRACE)
            referral = session.get(Referral, referral_id) if person else None
            if person and referral and can_on_referral(principal_for(person), "edit_draft", referral):
                referrals.save_page(
                    session,
                    referral=referral,
                    key=key,
                    answers=_answers_from(form, page),
                    now=now,
                    person_id=person.id,
                )
                audit.record(
                    session,
                    now=now,
                    action="referral.page_saved_after_session_expired",
                    actor_person_id=person.id,
                    actor_label=person.email,
                    record_type="referral",
                    record_id=referral.id,
                    ip_address=client_ip(request),
                    page=key,
                )
    return _redirect(sign_in_url(f"/referrals/{referral_id}/pages/{key}"))


# --- Check answers, submit, confirmation ------------------------------------------------------------


def _check_page(
    request: Request, session: Session, referral: Referral, *, status_code: int = 200, problems=None
) -> Response:
    cards = answer_cards(session, referral, today=london_today(now_of(request)), editable=True)
    problems = problems or {}
    return render(
        request,
        "referrals/check.html",
        status_code=status_code,
        referral=referral,
        child_name=child_name(referral),
        cards=cards,
        unfinished=[c["page"] for c in cards if not c["complete"]],
        error_list=[
            {"text": message, "href": f"/referrals/{referral.id}/pages/{key}"} for key, message in problems.items()
        ],
        errors=problems,
    )


@router.get("/{referral_id}/check")
def check_answers(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    referral = _editable_draft(session, viewer, referral_id)
    if referral is None:
        return _redirect(f"/referrals/{referral_id}")
    return _check_page(request, session, referral)


@router.post("/{referral_id}/submit")
def submit(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    now = now_of(request)
    try:
        with session.begin():
            referral = _editable_draft(session, viewer, referral_id)
            if referral is None:  # a second press of the button
                return _redirect(f"/referrals/{referral_id}/submitted")
            referrals.submit_referral(session, referral=referral, now=now, person_id=viewer.person_id)
            queue_referral_submitted(session, mail=mail_context(request), now=now, referral=referral)
    except Invalid as exc:
        referral = _editable_draft(session, viewer, referral_id)
        return _check_page(request, session, referral, status_code=400, problems=exc.problems)
    request_delivery()
    return _redirect(f"/referrals/{referral_id}/submitted")


@router.get("/{referral_id}/submitted")
def submitted(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    referral = access_referral(session, viewer, referral_id, "view")
    if referral.reference is None:
        return _redirect(f"/referrals/{referral_id}")
    return render(
        request,
        "referrals/submitted.html",
        referral=referral,
        triage_days=settings_of(request).triage_working_days,
    )
