"""CSRF tokens and security headers for every response."""

from __future__ import annotations

from fastapi import Request

from agencies.auth import token_retry_after
from caseconf import audit
from caseconf.db import transaction
from caseconf.errors import Forbidden
from caseconf.security import new_token, sign, signature_matches

CSRF_COOKIE = "caseconf_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/"


class CsrfRefused(Forbidden):
    """A state-changing request without a valid form token."""


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def security_headers(path: str) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if not path.startswith(("/assets/", "/static/")):
        headers["Cache-Control"] = "no-store"
    return headers


def csrf_cookie_value(request: Request) -> str:
    """The browser's CSRF secret, created on its first visit (the middleware sets the cookie)."""
    value = getattr(request.state, "csrf_cookie", None)
    if value is None:
        value = request.cookies.get(CSRF_COOKIE) or new_token()
        request.state.csrf_cookie = value
    return value


def csrf_token(request: Request, secret: str) -> str:
    return sign(secret, csrf_cookie_value(request))


async def check_csrf(request: Request, secret: str) -> None:
    """Every state-changing request must carry a form token matching the browser's cookie."""
    if request.method in SAFE_METHODS or request.url.path.startswith(API_PREFIX):
        return  # the JSON API authenticates each request with a bearer token, not a cookie
    cookie = request.cookies.get(CSRF_COOKIE)
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    if not cookie or not isinstance(submitted, str) or not signature_matches(secret, cookie, submitted):
        raise CsrfRefused()


def token_attempts_blocked(request: Request, *, kind: str) -> int | None:
    """Seconds to wait when this address has sent too many refused tokens lately (the refusal is audited).

    Every endpoint that takes a token asks this first: the sign-in link pages, the calendar feed and the
    JSON API. None means go ahead.
    """
    ip_address = request.client.host if request.client else None
    now = request.app.state.clock.now()
    with transaction(request.app.state.session_factory) as session:
        wait = token_retry_after(session, ip_address=ip_address, now=now)
        if wait is not None:
            audit.record(
                session,
                now=now,
                action="token.rate_limited",
                ip_address=ip_address,
                kind=kind,
                path=request.url.path,
                retry_after=wait,
            )
    return wait
