"""Every read and write of case data through the real app writes an audit row naming the record, the person
and their address; emails about a case are audited when the outbox delivers them; the rows cannot be changed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text, update

from agencies.api_tokens import create_api_token
from agencies.auth import find_person_by_email
from agencies.models import Person, School
from caseconf import audit
from caseconf.audit import AuditEvent, AuditImmutable
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import documents, referrals
from meetings.demo import COORDINATOR, load_demo
from meetings.models import Action, AgendaItem, Meeting, Referral, ReferralStatus
from notifications.catcher import start_catcher
from notifications.delivery import Sender, deliver_due
from notifications.models import OutboundMessage
from notifications.outbox import enqueue
from tests.conftest import free_port
from tests.referral_answers import VALID
from tests.unit.test_document_types import make_pdf
from tests.web.conftest import csrf_from, sign_in
from web.app import create_app

REFERRER = "dsl@alderbrook.example.org"
IP = "127.0.0.1"


@pytest.fixture
def clock():
    """Late in the autumn term: the demo has held clinics with actions, and the referral answers are current."""
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def client(settings, session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
    app = create_app(settings, session_factory=session_factory, clock=clock)
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=(IP, 50000)) as client:
        client.headers["User-Agent"] = "audit-test-browser/1.0"
        yield client


def last_id(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.max(AuditEvent.id))) or 0


def rows_since(session_factory, since: int) -> list[AuditEvent]:
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id)))


def person_id(session_factory, email: str) -> int:
    with session_factory() as session:
        return session.scalar(select(Person.id).where(Person.email == email))


def naming(rows: list[AuditEvent], record_type: str, record_id: int) -> list[AuditEvent]:
    return [r for r in rows if r.record_type == record_type and r.record_id == str(record_id)]


def the_one_row(session_factory, client, path: str, record_type: str, record_id: int, **request) -> AuditEvent:
    before = last_id(session_factory)
    response = client.get(path, **request)
    assert response.status_code == 200, (path, response.status_code)
    [row] = naming(rows_since(session_factory, before), record_type, record_id)
    assert row.ip_address == IP
    return row


def test_reading_a_referral_a_meeting_and_an_action_page_each_write_one_row(client, session_factory):
    with session_factory() as session:
        referral_id = session.scalar(
            select(Referral.id).where(Referral.status != ReferralStatus.draft).order_by(Referral.id)
        )
        meeting_id = session.scalar(select(Meeting.id).order_by(Meeting.starts_at))
        action_id = session.scalar(select(Action.id).order_by(Action.id))
    assert referral_id and meeting_id and action_id, "the demo has a submitted referral, a meeting and an action"
    sign_in(client, session_factory, COORDINATOR)
    coordinator = person_id(session_factory, COORDINATOR)

    row = the_one_row(session_factory, client, f"/referrals/{referral_id}", "referral", referral_id)
    assert (row.action, row.actor_person_id, row.actor_label) == ("referral.viewed", coordinator, COORDINATOR)
    assert row.detail["method"] == "GET" and row.detail["path"] == f"/referrals/{referral_id}"
    assert row.detail["status"] == 200 and row.detail["user_agent"] == "audit-test-browser/1.0"

    row = the_one_row(session_factory, client, f"/meetings/{meeting_id}", "meeting", meeting_id)
    assert (row.action, row.actor_person_id) == ("meeting.viewed", coordinator)

    row = the_one_row(session_factory, client, f"/actions/{action_id}", "action", action_id)
    assert (row.action, row.actor_person_id) == ("action.viewed", coordinator)


def test_a_refused_look_writes_no_read_row_only_the_refusal(client, session_factory):
    with session_factory() as session:
        referral_id = session.scalar(
            select(Referral.id)
            .join(School, School.id == Referral.school_id)
            .where(Referral.status != ReferralStatus.draft, School.urn == "900002")  # Millrace, East
        )
    sign_in(client, session_factory, REFERRER)  # Alderbrook's referrer
    before = last_id(session_factory)
    assert client.get(f"/referrals/{referral_id}").status_code == 403
    rows = rows_since(session_factory, before)
    # The refusal names the referral (so it shows on its access log); no read row is written.
    assert [(r.action, r.record_type, r.record_id) for r in rows] == [("access.refused", "referral", str(referral_id))]
    assert rows[0].actor_label == REFERRER and rows[0].detail["path"] == f"/referrals/{referral_id}"


def test_a_document_download_writes_one_row(client, session_factory, clock):
    with transaction(session_factory) as session:
        referrer = session.scalar(select(Person).where(Person.email == REFERRER))
        school = session.scalar(select(School).where(School.urn == "900001"))
        draft = referrals.start_referral(session, school_id=school.id, referrer_id=referrer.id, now=clock.now())
        referral_id, referrer_id = draft.id, referrer.id
    sign_in(client, session_factory, REFERRER)
    page = client.get(f"/referrals/{referral_id}/documents")
    response = client.post(
        f"/referrals/{referral_id}/documents",
        data={"csrf_token": csrf_from(page.text), "description": ""},
        files=[("documents", ("plan.pdf", make_pdf("plan"), "application/octet-stream"))],
    )
    assert response.status_code == 303
    with session_factory() as session:
        [document] = documents.documents_for(session, referral_id)
    before = last_id(session_factory)
    assert client.get(f"/documents/{document.id}").status_code == 200
    [row] = rows_since(session_factory, before)
    assert (row.action, row.record_type, row.record_id) == ("document.downloaded", "document", str(document.id))
    assert (row.actor_person_id, row.ip_address, row.detail["referral_id"]) == (referrer_id, IP, referral_id)


def test_an_api_read_writes_one_row_naming_the_referral(client, session_factory, clock):
    with transaction(session_factory) as session:
        eip = find_person_by_email(session, "eip.north@kestrelford.example.org")
        raw = create_api_token(
            session, person_id=eip.id, name="test", now=clock.now(), valid_for=timedelta(days=30), actor_label=""
        ).raw_token
        referral = session.scalar(
            select(Referral)
            .join(School, School.id == Referral.school_id)
            .where(
                Referral.status != ReferralStatus.draft,
                Referral.reference.is_not(None),
                School.area_id == eip.grants[0].area_id,
            )
        )
        referral_id, reference, eip_id = referral.id, referral.reference, eip.id
    headers = {"Authorization": f"Bearer {raw}"}
    row = the_one_row(
        session_factory, client, f"/api/v1/referrals/{reference}", "referral", referral_id, headers=headers
    )
    assert (row.actor_person_id, row.action) == (eip_id, "api.referral_viewed")


def test_list_pages_write_one_row_with_the_ids_shown(client, session_factory):
    sign_in(client, session_factory, COORDINATOR)
    before = last_id(session_factory)
    assert client.get("/meetings").status_code == 200
    [row] = [r for r in rows_since(session_factory, before) if r.action == "meeting.listed"]
    assert row.record_id is None and row.detail["ids"] and row.actor_label == COORDINATOR
    with session_factory() as session:
        assert session.get(Meeting, int(row.detail["ids"][0])) is not None
    before = last_id(session_factory)
    assert client.get("/actions").status_code == 200
    [row] = [r for r in rows_since(session_factory, before) if r.action == "action.listed"]
    assert row.detail["path"] == "/actions" and row.ip_address == IP


def test_a_post_writes_one_row_for_the_action_changed_and_a_refused_form_one_too(client, session_factory):
    with session_factory() as session:
        action_id = session.scalar(select(Action.id).where(Action.status == "open").order_by(Action.id))
    sign_in(client, session_factory, COORDINATOR)
    token = csrf_from(client.get(f"/actions/{action_id}").text)

    before = last_id(session_factory)
    response = client.post(f"/actions/{action_id}", data={"csrf_token": token, "kind": "update", "note": "Called mum"})
    assert response.status_code == 303
    rows = naming(rows_since(session_factory, before), "action", action_id)
    assert [r.action for r in rows] == ["action.update"]
    assert (rows[0].actor_person_id, rows[0].ip_address) == (person_id(session_factory, COORDINATOR), IP)
    assert rows[0].detail["method"] == "POST" and rows[0].detail["user_agent"] == "audit-test-browser/1.0"

    before = last_id(session_factory)
    response = client.post(f"/actions/{action_id}", data={"csrf_token": token, "kind": "update", "note": ""})
    assert response.status_code == 400  # nothing saved; the page shown again is the one row
    [row] = naming(rows_since(session_factory, before), "action", action_id)
    assert (row.action, row.detail["method"], row.detail["path"]) == ("action.viewed", "POST", f"/actions/{action_id}")
    assert row.ip_address == IP and row.actor_label == COORDINATOR


def test_an_email_about_a_case_is_audited_when_delivered_naming_the_recipient_not_the_body(
    session_factory, clock, tmp_path
):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        referral_id = session.scalar(select(Referral.id).order_by(Referral.id))
        meeting_id = session.scalar(select(Meeting.id).order_by(Meeting.id))
        for key, extra in (
            ("about-referral", {"referral_id": referral_id}),
            ("about-meeting", {"meeting_id": meeting_id}),
            ("about-action", {"in_reply_to": "<action-77@kestrelford.example.org>", "referral_id": referral_id}),
            ("sign-in:1", {}),
        ):
            enqueue(
                session,
                now=clock.now(),
                idempotency_key=key,
                kind="test",
                recipient="camhs.rep@kestrelford.example.org",
                subject="About a child",
                body_text="SECRET BODY TEXT",
                mail_domain="kestrelford.example.org",
                **extra,
            )
    port = free_port()
    catcher = start_catcher(tmp_path / "mail", "127.0.0.1", port)
    try:
        sender = Sender(address="clinic@kestrelford.example.org", name="Kestrelford Inclusion Team")
        before = last_id(session_factory)
        report = deliver_due(session_factory, smtp_url=f"smtp://127.0.0.1:{port}", sender=sender, now=clock.now)
    finally:
        catcher.stop()
    assert report.sent >= 4
    sent = [r for r in rows_since(session_factory, before) if r.action == "email.sent"]
    found = {(r.record_type, r.record_id) for r in sent}
    assert {("referral", str(referral_id)), ("meeting", str(meeting_id)), ("action", "77")} <= found
    with session_factory() as session:
        mine = session.scalars(select(OutboundMessage.id).where(OutboundMessage.idempotency_key.like("about-%"))).all()
    assert len(mine) == 3
    ours = [r for r in sent if r.detail.get("kind") == "test"]
    assert len(ours) == 3  # the sign-in link is about no case, so it is not among them
    assert all(r.detail["recipient"] == "camhs.rep@kestrelford.example.org" for r in ours)
    assert all("SECRET BODY TEXT" not in str(r.detail) and "About a child" not in str(r.detail) for r in ours)


# --- Immutability ---------------------------------------------------------------------------------------


@pytest.fixture
def one_event(session_factory, clock) -> int:
    with transaction(session_factory) as session:
        event = audit.record(session, now=clock.now(), action="referral.viewed", record_type="referral", record_id=1)
        session.flush()
        return event.id


@pytest.mark.parametrize(
    "statement",
    [
        lambda i: update(AuditEvent).where(AuditEvent.id == i).values(action="nothing.happened"),
        lambda i: update(AuditEvent).where(AuditEvent.id == i).values(actor_label="someone else"),
        lambda i: update(AuditEvent).where(AuditEvent.id == i).values(ip_address="10.0.0.1"),
        lambda i: delete(AuditEvent).where(AuditEvent.id == i),
    ],
    ids=["action", "actor", "ip", "delete"],
)
def test_the_database_refuses_to_change_or_delete_an_audit_row(session_factory, one_event, statement):
    with pytest.raises(Exception) as refused:
        with transaction(session_factory) as session:
            session.execute(statement(one_event).execution_options(synchronize_session=False))
    assert "audit events cannot be" in str(refused.value)
    with session_factory() as session:
        row = session.get(AuditEvent, one_event)
        assert (row.action, row.actor_label, row.ip_address) == ("referral.viewed", "", None)


def test_the_database_refuses_plain_sql_too(session_factory, one_event):
    with pytest.raises(Exception, match="audit events cannot be"):
        with transaction(session_factory) as session:
            session.execute(text("DELETE FROM audit_event"))
    with session_factory() as session:
        assert session.get(AuditEvent, one_event) is not None


def test_the_orm_refuses_to_change_or_delete_an_audit_row(session_factory, one_event):
    with pytest.raises(AuditImmutable):
        with transaction(session_factory) as session:
            session.get(AuditEvent, one_event).action = "nothing.happened"
    with pytest.raises(AuditImmutable):
        with transaction(session_factory) as session:
            session.delete(session.get(AuditEvent, one_event))
    with session_factory() as session:
        assert session.get(AuditEvent, one_event).action == "referral.viewed"


def test_a_person_deleted_leaves_their_rows_with_the_label(session_factory, clock):
    with transaction(session_factory) as session:
        person = Person(name="Gone Soon", email="gone@example.org", organisation="", job_title="")
        session.add(person)
        session.flush()
        event = audit.record(
            session, now=clock.now(), action="referral.viewed", actor_person_id=person.id, actor_label=person.email
        )
        session.flush()
        event_id = event.id
    with transaction(session_factory) as session:
        session.execute(delete(Person).where(Person.email == "gone@example.org"))
    with session_factory() as session:
        row = session.get(AuditEvent, event_id)
        assert (row.actor_person_id, row.actor_label) == (None, "gone@example.org")


def test_a_refused_form_with_no_row_of_its_own_writes_one_change_requested_row(client, session_factory, clock):
    with transaction(session_factory) as session:
        referrer = session.scalar(select(Person).where(Person.email == REFERRER))
        school = session.scalar(select(School).where(School.urn == "900001"))
        referral = referrals.start_referral(session, school_id=school.id, referrer_id=referrer.id, now=clock.now())
        for key, answers in VALID.items():
            referrals.save_page(
                session, referral=referral, key=key, answers=answers, now=clock.now(), person_id=referrer.id
            )
        referrals.submit_referral(session, referral=referral, now=clock.now(), person_id=referrer.id)
        referral_id = referral.id
    sign_in(client, session_factory, "eip.north@kestrelford.example.org")
    token = csrf_from(client.get(f"/triage/{referral_id}").text)
    before = last_id(session_factory)
    response = client.post(f"/triage/{referral_id}/request-information", data={"csrf_token": token, "question": ""})
    assert response.status_code == 400
    [row] = naming(rows_since(session_factory, before), "referral", referral_id)
    assert (row.action, row.detail["method"], row.detail["status"]) == ("referral.change_requested", "POST", 400)
    assert row.detail["verbs"] == ["triage"] and row.ip_address == IP
    with session_factory() as session:
        assert session.get(Referral, referral_id).status == ReferralStatus.submitted


# --- Reads of a child's data through a meeting -----------------------------------------------------------

CAMHS = "camhs.rep@kestrelford.example.org"


@pytest.fixture
def clinic(settings, session_factory):
    """The demo's 3 December clinic with its papers out, read by CAMHS an hour later; the referral listed on
    it, and a submitted referral that is not."""
    from tests.factories import DEMO_MONDAY, PAPERS_SENT, load_demo_invited, send_papers

    clock = FixedClock(DEMO_MONDAY)
    meeting = load_demo_invited(session_factory, clock.now(), on=date(2026, 12, 3))
    send_papers(session_factory, settings, meeting.id)
    clock.at = PAPERS_SENT + timedelta(hours=1)
    with session_factory() as session:
        listed = session.scalars(
            select(AgendaItem.referral_id).where(
                AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None)
            )
        ).all()
        other = session.scalar(
            select(Referral.id).where(Referral.status != ReferralStatus.draft, Referral.id.not_in(listed))
        )
    assert len(listed) == 1 and other, "the clinic lists one referral and the demo has another"
    app = create_app(settings, session_factory=session_factory, clock=clock)
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=(IP, 50000)) as client:
        client.headers["User-Agent"] = "audit-test-browser/1.0"
        sign_in(client, session_factory, CAMHS)
        yield {"client": client, "meeting": meeting.id, "listed": listed[0], "other": other, "clock": clock}


def access_log_rows(session_factory, referral_id: int) -> list[AuditEvent]:
    """What the referral's access log shows (the same filter as its page)."""
    with session_factory() as session:
        return audit.read_log(session, audit.LogFilters(records=(("referral", [str(referral_id)]),)))


@pytest.mark.parametrize(
    ("path", "via"),
    [("/meetings/{id}/papers", "papers"), ("/meetings/{id}/contributions", "contributions")],
)
def test_a_reps_look_at_a_meetings_cases_is_on_the_listed_referrals_access_log(session_factory, clinic, path, via):
    client = clinic["client"]
    before = last_id(session_factory)
    response = client.get(path.format(id=clinic["meeting"]))
    assert response.status_code == 200
    rows = rows_since(session_factory, before)
    [row] = naming(rows, "referral", clinic["listed"])  # one row per referral per request
    assert (row.action, row.actor_label, row.ip_address) == ("referral.viewed", CAMHS, IP)
    assert row.detail["via"] == via and str(row.detail["meeting_id"]) == str(clinic["meeting"])
    assert row.detail["path"] == path.format(id=clinic["meeting"]) and row.detail["status"] == 200
    assert row.id in [r.id for r in access_log_rows(session_factory, clinic["listed"])]
    assert naming(rows, "referral", clinic["other"]) == []  # not on that meeting: nothing on its log
    assert [r for r in access_log_rows(session_factory, clinic["other"]) if r.id > before] == []


def test_a_reps_minutes_read_is_on_the_listed_referrals_access_log(settings, session_factory, clinic):
    from meetings import minutes
    from meetings.models import Minute, MinutesStatus
    from notifications import minutes_mail
    from tests.factories import MAIL

    ended = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, clinic["meeting"])
        meeting.started_at, meeting.ended_at = ended - timedelta(hours=2), ended
        meeting.status = "minutes_draft"
        session.add(Minute(meeting_id=meeting.id, status=MinutesStatus.draft, summary="Quorate."))
        session.flush()
        minutes.approve(session, meeting, person_id=meeting.chair_id, now=ended + timedelta(hours=1))
        coordinator = find_person_by_email(session, COORDINATOR)
        minutes_mail.circulate_minutes(
            session,
            meeting,
            person_id=coordinator.id,
            now=ended + timedelta(days=1),
            mail=MAIL,
            storage_dir=settings.documents_dir,
        )
    clinic["clock"].at = ended + timedelta(days=2)
    client = clinic["client"]
    sign_in(client, session_factory, CAMHS)  # a new day, a new sign-in
    for path in (f"/meetings/{clinic['meeting']}/minutes", f"/meetings/{clinic['meeting']}/minutes.pdf"):
        before = last_id(session_factory)
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        rows = rows_since(session_factory, before)
        [row] = naming(rows, "referral", clinic["listed"])
        assert (row.action, row.actor_label, row.detail["via"]) == ("referral.viewed", CAMHS, "minutes")
        assert naming(rows, "referral", clinic["other"]) == []


def test_a_meeting_page_that_shows_nothing_puts_nothing_on_the_referrals_log(session_factory, clinic):
    """Asking for papers the rep has no pack of (a 404) reads no child's data."""
    from meetings.models import Invitation

    with transaction(session_factory) as session:
        for invitation in session.scalars(select(Invitation).where(Invitation.meeting_id == clinic["meeting"])):
            if invitation.person.email == CAMHS:
                invitation.agency_id = None  # invited, but for no agency: no pack
    before = last_id(session_factory)
    response = clinic["client"].get(f"/meetings/{clinic['meeting']}/papers")
    assert response.status_code in (403, 404)
    assert naming(rows_since(session_factory, before), "referral", clinic["listed"]) == []


def test_a_refused_meeting_or_action_names_the_record_refused(session_factory, clinic):
    """A refusal carries the record, so a refused look at a child's action shows on its referral's log."""
    from meetings.access import can_on_action, principal_for

    with session_factory() as session:
        rep = principal_for(find_person_by_email(session, CAMHS))
        actions = session.scalars(select(Action).where(Action.referral_id.is_not(None)).order_by(Action.id))
        action_id = next(a.id for a in actions if not can_on_action(rep, "view", a))
        other_meeting = session.scalar(select(Meeting.id).where(Meeting.id != clinic["meeting"]).order_by(Meeting.id))
    client = clinic["client"]
    before = last_id(session_factory)
    assert client.get(f"/actions/{action_id}").status_code == 403
    assert client.get(f"/meetings/{other_meeting}/room").status_code == 403
    rows = [(r.action, r.record_type, r.record_id) for r in rows_since(session_factory, before)]
    assert rows == [("access.refused", "action", str(action_id)), ("access.refused", "meeting", str(other_meeting))]


def test_an_email_carrying_the_papers_names_each_listed_referral(settings, session_factory, tmp_path):
    """An agency that takes the pack as an attachment: the email shows on each listed referral's access log."""
    from agencies.models import Agency
    from tests.factories import DEMO_MONDAY, PAPERS_SENT, load_demo_invited, send_papers

    meeting = load_demo_invited(session_factory, DEMO_MONDAY, on=date(2026, 12, 3))
    with transaction(session_factory) as session:
        session.scalar(select(Agency).where(Agency.code == "CAMHS")).attach_papers = True
        listed = session.scalars(
            select(AgendaItem.referral_id).where(
                AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None)
            )
        ).all()
    send_papers(session_factory, settings, meeting.id)
    port = free_port()
    catcher = start_catcher(tmp_path / "mail", "127.0.0.1", port)
    try:
        sender = Sender(address="clinic@kestrelford.example.org", name="Kestrelford Inclusion Team")
        before = last_id(session_factory)
        deliver_due(
            session_factory,
            smtp_url=f"smtp://127.0.0.1:{port}",
            sender=sender,
            now=lambda: PAPERS_SENT + timedelta(minutes=5),
            storage_dir=settings.documents_dir,
        )
    finally:
        catcher.stop()
    sent = [r for r in rows_since(session_factory, before) if r.action == "email.sent"]
    with_pack = [r for r in sent if r.record_type == "meeting" and r.detail.get("attachments")]
    assert [r.detail["recipient"] for r in with_pack] == [CAMHS]
    assert with_pack[0].detail["referrals_in_attachments"] == listed
    [row] = naming(sent, "referral", listed[0])
    assert (row.detail["recipient"], row.detail["via"]) == (CAMHS, "attached papers")
    assert row.detail["message_id"] == with_pack[0].detail["message_id"]
    assert row.id in [r.id for r in access_log_rows(session_factory, listed[0])]
    without = [r for r in sent if r.record_type == "meeting" and not r.detail.get("attachments")]
    assert without and all("referrals_in_attachments" not in r.detail for r in without)  # a link only


@pytest.mark.parametrize(
    ("method", "status", "written"),
    [
        ("GET", 200, True),
        ("GET", 303, False),
        ("GET", 404, False),
        ("POST", 200, False),
        ("POST", 303, False),
        ("POST", 400, True),
    ],
)
def test_a_read_through_a_meeting_is_written_only_when_the_response_showed_the_cases(
    session_factory, clock, method, status, written
):
    """A page or file shown (or a form shown again with its problems) is a look; a redirect, a 'not found' or
    an autosave in the meeting room is not."""
    collector, token = audit.start_collecting(ip_address=IP, method=method, path="/meetings/4/room")
    try:
        audit.note_access("meeting", 4, "minute", actor_person_id=None, actor_label="chair@example.org")
        audit.note_read_via("referral", [7, 8, 7], "room", meeting_id=4, actor_label="chair@example.org")
    finally:
        audit.stop_collecting(token)
    with transaction(session_factory) as session:
        rows = audit.flush_accesses(
            session,
            collector,
            now=clock.now(),
            method=method,
            path="/meetings/4/room",
            status=status,
            ip_address=IP,
            user_agent="ua",
        )
        found = [(r.action, r.record_type, r.record_id, r.detail.get("via"), r.detail.get("meeting_id")) for r in rows]
    via_rows = [("referral.viewed", "referral", i, "room", 4) for i in ("7", "8")]
    assert [f for f in found if f[1] == "referral"] == (via_rows if written else [])
    assert [f[1] for f in found if f[1] == "meeting"] == ["meeting"]  # the meeting itself, as before
