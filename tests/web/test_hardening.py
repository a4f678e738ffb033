"""Hardening, proved through the running app (docs/security.md lists each point and its test).

CSRF on every state-changing route, security headers on every kind of response, cookie attributes, rate
limits on every endpoint that takes a token, tokens hashed at rest, errors that show a reference number and
nothing of the code or the database, templates with nothing the CSP would have to allow, and PDFs that fetch
nothing.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from agencies import auth
from agencies.api_tokens import create_api_token
from agencies.models import ApiToken, Person, SignInToken, WebSession
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from caseconf.schema import load_metadata
from caseconf.security import token_hash
from meetings import documents, invitations, referrals
from meetings.demo import load_demo
from tests.conftest import free_port
from tests.factories import DEMO_MONDAY
from tests.unit.test_document_types import make_pdf, make_png
from tests.web.conftest import csrf_from, latest_link, sign_in
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin@kestrelford.example.org"
REFERRER = "dsl@alderbrook.example.org"
REQUIRED_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")
LEAKS = ("Traceback", "sqlalchemy", "SELECT", "no_such_table", "Secret-Internal-Detail", 'File "')


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())


def row_counts(session_factory) -> dict[str, int]:
    """Rows in every table but the audit log (which records each refusal)."""
    with session_factory() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in load_metadata().sorted_tables
            if table.name != "audit_event"
        }


def actions(session_factory, action: str) -> list[AuditEvent]:
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- CSRF: every state-changing route ---------------------------------------------------------------------------


def state_changing_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every POST/PUT/PATCH/DELETE route the app serves: each included router's routes
    (their paths carry the router's prefix), and any route added to the app itself."""
    found = set()
    for route in app.routes:
        routes = getattr(getattr(route, "original_router", None), "routes", [route])
        for rt in routes:
            for method in getattr(rt, "methods", None) or ():
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    found.add((method, rt.path))
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_the_route_list_is_complete(app):
    routes = state_changing_routes(app)
    assert ("POST", "/sign-in") in routes
    assert ("POST", "/referrals/{referral_id}/documents") in routes
    assert ("POST", "/meetings/{meeting_id}/room/end") in routes
    assert ("POST", "/api/v1/referrals") in routes
    assert len(routes) > 40


def test_every_state_changing_request_without_a_valid_token_is_refused_and_changes_nothing(
    app, client, session_factory, demo, settings
):
    sign_in(client, session_factory, ADMIN)
    page = client.get("/")
    assert page.status_code == 200
    good = csrf_from(page.text)
    stranger = TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50001))
    other_browsers = csrf_from(stranger.get("/sign-in").text)  # valid, but for another browser's cookie
    assert other_browsers != good
    before = row_counts(session_factory)
    refused_before = len(actions(session_factory, "csrf.refused"))
    checked = 0
    for method, path in state_changing_routes(app):
        if path.startswith("/api/"):
            continue  # bearer tokens, not cookies: see test_the_api_ignores_the_browser_session
        url = concrete(path)
        for data in ({}, {"csrf_token": "0" * 64}, {"csrf_token": other_browsers}, {"csrf_token": ""}):
            response = client.request(method, url, data={**data, "reply": "accept", "email": ADMIN})
            assert response.status_code == 403, (method, path, data, response.status_code)
            assert "<h1" in response.text and "Traceback" not in response.text
        checked += 1
    assert checked > 40
    assert row_counts(session_factory) == before
    assert len(actions(session_factory, "csrf.refused")) == refused_before + 4 * checked
    # The same request with the page's token is not refused for CSRF (here: the sign-out it asks for).
    assert client.post("/sign-out", data={"csrf_token": good}).status_code == 303


def test_the_api_ignores_the_browser_session(client, session_factory, demo):
    sign_in(client, session_factory, REFERRER)
    before = row_counts(session_factory)
    listed = client.get("/api/v1/referrals")
    assert listed.status_code == 401 and listed.headers["content-type"].startswith("application/json")
    submitted = client.post("/api/v1/referrals", json={"school_urn": "900001"})
    assert submitted.status_code == 401
    assert row_counts(session_factory) == before


# --- Security headers on every kind of response --------------------------------------------------------------


def check_headers(response, *, kind: str) -> None:
    for name in REQUIRED_HEADERS:
        assert name in response.headers, (kind, name)
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, kind
    assert response.headers["X-Content-Type-Options"] == "nosniff", kind
    assert response.headers["Referrer-Policy"] == "no-referrer", kind
    if "sandbox" not in csp:  # a download carries its own, stricter policy
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, kind
    if response.headers.get("content-type", "").startswith("text/html"):
        body = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), f"inline script on the {kind} page"
        assert not re.search(r"\sstyle=|\son[a-z]+=|javascript:", body, re.IGNORECASE), kind


@pytest.fixture
def stored_document(session_factory, settings, clock, demo) -> int:
    with transaction(session_factory) as session:
        referrer = session.scalar(select(Person).where(Person.email == REFERRER))
        school_id = referrer.grants[0].school_id
        referral = referrals.start_referral(session, school_id=school_id, referrer_id=referrer.id, now=clock.now())
        document = documents.store_document(
            session,
            referral=referral,
            filename='<script>alert(1)</script>"\r\nX-Evil: 1.pdf',
            data=make_pdf(),
            description="",
            uploaded_by_id=referrer.id,
            now=clock.now(),
            storage_dir=settings.documents_dir,
            max_file_bytes=10_000_000,
            max_referral_bytes=30_000_000,
        )
        return document.id


def test_every_kind_of_response_carries_the_security_headers(app, client, session_factory, settings, stored_document):
    @app.get("/test-only/boom")
    def boom():
        raise RuntimeError("Secret-Internal-Detail")

    kinds = {
        "page": client.get("/sign-in"),
        "not found": client.get("/no-such-page"),
        "forbidden": client.post("/sign-in", data={"email": ADMIN}),
        "method not allowed": client.put("/sign-in"),
        "too large": client.post("/sign-in", content=b"x" * 10, headers={"content-length": str(3 * 1024 * 1024)}),
        "static file": client.get("/static/app.css"),
        "api json": client.get("/api/v1/referrals"),
        "api schema": client.get("/api/openapi.json"),
        "redirect": client.get("/sign-out"),
        "health": client.get("/health"),
    }
    assert kinds["page"].status_code == 200
    assert kinds["not found"].status_code == 404
    assert kinds["forbidden"].status_code == 403
    assert kinds["method not allowed"].status_code == 405
    assert kinds["too large"].status_code == 413
    assert kinds["static file"].status_code == 200
    assert kinds["api json"].status_code == 401
    assert kinds["redirect"].status_code == 303
    sign_in(client, session_factory, REFERRER)
    kinds["document download"] = download = client.get(f"/documents/{stored_document}")
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as crashing:
        kinds["server error"] = crashing.get("/test-only/boom")
    assert kinds["server error"].status_code == 500
    for kind, response in kinds.items():
        check_headers(response, kind=kind)
    # Downloads: never inline, never sniffed, never HTML, the name made safe (RFC 6266 / 5987).
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''" in disposition
    assert "\r" not in disposition and "\n" not in disposition and "<script>" not in disposition
    assert download.headers["content-type"] == "application/pdf"
    assert "X-Evil" not in download.headers


def test_every_download_route_says_attachment():
    """Each Content-Disposition the routers set is content_disposition() (attachment, RFC 5987 filename*) or a
    literal attachment; the one inline answer is the calendar feed, which is text/calendar, never HTML."""
    found = []
    for path in sorted((ROOT / "web" / "routers").glob("*.py")):
        for line in path.read_text().splitlines():
            if '"Content-Disposition":' in line:
                value = line.split('"Content-Disposition":', 1)[1].strip()
                found.append(value)
                assert value.startswith(("content_disposition(", "f'attachment;", "'attachment;")) or (
                    path.name == "invitations.py" and value.startswith("'inline; filename=\"meetings.ics\"'")
                ), f"{path.name}: {value}"
    assert len(found) >= 5
    from web.routers.documents import content_disposition

    header = content_disposition('r\u00e9sum\u00e9 "<x>"\r\nX-Evil: 1.pdf')
    assert header.startswith('attachment; filename="') and "filename*=UTF-8''r%C3%A9sum%C3%A9" in header
    assert "\r" not in header and "\n" not in header and "X-Evil: 1.pdf\"" in header  # one header, quoted


# --- Cookies ---------------------------------------------------------------------------------------------------


def set_cookies(response) -> dict[str, str]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        found[header.split("=", 1)[0]] = header
    return found


def cookie_flags(settings, session_factory, clock, base_url: str) -> dict[str, str]:
    app = create_app(settings, session_factory=session_factory, clock=clock)
    with TestClient(app, base_url=base_url, follow_redirects=False, client=("127.0.0.1", 50002)) as client:
        page = client.get("/sign-in")
        cookies = set_cookies(page)
        asked = client.post("/sign-in", data={"email": ADMIN, "csrf_token": csrf_from(page.text)})
        if base_url.startswith("http://") and settings.secure_cookies:
            # Plain http off this machine: the browser keeps the Secure cookie to itself, so nothing works.
            assert asked.status_code == 403
            return cookies
        assert asked.status_code == 303
        link = latest_link(session_factory, ADMIN, base=settings.base_url)
        confirm = client.get(link.removeprefix(settings.base_url))
        token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
        signed_in = client.post("/sign-in/confirm", data={"token": token, "csrf_token": csrf_from(confirm.text)})
        assert signed_in.status_code == 303
        cookies.update(set_cookies(signed_in))
    return cookies


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [("http://127.0.0.1:8000", False), ("https://caseconf.example.org", True), ("http://caseconf.lan", True)],
)
def test_session_and_csrf_cookies_are_httponly_samesite_and_secure_off_this_machine(
    settings, session_factory, clock, demo, base_url, secure
):
    settings = settings.model_copy(update={"base_url": base_url, "secret_key": "k" * 40})
    assert settings.secure_cookies is secure
    cookies = cookie_flags(settings, session_factory, clock, base_url)
    assert set(cookies) == (
        {"caseconf_csrf"} if base_url == "http://caseconf.lan" else {"caseconf_csrf", "caseconf_session"}
    )
    for name, header in cookies.items():
        flags = [part.strip().lower() for part in header.split(";")]
        assert "httponly" in flags, name
        assert "samesite=lax" in flags, name
        assert ("secure" in flags) is secure, (name, header)


# --- Rate limits on every endpoint that takes a token ----------------------------------------------------------


def test_sign_in_links_that_do_not_work_are_rate_limited_per_address(app, client, session_factory, clock, people):
    for _ in range(auth.TOKEN_FAILURES_ALLOWED):
        assert client.get("/sign-in/confirm?token=guess").status_code == 400
    refused = client.get("/sign-in/confirm?token=another-guess")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= auth.TOKEN_FAILURE_WINDOW.total_seconds() + 1
    assert "Too many attempts" in refused.text
    check_headers(refused, kind="429")
    csrf = csrf_from(client.get("/sign-in").text)
    posted = client.post("/sign-in/confirm", data={"token": "guess", "csrf_token": csrf})
    assert posted.status_code == 429
    assert len(actions(session_factory, "token.rate_limited")) == 2
    # Even a good link is refused from this address for now; another address is not affected.
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=("10.0.0.7", 1)) as other:
        page = other.get("/sign-in")
        other.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
        link = latest_link(session_factory, people["eip"]).removeprefix("http://127.0.0.1:8000")
        assert client.get(link).status_code == 429
        assert other.get(link).status_code == 200
        # Once the window has passed, the address may try again.
        clock.advance(minutes=16)
        page = other.get("/sign-in")
        other.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
        fresh = latest_link(session_factory, people["eip"]).removeprefix("http://127.0.0.1:8000")
        assert fresh != link
        assert client.get(fresh).status_code == 200


def test_calendar_feed_addresses_that_do_not_work_are_rate_limited(client, session_factory, clock, people):
    with transaction(session_factory) as session:
        person = session.scalar(select(Person).where(Person.email == people["eip"]))
        feed = invitations.replace_feed_token(session, person=person, now=clock.now())
    assert client.get(f"/calendar/{feed}.ics").status_code == 200
    for n in range(auth.TOKEN_FAILURES_ALLOWED):
        assert client.get(f"/calendar/guess{n}.ics").status_code == 404
    refused = client.get(f"/calendar/{feed}.ics")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    check_headers(refused, kind="feed 429")
    assert len(actions(session_factory, "calendar_feed.refused")) == auth.TOKEN_FAILURES_ALLOWED
    assert [e.detail["kind"] for e in actions(session_factory, "token.rate_limited")] == ["calendar_feed"]


def test_api_tokens_that_do_not_work_are_rate_limited(client, session_factory, clock, people):
    with transaction(session_factory) as session:
        person = session.scalar(select(Person).where(Person.email == people["eip"]))
        issued = create_api_token(
            session, person_id=person.id, name="sync", now=clock.now(), valid_for=timedelta(days=30), actor_label="t"
        )
    good = {"Authorization": f"Bearer {issued.raw_token}"}
    assert client.get("/api/v1/referrals", headers=good).status_code == 200
    for n in range(auth.TOKEN_FAILURES_ALLOWED):
        bad = client.get("/api/v1/referrals", headers={"Authorization": f"Bearer cc_guess{n}"})
        assert bad.status_code == 401
    refused = client.get("/api/v1/referrals", headers=good)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/json")
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["errors"][0]["message"].startswith("Too many API tokens")
    assert len(actions(session_factory, "api.token_refused")) == auth.TOKEN_FAILURES_ALLOWED
    assert [e.detail["kind"] for e in actions(session_factory, "token.rate_limited")] == ["api"]


@pytest.mark.parametrize(
    "address",
    ["/api/v1/referrals/%00", "/api/v1/referrals?school=a%00b", "/referrals/1%0d%0aSet-Cookie:x", "/audit?person=%00"],
)
def test_an_address_holding_a_nul_or_line_break_is_refused_before_any_handler(client, session_factory, people, address):
    sign_in(client, session_factory, people["admin"])
    before = len(actions(session_factory, "access.refused"))
    response = client.get(address)
    assert response.status_code == 400
    if address.startswith("/api/"):
        assert response.json()["errors"][0]["message"].startswith("The address holds characters")
    assert "Set-Cookie: x" not in str(response.headers) and response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(actions(session_factory, "access.refused")) == before  # refused before any access check
    assert client.get("/healthz").status_code == 200


# --- Tokens: hashed at rest, expiring, single-use where meant to be --------------------------------------------


def all_stored_text(session_factory, leaving_out: str = "") -> str:
    """Every value in every table, as text: a raw token must appear nowhere."""
    parts = []
    with session_factory() as session:
        for table in load_metadata().sorted_tables:
            if table.name == leaving_out:
                continue
            for row in session.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_sign_in_links_and_sessions_are_hashed_expiring_and_single_use(client, session_factory, clock, people):
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
    link = latest_link(session_factory, people["eip"])
    raw = link.split("token=", 1)[1]
    with session_factory() as session:
        stored = session.scalars(select(SignInToken)).one()
        assert stored.token_hash == token_hash(raw)
        assert stored.expires_at == clock.now() + timedelta(minutes=15)
    confirm = client.get(link.removeprefix("http://127.0.0.1:8000"))
    done = client.post("/sign-in/confirm", data={"token": raw, "csrf_token": csrf_from(confirm.text)})
    assert done.status_code == 303
    raw_session = client.cookies["caseconf_session"]
    with session_factory() as session:
        web_session = session.scalars(select(WebSession)).one()
        assert web_session.session_hash == token_hash(raw_session)
        assert web_session.expires_at == clock.now() + auth.SESSION_LIFETIME
        assert auth.person_for_session(session, raw_session=raw_session, now=clock.now()) is not None
        later = clock.now() + auth.SESSION_LIFETIME
        assert auth.person_for_session(session, raw_session=raw_session, now=later) is None
    # The link worked once; the second press is refused.
    again = client.post("/sign-in/confirm", data={"token": raw, "csrf_token": csrf_from(confirm.text)})
    assert again.status_code == 400 and "already been used" in again.text
    # Raw secrets are nowhere in the database but the not-yet-sent email (blanked once sent or failed).
    assert raw_session not in all_stored_text(session_factory)
    assert raw not in all_stored_text(session_factory, leaving_out="outbound_message")
    # An unused link expires.
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["admin"], "csrf_token": csrf_from(page.text)})
    expired = latest_link(session_factory, people["admin"]).removeprefix("http://127.0.0.1:8000")
    clock.advance(minutes=16)
    response = client.get(expired)
    assert response.status_code == 400 and "expired" in response.text


def test_api_tokens_are_hashed_and_expire(session_factory, clock, people):
    with transaction(session_factory) as session:
        person = session.scalar(select(Person).where(Person.email == people["eip"]))
        issued = create_api_token(
            session, person_id=person.id, name="sync", now=clock.now(), valid_for=timedelta(days=1), actor_label="t"
        )
    with session_factory() as session:
        assert session.get(ApiToken, issued.token_id).token_hash == token_hash(issued.raw_token)
    assert issued.raw_token not in all_stored_text(session_factory)
    from agencies.api_tokens import authenticate_api_token

    with session_factory() as session:
        assert authenticate_api_token(session, raw_token=issued.raw_token, now=clock.now()) is not None
        next_day = clock.now() + timedelta(days=1)
        assert authenticate_api_token(session, raw_token=issued.raw_token, now=next_day) is None


def test_calendar_feed_tokens_are_hashed_and_replacing_one_stops_the_old(session_factory, clock, people):
    with transaction(session_factory) as session:
        person = session.scalar(select(Person).where(Person.email == people["eip"]))
        first = invitations.replace_feed_token(session, person=person, now=clock.now())
        second = invitations.replace_feed_token(session, person=person, now=clock.now())
    with session_factory() as session:
        person = session.scalar(select(Person).where(Person.email == people["eip"]))
        assert person.calendar_feed_token_hash == hashlib.sha256(second.encode()).hexdigest()
        assert invitations.person_for_feed_token(session, first) is None
        assert invitations.person_for_feed_token(session, second).id == person.id
    stored_text = all_stored_text(session_factory)
    assert first not in stored_text and second not in stored_text


def test_action_reply_tokens_are_stored_only_as_hashes():
    from notifications.chasing import reply_token
    from notifications.chasing import token_hash as reply_hash

    token = reply_token(42, "s" * 40)
    assert reply_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert reply_token(42, "s" * 40) != reply_token(42, "t" * 40) != reply_token(43, "s" * 40)


# --- No stack traces or SQL errors, ever -----------------------------------------------------------------------


def broken_query(*_args, **_kwargs):
    """A real database error mid-handler, its message full of SQL."""
    session = _args[0]
    session.execute(text("SELECT secret_column FROM no_such_table WHERE name = 'Secret-Internal-Detail'"))


def test_an_unexpected_error_on_a_page_shows_a_reference_and_nothing_else(
    app, session_factory, people, monkeypatch, caplog
):
    monkeypatch.setattr(invitations, "upcoming_invitations", broken_query)
    with TestClient(
        app, base_url="http://127.0.0.1:8000", follow_redirects=False, raise_server_exceptions=False
    ) as client:
        sign_in(client, session_factory, people["admin"])
        response = client.get("/my-meetings")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    reference = re.search(r"quote reference <strong>([0-9A-F]{8})</strong>", response.text).group(1)
    for leak in LEAKS:
        assert leak not in response.text, leak
    check_headers(response, kind="500 page")
    assert reference in caplog.text and "no_such_table" in caplog.text  # the detail is in the log, for us


def test_an_unexpected_error_in_the_api_is_json_with_a_reference_and_nothing_else(
    app, session_factory, clock, people, monkeypatch
):
    with transaction(session_factory) as session:
        person = session.scalar(select(Person).where(Person.email == people["eip"]))
        issued = create_api_token(
            session, person_id=person.id, name="sync", now=clock.now(), valid_for=timedelta(days=30), actor_label="t"
        )
    monkeypatch.setattr(referrals, "find_referrals_visible_to", broken_query)

    @app.get("/api/v1/test-only/boom")
    def boom():
        raise RuntimeError("Secret-Internal-Detail")

    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {issued.raw_token}"}
        for response in (client.get("/api/v1/referrals", headers=headers), client.get("/api/v1/test-only/boom")):
            assert response.status_code == 500
            assert response.headers["content-type"].startswith("application/json")
            (error,) = response.json()["errors"]
            assert re.search(r"Quote reference [0-9A-F]{8}\.$", error["message"])
            for leak in LEAKS:
                assert leak not in response.text, leak
            check_headers(response, kind="api 500")


# --- Templates: nothing the CSP would have to allow; everything escaped ----------------------------------------

TEMPLATE_DIRS = [ROOT / "web" / "templates", ROOT / "meetings" / "templates", ROOT / "notifications" / "templates"]


def templates() -> list[Path]:
    return sorted(p for d in TEMPLATE_DIRS for p in d.rglob("*.html"))


def test_templates_have_no_inline_script_handlers_or_javascript_urls():
    problems = []
    for path in templates():
        source = path.read_text()
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", source, re.IGNORECASE | re.DOTALL):
            if "src=" not in match.group(1) or match.group(2).strip():
                problems.append(f"{path}: inline script")
        if re.search(r"\son[a-z]+\s*=", source, re.IGNORECASE):
            problems.append(f"{path}: on*= handler")
        if re.search(r"javascript:", source, re.IGNORECASE):
            problems.append(f"{path}: javascript: URL")
        # Emails are not under the site's CSP, and mail clients drop <style> blocks: style= is allowed there only.
        if "notifications" not in path.parts and re.search(r"\sstyle\s*=", source, re.IGNORECASE):
            problems.append(f"{path}: style attribute")
    assert templates(), "no templates found"
    assert problems == []


def test_every_template_environment_escapes_html():
    from meetings.papers import _environment as papers_environment
    from notifications.compose import _environment as email_environment
    from web.app import _templates

    for env in (_templates().env, papers_environment(), email_environment()):
        assert env.autoescape("page.html") is True
    page = (
        _templates()
        .env.get_template("errors/problem.html")
        .render(reference="<script>", principal=None, csrf_token="", shows_meetings=False, shows_actions=False)
    )
    assert "&lt;script&gt;" in page and "<script>" not in page


def test_safe_and_markup_are_used_only_on_text_the_app_wrote():
    """Every |safe and Markup: the reviewed ones, which wrap only literals, ids and dates around escaped text."""
    reviewed = {
        "web/templates/admin/series/show.html",  # literal span tags; Jinja's ~ escapes the person's name
        "web/templates/tas/index.html",  # a link built from a meeting id and a formatted date
        "web/referral_views.py",  # Markup("<br>").join escapes each answer
    }
    used = set()
    for path in ROOT.glob("*/**/*"):
        if path.suffix in (".html", ".py", ".txt") and ".venv" not in path.parts and "tests" not in path.parts:
            if "node_modules" in path.parts or not path.is_file():
                continue
            if re.search(r"\|\s*safe\b|\bMarkup\(", path.read_text(errors="replace")):
                used.add(str(path.relative_to(ROOT)))
    assert used <= reviewed, used - reviewed


def test_a_name_joined_to_safe_markup_is_still_escaped():
    from web.app import _templates

    env = _templates().env
    rendered = env.from_string('{{ ("<span>"|safe) ~ name ~ ("</span>"|safe) }}').render(name="<script>x</script>")
    assert rendered == "<span>&lt;script&gt;x&lt;/script&gt;</span>"


# --- PDFs fetch nothing ----------------------------------------------------------------------------------------


def test_pdf_rendering_fetches_no_url_and_reads_no_local_file(tmp_path):
    from meetings.papers import _to_pdf

    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    local = tmp_path / "picture.png"
    local.write_bytes(make_png())  # read, it would put an image in the PDF
    try:
        html = (
            f'<html><head><link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">'
            "</head>"
            f'<body><img src="http://127.0.0.1:{port}/image.png"><img src="file://{local}" width="50">'
            f'<div class="x">text</div><style>.x {{ background: url(http://127.0.0.1:{port}/bg.png) }}</style>'
            "</body></html>"
        )
        pdf = _to_pdf(html)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert pdf.startswith(b"%PDF")
    assert requests == []
    assert b"/Image" not in pdf  # the local file went unread
