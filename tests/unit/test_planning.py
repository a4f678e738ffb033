"""Meeting dates in term, with no database: half-term, closed days, bank holidays and the clocks changing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from meetings.models import Meeting, MeetingSeries, Term
from meetings.planning import meeting_dates, original_date
from meetings.schedule import calendar_uid, meeting_window

AUTUMN = Term(
    name="Autumn 2026",
    starts_on=date(2026, 9, 1),
    ends_on=date(2026, 12, 18),
    half_term_starts_on=date(2026, 10, 26),
    half_term_ends_on=date(2026, 10, 30),
    closed_days=["2026-11-26"],  # a Thursday training day
)
SUMMER = Term(
    name="Summer 2027",
    starts_on=date(2027, 4, 12),
    ends_on=date(2027, 7, 21),
    half_term_starts_on=date(2027, 5, 31),
    half_term_ends_on=date(2027, 6, 4),
    closed_days=[],
)


def series(weekday: int = 3, term_time_only: bool = True) -> MeetingSeries:
    return MeetingSeries(
        id=1, name="Test", weekday=weekday, start_time=time(13, 30), duration_minutes=120, term_time_only=term_time_only
    )


def test_thursdays_skip_half_term_and_a_closed_day():
    days = meeting_dates(series(), AUTUMN)
    assert days[0] == date(2026, 9, 3) and days[-1] == date(2026, 12, 17)
    assert date(2026, 10, 22) in days and date(2026, 11, 5) in days
    assert date(2026, 10, 29) not in days  # half-term
    assert date(2026, 11, 26) not in days  # closed for training
    assert all(day.weekday() == 3 for day in days)
    assert len(days) == 14  # 16 Thursdays less half-term and the training day


def test_a_monday_series_skips_the_may_bank_holiday_and_whit_half_term():
    days = meeting_dates(series(weekday=0), SUMMER)
    assert date(2027, 5, 3) not in days  # early May bank holiday
    assert date(2027, 5, 31) not in days  # spring bank holiday, in half-term
    assert date(2027, 4, 26) in days and date(2027, 5, 10) in days and date(2027, 6, 7) in days
    assert len(days) == 13  # 15 Mondays less the two bank holidays (the second in half-term)


def test_a_series_that_meets_in_holidays_keeps_half_term_but_not_bank_holidays():
    assert len(meeting_dates(series(term_time_only=False), AUTUMN)) == 16
    mondays = meeting_dates(series(weekday=0, term_time_only=False), SUMMER)
    assert date(2027, 5, 31) not in mondays and date(2027, 5, 3) not in mondays


def test_dates_from_several_terms_come_back_in_order_once():
    days = meeting_dates(series(), [SUMMER, AUTUMN, AUTUMN])
    assert days == sorted(set(days)) and days[0] == date(2026, 9, 3) and days[-1].year == 2027


def test_thursday_1330_stays_1330_in_london_across_both_clock_changes():
    # British Summer Time ends on 25 October 2026 and starts on 28 March 2027.
    assert meeting_window(date(2026, 10, 22), time(13, 30), 120)[0] == datetime(2026, 10, 22, 12, 30, tzinfo=UTC)
    assert meeting_window(date(2026, 11, 5), time(13, 30), 120)[0] == datetime(2026, 11, 5, 13, 30, tzinfo=UTC)
    assert meeting_window(date(2027, 3, 25), time(13, 30), 120)[0] == datetime(2027, 3, 25, 13, 30, tzinfo=UTC)
    assert meeting_window(date(2027, 4, 15), time(13, 30), 120)[0] == datetime(2027, 4, 15, 12, 30, tzinfo=UTC)


def test_a_moved_meeting_remembers_its_original_date_through_its_uid():
    meeting = Meeting(
        series_id=7, meeting_date=date(2026, 12, 1), calendar_uid=calendar_uid(7, date(2026, 12, 3), "x.org")
    )
    assert original_date(meeting) == date(2026, 12, 3)
    odd = Meeting(series_id=7, meeting_date=date(2026, 12, 1), calendar_uid="imported-elsewhere@x.org")
    assert original_date(odd) == date(2026, 12, 1)
