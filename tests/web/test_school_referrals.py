"""The school referrer's side of a referral, through the real app and database with the demo borough."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from agencies.models import Person, School
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import referrals
from meetings.demo import load_demo
from meetings.models import Action, Referral, ReferralStatus
from meetings.referral_form import PAGES
from notifications.models import OutboundMessage
from tests.referral_answers import CHILD_FIRST, CHILD_LAST, VALID
from tests.web.conftest import csrf_from, sign_in
from web.deps import SESSION_COOKIE

SCHOOL_REFERRER = "dsl@alderbrook.example.org"  # Alderbrook (900001), Copperbeech (900004), Greywater (900005)
OTHER_SCHOOL = "senco@millrace.example.org"  # Millrace (900002) only
EIP = "eip.north@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def borough(session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        return {
            "people": {p.email: p.id for p in session.scalars(select(Person))},
            "schools": {s.urn: s.id for s in session.scalars(select(School))},
        }


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def post(client, path: str, data: dict, *, form_page: str | None = None):
    """Post like a browser: with the CSRF token from the page the form is on."""
    page = client.get(form_page or path)
    assert page.status_code == 200, (form_page or path, page.status_code)
    return client.post(path, data={**data, "csrf_token": csrf_from(page.text)})


def start(client, borough, urn: str = "900004") -> int:
    response = post(client, "/referrals/new", {"immediate_risk": "no", "school_id": str(borough["schools"][urn])})
    assert response.status_code == 303
    match = re.fullmatch(r"/referrals/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def fill(client, referral_id: int, key: str, answers: dict, **extra):
    return post(client, f"/referrals/{referral_id}/pages/{key}", {**answers, **extra})


def input_value(page_html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', page_html)
    assert match, f"no input {name}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return html.unescape(value.group(1)) if value else ""


def test_whole_journey_from_start_to_submitted_reference(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)

    task_list = client.get(f"/referrals/{referral_id}")
    assert task_list.status_code == 200
    assert task_list.text.count("Not started") == len(PAGES)
    assert f'href="/referrals/{referral_id}/documents"' in task_list.text
    assert "Cannot start yet" in task_list.text

    for index, page in enumerate(PAGES):
        response = fill(client, referral_id, page.key, VALID[page.key])
        assert response.status_code == 303, (page.key, response.text[:2000])
        expected = (
            f"/referrals/{referral_id}/pages/{PAGES[index + 1].key}"
            if index + 1 < len(PAGES)
            else f"/referrals/{referral_id}/check"
        )
        assert response.headers["location"] == expected

    check = client.get(f"/referrals/{referral_id}/check")
    assert check.status_code == 200
    for readable in ("14 May 2016", "Emotionally based school avoidance (EBSA)", "SEN support (K)", "9 November 2026"):
        assert readable in check.text
    assert check.text.count(">Change<") >= 30
    assert "0.0" not in check.text  # no days lost reads "0"
    change = client.get(f"/referrals/{referral_id}/pages/asks?return_to=check")
    assert 'name="return_to" value="check"' in change.text
    changed = fill(client, referral_id, "asks", {"asks_of_clinic": "Advice on EBSA support.", "return_to": "check"})
    assert changed.headers["location"] == f"/referrals/{referral_id}/check"  # back to where they were
    assert f'/referrals/{referral_id}/pages/child?return_to=check#date_of_birth-day"' in check.text

    response = post(client, f"/referrals/{referral_id}/submit", {}, form_page=f"/referrals/{referral_id}/check")
    assert response.status_code == 303
    assert response.headers["location"] == f"/referrals/{referral_id}/submitted"

    confirmation = client.get(f"/referrals/{referral_id}/submitted")
    session.expire_all()
    referral = session.get(Referral, referral_id)
    assert referral.status == ReferralStatus.submitted
    assert referral.reference == "VPHC-2026-0008"
    assert "govuk-panel--confirmation" in confirmation.text
    assert f"Your reference number<br><strong>{referral.reference}</strong>" in confirmation.text

    messages = session.scalars(select(OutboundMessage).where(OutboundMessage.referral_id == referral_id)).all()
    recipients = sorted(m.recipient for m in messages)
    assert recipients == sorted([SCHOOL_REFERRER, "dsl@copperbeech.example.org", EIP])
    for message in messages:
        assert referral.reference in message.subject and referral.reference in message.body_text
        for secret in (CHILD_FIRST, CHILD_LAST, "14 May 2016", "Rowan"):
            assert secret not in message.subject + message.body_text + (message.body_html or "")

    listing = client.get("/referrals")
    assert listing.status_code == 200
    assert referral.reference in listing.text and f"{CHILD_FIRST} {CHILD_LAST}" in listing.text
    assert "Waiting for triage" in listing.text
    # A second press of the button changes nothing and issues no second reference.
    again = post(client, f"/referrals/{referral_id}/submit", {}, form_page=f"/referrals/{referral_id}/submitted")
    assert again.status_code == 303
    assert count(session, OutboundMessage, OutboundMessage.referral_id == referral_id) == 3


def test_errors_are_shown_and_what_was_typed_is_kept_and_saved(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    child = {**VALID["child"], "date_of_birth-day": "1", "date_of_birth-month": "1", "date_of_birth-year": "2027"}
    response = fill(client, referral_id, "child", child)
    assert response.status_code == 400
    assert "There is a problem" in response.text and response.text.count("govuk-error-message") == 1
    assert 'href="#date_of_birth-day">The date of birth must be today or in the past' in response.text
    assert input_value(response.text, "date_of_birth-year") == "2027"
    assert input_value(response.text, "legal_first_name") == CHILD_FIRST
    assert 'class="govuk-input govuk-date-input__input govuk-input--width-4 govuk-input--error"' in response.text
    assert "<title>Error: About the child" in response.text

    response = fill(client, referral_id, "attendance", {"attendance_percent": "150"})
    assert response.status_code == 400
    assert 'href="#attendance_percent">Enter attendance between 0 and 100</a>' in response.text
    assert 'id="attendance_percent-error"' in response.text
    assert re.search(r'aria-describedby="[^"]*attendance_percent-error', response.text)
    assert input_value(response.text, "attendance_percent") == "150"
    suspensions = {**VALID["suspensions"], "suspensions_this_half_term": "3"}
    assert 'href="#suspensions_this_half_term">' in fill(client, referral_id, "suspensions", suspensions).text
    response = fill(client, referral_id, "exclusion", {"permanent_exclusion": "excluded"})
    assert 'value="excluded" checked' in response.text  # the chosen radio stays chosen

    session.expire_all()
    referral = session.get(Referral, referral_id)
    assert referral.draft_answers["attendance"]["attendance_percent"] == "150"
    assert referral.draft_answers["child"]["date_of_birth-year"] == "2027"
    assert referral.attendance_percent is None and referral.child is None  # nothing invalid reaches the record

    # Coming back later shows the same raw answers, without the error messages.
    again = client.get(f"/referrals/{referral_id}/pages/attendance")
    assert again.status_code == 200 and "govuk-error-message" not in again.text
    assert input_value(again.text, "attendance_percent") == "150"


def test_a_conditional_question_is_revealed_under_its_answer_and_checked(client, session_factory, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    response = fill(client, referral_id, "family", {**VALID["family"], "parent_knows": "no"})
    assert response.status_code == 400
    assert 'href="#parent_not_told_reason">Enter why the parent or carer has not been told' in response.text
    conditional = re.search(
        r'<div class="govuk-radios__conditional" id="conditional-parent_knows-2">(.*?)</div>\s*</div>',
        response.text,
        re.S,
    )
    assert conditional and 'name="parent_not_told_reason"' in conditional.group(1)


def test_resuming_a_draft_shows_progress_and_save_for_later(client, session_factory, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    assert fill(client, referral_id, "child", VALID["child"]).status_code == 303
    later = fill(client, referral_id, "family", {"parent_name": "Rowan"}, action="later")
    assert later.headers["location"] == f"/referrals/{referral_id}"  # unfinished, but saved: you may leave
    later = fill(client, referral_id, "reasons", VALID["reasons"], action="later")
    assert later.headers["location"] == f"/referrals/{referral_id}"

    listing = client.get("/referrals")
    assert f'href="/referrals/{referral_id}"' in listing.text and "Finish and submit the referral." in listing.text
    task_list = client.get(f"/referrals/{referral_id}")
    statuses = dict(
        re.findall(
            r'pages/(\w+)"[^>]*>\s*[^<]*</a>.*?id="sections-\d+-status">\s*(?:<strong[^>]*>)?\s*([\w ]+?)\s*<',
            task_list.text,
            re.S,
        )
    )
    assert statuses["child"] == "Completed"
    assert statuses["family"] == "In progress"
    assert statuses["reasons"] == "Completed"
    assert statuses["consent"] == "Not started"
    assert "You have completed 2 of 13 sections." in task_list.text


def test_submitting_an_incomplete_referral_lists_what_is_missing(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    for key in ("child", "family", "reasons"):
        fill(client, referral_id, key, VALID[key])
    check = client.get(f"/referrals/{referral_id}/check")
    assert "You have not finished these sections yet" in check.text
    response = post(client, f"/referrals/{referral_id}/submit", {}, form_page=f"/referrals/{referral_id}/check")
    assert response.status_code == 400
    assert "You cannot submit the referral yet" in response.text
    assert f'href="/referrals/{referral_id}/pages/consent">Complete &#39;Consent to share&#39;</a>' in response.text
    assert (
        f'href="/referrals/{referral_id}/pages/child"'
        not in response.text.split("govuk-error-summary__list")[1].split("</ul>")[0]
    )
    assert session.get(Referral, referral_id).status == ReferralStatus.draft


def test_unknown_page_is_not_found(client, session_factory, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    assert client.get(f"/referrals/{referral_id}/pages/nope").status_code == 404
    page = client.get(f"/referrals/{referral_id}/pages/child")
    response = client.post(f"/referrals/{referral_id}/pages/nope", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 404


def test_immediate_risk_stops_the_referral_and_is_recorded(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    before = count(session, Referral)
    first = client.get("/referrals/new")
    assert "Is the child at immediate risk of significant harm?" in first.text
    assert 'name="school_id"' in first.text  # three schools to choose from
    missing = client.post("/referrals/new", data={"csrf_token": csrf_from(first.text)})
    assert missing.status_code == 400
    assert 'href="#immediate_risk">Select yes if the child is at immediate risk' in missing.text
    assert 'href="#school_id">Select the child&#39;s school' in missing.text

    response = post(client, "/referrals/new", {"immediate_risk": "yes", "school_id": str(borough["schools"]["900001"])})
    assert response.headers["location"] == "/referrals/immediate-risk"
    page = client.get("/referrals/immediate-risk")
    assert "call 999" in page.text and "MASH" in page.text
    assert count(session, Referral) == before
    shown = session.scalars(select(AuditEvent).where(AuditEvent.action == "referral.immediate_risk_shown")).all()
    assert [(e.actor_label, e.record_id) for e in shown] == [(SCHOOL_REFERRER, str(borough["schools"]["900001"]))]


def test_a_school_not_granted_cannot_be_chosen(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    before = count(session, Referral)
    response = post(client, "/referrals/new", {"immediate_risk": "no", "school_id": str(borough["schools"]["900002"])})
    assert response.status_code == 400
    assert count(session, Referral) == before


def test_the_list_shows_only_the_referrers_schools_newest_first(client, session_factory, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    listing = client.get("/referrals")
    assert listing.status_code == 200
    # The demo: Poppy's draft (Copperbeech), Wren signposted (Alderbrook), Milo declined (Greywater).
    order = [name for name in ("Poppy", "Wren", "Milo") if name in listing.text]
    assert order == ["Poppy", "Wren", "Milo"]
    assert listing.text.index("Poppy") < listing.text.index("Wren") < listing.text.index("Milo")
    for elsewhere in ("Ottilie", "Zara", "Teodor", "Kofi"):
        assert elsewhere not in listing.text
    assert "Signposted to another service" in listing.text and "Not taken to clinic" in listing.text


def test_empty_list_has_a_way_in(client, session_factory, borough):
    sign_in(client, session_factory, "senco@larkfield.example.org")
    with transaction(session_factory) as session:
        for referral in session.scalars(select(Referral).where(Referral.school_id == borough["schools"]["900007"])):
            referral.school_id = borough["schools"]["900002"]  # move Larkfield's referral elsewhere
    listing = client.get("/referrals")
    assert "No referrals yet" in listing.text
    assert 'href="/referrals/new"' in listing.text


def test_open_actions_and_next_clinic_are_listed(client, session_factory, borough):
    # Rafferty has three open actions, all for agencies: the school's list counts only those for the school.
    with session_factory() as session:
        for_school = session.scalar(
            select(func.count())
            .select_from(Action)
            .join(Referral, Referral.id == Action.referral_id)
            .where(Referral.reference == "VPHC-2026-0004", Action.status == "open", Action.involves_school.is_(True))
        )
        all_open = session.scalar(
            select(func.count())
            .select_from(Action)
            .join(Referral, Referral.id == Action.referral_id)
            .where(Referral.reference == "VPHC-2026-0004", Action.status == "open")
        )
    assert all_open == 3
    sign_in(client, session_factory, "head@kestrelford-sss.example.org")
    listing = client.get("/referrals")
    row = next(r for r in listing.text.split("<tr") if "VPHC-2026-0004" in r)
    assert re.search(rf'govuk-table__cell--numeric">{for_school}</td>', row)
    sign_in(client, session_factory, "dsl@kestrelford-academy.example.org")  # Kofi: listed on 3 December
    listing = client.get("/referrals")
    row = next(r for r in listing.text.split("<tr") if "VPHC-2026-0005" in r)
    assert "3 December 2026" in row


def test_access_rules(client, session_factory, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    fill(client, referral_id, "child", VALID["child"])

    sign_in(client, session_factory, OTHER_SCHOOL)
    for path in (
        f"/referrals/{referral_id}",
        f"/referrals/{referral_id}/pages/child",
        f"/referrals/{referral_id}/check",
    ):
        assert client.get(path).status_code == 403, path
    page = client.get("/referrals/new")
    response = client.post(
        f"/referrals/{referral_id}/pages/child", data={**VALID["child"], "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 403
    assert client.get("/referrals/3").status_code == 403  # Wren, at Alderbrook

    sign_in(client, session_factory, EIP)  # the area's EIP: not a school, and a draft is the school's
    assert client.get("/referrals").status_code == 403
    assert client.get(f"/referrals/{referral_id}/pages/child").status_code == 403
    page = client.get("/")
    response = client.post(
        f"/referrals/{referral_id}/pages/child",
        data={**VALID["child"], "legal_first_name": "Changed", "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 403
    with session_factory() as session:
        assert session.get(Referral, referral_id).draft_answers["child"]["legal_first_name"] == CHILD_FIRST


def test_submitted_referral_shows_its_status_not_the_form(client, session_factory, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    status = client.get("/referrals/3")  # Wren, signposted
    assert status.status_code == 200
    assert '<strong class="govuk-tag govuk-tag--purple">Signposted to another service</strong>' in status.text
    assert "VPHC-2026-0003" in status.text
    assert "Withdraw referral" not in status.text  # signposted is final
    assert client.get("/referrals/3/pages/child").headers["location"] == "/referrals/3"


def answer_flow_referral(client, session_factory, clock, borough) -> int:
    """A referral submitted through the pages, then questioned by the EIP."""
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough, urn="900004")  # Copperbeech: referrer and safeguarding contact emailed
    for page in PAGES:
        fill(client, referral_id, page.key, VALID[page.key])
    post(client, f"/referrals/{referral_id}/submit", {}, form_page=f"/referrals/{referral_id}/check")
    with transaction(session_factory) as session:
        referrals.request_information(
            session,
            referral=referrals.get_referral(session, referral_id),
            question="Which mornings are hardest?",
            now=clock.now(),
            person_id=borough["people"][EIP],
        )
    return referral_id


def test_answering_an_information_request(client, session_factory, session, clock, borough):
    referral_id = answer_flow_referral(client, session_factory, clock, borough)
    clock.advance(hours=2)
    status = client.get(f"/referrals/{referral_id}")
    assert "More information needed" in status.text
    assert "Which mornings are hardest?" in status.text
    assert "Answer the Education Inclusion Partner" in status.text
    assert "What you sent" in status.text and "14 May 2016" in status.text

    empty = post(client, f"/referrals/{referral_id}/answer", {"answer": "  "}, form_page=f"/referrals/{referral_id}")
    assert empty.status_code == 400 and 'href="#answer">Enter your answer' in empty.text

    response = post(
        client,
        f"/referrals/{referral_id}/answer",
        {"answer": "Mondays, after contact weekends."},
        form_page=f"/referrals/{referral_id}",
    )
    assert response.headers["location"] == f"/referrals/{referral_id}?done=answered"
    page = client.get(response.headers["location"])
    assert "Your answer has been sent" in page.text
    assert "Mondays, after contact weekends." in page.text and "The school&#39;s answer" in page.text
    assert "23 November 2026 at 12:00pm" in page.text  # 12:00 UTC is noon in London in November
    session.expire_all()
    assert session.get(Referral, referral_id).status == ReferralStatus.submitted
    status_emails = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.referral_id == referral_id, OutboundMessage.kind == "referral_status"
        )
    ).all()
    assert len(status_emails) == 2 and all("Waiting for triage" in m.subject for m in status_emails)
    assert all("Mondays" not in m.body_text for m in status_emails)

    # Answered: the form is gone and a second answer is refused.
    assert f'action="/referrals/{referral_id}/answer"' not in page.text
    again = client.post(f"/referrals/{referral_id}/answer", data={"answer": "More", "csrf_token": csrf_from(page.text)})
    assert again.status_code == 403


def test_withdrawing_a_referral(client, session_factory, session, clock, borough):
    referral_id = answer_flow_referral(client, session_factory, clock, borough)
    status = client.get(f"/referrals/{referral_id}")
    assert f'href="/referrals/{referral_id}/withdraw"' in status.text
    confirm = client.get(f"/referrals/{referral_id}/withdraw")
    assert "Are you sure you want to withdraw this referral?" in confirm.text
    response = post(
        client,
        f"/referrals/{referral_id}/withdraw",
        {"reason": "Family moved away"},
        form_page=f"/referrals/{referral_id}/withdraw",
    )
    assert response.headers["location"] == f"/referrals/{referral_id}?done=withdrawn"
    page = client.get(response.headers["location"])
    assert "Withdrawn" in page.text and "Family moved away" in page.text
    assert "Withdraw referral" not in page.text
    session.expire_all()
    assert session.get(Referral, referral_id).status == ReferralStatus.withdrawn
    emails = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.referral_id == referral_id, OutboundMessage.kind == "referral_status"
        )
    ).all()
    assert sum("Withdrawn" in m.subject for m in emails) == 2
    # Already withdrawn: the confirmation page goes back, and posting again is refused without a change.
    assert client.get(f"/referrals/{referral_id}/withdraw").headers["location"] == f"/referrals/{referral_id}"
    again = client.post(f"/referrals/{referral_id}/withdraw", data={"csrf_token": csrf_from(page.text)})
    assert again.status_code == 409 and "can no longer be withdrawn" in again.text


def test_answers_posted_after_the_session_expired_are_kept(client, session_factory, session, clock, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    form = client.get(f"/referrals/{referral_id}/pages/concerns")
    token = csrf_from(form.text)
    clock.advance(hours=11)  # the session lasted ten hours
    typed = {**VALID["concerns"], "what_is_happening": "Typed over a long lunch break."}
    response = client.post(f"/referrals/{referral_id}/pages/concerns", data={**typed, "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == f"/sign-in?next=/referrals/{referral_id}/pages/concerns"
    session.expire_all()
    assert (
        session.get(Referral, referral_id).draft_answers["concerns"]["what_is_happening"] == typed["what_is_happening"]
    )
    assert count(session, AuditEvent, AuditEvent.action == "referral.page_saved_after_session_expired") == 1

    sign_in(client, session_factory, SCHOOL_REFERRER)  # signing in again goes to the page they were on
    page = client.get(f"/referrals/{referral_id}/pages/concerns")
    assert "Typed over a long lunch break." in page.text


def test_without_a_recent_session_nothing_is_saved(client, session_factory, session, clock, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    referral_id = start(client, borough)
    form = client.get(f"/referrals/{referral_id}/pages/asks")
    token, cookie = csrf_from(form.text), client.cookies.get(SESSION_COOKIE)
    path = f"/referrals/{referral_id}/pages/asks"

    client.cookies.delete(SESSION_COOKIE)
    response = client.post(path, data={"asks_of_clinic": "No cookie", "csrf_token": token})
    assert response.headers["location"] == f"/sign-in?next={path}"

    client.cookies.set(SESSION_COOKIE, cookie)
    clock.advance(hours=10 + 25)  # expired more than a day ago
    response = client.post(path, data={"asks_of_clinic": "Too late", "csrf_token": token})
    assert response.headers["location"] == f"/sign-in?next={path}"
    session.expire_all()
    assert "asks" not in session.get(Referral, referral_id).draft_answers


def test_odd_input_gets_a_clean_answer_not_a_500(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)
    for path in (
        "/referrals/99999999999999999999",
        "/referrals/0",
        "/documents/99999999999999999999",
        "/triage/99999999999999999999",
    ):
        assert client.get(path).status_code in (403, 404), path
    referral_id = start(client, borough)
    answers = {**VALID["child"], "date_of_birth-year": "9" * 25, "legal_first_name": "Ju\x00niper"}
    response = fill(client, referral_id, "child", answers)
    assert response.status_code == 400
    assert "must be a real date" in response.text
    session.expire_all()
    saved = session.get(Referral, referral_id).draft_answers["child"]
    assert saved["legal_first_name"] == "Juniper"


def test_a_child_at_risk_is_never_held_up_by_the_school_question(client, session_factory, session, borough):
    sign_in(client, session_factory, SCHOOL_REFERRER)  # this referrer has three schools to choose from
    before = count(session, Referral)
    response = post(client, "/referrals/new", {"immediate_risk": "yes", "school_id": ""})
    assert response.headers["location"] == "/referrals/immediate-risk"
    assert count(session, Referral) == before
