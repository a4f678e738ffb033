"""Following actions and blockages by email: the new-action email, reminders, chases and escalation,
chasing agencies a referral waits on, and owners' email replies ("done", "update: ...", "cannot do: ...").

Sweep halves (the flows register them): `actions_due_follow_up` / `follow_up_action` and
`waits_due_chase` / `chase_wait`. Each step locks its row, checks it is still due, records the ledger step
and queues its emails under idempotency keys in the same transaction, so running it twice acts once.

Every email about an action is threaded on <action-{id}@{mail domain}>, carries the action's reference
tag in the subject ([ACT-12-1a2b3c4d]) and a Reply-To of the app mailbox with a per-action token
(clinic+action-{token}@...). The token is an HMAC of the action id with the secret key, stored hashed on
the action. No email names the child or repeats the action's wording (typed text may name them): a
reference, the due date, and a link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from agencies.models import Person, Role, RoleGrant, School
from caseconf import audit
from caseconf.clock import london_text, london_today
from caseconf.errors import Conflict, Invalid
from meetings import actions as action_service
from meetings import blockages
from meetings.models import (
    Action,
    ActionEventKind,
    ActionStatus,
    AgencyWait,
    NotDoneReason,
)
from meetings.referral_rules import OPEN_STATUSES
from meetings.working_days import working_days_between
from notifications.emails import MailContext, queue_email, queue_referral_status, school_recipients
from notifications.models import InboundKind, InboundMessage, InboundStatus, OutboundMessage
from notifications.outbox import enqueue

TOKEN_LENGTH = 20
TAG_LENGTH = 8
ADDRESS_TOKEN = re.compile(r"\+action-([0-9a-f]{20})@", re.IGNORECASE)
SUBJECT_TAG = re.compile(r"\[ACT-(\d{1,9})-([0-9a-f]{8})\]", re.IGNORECASE)
THREAD = re.compile(r"<action-(\d{1,9})@([^>\s]+)>")
MESSAGE_IDS = re.compile(r"<[^<>\s]{1,240}>")


# ---- reply tokens, tags and threads ------------------------------------------------------------------


def reply_token(action_id: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"action-reply:{action_id}".encode(), hashlib.sha256).hexdigest()[:TOKEN_LENGTH]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.lower().encode()).hexdigest()


def action_thread(action_id: int, mail_domain: str) -> str:
    return f"<action-{action_id}@{mail_domain}>"


def action_ref(action: Action) -> str:
    return f"ACT-{action.id}"


def subject_tag(action: Action, mail: MailContext) -> str:
    if not mail.reply_secret:
        return f"[{action_ref(action)}]"
    return f"[{action_ref(action)}-{reply_token(action.id, mail.reply_secret)[:TAG_LENGTH]}]"


def reply_address(action: Action, mail: MailContext) -> str | None:
    """The app mailbox with the action's token: clinic+action-{token}@domain (None without a key or mailbox)."""
    if not mail.reply_secret or "@" not in mail.app_address:
        return None
    local, domain = mail.app_address.rsplit("@", 1)
    return f"{local.split('+', 1)[0]}+action-{reply_token(action.id, mail.reply_secret)}@{domain}"


def _ensure_token(action: Action, mail: MailContext) -> None:
    if mail.reply_secret and action.reply_token_hash is None:
        action.reply_token_hash = token_hash(reply_token(action.id, mail.reply_secret))


def queue_about_action(
    session: Session,
    *,
    mail: MailContext,
    now: datetime,
    action: Action,
    template: str,
    key: str,
    recipient: str,
    **context,
) -> OutboundMessage:
    """One email about an action: threaded on the action, tagged, with its reply address and portal link."""
    _ensure_token(action, mail)
    referral = action.referral
    return queue_email(
        session,
        mail=mail,
        now=now,
        template=template,
        key=key,
        recipient=recipient,
        in_reply_to=action_thread(action.id, mail.mail_domain),
        reply_to=reply_address(action, mail),
        referral_id=action.referral_id,
        meeting_id=action.meeting_id,
        action_ref=action_ref(action),
        reference=referral.reference if referral is not None and referral.reference else "",
        tag=subject_tag(action, mail),
        due=action.due_on.strftime("%A %-d %B %Y"),
        agency=action.owner_agency.name if action.owner_agency else "Your organisation",
        link=f"{mail.base_url}/actions/{action.id}",
        **context,
    )


# ---- who is told ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


def owner_recipients(session: Session, action: Action) -> list[Recipient]:
    """The named owner; with no one named, the owning agency's mailbox, or the owning school's safeguarding lead."""
    if action.owner_person is not None and action.owner_person.active:
        return [Recipient(action.owner_person.email, action.owner_person.name)]
    if action.owner_agency is not None and action.owner_agency.mailbox:
        return [Recipient(action.owner_agency.mailbox, action.owner_agency.name)]
    if action.owner_school_id is not None:
        school = session.get(School, action.owner_school_id)
        if school is not None and school.safeguarding_email:
            return [Recipient(school.safeguarding_email, school.name)]
    return []


def coordinators(session: Session) -> list[Person]:
    return list(
        session.scalars(
            select(Person)
            .join(RoleGrant, RoleGrant.person_id == Person.id)
            .where(RoleGrant.role == Role.coordinator, Person.active.is_(True))
            .order_by(Person.id)
            .distinct()
        )
    )


# ---- the action sweep ---------------------------------------------------------------------------------


def _announceable(session: Session, action: Action) -> bool:
    """The new-action email goes once the meeting has ended (or at once for an action made outside one)."""
    meeting = action_service.meeting_of(session, action)
    return meeting is None or meeting.ended_at is not None


def _due_step(session: Session, action: Action, *, now: datetime) -> action_service.Step | None:
    if action.owner_agency_id is not None and action.referral is not None and action.referral.consent_withdrawn_at:
        return None  # consent withdrawn: no more emails about the referral go to agencies
    meeting = action_service.meeting_of(session, action)
    since = action_service.due_date_changed_at(session, action)
    step = action_service.next_step(action, meeting.series if meeting else None, london_today(now), since=since)
    if step is not None and step.kind == ActionEventKind.assigned and not _announceable(session, action):
        return None
    return step


def actions_due_follow_up(session: Session, *, now: datetime) -> list[int]:
    """Open actions with a ledger step due now (read-only)."""
    open_actions = session.scalars(
        select(Action)
        .where(Action.status == ActionStatus.open)
        .options(selectinload(Action.events))
        .order_by(Action.id)
    ).all()
    return [a.id for a in open_actions if _due_step(session, a, now=now) is not None]


def follow_up_action(session: Session, action_id: int, *, now: datetime, mail: MailContext) -> str | None:
    """Take the action's due ledger step (new action, reminder, chase k or escalation) and queue its emails.
    Returns the step's name, or None when nothing was due (already done by another run, say) or no one would
    receive it (the step is then not taken; the coordinators are told once)."""
    action = session.get(Action, action_id, with_for_update=True, populate_existing=True)
    if action is None:
        return None
    session.refresh(action, attribute_names=["events"])
    step = _due_step(session, action, now=now)
    if step is None:
        return None
    meeting = action_service.meeting_of(session, action)
    series = meeting.series if meeting is not None else None
    key = f"action:{action.id}:{step.kind}:{step.step}"
    common = {"series_name": series.name if series else "clinic"}
    if step.kind == ActionEventKind.escalation:
        told: list[tuple[str, str, bool]] = []
        if meeting is not None and meeting.chair is not None and meeting.chair.active:
            told.append((meeting.chair.email, meeting.chair.name, True))
        lead = action.owner_agency.lead_contact_email if action.owner_agency else None
        if lead:
            told.append((lead, f"{action.owner_agency.name} lead contact", False))
        if not told:
            told = [(p.email, p.name, True) for p in coordinators(session)]
        if not told:
            return None  # no one to escalate to: the step waits until there is someone
        action_service.take_step(action, step, now=now)
        session.flush()
        chases = action_service.chase_count(action, since=action_service.due_date_changed_at(session, action))
        owner_name = action.owner_person.name if action.owner_person else ""
        sent = 0
        for email, name, as_chair in dict((t[0].lower(), t) for t in told).values():
            queue_about_action(
                session,
                mail=mail,
                now=now,
                action=action,
                template="action_escalation",
                key=f"{key}:{email.lower()}",
                recipient=email,
                name=name,
                as_chair=as_chair,
                chases=chases,
                owner_name=owner_name,
                **common,
            )
            sent += 1
    else:
        recipients = owner_recipients(session, action)
        if not recipients:
            # Nobody would receive it: no reminder or chase is recorded (so no escalation follows on chases
            # nobody got), and the coordinators are told once that the action needs someone to send it to.
            _tell_coordinators_no_recipient(session, action, mail=mail, now=now, step=step)
            return None
        action_service.take_step(action, step, now=now)
        session.flush()
        template = {
            ActionEventKind.assigned: "action_assigned",
            ActionEventKind.reminder: "action_reminder",
            ActionEventKind.chase: "action_chase",
        }[step.kind]
        extra = {}
        if step.kind == ActionEventKind.chase:
            since = action_service.due_date_changed_at(session, action)
            extra = {
                "chase": action_service.chase_count(action, since=since),  # counted from the latest due date
                "due_today": london_today(now) == action.due_on,
                "escalate_after": series.escalate_after_chases if series else 2,
            }
        sent = 0
        for recipient in recipients:
            queue_about_action(
                session,
                mail=mail,
                now=now,
                action=action,
                template=template,
                key=f"{key}:{recipient.email.lower()}",
                recipient=recipient.email,
                name=recipient.name,
                **common,
                **extra,
            )
            sent += 1
    audit.record(
        session,
        now=now,
        action=f"action.{step.kind}",
        record_type="action",
        record_id=action.id,
        step=step.step,
        emails=sent,
    )
    return step.name


NO_RECIPIENT_KIND = "action_no_recipient"


def _tell_coordinators_no_recipient(
    session: Session, action: Action, *, mail: MailContext, now: datetime, step: action_service.Step
) -> None:
    """Tell the coordinators, once for the action, that its emails have no one to go to (no active named
    owner, no agency mailbox, no school safeguarding address). The reference only: never the child."""
    key_prefix = f"action-no-recipient:{action.id}:"
    if session.scalar(select(OutboundMessage.id).where(OutboundMessage.idempotency_key.like(f"{key_prefix}%"))):
        return
    ref = action_ref(action)
    reference = action.referral.reference if action.referral is not None and action.referral.reference else ""
    about = f" about referral {reference}" if reference else ""
    if action.owner_agency is not None:
        owner = f"{action.owner_agency.name} has no mailbox for it"
    elif action.owner_school_id is not None:
        owner = "the owning school has no safeguarding address"
    else:
        owner = "no agency or school owns it"
    told = []
    for person in coordinators(session):
        body = (
            f"Dear {person.name},\n\n"
            f"Action {ref}{about} has no one to send its emails to: it has no named owner with an active "
            f"account, and {owner}. No reminder or chase is sent, and none is recorded, until it has one.\n\n"
            f"Give the action an owner, or add the missing address: {mail.base_url}/actions/{action.id}\n\n"
            f"{mail.team_name}\n"
        )
        enqueue(
            session,
            now=now,
            idempotency_key=f"{key_prefix}{person.id}",
            kind=NO_RECIPIENT_KIND,
            recipient=person.email,
            subject=f"Action {ref}{f' ({reference})' if reference else ''}: no one to send it to",
            body_text=body,
            mail_domain=mail.mail_domain,
            in_reply_to=action_thread(action.id, mail.mail_domain),
            referral_id=action.referral_id,
            meeting_id=action.meeting_id,
        )
        told.append(person.id)
    audit.record(
        session,
        now=now,
        action="action.no_recipient",
        record_type="action",
        record_id=action.id,
        step=step.name,
        coordinators_told=told,
    )


# ---- after an update (portal or email) ------------------------------------------------------------------


def after_update(session: Session, result: action_service.UpdateResult, *, now: datetime, mail: MailContext) -> None:
    """The emails an update causes: the coordinators told of a "cannot do", the school told its referral
    is back for review when the last action closed."""
    action, event = result.action, result.event
    if event.kind == ActionEventKind.cannot_do:
        reason = NotDoneReason(action.not_done_reason or NotDoneReason.other)
        for person in coordinators(session):
            queue_about_action(
                session,
                mail=mail,
                now=now,
                action=action,
                template="action_cannot_do",
                key=f"action-cannot-do:{action.id}:{event.step}:{person.id}",
                recipient=person.email,
                name=person.name,
                reason_label=action_service.REASON_LABELS[reason],
            )
    if result.referral_change is not None and action.referral is not None:
        queue_referral_status(session, mail=mail, now=now, referral=action.referral, change=result.referral_change)


# ---- replies by email ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    kind: str  # done / update / cannot_do
    note: str


DONE = re.compile(r"^done\s*:\s*(.*)$", re.IGNORECASE)
BARE_DONE = re.compile(r"^done\b(.*)$", re.IGNORECASE)
# What may follow a bare "done" on its line: punctuation and courtesy, nothing that could qualify it.
DONE_COURTESIES = frozenset({"thanks", "thank", "you", "many", "cheers", "ta", "regards", "kind", "best", "all"})
UPDATE = re.compile(r"^update\s*:\s*(.*)$", re.IGNORECASE)
CANNOT = re.compile(r"^(?:cannot|can ?not|can't|can’t)\s+do\s*:\s*(.*)$", re.IGNORECASE)


def _reply_lines(body: str) -> list[str]:
    """The sender's own words: up to the quoted message or a signature."""
    kept = []
    for line in body.splitlines():
        stripped = line.strip()
        if stripped in ("--", "-- ") or stripped.startswith("-----Original Message") or stripped.startswith("From: "):
            break
        if stripped.startswith("On ") and stripped.endswith("wrote:"):
            break
        if stripped.startswith(">"):
            break
        kept.append(stripped)
    return kept


def read_command(body: str) -> Command | None:
    """The first meaningful line: a bare "done" (punctuation and courtesy allowed: "Done.", "done, thanks"),
    "done: ...", "update: ..." or "cannot do: ..."; the note runs to the first blank line. None when the reply
    starts with anything else ("Done the form, still waiting..." is for a person)."""
    lines = _reply_lines(body)
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return None
    paragraph = []
    for line in lines[1:]:
        if not line:
            break
        paragraph.append(line)
    first = lines[0]
    for kind, pattern in (("done", DONE), ("update", UPDATE), ("cannot_do", CANNOT)):
        found = pattern.match(first)
        if found:
            note = " ".join([found.group(1).strip(), *paragraph]).strip()
            if kind != "done" and not note:
                return None
            return Command(kind, note)
    bare = BARE_DONE.match(first)
    if bare and not paragraph and _only_courtesy(bare.group(1)):
        return Command("done", "")
    return None


def _only_courtesy(text: str) -> bool:
    """True for what may follow a bare "done": punctuation and courtesy ("Done.", "done, thanks")."""
    if re.search(r"[^\w\s.,!;:'’-]", text):
        return False
    return all(word in DONE_COURTESIES for word in re.findall(r"[a-z’']+", text.lower()))


def _header(message: EmailMessage | None, name: str) -> str:
    if message is None:
        return ""
    try:
        return " ".join(str(v) for v in (message.get_all(name) or []))
    except Exception:
        return ""


@dataclass(frozen=True)
class Found:
    action: Action
    by_token: bool  # True: the per-action token matched (reply address or HMAC subject tag); False: thread only


def find_action(session: Session, message: EmailMessage | None, subject: str, mail: MailContext) -> Found | None:
    """The action a message answers: its reply address or its subject tag (the per-action token), else its
    thread. A thread is guessable (action ids are sequential), so a match by thread alone never applies a
    command; it only says which action a message kept for a person is about."""
    addresses = " ".join(
        f"{address}" for _, address in getaddresses([_header(message, h) for h in ("To", "Cc", "Delivered-To")])
    )
    for token in ADDRESS_TOKEN.findall(addresses + " "):
        action = session.scalar(select(Action).where(Action.reply_token_hash == token_hash(token)))
        if action is not None:
            return Found(action, True)
    if mail.reply_secret:
        for action_id, tag in SUBJECT_TAG.findall(subject or ""):
            expected = reply_token(int(action_id), mail.reply_secret)[:TAG_LENGTH]
            if hmac.compare_digest(expected, tag.lower()):
                action = session.get(Action, int(action_id))
                if action is not None:
                    return Found(action, True)
    threads = " ".join((_header(message, "In-Reply-To"), _header(message, "References")))
    for action_id, domain in THREAD.findall(threads):
        if domain.lower() == mail.mail_domain.lower():
            action = session.get(Action, int(action_id))
            if action is not None:
                return Found(action, False)
    # A reply to one of our emails names that email's own Message-ID: follow it to its thread.
    ids = MESSAGE_IDS.findall(threads)[:20]
    if ids:
        roots = session.scalars(select(OutboundMessage.in_reply_to).where(OutboundMessage.message_id.in_(ids))).all()
        for action_id, domain in THREAD.findall(" ".join(r for r in roots if r)):
            if domain.lower() == mail.mail_domain.lower():
                action = session.get(Action, int(action_id))
                if action is not None:
                    return Found(action, False)
    return None


AUTH_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)


def failed_authentication(message: EmailMessage | None) -> bool:
    """True when an Authentication-Results header says the sender is forged: dmarc=fail, or spf=fail with
    every DKIM signature failing too. The From header is then not to be trusted."""
    if message is None:
        return False
    try:
        headers = [str(v) for v in (message.get_all("Authentication-Results") or [])]
    except Exception:
        return False
    for header in headers:
        results: dict[str, set[str]] = {}
        for method, result in AUTH_RESULT.findall(header):
            results.setdefault(method.lower(), set()).add(result.lower())
        if "fail" in results.get("dmarc", set()):
            return True
        if "fail" in results.get("spf", set()) and results.get("dkim", set()) == {"fail"}:
            return True
    return False


@dataclass(frozen=True)
class Replier:
    person_id: int | None  # None: the owning agency's shared mailbox


def may_reply_for(session: Session, action: Action, sender: str) -> Replier | None:
    """Who the sender is, when they may update the action by email: its owner, a rep of the owning agency,
    the owning agency's own mailbox (where its actions go when no one is named), the chair of the meeting
    that agreed it, or a coordinator. None for anyone else."""
    sender = (sender or "").lower()
    person = session.scalar(select(Person).where(Person.email == sender, Person.active.is_(True)))
    if person is not None:
        if action.owner_person_id == person.id:
            return Replier(person.id)
        meeting = action_service.meeting_of(session, action)
        if meeting is not None and meeting.chair_id == person.id:
            return Replier(person.id)
        for grant in person.grants:
            if grant.role == Role.coordinator:
                return Replier(person.id)
            owning_agency = action.owner_agency_id is not None and grant.agency_id == action.owner_agency_id
            if grant.role == Role.agency_rep and owning_agency:
                return Replier(person.id)
    agency = action.owner_agency
    if sender and agency is not None and agency.mailbox and agency.mailbox.lower() == sender:
        return Replier(None)
    return None


WHAT = {"done": "done", "update": "progress update", "cannot_do": "cannot be done"}


def handle_action_reply(
    session: Session,
    inbound: InboundMessage,
    message: EmailMessage | None,
    body: str,
    *,
    now: datetime,
    mail: MailContext,
    may_refuse: bool = True,
) -> bool:
    """Apply an email reply to the action it answers; False when the message is about no action (other
    handling follows). Only a reply carrying the action's token (its reply address or subject tag) from a
    sender who passed the mail checks may change it; one found by thread alone, or failing the checks, is
    kept for a person. Unknown senders are refused politely (unless `may_refuse` is False: the sender's daily
    cap of answers is reached) and kept for a person; replies with no command,
    or to an action no longer open, are kept for the coordinator. Nothing is dropped."""
    found = find_action(session, message, inbound.subject or "", mail)
    if found is None:
        return False
    action = found.action
    inbound.kind = InboundKind.action_reply
    ref = action_ref(action)
    if failed_authentication(message):
        inbound.status = InboundStatus.needs_human
        inbound.note = (
            f"Reply about {ref} failed the sender checks (SPF/DKIM/DMARC): kept for the team, nothing changed"
        )
        return True
    if not found.by_token:
        inbound.status = InboundStatus.needs_human
        inbound.note = f"Reply about {ref} found by its thread only, without the action's token: kept for the team"
        return True
    thread = inbound.message_id if inbound.message_id and len(inbound.message_id) < 250 else None
    replier = may_reply_for(session, action, inbound.sender or "")
    if replier is None:
        inbound.status = InboundStatus.needs_human
        if not may_refuse:  # the sender's daily cap of answers is reached: kept, not answered
            inbound.note = f"Reply about {ref} from someone who may not update it: nothing changed, not answered"
            inbound.note += " (too many answers to this address today)"
            return True
        inbound.note = f"Reply about {ref} from someone who may not update it: refused, nothing changed"
        queue_email(
            session,
            mail=mail,
            now=now,
            template="action_reply_refused",
            key=f"action-reply-refused:{inbound.id}",
            recipient=inbound.sender,
            in_reply_to=thread,
        )
        return True
    command = read_command(body)
    if command is None:
        inbound.status = InboundStatus.needs_human
        inbound.note = f"Reply about {ref} with no command: kept for the team"
        return True
    locked = session.get(Action, action.id, with_for_update=True, populate_existing=True)
    try:
        result = action_service.update_action(
            session,
            locked,
            kind=command.kind,
            note=command.note,
            by_person_id=replier.person_id,
            now=now,
            reason=NotDoneReason.other if command.kind == "cannot_do" else None,
        )
    except (Invalid, Conflict) as exc:
        inbound.status = InboundStatus.needs_human
        inbound.note = f"Reply about {ref} could not be applied: {exc}"[:500]
        return True
    after_update(session, result, now=now, mail=mail)
    queue_about_action(
        session,
        mail=mail,
        now=now,
        action=locked,
        template="action_reply_applied",
        key=f"action-reply-applied:{inbound.id}",
        recipient=inbound.sender,
        what=WHAT[command.kind],
        status_label=action_service.STATUS_LABELS[ActionStatus(locked.status)],
    )
    inbound.status = InboundStatus.applied
    inbound.note = f"Applied to {ref}: {WHAT[command.kind]}"
    return True


# ---- blockages --------------------------------------------------------------------------------------


def waits_due_chase(session: Session, *, now: datetime) -> list[int]:
    """Unresolved waits due to be flagged and chased now (read-only)."""
    return blockages.waits_due(session, now=now)


def chase_wait(session: Session, wait_id: int, *, now: datetime, mail: MailContext) -> int | None:
    """Chase the agency a referral waits on and tell the school the chase was made (its reference only).
    Returns the chase's number, or None when nothing was due."""
    wait = session.get(AgencyWait, wait_id, with_for_update=True, populate_existing=True)
    if wait is None or not blockages.is_due(wait, blockages.chase_every(session, wait), now=now):
        return None
    referral = wait.referral
    if referral.status not in OPEN_STATUSES:
        return None  # a closed or withdrawn referral waits on no one; the coordinator resolves it on the page
    chase = blockages.record_chase(session, wait, now=now)
    agency = wait.agency
    context = {
        "reference": referral.reference,
        "agency": agency.name,
        "since": london_text(wait.since, "%-d %B %Y"),
        "chase": chase,
    }
    queue_email(
        session,
        mail=mail,
        now=now,
        template="wait_chase",
        key=f"wait-chase:{wait.id}:{chase}",
        recipient=agency.mailbox,
        in_reply_to=f"<wait-{wait.id}@{mail.mail_domain}>",
        referral_id=referral.id,
        link=f"{mail.base_url}/",
        working_days=working_days_between(london_today(wait.since), london_today(now)),
        **context,
    )
    for recipient in school_recipients(referral):
        queue_email(
            session,
            mail=mail,
            now=now,
            template="wait_chase_school",
            key=f"wait-chase-school:{wait.id}:{chase}:{recipient}",
            recipient=recipient,
            in_reply_to=f"<referral-{referral.id}@{mail.mail_domain}>",
            referral_id=referral.id,
            link=f"{mail.base_url}/referrals/{referral.id}",
            **context,
        )
    return chase
