"""The audit pages through the real app: a referral's access log, the whole log with filters and its CSV export,
and who may see them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from caseconf import audit
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.models import Referral, ReferralStatus
from tests.web.conftest import sign_in

DPO = "dpo@kestrelford.example.org"
ADMIN = "admin@kestrelford.example.org"
EIP_NORTH = "eip.north@kestrelford.example.org"
EIP_EAST = "eip.east@kestrelford.example.org"
REP = "camhs.rep@kestrelford.example.org"
SCHOOL = "dsl@alderbrook.example.org"


@pytest.fixture
def north_referral(session_factory, clock) -> int:
    """The demo borough, and a submitted referral from a North school (Alderbrook)."""
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        return session.scalar(
            select(Referral.id)
            .where(Referral.status != ReferralStatus.draft, Referral.school.has(urn="900001"))
            .order_by(Referral.id)
        )


def add_event(session_factory, at: datetime, **fields) -> int:
    with transaction(session_factory) as session:
        row = audit.record(session, now=at, **fields)
        session.flush()
        return row.id


def test_the_areas_eip_reads_a_referrals_access_log_newest_first(client, session_factory, north_referral):
    sign_in(client, session_factory, EIP_NORTH)
    triage_page = client.get(f"/triage/{north_referral}")
    assert f'href="/referrals/{north_referral}/access-log"' in triage_page.text
    client.get(f"/referrals/{north_referral}")
    add_event(
        session_factory,
        datetime(2026, 1, 12, 10, 0, tzinfo=UTC),
        action="email.sent",
        record_type="referral",
        record_id=north_referral,
        recipient="someone@example.org",
    )
    page = client.get(f"/referrals/{north_referral}/access-log")
    assert page.status_code == 200
    text = page.text
    assert "Access log for" in text and "referral.viewed" in text and "email.sent" in text
    assert "to someone@example.org" in text and "127.0.0.1" in text and EIP_NORTH in text
    assert text.index("email.sent") < text.index("referral.viewed")  # newest first (10:00 after 9:00)
    assert f"GET /referrals/{north_referral}" in text
    # Reading the log is itself in the log.
    with session_factory() as session:
        assert (
            session.scalar(
                select(func.count()).where(
                    AuditEvent.record_id == str(north_referral),
                    AuditEvent.detail["path"].as_string() == f"/referrals/{north_referral}/access-log",
                )
            )
            == 1
        )


def test_the_access_log_pages_through_many_events(client, session_factory, north_referral):
    with transaction(session_factory) as session:
        for minute in range(60):
            audit.record(
                session,
                now=datetime(2026, 1, 11, 8, minute, tzinfo=UTC),
                action="referral.viewed",
                actor_label=f"viewer{minute:02d}@example.org",
                record_type="referral",
                record_id=north_referral,
            )
    sign_in(client, session_factory, DPO)
    first = client.get(f"/referrals/{north_referral}/access-log")
    assert first.status_code == 200
    assert "viewer59@example.org" in first.text and "viewer00@example.org" not in first.text
    assert "page=2" in first.text and "Page 1 of 2" in first.text
    second = client.get(f"/referrals/{north_referral}/access-log?page=2")
    assert "viewer00@example.org" in second.text and "viewer59@example.org" not in second.text
    assert client.get(f"/referrals/{north_referral}/access-log?page=abc").status_code == 200


@pytest.mark.parametrize("email", [REP, SCHOOL, EIP_EAST])
def test_a_rep_a_school_and_another_areas_eip_may_not_read_the_access_log_or_the_audit_log(
    client, session_factory, north_referral, email
):
    sign_in(client, session_factory, email)
    page = client.get(f"/referrals/{north_referral}/access-log")
    assert page.status_code == 403
    assert "referral.viewed" not in page.text
    assert client.get("/audit").status_code == 403
    assert client.get("/audit.csv?from=2026-01-01&to=2026-01-31").status_code == 403
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "audit.exported")) == 0


def test_an_eip_may_not_read_the_whole_log(client, session_factory, north_referral):
    sign_in(client, session_factory, EIP_NORTH)
    assert client.get("/audit").status_code == 403


def test_signed_out_the_pages_ask_for_sign_in(client, north_referral):
    assert client.get("/audit").status_code == 303
    assert client.get(f"/referrals/{north_referral}/access-log").status_code == 303
    assert client.get("/referrals/999999/access-log").status_code == 303


def test_the_dpo_filters_the_log_by_london_dates_person_action_and_record(client, session_factory, north_referral):
    # 23:30 UTC on 31 May is 00:30 on 1 June in London (summer time).
    add_event(
        session_factory,
        datetime(2026, 5, 31, 23, 30, tzinfo=UTC),
        action="referral.viewed",
        actor_label="june.person@example.org",
        record_type="referral",
        record_id=north_referral,
    )
    add_event(
        session_factory,
        datetime(2026, 5, 31, 22, 30, tzinfo=UTC),
        action="referral.viewed",
        actor_label="may.person@example.org",
        record_type="referral",
        record_id=north_referral,
    )
    add_event(
        session_factory,
        datetime(2026, 6, 2, 12, 0, tzinfo=UTC),
        action="meeting.viewed",
        actor_label="june.person@example.org",
        record_type="meeting",
        record_id=5,
    )
    sign_in(client, session_factory, DPO)
    home = client.get("/")
    assert 'href="/audit"' in home.text

    june = client.get("/audit?from=2026-06-01&to=2026-06-30")
    assert june.status_code == 200
    assert "june.person@example.org" in june.text and "may.person@example.org" not in june.text
    may = client.get("/audit?from=2026-05-01&to=2026-05-31").text
    assert "may.person@example.org" in may and "june.person@example.org" not in may

    by_action = client.get("/audit?from=2026-05-01&to=2026-06-30&action=meeting.viewed").text
    assert "meeting 5" in by_action and "may.person" not in by_action
    by_person = client.get("/audit?person=MAY.PERSON").text
    assert "may.person@example.org" in by_person and "june.person@example.org" not in by_person
    by_record = client.get(f"/audit?record_type=referral&record_id={north_referral}&from=2026-05-01").text
    assert "may.person@example.org" in by_record and "meeting 5" not in by_record
    with session_factory() as session:
        viewed = session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.viewed")).all()
    assert len(viewed) == 5 and viewed[-1].detail["filters"]["record_type"] == "referral"


def test_bad_dates_get_a_clear_error_and_keep_what_was_typed(client, session_factory, north_referral):
    sign_in(client, session_factory, DPO)
    page = client.get("/audit?from=31/01/2026&to=2026-02-30&person=someone")
    assert page.status_code == 400
    assert "Enter the start date as YYYY-MM-DD" in page.text
    assert "The end date must be a real date" in page.text
    assert 'value="31/01/2026"' in page.text and 'value="2026-02-30"' in page.text and 'value="someone"' in page.text
    backwards = client.get("/audit.csv?from=2026-02-01&to=2026-01-01")
    assert backwards.status_code == 400 and "must be the same as or after the start date" in backwards.text
    missing = client.get("/audit.csv?from=2026-01-01")
    assert missing.status_code == 400 and "Enter the end date to export" in missing.text
    assert 'value="2026-01-01"' in missing.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "audit.exported")) == 0


def test_the_csv_export_holds_the_range_is_formula_safe_and_is_audited(client, session_factory, north_referral):
    add_event(
        session_factory,
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        action="referral.viewed",
        actor_label='=HYPERLINK("http://evil.example")',
        record_type="referral",
        record_id=north_referral,
        ip_address="10.1.2.3",
        method="GET",
        path=f"/referrals/{north_referral}",
        status=200,
    )
    add_event(
        session_factory,
        datetime(2026, 4, 2, 9, 0, tzinfo=UTC),
        action="referral.viewed",
        actor_label="outside@example.org",
        record_type="referral",
        record_id=north_referral,
    )
    sign_in(client, session_factory, ADMIN)
    response = client.get("/audit.csv?from=2026-03-01&to=2026-03-31")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="audit-2026-03-01-to-2026-03-31.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:5] == ["When (UTC)", "When (London)", "Person id", "Who", "Action"]
    assert len(rows) == 2  # the header and the one March event
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Who"] == '\'=HYPERLINK("http://evil.example")'
    assert (row["Action"], row["Record type"], row["Record id"]) == ("referral.viewed", "referral", str(north_referral))
    assert (row["IP address"], row["Method"], row["Status"]) == ("10.1.2.3", "GET", "200")
    assert row["When (London)"] == "2026-03-02 09:00:00"
    with session_factory() as session:
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.exported")).one()
        assert exported.actor_label == ADMIN and exported.detail["rows"] == 1
        assert exported.detail["filters"] == {"from": "2026-03-01", "to": "2026-03-31"}
        assert exported.ip_address == "127.0.0.1"


def test_no_route_changes_or_removes_audit_rows(app):
    for route in app.routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", set()) or set()
        if "audit" in path or "access-log" in path:
            assert methods <= {"GET", "HEAD"}, (path, methods)


def test_a_refused_access_log_is_on_the_referrals_access_log(client, session_factory, north_referral):
    sign_in(client, session_factory, REP)
    assert client.get(f"/referrals/{north_referral}/access-log").status_code == 403
    sign_in(client, session_factory, DPO)
    text = client.get(f"/referrals/{north_referral}/access-log").text
    assert "access.refused" in text and "Refused: not allowed to see or do this" in text and REP in text


def test_the_who_and_what_columns_say_who_and_what_in_plain_words(client, session_factory, north_referral):
    with session_factory() as session:
        from agencies.models import Person

        eip = session.scalar(select(Person).where(Person.email == EIP_NORTH))
        eip_id, eip_name = eip.id, eip.name
    at = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
    # A person with no label snapshot (as consent withdrawal writes): their name and email, never "The system".
    add_event(
        session_factory,
        at,
        action="referral.consent_withdrawn",
        actor_person_id=eip_id,
        record_type="referral",
        record_id=north_referral,
    )
    add_event(
        session_factory,
        at,
        action="referral.change_requested",
        actor_person_id=eip_id,
        actor_label=EIP_NORTH,
        record_type="referral",
        record_id=north_referral,
        method="POST",
        path="/x",
        status=400,
    )
    add_event(
        session_factory,
        at,
        action="email.sent",
        actor_label="outbox",
        record_type="referral",
        record_id=north_referral,
        recipient="a@example.org",
        via="attached papers",
        meeting_id=7,
    )
    add_event(session_factory, at, action="retention.purged", record_type="referral", record_id=north_referral)
    sign_in(client, session_factory, DPO)
    text = client.get("/audit?from=2025-03-03&to=2025-03-03").text
    rows = text.split("<tbody")[1].split("</tbody>")[0].split('<tr class="govuk-table__row">')[1:]
    assert len(rows) == 4 and text.count('<tr class="govuk-table__row">') == 5  # and the heading row
    withdrawal = next(r for r in rows if "referral.consent_withdrawn" in r)
    assert eip_name in withdrawal and EIP_NORTH in withdrawal and "The system" not in withdrawal
    assert "Recorded that consent was withdrawn" in withdrawal
    refused = next(r for r in rows if "referral.change_requested" in r)
    assert "Tried to change it (refused: the form had errors)" in refused and "POST /x (400)" in refused
    emailed = next(r for r in rows if "email.sent" in r)
    assert "The system" in emailed and "outbox" in emailed
    assert "Email sent with the papers of meeting 7 attached" in emailed and "to a@example.org" in emailed
    purged = next(r for r in rows if "retention.purged" in r)
    assert "Retention: purged" in purged and "The system" in purged
    # Each referral row links to that referral's access log (the DPO may read it, not the referral itself).
    assert all(f'href="/referrals/{north_referral}/access-log"' in r for r in rows)
    assert f'href="/referrals/{north_referral}"' not in text


def test_the_admins_home_page_links_to_the_audit_log(client, session_factory, north_referral):
    sign_in(client, session_factory, ADMIN)
    home = client.get("/").text
    assert 'href="/audit"' in home
    assert 'href="/actions"' not in home  # an admin does not track cases' actions
    assert client.get("/audit").status_code == 200


@pytest.mark.browser
def test_the_audit_tables_fit_the_page_on_a_desktop_and_a_phone(server, page, session_factory, clock):
    """Long paths, browsers and addresses wrap: no sideways scrolling at 1280 or 375 pixels wide."""
    from tests.web.conftest import latest_link, shot

    with session_factory() as session:
        referral_id = session.scalar(select(Referral.id).where(Referral.status != ReferralStatus.draft))
    long_path = "/referrals/" + "0123456789" * 12 + "/documents/a-very-long-file-name-with-no-spaces-at-all.pdf"
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " + "Chrome/1234567890" * 6
    for _ in range(3):
        add_event(
            session_factory,
            clock.now(),
            action="referral.change_requested",
            actor_label="a.very.long.email.address.for.someone.at.an.agency@some-long-agency-domain.example.org",
            record_type="referral",
            record_id=referral_id,
            method="POST",
            path=long_path,
            status=400,
            user_agent=browser,
            recipient="another.very.long.recipient.address.with.no.breaks@another-long-domain.example.org",
        )
    page.goto(f"{server}/audit")
    page.get_by_label("Email address").fill(DPO)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    page.goto(latest_link(session_factory, DPO, base=server))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server}/audit")
    for width, height in ((1280, 900), (375, 800)):
        page.set_viewport_size({"width": width, "height": height})
        for path in ("/audit", f"/referrals/{referral_id}/access-log"):
            page.goto(f"{server}{path}")
            assert page.locator("#events").is_visible()
            assert page.get_by_text("Tried to change it (refused: the form had errors)").first.is_visible()
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, (path, width, scroll_width)
            shot(page, f"{'audit' if path == '/audit' else 'access-log'}-{width}")
