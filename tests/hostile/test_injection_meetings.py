"""Script and template-injection payloads typed where meetings are run and followed up: agencies' information
before the meeting, the meeting room (notes, decision rationale and dissent, actions, the minutes summary),
corrections to the minutes and the chair's answer, pupils of concern, and action updates on the action page
and by email reply. Each is posted through the app as the person who would type it and read back through
every page, email, the minutes PDF and the actions CSV: shown as text, never run, fetching nothing.

One demo borough for the module (tests/hostile/conftest.py); its 3 December clinic is taken from invitations
to circulated, corrected minutes and chased actions, each stage run once and shared by the tests after it."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.db import transaction
from meetings import agenda, invitations
from meetings.concerns import next_tas_meeting
from meetings.demo import load_demo
from meetings.demo_pupils import TAS_NAME
from meetings.models import (
    Action,
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Contribution,
    Decision,
    Meeting,
    MeetingSeries,
    Minute,
    MinuteCorrection,
    PupilOfConcern,
)
from notifications import invites, minutes_mail
from notifications.delivery import Sender, build_email
from notifications.inbox import process_inbox, store_inbound
from notifications.models import InboundMessage, OutboundMessage
from notifications.papers_mail import circulate_papers
from tests.factories import MAIL, PAPERS_SENT, send_papers
from tests.hostile.conftest import REFERRER, still_serving
from tests.hostile.test_injection import PAYLOADS, _Recorder, listener_url, pdf_text  # noqa: F401 (a fixture)
from tests.integration.actions_setup import APP
from tests.integration.actions_setup import MAIL as REPLY_MAIL
from tests.web.conftest import csrf_from

CLINIC_DAY = date(2026, 12, 3)
ON_THE_DAY = datetime(2026, 12, 3, 13, 30, tzinfo=UTC)
FRIDAY = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
COORDINATOR = "clinic.coordinator@kestrelford.example.org"
CHAIR = "eip.east@kestrelford.example.org"
CAMHS = "camhs.rep@kestrelford.example.org"
HEALTH = "health.rep@kestrelford.example.org"
POLICE = "police.rep@kestrelford.example.org"
SCHOOL_DSL = "dsl@kestrelford-academy.example.org"

NUL = "before\x00after"
LONG = "long " + "x" * 9_995
HOSTILE = [*PAYLOADS, NUL, LONG]
assert len(LONG) == 10_000 and "{{7*7}}" in "".join(HOSTILE) and "{% raw %}" in "".join(HOSTILE)
FORMULAS = ['=HYPERLINK("http://127.0.0.1:9/x","open")', "+cmd|' /C calc'!A0", "-1+1", "@SUM(1+1)"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def combined(listener: str) -> str:
    """Every short payload on one line, with an image the PDF renderer must not fetch."""
    return " ".join(PAYLOADS) + f' <img src="{listener}/pdf-img"> end'


def shown(payload: str) -> str:
    """What a page, PDF or file shows for a kept payload: the NUL byte is taken out."""
    return payload.replace("\x00", "")


# ---- checks --------------------------------------------------------------------------------------------------


class _LiveMarkup(HTMLParser):
    """Collects anything in a page that would run: event handlers, javascript: URLs, an <img src=x>, a
    script with the payload's alert in it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}={value}>")
        if tag == "img" and dict(attrs).get("src") == "x":
            self.problems.append("<img src=x>")
        self._script = tag == "script"

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script and "alert(" in data:
            self.problems.append(f"<script>{data[:40]}")


def assert_safe(text: str, where: str) -> None:
    """No payload is live markup, none is evaluated as a template, and no NUL byte is sent."""
    assert "<script>alert" not in text, where
    assert not re.search(r"<img src=x onerror", text), where
    parser = _LiveMarkup()
    parser.feed(text)
    parser.close()
    assert parser.problems == [], f"{where}: {parser.problems}"
    assert "X49Y" not in text and "$49" not in text, f"{where}: a template was evaluated"
    assert "\x00" not in text, f"{where}: a NUL byte was sent"


def assert_shows(response, payload: str, where: str) -> None:
    assert response.status_code == 200, f"{where}: {response.status_code}"
    assert_safe(response.text, where)
    assert shown(payload) in html.unescape(response.text), f"{where} does not show {payload[:40]!r} as text"


def assert_clean(response, payload: str, where: str) -> bool:
    """A post answered with a redirect (True: kept) or a clear refusal that keeps what was typed (False)."""
    assert response.status_code < 500, f"{where}: {response.status_code} for {payload[:40]!r}"
    if response.status_code in (302, 303):
        return True
    assert response.status_code in (400, 409, 413, 422), f"{where}: {response.status_code}"
    assert_safe(response.text, where)
    assert "There is a problem" in response.text or response.status_code == 409, where
    assert shown(payload)[:2000] in html.unescape(response.text), f"{where} lost what was typed"
    return False


# ---- the shared story: one clinic, stage by stage ---------------------------------------------------------------


class Story:
    """The 3 December clinic's ids and what each stage kept; stages run once, in order, as tests need them."""

    def __init__(self, world, listener: str) -> None:
        self.world = world
        self.listener = listener
        self.done: set[str] = set()
        self.kept: dict[str, str] = {}
        self.kept_statuses: dict[str, object] = {}
        with transaction(world.session_factory) as session:
            series = session.scalar(
                select(MeetingSeries).where(MeetingSeries.name != TAS_NAME).order_by(MeetingSeries.id)
            )
            meeting = session.scalar(
                select(Meeting).where(Meeting.series_id == series.id, Meeting.meeting_date == CLINIC_DAY)
            )
            invites.send_invitations(session, meeting.id, now=world.clock.now(), mail=MAIL, organizer_name="Team")
            self.meeting_id = meeting.id
            item = session.scalars(
                select(AgendaItem).where(AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None))
            ).first()
            self.item_id, self.referral_id = item.id, item.referral_id
            self.camhs = session.scalar(select(Agency.id).where(Agency.code == "CAMHS"))
            self.camhs_rep = session.scalar(select(Person.id).where(Person.email == CAMHS))
        self.clients: dict[str, object] = {}

    def client(self, email: str):
        """Signed in by the emailed link at the story's current time (a sign-in does not last for days)."""
        key = f"{email} {self.world.clock.now().isoformat()}"
        if key not in self.clients:
            self.clients[key] = self.world.signed_in(email)
        return self.clients[key]

    def close(self) -> None:
        for client in self.clients.values():
            client.__exit__(None, None, None)

    @property
    def room(self) -> str:
        return f"/meetings/{self.meeting_id}/room"

    def version(self, model, **where) -> int:
        with self.world.session_factory() as session:
            row = session.scalar(select(model).filter_by(**where))
            if row is None:
                return 0
            return (row.notes_version if isinstance(row, AgendaItem) else row.version) or 0


@pytest.fixture(scope="module")
def story(world, listener_url):  # noqa: F811 (the fixture imported above)
    story = Story(world, listener_url)
    yield story
    story.close()


def post(client, url: str, data: dict, page: str | None = None):
    got = client.get(page or url)
    assert got.status_code == 200, f"{page or url}: {got.status_code} {got.text[:300]}"
    token = csrf_from(got.text)
    return client.post(url, data={"csrf_token": token, **data})


# ---- before the meeting: agencies' information ----------------------------------------------------------------


def contributions_stage(story: Story) -> list[tuple[str, int]]:
    if "contributions" in story.done:
        return story.kept_statuses["contributions"]
    # Agencies read the listed cases, and add what they know, once the papers are out (Tuesday morning).
    send_papers(story.world.session_factory, story.world.settings, story.meeting_id)
    story.world.clock.at = PAPERS_SENT + timedelta(hours=1)
    rep = story.client(CAMHS)
    url = f"/meetings/{story.meeting_id}/contributions"
    action = f"/meetings/{story.meeting_id}/items/{story.item_id}/contribution"
    statuses = []
    for payload in [*HOSTILE, combined(story.listener)]:
        base = story.version(Contribution, agenda_item_id=story.item_id, agency_id=story.camhs)
        response = post(rep, action, {"body": payload, "base_version": str(base), "visibility": "all_invitees"}, url)
        kept = assert_clean(response, payload, f"contribution {payload[:20]!r}")
        statuses.append((payload, response.status_code))
        if kept:
            assert_shows(rep.get(url), payload, "the contributions page")
    story.kept["contribution"] = combined(story.listener)
    story.kept_statuses["contributions"] = statuses
    story.done.add("contributions")
    return statuses


def test_agency_information_before_the_meeting(story):
    statuses = contributions_stage(story)
    assert [s for _, s in statuses].count(303) >= len(PAYLOADS) + 1  # every short payload was kept as text
    with story.world.session_factory() as session:
        body = session.scalar(
            select(Contribution.body).where(
                Contribution.agenda_item_id == story.item_id, Contribution.agency_id == story.camhs
            )
        )
    assert body == story.kept["contribution"]
    assert_shows(story.client(HEALTH).get(f"/meetings/{story.meeting_id}/contributions"), body, "another agency's view")
    assert_shows(story.client(COORDINATOR).get(f"/meetings/{story.meeting_id}"), body, "the meeting page")
    still_serving(story.world, story.client(CAMHS), "/my-meetings")


# ---- the meeting room ------------------------------------------------------------------------------------------


def room_stage(story: Story) -> dict[str, list[tuple[str, int]]]:
    if "room" in story.done:
        return story.kept_statuses["room"]
    contributions_stage(story)
    world = story.world
    with transaction(world.session_factory) as session:
        meeting = session.get(Meeting, story.meeting_id)
        invitations.sync_invitations(session, meeting, now=world.clock.now())
    world.clock.at = ON_THE_DAY
    coordinator = story.client(COORDINATOR)
    base = story.room
    assert post(coordinator, f"{base}/open", {}, base).status_code == 303
    statuses: dict[str, list[tuple[str, int]]] = {"notes": [], "rationale": [], "dissent": [], "action": []}
    final = combined(story.listener)

    for payload in [*HOSTILE, final]:
        version = story.version(AgendaItem, id=story.item_id)
        response = post(
            coordinator, f"{base}/items/{story.item_id}/notes", {"text": payload, "base_version": str(version)}, base
        )
        if assert_clean(response, payload, "notes"):
            assert_shows(coordinator.get(base), payload, "the room (notes)")
        statuses["notes"].append((payload, response.status_code))

    decided = post(
        coordinator,
        f"{base}/items/{story.item_id}/decision",
        {"option": "support_agreed", "rationale": final, "dissent": final, "base_version": "0"},
        base,
    )
    assert decided.status_code == 303, decided.text[:1000]
    for field in ("rationale", "dissent"):
        for payload in [*HOSTILE, final]:
            version = story.version(Decision, agenda_item_id=story.item_id)
            response = post(
                coordinator,
                f"{base}/items/{story.item_id}/decision/{field}",
                {"text": payload, "base_version": str(version)},
                base,
            )
            if assert_clean(response, payload, f"decision {field}"):
                assert_shows(coordinator.get(base), payload, f"the room ({field})")
            statuses[field].append((payload, response.status_code))

    for payload in [*HOSTILE, *FORMULAS]:
        response = post(
            coordinator,
            f"{base}/items/{story.item_id}/actions",
            {
                "description": payload,
                "owner": f"agency:{story.camhs}",
                "owner_person_id": str(story.camhs_rep),
                "due_on": "2026-12-10",
                "involves_school": "yes",
            },
            base,
        )
        if assert_clean(response, payload, "action description"):
            assert_shows(coordinator.get(base), payload, "the room (action)")
        statuses["action"].append((payload, response.status_code))

    with world.session_factory() as session:
        meeting = session.get(Meeting, story.meeting_id)
        others = [(i.id, i.kind) for i in meeting.items if i.id != story.item_id]
    for other_id, kind in others:
        if kind == AgendaItemKind.referral:
            post(coordinator, f"{base}/items/{other_id}/decision", {"option": "closed", "rationale": "Resolved"}, base)
        elif kind == AgendaItemKind.action_review:
            post(coordinator, f"{base}/items/{other_id}/review", {"outcome": "done"}, base)
    ended = post(coordinator, f"{base}/end", {}, base)
    assert ended.status_code == 303, ended.text[:2000]

    statuses["summary"] = []
    for payload in [*HOSTILE, final]:
        version = story.version(Minute, meeting_id=story.meeting_id)
        response = post(coordinator, f"{base}/summary", {"text": payload, "base_version": str(version)}, base)
        if assert_clean(response, payload, "summary"):
            assert_shows(coordinator.get(base), payload, "the room (summary)")
        statuses["summary"].append((payload, response.status_code))
    story.kept_statuses["room"] = statuses
    story.done.add("room")
    return statuses


def test_notes_decisions_actions_and_summary_in_the_meeting_room(story):
    statuses = room_stage(story)
    for field in ("notes", "rationale", "dissent", "summary"):
        assert all(code == 303 for _, code in statuses[field]), (field, statuses[field])
    actions = dict(statuses["action"])
    assert actions[LONG] == 400  # too long for an action, refused with the text kept
    assert all(actions[p] == 303 for p in [*PAYLOADS, NUL, *FORMULAS])
    final = combined(story.listener)
    with story.world.session_factory() as session:
        item = session.get(AgendaItem, story.item_id)
        decision = session.scalar(select(Decision).where(Decision.agenda_item_id == story.item_id))
        minute = session.scalar(select(Minute).where(Minute.meeting_id == story.meeting_id))
        descriptions = set(session.scalars(select(Action.description).where(Action.agenda_item_id == story.item_id)))
    assert (item.notes, decision.rationale, decision.dissent, minute.summary) == (final, final, final, final)
    assert shown(NUL) in descriptions and NUL not in descriptions and set(PAYLOADS) <= descriptions
    coordinator = story.client(COORDINATOR)
    for page in (story.room, f"/meetings/{story.meeting_id}/minutes"):
        assert_shows(coordinator.get(page), final, page)
    meeting_page = coordinator.get(f"/meetings/{story.meeting_id}")
    assert meeting_page.status_code == 200
    assert_safe(meeting_page.text, "the meeting page")
    still_serving(story.world, coordinator, "/")


# ---- minutes: approval, circulation, the PDF, corrections --------------------------------------------------------


def minutes_stage(story: Story) -> None:
    if "minutes" in story.done:
        return
    room_stage(story)
    world = story.world
    world.clock.at = FRIDAY
    url = f"/meetings/{story.meeting_id}/minutes"
    approved = post(story.client(CHAIR), f"{url}/approve", {})
    assert approved.status_code == 303, approved.text[:1000]
    with transaction(world.session_factory) as session:
        minutes_mail.send_outcomes(session, story.meeting_id, now=FRIDAY, mail=MAIL)
    circulated = post(story.client(COORDINATOR), f"{url}/circulate", {})
    assert circulated.status_code == 303, circulated.text[:1000]
    story.done.add("minutes")


def test_the_minutes_pages_and_pdf_show_the_payloads_as_text_and_fetch_nothing(story):
    _Recorder.hits.clear()
    minutes_stage(story)
    final = combined(story.listener)
    url = f"/meetings/{story.meeting_id}/minutes"
    for email in (CHAIR, COORDINATOR, CAMHS):
        assert_shows(story.client(email).get(url), final, f"the minutes for {email}")
    police = story.client(POLICE).get(url)
    assert police.status_code == 200
    assert_safe(police.text, "the minutes for the police")
    for email in (COORDINATOR, CAMHS):
        pdf = story.client(email).get(f"/meetings/{story.meeting_id}/minutes.pdf")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        flat = "".join(pdf_text(pdf.content).split())
        for payload in (
            "<script>alert(1)</script>",
            '"><imgsrc=xonerror=alert(1)>',
            "X{{7*7}}Y",
            "{%raw%}R{%endraw%}",
            "${7*7}",
            "javascript:alert(1)",
            f'<imgsrc="{story.listener}/pdf-img">',
        ):
            assert payload in flat, f"the minutes PDF for {email} does not show {payload}"
        assert "X49Y" not in flat
    school = story.client(SCHOOL_DSL).get(f"/referrals/{story.referral_id}")
    assert school.status_code == 200
    assert_safe(school.text, "the school's referral page")
    assert "<script>alert(1)</script>" in html.unescape(school.text)  # the school's own actions, as text
    assert _Recorder.hits == [], f"the minutes PDF fetched {_Recorder.hits}"
    still_serving(story.world, story.client(COORDINATOR), url)


def corrections_stage(story: Story) -> dict[str, list[tuple[str, int]]]:
    if "corrections" in story.done:
        return story.kept_statuses["corrections"]
    minutes_stage(story)
    story.world.clock.at = TUESDAY
    url = f"/meetings/{story.meeting_id}/minutes"
    police = story.client(POLICE)
    statuses: dict[str, list[tuple[str, int]]] = {"correction": [], "response": [], "text": []}
    for payload in HOSTILE:
        response = post(police, f"{url}/corrections/new", {"item": str(story.item_id), "body": payload})
        if assert_clean(response, payload, "correction"):
            assert_shows(police.get(url), payload, "the minutes (correction)")
        statuses["correction"].append((payload, response.status_code))
    with story.world.session_factory() as session:
        open_ids = list(
            session.scalars(
                select(MinuteCorrection.id)
                .join(Minute)
                .where(Minute.meeting_id == story.meeting_id)
                .order_by(MinuteCorrection.id)
            )
        )
    chair = story.client(CHAIR)
    final = combined(story.listener)
    # Each wrong answer is refused with what was typed kept; then one declined and one accepted with payloads.
    target = open_ids[0]
    for payload in HOSTILE:
        response = post(chair, f"{url}/corrections/{target}", {"answer": "", "response": payload})
        assert_clean(response, payload, "the chair's answer (refused)")
        statuses["response"].append((payload, response.status_code))
    declined = post(chair, f"{url}/corrections/{target}", {"answer": "decline", "response": final})
    assert assert_clean(declined, final, "the chair's answer (declined)")
    accept_url = f"{url}/corrections/{open_ids[1]}"
    form = chair.get(accept_url)
    version = re.search(r'name="base_version" value="(\d+)"', form.text).group(1)
    for payload in [LONG, final]:
        response = chair.post(
            accept_url,
            data={
                "csrf_token": csrf_from(form.text),
                "answer": "accept",
                "response": final,
                "text": payload + " corrected",
                "base_version": version,
            },
        )
        assert_clean(response, payload, "the chair's corrected text")
        statuses["text"].append((payload, response.status_code))
        if response.status_code == 303:
            break
    story.kept_statuses["corrections"] = statuses
    story.done.add("corrections")
    return statuses


def test_corrections_and_the_chairs_answer(story):
    _Recorder.hits.clear()
    statuses = corrections_stage(story)
    assert all(code in (303, 400) for _, code in statuses["correction"]), statuses["correction"]
    assert dict(statuses["correction"])["<script>alert(1)</script>"] == 303
    assert all(code == 400 for _, code in statuses["response"])  # no answer chosen: refused, text kept
    assert statuses["text"][-1][1] == 303
    final = combined(story.listener)
    url = f"/meetings/{story.meeting_id}/minutes"
    for email in (POLICE, CHAIR, COORDINATOR):
        page = story.client(email).get(url)
        assert_shows(page, final, f"the corrected minutes for {email}")
        assert_shows(page, "<script>alert(1)</script>", f"the corrections listed for {email}")
    with story.world.session_factory() as session:
        bodies = list(
            session.scalars(select(MinuteCorrection.body).join(Minute).where(Minute.meeting_id == story.meeting_id))
        )
    assert all("\x00" not in b for b in bodies)
    pdf = story.client(POLICE).get(f"/meetings/{story.meeting_id}/minutes.pdf")
    assert pdf.status_code == 200
    assert "X{{7*7}}Ycorrected" in "".join(pdf_text(pdf.content).split()) or "X{{7*7}}Y" in pdf_text(pdf.content)
    assert _Recorder.hits == [], f"the corrected minutes PDF fetched {_Recorder.hits}"
    still_serving(story.world, story.client(CHAIR), url)


# ---- pupils of concern (Team Around the School) ----------------------------------------------------------------


def test_pupil_of_concern_label_concern_and_ask(world):
    with transaction(world.session_factory) as session:
        load_demo(session, now=world.clock.now(), team_around_school=True)
        school_id = session.scalar(select(MeetingSeries.school_id).where(MeetingSeries.name == TAS_NAME))
    school = world.signed_in(REFERRER)
    try:
        form_url = f"/tas/concerns/new?school={school_id}"
        typical = {
            "school_id": str(school_id),
            "label": "JB Year 4",
            "concern": "Sits alone at lunch.",
            "ask": "",
            "agreed": "yes",
            "agreed_day": "20",
            "agreed_month": "11",
            "agreed_year": "2026",
        }
        outcomes: dict[tuple[str, str], int] = {}
        for field in ("label", "concern", "ask"):
            for payload in HOSTILE:
                response = post(school, "/tas/concerns/new", typical | {field: payload}, form_url)
                kept = assert_clean(response, payload, f"pupil of concern {field}")
                outcomes[(field, payload)] = response.status_code
                if kept and field != "ask":
                    assert_shows(school.get("/tas"), payload, f"the school's list ({field})")
        assert outcomes[("label", NUL)] == 400 and outcomes[("label", LONG)] == 400
        assert outcomes[("label", "<script>alert(1)</script>")] == 303
        assert outcomes[("concern", LONG)] == 400 and outcomes[("ask", LONG)] == 400
        assert all(outcomes[(f, p)] == 303 for f in ("concern", "ask") for p in [*PAYLOADS, NUL])
        with world.session_factory() as session:
            rows = session.scalars(select(PupilOfConcern).where(PupilOfConcern.school_id == school_id)).all()
        assert rows and all("\x00" not in (r.label + r.concern + (r.ask or "")) for r in rows)
        assert {"<script>alert(1)</script>", "X{{7*7}}Y"} <= {r.ask for r in rows}
        still_serving(world, school, "/tas")
    finally:
        school.__exit__(None, None, None)

    # Listed on the next meeting's agenda at its cut-off, they are read by the invited agencies and the coordinator.
    with transaction(world.session_factory) as session:
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == TAS_NAME))
        meeting = next_tas_meeting(session, series, now=world.clock.now())
        invitations.sync_invitations(session, meeting, now=world.clock.now())
        agenda.freeze(session, meeting, now=meeting.cutoff_at)
        meeting_id = meeting.id
    with transaction(world.session_factory) as session:  # the agencies read the agenda once the papers are out
        papers_at = max(world.clock.now(), session.get(Meeting, meeting_id).papers_due_at)
        assert circulate_papers(session, meeting_id, now=papers_at, mail=MAIL, storage_dir=world.settings.documents_dir)
    world.clock.at = papers_at + timedelta(minutes=5)
    with world.session_factory() as session:
        listed = session.scalars(
            select(AgendaItem).where(
                AgendaItem.meeting_id == meeting_id,
                AgendaItem.concern_id.is_not(None),
                AgendaItem.status == AgendaItemStatus.listed,
            )
        ).all()
    assert listed, "no pupil of concern was put on the agenda"
    with world.session_factory() as session:
        on_agenda = [session.get(PupilOfConcern, item.concern_id) for item in listed]
        typed = [(c.label, c.concern, c.ask or "Not given") for c in on_agenda]
    assert any("<" in label or "{" in label for label, _, _ in typed), typed  # the first payload labels fit
    for email, path in ((HEALTH, f"/meetings/{meeting_id}/contributions"), (COORDINATOR, f"/meetings/{meeting_id}")):
        with world.signed_in(email) as reader:
            page = reader.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert_safe(page.text, path)
            text = html.unescape(page.text)
            for label, concern, ask in typed:
                assert label in text, f"{path} does not show the label {label!r}"
                if email == HEALTH:  # the agencies read the concern and the ask before the meeting
                    assert concern in text and ask in text, f"{path} does not show {concern[:30]!r}, {ask[:30]!r}"


# ---- actions: the action page, email replies, the CSV export -------------------------------------------------


def test_action_updates_on_the_page_and_by_email_reply_and_the_csv(story):
    from tests.integration.actions_setup import sweep

    minutes_stage(story)
    world = story.world
    world.clock.at = TUESDAY
    with world.session_factory() as session:
        actions = {
            a.description: a.id for a in session.scalars(select(Action).where(Action.agenda_item_id == story.item_id))
        }
    target = actions["<script>alert(1)</script>"]
    rep = story.client(CAMHS)
    page = f"/actions/{target}"
    for payload in HOSTILE:
        response = post(rep, page, {"kind": "update", "note": payload})
        if assert_clean(response, payload, "action update"):
            assert_shows(rep.get(page), payload, "the action page")
    for formula, action_id in zip(FORMULAS, [actions[f] for f in FORMULAS], strict=True):
        assert post(rep, f"/actions/{action_id}", {"kind": "update", "note": formula}).status_code == 303
    refused = post(rep, page, {"kind": "cannot_do", "note": combined(story.listener), "reason": "<b>x</b>"})
    assert_clean(refused, combined(story.listener), "cannot do with a made-up reason")

    # The assignment emails, then a reply to one of them: "update: <payload>".
    sweep(world.session_factory, TUESDAY)
    with world.session_factory() as session:
        assigned = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.idempotency_key.like(f"action:{actions['X{{7*7}}Y']}:%"))
            .order_by(OutboundMessage.id)
        ).first()
    assert assigned is not None and assigned.reply_to, "no assignment email with a reply address"
    inbound_ids = []
    for number, payload in enumerate([*PAYLOADS, NUL, LONG]):
        reply = EmailMessage()
        reply["From"] = f"A Person <{CAMHS}>"
        reply["To"] = assigned.reply_to
        reply["Subject"] = f"Re: {assigned.subject}"
        reply["Date"] = format_datetime(TUESDAY)
        reply["Message-ID"] = make_msgid(idstring=f"hostile{number}", domain="nhs.example.org")
        reply["In-Reply-To"] = assigned.message_id
        reply.set_content(f"update: {payload}\n\n-- \nA Person")
        with transaction(world.session_factory) as session:
            inbound_ids.append(store_inbound(session, raw=reply.as_bytes(), now=TUESDAY).id)
        with transaction(world.session_factory) as session:
            process_inbox(session, now=TUESDAY, mail=REPLY_MAIL, own_address=APP)
    with world.session_factory() as session:
        statuses = [session.get(InboundMessage, i).status for i in inbound_ids]
        latest = session.get(Action, actions["X{{7*7}}Y"]).latest_update
    # Each is applied as text, or (too long for a note) kept for a person: none fails or is lost.
    assert statuses == ["applied"] * (len(PAYLOADS) + 1) + ["needs_human"], statuses
    assert latest == shown(NUL), latest  # the last one applied, its NUL taken out
    email_page = f"/actions/{actions['X{{7*7}}Y']}"
    assert_shows(rep.get(email_page), "<script>alert(1)</script>", "the action page (email updates)")
    assert_shows(rep.get(email_page), "X{{7*7}}Y", "the action page (email updates)")

    # Chasing: the sweeps past the due date send reminders and chases.
    for day in (date(2026, 12, 9), date(2026, 12, 14), date(2026, 12, 18)):
        sweep(world.session_factory, datetime(day.year, day.month, day.day, 10, tzinfo=UTC))
    world.clock.at = datetime(2026, 12, 18, 10, tzinfo=UTC)

    for email in (CAMHS, COORDINATOR):
        tracker = story.client(email).get("/actions?tab=all")
        assert tracker.status_code == 200
        assert_safe(tracker.text, f"the tracker for {email}")
        download = story.client(email).get("/actions.csv?tab=all")
        assert download.status_code == 200 and "\x00" not in download.text
        rows = list(csv.reader(io.StringIO(download.text)))
        assert len(rows) > len(FORMULAS)
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(FORMULA_START), f"a formula cell in the CSV for {email}: {cell!r}"
                assert "\n" not in cell and "\r" not in cell
        cells = {cell for row in rows for cell in row}
        assert "'-1+1" in cells and "'@SUM(1+1)" in cells
    still_serving(world, story.client(CAMHS), "/actions")


def test_names_in_the_actions_csv_are_never_formulas(story):
    """The owner's and school's names come from the directory, which admins type: no cell starts a formula."""
    minutes_stage(story)
    with transaction(story.world.session_factory) as session:
        person = session.get(Person, story.camhs_rep)
        original, person.name = person.name, '=HYPERLINK("http://127.0.0.1:9/x","open")'
    try:
        download = story.client(COORDINATOR).get("/actions.csv?tab=all")
        assert download.status_code == 200
        rows = list(csv.reader(io.StringIO(download.text)))
        assert any("HYPERLINK" in cell for row in rows for cell in row)
        assert all(not cell.startswith(FORMULA_START) for row in rows[1:] for cell in row)
    finally:
        with transaction(story.world.session_factory) as session:
            session.get(Person, story.camhs_rep).name = original


# ---- every email sent about the clinic -----------------------------------------------------------------------------


HEADERS = {
    "From",
    "To",
    "Subject",
    "Message-ID",
    "Date",
    "Auto-Submitted",
    "In-Reply-To",
    "References",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
}


def test_every_email_is_plain_markup_free_and_one_line_headed(story):
    corrections_stage(story)
    with story.world.session_factory() as session:
        sent = session.scalars(select(OutboundMessage).where(OutboundMessage.created_at >= ON_THE_DAY)).all()
        kinds = {m.kind for m in sent}
        assert {"clinic_outcome", "minutes_circulated", "correction_answered"} <= kinds, kinds
        for message in sent:
            where = f"{message.kind} to {message.recipient}"
            assert_safe(message.body_html or "", where)
            assert "X49Y" not in message.body_text and "\x00" not in message.body_text, where
            for value in (message.subject, message.recipient, message.reply_to or "", message.in_reply_to or ""):
                assert "\r" not in value and "\n" not in value, where
            built = build_email(message, Sender(APP, "Kestrelford Inclusion Team"))
            parsed = message_from_bytes(built.as_bytes(), policy=policy.default)
            assert set(parsed.keys()) <= HEADERS, f"{where}: {set(parsed.keys()) - HEADERS}"
            assert parsed.get_all("To") == [message.recipient], where
    still_serving(story.world)
