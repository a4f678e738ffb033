"""Sign in by emailed link (request, confirm) and sign out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from agencies.auth import LinkNotUsable, RateLimited, check_link, confirm_sign_in, request_sign_in, sign_out
from agencies.models import Person
from caseconf import audit
from caseconf.db import transaction
from caseconf.validation import is_email_address
from flows.triggers import request_delivery
from notifications.emails import queue_sign_in_link
from web.deps import (
    SESSION_COOKIE,
    DbSession,
    Viewer,
    client_ip,
    mail_context,
    now_of,
    render,
    safe_next_path,
    settings_of,
)
from web.security import token_attempts_blocked

router = APIRouter()


def too_many_attempts(request: Request, wait_seconds: int) -> Response:
    """The GOV.UK page for an address that has sent too many tokens that do not work (429, Retry-After)."""
    response = render(request, "errors/too_many.html", status_code=429, minutes=max(1, -(-wait_seconds // 60)))
    response.headers["Retry-After"] = str(wait_seconds)
    return response


def record_refusal(request: Request, action: str, *, email: str = "", **detail: str) -> None:
    """Audit a refused sign-in step in a transaction of its own (the request's was rolled back)."""
    with transaction(request.app.state.session_factory) as session:
        audit.record(
            session,
            now=now_of(request),
            action=action,
            actor_label=email.strip().lower(),
            ip_address=client_ip(request),
            **detail,
        )


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None, signed_out: bool = False) -> Response:
    return render(request, "auth/sign_in.html", next=safe_next_path(next), email="", errors={}, signed_out=signed_out)


@router.post("/sign-in")
def request_link(request: Request, session: DbSession, email: str = Form(""), next: str = Form("/")) -> Response:
    settings = settings_of(request)
    email = email.strip()
    next_path = safe_next_path(next)
    error = None
    if not email:
        error = "Enter your email address"
    elif not is_email_address(email):
        error = "Enter an email address in the correct format, like name@example.org"
    if error:
        return render(
            request, "auth/sign_in.html", status_code=400, next=next_path, email=email, errors={"email": error}
        )
    now = now_of(request)
    try:
        with session.begin():
            issued = request_sign_in(
                session,
                email=email,
                now=now,
                valid_for=timedelta(minutes=settings.sign_in_token_minutes),
                per_hour=settings.sign_in_requests_per_hour,
                ip_address=client_ip(request),
                next_path=next_path,
            )
            if issued:
                queue_sign_in_link(
                    session,
                    mail=mail_context(request),
                    now=now,
                    token_id=issued.token_id,
                    raw_token=issued.raw_token,
                    recipient=issued.person.email,
                    name=issued.person.name,
                    valid_minutes=settings.sign_in_token_minutes,
                )
    except RateLimited:
        record_refusal(request, "sign_in.rate_limited", email=email)
        response = render(request, "auth/too_many.html", status_code=429)
        response.headers["Retry-After"] = "3600"
        return response
    if issued:
        request_delivery()
    return RedirectResponse("/sign-in/check-email", status_code=303)


@router.get("/sign-in/check-email")
def check_email(request: Request) -> Response:
    return render(request, "auth/check_email.html", valid_minutes=settings_of(request).sign_in_token_minutes)


@router.get("/sign-in/confirm")
def confirm_page(request: Request, session: DbSession, token: str = "") -> Response:  # not a password  # nosec B107
    """Shows who the link is for; only the button's POST uses the link (mail scanners open GETs)."""
    if wait := token_attempts_blocked(request, kind="sign_in"):
        return too_many_attempts(request, wait)
    try:
        link = check_link(session, raw_token=token, now=now_of(request))
    except LinkNotUsable as exc:
        record_refusal(request, "sign_in.link_refused", reason=str(exc))
        return render(request, "auth/link_problem.html", status_code=400, problem=str(exc))
    person = session.get(Person, link.person_id)
    return render(request, "auth/confirm.html", token=token, person_name=person.name if person else "")


@router.post("/sign-in/confirm")
def confirm(request: Request, session: DbSession, token: str = Form("")) -> Response:
    settings = settings_of(request)
    if wait := token_attempts_blocked(request, kind="sign_in"):
        return too_many_attempts(request, wait)
    try:
        with session.begin():
            raw_session, link = confirm_sign_in(
                session, raw_token=token, now=now_of(request), ip_address=client_ip(request)
            )
            next_path = link.next_path
    except LinkNotUsable as exc:
        record_refusal(request, "sign_in.link_refused", reason=str(exc))
        return render(request, "auth/link_problem.html", status_code=400, problem=str(exc))
    response = RedirectResponse(safe_next_path(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, raw_session, httponly=True, samesite="lax", secure=settings.secure_cookies, path="/"
    )
    return response


@router.get("/sign-out")
def sign_out_page(request: Request, viewer: Viewer) -> Response:
    """Signing out changes state, so it takes a button (a POST); this page offers one."""
    if viewer is None:
        return RedirectResponse("/sign-in", status_code=303)
    return render(request, "auth/sign_out.html")


@router.post("/sign-out")
def sign_out_now(request: Request, session: DbSession) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        with session.begin():
            sign_out(session, raw_session=raw, now=now_of(request), ip_address=client_ip(request))
    response = RedirectResponse("/sign-in?signed_out=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
