"""The only place that reads the time. Tests and `caseconf simulate` pass a FixedClock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
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


class RehearsalClock:
    """The system time, except while `caseconf simulate` runs: then the time the rehearsal has reached
    (it writes it to `path`), so people can use the pages as they would at that moment. Only the
    embedded set-up (mail catcher, loopback) uses it; production always reads the system clock."""

    def __init__(self, path: Path):
        self.path = path

    def rehearsal_time(self) -> datetime | None:
        try:
            at = datetime.fromisoformat(self.path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return at.astimezone(UTC) if at.tzinfo is not None else None

    def now(self) -> datetime:
        return self.rehearsal_time() or datetime.now(UTC)


def write_rehearsal_time(path: Path, moment: datetime | None) -> None:
    """Tell a RehearsalClock the time reached (None: the rehearsal is over)."""
    if moment is None:
        path.unlink(missing_ok=True)
        return
    partial = path.with_suffix(".tmp")
    partial.write_text(moment.astimezone(UTC).isoformat(), encoding="utf-8")
    partial.replace(path)  # atomic: a reader never sees half a time


def london(moment: datetime) -> datetime:
    return moment.astimezone(LONDON)


def london_today(now: datetime) -> date:
    return london(now).date()


def london_text(moment: datetime, fmt: str = "%-d %B %Y at %-I:%M%p") -> str:
    """A moment as people in England read it: "3 December 2026 at 1:30pm"."""
    return london(moment).strftime(fmt).replace("AM", "am").replace("PM", "pm")
