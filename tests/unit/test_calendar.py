"""The iCalendar builders and the reply parser, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from types import SimpleNamespace

import pytest
from icalendar import Calendar

from meetings.models import InviteeRole, MeetingStatus
from meetings.schedule import meeting_window
from notifications.calendar import MalformedCalendar, build_cancel, build_feed, build_request, parse_reply

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def meeting(day: date, *, status=MeetingStatus.planned, sequence=0, meeting_id=7):
    starts_at, ends_at = meeting_window(day, time(13, 30), 120)
    return SimpleNamespace(
        id=meeting_id,
        calendar_uid=f"meeting-1-{day:%Y%m%d}@kestrelford.example.org",
        sequence=sequence,
        meeting_date=day,
        starts_at=starts_at,
        ends_at=ends_at,
        location="Committee Room 2",
        status=status,
        series=SimpleNamespace(name="Kestrelford Vulnerable Pupil Hot Clinic"),
    )


def invitation(name="Dr Nadia Fenwick", role=InviteeRole.member):
    return SimpleNamespace(person=SimpleNamespace(email="camhs.rep@kestrelford.example.org", name=name), role=role)


def build(kind=build_request, *, meeting_=None):
    options = {
        "organizer_email": "clinic@kestrelford.example.org",
        "organizer_name": "Kestrelford Inclusion Team",
        "portal_url": "http://127.0.0.1:8000/meetings/7/rsvp",
        "now": NOW,
    }
    return kind(meeting_ or meeting(date(2026, 3, 26)), invitation(), **options)


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [(date(2026, 3, 26), 13), (date(2026, 4, 2), 12), (date(2026, 10, 22), 12), (date(2026, 10, 29), 13)],
)
def test_start_is_1330_local_either_side_of_the_clocks_changing(day, utc_hour):
    ics = build_request(
        meeting(day),
        invitation(),
        organizer_email="clinic@kestrelford.example.org",
        organizer_name="Team",
        portal_url="http://x/meetings/7/rsvp",
        now=NOW,
    )
    assert f"DTSTART;TZID=Europe/London:{day:%Y%m%d}T133000" in ics
    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    assert event.decoded("DTSTART").astimezone(UTC).hour == utc_hour
    assert "BEGIN:VTIMEZONE" in ics and "TZID:Europe/London" in ics


def test_a_name_cannot_add_calendar_lines():
    ics = build_request(
        meeting(date(2026, 3, 26)),
        invitation(name='Eve\r\nATTENDEE:mailto:spy@evil.example\r\n"x'),
        organizer_email="clinic@kestrelford.example.org",
        organizer_name="Team\nX-INJECTED:1",
        portal_url="http://x/meetings/7/rsvp",
        now=NOW,
    )
    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    attendees = event["ATTENDEE"]
    assert not isinstance(attendees, list)  # still only one
    assert "spy@evil.example" not in str(attendees)
    assert "X-INJECTED" not in event and "\nX-INJECTED" not in ics
    assert ics.count("\r\nATTENDEE") == 1


def test_cancel_keeps_the_uid_and_marks_it_cancelled():
    request = Calendar.from_ical(build(meeting_=meeting(date(2026, 3, 26), sequence=1)))
    cancel = Calendar.from_ical(build(build_cancel, meeting_=meeting(date(2026, 3, 26), sequence=2)))
    assert (request["METHOD"], cancel["METHOD"]) == ("REQUEST", "CANCEL")
    (first,), (second,) = request.walk("VEVENT"), cancel.walk("VEVENT")
    assert str(first["UID"]) == str(second["UID"])
    assert (first["SEQUENCE"], second["SEQUENCE"]) == (1, 2)
    assert str(second["STATUS"]) == "CANCELLED"


def test_the_feed_publishes_each_meeting_and_marks_cancelled_ones():
    feed = build_feed(
        [meeting(date(2026, 3, 26)), meeting(date(2027, 1, 14), status=MeetingStatus.cancelled, meeting_id=8)],
        calendar_name="Clinic meetings",
        base_url="http://127.0.0.1:8000",
        now=NOW,
    )
    calendar = Calendar.from_ical(feed)
    assert calendar["METHOD"] == "PUBLISH"
    events = calendar.walk("VEVENT")
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CANCELLED"]
    assert all("ATTENDEE" not in e for e in events)
    assert "/meetings/8/rsvp" in str(events[1]["DESCRIPTION"])


def test_parse_reply_reads_what_a_client_sends():
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\n"
        "METHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:meeting-1-20260326@kestrelford.example.org\r\nSEQUENCE:2\r\n"
        "DTSTAMP:20260302T100000Z\r\n"
        'ATTENDEE;PARTSTAT=DELEGATED;DELEGATED-TO="mailto:Sub@Camhs.example.org";CN="Fenwick, Nadia":'
        "MAILTO:Camhs.Rep@kestrelford.example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    reply = parse_reply(ics)
    assert reply.uid == "meeting-1-20260326@kestrelford.example.org"
    assert reply.attendee_email == "camhs.rep@kestrelford.example.org"
    assert (reply.partstat, reply.sequence, reply.delegated_to) == ("DELEGATED", 2, "sub@camhs.example.org")


def test_parse_reply_ignores_other_methods_and_refuses_the_broken():
    assert parse_reply(build()) is None  # a REQUEST is not a reply
    for broken in ("", "hello", "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nEND:VCALENDAR\r\n", b"\xff\xfe\x00"):
        with pytest.raises(MalformedCalendar):
            parse_reply(broken)
    no_partstat = (
        "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:x\r\nATTENDEE:mailto:a@b.example\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(MalformedCalendar):
        parse_reply(no_partstat)
