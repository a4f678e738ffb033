"""Request-scoped helpers: the database session, who is signed in, and page rendering."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from agencies.auth import person_for_session
from caseconf import audit
from caseconf.db import transaction
from caseconf.errors import CaseconfError
from caseconf.settings import Settings
from caseconf.validation import has_control_characters
from meetings.access import Principal, access_referral, can, principal_for
from notifications.emails import MailContext
from web.security import csrf_token

SESSION_COOKIE = "caseconf_session"


class NotSignedIn(CaseconfError):
    pass


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def now_of(request: Request) -> datetime:
    return request.app.state.clock.now()


def mail_context(request: Request) -> MailContext:
    """Where emails queued during this request come from and link to."""
    return MailContext.from_settings(settings_of(request))


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def current_principal(request: Request) -> Principal | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    # A session of its own, so the handler's session starts with no transaction open.
    with request.app.state.session_factory() as session:
        person = person_for_session(session, raw_session=raw, now=now_of(request))
        principal = principal_for(person, now=now_of(request)) if person else None
    request.state.principal = principal
    return principal


Viewer = Annotated[Principal | None, Depends(current_principal)]


def signed_in(viewer: Viewer) -> Principal:
    if viewer is None:
        raise NotSignedIn()
    return viewer


SignedIn = Annotated[Principal, Depends(signed_in)]


def read_referral(request: Request, session: Session, viewer: Principal | None, referral_id: int, action: str):
    """Load a referral for a page that shows it. The access module notes the read; the audit middleware
    writes it after the response (see caseconf.audit)."""
    return access_referral(session, viewer, referral_id, action)


def note_listed(viewer: Principal | None, record_type: str, ids) -> None:
    """Note that a page showed these records in a list (audited after the response with their ids)."""
    audit.note_listed(
        record_type,
        list(ids),
        actor_person_id=viewer.person_id if viewer else None,
        actor_label=viewer.email if viewer else "",
    )


def flush_accesses(session_factory, scope, collector: audit.AccessCollector, status: int | None) -> None:
    """Write what one request read or changed, in a transaction of its own (the audit middleware calls this)."""
    if not collector.notes:
        return
    request = Request(scope)
    principal = scope.get("state", {}).get("principal")
    with transaction(session_factory) as session:
        audit.flush_accesses(
            session,
            collector,
            now=now_of(request),
            method=request.method,
            path=request.url.path,
            status=status,
            ip_address=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            actor_person_id=principal.person_id if principal else None,
            actor_label=principal.email if principal else "",
        )


def safe_next_path(value: str | None) -> str:
    """Only paths on this site; anything else (//evil.example, https://…, oversized) goes home."""
    if (
        not value
        or len(value) > 500
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or has_control_characters(value)
    ):
        return "/"
    return value


def sign_in_url(path: str) -> str:
    return "/sign-in" if path == "/" else f"/sign-in?next={quote(path, safe='/')}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = settings_of(request)
    context.setdefault("principal", getattr(request.state, "principal", None))
    context["shows_meetings"] = can(context["principal"], "invitations.view")
    context["shows_actions"] = can(context["principal"], "actions.track")
    rehearsal_time = getattr(request.app.state.clock, "rehearsal_time", None)
    context["rehearsal_time"] = rehearsal_time() if rehearsal_time else None
    context["csrf_token"] = csrf_token(request, settings.secret())
    context["uses_mail_catcher"] = settings.uses_mail_catcher
    context["organisation_name"] = settings.organisation_name
    context["current_path"] = request.url.path
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status_code)
