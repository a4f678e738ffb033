"""The web application factory. Nothing is built at import time."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from urllib.parse import unquote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, PrefixLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caseconf import audit
from caseconf.clock import Clock, SystemClock, london_text
from caseconf.db import make_engine, make_session_factory, transaction
from caseconf.errors import Conflict, Forbidden, NotFound
from caseconf.paths import FRONTEND_DIR, frontend_installed
from caseconf.settings import Settings
from caseconf.validation import has_control_characters
from web.deps import NotSignedIn, client_ip, flush_accesses, render, sign_in_url
from web.routers import (
    actions,
    admin,
    api,
    auth,
    contributions,
    documents,
    health,
    home,
    meeting_admin,
    meeting_room,
    minutes,
    outbox,
    school,
    tas,
    triage,
)
from web.routers.audit import router as audit_router
from web.routers.data_protection import router as data_protection_router
from web.routers.invitations import router as invitations_router
from web.routers.meetings import router as meetings_router
from web.security import API_PREFIX, CSRF_COOKIE, CsrfRefused, check_csrf, csrf_cookie_value, security_headers

log = logging.getLogger("caseconf.web")

WEB_DIR = Path(__file__).resolve().parent
MAX_FORM_BYTES = 2 * 1024 * 1024  # far more than any form's text; uploads have their own limits
UPLOAD_PATH = re.compile(r"/referrals/[0-9]+/documents")


def _without_nul(value: object) -> object:
    """Every value a page prints loses any NUL byte: a refused form shows again what was typed, and a NUL
    in it must not reach the browser."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(WEB_DIR / "templates"),
                PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja", "templates")}),
            ]
        ),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        finalize=_without_nul,
    )
    env.filters["london"] = london_text
    return Jinja2Templates(env=env)


def create_app(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    async def csrf_protect(request: Request) -> None:
        await check_csrf(request, settings.secret())

    app = FastAPI(
        title="caseconf",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",  # describes the JSON API only; pages are left out of it
        dependencies=[Depends(csrf_protect)],
    )
    app.state.settings = settings
    app.state.session_factory = session_factory or make_session_factory(make_engine(settings.database_url))
    app.state.clock = clock or SystemClock()
    app.state.templates = _templates()

    @app.middleware("http")
    async def headers_and_csrf_cookie(request: Request, call_next):
        if has_control_characters(request.url.path + unquote(request.url.query)):
            # No address of ours holds a NUL or a line break: refused before it reaches a handler or the database.
            if request.url.path.startswith(API_PREFIX):
                response = api.ApiProblem(400, [(None, "The address holds characters no address may hold")]).response()
            else:
                response = render(request, "errors/bad_request.html", status_code=400)
            response.headers.update(security_headers(request.url.path))
            return response
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES and not UPLOAD_PATH.fullmatch(request.url.path):
            # Only document uploads are big; any other body this large is refused before it is read.
            if request.url.path.startswith(API_PREFIX):
                message = f"The request body is too large: at most {MAX_FORM_BYTES // (1024 * 1024)} MB"
                response = api.ApiProblem(413, [("body", message)]).response()
            else:
                response = render(request, "errors/too_large.html", status_code=413)
            response.headers.update(security_headers(request.url.path))
            return response
        had_cookie = CSRF_COOKIE in request.cookies
        cookie_value = csrf_cookie_value(request)
        response = await call_next(request)
        for name, value in security_headers(request.url.path).items():
            response.headers.setdefault(name, value)
        if not had_cookie:
            response.set_cookie(
                CSRF_COOKIE, cookie_value, httponly=True, samesite="lax", secure=settings.secure_cookies
            )
        return response

    app.add_middleware(AuditAccesses)  # outermost: sees every note, even from the middleware above

    app.exception_handler(NotSignedIn)(_not_signed_in)
    app.exception_handler(Forbidden)(_forbidden)
    app.exception_handler(NotFound)(_not_found)
    app.exception_handler(Conflict)(_conflict)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_bad_request)
    app.exception_handler(Exception)(_unexpected)

    if frontend_installed():
        app.mount("/assets", StaticFiles(directory=FRONTEND_DIR / "assets"), name="assets")
        app.mount("/static/govuk", StaticFiles(directory=FRONTEND_DIR), name="govuk")
    else:
        log.warning("GOV.UK Frontend is not installed (run: npm ci); pages will be unstyled")
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    for router in (
        health.router,
        auth.router,
        home.router,
        admin.router,
        school.router,
        triage.router,
        meeting_admin.router,
        documents.router,
        api.router,
    ):
        app.include_router(router, include_in_schema=router is api.router)
    app.include_router(meetings_router, include_in_schema=False)
    app.include_router(invitations_router, include_in_schema=False)
    app.include_router(audit_router, include_in_schema=False)
    app.include_router(data_protection_router, include_in_schema=False)
    for router in (meeting_room.router, minutes.router, actions.router, contributions.router, tas.router):
        app.include_router(router, include_in_schema=False)
    if settings.uses_mail_catcher:
        app.include_router(outbox.router, include_in_schema=False)
    return app


class AuditAccesses:
    """After each response, write what the request noted it read or changed (caseconf.audit), with its status,
    in a transaction of its own. One collector per request, set before anything below runs, so notes made
    in sync endpoints' threads and in other middleware's tasks land in it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        collector, token = audit.start_collecting(
            ip_address=client_ip(request),
            method=request.method,
            path=request.url.path,
            user_agent=request.headers.get("user-agent", ""),
        )
        status: list[int] = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            status.append(500)
            raise
        finally:
            audit.stop_collecting(token)
            try:
                factory = scope["app"].state.session_factory
                await run_in_threadpool(flush_accesses, factory, scope, collector, status[0] if status else None)
            except Exception:
                log.exception("Could not write the audit of %s %s", scope.get("method"), scope.get("path"))


async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
    return RedirectResponse(sign_in_url(request.url.path), status_code=303)


async def _forbidden(request: Request, exc: Forbidden) -> Response:
    principal = getattr(request.state, "principal", None)
    is_csrf = isinstance(exc, CsrfRefused)
    with transaction(request.app.state.session_factory) as session:
        audit.record(
            session,
            now=request.app.state.clock.now(),
            action="csrf.refused" if is_csrf else "access.refused",
            actor_person_id=principal.person_id if principal else None,
            actor_label=principal.email if principal else "",
            # The record refused, when the access module named one: the refusal then shows on its access log.
            record_type=getattr(exc, "record_type", None),
            record_id=getattr(exc, "record_id", None),
            ip_address=client_ip(request),
            path=request.url.path,
            method=request.method,
        )
    template = "errors/csrf.html" if is_csrf else "errors/forbidden.html"
    return render(request, template, status_code=403)


async def _not_found(request: Request, exc: NotFound) -> Response:
    return render(request, "errors/not_found.html", status_code=404)


async def _conflict(request: Request, exc: Conflict) -> Response:
    """Someone (or another tab) changed the record first; nothing of this request was saved."""
    return render(request, "errors/conflict.html", status_code=409, problem=str(exc))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if request.url.path.startswith(API_PREFIX):
        message = "No such endpoint" if exc.status_code in (404, 405) else str(exc.detail)
        return JSONResponse({"errors": [{"field": None, "message": message}]}, status_code=exc.status_code)
    if exc.status_code == 404:
        return render(request, "errors/not_found.html", status_code=404)
    if exc.status_code == 405:
        return render(request, "errors/not_found.html", status_code=405)
    return render(request, "errors/problem.html", status_code=exc.status_code, reference=None)


async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
    return render(request, "errors/bad_request.html", status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    reference = secrets.token_hex(4).upper()
    log.exception("Unexpected error %s on %s %s", reference, request.method, request.url.path)
    if request.url.path.startswith(API_PREFIX):  # the API answers in JSON, even here
        message = f"Something went wrong on our side. Nothing was saved. Quote reference {reference}."
        response = JSONResponse({"errors": [{"field": None, "message": message}]}, status_code=500)
    else:
        response = render(request, "errors/problem.html", status_code=500, reference=reference)
    # This handler runs outside the middleware that adds these to every other response.
    response.headers.update(security_headers(request.url.path))
    return response
