"""Pure date and time helpers for meeting series: no database, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from caseconf.clock import LONDON
from meetings.working_days import is_working_day


def meeting_window(meeting_date: date, start_time: time, duration_minutes: int) -> tuple[datetime, datetime]:
    """UTC start and end of a meeting held at `start_time` on the Europe/London wall clock.

    A series keeps its local time across the clocks changing: 13:30 is 13:30Z in winter and 12:30Z in
    summer.
    """
    if duration_minutes <= 0:
        raise ValueError("a meeting needs a positive duration")
    starts_at = datetime.combine(meeting_date, start_time, tzinfo=LONDON).astimezone(UTC)
    return starts_at, starts_at + timedelta(minutes=duration_minutes)


def thursdays_in_term(
    term_start: date,
    term_end: date,
    half_term_start: date | None,
    half_term_end: date | None,
    weekday: int = 3,
) -> list[date]:
    """Every `weekday` (Monday is 0; Thursday by default) from term start to end, both included,
    leaving out the half-term week."""
    if not 0 <= weekday <= 6:
        raise ValueError("weekday must be 0 (Monday) to 6 (Sunday)")
    day = term_start + timedelta(days=(weekday - term_start.weekday()) % 7)
    dates = []
    while day <= term_end:
        if half_term_start is None or half_term_end is None or not half_term_start <= day <= half_term_end:
            dates.append(day)
        day += timedelta(days=7)
    return dates


def chair_for(rotation: list[int], index: int, every: int) -> int | None:
    """Who chairs the series' `index`-th meeting (from 0) when chairs take `every` meetings in turn."""
    if every <= 0:
        raise ValueError("a chair must take at least one meeting in turn")
    if not rotation:
        return None
    return rotation[(index // every) % len(rotation)]


def calendar_uid(series_id: int, meeting_date: date, domain: str) -> str:
    """The iCalendar UID of a meeting. It is stored when the meeting is made and kept if the
    meeting moves, so every update and cancellation reaches the same calendar entry."""
    return f"meeting-{series_id}-{meeting_date:%Y%m%d}@{domain}"


@dataclass(frozen=True)
class Deadlines:
    """When a meeting's sweeps fall due, in UTC."""

    cutoff_at: datetime
    papers_due_at: datetime
    quorum_check_at: datetime


def _working_day_on_or_before(day: date) -> date:
    while not is_working_day(day):
        day -= timedelta(days=1)
    return day


def _before(meeting_date: date, weekday: int, at: time) -> datetime:
    """`at` on the last `weekday` before the meeting day (a week before when it is the same weekday),
    brought back to a working day when that day is a bank holiday or weekend."""
    days_back = (meeting_date.weekday() - weekday) % 7 or 7
    day = _working_day_on_or_before(meeting_date - timedelta(days=days_back))
    return datetime.combine(day, at, tzinfo=LONDON).astimezone(UTC)


def meeting_deadlines(
    meeting_date: date,
    *,
    cutoff_weekday: int,
    cutoff_time: time,
    papers_weekday: int,
    papers_time: time,
    quorum_check_time: time,
) -> Deadlines:
    """Referral cut-off, papers and quorum check for a meeting on `meeting_date`.

    Defaults for a Thursday clinic: cut-off Monday 12:00, papers Tuesday 09:00, quorum check Wednesday
    12:00. Papers never go before the cut-off (a Tuesday meeting sends them at its Monday cut-off).
    """
    cutoff_at = _before(meeting_date, cutoff_weekday, cutoff_time)
    papers_due_at = max(_before(meeting_date, papers_weekday, papers_time), cutoff_at)
    check_day = _working_day_on_or_before(meeting_date - timedelta(days=1))
    quorum_check_at = datetime.combine(check_day, quorum_check_time, tzinfo=LONDON).astimezone(UTC)
    return Deadlines(cutoff_at, papers_due_at, max(quorum_check_at, papers_due_at))
