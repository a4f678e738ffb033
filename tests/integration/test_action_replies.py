"""Owners update actions by replying to any action email: real RFC 5322 replies through the app mailbox."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import select

from caseconf.db import transaction
from meetings.actions import update_action
from meetings.models import Action, ActionStatus, Referral, ReferralStatus
from notifications.inbox import process_inbox, store_inbound
from notifications.models import InboundMessage, InboundStatus, OutboundMessage
from tests.integration.actions_setup import APP, CAMHS_REP, MAIL, at, emails_about, load, make_action, sweep

DUE = date(2026, 12, 23)
NOW = at(date(2026, 12, 16))
LATER = at(date(2026, 12, 17), 11)
QUOTE = "\n\nOn 16 Dec 2026, at 09:00, Kestrelford Inclusion Team wrote:\n> Dear Agency Rep,\n> done\n"


def announced(session_factory, session, **kwargs) -> tuple[int, OutboundMessage]:
    action_id = make_action(session_factory, due_on=DUE, now=NOW, **kwargs)
    assert sweep(session_factory, NOW, only=action_id) == [(action_id, "assigned")]
    return action_id, emails_about(session, action_id)[0]


def reply_to(
    original: OutboundMessage, body: str, *, sender: str = CAMHS_REP, to: str | None = None, **headers: str
) -> bytes:
    """A reply as a mail client writes one: to the Reply-To, Re: subject, threaded on the original."""
    message = EmailMessage()
    message["From"] = f"A Person <{sender}>"
    message["To"] = to or original.reply_to or APP
    message["Subject"] = f"Re: {original.subject}"
    message["Date"] = format_datetime(LATER)
    message["Message-ID"] = make_msgid(domain="nhs.example.org")
    message["In-Reply-To"] = original.message_id
    message["References"] = f"{original.in_reply_to} {original.message_id}"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def deliver(session_factory, raw: bytes):
    with transaction(session_factory) as session:
        inbound_id = store_inbound(session, raw=raw, now=LATER).id
    with transaction(session_factory) as session:
        report = process_inbox(session, now=LATER, mail=MAIL, own_address=APP)
    return inbound_id, report


def test_done_by_reply_closes_the_action_and_confirms(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    inbound_id, report = deliver(session_factory, reply_to(original, "Done, thanks." + QUOTE))
    assert report.action_replies == 1
    action = session.get(Action, action_id)
    assert action.status == ActionStatus.done and action.completed_at == LATER
    assert [e.kind for e in action.events][-1] == "done"
    inbound = session.get(InboundMessage, inbound_id)
    assert (inbound.status, inbound.kind) == (InboundStatus.applied, "action_reply")
    confirm = session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "action_reply_applied"))
    assert confirm.recipient == CAMHS_REP and "Status now: Done" in confirm.body_text
    assert confirm.in_reply_to == f"<action-{action_id}@kestrelford.example.org>"
    # The same message delivered again is stored once and applied once.
    deliver(session_factory, reply_to(original, "Done, thanks." + QUOTE))
    session.expire_all()
    assert [e.kind for e in session.get(Action, action_id).events].count("done") == 1


def test_a_reply_found_by_thread_alone_is_kept_for_a_person_naming_the_action(session_factory, session):
    load(session_factory)
    first_id, first = announced(session_factory, session)
    second_id, second = announced(session_factory, session, agency="CAMHS")
    # Sent to the plain mailbox with the subject tag removed: only the thread says which action it is.
    # Threads are guessable (<action-{id}@domain>), so nothing changes: a person decides.
    raw = reply_to(
        second, "Update: first appointment offered for 5 January.\nFamily agreed.\n\n-- \nA Person, CAMHS", to=APP
    ).replace(b"[ACT-", b"[act ")
    inbound_id, report = deliver(session_factory, raw)
    assert report.action_replies == 0 and report.for_a_person == 1
    session.expire_all()
    inbound = session.get(InboundMessage, inbound_id)
    assert inbound.status == InboundStatus.needs_human and f"ACT-{second_id}" in inbound.note
    updated, other = session.get(Action, second_id), session.get(Action, first_id)
    assert updated.latest_update is None and updated.events[-1].kind == "assigned"
    assert other.latest_update is None and other.events[-1].kind == "assigned"


def test_a_forged_thread_from_a_spoofed_owner_changes_nothing(session_factory, session):
    """Anyone can write In-Reply-To: <action-{id}@domain> and From: the owner; without the token it is kept."""
    load(session_factory)
    action_id, _ = announced(session_factory, session)
    message = EmailMessage()
    message["From"], message["To"] = f"A Person <{CAMHS_REP}>", APP
    message["Subject"] = "Re: your action"
    message["Message-ID"] = make_msgid(domain="elsewhere.example.com")
    message["In-Reply-To"] = f"<action-{action_id}@kestrelford.example.org>"
    message.set_content("done")
    inbound_id, _ = deliver(session_factory, message.as_bytes())
    session.expire_all()
    assert session.get(Action, action_id).status == ActionStatus.open
    inbound = session.get(InboundMessage, inbound_id)
    assert inbound.status == InboundStatus.needs_human and f"ACT-{action_id}" in inbound.note


def test_a_reply_failing_dmarc_is_kept_for_a_person(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    failing = "mx.kestrelford.example.org; spf=pass smtp.mailfrom=example.com; dkim=none; dmarc=fail (p=none)"
    inbound_id, report = deliver(session_factory, reply_to(original, "done", Authentication_Results=failing))
    assert report.action_replies == 0 and report.for_a_person == 1
    session.expire_all()
    assert session.get(Action, action_id).status == ActionStatus.open
    inbound = session.get(InboundMessage, inbound_id)
    assert inbound.status == InboundStatus.needs_human and f"ACT-{action_id}" in inbound.note
    assert not session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "action_reply_applied")).all()


def test_a_reply_failing_spf_and_dkim_is_kept_but_one_passing_is_applied(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    both = "mx.kestrelford.example.org; spf=fail smtp.mailfrom=nhs.example.org; dkim=fail header.d=nhs.example.org"
    deliver(session_factory, reply_to(original, "done", Authentication_Results=both))
    session.expire_all()
    assert session.get(Action, action_id).status == ActionStatus.open
    one = "mx.kestrelford.example.org; spf=fail smtp.mailfrom=nhs.example.org; dkim=pass header.d=nhs.example.org"
    _, report = deliver(session_factory, reply_to(original, "done", Authentication_Results=one))
    assert report.action_replies == 1
    session.expire_all()
    assert session.get(Action, action_id).status == ActionStatus.done


def test_only_a_bare_done_or_done_with_a_note_closes_the_action(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    for body in ("Done the form, still waiting for the GP", "Done?\nNot sure yet", "done but not yet sent"):
        inbound_id, report = deliver(session_factory, reply_to(original, body + QUOTE))
        assert report.for_a_person == 1, body
        session.expire_all()
        assert session.get(Action, action_id).status == ActionStatus.open, body
        assert session.get(InboundMessage, inbound_id).status == InboundStatus.needs_human
    _, report = deliver(session_factory, reply_to(original, "done: form sent to the GP" + QUOTE))
    assert report.action_replies == 1
    session.expire_all()
    action = session.get(Action, action_id)
    assert action.status == ActionStatus.done and action.events[-1].note == "form sent to the GP"


def test_courteous_bare_dones_are_read_as_done():
    from notifications.chasing import read_command

    for body in ("Done.", "done, thanks", "Done - thank you!", "DONE", "done: ", "Done, many thanks.\n\nJo"):
        assert read_command(body) is not None and read_command(body).kind == "done", body
    for body in ("Done the form", "done but waiting", "Done?\nstill waiting", "done (mostly)", "doneish"):
        assert read_command(body) is None, body


def test_cannot_do_stays_open_and_tells_the_coordinator(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    deliver(session_factory, reply_to(original, "cannot do: the family has moved out of the area"))
    action = session.get(Action, action_id)
    assert action.status == ActionStatus.open and action.not_done_reason == "other"
    assert action.latest_update == "the family has moved out of the area"
    told = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "action_cannot_do")).all()
    assert [m.recipient for m in told] == ["clinic.coordinator@kestrelford.example.org"]
    assert "moved out" not in told[0].body_text  # the note is read on the portal, not in email


def test_a_reply_from_an_unknown_sender_is_refused_and_changes_nothing(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    inbound_id, report = deliver(session_factory, reply_to(original, "done", sender="someone@elsewhere.example.com"))
    assert report.action_replies == 0 and report.for_a_person == 1
    inbound = session.get(InboundMessage, inbound_id)
    assert inbound.status == InboundStatus.needs_human and "refused" in inbound.note
    assert session.get(Action, action_id).status == ActionStatus.open
    refusal = session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "action_reply_refused"))
    assert refusal.recipient == "someone@elsewhere.example.com"
    assert f"ACT-{action_id}" not in refusal.subject + refusal.body_text


def test_a_reply_with_no_command_is_kept_for_a_person(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    inbound_id, report = deliver(session_factory, reply_to(original, "Can we talk about this on Friday?" + QUOTE))
    assert report.for_a_person == 1
    inbound = session.get(InboundMessage, inbound_id)
    assert inbound.status == InboundStatus.needs_human and f"ACT-{action_id}" in inbound.note
    action = session.get(Action, action_id)
    assert action.status == ActionStatus.open and len(action.events) == 1


def test_an_out_of_office_reply_never_changes_an_action(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    inbound_id, report = deliver(
        session_factory,
        reply_to(original, "Done\nI am out of the office until 4 January.", Auto_Submitted="auto-replied"),
    )
    assert report.ignored == 1
    assert session.get(InboundMessage, inbound_id).status == InboundStatus.ignored
    assert session.get(Action, action_id).status == ActionStatus.open


def test_a_forged_token_or_tag_matches_nothing(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    message = EmailMessage()
    message["From"], message["To"] = CAMHS_REP, "clinic+action-0123456789abcdef0123@kestrelford.example.org"
    message["Subject"] = f"Re: [ACT-{action_id}-00000000]"
    message["Message-ID"] = make_msgid(domain="nhs.example.org")
    message.set_content("done")
    inbound_id, _ = deliver(session_factory, message.as_bytes())
    assert session.get(Action, action_id).status == ActionStatus.open
    assert session.get(InboundMessage, inbound_id).kind != "action_reply"


def test_the_last_action_closing_puts_the_referral_back_for_review(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    referral_id = session.get(Action, action_id).referral_id
    with transaction(session_factory) as s:
        referral = s.get(Referral, referral_id)
        if referral.status != ReferralStatus.actions_open:
            referral.status = ReferralStatus.actions_open
        for other in s.scalars(select(Action).where(Action.referral_id == referral_id, Action.id != action_id)):
            if other.status == ActionStatus.open:
                update_action(s, other, kind="cancelled", note="No longer needed", by_person_id=None, now=NOW)
    assert session.get(Referral, referral_id).status == ReferralStatus.actions_open
    deliver(session_factory, reply_to(original, "done"))
    session.expire_all()
    referral = session.get(Referral, referral_id)
    assert referral.status == ReferralStatus.review
    assert referral.history[-1].to_status == ReferralStatus.review
    told = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.kind == "referral_status", OutboundMessage.referral_id == referral_id
        )
    ).all()
    assert told and all("Due for review" in m.body_text for m in told)


def test_the_owning_agencys_mailbox_may_reply_when_no_one_is_named(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session, owner_email=None)
    assert original.recipient == "camhs@kestrelford.example.org"  # no named owner: the agency's mailbox
    _, report = deliver(
        session_factory, reply_to(original, "update: triage booked", sender="CAMHS@kestrelford.example.org")
    )
    assert report.action_replies == 1
    action = session.get(Action, action_id)
    assert action.latest_update == "triage booked" and action.events[-1].by_person_id is None
    # Another agency's mailbox may not.
    _, report = deliver(session_factory, reply_to(original, "done", sender="police@kestrelford.example.org"))
    assert report.for_a_person == 1
    session.expire_all()
    assert session.get(Action, action_id).status == ActionStatus.open


def test_refusals_of_action_replies_are_capped_per_sender_per_day(session_factory, session):
    from notifications.inbox import REPLIES_PER_SENDER_PER_DAY

    load(session_factory)
    action_id, original = announced(session_factory, session)
    stranger = "someone@elsewhere.example.com"
    for _ in range(REPLIES_PER_SENDER_PER_DAY + 3):
        deliver(session_factory, reply_to(original, "done", sender=stranger))
    refusals = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.kind == "action_reply_refused", OutboundMessage.recipient == stranger
        )
    ).all()
    assert len(refusals) == REPLIES_PER_SENDER_PER_DAY
    kept = session.scalars(select(InboundMessage).where(InboundMessage.sender == stranger)).all()
    assert len(kept) == REPLIES_PER_SENDER_PER_DAY + 3
    assert all(m.status == InboundStatus.needs_human for m in kept)
    assert session.get(Action, action_id).status == ActionStatus.open


def test_the_same_reply_arriving_by_two_routes_is_applied_once(session_factory, session):
    load(session_factory)
    action_id, original = announced(session_factory, session)
    raw = reply_to(original, "update: appointment booked for 6 January")
    by_smtp = (
        b"Received: from mx1.nhs.example.org by mx.kestrelford.example.org; Thu, 17 Dec 2026 11:00:01 +0000\r\n" + raw
    )
    by_imap = (
        b"Received: from mx2.nhs.example.org by imap.kestrelford.example.org; Thu, 17 Dec 2026 11:00:05 +0000\r\n" + raw
    )
    first_id, first = deliver(session_factory, by_smtp)
    second_id, second = deliver(session_factory, by_imap)
    assert first.action_replies == 1 and second.action_replies == 0
    assert second_id == first_id
    session.expire_all()
    action = session.get(Action, action_id)
    assert [e.kind for e in action.events].count("update") == 1
    assert len(session.scalars(select(InboundMessage)).all()) == 1
    confirmations = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "action_reply_applied")).all()
    assert len(confirmations) == 1
    # Another sender reusing the Message-ID is a message of its own (kept, and refused).
    spoof = raw.replace(CAMHS_REP.encode(), b"someone@elsewhere.example.com")
    third_id, _ = deliver(session_factory, spoof)
    assert third_id != first_id
