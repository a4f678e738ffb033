"""Sign-in by emailed link, sign-out, refusals and CSRF, through the real app and database."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from agencies.models import SignInToken, WebSession
from caseconf.audit import AuditEvent
from caseconf.security import token_hash
from notifications.models import OutboundMessage
from tests.web.conftest import csrf_from, latest_link, sign_in


def actions(session) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_signed_out_visitor_is_sent_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in"
    assert client.get("/admin").headers["location"] == "/sign-in?next=/admin"


def test_full_sign_in_by_emailed_link(client, session_factory, session, people):
    sign_in(client, session_factory, people["eip"])
    home = client.get("/")
    assert home.status_code == 200
    assert "Hello, Priya North" in home.text
    assert "Education Inclusion Partner" in home.text
    assert "Your school's referrals" not in home.text
    assert "sign_in.succeeded" in actions(session)


def test_session_cookie_flags(client, session_factory, people):
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
    link = latest_link(session_factory, people["eip"])
    confirm = client.get(link.replace("http://127.0.0.1:8000", ""))
    token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
    response = client.post("/sign-in/confirm", data={"token": token, "csrf_token": csrf_from(confirm.text)})
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert "secure" not in set_cookie  # the base URL is http here


def test_opening_the_link_does_not_use_it(client, session_factory, session, people):
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
    link = latest_link(session_factory, people["eip"]).replace("http://127.0.0.1:8000", "")
    for _ in range(3):  # a mail scanner, then the person, then again
        assert client.get(link).status_code == 200
    assert session.scalar(select(func.count()).select_from(SignInToken).where(SignInToken.used_at.is_not(None))) == 0


def test_link_works_once(client, session_factory, people):
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
    link = latest_link(session_factory, people["eip"]).replace("http://127.0.0.1:8000", "")
    confirm = client.get(link)
    token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
    data = {"token": token, "csrf_token": csrf_from(confirm.text)}
    assert client.post("/sign-in/confirm", data=data).status_code == 303
    again = client.post("/sign-in/confirm", data=data)
    assert again.status_code == 400
    assert "already been used" in again.text
    assert "already been used" in client.get(link).text


def test_expired_link_is_refused(client, session_factory, clock, people):
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
    link = latest_link(session_factory, people["eip"]).replace("http://127.0.0.1:8000", "")
    clock.advance(minutes=15, seconds=1)
    response = client.get(link)
    assert response.status_code == 400
    assert "expired" in response.text


def test_tokens_are_stored_hashed(client, session_factory, session, people):
    page = client.get("/sign-in")
    client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
    raw = latest_link(session_factory, people["eip"]).split("token=")[1]
    stored = session.scalars(select(SignInToken.token_hash)).one()
    assert stored == token_hash(raw) and raw not in stored


def test_unknown_email_gets_the_same_answer_and_no_email(client, session, people):
    page = client.get("/sign-in")
    response = client.post("/sign-in", data={"email": "nobody@example.org", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in/check-email"
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0


def test_bad_email_shows_error_and_keeps_what_was_typed(client, people):
    page = client.get("/sign-in")
    response = client.post("/sign-in", data={"email": "priya at council", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 400
    assert "There is a problem" in response.text
    assert "Enter an email address in the correct format" in response.text
    assert 'value="priya at council"' in response.text


def test_sign_in_requests_are_rate_limited(client, session, people):
    page = client.get("/sign-in")
    token = csrf_from(page.text)
    statuses = [
        client.post("/sign-in", data={"email": people["eip"], "csrf_token": token}).status_code for _ in range(6)
    ]
    assert statuses == [303] * 5 + [429]
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 5
    assert "sign_in.rate_limited" in actions(session)


def test_post_without_csrf_token_is_refused_and_audited(client, session, people):
    client.get("/sign-in")
    response = client.post("/sign-in", data={"email": people["eip"]})
    assert response.status_code == 403
    assert "could not be sent" in response.text
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0
    assert "csrf.refused" in actions(session)


def test_refused_page_is_403_and_audited(client, session_factory, session, people):
    sign_in(client, session_factory, people["eip"])
    response = client.get("/admin")
    assert response.status_code == 403
    assert "You do not have access" in response.text
    assert "access.refused" in actions(session)


def test_admin_may_see_admin(client, session_factory, people):
    sign_in(client, session_factory, people["admin"])
    assert client.get("/admin").status_code == 200


def test_sign_out_ends_the_session(client, session_factory, session, people):
    sign_in(client, session_factory, people["referrer"])
    home = client.get("/")
    assert "Your school's referrals" in home.text
    response = client.post("/sign-out", data={"csrf_token": csrf_from(home.text)})
    assert response.status_code == 303
    assert client.get("/").status_code == 303
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(WebSession).where(WebSession.ended_at.is_(None))) == 0
    assert "sign_out" in actions(session)


def test_next_path_is_kept_and_cannot_leave_the_site(client, session_factory, people):
    page = client.get("/sign-in?next=//evil.example/x")
    assert 'name="next" value="/"' in page.text
    page = client.get("/sign-in?next=/admin")
    client.post("/sign-in", data={"email": people["admin"], "next": "/admin", "csrf_token": csrf_from(page.text)})
    link = latest_link(session_factory, people["admin"]).replace("http://127.0.0.1:8000", "")
    confirm = client.get(link)
    token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
    response = client.post("/sign-in/confirm", data={"token": token, "csrf_token": csrf_from(confirm.text)})
    assert response.headers["location"] == "/admin"


def test_security_headers_on_every_kind_of_page(client, session_factory, people):
    pages = [client.get("/sign-in"), client.get("/no-such-page"), client.get("/outbox")]
    sign_in(client, session_factory, people["eip"])
    pages += [client.get("/"), client.get("/admin")]
    assert [p.status_code for p in pages] == [200, 404, 200, 200, 403]
    for response in pages:
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text  # no inline script anywhere


def test_refused_links_are_audited(client, session):
    assert client.get("/sign-in/confirm?token=made-up").status_code == 400
    page = client.get("/sign-in")
    response = client.post("/sign-in/confirm", data={"token": "made-up", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 400
    assert actions(session).count("sign_in.link_refused") == 2


def test_hostile_sign_in_input_is_a_clean_answer(client, people):
    token = csrf_from(client.get("/sign-in").text)
    long_next = client.post("/sign-in", data={"email": people["eip"], "next": "/" + "a" * 2000, "csrf_token": token})
    assert long_next.status_code == 303
    nul = client.post("/sign-in", data={"email": "eip\x00@kestrelford.example.org", "csrf_token": token})
    assert nul.status_code == 400 and "correct format" in nul.text
    nul_next = client.post("/sign-in", data={"email": people["admin"], "next": "/\x00", "csrf_token": token})
    assert nul_next.status_code == 303


def test_person_with_no_role_sees_a_helpful_home_page(client, session_factory):
    from caseconf.db import transaction
    from tests.factories import make_person

    with transaction(session_factory) as s:
        make_person(s, email="new.starter@kestrelford.example.org", name="New Starter")
    sign_in(client, session_factory, "new.starter@kestrelford.example.org")
    home = client.get("/")
    assert home.status_code == 200
    assert "you have no role in this service yet" in home.text


def test_outbox_is_only_for_someone_at_this_machine(app):
    from fastapi.testclient import TestClient

    with TestClient(app, client=("203.0.113.9", 50000)) as remote:
        assert remote.get("/outbox").status_code == 404
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        assert local.get("/outbox").status_code == 200


def test_https_site_sets_secure_cookies(settings, session_factory, clock, people):
    from fastapi.testclient import TestClient

    from web.app import create_app

    secure = settings.model_copy(
        update={"base_url": "https://caseconf.example.org", "smtp_url": "smtp://127.0.0.1:1", "secret_key": "k" * 40}
    )
    app = create_app(secure, session_factory=session_factory, clock=clock)
    with TestClient(app, base_url="https://caseconf.example.org", follow_redirects=False) as client:
        page = client.get("/sign-in")
        assert "secure" in page.headers["set-cookie"].lower()  # the CSRF cookie
        client.post("/sign-in", data={"email": people["eip"], "csrf_token": csrf_from(page.text)})
        link = latest_link(session_factory, people["eip"], base="https://caseconf.example.org")
        confirm = client.get(link.replace("https://caseconf.example.org", ""))
        token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
        response = client.post("/sign-in/confirm", data={"token": token, "csrf_token": csrf_from(confirm.text)})
    session_cookie = response.headers["set-cookie"].lower()
    assert session_cookie.startswith("caseconf_session=")
    assert "secure" in session_cookie and "httponly" in session_cookie and "samesite=lax" in session_cookie


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "Page not found" in response.text


def test_sign_out_page_offers_a_button(client, session_factory, people):
    assert client.get("/sign-out").headers["location"] == "/sign-in"
    sign_in(client, session_factory, people["eip"])
    page = client.get("/sign-out")
    assert page.status_code == 200 and 'action="/sign-out"' in page.text
    assert client.get("/").status_code == 200  # looking at the page did not sign out


def test_an_oversized_form_is_refused_before_it_is_read(client, session):
    token = csrf_from(client.get("/sign-in").text)
    response = client.post(
        "/sign-in", data={"email": "a@example.org", "next": "/" + "x" * 3_000_000, "csrf_token": token}
    )
    assert response.status_code == 413
    assert "too much to send" in response.text
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0


def test_only_the_upload_page_takes_large_bodies(client):
    token = csrf_from(client.get("/sign-in").text)
    big = "x" * 3_000_000
    response = client.post("/triage/1/documents", data={"note": big, "csrf_token": token})
    assert response.status_code == 413
