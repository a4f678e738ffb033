"""A child's subject access export: everything caseconf holds about them, as one zip for the data protection
officer to review and send.

The zip holds README.txt (what each file is, its columns, and what was left out and why), data.json (every
record in full, with its ids and codes, and the readable tables), one CSV per kind of record written for a
person to read (names rather than ids, labels rather than codes, London dates and times, sections as
"section / field / value" rows, emails as plain text), the minutes about the child's items (minutes.txt and
minutes.csv, from the full minutes), and the uploaded documents under files/.

Records: the child; their referrals with every section and status history; agenda items about them (their
referrals, and Team Around the School pupils of concern naming them) with the notes minuted, decisions,
actions and action events, agencies' contributions and minutes corrections; waits on outside agencies; the
uploaded documents; emails about their referrals and actions, and emails that carried a papers pack holding
their information (listed, never their text); the papers packs and minutes PDFs that included them (listed;
a file is included only when its meeting discussed this child alone); and the audit of who saw or changed
any of these records.

Never included: other children's information. Papers packs and minutes PDFs of meetings with other children
on the agenda are listed, not included; the minutes' summary and action reviews (about the whole meeting)
are left out; weekly digests to schools (listing several children) are left out.
"""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, School
from caseconf import audit
from caseconf.audit import AuditEvent
from caseconf.clock import london
from caseconf.errors import Invalid, NotFound
from meetings import minutes as minutes_service
from meetings.documents import document_path
from meetings.models import (
    Action,
    ActionEvent,
    AgencyWait,
    AgendaItem,
    AgendaItemKind,
    Child,
    Contribution,
    Decision,
    Document,
    DocumentKind,
    Meeting,
    MeetingStatus,
    MinuteCorrection,
    PupilOfConcern,
    Referral,
    ReferralReasonOption,
    ReferralStatusChange,
    Visibility,
)
from meetings.referral_form import PAGES
from meetings.referral_rules import LABELS as STATUS_LABELS
from notifications.models import OutboundMessage

# Never exported: secrets that would let someone act as another, and the raw draft copy of the answers.
LEFT_OUT = frozenset({"reply_token_hash", "draft_answers"})

# ---- labels for codes ----------------------------------------------------------------------------------

FORM_FIELDS = {f.name: f for page in PAGES for f in page.fields}
# DfE ethnicity codes (the census's main and extended categories most used).
ETHNICITY = {
    "WBRI": "White - British",
    "WIRI": "White - Irish",
    "WIRT": "Traveller of Irish heritage",
    "WROM": "Gypsy / Roma",
    "WOTH": "Any other White background",
    "MWBC": "White and Black Caribbean",
    "MWBA": "White and Black African",
    "MWAS": "White and Asian",
    "MOTH": "Any other mixed background",
    "AIND": "Indian",
    "APKN": "Pakistani",
    "ABAN": "Bangladeshi",
    "AOTH": "Any other Asian background",
    "BCRB": "Black Caribbean",
    "BAFR": "Black African",
    "BOTH": "Any other Black background",
    "CHNE": "Chinese",
    "OOTH": "Any other ethnic group",
    "REFU": "Refused",
    "NOBT": "Information not yet obtained",
}
PRIMARY_NEED = {
    "SEMH": "Social, emotional and mental health (SEMH)",
    "SLCN": "Speech, language and communication needs (SLCN)",
    "ASD": "Autistic spectrum disorder (ASD)",
    "MLD": "Moderate learning difficulty (MLD)",
    "SpLD": "Specific learning difficulty (SpLD)",
    "Other": "Other",
}
MEETING_STATUS = {
    MeetingStatus.planned: "Planned",
    MeetingStatus.agenda_frozen: "Agenda fixed",
    MeetingStatus.papers_sent: "Papers sent",
    MeetingStatus.held: "Held",
    MeetingStatus.minutes_draft: "Held; minutes in draft",
    MeetingStatus.minutes_approved: "Held; minutes approved",
    MeetingStatus.minutes_circulated: "Held; minutes circulated",
    MeetingStatus.cancelled: "Cancelled",
}
ITEM_KIND = {
    "referral": "Referral",
    "action_review": "Review of an action",
    "pupil_of_concern": "Pupil of concern",
    "consultation": "Consultation",
}
ITEM_STATUS = {
    "listed": "Listed",
    "discussed": "Discussed",
    "deferred": "Moved to a later meeting",
    "removed": "Taken off",
}
ACTION_STATUS = {"open": "Open", "done": "Done", "cancelled": "Cancelled"}
NOT_DONE = {
    "circumstances_changed": "Circumstances changed",
    "agency_did_not_act": "Agency did not act",
    "other": "Other",
}
ACTION_EVENT = {
    "assigned": "Assigned to the owner",
    "reminder": "Reminder sent",
    "chase": "Chased",
    "escalation": "Escalated",
    "update": "Update given",
    "done": "Marked done",
    "cannot_do": "Owner said it cannot be done",
    "cancelled": "Cancelled",
}
CONCERN_STATUS = {"open": "Open", "listed": "Listed for a meeting", "discussed": "Discussed", "removed": "Taken off"}
CORRECTION_STATUS = {"open": "Waiting for the chair", "accepted": "Accepted", "declined": "Declined"}
EMAIL_STATUS = {"pending": "Waiting to be sent", "sending": "Being sent", "sent": "Sent", "failed": "Could not be sent"}
VISIBILITY = {
    Visibility.all_invitees: "Everyone invited",
    Visibility.chair_only: "The chair only",
    Visibility.named_agencies: "Named agencies",
}
RECORD_TYPE = {
    "referral": "Referral",
    "document": "Document",
    "action": "Action",
    "child": "Child's record",
    "agenda_item": "Agenda item",
    "decision": "Decision",
    "contribution": "Agency contribution",
    "pupil_of_concern": "Pupil of concern",
    "minute_correction": "Minutes correction",
}
# What an audit row's action means, in words. Anything not here is described from its code.
AUDIT_ACTION = {
    "referral.viewed": "Viewed the referral",
    "referral.change_requested": "Sent a change to the referral",
    "referral.listed": "Saw the referral in a list",
    "referral.page_saved": "Saved a page of the referral",
    "referral.page_saved_after_session_expired": "Saved a page of the referral after signing in again",
    "referral.immediate_risk_shown": "Was shown the immediate-risk question",
    "referral.consent_withdrawn": "Recorded that consent was withdrawn",
    "referral.submitted": "Submitted the referral",
    "referral.accepted": "Accepted the referral for clinic",
    "referral.information_requested": "Asked the school for more information",
    "referral.signposted": "Signposted the referral to another service",
    "referral.declined": "Declined the referral",
    "referral.discussed": "Recorded that the referral was discussed",
    "referral.actions_open": "Recorded that actions are in progress",
    "referral.review": "Set the referral for review",
    "referral.closed": "Closed the referral",
    "referral.withdrawn": "Withdrew the referral",
    "document.viewed": "Viewed the document",
    "document.downloaded": "Downloaded the document",
    "document.uploaded": "Uploaded the document",
    "document.removed": "Removed the document",
    "document.listed": "Saw the document in a list",
    "action.viewed": "Viewed the action",
    "action.listed": "Saw the action in a list",
    "action.agreed": "Agreed the action",
    "action.change_requested": "Sent a change to the action",
    "action.changed_in_meeting": "Changed the action in the meeting",
    "action.removed_in_meeting": "Removed the action in the meeting",
    "action.reason_recorded": "Recorded why the action was not done",
    "action.reminder": "Reminder sent about the action",
    "action.chase": "Chase sent about the action",
    "action.escalation": "Action escalated",
    "action.assigned": "Action assigned to its owner",
    "action.update": "Gave an update on the action",
    "action.done": "Marked the action done",
    "child.viewed": "Viewed the child's record",
    "child.listed": "Saw the child in a search result",
    "subject_access.exported": "Downloaded a subject access export",
    "agenda_item.notes_saved": "Saved the meeting notes about the item",
    "agenda_item.started": "Started the item in the meeting",
    "agenda_item.ended": "Ended the item in the meeting",
    "agenda.item_added": "Added to a meeting's agenda",
    "agenda.item_removed": "Taken off a meeting's agenda",
    "agenda.item_moved": "Moved to another meeting",
    "decision.recorded": "Recorded the meeting's decision",
    "decision.text_saved": "Saved the decision's wording",
    "contribution.added": "Added an agency's information",
    "contribution.saved_in_meeting": "Saved an agency's information in the meeting",
    "outcome.sent": "Sent the outcome to the school",
    "pupil_of_concern.viewed": "Viewed the pupil of concern",
    "concern.added": "Added the pupil of concern",
    "concern.removed": "Removed the pupil of concern",
    "minutes.correction_requested": "Asked for a correction to the minutes",
    "minutes.correction_accepted": "Answered a correction to the minutes",
    "email.sent": "Email sent",
    "outbox.stopped_consent_withdrawn": "Stopped emails after consent was withdrawn",
    "retention.redacted": "Redacted under the retention schedule",
    "retention.deleted": "Deleted under the retention schedule",
}
KEY_LABELS = {
    "parents": "Parent or carer",
    "parent_knows_of_referral": "Knows about the referral",
    "why_not": "Why they were not told",
    "young_carer": "Young carer",
    "in_place": "On a part-time timetable",
    "started_on": "Started on",
    "hours_per_week": "Hours a week in school",
    "la_notified": "Local authority told",
    "referred_on": "Referred on",
    "camhs_history": "CAMHS history",
    "semh": "SEMH presentation",
    "what": "What",
    "who": "Who",
    "from": "From",
    "to": "To",
}
CODE = re.compile(r"^[a-z]+(_[a-z]+)+$")


def when(moment: datetime | None) -> str:
    """A moment in London time, as people read it in a spreadsheet: 2026-12-03 13:30."""
    return "" if moment is None else london(moment).strftime("%Y-%m-%d %H:%M")


def day(value: date | str | None) -> str:
    if value is None or value == "":
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def yes_no(value: bool | None) -> str:
    return "" if value is None else ("Yes" if value else "No")


def _words(value: Any) -> str:
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, Decimal):
        return str(value.to_integral_value()) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, date):
        return day(value)
    if isinstance(value, str) and CODE.fullmatch(value):
        return value.replace("_", " ").capitalize()
    return "" if value is None else str(value)


def _key_label(key: str) -> str:
    return KEY_LABELS.get(key, key.replace("_", " ").capitalize())


def flatten(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """A nested section as (field, value) rows: dictionaries by their keys, lists of groups numbered."""
    if isinstance(value, dict):
        rows = []
        for key, inner in value.items():
            if inner in (None, "", [], {}):
                continue
            rows.extend(flatten(inner, (*path, _key_label(str(key)))))
        return rows
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [(" / ".join(path), "; ".join(_words(v) for v in value))]
        rows = []
        for number, inner in enumerate(value, start=1):
            numbered = (*path[:-1], f"{path[-1]} {number}") if path else (str(number),)
            rows.extend(flatten(inner, numbered))
        return rows
    return [(" / ".join(path), _words(value))]


# ---- the records ---------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return f"({len(value)} bytes)"
    return value


def row(record: Any) -> dict[str, Any]:
    """Every column of a record, ready for JSON."""
    return {
        column.key: _value(getattr(record, column.key))
        for column in record.__table__.columns
        if column.key not in LEFT_OUT
    }


def find_children(
    session: Session, *, surname: str = "", date_of_birth: date | None = None, upn: str = ""
) -> list[Child]:
    """Children matching a UPN, or a surname and date of birth (case and spacing ignored)."""
    upn = "".join(upn.split()).upper()
    surname = " ".join(surname.split())
    if upn:
        return list(session.scalars(select(Child).where(Child.upn == upn).order_by(Child.id)))
    if not surname or date_of_birth is None:
        raise Invalid({"search": "Enter the child's surname and date of birth, or their UPN"})
    candidates = session.scalars(select(Child).where(Child.date_of_birth == date_of_birth).order_by(Child.id))
    return [c for c in candidates if c.legal_surname.casefold() == surname.casefold()]


@dataclass
class Found:
    """The child's records, as loaded."""

    child: Child
    referrals: list[Referral]
    status_history: list[ReferralStatusChange]
    concerns: list[PupilOfConcern]
    items: list[AgendaItem]
    meetings: list[Meeting]
    decisions: list[Decision]
    actions: list[Action]
    action_events: list[ActionEvent]
    contributions: list[Contribution]
    corrections: list[MinuteCorrection]
    waits: list[AgencyWait]
    documents: list[Document]
    emails: list[OutboundMessage]
    shared: list[SharedDocument]
    pack_emails: list[tuple[OutboundMessage, SharedDocument]]
    audit: list[AuditEvent]


@dataclass
class SharedDocument:
    """A stored papers pack or minutes PDF of a meeting that had the child on its agenda."""

    document: Document
    meeting: Meeting
    alone: bool  # every item on the meeting's agenda was about this child: the file may be included


def _ids(records: Iterable[Any]) -> list[int]:
    return [r.id for r in records]


def _about_child_alone(meeting: Meeting, item_ids: set[int], action_ids: set[int]) -> bool:
    return all(
        i.id in item_ids or (i.kind == AgendaItemKind.action_review and i.action_id in action_ids)
        for i in meeting.items
    )


def _shared_documents(
    session: Session, meetings: list[Meeting], items: list[AgendaItem], action_ids: set[int]
) -> list[SharedDocument]:
    """Packs built after the child was put on the meeting's agenda, and the minutes of meetings that minuted
    their item."""
    item_ids = {i.id for i in items}
    by_meeting: dict[int, list[AgendaItem]] = {}
    for item in items:
        by_meeting.setdefault(item.meeting_id, []).append(item)
    found = []
    for meeting in meetings:
        documents = session.scalars(
            select(Document)
            .where(
                Document.meeting_id == meeting.id, Document.kind.in_([DocumentKind.papers_pack, DocumentKind.minutes])
            )
            .order_by(Document.created_at, Document.id)
        ).all()
        alone = _about_child_alone(meeting, item_ids, action_ids)
        for document in documents:
            mine = by_meeting.get(meeting.id, [])
            if document.kind == DocumentKind.minutes:
                included = any(i.status in ("listed", "discussed") for i in mine)
            else:
                included = any(i.added_at is None or i.added_at <= document.created_at for i in mine)
            if included:
                found.append(SharedDocument(document, meeting, alone))
    return found


def _audit_rows(session: Session, named: dict[str, list[int]]) -> list[AuditEvent]:
    """Rows about any of the records, and list rows whose listed ids include one of them."""
    by_record = [
        and_(AuditEvent.record_type == kind, AuditEvent.record_id.in_([str(i) for i in ids]))
        for kind, ids in named.items()
        if ids
    ]
    rows = {e.id: e for e in session.scalars(select(AuditEvent).where(or_(*by_record)))} if by_record else {}
    listed_kinds = [k for k in ("referral", "child", "action", "document") if named.get(k)]
    for kind in listed_kinds:
        wanted = {str(i) for i in named[kind]}
        text = cast(AuditEvent.detail, String)
        candidates = session.scalars(
            select(AuditEvent).where(
                AuditEvent.record_type == kind,
                AuditEvent.record_id.is_(None),
                or_(*[text.like(f'%"{i}"%') for i in wanted]),
            )
        )
        for event in candidates:
            listed = {str(i) for i in (event.detail or {}).get("ids") or []}
            if listed & wanted:
                rows[event.id] = event
    return sorted(rows.values(), key=lambda e: (e.occurred_at, e.id))


def _load(session: Session, child_id: int) -> Found:
    child = session.get(Child, child_id) if 0 < child_id < 2**31 else None
    if child is None:
        raise NotFound(f"child {child_id}")
    referrals = list(session.scalars(select(Referral).where(Referral.child_id == child.id).order_by(Referral.id)))
    referral_ids = _ids(referrals)
    concerns = list(
        session.scalars(select(PupilOfConcern).where(PupilOfConcern.child_id == child.id).order_by(PupilOfConcern.id))
    )
    concern_ids = _ids(concerns)
    items = list(
        session.scalars(
            select(AgendaItem)
            .where(or_(AgendaItem.referral_id.in_(referral_ids), AgendaItem.concern_id.in_(concern_ids)))
            .order_by(AgendaItem.id)
        )
    )
    item_ids = _ids(items)
    meetings = list(
        session.scalars(
            select(Meeting).where(Meeting.id.in_({i.meeting_id for i in items})).order_by(Meeting.starts_at)
        )
    )
    actions = list(
        session.scalars(
            select(Action)
            .where(
                or_(
                    Action.referral_id.in_(referral_ids),
                    Action.agenda_item_id.in_(item_ids),
                    Action.concern_id.in_(concern_ids),
                )
            )
            .order_by(Action.id)
        )
    )
    action_ids = _ids(actions)
    documents = list(
        session.scalars(
            select(Document)
            .where(Document.referral_id.in_(referral_ids), Document.kind == DocumentKind.upload)
            .order_by(Document.id)
        )
    )
    decisions = list(
        session.scalars(select(Decision).where(Decision.agenda_item_id.in_(item_ids)).order_by(Decision.id))
    )
    contributions = list(
        session.scalars(select(Contribution).where(Contribution.agenda_item_id.in_(item_ids)).order_by(Contribution.id))
    )
    corrections = list(
        session.scalars(
            select(MinuteCorrection).where(MinuteCorrection.agenda_item_id.in_(item_ids)).order_by(MinuteCorrection.id)
        )
    )
    # Emails about their referrals, and about their actions (an action on a pupil of concern has no referral;
    # its emails are threaded on the action).
    about_actions = [OutboundMessage.in_reply_to.like(f"<action-{i}@%") for i in action_ids]
    emails = list(
        session.scalars(
            select(OutboundMessage)
            .where(or_(OutboundMessage.referral_id.in_(referral_ids), *about_actions))
            .order_by(OutboundMessage.created_at, OutboundMessage.id)
        )
    )
    shared = _shared_documents(session, meetings, items, set(action_ids))
    packs = {s.document.id: s for s in shared if s.document.kind == DocumentKind.papers_pack}
    pack_emails = []
    if packs:
        seen = {e.id for e in emails}
        for message in session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.meeting_id.in_([m.id for m in meetings]))
            .order_by(OutboundMessage.created_at, OutboundMessage.id)
        ):
            carried = [packs[a["document_id"]] for a in message.attachments or [] if a.get("document_id") in packs]
            if carried and message.id not in seen:
                pack_emails.append((message, carried[0]))
    named = {
        "referral": referral_ids,
        "document": _ids(documents),
        "action": action_ids,
        "child": [child.id],
        "agenda_item": item_ids,
        "decision": _ids(decisions),
        "contribution": _ids(contributions),
        "pupil_of_concern": concern_ids,
        "minute_correction": _ids(corrections),
    }
    return Found(
        child=child,
        referrals=referrals,
        status_history=list(
            session.scalars(
                select(ReferralStatusChange)
                .where(ReferralStatusChange.referral_id.in_(referral_ids))
                .order_by(ReferralStatusChange.changed_at, ReferralStatusChange.id)
            )
        ),
        concerns=concerns,
        items=items,
        meetings=meetings,
        decisions=decisions,
        actions=actions,
        action_events=list(
            session.scalars(select(ActionEvent).where(ActionEvent.action_id.in_(action_ids)).order_by(ActionEvent.id))
        ),
        contributions=contributions,
        corrections=corrections,
        waits=list(
            session.scalars(select(AgencyWait).where(AgencyWait.referral_id.in_(referral_ids)).order_by(AgencyWait.id))
        ),
        documents=documents,
        emails=emails,
        shared=shared,
        pack_emails=pack_emails,
        audit=_audit_rows(session, named),
    )


def _pack_email_row(message: OutboundMessage, shared: SharedDocument) -> dict[str, Any]:
    """What the export keeps of an email that carried a papers pack: never its text or the pack itself."""
    return {
        "id": message.id,
        "recipient": message.recipient,
        "subject": message.subject,
        "status": message.status,
        "created_at": _value(message.created_at),
        "sent_at": _value(message.sent_at),
        "meeting_id": message.meeting_id,
        "pack_document_id": shared.document.id,
        "pack_filename": shared.document.original_filename,
    }


def collect(session: Session, child_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every record about the child, by kind, in full (ids and codes as stored)."""
    found = _load(session, child_id)
    return _raw(found)


def _raw(found: Found) -> dict[str, list[dict[str, Any]]]:
    return {
        "child": [row(found.child)],
        "referrals": [row(r) for r in found.referrals],
        "status_history": [row(r) for r in found.status_history],
        "concerns": [row(c) for c in found.concerns],
        "agenda_items": [row(i) for i in found.items],
        "meetings": [
            {
                "id": m.id,
                "series": m.series.name,
                "meeting_date": m.meeting_date.isoformat(),
                "starts_at": m.starts_at.isoformat(),
                "location": m.location,
                "status": m.status,
            }
            for m in found.meetings
        ],
        "decisions": [row(d) for d in found.decisions],
        "actions": [row(a) for a in found.actions],
        "action_events": [row(e) for e in found.action_events],
        "contributions": [row(c) for c in found.contributions],
        "minutes_corrections": [row(c) for c in found.corrections],
        "agency_waits": [row(w) for w in found.waits],
        "documents": [row(d) for d in found.documents],
        "emails": [row(e) for e in found.emails],
        "pack_emails": [_pack_email_row(m, s) for m, s in found.pack_emails],
        "shared_documents": [
            {**row(s.document), "included_in_export": s.alone and s.document.file_deleted_at is None}
            for s in found.shared
        ],
        "audit": [row(a) for a in found.audit],
    }


# ---- readable tables -----------------------------------------------------------------------------------


class Names:
    """Names for ids, looked up once each."""

    def __init__(self, session: Session):
        self.session = session
        self.agencies = {a.id: a for a in session.scalars(select(Agency))}
        self.agency_codes = {a.code: a.name for a in self.agencies.values()}
        self.reasons = dict(
            session.execute(select(ReferralReasonOption.code, ReferralReasonOption.label)).tuples().all()
        )
        self._people: dict[int, Person | None] = {}
        self._schools: dict[int, School | None] = {}

    def person(self, person_id: int | None) -> str:
        """Name (email)."""
        if person_id is None:
            return ""
        if person_id not in self._people:
            self._people[person_id] = self.session.get(Person, person_id)
        person = self._people[person_id]
        return f"{person.name} ({person.email})" if person else f"Person no longer in the directory (id {person_id})"

    def person_parts(self, person_id: int | None) -> tuple[str, str]:
        if person_id is None:
            return "", ""
        self.person(person_id)
        person = self._people[person_id]
        return (person.name, person.email) if person else ("", "")

    def agency(self, agency_id: int | None) -> str:
        if agency_id is None:
            return ""
        agency = self.agencies.get(agency_id)
        return agency.name if agency else f"Agency no longer listed (id {agency_id})"

    def agency_code(self, code: str) -> str:
        return self.agency_codes.get(code, code)

    def school(self, school_id: int | None) -> str:
        if school_id is None:
            return ""
        if school_id not in self._schools:
            self._schools[school_id] = self.session.get(School, school_id)
        school = self._schools[school_id]
        return school.name if school else f"School no longer listed (id {school_id})"


def meeting_name(meeting: Meeting | None) -> str:
    if meeting is None:
        return ""
    return f"{meeting.series.name}, {meeting.meeting_date.isoformat()}"


def _options_label(name: str, value: Any) -> str:
    options = dict(FORM_FIELDS[name].options) if name in FORM_FIELDS else {}
    if isinstance(value, list):
        return "; ".join(options.get(v, _words(v)) for v in value)
    if value in (None, ""):
        return ""
    return options.get(value, _words(value))


# Each referral column: (section, field label, how to show its value). Columns not listed here are shown
# under "Other" with their name, so nothing is ever left out of referrals.csv.
def _referral_fields(names: Names) -> dict[str, tuple[str, str, Callable[[Any], Any]]]:
    def label(name: str) -> str:
        return FORM_FIELDS[name].label if name in FORM_FIELDS else _key_label(name)

    def coded(name: str) -> Callable[[Any], str]:
        return lambda v: _options_label(name, v)

    def text(v: Any) -> str:
        return _words(v)

    def section(v: Any) -> list[tuple[str, str]]:
        return flatten(v)

    page_of = {f.name: page.title for page in PAGES for f in page.fields}
    fields: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
        "reference": ("Referral", "Reference", text),
        "status": ("Referral", "Status", lambda v: STATUS_LABELS.get(v, _words(v))),
        "school_id": ("Referral", "School", names.school),
        "referrer_id": ("Referral", "Referred by", names.person),
        "created_at": ("Referral", "Started", when),
        "updated_at": ("Referral", "Last changed", when),
        "submitted_at": ("Referral", "Submitted", when),
        "immediate_risk_checked_at": ("Referral", "Immediate-risk question answered", when),
        "reasons": (
            page_of["reasons"],
            label("reasons"),
            lambda v: "; ".join(names.reasons.get(c, _words(c)) for c in v or []),
        ),
        "family": ("Parents and carers", "Parents and carers", section),
        "part_time_timetable": ("Part-time timetable", label("part_time_timetable"), section),
        "interventions": (page_of["interventions"], label("interventions"), lambda v: flatten(v, ("Intervention",))),
        "primary_need": (page_of["primary_need"], label("primary_need"), lambda v: PRIMARY_NEED.get(v, v or "")),
        "early_help": (
            page_of["early_help"],
            label("early_help"),
            lambda v: flatten(
                {**(v or {}), "status": _options_label("early_help", (v or {}).get("status"))}, ("Early help",)
            ),
        ),
        "agencies_involved": (
            page_of["agencies_involved"],
            label("agencies_involved"),
            lambda v: flatten(v, ("Agency involved",)),
        ),
        "awaiting_feedback": (
            page_of["agencies_involved"],
            "Referred elsewhere, awaiting feedback",
            lambda v: flatten(v, ("Awaiting feedback",)),
        ),
        "suspension_dates": (page_of["suspension_dates"], label("suspension_dates"), lambda v: "; ".join(v or [])),
        "health": ("Health", "Health", section),
        "community_safety": ("Community safety", "Community safety", section),
        "consent_method": ("Consent to share", "How consent was recorded", text),
        "consent_withdrawn_at": ("Consent to share", "Consent withdrawn", when),
        "consent_withdrawn_by_id": ("Consent to share", "Withdrawal recorded by", names.person),
        "consent_withdrawal_note": ("Consent to share", "Note about the withdrawal", text),
        "redacted_at": ("Retention", "Redacted under the retention schedule", when),
    }
    for name, f in FORM_FIELDS.items():
        if name in fields or name not in Referral.__table__.columns:
            continue
        if f.kind in ("radios", "select", "checkboxes"):
            fields[name] = (page_of[name], f.label, coded(name))
        elif f.kind == "date":
            fields[name] = (page_of[name], f.label, day)
        else:
            fields[name] = (page_of[name], f.label, text)
    return fields


REFERRAL_SKIP = frozenset({"id", "child_id", *LEFT_OUT})


def _referral_rows(found: Found, names: Names) -> list[dict[str, str]]:
    fields = _referral_fields(names)
    order = {"Referral": 0, "Consent to share": 90, "Retention": 99, "Other": 100}
    page_order = {page.title: n for n, page in enumerate(PAGES, start=1)}
    rows = []
    for referral in found.referrals:
        mine = []
        for column in Referral.__table__.columns:
            if column.key in REFERRAL_SKIP:
                continue
            value = getattr(referral, column.key)
            section, label, show = fields.get(column.key, ("Other", _key_label(column.key), _words))
            shown = show(value) if value not in (None, "", [], {}) else ""
            pairs = shown if isinstance(shown, list) else [(label, shown)]
            if not pairs:
                pairs = [(label or section, "")]
            for field, text in pairs:
                if text == "" and value in (None, "", [], {}) and section != "Referral":
                    text = "Not given"
                mine.append((order.get(section, page_order.get(section, 50)), section, field or section, text))
        mine.sort(key=lambda r: r[0])  # stable: columns keep their order within a section
        rows.extend(
            {"Referral": referral.reference or f"Draft (id {referral.id})", "Section": s, "Field": f, "Value": v}
            for _, s, f, v in mine
        )
    return rows


def _reference(referral: Referral | None) -> str:
    if referral is None:
        return ""
    return referral.reference or f"Draft (id {referral.id})"


def _item_name(item: AgendaItem, concerns: dict[int, PupilOfConcern]) -> str:
    if item.referral is not None:
        return _reference(item.referral)
    concern = concerns.get(item.concern_id) if item.concern_id else None
    return f"Pupil of concern: {concern.label}" if concern else ITEM_KIND.get(item.kind, item.kind)


def _document_label(document: Document) -> str:
    return f"{document.original_filename} (document {document.id})"


def _plain_text(message: OutboundMessage) -> str:
    return message.body_text or ""


@dataclass
class Table:
    name: str
    about: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


def _tables(found: Found, names: Names, minutes_rows: list[dict[str, str]]) -> list[Table]:
    child = found.child
    meetings = {m.id: m for m in found.meetings}
    items = {i.id: i for i in found.items}
    concerns = {c.id: c for c in found.concerns}
    referrals = {r.id: r for r in found.referrals}
    actions = {a.id: a for a in found.actions}

    def item_meeting(item_id: int | None) -> str:
        item = items.get(item_id) if item_id else None
        return meeting_name(meetings.get(item.meeting_id)) if item else ""

    def item_label(item_id: int | None) -> str:
        item = items.get(item_id) if item_id else None
        return _item_name(item, concerns) if item else ""

    def action_ref(action_id: int) -> str:
        return f"ACT-{action_id}"

    def meeting_of_action(action: Action) -> str:
        if action.meeting_id in meetings:
            return meeting_name(meetings[action.meeting_id])
        return item_meeting(action.agenda_item_id)

    tables = [
        Table(
            "child",
            "the child's record, one field a row",
            ("Field", "Value"),
            [
                {"Field": f, "Value": v}
                for f, v in (
                    ("First name", child.legal_first_name),
                    ("Last name", child.legal_surname),
                    ("Preferred name", child.preferred_name or ""),
                    ("Date of birth", day(child.date_of_birth)),
                    ("Unique pupil number (UPN)", child.upn or ""),
                    ("Gender", child.gender or ""),
                    (
                        "Ethnicity",
                        ETHNICITY.get(child.ethnicity or "", child.ethnicity or "")
                        + (f" ({child.ethnicity})" if child.ethnicity in ETHNICITY else ""),
                    ),
                    ("Home postcode", child.home_postcode or ""),
                    ("First language", child.first_language or ""),
                    ("School", names.school(child.school_id)),
                    ("Year group", child.year_group),
                    ("Redacted under the retention schedule", when(child.redacted_at)),
                )
            ],
        ),
        Table(
            "referrals",
            "every answer on each referral, one a row, by the section of the referral form it belongs to; "
            "sections held as groups (parents, interventions, health, community safety) are one row per field",
            ("Referral", "Section", "Field", "Value"),
            _referral_rows(found, names),
        ),
        Table(
            "status_history",
            "each change of a referral's status",
            ("Referral", "When", "From", "To", "Changed by", "Note"),
            [
                {
                    "Referral": _reference(referrals.get(c.referral_id)),
                    "When": when(c.changed_at),
                    "From": STATUS_LABELS.get(c.from_status, _words(c.from_status)) if c.from_status else "",
                    "To": STATUS_LABELS.get(c.to_status, _words(c.to_status)),
                    "Changed by": names.person(c.changed_by_id),
                    "Note": c.note or "",
                }
                for c in found.status_history
            ],
        ),
        Table(
            "concerns",
            "Team Around the School pupils of concern naming the child",
            (
                "Pupil of concern",
                "School",
                "Concern",
                "What the school asked",
                "Family agreed on",
                "Status",
                "Added by",
                "Added",
            ),
            [
                {
                    "Pupil of concern": c.label,
                    "School": names.school(c.school_id),
                    "Concern": c.concern,
                    "What the school asked": c.ask,
                    "Family agreed on": day(c.parent_agreed_on),
                    "Status": CONCERN_STATUS.get(c.status, _words(c.status)),
                    "Added by": names.person(c.added_by_id),
                    "Added": when(c.added_at),
                }
                for c in found.concerns
            ],
        ),
        Table(
            "meetings",
            "the meetings that had the child on their agenda",
            ("Meeting", "Date", "Starts", "Place", "Chair", "Status"),
            [
                {
                    "Meeting": m.series.name,
                    "Date": day(m.meeting_date),
                    "Starts": when(m.starts_at),
                    "Place": m.location,
                    "Chair": names.person(m.chair_id),
                    "Status": MEETING_STATUS.get(m.status, _words(m.status)),
                }
                for m in found.meetings
            ],
        ),
        Table(
            "agenda_items",
            "each time the child was on a meeting's agenda; Notes are what was minuted about them",
            (
                "Meeting",
                "Item",
                "Kind",
                "Position",
                "Status",
                "Added",
                "Agencies asked for",
                "Notes",
                "Started",
                "Ended",
                "Outcome sent to the school",
            ),
            [
                {
                    "Meeting": meeting_name(meetings.get(i.meeting_id)),
                    "Item": _item_name(i, concerns),
                    "Kind": ITEM_KIND.get(i.kind, _words(i.kind)),
                    "Position": i.position,
                    "Status": ITEM_STATUS.get(i.status, _words(i.status)),
                    "Added": when(i.added_at),
                    "Agencies asked for": "; ".join(names.agency_code(c) for c in i.agencies_needed or []),
                    "Notes": i.notes or "",
                    "Started": when(i.started_at),
                    "Ended": when(i.ended_at),
                    "Outcome sent to the school": when(i.outcome_sent_at),
                }
                for i in found.items
            ],
        ),
        Table(
            "decisions",
            "the decisions reached about the child",
            (
                "Meeting",
                "Item",
                "Outcome",
                "Service referred to",
                "Rationale",
                "Dissent",
                "Review on",
                "Decided",
                "Recorded by",
            ),
            [
                {
                    "Meeting": item_meeting(d.agenda_item_id),
                    "Item": item_label(d.agenda_item_id),
                    "Outcome": minutes_service.decision_label(names.session, d),
                    "Service referred to": d.service_name or "",
                    "Rationale": d.rationale,
                    "Dissent": d.dissent or "",
                    "Review on": day(d.review_on),
                    "Decided": when(d.decided_at),
                    "Recorded by": names.person(d.recorded_by_id),
                }
                for d in found.decisions
            ],
        ),
        Table(
            "actions",
            "the actions agreed about the child",
            (
                "Action",
                "Referral",
                "Meeting",
                "Description",
                "Owner agency",
                "Owner school",
                "Owner",
                "Due on",
                "Status",
                "Involves the school",
                "Agreed",
                "Completed",
                "Why not done",
                "Latest update",
                "Last updated",
                "Escalated",
            ),
            [
                {
                    "Action": action_ref(a.id),
                    "Referral": _reference(referrals.get(a.referral_id)),
                    "Meeting": meeting_of_action(a),
                    "Description": a.description,
                    "Owner agency": names.agency(a.owner_agency_id),
                    "Owner school": names.school(a.owner_school_id),
                    "Owner": names.person(a.owner_person_id),
                    "Due on": day(a.due_on),
                    "Status": ACTION_STATUS.get(a.status, _words(a.status)),
                    "Involves the school": yes_no(a.involves_school),
                    "Agreed": when(a.created_at),
                    "Completed": when(a.completed_at),
                    "Why not done": NOT_DONE.get(a.not_done_reason or "", _words(a.not_done_reason)),
                    "Latest update": a.latest_update or "",
                    "Last updated": when(a.updated_at),
                    "Escalated": when(a.escalated_at),
                }
                for a in found.actions
            ],
        ),
        Table(
            "action_events",
            "reminders, chases, updates and completion of those actions",
            ("Action", "When", "What happened", "By", "Note"),
            [
                {
                    "Action": action_ref(e.action_id),
                    "When": when(e.occurred_at),
                    "What happened": ACTION_EVENT.get(e.kind, _words(e.kind)),
                    "By": names.person(e.by_person_id),
                    "Note": e.note or "",
                }
                for e in found.action_events
            ],
        ),
        Table(
            "contributions",
            "what agencies said about the child for a meeting",
            (
                "Meeting",
                "Item",
                "Agency",
                "Written by",
                "Information",
                "Nothing known",
                "Shared with",
                "Released to the school",
                "Added",
                "Last changed",
            ),
            [
                {
                    "Meeting": item_meeting(c.agenda_item_id),
                    "Item": item_label(c.agenda_item_id),
                    "Agency": names.agency(c.agency_id),
                    "Written by": names.person(c.author_id),
                    "Information": c.body,
                    "Nothing known": yes_no(c.nothing_known),
                    "Shared with": VISIBILITY.get(c.visibility, _words(c.visibility))
                    + (
                        ": " + "; ".join(names.agency_code(a) for a in c.visible_to_agencies or [])
                        if c.visibility == Visibility.named_agencies
                        else ""
                    ),
                    "Released to the school": yes_no(c.released_to_school),
                    "Added": when(c.created_at),
                    "Last changed": when(c.updated_at),
                }
                for c in found.contributions
            ],
        ),
        Table(
            "minutes",
            "the minutes about the child's items, from the full minutes (the chair's copy): one part a row",
            ("Meeting", "Date", "Minutes status", "Item", "Part", "Text"),
            minutes_rows,
        ),
        Table(
            "minutes_corrections",
            "corrections asked for to the minutes about the child, and the answers",
            ("Meeting", "Item", "Asked by", "Correction", "Status", "Answer", "Asked", "Answered", "Answered by"),
            [
                {
                    "Meeting": item_meeting(c.agenda_item_id),
                    "Item": item_label(c.agenda_item_id),
                    "Asked by": names.person(c.person_id),
                    "Correction": c.body,
                    "Status": CORRECTION_STATUS.get(c.status, _words(c.status)),
                    "Answer": c.response or "",
                    "Asked": when(c.submitted_at),
                    "Answered": when(c.resolved_at),
                    "Answered by": names.person(c.resolved_by_id),
                }
                for c in found.corrections
            ],
        ),
        Table(
            "agency_waits",
            "times a referral waited on an outside agency",
            (
                "Referral",
                "Agency",
                "Waiting for",
                "Since",
                "Flagged",
                "Chases",
                "Last chased",
                "Resolved",
                "Resolution",
                "Recorded by",
            ),
            [
                {
                    "Referral": _reference(referrals.get(w.referral_id)),
                    "Agency": names.agency(w.agency_id),
                    "Waiting for": w.waiting_for,
                    "Since": when(w.since),
                    "Flagged": when(w.flagged_at),
                    "Chases": w.chases,
                    "Last chased": when(w.last_chased_at),
                    "Resolved": when(w.resolved_at),
                    "Resolution": w.resolution or "",
                    "Recorded by": names.person(w.created_by_id),
                }
                for w in found.waits
            ],
        ),
        Table(
            "documents",
            "the documents uploaded with the child's referrals; the files are under files/",
            (
                "Document",
                "File in this export",
                "Referral",
                "Description",
                "Type",
                "Size (bytes)",
                "Uploaded by",
                "Uploaded",
                "Withdrawn",
                "File deleted",
            ),
            [
                {
                    "Document": _document_label(d),
                    "File in this export": _upload_name(d) if d.file_deleted_at is None else "",
                    "Referral": _reference(referrals.get(d.referral_id)),
                    "Description": d.description,
                    "Type": d.content_type,
                    "Size (bytes)": d.size_bytes,
                    "Uploaded by": names.person(d.uploaded_by_id),
                    "Uploaded": when(d.created_at),
                    "Withdrawn": when(d.withdrawn_at),
                    "File deleted": when(d.file_deleted_at),
                }
                for d in found.documents
            ],
        ),
        Table(
            "papers_and_minutes",
            "the papers packs and minutes PDFs that included the child, with their dates; only those of a meeting "
            "that discussed this child alone are in this export (under shared/), the rest hold other children",
            ("Meeting", "Document", "Kind", "Version", "For", "Made", "Withdrawn", "File deleted", "In this export"),
            [
                {
                    "Meeting": meeting_name(s.meeting),
                    "Document": _document_label(s.document),
                    "Kind": "Papers pack" if s.document.kind == DocumentKind.papers_pack else "Minutes",
                    "Version": s.document.papers_version or "",
                    "For": names.agency(s.document.agency_id) or "The chair and coordinator (full copy)",
                    "Made": when(s.document.created_at),
                    "Withdrawn": when(s.document.withdrawn_at),
                    "File deleted": when(s.document.file_deleted_at),
                    "In this export": _shared_name(s.document)
                    if s.alone and s.document.file_deleted_at is None
                    else ("No: the file was deleted" if s.alone else "No: it holds other children's information"),
                }
                for s in found.shared
            ],
        ),
        Table(
            "emails",
            "emails about the child's referrals and actions, with their plain text; and emails about a meeting "
            "that carried a papers pack including the child (listed: their pack holds other children)",
            ("To", "Subject", "About", "Status", "Queued", "Sent", "Attachments", "Text"),
            [
                {
                    "To": e.recipient,
                    "Subject": e.subject,
                    "About": _email_about(e, referrals, actions),
                    "Status": EMAIL_STATUS.get(e.status, _words(e.status)),
                    "Queued": when(e.created_at),
                    "Sent": when(e.sent_at),
                    "Attachments": "; ".join(str(a.get("filename", "")) for a in e.attachments or []),
                    "Text": _plain_text(e),
                }
                for e in found.emails
            ]
            + [
                {
                    "To": m.recipient,
                    "Subject": m.subject,
                    "About": f"Papers for {meeting_name(s.meeting)}",
                    "Status": EMAIL_STATUS.get(m.status, _words(m.status)),
                    "Queued": when(m.created_at),
                    "Sent": when(m.sent_at),
                    "Attachments": f"{s.document.original_filename}: carried the papers pack, which included the child",
                    "Text": "Not included: the email sent the papers pack, which holds other children's information",
                }
                for m, s in found.pack_emails
            ],
        ),
        Table(
            "audit",
            "who saw, downloaded or changed the child's records (their record, referrals, documents, agenda "
            "items, decisions, contributions, actions, pupils of concern and minutes corrections), and lists "
            "and searches that showed them",
            (
                "When",
                "Who",
                "Email",
                "What",
                "Action code",
                "Record",
                "Record type",
                "Record id",
                "From (IP address)",
                "Page or request",
            ),
            [_audit_row(e, names, found) for e in found.audit],
        ),
    ]
    return tables


def _email_about(message: OutboundMessage, referrals: dict[int, Referral], actions: dict[int, Action]) -> str:
    found = re.match(r"<action-(\d+)@", message.in_reply_to or "")
    if found and int(found.group(1)) in actions:
        return f"Action ACT-{found.group(1)}"
    return f"Referral {_reference(referrals.get(message.referral_id))}" if message.referral_id else ""


def _audit_action(code: str) -> str:
    if code in AUDIT_ACTION:
        return AUDIT_ACTION[code]
    kind, _, verb = code.partition(".")
    words = verb.replace("_", " ") if verb else ""
    return f"{RECORD_TYPE.get(kind, kind.replace('_', ' ').capitalize())}: {words}".rstrip(": ")


def _audit_record(event: AuditEvent, found: Found) -> str:
    kind, record_id = event.record_type or "", event.record_id
    if record_id is None:
        listed = {str(i) for i in (event.detail or {}).get("ids") or []}
        if kind == "referral":
            shown = [_reference(r) for r in found.referrals if str(r.id) in listed]
        elif kind == "action":
            shown = [f"ACT-{a.id}" for a in found.actions if str(a.id) in listed]
        elif kind == "document":
            shown = [_document_label(d) for d in found.documents if str(d.id) in listed]
        else:
            shown = ["the child's record"] if str(found.child.id) in listed else []
        return "A list including " + ", ".join(shown) if shown else "A list"
    lookup: dict[str, Callable[[], str]] = {
        "referral": lambda: next((f"Referral {_reference(r)}" for r in found.referrals if str(r.id) == record_id), ""),
        "document": lambda: next(
            (f"Document {_document_label(d)}" for d in found.documents if str(d.id) == record_id), ""
        ),
        "action": lambda: f"Action ACT-{record_id}",
        "child": lambda: "The child's record",
        "agenda_item": lambda: next(
            (
                f"Agenda item for {_item_name(i, {c.id: c for c in found.concerns})}, "
                f"{meeting_name(next((m for m in found.meetings if m.id == i.meeting_id), None))}"
                for i in found.items
                if str(i.id) == record_id
            ),
            "",
        ),
    }
    shown = lookup.get(kind, lambda: "")()
    return shown or f"{RECORD_TYPE.get(kind, kind)} {record_id}"


def _audit_row(event: AuditEvent, names: Names, found: Found) -> dict[str, Any]:
    name, email = names.person_parts(event.actor_person_id)
    if not email:
        email = event.actor_label if "@" in (event.actor_label or "") else ""
        name = name or ("" if email else (event.actor_label or "caseconf (automatic)"))
    detail = event.detail or {}
    request = " ".join(str(detail.get(k) or "") for k in ("method", "path")).strip()
    return {
        "When": when(event.occurred_at),
        "Who": name,
        "Email": email,
        "What": _audit_action(event.action),
        "Action code": event.action,
        "Record": _audit_record(event, found),
        "Record type": event.record_type or "",
        "Record id": event.record_id or "",
        "From (IP address)": event.ip_address or "",
        "Page or request": request,
    }


# ---- the minutes -----------------------------------------------------------------------------------------


def _minutes(session: Session, found: Found) -> tuple[list[dict[str, str]], str, list[dict[str, Any]]]:
    """The full minutes' text about the child's items, for each meeting that minuted them: as CSV rows,
    as readable text, and as JSON."""
    mine = {i.id for i in found.items}
    rows: list[dict[str, str]] = []
    text: list[str] = []
    data: list[dict[str, Any]] = []
    full = minutes_service.Reader(True, None)
    for meeting in found.meetings:
        minute = minutes_service.minute_of(session, meeting)
        if minute is None:
            continue
        built = minutes_service.build(session, meeting, full)
        parts_for_meeting = []
        for item in built.items:
            if item.item.id not in mine:
                continue  # another child's item: never exported
            parts: list[tuple[str, str]] = [
                ("Listed as", item.label.capitalize()),
                ("Notes", item.notes or "None recorded"),
            ]
            for c in item.contributions:
                said = "Nothing known" if c.nothing_known else c.body
                parts.append((f"Information from {c.agency}" + (f" ({c.shared_with})" if c.shared_with else ""), said))
            for label, value in item.health or []:
                parts.append((f"Health: {label}", value))
            for label, value in item.community_safety or []:
                parts.append((f"Community safety: {label}", value))
            if item.decision is not None:
                d = item.decision
                parts.append(("Decision", d.label + (f": {d.service_name}" if d.service_name else "")))
                parts.append(("Rationale", d.rationale))
                parts.append(("Dissent", d.dissent or "None recorded"))
                if d.review_on:
                    parts.append(("Review on", day(d.review_on)))
            for number, a in enumerate(item.actions, start=1):
                owner = ", ".join(x for x in (a.owner, a.agency) if x) or "No owner"
                words = f"{a.description} Owner: {owner}. Due {day(a.due_on)}. Status: {a.status}."
                if a.reason:
                    words += f" Why not done: {a.reason}."
                parts.append((f"Action {number}", words))
            parts_for_meeting.append((item.reference, parts))
        if not parts_for_meeting:
            continue
        name = meeting_name(meeting)
        text.append(f"{built.series_name}\n{built.date_text}, {built.time_text}, {built.place}")
        text.append(
            f"Chair: {built.chair}. Minute taker: {built.minute_taker}. Minutes: {built.status}, version "
            f"{built.version}."
        )
        for reference, parts in parts_for_meeting:
            text.append(f"\n  Item: {reference}")
            for part, words in parts:
                text.append(f"  {part}: {words}")
                rows.append(
                    {
                        "Meeting": name,
                        "Date": day(meeting.meeting_date),
                        "Minutes status": built.status,
                        "Item": reference,
                        "Part": part,
                        "Text": words,
                    }
                )
            data.append(
                {
                    "meeting_id": meeting.id,
                    "meeting": name,
                    "minutes_status": built.status,
                    "minutes_version": built.version,
                    "item": reference,
                    "parts": [{"part": p, "text": w} for p, w in parts],
                }
            )
        text.append("\n" + "-" * 72 + "\n")
    if not text:
        return rows, "No meeting has minuted an item about the child.\n", data
    return rows, "\n".join(text) + "\n", data


# ---- the zip --------------------------------------------------------------------------------------------


def _upload_name(document: Document) -> str:
    return f"files/{document.id}-{document.original_filename}"


def _shared_name(document: Document) -> str:
    return f"shared/{document.id}-{document.original_filename}"


def _csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table.columns))
    writer.writeheader()  # always, so an empty file still says what it would hold
    for record in table.rows:
        writer.writerow({k: _spreadsheet_safe(_cell(record.get(k, ""))) for k in table.columns})
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return (
            "; ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else "; ".join(map(str, value))
        )
    return value


def _spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


README_HEAD = """Subject access export from caseconf
===================================

Child: {name} (id {child_id}), born {born}.
Exported {at} (London time) by {actor}.

How to read it
--------------
Each CSV opens in a spreadsheet. People are shown by name and email address, agencies, schools and
meetings by name, codes by what they mean, and dates and times in London time (2026-12-03 13:30).
Every CSV has a header row, even when the child has no records of that kind.
Redacted records show "Removed under the retention schedule" in place of what was removed.

data.json holds every record in full as stored (with its ids and codes, times in UTC), under
"records", and the same tables as the CSVs under "readable".

minutes.txt is the minutes about the child's items, as text, for each meeting that minuted them
(from the full minutes, the copy the chair keeps). minutes.csv holds the same, one part a row.

The files
---------
"""

README_TAIL = """
files/     the documents uploaded with the child's referrals, named by document number. Documents
           whose files were deleted under the retention schedule are listed in documents.csv only.
shared/    papers packs and minutes PDFs of a meeting that discussed this child and no other
           (usually empty: see papers_and_minutes.csv).

What was left out, and why
--------------------------
- Papers packs and minutes PDFs of meetings that discussed other children too: they hold those
  children's information. papers_and_minutes.csv lists which packs and minutes included this child,
  with their dates; what they said about the child is in minutes.txt, agenda_items.csv,
  decisions.csv, contributions.csv and actions.csv.
- From the minutes: the summary of the whole meeting, the attendance list and the other children's
  items, including reviews of other children's actions.
- Emails about a meeting that carried a papers pack are listed in emails.csv (who to, subject, when
  and that they carried the pack) without their text or the pack. Weekly digests to schools list
  several children and are left out. Other emails about meetings carry no child's information.
- The audit log of other records: audit.csv holds only the rows about this child's records and
  the lists and searches that showed them.
- Secrets that would let someone act as another person (an action's reply token), and the
  unsaved working copy of a referral's answers.

Before sending this to the requester, check it for information about other people (third parties),
such as what agencies said about family members.
"""


def _readme(tables: list[Table], *, child: Child, at: datetime, actor: str) -> str:
    lines = []
    for table in tables:
        lines.append(f"{table.name}.csv ({len(table.rows)} {'row' if len(table.rows) == 1 else 'rows'})")
        lines.extend(
            textwrap.wrap(
                table.about[0].upper() + table.about[1:] + ".", 100, initial_indent="    ", subsequent_indent="    "
            )
        )
        lines.extend(
            textwrap.wrap(
                "Columns: " + ", ".join(table.columns) + ".", 100, initial_indent="    ", subsequent_indent="    "
            )
        )
        lines.append("")
    head = README_HEAD.format(
        name=f"{child.legal_first_name} {child.legal_surname}",
        child_id=child.id,
        born=day(child.date_of_birth),
        at=when(at),
        actor=actor or "unknown",
    )
    return head + "\n".join(lines) + README_TAIL


def export_zip(
    session: Session,
    child_id: int,
    *,
    now: datetime,
    storage_dir: Path,
    actor_person_id: int | None = None,
    actor_label: str = "",
    ip_address: str | None = None,
) -> bytes:
    """The child's export as zip bytes; audited as 'subject_access.exported'."""
    found = _load(session, child_id)
    records = _raw(found)
    names = Names(session)
    minutes_rows, minutes_text, minutes_data = _minutes(session, found)
    tables = _tables(found, names, minutes_rows)
    records["minutes"] = minutes_data
    buffer = io.BytesIO()
    missing = []
    shared_files = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(tables, child=found.child, at=now, actor=actor_label))
        archive.writestr(
            "data.json",
            json.dumps(
                {"records": records, "readable": {t.name: t.rows for t in tables}},
                indent=2,
                ensure_ascii=False,
                default=str,
            ),
        )
        for table in tables:
            archive.writestr(f"{table.name}.csv", _csv(table))
        archive.writestr("minutes.txt", minutes_text)
        for document in found.documents:
            path = document_path(storage_dir, document)
            if document.file_deleted_at is None and path.is_file():
                archive.write(path, _upload_name(document))
            else:
                missing.append(document.id)
        for shared in found.shared:
            path = document_path(storage_dir, shared.document)
            if shared.alone and shared.document.file_deleted_at is None and path.is_file():
                archive.write(path, _shared_name(shared.document))
                shared_files.append(shared.document.id)
    audit.record(
        session,
        now=now,
        action="subject_access.exported",
        actor_person_id=actor_person_id,
        actor_label=actor_label,
        record_type="child",
        record_id=child_id,
        ip_address=ip_address,
        referrals=[r.id for r in found.referrals],
        documents=[d.id for d in found.documents],
        files_missing=missing,
        shared_documents=shared_files,
    )
    return buffer.getvalue()
