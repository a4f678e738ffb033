"""The simulator's reading of the cron schedules: London wall-clock times, across the clocks changing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.simulate import firing_times


def test_a_monday_noon_schedule_stays_at_noon_london_across_the_spring_change():
    times = firing_times("0 12 * * 1", datetime(2027, 3, 20, tzinfo=UTC), datetime(2027, 4, 6, tzinfo=UTC))
    assert times == [
        datetime(2027, 3, 22, 12, 0, tzinfo=UTC),  # GMT
        datetime(2027, 3, 29, 11, 0, tzinfo=UTC),  # BST from Sunday 28 March
        datetime(2027, 4, 5, 11, 0, tzinfo=UTC),
    ]


def test_quarter_hour_firings_skip_the_missing_hour_and_cover_a_fortnight():
    start = datetime(2027, 3, 28, 0, 0, tzinfo=UTC)
    night = firing_times("*/15 * * * *", start, start + timedelta(hours=3))
    # 01:00-02:00 London does not exist that night; UTC keeps counting, every quarter hour.
    assert night[:4] == [start + timedelta(minutes=15 * n) for n in range(4)]
    assert all(b - a == timedelta(minutes=15) for a, b in zip(night, night[1:], strict=False))
    fortnight = firing_times("*/15 * * * *", start, start + timedelta(days=14))
    assert len(fortnight) == 14 * 24 * 4 and len(set(fortnight)) == len(fortnight)


def test_the_autumn_change_does_not_fire_twice_at_the_repeated_hour():
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    times = firing_times("30 1 * * *", start, start + timedelta(days=1))
    assert len(times) == 1  # 01:30 London happens twice on 25 October; a daily schedule runs once
