"""iCalendar (RFC 5545) invitations and iTIP (RFC 5546) messages: pure builders and a tolerant reply parser.

Every entry carries the series name, the time and place, and a portal link: never anything about a
child. Invitations go one per recipient, because the list of who attends is itself sensitive.

Text from people (a series name, a location, a person's name) reaches a calendar only through _text and
_clean: no CR, LF, NUL, U+2028 or other line break survives to start a property of its own (ATTENDEE:...),
and icalendar escapes what remains (commas, semicolons, backslashes; newlines in DESCRIPTION as \\n).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from icalendar import Calendar, Event, vCalAddress, vText

from caseconf.clock import LONDON
from caseconf.security import one_line, text_lines
from meetings.models import Invitation, InviteeRole, Meeting, MeetingStatus

PRODID = "-//caseconf//Case conference invitations//EN"
MAX_REPLY_CHARS = 200_000


class MalformedCalendar(ValueError):
    """A calendar part that cannot be read as iCalendar, or a REPLY missing what it must carry."""


@dataclass(frozen=True)
class Reply:
    uid: str
    attendee_email: str
    partstat: str
    sequence: int
    delegated_to: str | None = None


def _clean(value: str, limit: int = 200) -> str:
    # A line break in a parameter could start a new property: none survive (nor quotes, which end a quoted value).
    return one_line(value.replace('"', "'"), limit)


def _text(value: str, limit: int = 500) -> str:
    """A single-line text property (SUMMARY, LOCATION, URL)."""
    return one_line(value, limit)


def _address(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{_clean(email, 320)}")
    address.params["CN"] = vText(_clean(name) or email)
    return address


def _calendar(method: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    return calendar


def _local(moment: datetime) -> datetime:
    # Wall-clock time with TZID=Europe/London, so the entry stays right across the clocks changing.
    return moment.astimezone(LONDON)


def _with_timezones(calendar: Calendar, days: Iterable[date]) -> str:
    days = list(days) or [date(2000, 1, 1)]
    # Only the years the entries fall in: the full 1970-2038 table is several kilobytes per email.
    calendar.add_missing_timezones(first_date=date(min(days).year, 1, 1), last_date=date(max(days).year + 1, 1, 1))
    return calendar.to_ical().decode("utf-8")


def _event(meeting: Meeting, *, now: datetime, portal_url: str, description: str) -> Event:
    event = Event()
    event.add("uid", meeting.calendar_uid)
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", _local(meeting.starts_at))
    event.add("dtend", _local(meeting.ends_at))
    event.add("summary", _text(meeting.series.name))
    if meeting.location:
        event.add("location", _text(meeting.location))
    event.add("description", text_lines(description)[:4000])
    event.add("url", _text(portal_url, 2000))
    event.add("transp", "OPAQUE")
    return event


def _invitation(
    method: str,
    meeting: Meeting,
    invitation: Invitation,
    *,
    organizer_email: str,
    organizer_name: str,
    portal_url: str,
    now: datetime,
) -> str:
    cancelled = method == "CANCEL"
    description = (
        f"This meeting has been cancelled. Details: {portal_url}"
        if cancelled
        else f"Reply with your calendar's Accept or Decline, or on the portal: {portal_url}"
    )
    event = _event(meeting, now=now, portal_url=portal_url, description=description)
    event.add("organizer", _address(organizer_email, organizer_name))
    attendee = _address(invitation.person.email, invitation.person.name)
    attendee.params["CUTYPE"] = "INDIVIDUAL"
    attendee.params["ROLE"] = "OPT-PARTICIPANT" if invitation.role == InviteeRole.deputy else "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "FALSE" if cancelled else "TRUE"
    event.add("attendee", attendee)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    calendar = _calendar(method)
    calendar.add_component(event)
    return _with_timezones(calendar, [meeting.meeting_date])


def build_request(meeting: Meeting, invitation: Invitation, **details: str | datetime) -> str:
    """METHOD:REQUEST for one invitee: a new invitation, or an update when meeting.sequence has risen.
    `details`: organizer_email, organizer_name, portal_url and now, all required."""
    return _invitation("REQUEST", meeting, invitation, **details)


def build_cancel(meeting: Meeting, invitation: Invitation, **details: str | datetime) -> str:
    """METHOD:CANCEL with the same UID: the meeting is off, or this person is no longer invited.
    `details` as for build_request."""
    return _invitation("CANCEL", meeting, invitation, **details)


def build_feed(
    meetings: Iterable[Meeting],
    *,
    calendar_name: str,
    base_url: str,
    now: datetime,
) -> str:
    """A subscribable feed (METHOD:PUBLISH) of one person's meetings; cancelled ones stay, marked cancelled."""
    calendar = _calendar("PUBLISH")
    calendar.add("x-wr-calname", _clean(calendar_name))
    calendar.add("x-wr-timezone", "Europe/London")
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    days = []
    for meeting in meetings:
        cancelled = meeting.status == MeetingStatus.cancelled
        portal_url = f"{base_url}/meetings/{meeting.id}/rsvp"
        event = _event(
            meeting,
            now=now,
            portal_url=portal_url,
            description=("This meeting has been cancelled. " if cancelled else "") + f"Details: {portal_url}",
        )
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        calendar.add_component(event)
        days.append(meeting.meeting_date)
    return _with_timezones(calendar, days)


def parse_reply(raw_ics: str | bytes) -> Reply | None:
    """The reply in an iTIP REPLY, or None when the calendar is some other METHOD.

    Raises MalformedCalendar for anything that cannot be read or lacks a UID, an attendee or a PARTSTAT.
    """
    if isinstance(raw_ics, bytes):
        raw_ics = raw_ics.decode("utf-8", errors="replace")
    if not raw_ics or len(raw_ics) > MAX_REPLY_CHARS:
        raise MalformedCalendar("empty or oversized calendar")
    try:
        calendar = Calendar.from_ical(raw_ics)
    except Exception as exc:  # icalendar raises ValueError and others for broken input
        raise MalformedCalendar(f"not iCalendar: {type(exc).__name__}") from exc
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise MalformedCalendar("not a VCALENDAR")
    if str(calendar.get("METHOD", "")).strip().upper() != "REPLY":
        return None
    events = [c for c in calendar.walk("VEVENT")]
    if not events:
        raise MalformedCalendar("a REPLY without a VEVENT")
    event = events[0]
    uid = str(event.get("UID", "")).strip()
    attendees = event.get("ATTENDEE")
    if isinstance(attendees, list):
        attendees = attendees[0] if attendees else None
    if not uid or attendees is None:
        raise MalformedCalendar("a REPLY without a UID or an ATTENDEE")
    email = _mailto(str(attendees))
    partstat = str(getattr(attendees, "params", {}).get("PARTSTAT", "")).strip().upper()
    if not email or not partstat:
        raise MalformedCalendar("a REPLY whose ATTENDEE has no address or PARTSTAT")
    try:
        sequence = int(str(event.get("SEQUENCE", 0)))
    except ValueError as exc:
        raise MalformedCalendar("a SEQUENCE that is not a number") from exc
    delegated = getattr(attendees, "params", {}).get("DELEGATED-TO")
    if isinstance(delegated, list):
        delegated = delegated[0] if delegated else None
    return Reply(
        uid=uid[:200],
        attendee_email=email,
        partstat=partstat[:20],
        sequence=sequence,
        delegated_to=_mailto(str(delegated)) if delegated else None,
    )


def _mailto(value: str) -> str:
    value = value.strip().strip('"')
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value.strip().lower()[:320]
