"""Agency contributions: what each invited agency knows about an agenda item, added before the meeting.

One contribution per agency per item. Its text is saved with the edit rule (meetings.edits): a save
names the version it started from, and a stale save gets both texts back instead of overwriting.
Who may read it is the contributing agency's choice: everyone invited, the chair only, or named
agencies (the pack and the portal both read it through meetings.papers.view_for).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency
from caseconf import audit
from caseconf.errors import Invalid
from meetings.agenda import slots
from meetings.edits import EditConflict, save_text
from meetings.models import AgendaItem, AgendaItemKind, AgendaItemStatus, Contribution, Meeting, Visibility
from meetings.papers import may_circulate

MAX_BODY = 10_000


def contribution_for(session: Session, item: AgendaItem, agency: Agency) -> Contribution | None:
    return session.scalar(
        select(Contribution).where(Contribution.agenda_item_id == item.id, Contribution.agency_id == agency.id)
    )


def contributions_on(session: Session, items: list[AgendaItem]) -> list[Contribution]:
    """Every contribution on these items, oldest first (callers filter with papers.view_for)."""
    ids = [i.id for i in items]
    if not ids:
        return []
    return list(
        session.scalars(select(Contribution).where(Contribution.agenda_item_id.in_(ids)).order_by(Contribution.id))
    )


def _check(
    session: Session,
    *,
    item: AgendaItem,
    body: str,
    nothing_known: bool,
    visibility: str,
    visible_to_agencies: list[str],
) -> tuple[str, list[str]]:
    problems: dict[str, str] = {}
    body = (body or "").replace("\x00", "").replace("\r\n", "\n").strip()
    if item.status != AgendaItemStatus.listed:
        problems["item"] = "This item is no longer on the agenda"
    elif item.kind not in CONTRIBUTABLE or (item.referral_id is not None and not may_circulate(item.referral)):
        problems["item"] = "Agencies cannot add information to this item"
    if nothing_known and body:
        problems["body"] = "Either add your agency's information or mark nothing known, not both"
    elif not nothing_known and not body:
        problems["body"] = "Enter your agency's information, or mark that your agency knows nothing"
    elif len(body) > MAX_BODY:
        problems["body"] = f"Information must be {MAX_BODY:,} characters or fewer"
    if visibility not in set(Visibility):
        problems["visibility"] = "Choose who may see this"
    codes: list[str] = []
    if visibility == Visibility.named_agencies:
        known = set(session.scalars(select(Agency.code).where(Agency.active.is_(True))))
        codes = sorted({c.strip().upper() for c in visible_to_agencies or [] if c and c.strip()})
        if not codes:
            problems["visible_to_agencies"] = "Choose at least one agency that may see this"
        elif unknown := [c for c in codes if c not in known]:
            problems["visible_to_agencies"] = f"Unknown agency: {', '.join(unknown)}"
    if problems:
        raise Invalid(problems)
    return body, codes


def save_contribution(
    session: Session,
    *,
    item: AgendaItem,
    agency: Agency,
    author_id: int,
    body: str,
    nothing_known: bool,
    visibility: str,
    visible_to_agencies: list[str] | None = None,
    base_version: int,
    now: datetime,
) -> Contribution:
    """Add or change `agency`'s contribution to `item`. `base_version` is the version the form was
    opened at (0 for a new one). Raises Invalid for bad input and EditConflict when someone saved a
    newer version since (nothing is changed then). Access is the caller's check (meetings.access
    "contribute")."""
    body, codes = _check(
        session,
        item=item,
        body=body,
        nothing_known=nothing_known,
        visibility=visibility,
        visible_to_agencies=visible_to_agencies or [],
    )
    row = session.scalar(
        select(Contribution)
        .where(Contribution.agenda_item_id == item.id, Contribution.agency_id == agency.id)
        .with_for_update()
    )
    created = row is None
    if row is None:
        row = Contribution(
            agenda_item_id=item.id,
            agency_id=agency.id,
            author_id=author_id,
            body="",
            nothing_known=False,
            visibility=Visibility.all_invitees,
            visible_to_agencies=[],
            created_at=now,
            updated_at=now,
            version=0,
        )
    before_version = row.version or 0
    saved = save_text(row, "body", "version", text=body, base_version=base_version)
    settings_changed = (
        row.nothing_known != nothing_known
        or row.visibility != visibility
        or list(row.visible_to_agencies or []) != codes
    )
    if settings_changed and not saved.changed:
        if base_version != before_version:
            raise EditConflict(field="body", theirs=row.body or "", yours=body, version=before_version)
        row.version = before_version + 1
    if not (saved.changed or settings_changed) and not created:
        return row  # the same form sent again: nothing to do
    row.nothing_known = nothing_known
    row.visibility = Visibility(visibility).value
    row.visible_to_agencies = codes
    row.author_id = author_id
    row.updated_at = now
    if created:
        session.add(row)
    session.flush()
    audit.record(
        session,
        now=now,
        action="contribution.added" if created else "contribution.changed",
        actor_person_id=author_id,
        record_type="contribution",
        record_id=row.id,
        agenda_item_id=item.id,
        meeting_id=item.meeting_id,
        agency=agency.code,
        nothing_known=nothing_known,
        visibility=row.visibility,
        visible_to_agencies=codes,
        version=row.version,
    )
    return row


# Items an agency can add its information to: referrals cleared for circulation, and a school's pupils
# of concern or anonymised consultations. Action reviews are updated through the action itself.
CONTRIBUTABLE = frozenset({AgendaItemKind.referral, AgendaItemKind.pupil_of_concern, AgendaItemKind.consultation})


def contributable_items(meeting: Meeting) -> list[AgendaItem]:
    """The meeting's listed items an invited agency may see and add to, in agenda order."""
    return [
        slot.item
        for slot in slots(meeting)
        if slot.item.kind in CONTRIBUTABLE and (slot.item.referral_id is None or may_circulate(slot.item.referral))
    ]


def items_needing(session: Session, meeting: Meeting, agency_id: int) -> tuple[int, int]:
    """(items still without this agency's contribution, items it can contribute to) on the meeting."""
    items = contributable_items(meeting)
    if not items:
        return 0, 0
    done = set(
        session.scalars(
            select(Contribution.agenda_item_id).where(
                Contribution.agenda_item_id.in_([i.id for i in items]), Contribution.agency_id == agency_id
            )
        )
    )
    return sum(1 for i in items if i.id not in done), len(items)
