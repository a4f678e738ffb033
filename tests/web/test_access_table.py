"""docs/access.md's table of who may do what, walked against the running app.

Each column is a person signed in through the emailed link (or nobody); each row is a request. A refused
request must answer 403 or 404 (the API 401/403/404), show nothing of the child and change nothing; an allowed one
must answer, and a page must show the record named in the row's Shows column ("empty": answer without it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agencies.api_tokens import create_api_token
from agencies.models import Agency, Person, Role
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from caseconf.schema import load_metadata
from meetings.documents import store_file
from meetings.models import (
    Action,
    ActionStatus,
    Document,
    DocumentKind,
    Meeting,
    MeetingSeries,
    PupilOfConcern,
    Referral,
    ReferralStatus,
)
from notifications.emails import MailContext
from notifications.papers_mail import circulate_papers, freeze_meeting
from tests.factories import DEMO_MONDAY, load_demo_invited, make_person
from tests.web.conftest import csrf_from, sign_in

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
CLINIC = date(2026, 12, 3)
HELD = date(2026, 11, 12)
PAPERS_OUT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # the day after the papers went out
WINDOW_CLOSED = datetime(2027, 1, 8, 10, 0, tzinfo=UTC)  # 3 December + 28 days has passed
HEALTH_MARK = "Healthmarker sleep clinic review"
SAFETY_MARK = "Safetymarker seen near the station"
ACTION_TEXT = "Accessmarker: offer a CAMHS consultation to the school"
DOCUMENT_NAME = "accessmarker-attendance.pdf"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

# column -> (email, when they ask)
COLUMNS = {
    "Anon": (None, PAPERS_OUT),
    "Admin": ("admin@kestrelford.example.org", PAPERS_OUT),
    "Coord": ("clinic.coordinator@kestrelford.example.org", PAPERS_OUT),
    "EIP": ("eip.west@kestrelford.example.org", PAPERS_OUT),
    "EIP-X": ("eip.north@kestrelford.example.org", PAPERS_OUT),
    "Rep": ("camhs.rep@kestrelford.example.org", PAPERS_OUT),
    "Rep-late": ("camhs.rep@kestrelford.example.org", WINDOW_CLOSED),
    "Rep-X": ("lado.rep@kestrelford.example.org", PAPERS_OUT),
    "School": ("dsl@kestrelford-academy.example.org", PAPERS_OUT),
    "School-X": ("dsl@alderbrook.example.org", PAPERS_OUT),
    "DPO": ("access.dpo@kestrelford.example.org", PAPERS_OUT),
}


@dataclass(frozen=True)
class Row:
    resource: str
    action: str
    method: str
    path: str
    shows: str
    cells: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.resource} / {self.action} ({self.method} {self.path})"


def table_rows() -> list[Row]:
    text = DOC.read_text()
    block = text.split("<!-- access-table:start -->")[1].split("<!-- access-table:end -->")[0]
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[4:] == list(COLUMNS), header
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method, path = cells[2].split(" ", 1)
        rows.append(Row(cells[0], cells[1], method, path, cells[3], dict(zip(header[4:], cells[4:], strict=True))))
    return rows


def test_the_table_names_every_route_of_the_app(app):
    """Every route the app serves is in the table (or is public and listed here), so nothing escapes it."""
    public = {
        ("GET", "/healthz"),
        ("GET", "/sign-in"),
        ("POST", "/sign-in"),
        ("GET", "/sign-in/check-email"),
        ("GET", "/sign-in/confirm"),
        ("POST", "/sign-in/confirm"),
        ("GET", "/sign-out"),
        ("POST", "/sign-out"),
        ("GET", "/calendar/{token}.ics"),  # the feed's own secret token is its key
        ("GET", "/api/openapi.json"),
    }
    routes = set()
    for route in _all_routes(app):
        for method in route.methods - {"HEAD"}:
            routes.add((method, route.path))
    listed = {(r.method, _template(r.path)) for r in table_rows()}
    # The table names one example of each family of room, minutes and admin forms; the rest share its rule.
    families = [re.compile(p) for p in FAMILIES]
    missing = sorted(
        f"{m} {p}"
        for m, p in routes - public
        if (m, p) not in listed and not any(f.fullmatch(f"{m} {p}") for f in families)
    )
    assert not missing, "routes not in docs/access.md: " + ", ".join(missing)


# Routes that follow the rule of a listed sibling (the same access check in the same router).
FAMILIES = (
    r"POST /meetings/\{meeting_id\}/room/.*",
    r"GET /meetings/\{meeting_id\}/minutes/.*",
    r"POST /meetings/\{meeting_id\}/minutes/.*",
    r"(GET|POST) /admin/series/\{series_id\}/.*",
    r"(GET|POST) /admin/meetings/\{meeting_id\}/.*",
    r"POST /calendar/off",
    r"POST /blockages/\{wait_id\}/resolve",
    r"GET /referrals/\{referral_id\}/pages/\{key\}",
    r"POST /referrals/\{referral_id\}/pages/\{key\}",
    r"POST /api/v1/referrals",  # the API's submit: schools only (tests/web/test_api.py)
    r"GET /outbox.*",  # the built-in mail catcher's view: loopback only, never in production
    r"GET /data-protection/runs/\{run_id\}",  # a run's report: the same rule as the list of runs
    r"POST /data-protection/subject-access/\{child_id\}",  # the export: tests/web/test_data_protection_web.py
    r"GET /referrals/\{referral_id\}/consent/withdrawn",  # the confirmation after withdrawing
)


def _all_routes(app):
    import pkgutil
    from importlib import import_module

    import web.routers

    modules = [import_module(f"web.routers.{m.name}") for m in pkgutil.iter_modules(web.routers.__path__)]
    for module in modules:
        yield from module.router.routes
    yield from (r for r in app.routes if getattr(r, "methods", None))


PLACEHOLDER_NAMES = {
    "referral": "referral_id",
    "draft": "referral_id",
    "document": "document_id",
    "draft_document": "document_id",
    "meeting": "meeting_id",
    "held": "meeting_id",
    "item": "item_id",
    "action": "action_id",
    "series": "series_id",
    "concern": "concern_id",
    "reference": "reference",
}


def _template(path: str) -> str:
    """/referrals/{draft}/pages/child -> /referrals/{referral_id}/pages/{key}-style route template."""
    path = re.sub(r"\{(\w+)\}", lambda m: "{" + PLACEHOLDER_NAMES[m.group(1)] + "}", path.split("?")[0])
    path = path.replace("/pages/child", "/pages/{key}").replace(
        "/triage/{referral_id}/decline", "/triage/{referral_id}/{decision}"
    )
    return path


@pytest.fixture
def clock():
    return FixedClock(PAPERS_OUT)


@pytest.fixture
def world(session_factory, settings, clock):
    """The demo borough: the 3 December clinic's papers sent, its referral with restricted sections and a
    document, a draft of the same school, an action, a pupil of concern, an API token for everyone."""
    meeting = load_demo_invited(session_factory, DEMO_MONDAY, on=CLINIC)
    mail = MailContext.from_settings(settings)
    with transaction(session_factory) as session:
        freeze_meeting(session, meeting.id, now=datetime(2026, 11, 30, 12, 1, tzinfo=UTC), mail=mail)
    with transaction(session_factory) as session:
        at = datetime(2026, 12, 1, 9, 1, tzinfo=UTC)
        assert circulate_papers(session, meeting.id, now=at, mail=mail, storage_dir=settings.documents_dir)
    with transaction(session_factory) as session:
        meeting = session.get(Meeting, meeting.id)
        item = meeting.items[0]
        referral = item.referral
        referral.health = {"camhs_history": HEALTH_MARK}
        referral.community_safety = {"notes": SAFETY_MARK}
        dsl = session.scalar(select(Person).where(Person.email == COLUMNS["School"][0]))
        camhs = session.scalar(select(Agency).where(Agency.code == "CAMHS"))
        document = _document(session, settings, referral.id, DOCUMENT_NAME, dsl.id)
        draft = Referral(
            status=ReferralStatus.draft,
            school_id=referral.school_id,
            referrer_id=dsl.id,
            created_at=PAPERS_OUT,
            updated_at=PAPERS_OUT,
        )
        session.add(draft)
        session.flush()
        draft_document = _document(session, settings, draft.id, "draft-plan.pdf", dsl.id)
        action = Action(
            agenda_item_id=item.id,
            referral_id=referral.id,
            description=ACTION_TEXT,
            owner_agency_id=camhs.id,
            due_on=date(2026, 12, 17),
            status=ActionStatus.open,
            involves_school=True,
            created_at=PAPERS_OUT,
        )
        concern = PupilOfConcern(
            school_id=referral.school_id,
            label="AB Year 8",
            concern="Attendance falling",
            added_by_id=dsl.id,
            added_at=PAPERS_OUT,
        )
        session.add_all([action, concern])
        make_person(session, email=COLUMNS["DPO"][0], name="Access Dpo", role=Role.data_protection_officer)
        session.flush()
        held = session.scalar(select(Meeting).where(Meeting.meeting_date == HELD))
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.id == meeting.series_id))
        tokens = {}
        for email, _ in COLUMNS.values():
            if email is not None and email not in tokens:
                person = session.scalar(select(Person).where(Person.email == email))
                tokens[email] = create_api_token(
                    session,
                    person_id=person.id,
                    name="access table",
                    now=DEMO_MONDAY,
                    valid_for=timedelta(days=90),
                    actor_label="test",
                ).raw_token
        child = referral.child
        return {
            "ids": {
                "referral": referral.id,
                "draft": draft.id,
                "document": document.id,
                "draft_document": draft_document.id,
                "meeting": meeting.id,
                "held": held.id,
                "item": item.id,
                "action": action.id,
                "series": series.id,
                "concern": concern.id,
                "reference": referral.reference,
            },
            "marks": {
                "reference": referral.reference,
                "health": HEALTH_MARK,
                "community safety": SAFETY_MARK,
                "document": DOCUMENT_NAME,
                "meeting": "3 December 2026",
                "minutes": "12 November 2026",
                "action": ACTION_TEXT,
            },
            "child": f"{child.legal_first_name} {child.legal_surname}",
            "tokens": tokens,
        }


def _document(session, settings, referral_id: int, name: str, person_id: int) -> Document:
    data = PDF + name.encode()
    document = Document(
        kind=DocumentKind.upload,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        content_type="application/pdf",
        original_filename=name,
        referral_id=referral_id,
        uploaded_by_id=person_id,
        created_at=PAPERS_OUT,
    )
    session.add(document)
    session.flush()
    store_file(session, settings.documents_dir, document, data)
    return document


def _counts(session_factory) -> dict[str, int]:
    """Rows in every table but the audit log (refusals are audited)."""
    with session_factory() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t))
            for t in load_metadata().sorted_tables
            if t.name != AuditEvent.__tablename__
        }


class Walker:
    def __init__(self, app, session_factory, clock, world):
        self.app, self.session_factory, self.clock, self.world = app, session_factory, clock, world
        self.clients: dict[str, TestClient] = {}
        self.csrf: dict[str, str] = {}
        self.failures: list[str] = []

    def client(self, column: str) -> TestClient:
        email, when = COLUMNS[column]
        self.clock.at = when
        if column not in self.clients:
            ip = f"10.0.{list(COLUMNS).index(column)}.1"
            client = TestClient(self.app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=(ip, 1))
            client.__enter__()
            if email is not None:
                sign_in(client, self.session_factory, email)
                self.csrf[column] = csrf_from(client.get("/").text)
            else:
                self.csrf[column] = csrf_from(client.get("/sign-in").text)
            self.clients[column] = client
        return self.clients[column]

    def close(self):
        for client in self.clients.values():
            client.__exit__(None, None, None)

    def request(self, row: Row, column: str):
        path = re.sub(r"\{(\w+)\}", lambda m: str(self.world["ids"][m.group(1)]), row.path)
        client = self.client(column)
        if path.startswith("/api/"):
            email = COLUMNS[column][0]
            headers = {"Authorization": f"Bearer {self.world['tokens'][email]}"} if email else {}
            bare = TestClient(self.app, base_url="http://127.0.0.1:8000", follow_redirects=False)
            return bare.request(row.method, path, headers=headers)
        if row.method == "GET":
            return client.get(path)
        return client.post(path, data={"csrf_token": self.csrf[column]})

    def fail(self, row: Row, column: str, why: str, response) -> None:
        self.failures.append(f"{column:9} {row.name}: {why} (got {response.status_code})")

    def check(self, row: Row, column: str) -> None:
        expected = row.cells[column]
        response = self.request(row, column)
        body = response.text
        api = row.path.startswith("/api/")
        mark = self.world["marks"].get(row.shows) if row.shows else None
        if response.status_code >= 500:
            self.fail(row, column, "server error", response)
        elif expected == "sign in":
            ok = (
                response.status_code == 401
                if api
                else (response.status_code == 303 and response.headers["location"].startswith("/sign-in"))
            )
            if not ok:
                self.fail(row, column, "should be sent to sign in", response)
        elif expected == "no":
            if response.status_code not in ((401, 403, 404) if api else (403, 404)):
                self.fail(row, column, "should be refused", response)
            if self.world["child"] in body or (mark and mark in body):
                self.fail(row, column, "refused, yet shows the case", response)
        elif row.method != "GET":
            if response.status_code in (401, 403) or response.headers.get("location", "").startswith("/sign-in"):
                self.fail(row, column, "should be allowed", response)
        elif response.status_code != 200:
            self.fail(row, column, f"should answer 200 ({expected})", response)
        elif mark and expected == "yes" and mark not in body:
            self.fail(row, column, f"should show the {row.shows}", response)
        elif mark and expected == "empty" and mark in body:
            self.fail(row, column, f"should not show the {row.shows}", response)


@pytest.fixture
def walker(app, session_factory, clock, world):
    walker = Walker(app, session_factory, clock, world)
    yield walker
    walker.close()


def test_reading_follows_the_table(walker):
    for row in (r for r in table_rows() if r.method == "GET"):
        for column in COLUMNS:
            walker.check(row, column)
    assert not walker.failures, "\n" + "\n".join(walker.failures)


def test_refused_changes_change_nothing_and_allowed_ones_are_let_through(walker, session_factory):
    rows = [r for r in table_rows() if r.method != "GET"]
    for column in COLUMNS:
        walker.client(column)  # everyone signs in before the counting starts
    before = _counts(session_factory)
    for row in rows:
        for column, expected in row.cells.items():
            if expected != "yes":
                walker.check(row, column)
    assert _counts(session_factory) == before, "a refused request changed something"
    # The allowed ones go last, row by row (they may change what later rows find, never who may ask).
    for row in rows:
        for column, expected in row.cells.items():
            if expected == "yes":
                walker.check(row, column)
    assert not walker.failures, "\n" + "\n".join(walker.failures)


def test_an_agency_reads_nothing_before_the_papers_go_out(app, session_factory, settings, clock):
    meeting = load_demo_invited(session_factory, DEMO_MONDAY, on=CLINIC)
    with session_factory() as session:
        referral_id = session.get(Meeting, meeting.id).items[0].referral_id
    clock.at = PAPERS_OUT
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=("10.9.0.1", 1)) as client:
        sign_in(client, session_factory, COLUMNS["Rep"][0])
        referral_page = client.get(f"/referrals/{referral_id}")
        assert referral_page.status_code == 403
        contributions = client.get(f"/meetings/{meeting.id}/contributions")
        assert contributions.status_code == 403
        assert client.get(f"/meetings/{meeting.id}/papers").status_code == 404  # none yet
        with session_factory() as session:
            child = session.get(Referral, referral_id).child
        assert child.legal_surname not in referral_page.text + contributions.text


def test_an_agency_reads_nothing_more_once_consent_is_withdrawn(walker, session_factory, world):
    rep = walker.client("Rep")
    path = f"/referrals/{world['ids']['referral']}"
    page = rep.get(path)
    assert page.status_code == 200 and world["child"] in page.text
    assert f'<a class="govuk-link" href="/meetings/{world["ids"]["meeting"]}">' in page.text and "&lt;a" not in page.text
    assert "What is happening" in page.text and "Consent or lawful basis" in page.text  # what the pack shows
    with transaction(session_factory) as session:
        session.get(Referral, world["ids"]["referral"]).consent_withdrawn_at = PAPERS_OUT
    refused = rep.get(path)
    assert refused.status_code == 403 and world["child"] not in refused.text
    assert walker.client("School").get(path).status_code == 200  # the school still follows its own


def test_anything_the_policy_does_not_name_is_refused(world, session_factory):
    from meetings.access import can, can_on_action, can_on_meeting, can_on_referral, principal_for

    with session_factory() as session:
        coordinator = principal_for(
            session.scalar(select(Person).where(Person.email == COLUMNS["Coord"][0])), now=PAPERS_OUT
        )
        referral = session.get(Referral, world["ids"]["referral"])
        meeting = session.get(Meeting, world["ids"]["meeting"])
        action = session.get(Action, world["ids"]["action"])
        assert can_on_referral(coordinator, "view", referral)  # so the refusals below are about the names
        assert not can(coordinator, "referral.delete")
        assert not can_on_referral(coordinator, "delete", referral)
        assert not can_on_meeting(session, coordinator, "delete", meeting)
        assert not can_on_action(coordinator, "delete", action)
        assert not can(None, "home.view")


def test_a_refused_read_is_audited_as_refused_never_as_viewed(walker, session_factory, world, app):
    """The referral's access log must not say someone viewed it when they were refused: the agency's API read
    (its whole-referral answer is for full readers only) and the coordinator's consent page (only the school and
    the area's EIP may withdraw consent) each pass the first check, then are refused."""
    referral_id = str(world["ids"]["referral"])
    with session_factory() as session:
        before = session.scalar(select(func.max(AuditEvent.id)))
    api = TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False)
    token = world["tokens"][COLUMNS["Rep"][0]]
    walker.clock.at = PAPERS_OUT
    answer = api.get(f"/api/v1/referrals/{world['ids']['reference']}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    assert walker.client("Coord").get(f"/referrals/{referral_id}/consent/withdraw").status_code == 403
    with session_factory() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.id > before)).all()
        viewed = [(r.actor_label, r.action) for r in rows if r.record_id == referral_id]
        refused = [r.action for r in rows if r.action in ("api.refused", "access.refused")]
    assert viewed == [], "a refused read was logged as a view"
    assert sorted(refused) == ["access.refused", "api.refused"]


def test_the_chair_of_a_meeting_listing_it_reads_the_referrals_access_log(app, session_factory, world):
    """eip.east chairs the 3 December clinic: not the referral's area, yet its chair (DESIGN.md section 6)."""
    path = f"/referrals/{world['ids']['referral']}/access-log"
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False, client=("10.8.0.1", 1)) as client:
        sign_in(client, session_factory, "eip.east@kestrelford.example.org")
        page = client.get(path)
        assert page.status_code == 200 and world["marks"]["reference"] in page.text
        assert client.get(f"/triage/{world['ids']['referral']}").status_code == 403  # the case is not theirs


def test_a_held_demo_clinic_has_papers_for_its_agencies(walker, world):
    """The demo's held clinics were recorded without the papers sweep: their packs are built when first asked."""
    held = world["ids"]["held"]
    rep = walker.client("Rep").get(f"/meetings/{held}/papers")
    assert rep.status_code == 200 and rep.headers["content-type"] == "application/pdf"
    assert "-camhs.pdf" in rep.headers["content-disposition"]
    full = walker.client("Coord").get(f"/meetings/{held}/papers")
    assert full.status_code == 200 and "-camhs" not in full.headers["content-disposition"]


def test_a_refused_minutes_read_is_audited_against_its_meeting(walker, session_factory, world):
    held = world["ids"]["held"]
    assert walker.client("Rep-late").get(f"/meetings/{held}/minutes").status_code == 403
    with session_factory() as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access.refused").order_by(AuditEvent.id.desc())
        ).first()
    assert (refused.record_type, refused.record_id) == ("meeting", str(held))
