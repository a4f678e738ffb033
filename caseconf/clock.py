"""The only place that reads the time. Tests and `caseconf simulate` pass a FixedClock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def london(moment: datetime) -> datetime:
    return moment.astimezone(LONDON)


def london_today(now: datetime) -> date:
    return london(now).date()


def london_text(moment: datetime, fmt: str = "%-d %B %Y at %-I:%M%p") -> str:
    """A moment as people in England read it: "3 December 2026 at 1:30pm"."""
    return london(moment).strftime(fmt).replace("AM", "am").replace("PM", "pm")
