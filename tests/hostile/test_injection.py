"""Script and template-injection payloads in text people type, read back through every output: pages, emails
(text and HTML), calendar invitations and PDFs. Each shows the payload as text and runs or fetches nothing."""

from __future__ import annotations

import copy
import html
import io
import re
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from icalendar import Calendar
from pypdf import PdfReader
from sqlalchemy import select

from caseconf.db import transaction
from meetings import agenda, papers
from meetings.demo import SERIES_NAME
from meetings.models import Meeting, MeetingSeries, Referral
from notifications import invites
from notifications.models import OutboundMessage
from tests.conftest import free_port
from tests.factories import MAIL, make_submitted_referral
from tests.hostile.conftest import EIP_NORTH, REFERRER, still_serving
from tests.referral_answers import VALID
from tests.web.conftest import csrf_from

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "X{{7*7}}Y",
    "{% raw %}R{% endraw %}",
    "${7*7}",
    "javascript:alert(1)",
    "\u202eevil\u202c",
]
ONE_LINE = " ".join(PAYLOADS)


def assert_escaped(page: str) -> None:
    """No payload is live markup: no raw script or event handler, and template syntax is not evaluated."""
    assert "<script>alert" not in page
    assert "<img src=x" not in page and not re.search(r"<[^>]*\sonerror=alert", page)
    assert "X49Y" not in page and "X{{7*7}}Y" in html.unescape(page)
    assert 'href="javascript:' not in page.lower()


@pytest.fixture(scope="module")
def hostile_referral(world) -> tuple[int, str]:
    answers = copy.deepcopy(VALID)
    answers["concerns"] = {**answers["concerns"], "what_is_happening": ONE_LINE, "strengths": ONE_LINE}
    answers["asks"] = {"asks_of_clinic": ONE_LINE + "\x00 nul"}
    answers["child"] = {**answers["child"], "preferred_name": "\u202eJun<b>iper"}
    return make_submitted_referral(world.session_factory, world.clock.now(), urn="900001", referrer_email=REFERRER,
                                   answers=answers)


def test_referral_form_answers_are_escaped_on_every_page(world, hostile_referral):
    referral_id, _ = hostile_referral
    with world.signed_in(REFERRER) as school:
        # A page of the form posted with payloads through the web, then shown again.
        draft = school.post("/referrals/new", data={"csrf_token": csrf_from(school.get("/referrals/new").text),
                                                    "school_id": "", "immediate_risk": "no"})
        assert draft.status_code in (303, 400), draft.status_code
        with world.session_factory() as session:
            draft_id = session.scalars(select(Referral.id).where(Referral.status == "draft").order_by(Referral.id.desc())).first()
        page = school.get(f"/referrals/{draft_id}/pages/concerns")
        assert page.status_code == 200
        posted = school.post(
            f"/referrals/{draft_id}/pages/concerns",
            data={"csrf_token": csrf_from(page.text), "what_is_happening": ONE_LINE, "strengths": ONE_LINE,
                  "urgency": "routine"},
        )
        assert posted.status_code in (303, 400), posted.status_code
        for path in (f"/referrals/{draft_id}/pages/concerns", f"/referrals/{draft_id}/check", f"/referrals/{referral_id}"):
            response = school.get(path)
            assert response.status_code == 200, path
            assert_escaped(response.text)
        still_serving(world, school, "/referrals")
    with world.signed_in(EIP_NORTH) as eip:
        response = eip.get(f"/triage/{referral_id}")
        assert response.status_code == 200
        assert_escaped(response.text)
        assert "\x00" not in response.text
        api_like = eip.get("/triage")
        assert api_like.status_code == 200 and "<script>alert" not in api_like.text


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def listener_url():
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_papers_pack_prints_payloads_as_text_and_fetches_nothing(world, listener_url):
    _Recorder.hits.clear()
    fetch = (f'<img src="{listener_url}/img"> <link rel="stylesheet" href="{listener_url}/css">'
             f'<style>@import url({listener_url}/import);</style> <iframe src="file:///etc/passwd"></iframe>')
    with transaction(world.session_factory) as session:
        meeting = next(m for m in session.scalars(select(Meeting).order_by(Meeting.meeting_date))
                       if any(i.referral for i in agenda.listed_items(m)))
        item = next(i for i in agenda.listed_items(meeting) if i.referral)
        item.referral.what_is_happening = ONE_LINE + " " + fetch
        item.referral.asks_of_clinic = "{{ config }} {% for x in range(9) %}L{% endfor %}"
        meeting_id = meeting.id
    with world.session_factory() as session:
        text = pdf_text(papers.build_pack(session, session.get(Meeting, meeting_id)))
    flat = " ".join(text.split())
    assert "<script>alert(1)</script>" in flat and "X{{7*7}}Y" in flat and "X49Y" not in flat
    assert f'<img src="{listener_url}/img">' in flat or f"{listener_url}/img" in flat
    assert "{% for x in range(9) %}L{% endfor %}" in flat and "LLLLLLLLL" not in flat
    assert _Recorder.hits == [], f"the PDF renderer fetched {_Recorder.hits}"


def test_series_name_and_location_are_escaped_in_pages_emails_and_invitations(world):
    location = 'Room 1\r\nATTENDEE:mailto:evil@example.org\r\nX-EVIL:1;"><script>alert(1)</script>\\n,;'
    name = "Clinic X{{7*7}}Y <script>alert(1)</script>"
    with transaction(world.session_factory) as session:
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == SERIES_NAME))
        series.name, series.location = name, location
        series_id = series.id
        meeting = session.scalar(select(Meeting).where(Meeting.series_id == series_id,
                                                       Meeting.meeting_date == date(2026, 12, 3)))
        meeting.location = location
        invites.send_invitations(session, meeting.id, now=world.clock.now(), mail=MAIL, organizer_name="Team")
        meeting_id = meeting.id
    with world.session_factory() as session:
        sent = session.scalars(select(OutboundMessage).where(OutboundMessage.ics.is_not(None),
                                                             OutboundMessage.meeting_id == meeting_id)).all()
    assert sent, "no invitations were sent"
    for message in sent:
        assert "\r" not in message.subject and "\n" not in message.subject
        assert "<script>alert" not in (message.body_html or "")
        assert "X49Y" not in message.body_text + (message.body_html or "")
        assert "{{7*7}}" in message.body_text or "{{7*7}}" in html.unescape(message.body_html or "")
        calendar = Calendar.from_ical(message.ics)
        (event,) = calendar.walk("VEVENT")
        attendees = event.get("ATTENDEE")
        attendees = attendees if isinstance(attendees, list) else [attendees]
        assert all("evil@example.org" not in str(a) for a in attendees)
        assert "X-EVIL" not in event and "X-EVIL" not in calendar
        assert str(event.get("LOCATION")).startswith("Room 1")
        assert "X-EVIL:1" in str(event.get("LOCATION"))  # kept as text inside the one property
    with world.signed_in("admin@kestrelford.example.org") as admin:
        for path in (f"/admin/series/{series_id}", f"/admin/meetings/{meeting_id}", "/admin/series"):
            response = admin.get(path)
            assert response.status_code == 200, path
            assert "<script>alert" not in response.text and "X49Y" not in response.text
        still_serving(world, admin, "/admin/series")
