"""A child's subject access export: everything caseconf holds about them, as one zip for the data protection
officer to review and send.

The zip holds data.json (every record below, in full), one CSV per kind of record, the uploaded documents
under files/, and README.txt saying what each part is. Records: the child; their referrals with every
section and status history; agenda items about them (their referrals, and Team Around the School pupils of
concern naming them) with the notes minuted, decisions, actions and action events, agencies' contributions
and minutes corrections; waits on outside agencies; the uploaded documents; emails sent about their referrals
(from the outbox); and the audit of who saw or changed their referrals and documents.

Papers packs and minutes PDFs are left out: they are about every child on the agenda. What they said about
this child is in the agenda items, decisions and contributions.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from caseconf import audit
from caseconf.audit import AuditEvent
from caseconf.errors import Invalid, NotFound
from meetings.documents import document_path
from meetings.models import (
    Action,
    ActionEvent,
    AgencyWait,
    AgendaItem,
    Child,
    Contribution,
    Decision,
    Document,
    DocumentKind,
    Meeting,
    MinuteCorrection,
    PupilOfConcern,
    Referral,
    ReferralStatusChange,
)
from notifications.models import OutboundMessage

# Never exported: secrets that would let someone act as another, and the raw draft copy of the answers.
LEFT_OUT = frozenset({"reply_token_hash", "draft_answers"})

README = """Subject access export from caseconf
===================================

Child id {child_id}, exported {at} (UTC) by {actor}.

data.json holds every record below in full. Each CSV holds one kind of record, one row each:

  child.csv              the child's record (name, date of birth, UPN, school, year group)
  referrals.csv          their referrals; the sections held as lists or groups (family, health,
                         community safety, interventions...) are JSON text in their column
  status_history.csv     each referral's status changes, with who and when
  concerns.csv           Team Around the School pupils of concern naming the child
  agenda_items.csv       each time they were on a meeting's agenda; notes are what was minuted
  meetings.csv           those meetings (date, series, status)
  decisions.csv          decisions reached about them
  actions.csv            actions agreed about them
  action_events.csv      reminders, chases, updates and completion of those actions
  contributions.csv      what agencies contributed for those agenda items
  minutes_corrections.csv  corrections to the minutes about them
  agency_waits.csv       times their referral waited on an outside agency
  documents.csv          the documents uploaded with their referrals; the files are under files/
  emails.csv             emails sent about their referrals (who to, when, subject and text)
  audit.csv              who saw, downloaded or changed their referrals, documents and actions, and when

Redacted records show "Removed under the retention schedule" in place of what was removed.
Documents whose files were deleted under the retention schedule are listed without a file.
Before sending this to the requester, check it for information about other people (third parties).
"""


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


def collect(session: Session, child_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every record about the child, by kind."""
    child = session.get(Child, child_id) if 0 < child_id < 2**31 else None
    if child is None:
        raise NotFound(f"child {child_id}")
    referrals = session.scalars(select(Referral).where(Referral.child_id == child.id).order_by(Referral.id)).all()
    referral_ids = [r.id for r in referrals]
    concerns = session.scalars(
        select(PupilOfConcern).where(PupilOfConcern.child_id == child.id).order_by(PupilOfConcern.id)
    ).all()
    concern_ids = [c.id for c in concerns]
    items = session.scalars(
        select(AgendaItem)
        .where(or_(AgendaItem.referral_id.in_(referral_ids), AgendaItem.concern_id.in_(concern_ids)))
        .order_by(AgendaItem.id)
    ).all()
    item_ids = [i.id for i in items]
    meetings = session.scalars(
        select(Meeting).where(Meeting.id.in_({i.meeting_id for i in items})).order_by(Meeting.starts_at)
    ).all()
    actions = session.scalars(
        select(Action)
        .where(
            or_(
                Action.referral_id.in_(referral_ids),
                Action.agenda_item_id.in_(item_ids),
                Action.concern_id.in_(concern_ids),
            )
        )
        .order_by(Action.id)
    ).all()
    action_ids = [a.id for a in actions]
    documents = session.scalars(
        select(Document)
        .where(Document.referral_id.in_(referral_ids), Document.kind == DocumentKind.upload)
        .order_by(Document.id)
    ).all()
    document_ids = [str(d.id) for d in documents]
    emails = session.scalars(
        select(OutboundMessage).where(OutboundMessage.referral_id.in_(referral_ids)).order_by(OutboundMessage.id)
    ).all()
    audit_rows = session.scalars(
        select(AuditEvent)
        .where(
            or_(
                and_(AuditEvent.record_type == "referral", AuditEvent.record_id.in_([str(i) for i in referral_ids])),
                and_(AuditEvent.record_type == "document", AuditEvent.record_id.in_(document_ids)),
                and_(AuditEvent.record_type == "action", AuditEvent.record_id.in_([str(i) for i in action_ids])),
                and_(AuditEvent.record_type == "child", AuditEvent.record_id == str(child.id)),
            )
        )
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()

    def rows(query) -> list[dict[str, Any]]:
        return [row(r) for r in session.scalars(query)]

    return {
        "child": [row(child)],
        "referrals": [row(r) for r in referrals],
        "status_history": rows(
            select(ReferralStatusChange)
            .where(ReferralStatusChange.referral_id.in_(referral_ids))
            .order_by(ReferralStatusChange.id)
        ),
        "concerns": [row(c) for c in concerns],
        "agenda_items": [row(i) for i in items],
        "meetings": [
            {
                "id": m.id,
                "series": m.series.name,
                "meeting_date": m.meeting_date.isoformat(),
                "starts_at": m.starts_at.isoformat(),
                "status": m.status,
            }
            for m in meetings
        ],
        "decisions": rows(select(Decision).where(Decision.agenda_item_id.in_(item_ids)).order_by(Decision.id)),
        "actions": [row(a) for a in actions],
        "action_events": rows(
            select(ActionEvent).where(ActionEvent.action_id.in_(action_ids)).order_by(ActionEvent.id)
        ),
        "contributions": rows(
            select(Contribution).where(Contribution.agenda_item_id.in_(item_ids)).order_by(Contribution.id)
        ),
        "minutes_corrections": rows(
            select(MinuteCorrection).where(MinuteCorrection.agenda_item_id.in_(item_ids)).order_by(MinuteCorrection.id)
        ),
        "agency_waits": rows(
            select(AgencyWait).where(AgencyWait.referral_id.in_(referral_ids)).order_by(AgencyWait.id)
        ),
        "documents": [row(d) for d in documents],
        "emails": [row(e) for e in emails],
        "audit": [row(a) for a in audit_rows],
    }


def _csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if not records:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(records[0]))
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else _spreadsheet_safe(v)
                for k, v in record.items()
            }
        )
    return out.getvalue()


def _spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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
    records = collect(session, child_id)
    buffer = io.BytesIO()
    missing = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "README.txt", README.format(child_id=child_id, at=now.isoformat(), actor=actor_label or "unknown")
        )
        archive.writestr("data.json", json.dumps(records, indent=2, ensure_ascii=False, default=str))
        for name, found in records.items():
            archive.writestr(f"{name}.csv", _csv(found))
        for document in records["documents"]:
            path = document_path(storage_dir, session.get(Document, document["id"]))
            if document["file_deleted_at"] is None and path.is_file():
                archive.write(path, f"files/{document['id']}-{document['original_filename']}")
            else:
                missing.append(document["id"])
    audit.record(
        session,
        now=now,
        action="subject_access.exported",
        actor_person_id=actor_person_id,
        actor_label=actor_label,
        record_type="child",
        record_id=child_id,
        ip_address=ip_address,
        referrals=[r["id"] for r in records["referrals"]],
        documents=[d["id"] for d in records["documents"]],
        files_missing=missing,
    )
    return buffer.getvalue()
