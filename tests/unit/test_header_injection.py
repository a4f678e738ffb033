"""No text anyone types can add an email header, an envelope recipient or a calendar property.

Header values are made one line by the email policy every outgoing email is built with (ONE_LINE_HEADERS);
the SMTP layer sends each message to its one To address and refuses anything else; calendar text
properties and parameters pass through one_line / text_lines before icalendar escapes them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from icalendar import Calendar

from caseconf.security import one_line, text_lines
from meetings.models import InviteeRole, MeetingStatus
from meetings.schedule import meeting_window
from notifications.calendar import build_cancel, build_feed, build_request
from notifications.delivery import Attachment, Sender, build_email
from notifications.models import OutboundMessage
from notifications.smtp import UnsafeMessage, envelope_recipient

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAYLOADS = [
    "x\r\nBcc: evil@example.com",
    "x\nBcc: evil@example.com",
    "x\rBcc: evil@example.com",
    "x\nATTENDEE:mailto:evil@example.com",
    "x\r\nATTENDEE;CN=Evil:mailto:evil@example.com",
    "x\u2028Bcc: evil@example.com",
    "x\u2029ATTENDEE:mailto:evil@example.com",
    "x\x85Bcc: evil@example.com",
    "x\x0bBcc: evil@example.com",
    "x\x0cBcc: evil@example.com",
    "x\x1cBcc: evil@example.com",
    "x\x00Bcc: evil@example.com",
    "x\r\n\r\n<html>body injection</html>",
    'x"; ATTENDEE:mailto:evil@example.com',
]
# Anything a reader might take as the end of a line.
LINE_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
SENDER = Sender(address="clinic@kestrelford.example.org", name="Kestrelford Inclusion Team")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_one_line_leaves_no_line_break_and_keeps_the_words(payload):
    cleaned = one_line(payload)
    assert not LINE_BREAKS.search(cleaned)
    assert "\t" not in cleaned
    assert cleaned.startswith("x ") or cleaned.startswith('x"')


def test_text_lines_keeps_only_plain_newlines():
    assert text_lines("a\r\nb\rc\u2028d\x00e\x85f") == "a\nb\nc\nd e f"


def outbound(payload: str) -> OutboundMessage:
    return OutboundMessage(
        recipient="camhs.rep@kestrelford.example.org",
        subject=f"Invitation: {payload}",
        body_text="Body",
        body_html="<p>Body</p>",
        message_id="<abc@kestrelford.example.org>",
        in_reply_to=f"<thread@kestrelford.example.org>{payload}",
        references=f"<thread@kestrelford.example.org>{payload}",
        reply_to=f"clinic@kestrelford.example.org{payload}",
        created_at=NOW,
        ics=None,
    )


def header_lines(raw: bytes) -> list[bytes]:
    """The header block of each MIME entity, unfolded, one entry per header."""
    lines = []
    for block in re.split(rb"\r?\n--=+[0-9]+==\r?\n", raw):
        head = re.split(rb"\r?\n\r?\n", block, maxsplit=1)[0]
        lines += re.sub(rb"\r?\n[ \t]", b" ", head).splitlines()
    return lines


@pytest.mark.parametrize("payload", PAYLOADS)
def test_built_email_has_exactly_its_own_headers(payload):
    attachment = Attachment(filename=f"minutes{payload}.pdf", content_type="application/pdf", data=b"%PDF-1.7")
    email = build_email(outbound(payload), Sender(SENDER.address, f"Team{payload}"), [attachment])
    raw = email.as_bytes()
    names = {line.split(b":", 1)[0].lower() for line in header_lines(raw) if not line.startswith(b"--")}
    assert b"bcc" not in names and b"attendee" not in names
    assert names <= {
        b"from",
        b"to",
        b"subject",
        b"message-id",
        b"date",
        b"auto-submitted",
        b"in-reply-to",
        b"references",
        b"reply-to",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
        b"content-disposition",
        b"",
    }, names
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_all("Bcc") is None
    for name, value in parsed.items():
        assert not LINE_BREAKS.search(str(value)), (name, value)
    assert envelope_recipient(parsed) == "camhs.rep@kestrelford.example.org"
    assert str(parsed["Subject"]) == "Invitation: " + one_line(payload)  # the words stay, as words
    (part,) = list(parsed.iter_attachments())
    assert not LINE_BREAKS.search(part.get_filename())
    assert part.get_filename().startswith("minutes")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("To", "x,evil@example.org"),
        ("To", "camhs.rep@kestrelford.example.org, evil@example.org"),
        ("To", "not an address"),
        ("Cc", "evil@example.org"),
        ("Bcc", "evil@example.org"),
    ],
)
def test_the_smtp_layer_sends_to_one_address_only(header, value):
    email = EmailMessage()
    email["From"] = SENDER.address
    if header != "To":
        email["To"] = "camhs.rep@kestrelford.example.org"
    email[header] = value
    with pytest.raises(UnsafeMessage):
        envelope_recipient(email)


# --- calendar ------------------------------------------------------------------------------------------------

KNOWN_PROPERTIES = {
    "BEGIN",
    "END",
    "PRODID",
    "VERSION",
    "CALSCALE",
    "METHOD",
    "UID",
    "SEQUENCE",
    "DTSTAMP",
    "DTSTART",
    "DTEND",
    "SUMMARY",
    "LOCATION",
    "DESCRIPTION",
    "URL",
    "TRANSP",
    "ORGANIZER",
    "ATTENDEE",
    "STATUS",
    "X-WR-CALNAME",
    "X-WR-TIMEZONE",
    "REFRESH-INTERVAL",
    "TZID",
    "TZNAME",
    "TZOFFSETFROM",
    "TZOFFSETTO",
    "RDATE",
    "RRULE",
    "X-LIC-LOCATION",
    "COMMENT",
}


def meeting(payload: str):
    starts_at, ends_at = meeting_window(date(2026, 3, 26), time(13, 30), 120)
    return SimpleNamespace(
        id=7,
        calendar_uid="meeting-1-20260326@kestrelford.example.org",
        sequence=0,
        meeting_date=date(2026, 3, 26),
        starts_at=starts_at,
        ends_at=ends_at,
        location=f"Room {payload}",
        status=MeetingStatus.planned,
        series=SimpleNamespace(name=f"Clinic {payload}"),
    )


def invitation(payload: str):
    person = SimpleNamespace(email="camhs.rep@kestrelford.example.org", name=f"Dr {payload}")
    return SimpleNamespace(person=person, role=InviteeRole.member)


def content_lines(ics: str) -> list[str]:
    """RFC 5545 content lines: split on CRLF only, then unfolded."""
    assert not LINE_BREAKS.search(ics.replace("\r\n", "")), "a line break other than CRLF"
    return ics.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")


def check_calendar(ics: str, *, attendees: int) -> Calendar:
    lines = [line for line in content_lines(ics) if line]
    names = [re.split("[:;]", line, maxsplit=1)[0] for line in lines]
    assert set(names) <= KNOWN_PROPERTIES, set(names) - KNOWN_PROPERTIES
    assert names.count("ATTENDEE") == attendees
    for line in lines:
        if line.startswith(("ATTENDEE", "ORGANIZER")):
            assert line.endswith(("mailto:camhs.rep@kestrelford.example.org", "mailto:clinic@kestrelford.example.org"))
    calendar = Calendar.from_ical(ics)
    (event,) = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]).startswith("Clinic x")
    assert not LINE_BREAKS.search(str(event["SUMMARY"]))
    assert not LINE_BREAKS.search(str(event["LOCATION"]))
    return calendar


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("builder", [build_request, build_cancel])
def test_invitations_carry_typed_text_as_text_never_as_properties(payload, builder):
    ics = builder(
        meeting(payload),
        invitation(payload),
        organizer_email="clinic@kestrelford.example.org",
        organizer_name=f"Team {payload}",
        portal_url="http://127.0.0.1:8000/meetings/7/rsvp",
        now=NOW,
    )
    calendar = check_calendar(ics, attendees=1)
    (event,) = calendar.walk("VEVENT")
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:camhs.rep@kestrelford.example.org"
    assert not LINE_BREAKS.search(str(attendee.params["CN"]))
    assert str(attendee.params["CN"]).startswith("Dr x")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_feed_carries_typed_text_as_text_never_as_properties(payload):
    ics = build_feed([meeting(payload)], calendar_name=f"Council {payload}", base_url="http://127.0.0.1:8000", now=NOW)
    calendar = check_calendar(ics, attendees=0)
    assert not LINE_BREAKS.search(str(calendar["X-WR-CALNAME"]))


def test_ics_special_characters_are_escaped_and_read_back():
    ics = build_feed([meeting("a;b,c\\d")], calendar_name="Council", base_url="http://127.0.0.1:8000", now=NOW)
    assert "SUMMARY:Clinic a\\;b\\,c\\\\d" in content_lines(ics)
    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    assert str(event["SUMMARY"]) == "Clinic a;b,c\\d"


@pytest.mark.parametrize(
    "typed",
    ["x,evil@example.com", "a@b.org;evil@example.com", "Name <evil@example.com>", '"a"@b.org', "a@b.org:25", "a@[1.2.3.4]"],
)
def test_an_address_that_lists_names_or_quotes_others_is_not_an_email_address(typed):
    from caseconf.validation import is_email_address

    assert not is_email_address(typed)
    assert is_email_address("dsl@alderbrook.example.org")
