"""The papers pack: a PDF per meeting, with a variant for each agency as the sharing matrix allows.

The full pack (agency None) is for the chair and coordinator and has everything. An agency's pack
leaves out the restricted sections its sharing group may not see (notes/referral-form.md: health
for safeguarding and health only; community safety for safeguarding and police only) and the
contributions not shared with it. Items whose referral has no consent or recorded lawful basis, or
whose consent was withdrawn, are left out of every pack.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person
from caseconf import audit
from caseconf.clock import london_text
from meetings.access import RESTRICTED_SECTIONS, may_share
from meetings.agenda import Slot, item_label, slots
from meetings.documents import PDF, store_file
from meetings.models import (
    AgendaItem,
    Contribution,
    Document,
    DocumentKind,
    Meeting,
    MeetingStatus,
    PupilOfConcern,
    Referral,
    Visibility,
)
from meetings.referrals import reason_options

FULL = "Full pack for the chair and coordinator"
HEALTH_GROUPS = RESTRICTED_SECTIONS["health"]
COMMUNITY_SAFETY_GROUPS = RESTRICTED_SECTIONS["community_safety"]

RSVP_WORDS = {
    "needs_action": "No reply yet",
    "accepted": "Coming",
    "tentative": "Maybe",
    "declined": "Not coming",
    "delegated": "Sending someone else",
}
ROLE_WORDS = {
    "chair": "Chair",
    "minute_taker": "Minute taker",
    "member": "Member",
    "deputy": "Deputy",
    "school": "School",
    "observer": "Observer",
}


@dataclass(frozen=True)
class View:
    """What one pack shows: the restricted sections and which contributions. Agencies with the same
    view share the same bytes."""

    health: bool
    community_safety: bool
    contribution_ids: frozenset[int]


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("meetings", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def may_circulate(referral: Referral | None) -> bool:
    return may_share(referral)


def held_items(meeting: Meeting) -> list[AgendaItem]:
    """Listed referral items that may not be circulated."""
    return [s.item for s in slots(meeting) if s.item.referral_id is not None and not may_circulate(s.item.referral)]


def _contributions(session: Session, meeting: Meeting) -> list[Contribution]:
    item_ids = [i.id for i in meeting.items]
    if not item_ids:
        return []
    return list(
        session.scalars(select(Contribution).where(Contribution.agenda_item_id.in_(item_ids)).order_by(Contribution.id))
    )


def view_for(agency: Agency | None, contributions: list[Contribution]) -> View:
    if agency is None:
        return View(True, True, frozenset(c.id for c in contributions))
    shared = frozenset(
        c.id
        for c in contributions
        if c.visibility == Visibility.all_invitees
        or c.agency_id == agency.id
        or (c.visibility == Visibility.named_agencies and agency.code in (c.visible_to_agencies or []))
    )
    return View(agency.sharing_group in HEALTH_GROUPS, agency.sharing_group in COMMUNITY_SAFETY_GROUPS, shared)


def audience_of(view: View, agency: Agency | None) -> str:
    """Who the pack is for, in words that hold for every agency sharing the same view."""
    if agency is None:
        return FULL
    shown = [name for name, on in (("health", view.health), ("community safety", view.community_safety)) if on]
    hidden = [name for name, on in (("health", view.health), ("community safety", view.community_safety)) if not on]
    text = "Agency pack"
    if shown:
        text += f": includes the {' and '.join(shown)} section{'s' if len(shown) > 1 else ''}"
    if hidden:
        text += f"{';' if shown else ':'} leaves out the {' and '.join(hidden)} section{'s' if len(hidden) > 1 else ''}"
    return text


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _words(value) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dict):
        return ", ".join(f"{_label(k)}: {_words(v)}" for k, v in value.items() if v not in (None, "", []))
    if isinstance(value, list):
        return "; ".join(_words(v) for v in value)
    if isinstance(value, str) and re.fullmatch(r"[a-z]+(_[a-z]+)+", value):
        return value.replace("_", " ")  # a code from a list, such as serious_youth_violence
    return "" if value is None else str(value)


LABELS = {"camhs_history": "CAMHS history", "semh": "SEMH presentation"}
SEN_WORDS = {"none": "None", "sen_support": "SEN support", "ehcp": "EHCP"}


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def facts(section: dict) -> list[tuple[str, str]]:
    """A free-form section (health, community safety) as label and text pairs."""
    return [(_label(key), _words(value)) for key, value in (section or {}).items() if value not in (None, "", [], {})]


def _consent(referral: Referral) -> str:
    if referral.consent_status == "given":
        when = f" on {referral.consent_given_on:%-d %B %Y}" if referral.consent_given_on else ""
        how = f" ({referral.consent_method})" if referral.consent_method else ""
        return f"Consent given by {referral.consent_given_by}{when}{how}"
    return (
        f"Shared without consent. Lawful basis: {referral.lawful_basis}. Reason: {referral.lawful_basis_reason}. "
        f"Decided by {referral.lawful_basis_decided_by}"
    )


def summary(referral: Referral, reasons: dict[str, str], on: date) -> list[tuple[str, str]]:
    """What every invited agency reads of a referral (sections A to D and G to I of the sharing matrix), as
    label and text pairs: the pack's page for the child, and an agency's page on the portal."""
    child = referral.child
    if child is None:
        who = "Not given"
    else:
        known_as = f" (known as {child.preferred_name})" if child.preferred_name else ""
        who = (
            f"{child.legal_first_name} {child.legal_surname}{known_as}, "
            f"aged {_age_on(child.date_of_birth, on)}, {child.year_group}"
        )
    reason_text = "; ".join([reasons.get(code, code) for code in referral.reasons] + [referral.reasons_other or ""])
    sen = SEN_WORDS.get(referral.sen_status, referral.sen_status)
    return [
        ("Child", who),
        ("School", referral.school.name),
        ("Urgency", f"Priority: {referral.urgency_reason or ''}" if referral.urgency == "priority" else "Routine"),
        ("Reasons", reason_text.strip("; ")),
        ("What is happening", referral.what_is_happening or ""),
        ("Strengths and what works", referral.strengths or ""),
        (
            "Attendance this year",
            f"{referral.attendance_percent}%" if referral.attendance_percent is not None else "Not given",
        ),
        (
            "Suspensions this year",
            str(referral.suspensions_this_year) if referral.suspensions_this_year is not None else "Not given",
        ),
        ("SEN", f"{sen} ({referral.primary_need})" if referral.primary_need else sen),
        ("Voice of the child", referral.voice_of_child or ""),
        ("Voice of the parent or carer", referral.voice_of_parent or ""),
        ("What the school asks the clinic for", referral.asks_of_clinic or ""),
        ("Consent or lawful basis", _consent(referral)),
    ]


def _render(
    session: Session,
    meeting: Meeting,
    *,
    view: View,
    audience: str,
    contributions: list[Contribution],
) -> str:
    held = {i.id for i in held_items(meeting)}
    agenda: list[Slot] = [s for s in slots(meeting) if s.item.id not in held]
    reasons = dict(reason_options(session))
    agencies = {a.id: a for a in session.scalars(select(Agency))}
    chair = session.get(Person, meeting.chair_id) if meeting.chair_id else None
    by_item: dict[int, list[Contribution]] = {}
    for contribution in contributions:
        if contribution.id in view.contribution_ids:
            by_item.setdefault(contribution.agenda_item_id, []).append(contribution)
    concern_ids = [s.item.concern_id for s in agenda if s.item.concern_id]
    concerns = (
        {c.id: c for c in session.scalars(select(PupilOfConcern).where(PupilOfConcern.id.in_(concern_ids)))}
        if concern_ids
        else {}
    )
    invitations = sorted(
        (i for i in meeting.invitations if i.cancelled_at is None),
        key=lambda i: (agencies[i.agency_id].name if i.agency_id else "", i.person.name),
    )
    return (
        _environment()
        .get_template("papers/pack.html")
        .render(
            meeting=meeting,
            series=meeting.series,
            when=london_text(meeting.starts_at, "%A %-d %B %Y at %-I:%M%p"),
            chair=chair,
            audience=audience,
            agenda=agenda,
            held=held_items(meeting) if audience == FULL else [],
            invitations=invitations,
            agencies=agencies,
            reasons=reasons,
            view=view,
            by_item=by_item,
            concerns=concerns,
            item_label=item_label,
            summary=lambda referral: summary(referral, reasons, meeting.meeting_date),
            facts=facts,
            consent=_consent,
            rsvp_words=RSVP_WORDS,
            role_words=ROLE_WORDS,
        )
    )


def _to_pdf(html: str) -> bytes:
    from weasyprint import HTML, URLFetcher  # slow to import; only packs need it

    # Nothing is fetched: no http(s), no file: (the stylesheets are inline), so no text in a pack can make the
    # server request a URL or read a local file. Only data: URLs, which carry their own bytes, are read.
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=("data",))).write_pdf()


def build_pack(session: Session, meeting: Meeting, *, agency: Agency | None = None) -> bytes:
    """The meeting's papers as a PDF: the full pack, or the one for `agency`."""
    contributions = _contributions(session, meeting)
    view = view_for(agency, contributions)
    html = _render(session, meeting, view=view, audience=audience_of(view, agency), contributions=contributions)
    return _to_pdf(html)


def store_pdf(
    session: Session,
    meeting: Meeting,
    *,
    kind: DocumentKind,
    agency: Agency | None,
    version: int,
    filename: str,
    description: str,
    data: bytes,
    now: datetime,
    storage_dir: Path,
) -> Document:
    """Keep a generated PDF (a papers pack or minutes) as a Document of the meeting. The file is written now
    and removed again if the transaction rolls back, so a failed run leaves neither row nor file."""
    document = Document(
        kind=kind,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        content_type=PDF,
        original_filename=filename,
        description=description,
        meeting_id=meeting.id,
        agency_id=agency.id if agency else None,
        papers_version=version,
        created_at=now,
    )
    session.add(document)
    session.flush()
    store_file(session, storage_dir, document, data)
    return document


def per_view(
    agencies: list[Agency], view_of: Callable[[Agency], View], render: Callable[[Agency | None], bytes]
) -> list[tuple[Agency | None, bytes]]:
    """The full rendering, then one per agency; agencies with the same view share one rendering."""
    rendered: dict[View, bytes] = {}
    found: list[tuple[Agency | None, bytes]] = [(None, render(None))]
    for agency in agencies:
        view = view_of(agency)
        if view not in rendered:
            rendered[view] = render(agency)
        found.append((agency, rendered[view]))
    return found


def latest_document(
    session: Session, meeting: Meeting, *, kind: DocumentKind, agency_id: int | None
) -> Document | None:
    """The meeting's latest generated document of `kind` for an agency (None: the full one)."""
    return session.scalar(
        select(Document)
        .where(
            Document.kind == kind,
            Document.meeting_id == meeting.id,
            Document.agency_id.is_(None) if agency_id is None else Document.agency_id == agency_id,
        )
        .order_by(Document.papers_version.desc(), Document.id.desc())
        .limit(1)
    )


def store_pack(
    session: Session, meeting: Meeting, *, agency: Agency | None, data: bytes, now: datetime, storage_dir: Path
) -> Document:
    """Keep a pack as a Document of this papers version."""
    document = store_pdf(
        session,
        meeting,
        kind=DocumentKind.papers_pack,
        agency=agency,
        version=meeting.papers_version,
        filename=pack_filename(meeting, agency),
        description="Papers pack" if agency is None else f"Papers pack for {agency.name}",
        data=data,
        now=now,
        storage_dir=storage_dir,
    )
    audit.record(
        session,
        now=now,
        action="papers.pack_stored",
        record_type="document",
        record_id=document.id,
        meeting_id=meeting.id,
        agency_id=document.agency_id,
        papers_version=meeting.papers_version,
        sha256=document.sha256,
    )
    return document


def pack_filename(meeting: Meeting, agency: Agency | None) -> str:
    suffix = "" if agency is None else f"-{agency.code.lower()}"
    return f"papers-{meeting.meeting_date:%Y-%m-%d}-v{meeting.papers_version}{suffix}.pdf"


def build_and_store_packs(
    session: Session, meeting: Meeting, *, agencies: list[Agency], now: datetime, storage_dir: Path
) -> dict[int | None, Document]:
    """The full pack plus one Document per agency; agencies with the same view share one rendering."""
    contributions = _contributions(session, meeting)

    def render(agency: Agency | None) -> bytes:
        view = view_for(agency, contributions)
        return _to_pdf(
            _render(session, meeting, view=view, audience=audience_of(view, agency), contributions=contributions)
        )

    return {
        agency.id if agency else None: store_pack(
            session, meeting, agency=agency, data=data, now=now, storage_dir=storage_dir
        )
        for agency, data in per_view(agencies, lambda agency: view_for(agency, contributions), render)
    }


def ensure_packs(session: Session, meeting: Meeting, *, now: datetime, storage_dir: Path) -> bool:
    """Papers recorded as sent with no pack stored (the demo's held clinics): build and store them now, for the
    agencies invited. True when they were built."""
    if meeting.papers_sent_at is None or meeting.status == MeetingStatus.cancelled:
        return False
    if latest_document(session, meeting, kind=DocumentKind.papers_pack, agency_id=None) is not None:
        return False
    meeting.papers_version = max(meeting.papers_version, 1)
    invited = {i.agency_id for i in meeting.invitations if i.cancelled_at is None and i.agency_id is not None}
    agencies = list(session.scalars(select(Agency).where(Agency.id.in_(sorted(invited))))) if invited else []
    build_and_store_packs(session, meeting, agencies=agencies, now=now, storage_dir=storage_dir)
    return True


def current_pack(session: Session, meeting: Meeting, *, agency_id: int | None) -> Document | None:
    """The latest pack of the meeting for an agency (None: the full pack), if papers have gone out."""
    return latest_document(session, meeting, kind=DocumentKind.papers_pack, agency_id=agency_id)
