"""The school referrer's pages: their referrals, the referral form page by page, submitting, and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from agencies.auth import person_for_expired_session
from agencies.models import Role, School
from caseconf import audit
from caseconf.clock import london_today
from caseconf.errors import Conflict, Forbidden, Invalid, NotFound
from flows.triggers import request_delivery
from meetings import referrals
from meetings.access import Principal, access_referral, can_on_referral, principal_for, require
from meetings.models import Action, ActionStatus, Referral, ReferralStatus
from meetings.referral_form import PAGES, Field, Page, check_page, page_for
from meetings.referral_rules import LABELS, OPEN_STATUSES, SCHOOL_TODO
from notifications.emails import queue_referral_status, queue_referral_submitted
from web.deps import (
    SESSION_COOKIE,
    DbSession,
    SignedIn,
    Viewer,
    client_ip,
    mail_context,
    now_of,
    read_referral,
    render,
    settings_of,
    sign_in_url,
)

router = APIRouter(prefix="/referrals")

# Answers posted this long after a session ran out by itself are still kept (never after sign-out).
EXPIRED_SESSION_GRACE = timedelta(hours=24)
# What is kept of one typed value: far beyond any field's limit, so the person sees their own text
# and the limit's message, but a bounded size in the draft.
MAX_KEPT_CHARACTERS = 10_000
# Checkbox options that mean "none of the others"; GOV.UK shows them last, after "or".
EXCLUSIVE_OPTIONS = frozenset({"none", "none_identified"})
TAG_CLASSES = {
    ReferralStatus.draft: "govuk-tag--grey",
    ReferralStatus.submitted: "govuk-tag--blue",
    ReferralStatus.information_requested: "govuk-tag--orange",
    ReferralStatus.accepted: "govuk-tag--green",
    ReferralStatus.discussed: "govuk-tag--turquoise",
    ReferralStatus.actions_open: "govuk-tag--turquoise",
    ReferralStatus.review: "govuk-tag--yellow",
    ReferralStatus.signposted: "govuk-tag--purple",
    ReferralStatus.declined: "govuk-tag--grey",
    ReferralStatus.closed: "govuk-tag--grey",
    ReferralStatus.withdrawn: "govuk-tag--grey",
}


async def posted_form(request: Request) -> FormData:
    return await request.form()  # already parsed (and cached) by the CSRF check


PostedForm = Annotated[FormData, Depends(posted_form)]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _status(referral: Referral) -> ReferralStatus:
    return ReferralStatus(referral.status)


def _child_name(referral: Referral) -> str:
    if referral.child is not None:
        return f"{referral.child.legal_first_name} {referral.child.legal_surname}"
    typed = (referral.draft_answers or {}).get("child", {})
    return " ".join(str(typed.get(n) or "").strip() for n in ("legal_first_name", "legal_surname")).strip()


def _schools_of(session: Session, viewer: Principal) -> list[School]:
    ids = [g.school_id for g in viewer.scopes(Role.school_referrer) if g.school_id is not None]
    if not ids:
        return []
    return list(session.scalars(select(School).where(School.id.in_(ids)).order_by(School.name)))


def _editable_draft(session: Session, viewer: Principal | None, referral_id: int) -> Referral | None:
    """The draft to edit; None when it has been submitted (the caller shows its status instead)."""
    referral = access_referral(session, viewer, referral_id, "view")
    if referral.status != ReferralStatus.draft:
        return None
    if not can_on_referral(viewer, "edit_draft", referral):
        raise Forbidden("referral.edit_draft")
    return referral


# --- Your referrals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedReferral:
    referral: Referral
    child_name: str
    status_label: str
    tag_classes: str
    next_meeting: Any
    open_actions: int
    todo: str


@router.get("")
def your_referrals(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "referrals.list")
    now = now_of(request)
    school_ids = [g.school_id for g in viewer.scopes(Role.school_referrer) if g.school_id is not None]
    found = sorted(
        referrals.school_referrals(session, school_ids=school_ids), key=lambda r: (r.created_at, r.id), reverse=True
    )
    open_actions = dict(
        session.execute(
            select(Action.referral_id, func.count())
            .where(Action.referral_id.in_([r.id for r in found]), Action.status == ActionStatus.open)
            .group_by(Action.referral_id)
        ).all()
    )
    rows = [
        ListedReferral(
            referral=r,
            child_name=_child_name(r),
            status_label=LABELS[_status(r)],
            tag_classes=TAG_CLASSES[_status(r)],
            next_meeting=referrals.next_meeting_for(session, r, now=now),
            open_actions=open_actions.get(r.id, 0),
            todo=SCHOOL_TODO.get(_status(r), ""),
        )
        for r in found
    ]
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
        child_name=_child_name(referral),
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
    return render(
        request,
        "referrals/status.html",
        status_code=status_code,
        referral=referral,
        child_name=_child_name(referral),
        status_label=LABELS[status],
        tag_classes=TAG_CLASSES[status],
        todo=SCHOOL_TODO.get(status, ""),
        next_meeting=referrals.next_meeting_for(session, referral, now=now_of(request)),
        history=[_timeline_entry(c) for c in history],
        question=question,
        can_answer=can_on_referral(viewer, "answer", referral),
        can_withdraw=can_on_referral(viewer, "withdraw", referral) and status in OPEN_STATUSES,
        cards=_answer_cards(session, referral, today=submitted_on, editable=False) if sent_with_this_form else [],
        errors=errors or {},
        answer=answer,
        done=done,
    )


def _timeline_entry(change) -> dict[str, Any]:
    to = ReferralStatus(change.to_status)
    if to == ReferralStatus.information_requested:
        note_label = "Question from the Education Inclusion Partner"
    elif to == ReferralStatus.submitted and change.from_status == ReferralStatus.information_requested:
        note_label = "The school's answer"
    elif to in (ReferralStatus.declined, ReferralStatus.withdrawn):
        note_label = "Reason"
    else:
        note_label = "Note"
    label = "Started" if to == ReferralStatus.draft else LABELS[to]
    if to == ReferralStatus.submitted:
        label = "Answer sent" if change.from_status == ReferralStatus.information_requested else "Submitted"
    return {"label": label, "at": change.changed_at, "note": change.note, "note_label": note_label}


@router.get("/{referral_id}")
def referral_page(
    request: Request, session: DbSession, viewer: SignedIn, referral_id: int, done: str | None = None
) -> Response:
    referral = read_referral(request, session, viewer, referral_id, "view")
    if referral.status == ReferralStatus.draft:
        if not can_on_referral(viewer, "edit_draft", referral):
            raise Forbidden("referral.edit_draft")
        return _task_list(request, session, referral)
    return _status_page(request, session, viewer, referral, done=done)


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
        child_name=_child_name(referral),
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


@dataclass
class FieldView:
    """One question as the template draws it: what was typed, its problem, and questions revealed by it."""

    field: Field
    value: Any  # a string; a list for checkboxes; {"day", "month", "year"} for dates
    error: str | None
    options: tuple[tuple[str, str], ...]
    hint: str
    error_parts: tuple[str, ...] = ()
    revealed: dict[str, list[FieldView]] = field(default_factory=dict)

    @property
    def href(self) -> str:
        if self.field.kind == "date":
            return f"#{self.field.name}-{(self.error_parts or ('day',))[0]}"
        return f"#{self.field.name}"

    def option_items(self) -> list[tuple[str, str, bool]]:
        """(code, label, exclusive) in the order shown."""
        plain = [(c, label, False) for c, label in self.options if c not in EXCLUSIVE_OPTIONS]
        if self.field.kind != "checkboxes":
            return [(c, label, False) for c, label in self.options]
        return plain + [(c, label, True) for c, label in self.options if c in EXCLUSIVE_OPTIONS]


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


def _date_error_parts(f: Field, answers: dict[str, Any], error: str | None) -> tuple[str, ...]:
    if not error:
        return ()
    parts = ("day", "month", "year")
    missing = tuple(p for p in parts if not str(answers.get(f"{f.name}-{p}", "")).strip())
    return missing if 0 < len(missing) < 3 else parts


def _field_views(page: Page, answers: dict[str, Any], errors: dict[str, str], reasons) -> list[FieldView]:
    views: dict[str, FieldView] = {}
    for f in page.fields:
        if f.kind == "date":
            value: Any = {p: str(answers.get(f"{f.name}-{p}", "")) for p in ("day", "month", "year")}
        elif f.kind == "checkboxes":
            raw = answers.get(f.name) or []
            value = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        else:
            value = str(answers.get(f.name) or "")
        views[f.name] = FieldView(
            field=f,
            value=value,
            error=errors.get(f.name),
            options=reasons if f.name == "reasons" else f.options,
            hint=f.hint,
            error_parts=_date_error_parts(f, answers, errors.get(f.name)) if f.kind == "date" else (),
        )
    shown = []
    for f in page.fields:
        view = views[f.name]
        parent = views.get(f.when[0]) if f.when else None
        if parent is not None and parent.field.kind == "radios" and len(f.when[1]) == 1:
            # Revealed under the one answer that needs it (GOV.UK conditional reveal).
            parent.revealed.setdefault(f.when[1][0], []).append(view)
            continue
        if parent is not None:
            chosen = dict(parent.options)
            which = " or ".join(f"‘{chosen.get(code, code)}’" for code in f.when[1])
            view.hint = f"Answer if you selected {which}." + (f" {f.hint}" if f.hint else "")
        shown.append(view)
    return shown


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
    views = _field_views(page, answers, errors, referrals.reason_options(session))
    by_name = {v.field.name: v for v in _flatten(views)}
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


def _flatten(views: list[FieldView]) -> list[FieldView]:
    flat = []
    for view in views:
        flat.append(view)
        for children in view.revealed.values():
            flat.extend(_flatten(children))
    return flat


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


def _readable(f: Field, value: Any, options) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"text": "Not given"}
    if f.kind == "date":
        return {"text": _long_date(value)}
    labels = dict(options)
    if f.kind in ("radios", "select"):
        return {"text": labels.get(value, value)}
    if f.kind == "checkboxes":
        return {"html": Markup("<br>").join(labels.get(v, v) for v in value)}
    if f.kind == "textarea":
        return {"html": Markup("<br>").join(str(value).splitlines())}
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return {"text": str(value.to_integral_value())}  # "0 days", not "0.0 days"
    return {"text": str(value)}


def _long_date(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


def _answer_cards(session: Session, referral: Referral, *, today: date, editable: bool) -> list[dict[str, Any]]:
    """One summary card per page: its answers in words, and where to change each."""
    reasons = referrals.reason_options(session)
    cards = []
    for page in PAGES:
        raw = (referral.draft_answers or {}).get(page.key)
        answers = raw or {}
        result = check_page(page, answers, today=today, reasons=reasons)
        views = {v.field.name: v for v in _flatten(_field_views(page, answers, result.errors, reasons))}
        rows = []
        for f in page.fields:
            if f.when and str(answers.get(f.when[0], "")) not in f.when[1]:
                continue  # not asked, given the answer it depends on
            if f.name in result.errors:
                typed = views[f.name].value
                empty = not typed or (isinstance(typed, dict) and not any(typed.values()))
                value = {"text": "Not answered" if empty else f"Needs changing: {result.errors[f.name]}"}
            else:
                value = _readable(f, result.values.get(f.name), reasons if f.name == "reasons" else f.options)
            row: dict[str, Any] = {"key": {"text": f.label}, "value": value}
            if editable:
                href = f"/referrals/{referral.id}/pages/{page.key}?return_to=check{views[f.name].href}"
                row["actions"] = {"items": [{"href": href, "text": "Change", "visuallyHiddenText": f.label.lower()}]}
            rows.append(row)
        cards.append({"page": page, "rows": rows, "complete": raw is not None and result.ok})
    return cards


def _check_page(
    request: Request, session: Session, referral: Referral, *, status_code: int = 200, problems=None
) -> Response:
    cards = _answer_cards(session, referral, today=london_today(now_of(request)), editable=True)
    problems = problems or {}
    return render(
        request,
        "referrals/check.html",
        status_code=status_code,
        referral=referral,
        child_name=_child_name(referral),
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
