"""Term dates: imported from a CSV or ICS file, checked as a whole, and saved only when all of it is right.

Terms are matched by name, so importing the same file again changes nothing and a corrected file
updates the terms it names.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from caseconf import audit
from caseconf.errors import Invalid
from meetings.models import Term

CSV_HEADER = ("name", "starts_on", "ends_on", "half_term_starts_on", "half_term_ends_on", "closed_days")
HALF_TERM_WORDS = ("half term", "half-term")
CLOSED_WORDS = ("closed", "inset", "training day")
MAX_NAME = 60


@dataclass(frozen=True)
class TermDates:
    """One term as read from a file, before it is saved."""

    name: str
    starts_on: date
    ends_on: date
    half_term_starts_on: date | None = None
    half_term_ends_on: date | None = None
    closed_days: tuple[date, ...] = ()


@dataclass
class TermImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def __str__(self) -> str:
        parts = [
            f"{len(names)} {verb}" + (f" ({', '.join(names)})" if names else "")
            for verb, names in (("created", self.created), ("updated", self.updated), ("unchanged", self.unchanged))
        ]
        return "terms " + ", ".join(parts)


def find_terms(session: Session) -> list[Term]:
    return list(session.scalars(select(Term).order_by(Term.starts_on)))


def get_term_by_name(session: Session, name: str) -> Term | None:
    return session.scalar(select(Term).where(Term.name == name)) if len(name) <= MAX_NAME else None


# --- reading files --------------------------------------------------------------------------------


def read_terms_file(filename: str, content: bytes) -> list[TermDates]:
    """Terms from a CSV or ICS file, judged by its extension and then its content; Invalid lists every problem."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(["The file is not text (UTF-8): upload a CSV or ICS file"]) from None
    is_ics = filename.lower().endswith((".ics", ".ical")) or text.lstrip().upper().startswith("BEGIN:VCALENDAR")
    return read_terms_ics(text) if is_ics else read_terms_csv(text)


def _iso_date(value: str, what: str, problems: list[str], where: str) -> date | None:
    value = value.strip()
    if not value:
        problems.append(f"{where}: {what} is missing")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{where}: {what} '{value[:40]}' is not a date like 2026-09-01")
        return None


def read_terms_csv(text: str) -> list[TermDates]:
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    header_names = tuple(cell.strip().lower() for cell in header or ())
    required = CSV_HEADER[:-1]
    if header_names[: len(required)] != required or not set(header_names) <= set(CSV_HEADER):
        raise Invalid([f"line 1: the header must be {','.join(CSV_HEADER)} (closed_days may be left out)"])
    entries: list[tuple[TermDates, str]] = []
    for row in reader:
        where = f"line {reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header_names):
            problems.append(f"{where}: has more columns than the header")
            continue
        values = dict(zip(header_names, [cell.strip() for cell in row] + [""] * len(header_names), strict=False))
        term = _term_from_values(values, problems, where)
        if term is not None:
            entries.append((term, where))
    problems.extend(_check_terms(entries))
    if problems:
        raise Invalid(problems)
    return [term for term, _ in entries]


def _term_from_values(values: dict[str, str], problems: list[str], where: str) -> TermDates | None:
    before = len(problems)
    name = values.get("name", "")
    if not name:
        problems.append(f"{where}: the term's name is missing")
    elif len(name) > MAX_NAME:
        problems.append(f"{where}: the term's name is longer than {MAX_NAME} characters")
    starts_on = _iso_date(values.get("starts_on", ""), "starts_on", problems, where)
    ends_on = _iso_date(values.get("ends_on", ""), "ends_on", problems, where)
    half_start_text, half_end_text = values.get("half_term_starts_on", ""), values.get("half_term_ends_on", "")
    half_start = half_end = None
    if half_start_text or half_end_text:
        half_start = _iso_date(half_start_text, "half_term_starts_on", problems, where)
        half_end = _iso_date(half_end_text, "half_term_ends_on", problems, where)
    closed = []
    for part in values.get("closed_days", "").split(";"):
        if part.strip():
            day = _iso_date(part, "a closed day", problems, where)
            if day:
                closed.append(day)
    if len(problems) > before:
        return None
    return TermDates(name, starts_on, ends_on, half_start, half_end, tuple(sorted(set(closed))))


def _check_terms(entries: list[tuple[TermDates, str]]) -> list[str]:
    """Rules on each term and between terms; each term comes with where it is in the file."""
    problems = []
    seen: set[str] = set()
    for term, here in entries:
        if term.name in seen:
            problems.append(f"{here}: another term in the file is also called '{term.name}'")
        seen.add(term.name)
        if term.ends_on < term.starts_on:
            problems.append(f"{here}: the term ends ({term.ends_on}) before it starts ({term.starts_on})")
            continue
        if term.half_term_starts_on and term.half_term_ends_on:
            if term.half_term_ends_on < term.half_term_starts_on:
                problems.append(f"{here}: half-term ends before it starts")
            elif not term.starts_on <= term.half_term_starts_on <= term.half_term_ends_on <= term.ends_on:
                problems.append(
                    f"{here}: half-term ({term.half_term_starts_on} to {term.half_term_ends_on}) is not inside "
                    f"the term ({term.starts_on} to {term.ends_on})"
                )
        for day in term.closed_days:
            if not term.starts_on <= day <= term.ends_on:
                problems.append(f"{here}: closed day {day} is not inside the term")
    ordered = sorted((e for e in entries if e[0].starts_on <= e[0].ends_on), key=lambda e: e[0].starts_on)
    for (earlier, _), (later, here) in zip(ordered, ordered[1:], strict=False):
        if later.starts_on <= earlier.ends_on:
            problems.append(f"{here}: '{later.name}' overlaps '{earlier.name}'")
    return problems


def read_terms_ics(text: str) -> list[TermDates]:
    from icalendar import Calendar

    try:
        calendar = Calendar.from_ical(text)
    except Exception as exc:  # whatever the parser trips on, the file is at fault
        raise Invalid([f"The calendar file cannot be read: {str(exc)[:200]}"]) from None
    problems: list[str] = []
    terms: dict[str, TermDates] = {}
    half_terms: list[tuple[str, date, date]] = []
    closures: list[tuple[str, date, date]] = []
    for number, event in enumerate(calendar.walk("VEVENT"), 1):
        summary = event.get("SUMMARY", "")
        if isinstance(summary, list):
            problems.append(f"event {number}: has more than one SUMMARY (name)")
            continue
        summary = str(summary).strip()
        here = f"event '{summary[:80]}'"
        if not summary:
            problems.append(f"event {number}: has no SUMMARY (name)")
            continue
        try:
            span = _all_day_span(event, here, problems)
        except Exception:  # a property icalendar cannot read: the file's fault, said as such
            problems.append(f"{here}: its dates cannot be read (DTSTART and DTEND must be dates like 20270104)")
            continue
        if span is None:
            continue
        lowered = summary.lower()
        if any(word in lowered for word in HALF_TERM_WORDS):
            half_terms.append((summary, *span))
        elif any(word in lowered for word in CLOSED_WORDS):
            closures.append((summary, *span))
        elif summary in terms:
            problems.append(f"{here}: another event is also called '{summary}'")
        elif len(summary) > MAX_NAME:
            problems.append(f"{here}: the term's name is longer than {MAX_NAME} characters")
        else:
            terms[summary] = TermDates(summary, *span)
    ordered = sorted(terms.values(), key=lambda t: t.starts_on)
    for summary, first, last in half_terms:
        term = next((t for t in ordered if t.starts_on <= first <= t.ends_on), None)
        if term is None or last > term.ends_on:
            problems.append(f"event '{summary}': the half-term ({first} to {last}) is not inside any term")
        elif term.half_term_starts_on is not None:
            problems.append(f"event '{summary}': '{term.name}' already has a half-term")
        else:
            terms[term.name] = term = _replace(term, half_term_starts_on=first, half_term_ends_on=last)
            ordered = sorted(terms.values(), key=lambda t: t.starts_on)
    for summary, first, last in closures:
        day = first
        while day <= last:
            term = next((t for t in terms.values() if t.starts_on <= day <= t.ends_on), None)
            if term is None:
                problems.append(f"event '{summary}': {day} is not inside any term")
                break
            terms[term.name] = _replace(term, closed_days=tuple(sorted({*term.closed_days, day})))
            day += timedelta(days=1)
    result = sorted(terms.values(), key=lambda t: t.starts_on)
    problems.extend(_check_terms([(term, f"event '{term.name}'") for term in result]))
    if not result and not problems:
        problems.append("The calendar has no term events")
    if problems:
        raise Invalid(problems)
    return result


def _replace(term: TermDates, **changes) -> TermDates:
    return TermDates(**{**term.__dict__, **changes})


def _all_day_span(event, here: str, problems: list[str]) -> tuple[date, date] | None:
    """First and last day of an all-day event; its DTEND is the day after it ends (RFC 5545)."""
    start = event.get("DTSTART")
    if start is None:
        problems.append(f"{here}: has no start date (DTSTART)")
        return None
    end = event.get("DTEND")
    if isinstance(start, list) or isinstance(end, list):
        problems.append(f"{here}: has more than one start or end")
        return None
    first = start.dt
    if isinstance(first, datetime) or not isinstance(first, date):
        problems.append(f"{here}: is not an all-day event")
        return None
    if end is None:
        return first, first
    after = end.dt
    if isinstance(after, datetime) or not isinstance(after, date):
        problems.append(f"{here}: is not an all-day event")
        return None
    if after <= first:
        problems.append(f"{here}: ends ({after}) before it starts ({first})")
        return None
    return first, after - timedelta(days=1)


# --- saving ---------------------------------------------------------------------------------------


def _stored(term: Term) -> TermDates:
    return TermDates(
        term.name,
        term.starts_on,
        term.ends_on,
        term.half_term_starts_on,
        term.half_term_ends_on,
        tuple(sorted(date.fromisoformat(d) for d in term.closed_days or ())),
    )


def import_terms(
    session: Session, *, terms: Iterable[TermDates], now: datetime, actor_id: int | None
) -> TermImportReport:
    """Create or update terms by name; refuses the lot (Invalid) if the result would have overlapping terms."""
    terms = list(terms)
    existing = {term.name: term for term in find_terms(session)}
    incoming = {term.name for term in terms}
    kept = [_stored(term) for name, term in existing.items() if name not in incoming]
    clashes = [
        f"'{new.name}' ({new.starts_on} to {new.ends_on}) overlaps '{old.name}' ({old.starts_on} to {old.ends_on}), "
        "which is already saved"
        for new in terms
        for old in kept
        if new.starts_on <= old.ends_on and old.starts_on <= new.ends_on
    ]
    if clashes:
        raise Invalid(clashes)
    report = TermImportReport()
    for dates in terms:
        term = existing.get(dates.name)
        if term is not None and _stored(term) == dates:
            report.unchanged.append(dates.name)
            continue
        if term is None:
            term = Term(name=dates.name)
            session.add(term)
            report.created.append(dates.name)
        else:
            report.updated.append(dates.name)
        term.starts_on, term.ends_on = dates.starts_on, dates.ends_on
        term.half_term_starts_on, term.half_term_ends_on = dates.half_term_starts_on, dates.half_term_ends_on
        term.closed_days = [day.isoformat() for day in dates.closed_days]
    session.flush()
    if report.changed:
        audit.record(
            session,
            now=now,
            action="terms.imported",
            actor_person_id=actor_id,
            record_type="term",
            created=report.created,
            updated=report.updated,
        )
    return report


def import_terms_file(
    session: Session, *, filename: str, content: bytes, now: datetime, actor_id: int | None
) -> TermImportReport:
    return import_terms(session, terms=read_terms_file(filename, content), now=now, actor_id=actor_id)


def export_terms_csv(session: Session) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for term in find_terms(session):
        writer.writerow(
            [
                term.name,
                term.starts_on.isoformat(),
                term.ends_on.isoformat(),
                term.half_term_starts_on.isoformat() if term.half_term_starts_on else "",
                term.half_term_ends_on.isoformat() if term.half_term_ends_on else "",
                ";".join(sorted(term.closed_days or ())),
            ]
        )
    return out.getvalue()
