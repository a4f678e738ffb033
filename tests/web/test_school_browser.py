"""A school referrer's whole referral in Chromium, against the real app over HTTP, with axe on each kind of page."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from caseconf.clock import FixedClock
from meetings.referral_form import PAGES
from tests.referral_answers import CHILD_FIRST, CHILD_LAST, VALID
from tests.unit.test_document_types import make_pdf, make_png
from tests.web.conftest import latest_link, shot  # the `server` and `page` fixtures come from there too

pytestmark = pytest.mark.browser

REFERRER = "dsl@alderbrook.example.org"


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def settings(settings):
    """A 1 MB limit a file, so the test can cross it with a small file."""
    return settings.model_copy(update={"upload_max_file_mb": 1})


def sign_in_by_link(page, server, session_factory, next_path: str) -> None:
    page.goto(f"{server}{next_path}")
    assert page.url.startswith(f"{server}/sign-in")
    page.get_by_label("Email address").fill(REFERRER)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    page.goto(latest_link(session_factory, REFERRER, base=server))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server}{next_path}")


def answer(page, answers: dict) -> None:
    """Answer a question page as typed in tests.referral_answers, control by control."""
    for name, value in answers.items():
        if isinstance(value, list):
            for code in value:
                page.locator(f'input[name="{name}"][value="{code}"]').check()
            continue
        control = page.locator(f'[name="{name}"]')
        kind = control.first.evaluate("e => e.type || e.tagName")
        if kind == "radio":
            page.locator(f'input[name="{name}"][value="{value}"]').check()
        elif kind == "select-one":
            control.select_option(value)
        elif value:
            control.fill(value)


def save_and_continue(page) -> None:
    page.get_by_role("button", name="Save and continue").click()


def test_school_referrer_refers_a_child_from_start_to_reference(server, page, session_factory):
    sign_in_by_link(page, server, session_factory, "/referrals")
    page.get_by_role("heading", name="Your referrals").wait_for()
    page.get_by_role("button", name="Start a new referral").click()

    shot(page, "school-new-referral")
    page.get_by_role("group", name="Is the child at immediate risk of significant harm?").get_by_label("No").check()
    page.get_by_label("Which school does the child attend?").select_option(label="Copperbeech Infant")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Refer a child to the hot clinic").wait_for()
    assert page.get_by_text("You have completed 0 of 13 sections.").is_visible()
    shot(page, "school-task-list")

    # About the child, by its labels, with a date of birth in the future.
    page.get_by_role("link", name="About the child").click()
    page.get_by_label("First name").fill(CHILD_FIRST)
    page.get_by_label("Last name").fill(CHILD_LAST)
    birth = page.get_by_role("group", name="Date of birth")
    birth.get_by_label("Day").fill("14")
    birth.get_by_label("Month").fill("5")
    birth.get_by_label("Year").fill("2027")
    page.get_by_label("Year group").select_option("Year 5")
    save_and_continue(page)
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "The date of birth must be today or in the past" in summary.inner_text()
    assert page.evaluate("document.activeElement.classList.contains('govuk-error-summary')")
    assert page.get_by_label("First name").input_value() == CHILD_FIRST  # what was typed is still there
    shot(page, "school-question-errors")
    summary.get_by_role("link", name="The date of birth must be today or in the past").click()
    assert page.evaluate("document.activeElement.id") == "date_of_birth-day"
    birth.get_by_label("Year").fill("2016")
    save_and_continue(page)
    page.get_by_role("heading", name="Parents and carers").wait_for()

    # Leave part-way, then find the draft again from the list.
    answer(page, VALID["family"])
    page.get_by_role("button", name="Save and come back later").click()
    page.get_by_role("heading", name="Refer a child to the hot clinic").wait_for()
    page.get_by_role("link", name="Your referrals").first.click()
    page.get_by_role("link", name=f"Draft referral for {CHILD_FIRST} {CHILD_LAST}").click()
    assert page.locator("#sections-1-status").inner_text().strip() == "Completed"
    assert page.locator("#sections-2-status").inner_text().strip() == "Completed"
    assert page.locator("#sections-3-status").inner_text().strip() == "Not started"
    assert page.get_by_text("You have completed 2 of 13 sections.").is_visible()

    # Supporting documents: one refused for its type, one for its size, then two good ones.
    page.get_by_role("link", name="Supporting documents").click()
    page.get_by_role("heading", name="Supporting documents").wait_for()
    files = page.locator("input[type=file]")
    files.set_input_files([{"name": "notes.pdf", "mimeType": "application/pdf", "buffer": b"just some text"}])
    page.get_by_role("button", name="Add files").click()
    page.locator(".govuk-error-summary").wait_for()
    assert "'notes.pdf' is not a PDF" in page.locator(".govuk-error-summary").inner_text()
    big = make_pdf(padding=1_200_000)
    page.locator("input[type=file]").set_input_files(
        [{"name": "big.pdf", "mimeType": "application/pdf", "buffer": big}]
    )
    page.get_by_role("button", name="Add files").click()
    page.locator(".govuk-error-summary").wait_for()
    assert "the limit is 1 MB a file" in page.locator(".govuk-error-summary").inner_text()
    shot(page, "school-upload-refused")
    page.locator("input[type=file]").set_input_files(
        [
            {"name": "attendance.pdf", "mimeType": "application/pdf", "buffer": make_pdf()},
            {"name": "timetable.png", "mimeType": "image/png", "buffer": make_png()},
        ]
    )
    page.get_by_label("Describe the files (optional)").fill("Attendance report and timetable")
    page.get_by_role("button", name="Add files").click()
    page.get_by_text("2 files added").wait_for()
    assert page.get_by_role("link", name="attendance.pdf").is_visible()
    shot(page, "school-uploaded")
    page.get_by_role("link", name="Back").click()
    page.get_by_role("heading", name="Refer a child to the hot clinic").wait_for()

    page.get_by_role("link", name="Reasons for referral").click()
    for section in PAGES[2:]:
        page.get_by_role("heading", name=section.title, exact=True).wait_for()
        answer(page, VALID[section.key])
        save_and_continue(page)

    page.get_by_role("heading", name="Check your answers before sending your referral").wait_for()
    assert page.get_by_text("14 May 2016").is_visible()
    assert page.get_by_text("Emotionally based school avoidance (EBSA)").is_visible()
    shot(page, "school-check-answers")
    page.get_by_role("button", name="Submit referral").click()

    panel = page.locator(".govuk-panel--confirmation")
    panel.wait_for()
    assert re.search(r"Your reference number\s+VPHC-2026-0008", panel.inner_text())
    shot(page, "school-submitted")

    page.get_by_role("link", name="your referrals").click()
    shot(page, "school-referrals")
    page.get_by_role("link", name=re.compile("VPHC-2026-0008")).click()
    page.get_by_role("heading", name=f"{CHILD_FIRST} {CHILD_LAST}").wait_for()
    assert page.get_by_text("Waiting for triage").first.is_visible()
    shot(page, "school-referral-status")
