"""The audit log for those who answer for it: a referral's access log (its EIP, the data protection officer
and admins) and the whole log with filters and a CSV export for a date range (the data protection officer
and admins). Reading the log is itself audited; nothing here changes or removes a row."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Person
from caseconf import audit
from caseconf.clock import london_text
from caseconf.db import transaction
from caseconf.errors import Forbidden, NotFound
from meetings.access import (
    Principal,
    can_on_action,
    can_on_meeting,
    can_on_referral,
    can_read_access_log,
    require,
)
from meetings.models import Action, Document, Meeting, Referral
from web.deps import DbSession, SignedIn, client_ip, now_of, render

router = APIRouter()

PAGE_SIZE = 50
MAX_TEXT = 320
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TEXT_FILTERS = (("person", "Person"), ("action", "Action"), ("record_type", "Record type"), ("record_id", "Record id"))
CSV_HEADER = (
    "When (UTC)",
    "When (London)",
    "Person id",
    "Who",
    "Action",
    "Record type",
    "Record id",
    "IP address",
    "Method",
    "Path",
    "Status",
    "Detail",
)


def _page_number(value: str) -> int:
    return int(value) if value.isdigit() and 0 < len(value) < 7 and int(value) > 0 else 1


def _people(session: Session, events: list[audit.AuditEvent]) -> dict[int, tuple[str, str]]:
    """{person id: (name, email)} for the people named in the rows."""
    ids = {e.actor_person_id for e in events if e.actor_person_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(Person.id, Person.name, Person.email).where(Person.id.in_(ids))).tuples().all()
    return {person_id: (name, email) for person_id, name, email in rows}


# Plain words for what a row records; the code stays beside them (it is what the filter and the CSV use).
ACTION_LABELS = {
    "referral.viewed": "Looked at the referral",
    "meeting.viewed": "Looked at the meeting",
    "action.viewed": "Looked at the action",
    "referral.listed": "Saw a list of referrals",
    "meeting.listed": "Saw a list of meetings",
    "action.listed": "Saw a list of actions",
    "concern.listed": "Saw a list of pupils of concern",
    "wait.listed": "Saw a list of blockages",
    "actions.exported": "Downloaded the actions as CSV",
    "api.referrals_listed": "Listed referrals through the API",
    "document.downloaded": "Downloaded a document",
    "document.uploaded": "Uploaded a document",
    "document.removed": "Removed a document",
    "papers.downloaded": "Downloaded the papers",
    "papers.circulated": "Sent out the papers",
    "papers.pack_stored": "Made the papers packs",
    "minutes.viewed": "Read the minutes",
    "minutes.downloaded": "Downloaded the minutes",
    "minutes.approved": "Approved the minutes",
    "minutes.circulated": "Circulated the minutes",
    "minutes.finalised": "Finalised the minutes",
    "minutes.correction_requested": "Asked for a correction to the minutes",
    "minutes.correction_accepted": "Accepted a correction to the minutes",
    "meeting.contributions_viewed": "Opened the agencies' contributions page",
    "meeting.room_viewed": "Opened the meeting room",
    "meeting.room_opened": "Opened the meeting",
    "meeting.ended": "Ended the meeting",
    "contribution.added": "Added their agency's information",
    "referral.page_saved": "Saved a page of the referral",
    "referral.consent_withdrawn": "Recorded that consent was withdrawn",
    "outbox.stopped_consent_withdrawn": "Stopped emails: consent withdrawn",
    "email.sent": "Email sent",
    "outcome.sent": "Outcome sent to the school",
    "access.refused": "Refused: not allowed to see or do this",
    "csrf.refused": "Refused: the form had expired or came from elsewhere",
    "sign_in.requested": "Asked for a sign-in link",
    "sign_in.succeeded": "Signed in",
    "api_token.created": "Made an API token",
    "api_token.revoked": "Revoked an API token",
    "api.token_refused": "API token refused",
    "audit.viewed": "Read the audit log",
    "audit.exported": "Downloaded the audit log as CSV",
    "subject_access.exported": "Made a subject access export",
}
VIA_WORDS = {
    "papers": "in the papers of meeting {meeting}",
    "contributions": "on the contributions page of meeting {meeting}",
    "minutes": "in the minutes of meeting {meeting}",
    "room": "in the meeting room of meeting {meeting}",
    "attached papers": "with the papers of meeting {meeting} attached",
}
# A form that changed nothing (`<type>.change_requested`), by the answer it got.
REFUSED_CHANGE = {
    400: "Tried to change it (refused: the form had errors)",
    422: "Tried to change it (refused: the form had errors)",
    409: "Tried to change it (refused: someone had changed it first)",
    404: "Tried to change it (not found)",
    410: "Tried to change it (refused: it has been withdrawn)",
}


def describe(event: audit.AuditEvent) -> str:
    """What one row records, in plain words."""
    detail = event.detail or {}
    kind, _, verb = event.action.partition(".")
    if verb == "change_requested":
        status = detail.get("status")
        if isinstance(status, int) and status >= 500:
            return "Tried to change it (failed: nothing was saved)"
        return REFUSED_CHANGE.get(status, "Asked to change it") if isinstance(status, int) else "Asked to change it"
    label = ACTION_LABELS.get(event.action)
    if label is None:
        label = (kind.replace("_", " ") + ": " + verb.replace("_", " ")).capitalize() if verb else kind
    via = detail.get("via")
    if via in VIA_WORDS:
        label += " " + VIA_WORDS[via].format(meeting=detail.get("meeting_id", ""))
    return label


def _refs(session: Session, model, ids: set[int]) -> dict[int, object]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(sorted(ids))))}


def record_links(
    session: Session, viewer: Principal, events: list[audit.AuditEvent], *, log_of: int | None = None
) -> dict[int, list[tuple[str, str]]]:
    """{row id: [(text, address)]}: each row's record page, where the viewer may open one, and the access log of
    the referral it is about (a referral, or a document or action of one), unless that is the page shown."""
    wanted: dict[str, set[int]] = {"referral": set(), "document": set(), "action": set(), "meeting": set()}
    for event in events:
        if event.record_type in wanted and (event.record_id or "").isdigit() and len(event.record_id) < 10:
            wanted[event.record_type].add(int(event.record_id))
    documents = _refs(session, Document, wanted["document"])
    actions = _refs(session, Action, wanted["action"])
    referral_ids = wanted["referral"] | {
        r.referral_id for r in (*documents.values(), *actions.values()) if r.referral_id
    }
    referrals = _refs(session, Referral, referral_ids)
    meetings = _refs(session, Meeting, wanted["meeting"])

    def log_link(referral_id: int | None) -> list[tuple[str, str]]:
        referral = referrals.get(referral_id)
        if referral is None or referral.id == log_of or not can_read_access_log(viewer, referral):
            return []
        return [
            (
                f"Access log of {referral.reference or 'referral ' + str(referral.id)}",
                f"/referrals/{referral.id}/access-log",
            )
        ]

    links: dict[int, list[tuple[str, str]]] = {}
    for event in events:
        found: list[tuple[str, str]] = []
        record_id = int(event.record_id) if (event.record_id or "").isdigit() and len(event.record_id) < 10 else None
        if event.record_type == "referral" and record_id in referrals:
            referral = referrals[record_id]
            if can_on_referral(viewer, "view", referral):
                found.append(("Open the referral", f"/referrals/{referral.id}"))
            found += log_link(record_id)
        elif event.record_type == "document" and record_id in documents:
            found += log_link(documents[record_id].referral_id)
        elif event.record_type == "action" and record_id in actions:
            if can_on_action(viewer, "view", actions[record_id]):
                found.append(("Open the action", f"/actions/{record_id}"))
            found += log_link(actions[record_id].referral_id)
        elif event.record_type == "meeting" and record_id in meetings:
            if can_on_meeting(session, viewer, "view", meetings[record_id]):
                found.append(("Open the meeting", f"/meetings/{record_id}"))
        if found:
            links[event.id] = found
    return links


def _record_read(request: Request, viewer: Principal, action: str, **detail) -> None:
    """Reading or exporting the log is audited too, in a transaction of its own."""
    with transaction(request.app.state.session_factory) as session:
        audit.record(
            session,
            now=now_of(request),
            action=action,
            actor_person_id=viewer.person_id,
            actor_label=viewer.email,
            ip_address=client_ip(request),
            path=request.url.path,
            user_agent=(request.headers.get("user-agent") or "")[:300],
            **detail,
        )


def _pages(total: int, page: int) -> int:
    return max(1, -(-total // PAGE_SIZE)) if total else 1


# --- A referral's access log ---------------------------------------------------------------------------


@router.get("/referrals/{referral_id}/access-log")
def access_log(request: Request, session: DbSession, viewer: SignedIn, referral_id: int, page: str = "1") -> Response:
    if not 0 < referral_id < 2**31:
        raise NotFound(f"referral {referral_id}")
    referral = session.get(Referral, referral_id)
    if referral is None:
        raise NotFound(f"referral {referral_id}")
    if not can_read_access_log(viewer, referral):
        raise Forbidden("referral.access_log", record_type="referral", record_id=referral.id)
    audit.note_access("referral", referral.id, "access_log", actor_person_id=viewer.person_id, actor_label=viewer.email)
    documents = [str(i) for i in session.scalars(select(Document.id).where(Document.referral_id == referral.id))]
    actions = [str(i) for i in session.scalars(select(Action.id).where(Action.referral_id == referral.id))]
    filters = audit.LogFilters(records=(("referral", [str(referral.id)]), ("document", documents), ("action", actions)))
    total = audit.count_log(session, filters)
    number = min(_page_number(page), _pages(total, 1))
    events = audit.read_log(session, filters, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    return render(
        request,
        "audit/access_log.html",
        referral=referral,
        events=events,
        people=_people(session, events),
        describe=describe,
        links=record_links(session, viewer, events, log_of=referral.id),
        total=total,
        page=number,
        pages=_pages(total, number),
        base=f"/referrals/{referral.id}/access-log?",
        back=f"/triage/{referral.id}" if can_on_referral(viewer, "triage", referral) else "/",
    )


# --- The whole log ----------------------------------------------------------------------------------------


def _parse(typed: dict[str, str], *, dates_required: bool) -> tuple[audit.LogFilters, dict[str, str]]:
    """The filters as typed, or the problems with them (each keyed by its field)."""
    errors: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for name, label in (("from", "start date"), ("to", "end date")):
        value = typed[name]
        days[name] = None
        if not value:
            if dates_required:
                errors[name] = f"Enter the {label} to export, as YYYY-MM-DD, for example 2026-01-31"
            continue
        if not ISO_DATE.fullmatch(value):
            errors[name] = f"Enter the {label} as YYYY-MM-DD, for example 2026-01-31"
            continue
        try:
            days[name] = date.fromisoformat(value)
        except ValueError:
            errors[name] = f"The {label} must be a real date, as YYYY-MM-DD"
    if days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"] = "The end date must be the same as or after the start date"
    for name, label in TEXT_FILTERS:
        if len(typed[name]) > MAX_TEXT:
            errors[name] = f"{label} must be {MAX_TEXT} characters or fewer"
    filters = audit.LogFilters(
        from_date=days["from"],
        to_date=days["to"],
        person=typed["person"],
        action=typed["action"],
        record_type=typed["record_type"],
        record_id=typed["record_id"],
    )
    return filters, errors


def _typed(request: Request) -> dict[str, str]:
    query = request.query_params
    return {name: query.get(name, "").strip() for name in ("from", "to", *(n for n, _ in TEXT_FILTERS))}


def _log_page(
    request: Request,
    session: Session,
    viewer: Principal,
    typed: dict[str, str],
    filters,
    errors,
    *,
    page: int,
    status_code: int = 200,
) -> Response:
    if errors:
        total, events, number = 0, [], 1
    else:
        total = audit.count_log(session, filters)
        number = min(page, _pages(total, page))
        events = audit.read_log(session, filters, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    kept = {k: v for k, v in typed.items() if v}
    return render(
        request,
        "audit/index.html",
        status_code=status_code,
        typed=typed,
        errors=errors,
        events=events,
        people=_people(session, events),
        describe=describe,
        links=record_links(session, viewer, events),
        total=total,
        page=number,
        pages=_pages(total, number),
        base="/audit?" + (urlencode(kept) + "&" if kept else ""),
        export_query=urlencode(kept),
        action_names=audit.action_names(session),
        text_filters=TEXT_FILTERS,
    )


@router.get("/audit")
def audit_log(request: Request, session: DbSession, viewer: SignedIn, page: str = "1") -> Response:
    require(viewer, "audit.view")
    typed = _typed(request)
    filters, errors = _parse(typed, dates_required=False)
    if errors:
        return _log_page(request, session, viewer, typed, filters, errors, page=1, status_code=400)
    _record_read(request, viewer, "audit.viewed", filters={k: v for k, v in typed.items() if v})
    return _log_page(request, session, viewer, typed, filters, errors, page=_page_number(page))


def _cell(value: object) -> str:
    """One CSV cell, on one line, never read as a formula by a spreadsheet."""
    text = " ".join(("" if value is None else str(value)).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(events: list[audit.AuditEvent]) -> list[list[str]]:
    rows = [list(CSV_HEADER)]
    for event in events:
        detail = dict(event.detail or {})
        rows.append(
            [
                _cell(value)
                for value in (
                    event.occurred_at.isoformat(),
                    london_text(event.occurred_at, "%Y-%m-%d %H:%M:%S"),
                    event.actor_person_id,
                    event.actor_label,
                    event.action,
                    event.record_type,
                    event.record_id,
                    event.ip_address,
                    detail.pop("method", ""),
                    detail.pop("path", ""),
                    detail.pop("status", ""),
                    json.dumps(detail, sort_keys=True, default=str) if detail else "",
                )
            ]
        )
    return rows


@router.get("/audit.csv")
def audit_csv(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "audit.view")
    typed = _typed(request)
    filters, errors = _parse(typed, dates_required=True)
    if errors:
        return _log_page(request, session, viewer, typed, filters, errors, page=1, status_code=400)
    events = audit.read_log(session, filters)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_rows(events))
    _record_read(request, viewer, "audit.exported", rows=len(events), filters={k: v for k, v in typed.items() if v})
    name = f"audit-{filters.from_date.isoformat()}-to-{filters.to_date.isoformat()}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
