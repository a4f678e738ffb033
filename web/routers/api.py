"""The JSON API for local-authority integrations: submit referrals and read their status.

Each request carries `Authorization: Bearer <token>` (see `caseconf api-token create`) and acts as
the token's person, with their role grants and the same access rules as the pages. A submission
is the referral form page by page in JSON types. It is turned into the answers a browser would
post and checked by the form itself (`check_page`, through `save_page`), so the API and the pages
cannot disagree about what is valid. Every error is JSON: {"errors": [{"field", "message"}]}.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)
from pydantic import Field as Schema
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from agencies.api_tokens import authenticate_api_token
from agencies.models import School
from caseconf import audit
from caseconf.db import transaction
from caseconf.errors import Conflict, Forbidden, Invalid, NotFound
from flows.triggers import request_delivery
from meetings import referrals
from meetings.access import Principal, access_referral, can, can_on_referral, case_view, principal_for
from meetings.models import Referral, ReferralStatus
from meetings.referral_form import PAGES, PAGES_BY_KEY, YES_NO, Field, Page
from meetings.referral_rules import LABELS
from notifications.emails import queue_referral_submitted
from web.deps import DbSession, client_ip, mail_context, now_of, settings_of
from web.security import token_attempts_blocked

log = logging.getLogger("caseconf.api")

# --- Errors: always {"errors": [{"field": ..., "message": ...}]} -------------------------------------


class ApiError(BaseModel):
    field: str | None = Schema(description="Where the problem is, e.g. attendance.attendance_percent; null if nowhere")
    message: str


class ApiErrors(BaseModel):
    errors: list[ApiError]


class ApiProblem(Exception):
    def __init__(self, status_code: int, problems: Iterable[tuple[str | None, str]], headers=None):
        self.status_code, self.problems, self.headers = status_code, list(problems), headers or {}

    def response(self) -> JSONResponse:
        errors = [
            {"field": _printable(field, 200), "message": _printable(message, 2000)} for field, message in self.problems
        ]
        return JSONResponse({"errors": errors}, status_code=self.status_code, headers=self.headers)


def _printable(text: str | None, limit: int) -> str | None:
    """Text to echo in an error: a lone surrogate (valid in JSON escapes, not in UTF-8) becomes '?'."""
    if text is None:
        return None
    return text[:limit].encode("utf-8", "replace").decode("utf-8")


class _ApiRoute(APIRoute):
    """Every failure under this router answers in JSON; the pages keep their HTML error pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_as_json(request: Request) -> Response:
            try:
                return await handle(request)
            except ApiProblem as exc:
                return exc.response()
            except RequestValidationError as exc:
                return ApiProblem(422, _validation_problems(exc.errors())).response()
            except StarletteHTTPException as exc:  # e.g. a body that cannot be read at all
                return ApiProblem(exc.status_code, [(None, str(exc.detail))], exc.headers).response()
            except Exception:
                reference = secrets.token_hex(4).upper()
                log.exception("Unexpected error %s on %s %s", reference, request.method, request.url.path)
                message = f"Something went wrong on our side. Nothing was saved. Quote reference {reference}."
                return ApiProblem(500, [(None, message)]).response()

        return handle_as_json


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ApiErrors, "description": "No token, or one that is unknown, expired or revoked"},
    422: {"model": ApiErrors, "description": "The request is not valid; nothing was saved"},
}

router = APIRouter(prefix="/api/v1", route_class=_ApiRoute, tags=["referrals"], responses=ERROR_RESPONSES)


# --- Who is calling ------------------------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="A token made with `caseconf api-token create`; it acts as that person, with their roles.",
)


@dataclass(frozen=True)
class ApiCaller:
    principal: Principal
    token_id: int


def api_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiCaller:
    """The token's person, or 401. Checked in a transaction of its own (it records the token's use)."""
    raw = credentials.credentials if credentials else ""
    if raw and (wait := token_attempts_blocked(request, kind="api")):
        message = f"Too many API tokens that do not work have come from your address; try again in {wait} seconds"
        raise ApiProblem(429, [(None, message)], {"Retry-After": str(wait)})
    with transaction(request.app.state.session_factory) as session:
        token = authenticate_api_token(session, raw_token=raw, now=now_of(request)) if raw else None
        if token is not None:
            return ApiCaller(principal=principal_for(token.person, now=now_of(request)), token_id=token.id)
        audit.record(
            session,
            now=now_of(request),
            action="api.token_refused" if raw else "api.unauthenticated",
            ip_address=client_ip(request),
            path=request.url.path,
            token_given=bool(raw),
        )
    if not raw:
        raise ApiProblem(
            401, [(None, "Send an API token: Authorization: Bearer <token>")], {"WWW-Authenticate": "Bearer"}
        )
    raise ApiProblem(
        401,
        [(None, "This API token is not valid: it may be mistyped, expired or revoked")],
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


Caller = Annotated[ApiCaller, Depends(api_caller)]


def _audit(session: Session, request: Request, caller: ApiCaller, action: str, **detail: Any) -> None:
    audit.record(
        session,
        now=now_of(request),
        action=f"api.{action}",
        actor_person_id=caller.principal.person_id,
        actor_label=caller.principal.email,
        ip_address=client_ip(request),
        token_id=caller.token_id,
        **detail,
    )


def _refuse(
    request: Request, caller: ApiCaller, status_code: int, message: str, *, field: str | None = None, **detail: Any
) -> ApiProblem:
    """Audit a refusal in a transaction of its own (the request's is rolled back) and return the error."""
    with transaction(request.app.state.session_factory) as session:
        _audit(session, request, caller, "refused", status=status_code, path=request.url.path, **detail)
    return ApiProblem(status_code, [(field, message)])


# --- The submission body, made from the form's own definition ------------------------------------------

ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: str) -> str:
    # JSON may carry a lone surrogate as an escape (\\ud800); it is not text and cannot be stored.
    if SURROGATE.search(value):
        raise ValueError("not valid Unicode text")
    return value


Text = Annotated[StrictStr, AfterValidator(_storable)]


def _is_yes_no(f: Field) -> bool:
    return f.options == YES_NO


def _json_type(f: Field) -> Any:
    if f.kind == "date":
        return Annotated[Text, Schema(pattern=ISO_DATE, json_schema_extra={"format": "date"})]
    if f.kind == "integer":
        return StrictInt
    if f.kind == "decimal":
        return Annotated[StrictFloat, AllowInfNan(False)]
    if f.kind == "checkboxes":
        return list[Text]
    if _is_yes_no(f):
        return StrictBool
    return Text


def _describe(f: Field) -> str:
    parts = [f.label + (f". {f.hint}" if f.hint else "")]
    if f.options and not _is_yes_no(f):
        parts.append("One of: " + ", ".join(f"{code} ({label})" for code, label in f.options))
    if f.name == "reasons":
        parts.append("Codes from the council's list of referral reasons")
    if f.when:
        parts.append(f"Required when {f.when[0]} is {' or '.join(f.when[1])}")
    return ". ".join(parts)


def _page_model(page: Page) -> type[BaseModel]:
    # Every field may be left out here so that the form itself says what is missing, in its own words;
    # the schema still lists the form's required fields for integrators.
    fields: dict[str, Any] = {
        f.name: (_json_type(f) | None, Schema(default=None, description=_describe(f))) for f in page.fields
    }
    required = [f.name for f in page.fields if f.required]
    config = ConfigDict(extra="forbid", title=f"Referral page: {page.title}", json_schema_extra={"required": required})
    return create_model(f"Referral{page.key.title()}Page", __config__=config, **fields)


PAGE_MODELS = {page.key: _page_model(page) for page in PAGES}

ReferralSubmission = create_model(
    "ReferralSubmission",
    __config__=ConfigDict(
        extra="forbid", json_schema_extra={"required": ["school_urn", "child_at_immediate_risk", *PAGE_MODELS]}
    ),
    school_urn=(Text, Schema(description="The URN of the child's school; the token's person must refer for it")),
    child_at_immediate_risk=(
        StrictBool,
        Schema(
            description="Is the child at immediate risk of significant harm? If so, do not refer: contact the "
            "children's front door (MASH) today. The clinic is a planning meeting, not a safeguarding response."
        ),
    ),
    **{
        key: (model | None, Schema(default=None, description=PAGES_BY_KEY[key].title))
        for key, model in PAGE_MODELS.items()
    },
)


def _form_answers(page: Page, given: BaseModel | None) -> dict[str, Any]:
    """The page's answers as a browser posts them: strings, dates in three parts, checkboxes as lists."""
    answers: dict[str, Any] = {}
    for f in page.fields:
        value = getattr(given, f.name) if given is not None else None
        if value is None:
            continue
        if f.kind == "date":
            year, month, day = value.split("-")
            answers |= {f"{f.name}-day": str(int(day)), f"{f.name}-month": str(int(month)), f"{f.name}-year": year}
        elif f.kind == "checkboxes":
            answers[f.name] = list(value)
        elif isinstance(value, bool):
            answers[f.name] = "yes" if value else "no"
        else:
            answers[f.name] = repr(value) if isinstance(value, float) else str(value)
    return answers


def _type_message(f: Field) -> str:
    if f.kind == "date":
        return f"Enter {f.called} as a date in the form YYYY-MM-DD, for example 2016-05-14"
    if f.kind in ("integer", "decimal"):
        return f"Enter {f.called} as {'a whole number' if f.kind == 'integer' else 'a number'}"
    if f.kind == "checkboxes":
        return f"Enter {f.called} as a list of codes"
    if _is_yes_no(f):
        return f"Enter {f.called} as true or false"
    return f"Enter {f.called} as text"


TOP_LEVEL_MESSAGES = {
    "school_urn": 'Enter the URN of the child\'s school as text, for example "900001"',
    "child_at_immediate_risk": "Say whether the child is at immediate risk of significant harm, as true or false",
}


def _problem(error: dict[str, Any]) -> tuple[str, str]:
    if error["type"] == "json_invalid":
        return "body", f"The request body is not valid JSON ({error.get('ctx', {}).get('error', 'unreadable')})"
    loc = [str(part) for part in error["loc"]]
    parts = loc[1:] if loc[:1] == ["body"] else loc
    if not parts:
        return "body", "Send the referral as a JSON object"
    top = parts[0]
    page = PAGES_BY_KEY.get(top)
    if page is None:
        return top, TOP_LEVEL_MESSAGES.get(top, f"'{top}' is not part of a referral")
    if len(parts) == 1:
        return top, f"Send the '{page.title}' page as a JSON object"
    f = next((f for f in page.fields if f.name == parts[1]), None)
    if f is None:
        return f"{top}.{parts[1]}", f"'{parts[1]}' is not a question on the '{page.title}' page"
    return f"{top}.{f.name}", _type_message(f)


def _validation_problems(errors: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    problems: dict[str, str] = {}
    for error in errors:
        field, message = _problem(error)
        problems.setdefault(field, message)  # one message a field, however many ways it was wrong
    return list(problems.items())


# --- Responses --------------------------------------------------------------------------------------


class ReferralLinks(BaseModel):
    self: str = Schema(description="This referral in the API")
    page: str = Schema(description="This referral's page for people")


class ReferralCreated(BaseModel):
    id: int
    reference: str
    status: str
    status_label: str
    links: ReferralLinks


class ReferralSummary(BaseModel):
    id: int
    reference: str
    status: str
    status_label: str
    school_urn: str
    submitted_at: datetime | None
    updated_at: datetime
    links: ReferralLinks


class ReferralList(BaseModel):
    referrals: list[ReferralSummary]


class StatusChange(BaseModel):
    from_status: str | None
    to_status: str
    status_label: str
    changed_at: datetime
    note: str | None = Schema(description="The question, reason or answer that came with the change, if any")


class ReferralDetail(ReferralSummary):
    school_name: str
    created_at: datetime
    child: dict[str, Any] | None
    family: dict[str, Any]
    reasons: dict[str, Any]
    concerns: dict[str, Any]
    education: dict[str, Any]
    send: dict[str, Any]
    agencies: dict[str, Any]
    voices: dict[str, Any]
    asks: dict[str, Any]
    consent: dict[str, Any]
    history: list[StatusChange]


def _links(request: Request, caller: ApiCaller, referral: Referral) -> ReferralLinks:
    base = settings_of(request).base_url
    page = "triage" if can_on_referral(caller.principal, "triage", referral) else "referrals"
    return ReferralLinks(self=f"{base}/api/v1/referrals/{referral.reference}", page=f"{base}/{page}/{referral.id}")


def _summary(request: Request, caller: ApiCaller, referral: Referral) -> dict[str, Any]:
    return {
        "id": referral.id,
        "reference": referral.reference,
        "status": referral.status,
        "status_label": LABELS[ReferralStatus(referral.status)],
        "school_urn": referral.school.urn,
        "submitted_at": referral.submitted_at,
        "updated_at": referral.updated_at,
        "links": _links(request, caller, referral),
    }


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _detail(request: Request, caller: ApiCaller, r: Referral) -> ReferralDetail:
    # The health and community-safety sections are shared per the sharing matrix only: never here.
    child = r.child
    return ReferralDetail(
        **_summary(request, caller, r),
        school_name=r.school.name,
        created_at=r.created_at,
        child=None
        if child is None
        else {
            "legal_first_name": child.legal_first_name,
            "legal_surname": child.legal_surname,
            "preferred_name": child.preferred_name,
            "date_of_birth": _day(child.date_of_birth),
            "year_group": child.year_group,
            "upn": child.upn,
        },
        family=r.family or {},
        reasons={"reasons": r.reasons, "reasons_other": r.reasons_other},
        concerns={
            "what_is_happening": r.what_is_happening,
            "strengths": r.strengths,
            "urgency": r.urgency,
            "urgency_reason": r.urgency_reason,
        },
        education={
            "attendance_percent": _number(r.attendance_percent),
            "suspensions_this_year": r.suspensions_this_year,
            "suspension_days_this_year": _number(r.suspension_days_this_year),
            "suspensions_this_half_term": r.suspensions_this_half_term,
            "permanent_exclusion": r.permanent_exclusion,
            "permanent_exclusion_on": _day(r.permanent_exclusion_on),
            "part_time_timetable": r.part_time_timetable or {},
        },
        send={
            "sen_status": r.sen_status,
            "primary_need": r.primary_need,
            "graduated_response_stage": r.graduated_response_stage,
            "interventions": r.interventions,
        },
        agencies={
            "social_care_statuses": r.social_care_statuses,
            "early_help": r.early_help or {},
            "agencies_involved": r.agencies_involved,
            "awaiting_feedback": r.awaiting_feedback,
        },
        voices={
            "voice_of_child": r.voice_of_child,
            "voice_of_parent": r.voice_of_parent,
            "aces_considered": r.aces_considered,
            "aces_notes": r.aces_notes,
        },
        asks={"asks_of_clinic": r.asks_of_clinic},
        consent={
            "consent_status": r.consent_status,
            "consent_given_by": r.consent_given_by,
            "consent_given_on": _day(r.consent_given_on),
            "lawful_basis": r.lawful_basis,
            "lawful_basis_reason": r.lawful_basis_reason,
            "lawful_basis_decided_by": r.lawful_basis_decided_by,
            "consent_withdrawn_at": r.consent_withdrawn_at.isoformat() if r.consent_withdrawn_at else None,
        },
        history=[
            StatusChange(
                from_status=c.from_status,
                to_status=c.to_status,
                status_label=LABELS[ReferralStatus(c.to_status)],
                changed_at=c.changed_at,
                note=c.note,
            )
            for c in r.history
        ],
    )


# --- Endpoints ------------------------------------------------------------------------------------


class _FormProblems(Exception):
    """Raised inside the submission's transaction so that nothing of it is kept."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems


class _NotTheirSchool(Exception):
    pass


IMMEDIATE_RISK = (
    "Do not refer a child at immediate risk of significant harm: contact the children's front door (MASH) today, "
    "as your school's safeguarding policy says. No referral was made."
)


def _school_of(session: Session, principal: Principal, urn: str) -> School:
    """The school with this URN if the principal refers for it; an unknown URN is refused the same way."""
    try:
        school = referrals.get_school_by_urn(session, urn)
    except NotFound:
        raise _NotTheirSchool() from None
    if school.id not in principal.school_ids:
        raise _NotTheirSchool()
    return school


def _make_referral(
    session: Session, request: Request, caller: ApiCaller, *, school: School, submission: Any, now: datetime
) -> ReferralCreated:
    person_id = caller.principal.person_id
    referral = referrals.start_referral(session, school_id=school.id, referrer_id=person_id, now=now)
    problems = []
    for page in PAGES:
        answers = _form_answers(page, getattr(submission, page.key))
        result = referrals.save_page(
            session, referral=referral, key=page.key, answers=answers, now=now, person_id=person_id
        )
        problems += [(f"{page.key}.{name}", message) for name, message in result.errors.items()]
    if problems:
        raise _FormProblems(problems)
    referrals.submit_referral(session, referral=referral, now=now, person_id=person_id)
    queue_referral_submitted(session, mail=mail_context(request), now=now, referral=referral)
    _audit(session, request, caller, "referral_submitted", record_type="referral", record_id=referral.id)
    return ReferralCreated(
        id=referral.id,
        reference=referral.reference,
        status=referral.status,
        status_label=LABELS[ReferralStatus(referral.status)],
        links=_links(request, caller, referral),
    )


@router.post(
    "/referrals",
    status_code=201,
    response_model=ReferralCreated,
    responses={403: {"model": ApiErrors, "description": "The token's person does not refer for this school"}},
    summary="Submit a referral",
)
def submit_referral(
    request: Request, session: DbSession, caller: Caller, submission: ReferralSubmission
) -> ReferralCreated:
    """Check every page as the form does; if all is well, submit it for triage and email the school and EIPs.

    All or nothing: on any problem the answer is 422 with every problem found, and nothing is saved.
    """
    if not can(caller.principal, "referral.create"):
        raise _refuse(request, caller, 403, "This token's person cannot make referrals")
    now = now_of(request)
    created = None
    try:
        with session.begin():
            school = _school_of(session, caller.principal, submission.school_urn)
            if submission.child_at_immediate_risk:
                # As on the pages: no referral, and a record that we said so.
                _audit(session, request, caller, "immediate_risk_shown", record_type="school", record_id=school.id)
            else:
                created = _make_referral(session, request, caller, school=school, submission=submission, now=now)
    except _NotTheirSchool:
        message = f"This token cannot make referrals for the school with URN {submission.school_urn[:20]}"
        raise _refuse(
            request, caller, 403, message, field="school_urn", school_urn=submission.school_urn[:20]
        ) from None
    except _FormProblems as exc:
        with transaction(request.app.state.session_factory) as audit_session:
            # Which fields were wrong, never what was typed in them.
            _audit(audit_session, request, caller, "referral_rejected", fields=[field for field, _ in exc.problems])
        raise ApiProblem(422, exc.problems) from None
    except Invalid as exc:
        problems = exc.problems.items() if isinstance(exc.problems, dict) else ((None, p) for p in exc.problems)
        raise ApiProblem(422, problems) from None
    except Conflict as exc:
        raise ApiProblem(409, [(None, str(exc))]) from None
    if created is None:
        raise ApiProblem(422, [("child_at_immediate_risk", IMMEDIATE_RISK)])
    request_delivery()
    return created


@router.get("/referrals", response_model=ReferralList, summary="List the referrals this token may see")
def list_referrals(request: Request, session: DbSession, caller: Caller) -> ReferralList:
    """A school's submitted referrals for its referrers; the area's for an EIP. Most recently changed first."""
    with session.begin():
        visible = referrals.find_referrals_visible_to(session, caller.principal)
        listed = ReferralList(referrals=[ReferralSummary(**_summary(request, caller, r)) for r in visible])
        _audit(session, request, caller, "referrals_listed", references=[r.reference for r in visible])
    return listed


@router.get(
    "/referrals/{reference}",
    response_model=ReferralDetail,
    responses={404: {"model": ApiErrors, "description": "No such referral, or not one this token may see"}},
    summary="One referral: its answers and status history",
)
def read_referral(request: Request, session: DbSession, caller: Caller, reference: str) -> ReferralDetail:
    not_found = "There is no referral with this reference that this token may see"
    with session.begin():
        try:
            found = referrals.get_referral_by_reference(session, reference)
            view = case_view(caller.principal, found)
            if view is None or not view.full:
                raise Forbidden("referral.view")  # agencies read only their sections, on the portal
            referral = access_referral(session, caller.principal, found.id, "view")
        except (NotFound, Forbidden):
            referral = None
        if referral is not None:
            detail = _detail(request, caller, referral)
            _audit(session, request, caller, "referral_viewed", record_type="referral", record_id=referral.id)
    if referral is None:
        # The same answer whether it does not exist or is not theirs, so existence is not revealed.
        raise _refuse(request, caller, 404, not_found, reference=reference[:20])
    return detail
