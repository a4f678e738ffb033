"""Malformed, truncated, huge, nested and wrongly encoded email and iTIP replies, sent through the real SMTP
listener into the app mailbox and processed: each is kept for a person or refused at SMTP; nothing raises;
no invitation or action changes; the listener keeps serving."""

from __future__ import annotations

import smtplib
from datetime import date

import pytest
from sqlalchemy import func, select

from caseconf.db import transaction
from meetings.models import Action, Invitation, Meeting
from notifications import invites
from notifications.catcher import start_inbox_listener
from notifications.inbox import process_inbox, store_inbound
from notifications.models import InboundMessage, InboundStatus
from tests.conftest import free_port
from tests.factories import MAIL
from tests.hostile.conftest import still_serving

APP = "clinic@kestrelford.example.org"
REP = "camhs.rep@kestrelford.example.org"
CRLF = "\r\n"


@pytest.fixture(scope="module")
def meeting_uid(world) -> str:
    with transaction(world.session_factory) as session:
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == date(2026, 11, 26)))
        invites.send_invitations(session, meeting.id, now=world.clock.now(), mail=MAIL, organizer_name="Team")
        return meeting.calendar_uid


@pytest.fixture(scope="module")
def listener(world):
    def keep(raw: bytes) -> None:
        with transaction(world.session_factory) as session:
            store_inbound(session, raw=raw, now=world.clock.now())

    port = free_port()
    controller = start_inbox_listener("127.0.0.1", port, keep)
    yield port
    controller.stop()


def send(port: int, raw: bytes, sender: str = "someone@school.example.org") -> int:
    """Sends raw bytes as they are; the SMTP reply code (250 when kept)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        try:
            smtp.sendmail(sender, [APP], raw)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
        except smtplib.SMTPSenderRefused as exc:
            return exc.smtp_code
        except smtplib.SMTPRecipientsRefused:
            return 550
    return 250


def snapshot(world) -> tuple:
    """Everything a hostile reply might wrongly change: every invitation and every action, column by column."""
    with world.session_factory() as session:
        return (
            [tuple(r) for r in session.execute(select(Invitation.__table__).order_by(Invitation.id)).all()],
            [tuple(r) for r in session.execute(select(Action.__table__).order_by(Action.id)).all()],
        )


def inbound_count(world) -> int:
    with world.session_factory() as session:
        return session.scalar(select(func.count()).select_from(InboundMessage))


def process(world):
    with transaction(world.session_factory) as session:
        return process_inbox(session, now=world.clock.now(), mail=MAIL, own_address=APP)


def headers(sender: str | None = "dsl@alderbrook.example.org", subject: str = "Hello", **extra: str) -> str:
    lines = [f"From: {sender}"] if sender is not None else []
    lines += [f"To: {APP}", f"Subject: {subject}", "Date: Mon, 23 Nov 2026 10:00:00 +0000"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return CRLF.join(lines) + CRLF


def ics_reply(uid: str | None, attendee: str | None, partstat: str | None, *, extra: str = "", events: int = 1) -> str:
    event = ["BEGIN:VEVENT"]
    if uid is not None:
        event.append(f"UID:{uid}")
    event += ["DTSTAMP:20261123T110000Z", "SEQUENCE:0", f"ORGANIZER:mailto:{APP}"]
    if attendee is not None:
        event.append(f"ATTENDEE;PARTSTAT={partstat};CN=Rep:mailto:{attendee}" if partstat else f"ATTENDEE:mailto:{attendee}")
    event += [extra, "END:VEVENT"] if extra else ["END:VEVENT"]
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//x//y//EN", "METHOD:REPLY", *(event * events), "END:VCALENDAR"]
    return CRLF.join(body) + CRLF


def calendar_email(sender: str, ics: str, *, charset: str = "utf-8", encoding: str = "7bit") -> bytes:
    text = (
        headers(sender, "Accepted: Hot Clinic", MIME_Version="1.0", Content_Type='multipart/alternative; boundary="b1"')
        + CRLF
        + f"--b1{CRLF}Content-Type: text/plain{CRLF}{CRLF}Accepted{CRLF}"
        + f'--b1{CRLF}Content-Type: text/calendar; method=REPLY; charset="{charset}"{CRLF}'
        + f"Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}{ics}{CRLF}--b1--{CRLF}"
    )
    return text.encode("utf-8", "surrogateescape")


def hostile_emails(uid: str) -> list[tuple[str, bytes]]:
    nested = headers(MIME_Version="1.0", Content_Type='multipart/mixed; boundary="n0"') + CRLF
    for level in range(1, 300):
        nested += f"--n{level - 1}{CRLF}Content-Type: multipart/mixed; boundary=\"n{level}\"{CRLF}{CRLF}"
    nested += "status VPHC-2026-0001" + CRLF
    return [
        ("no From", (headers(None, "status VPHC-2026-0001") + CRLF + "status VPHC-2026-0001").encode()),
        ("unreadable From", (headers("<<<@@>>>", "x") + CRLF + "hi").encode()),
        ("encoded-word From with unknown charset", (headers("=?x-nope?B?////?= <a@b>", "=?x-nope?Q?=FF?=") + CRLF + "hi").encode()),
        ("raw 8-bit headers", headers("Dsl <dsl@alderbrook.example.org>", "status \xff\xfe caf\xe9").encode("latin-1") + b"\r\n\xff\x00body"),
        ("invalid UTF-8 everywhere", b"From: \xc3\x28@x\r\nSubject: \xed\xa0\x80\r\nTo: " + APP.encode() + b"\r\n\r\n\xf0\x28\x8c\x28"),
        ("truncated multipart", (headers(MIME_Version="1.0", Content_Type='multipart/mixed; boundary="zz"') + CRLF + "--zz\r\nContent-Type: text/pl").encode()),
        ("broken boundary", (headers(MIME_Version="1.0", Content_Type="multipart/mixed; boundary=") + CRLF + "--\r\n\r\nhello\r\n----\r\n").encode()),
        ("mismatched boundary", (headers(MIME_Version="1.0", Content_Type='multipart/mixed; boundary="a"') + CRLF + "--b\r\n\r\nx\r\n--b--\r\n").encode()),
        ("deeply nested multipart", nested.encode()),
        ("invalid base64", (headers(MIME_Version="1.0", Content_Type="text/plain", Content_Transfer_Encoding="base64") + CRLF + "!!!not base64***\r\n====").encode()),
        ("invalid quoted-printable", (headers(MIME_Version="1.0", Content_Type="text/plain", Content_Transfer_Encoding="quoted-printable") + CRLF + "status =ZZ=\r\n=G1 VPHC-2026-0001").encode()),
        ("unknown charset", (headers(MIME_Version="1.0", Content_Type="text/plain; charset=x-klingon") + CRLF + "Please phone me about this child").encode()),
        ("unknown transfer encoding", (headers(MIME_Version="1.0", Content_Type="text/plain", Content_Transfer_Encoding="x-uuencode-evil") + CRLF + "begin 644 x\r\n").encode()),
        ("huge header", (headers(subject="A" * 200_000) + CRLF + "hi").encode()),
        ("thousands of headers", (headers() + "".join(f"X-H{i}: {i}{CRLF}" for i in range(5000)) + CRLF + "hi").encode()),
        ("header folded forever", (headers() + "X-Long: a" + (CRLF + " a") * 20_000 + CRLF + CRLF + "hi").encode()),
        ("NUL bytes", b"From: dsl@alderbrook.example.org\x00evil\r\nTo: " + APP.encode() + b"\r\nSubject: a\x00b\r\n\r\nbody\x00\x00"),
        ("no body, no headers", b"\r\n"),
        ("headers only", headers().encode()),
        ("message/rfc822 loop", (headers(MIME_Version="1.0", Content_Type="message/rfc822") + CRLF + headers(MIME_Version="1.0", Content_Type="message/rfc822") + CRLF + "x").encode()),
        ("a forged thread and subject tag", (headers(subject="Re: done [ACT-1-deadbeef]", In_Reply_To="<action-1@kestrelford.example.org>", References="<referral-1@kestrelford.example.org> <action-2@kestrelford.example.org>") + CRLF + "done: all sorted").encode()),
        ("a thread id too big", (headers(In_Reply_To="<referral-999999999@kestrelford.example.org>", References="<action-999999999@kestrelford.example.org>") + CRLF + "done").encode()),
        ("reply with no UID", calendar_email(REP, ics_reply(None, REP, "ACCEPTED"))),
        ("reply for an unknown UID", calendar_email(REP, ics_reply("meeting-999-20990101@evil.example.org", REP, "ACCEPTED"))),
        ("reply with a bad PARTSTAT", calendar_email(REP, ics_reply(uid, REP, "X-PWNED"))),
        ("reply with no PARTSTAT", calendar_email(REP, ics_reply(uid, REP, None))),
        ("reply forging the attendee", calendar_email("attacker@evil.example.org", ics_reply(uid, REP, "DECLINED"))),
        ("reply forging the organizer", calendar_email(REP, ics_reply(uid, REP, "DECLINED").replace(f"ORGANIZER:mailto:{APP}", "ORGANIZER:mailto:attacker@evil.example.org").replace("ATTENDEE;", "ATTENDEE;SENT-BY=\"mailto:attacker@evil.example.org\";"), charset="utf-8").replace(b"From: " + REP.encode(), b"From: attacker@evil.example.org")),
        ("several VEVENTs, the first unknown", calendar_email(REP, ics_reply("unknown@x", REP, "ACCEPTED").replace("END:VEVENT\r\nEND:VCALENDAR", "END:VEVENT\r\n" + ics_reply(uid, REP, "DECLINED").split("METHOD:REPLY\r\n")[1]))),
        ("garbage VCALENDAR", calendar_email(REP, "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nATTENDEE;PARTSTAT=\r\n\x00\x01\x02\r\nEND:VTODO\r\n")),
        ("not iCalendar at all", calendar_email(REP, "<html><script>alert(1)</script></html>")),
        ("a SEQUENCE that is not a number", calendar_email(REP, ics_reply(uid, REP, "DECLINED").replace("SEQUENCE:0", "SEQUENCE:lots"))),
        ("an ATTENDEE with no address", calendar_email(REP, ics_reply(uid, "", "DECLINED"))),
        ("a calendar in invalid base64", calendar_email(REP, "QkVHSU46VkNBTEVOREFS!!!", encoding="base64")),
        ("a calendar in an unknown charset", calendar_email(REP, ics_reply(uid, REP, "DECLINED"), charset="x-nope").replace(b"ATTENDEE", b"ATTEN\xffDEE")),
        ("an oversized calendar", calendar_email(REP, ics_reply(uid, REP, "DECLINED", extra="X-PAD:" + "A" * 75 + (CRLF + " " + "A" * 74) * 30_000))),
        ("a thousand VEVENTs", calendar_email(REP, ics_reply("unknown@x", REP, "ACCEPTED", events=1000))),
    ]


def test_every_hostile_message_is_kept_for_a_person_or_refused(world, listener, meeting_uid):
    before = snapshot(world)
    stored_before = inbound_count(world)
    accepted = 0
    for name, raw in hostile_emails(meeting_uid):
        code = send(listener, raw)
        assert code == 250 or 500 <= code < 600 or code == 451, f"{name}: {code}"
        accepted += code == 250
    # Bytes the listener accepted are kept (an empty message has nothing to keep).
    assert inbound_count(world) >= stored_before + accepted - 1
    process(world)  # must not raise, whatever it found
    with world.session_factory() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert rows and all(r.status != InboundStatus.received for r in rows)
        applied = [(r.subject, r.note) for r in rows if r.status == InboundStatus.applied]
        assert applied == [], applied
        unattended = [(r.subject, r.note) for r in rows if r.status == InboundStatus.ignored]
        assert unattended == [], f"hostile messages dropped without a person seeing them: {unattended}"
        assert all(r.note for r in rows)
    assert snapshot(world) == before, "a hostile message changed an invitation or an action"


def test_a_message_over_the_size_limit_is_refused_at_smtp_and_the_listener_carries_on(world, listener):
    stored = inbound_count(world)
    big = (headers(subject="big") + CRLF).encode() + (b"A" * 998 + b"\r\n") * (26 * 1024 + 10)
    assert send(listener, big) == 552
    assert inbound_count(world) == stored
    assert send(listener, (headers(subject="status VPHC-2026-9999") + CRLF + "status VPHC-2026-9999").encode()) == 250
    assert inbound_count(world) == stored + 1


def test_the_listener_and_the_app_still_serve_after_the_barrage(world, listener, meeting_uid):
    before = snapshot(world)
    # A genuine reply from the invitee's own address still applies.
    assert send(listener, calendar_email(REP, ics_reply(meeting_uid, REP, "ACCEPTED")), sender=REP) == 250
    report = process(world)
    assert report.rsvps == 1
    after = snapshot(world)
    assert after[1] == before[1] and after[0] != before[0]
    still_serving(world)
