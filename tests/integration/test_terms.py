"""Term dates from CSV and ICS files: every problem named, nothing saved on any, and a second import changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from caseconf.audit import AuditEvent
from caseconf.errors import Invalid
from meetings import terms
from meetings.models import Term

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)

GOOD_CSV = """name,starts_on,ends_on,half_term_starts_on,half_term_ends_on,closed_days
Autumn 2026,2026-09-01,2026-12-18,2026-10-26,2026-10-30,2026-09-01;2026-11-26
Spring 2027,2027-01-05,2027-03-26,2027-02-15,2027-02-19,
Summer 2027,2027-04-12,2027-07-21,2027-05-31,2027-06-04,
"""


def ics(*events: tuple[str, str, str | None]) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Kestrelford//Terms//EN"]
    for n, (summary, start, end) in enumerate(events):
        lines += ["BEGIN:VEVENT", f"UID:term-{n}@example.org", "DTSTAMP:20260601T090000Z", f"SUMMARY:{summary}"]
        lines.append(f"DTSTART;VALUE=DATE:{start}" if len(start) == 8 else f"DTSTART:{start}")
        if end:
            lines.append(f"DTEND;VALUE=DATE:{end}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines).encode()


GOOD_ICS = ics(
    ("Autumn 2026", "20260901", "20261219"),  # DTEND is the day after the last day
    ("October half term", "20261026", "20261031"),
    ("INSET day", "20261126", None),
    ("Spring 2027", "20270105", "20270327"),
    ("Spring Half-Term", "20270215", "20270220"),
    ("School closed: staff training day", "20270104", "20270106"),  # 4 January is before the term: refused
)


def import_file(session, name, content):
    if session.in_transaction():
        session.rollback()
    with session.begin():
        return terms.import_terms_file(session, filename=name, content=content, now=NOW, actor_id=None)


def saved(session):
    session.expire_all()
    return {t.name: t for t in session.scalars(select(Term))}


def test_a_csv_file_is_imported_and_a_second_import_changes_nothing(session):
    report = import_file(session, "terms.csv", GOOD_CSV.encode())
    assert report.created == ["Autumn 2026", "Spring 2027", "Summer 2027"]
    autumn = saved(session)["Autumn 2026"]
    assert (autumn.starts_on, autumn.ends_on) == (date(2026, 9, 1), date(2026, 12, 18))
    assert (autumn.half_term_starts_on, autumn.half_term_ends_on) == (date(2026, 10, 26), date(2026, 10, 30))
    assert autumn.closed_days == ["2026-09-01", "2026-11-26"]
    again = import_file(session, "terms.csv", GOOD_CSV.encode())
    assert not again.changed and len(again.unchanged) == 3
    assert (
        session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "terms.imported")) == 1
    )


def test_a_changed_row_updates_its_term_by_name(session):
    import_file(session, "terms.csv", GOOD_CSV.encode())
    report = import_file(session, "terms.csv", GOOD_CSV.replace("2027-07-21", "2027-07-22").encode())
    assert report.updated == ["Summer 2027"] and len(report.unchanged) == 2
    assert saved(session)["Summer 2027"].ends_on == date(2027, 7, 22)


def test_export_gives_back_the_same_csv(session):
    import_file(session, "terms.csv", GOOD_CSV.encode())
    session.rollback()
    assert terms.export_terms_csv(session) == GOOD_CSV


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("Bad,2026-13-01,2026-12-18,,,", "line 2: starts_on '2026-13-01' is not a date"),
        ("Backwards,2026-12-18,2026-09-01,,,", "line 2: the term ends (2026-09-01) before it starts"),
        ("Outside,2026-09-01,2026-12-18,2027-01-04,2027-01-08,", "line 2: half-term (2027-01-04 to 2027-01-08) is not"),
        ("Overlap,2027-03-01,2027-04-20,,,", "line 2: 'Overlap' overlaps 'Spring 2027'"),
        (",2026-09-01,2026-12-18,,,", "line 2: the term's name is missing"),
        ("NoEnd,2026-09-01,,,,", "line 2: ends_on is missing"),
        ("HalfOnly,2026-09-01,2026-12-18,2026-10-26,,", "line 2: half_term_ends_on is missing"),
        ("Shut,2026-09-01,2026-12-18,,,2027-02-01", "line 2: closed day 2027-02-01 is not inside the term"),
    ],
)
def test_each_csv_problem_is_named_by_line_and_nothing_is_saved(session, row, message):
    lines = GOOD_CSV.splitlines()
    text = "\n".join([lines[0], row, *lines[2:]])  # the row in place of Autumn 2026
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.csv", text.encode())
    problems = refused.value.problems
    assert any(p.startswith(message) for p in problems), problems
    assert saved(session) == {}


def test_every_problem_is_reported_at_once(session):
    text = "name,starts_on,ends_on,half_term_starts_on,half_term_ends_on\nA,2026-02-30,2026-12-18,,\nB,x,y,,\n"
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.csv", text.encode())
    assert len(refused.value.problems) == 3
    assert [p[:6] for p in refused.value.problems] == ["line 2", "line 3", "line 3"]


def test_a_wrong_header_is_refused(session):
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.csv", b"term,start,end\nA,2026-09-01,2026-12-18\n")
    assert refused.value.problems[0].startswith("line 1: the header must be")


def test_a_term_overlapping_one_already_saved_is_refused(session):
    import_file(session, "terms.csv", GOOD_CSV.encode())
    text = "name,starts_on,ends_on,half_term_starts_on,half_term_ends_on\nAutumn B,2026-12-01,2026-12-31,,\n"
    with pytest.raises(Invalid) as refused:
        import_file(session, "more.csv", text.encode())
    assert "overlaps 'Autumn 2026'" in refused.value.problems[0]
    assert set(saved(session)) == {"Autumn 2026", "Spring 2027", "Summer 2027"}


def test_an_ics_file_gives_terms_half_terms_and_closed_days(session):
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.ics", GOOD_ICS)
    assert refused.value.problems == ["event 'School closed: staff training day': 2027-01-04 is not inside any term"]
    assert saved(session) == {}
    fixed = GOOD_ICS.replace(b"DTSTART;VALUE=DATE:20270104", b"DTSTART;VALUE=DATE:20270105")
    report = import_file(session, "terms.ics", fixed)
    assert report.created == ["Autumn 2026", "Spring 2027"]
    autumn, spring = saved(session)["Autumn 2026"], saved(session)["Spring 2027"]
    assert autumn.ends_on == date(2026, 12, 18)  # DTEND exclusive
    assert (autumn.half_term_starts_on, autumn.half_term_ends_on) == (date(2026, 10, 26), date(2026, 10, 30))
    assert autumn.closed_days == ["2026-11-26"]  # one day: no DTEND
    assert (spring.half_term_starts_on, spring.half_term_ends_on) == (date(2027, 2, 15), date(2027, 2, 19))
    assert spring.closed_days == ["2027-01-05"]
    assert not import_file(session, "anything.txt", fixed).changed  # known by its content too


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ((("Autumn", "20260901T090000Z", None),), "event 'Autumn': is not an all-day event"),
        ((("Autumn", "20260901", "20260901"),), "event 'Autumn': ends (2026-09-01) before it starts"),
        (
            (("Autumn", "20260901", "20261219"), ("Half term", "20270101", "20270102")),
            "event 'Half term': the half-term",
        ),
        (
            (("Autumn", "20260901", "20261219"), ("Spring", "20261201", "20270327")),
            "event 'Spring': 'Spring' overlaps 'Autumn'",
        ),
        ((), "The calendar has no term events"),
    ],
)
def test_each_ics_problem_is_named_by_event(session, events, message):
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.ics", ics(*events))
    assert any(p.startswith(message) for p in refused.value.problems), refused.value.problems
    assert saved(session) == {}


def test_a_file_that_is_not_text_is_refused(session):
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.csv", b"\xff\xfe\x00binary")
    assert "not text" in refused.value.problems[0]


def _raw_event(*lines: str) -> bytes:
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//x//y//EN", "BEGIN:VEVENT", "UID:a@example.org",
            "DTSTAMP:20260601T090000Z", *lines, "END:VEVENT", "END:VCALENDAR"]  # fmt: skip
    return "\r\n".join(body).encode()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (("SUMMARY:Autumn", "DTSTART;VALUE=DATE:2026-13-45"), "event 'Autumn': its dates cannot be read"),
        (("SUMMARY:Autumn", "DTSTART;VALUE=DATE:20260901", "DTSTART;VALUE=DATE:20260902"), "event 'Autumn': has more"),
        (("SUMMARY:Autumn", "DTSTART;VALUE=DATE:20260901", "DTEND:P1D"), "event 'Autumn'"),
        (("SUMMARY:Autumn", "DTSTART;VALUE=PERIOD:20260901T000000Z/P1D"), "event 'Autumn'"),
        (("SUMMARY:Autumn", "SUMMARY:B", "DTSTART;VALUE=DATE:20260901"), "event 1: has more than one SUMMARY"),
    ],
)
def test_a_hostile_calendar_file_gets_a_clear_refusal_not_a_crash(session, lines, message):
    with pytest.raises(Invalid) as refused:
        import_file(session, "terms.ics", _raw_event(*lines))
    assert any(p.startswith(message) for p in refused.value.problems), refused.value.problems
    assert saved(session) == {}
