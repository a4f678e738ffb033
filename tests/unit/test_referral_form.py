"""The referral form's checks, with no database: GOV.UK wording, kept input, edge cases."""

from __future__ import annotations

from datetime import date

import pytest

from meetings.referral_form import PAGES, check_page, page_for
from meetings.referral_rules import can_move
from meetings.working_days import add_working_days, working_days_between
from tests.referral_answers import VALID

TODAY = date(2026, 11, 23)
REASONS = (("not_attending", "Not attending"), ("ebsa", "EBSA"))


def check(key, **changes):
    return check_page(page_for(key), {**VALID[key], **changes}, today=TODAY, reasons=REASONS)


def test_every_page_accepts_the_valid_answers():
    for page in PAGES:
        result = check_page(page, VALID[page.key], today=TODAY, reasons=REASONS)
        assert result.errors == {}, page.key


def test_missing_date_of_birth_names_the_field_and_gives_an_example():
    result = check("child", **{"date_of_birth-day": "", "date_of_birth-month": "", "date_of_birth-year": ""})
    assert result.errors["date_of_birth"] == "Enter the date of birth, for example 27 3 2015"


@pytest.mark.parametrize(
    ("day", "month", "year", "message"),
    [
        ("30", "2", "2016", "The date of birth must be a real date"),
        ("1", "", "2016", "The date of birth must include a month"),
        ("1", "1", "2027", "The date of birth must be today or in the past"),
        ("1", "1", "2025", "The child must be between 3 and 19 years old today"),
        ("1", "1", "2000", "The child must be between 3 and 19 years old today"),
    ],
)
def test_date_of_birth_checks(day, month, year, message):
    result = check("child", **{"date_of_birth-day": day, "date_of_birth-month": month, "date_of_birth-year": year})
    assert result.errors["date_of_birth"] == message


@pytest.mark.parametrize(
    ("key", "changes", "field", "message"),
    [
        ("attendance", {"attendance_percent": "101"}, "attendance_percent", "Enter attendance between 0 and 100"),
        ("attendance", {"attendance_percent": "-1"}, "attendance_percent", "Enter attendance between 0 and 100"),
        ("attendance", {"attendance_percent": "lots"}, "attendance_percent", "Enter attendance as a number"),
        ("suspensions", {"suspensions_this_year": "1.5"}, "suspensions_this_year", "as a whole number"),
        (
            "suspensions",
            {"suspensions_this_year": "1", "suspensions_this_half_term": "2"},
            "suspensions_this_half_term",
            "cannot be more",
        ),
        (
            "suspensions",
            {"suspensions_this_year": "2", "suspension_days_this_year": "0"},
            "suspension_days_this_year",
            "more than 0",
        ),
        (
            "exclusion",
            {"permanent_exclusion": "excluded"},
            "permanent_exclusion_on",
            "Enter the date of the permanent exclusion",
        ),
        (
            "part_time",
            {"part_time_timetable": "yes"},
            "part_time_started_on",
            "Enter when the part-time timetable started",
        ),
    ],
)
def test_attendance_exclusion_and_timetable_checks(key, changes, field, message):
    assert message in check(key, **changes).errors[field]


def test_consent_or_a_lawful_basis_is_required():
    answers = {"consent_status": "not_sought"}
    errors = check_page(page_for("consent"), answers, today=TODAY).errors
    assert set(errors) == {"lawful_basis", "lawful_basis_reason", "lawful_basis_decided_by"}
    assert check("consent", consent_status="").errors["consent_status"] == "Select whether consent was given"


def test_none_cannot_be_mixed_with_other_choices():
    assert (
        "on its own" in check("agencies", social_care_statuses=["none", "child_in_need"]).errors["social_care_statuses"]
    )
    assert "on its own" in check("voices", aces_considered=["none_identified", "bereavement"]).errors["aces_considered"]


def test_unknown_choices_and_overlong_text_are_refused():
    assert check("reasons", reasons=["made_up"]).errors["reasons"].startswith("Select")
    long_text = "x" * 1001
    assert "1000 characters or fewer" in check("asks", asks_of_clinic=long_text).errors["asks_of_clinic"]


def test_valid_values_are_cleaned():
    assert str(check("attendance").values["attendance_percent"]) == "82.5"
    assert check("suspensions").values["suspensions_this_year"] == 0
    assert check("child").values["date_of_birth"] == date(2016, 5, 14)


def test_withdrawal_only_from_open_states_and_no_way_back_from_closed():
    assert can_move("accepted", "withdrawn")
    assert not can_move("withdrawn", "declined")
    assert not can_move("closed", "withdrawn")
    assert not can_move("draft", "accepted")
    assert can_move("review", "accepted")


def test_working_days_skip_weekends_and_bank_holidays():
    assert working_days_between(date(2026, 12, 24), date(2026, 12, 29)) == 1  # 25th, 28th are holidays
    assert add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    assert working_days_between(date(2026, 11, 23), date(2026, 11, 27)) == 4


def test_suspension_dates_are_read_as_people_write_them():
    values = check(
        "suspensions",
        suspensions_this_year="2",
        suspension_days_this_year="3",
        suspension_dates="3 10 2026\n17/11/2026\n",
    ).values
    assert values["suspension_dates"] == ["2026-10-03", "2026-11-17"]


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ("3 10 2026\nlast Tuesday", "on its own line"),
        ("31 2 2026", "on its own line"),
        ("1 12 2026", "today or in the past"),
        ("1 10 2026\n2 10 2026\n3 10 2026", "more suspension dates than suspensions"),
    ],
)
def test_suspension_date_problems(dates, message):
    errors = check(
        "suspensions", suspensions_this_year="2", suspension_days_this_year="3", suspension_dates=dates
    ).errors
    assert message in errors["suspension_dates"]


def test_a_part_time_timetable_needs_its_details():
    errors = check("part_time", part_time_timetable="yes").errors
    assert set(errors) == {"part_time_started_on", "part_time_hours", "part_time_la_notified"}
    assert (
        "between 0 and 32.5"
        in check("part_time", part_time_timetable="yes", part_time_hours="40").errors["part_time_hours"]
    )
