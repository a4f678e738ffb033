"""Meeting times on the London wall clock, term-time dates, chair rotation and calendar UIDs."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from caseconf.clock import LONDON
from meetings.schedule import calendar_uid, chair_for, meeting_window, thursdays_in_term

UTC = UTC


@pytest.mark.parametrize(
    ("meeting_date", "utc_start"),
    [
        # Spring forward on Sunday 2026-03-29.
        (date(2026, 3, 26), datetime(2026, 3, 26, 13, 30, tzinfo=UTC)),
        (date(2026, 3, 28), datetime(2026, 3, 28, 13, 30, tzinfo=UTC)),
        (date(2026, 3, 29), datetime(2026, 3, 29, 12, 30, tzinfo=UTC)),
        (date(2026, 4, 2), datetime(2026, 4, 2, 12, 30, tzinfo=UTC)),
        # Fall back on Sunday 2026-10-25.
        (date(2026, 10, 22), datetime(2026, 10, 22, 12, 30, tzinfo=UTC)),
        (date(2026, 10, 24), datetime(2026, 10, 24, 12, 30, tzinfo=UTC)),
        (date(2026, 10, 25), datetime(2026, 10, 25, 13, 30, tzinfo=UTC)),
        (date(2026, 10, 29), datetime(2026, 10, 29, 13, 30, tzinfo=UTC)),
    ],
)
def test_meeting_keeps_its_london_wall_clock_time_across_clock_changes(meeting_date, utc_start):
    starts_at, ends_at = meeting_window(meeting_date, time(13, 30), 120)

    assert starts_at == utc_start
    assert starts_at.utcoffset().total_seconds() == 0
    assert starts_at.astimezone(LONDON).time() == time(13, 30)
    assert ends_at.astimezone(LONDON).time() == time(15, 30)
    assert (ends_at - starts_at).total_seconds() == 120 * 60


def test_meeting_window_refuses_a_meeting_with_no_length():
    with pytest.raises(ValueError):
        meeting_window(date(2026, 11, 5), time(13, 30), 0)


def test_thursdays_of_autumn_2026_skip_half_term():
    dates = thursdays_in_term(date(2026, 9, 1), date(2026, 12, 18), date(2026, 10, 26), date(2026, 10, 30))

    assert dates[0] == date(2026, 9, 3)
    assert dates[-1] == date(2026, 12, 17)
    assert date(2026, 10, 22) in dates and date(2026, 11, 5) in dates
    assert date(2026, 10, 29) not in dates
    assert len(dates) == 15
    assert all(d.weekday() == 3 for d in dates)
    assert dates == sorted(set(dates))


def test_term_boundaries_are_included_and_half_term_is_optional():
    # 2027-01-07 and 2027-01-21 are Thursdays.
    assert thursdays_in_term(date(2027, 1, 7), date(2027, 1, 21), None, None) == [
        date(2027, 1, 7),
        date(2027, 1, 14),
        date(2027, 1, 21),
    ]


def test_another_weekday_can_be_asked_for():
    mondays = thursdays_in_term(date(2027, 2, 8), date(2027, 2, 28), date(2027, 2, 15), date(2027, 2, 19), weekday=0)

    assert mondays == [date(2027, 2, 8), date(2027, 2, 22)]


def test_chairs_take_three_meetings_each_in_turn():
    rotation = [11, 22, 33]

    chairs = [chair_for(rotation, index, 3) for index in range(10)]

    assert chairs == [11, 11, 11, 22, 22, 22, 33, 33, 33, 11]


def test_no_rotation_means_no_chair_and_a_zero_turn_is_refused():
    assert chair_for([], 4, 3) is None
    with pytest.raises(ValueError):
        chair_for([1, 2], 0, 0)


def test_calendar_uid_is_stable_and_distinct_per_meeting():
    uid = calendar_uid(7, date(2026, 11, 12), "kestrelford.example.org")

    assert uid == "meeting-7-20261112@kestrelford.example.org"
    assert uid == calendar_uid(7, date(2026, 11, 12), "kestrelford.example.org")
    assert uid != calendar_uid(7, date(2026, 11, 19), "kestrelford.example.org")
    assert uid != calendar_uid(8, date(2026, 11, 12), "kestrelford.example.org")
