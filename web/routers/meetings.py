"""Meetings for those who run or attend them: upcoming meetings, the agenda with the coordinator's
edits, and the papers pack download."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caseconf import audit
from caseconf.errors import Conflict, Invalid
from meetings import agenda, minutes, papers
from meetings.access import (
    Principal,
    access_meeting,
    can,
    can_on_meeting,
    can_on_referral,
    invitation_for,
    require,
)
from meetings.consent import may_download
from meetings.documents import document_path
from meetings.models import AgendaItem, AgendaItemStatus, Meeting, MeetingStatus, Minute, Referral
from notifications.papers_mail import queue_item_moved
from web.deps import DbSession, SignedIn, client_ip, mail_context, note_listed, now_of, render, settings_of
from web.routers.contributions import meeting_page_extras
from web.routers.documents import content_disposition

router = APIRouter(prefix="/meetings")

STATUS_LABELS = {
    MeetingStatus.planned: "Planned",
    MeetingStatus.agenda_frozen: "Agenda closed",
    MeetingStatus.papers_sent: "Papers sent",
    MeetingStatus.held: "Held",
    MeetingStatus.minutes_draft: "Minutes in draft",
    MeetingStatus.minutes_approved: "Minutes approved",
    MeetingStatus.minutes_circulated: "Minutes circulated",
    MeetingStatus.cancelled: "Cancelled",
}
DONE = {
    "moved": "The agenda order has been changed.",
    "added": "The referral has been added to the agenda.",
    "removed": "The item has been taken off the agenda.",
    "deferred": "The item has been moved to the next meeting.",
}
RECENT = timedelta(weeks=8)  # past meetings listed with their minutes
# Items a meeting had: those still listed and, once it has met, those discussed.
ON_THE_AGENDA = (AgendaItemStatus.listed, AgendaItemStatus.discussed)


@router.get("")
def upcoming(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    """Meetings to come, then the recent past ones (last RECENT) with where their minutes are."""
    require(viewer, "invitations.view")
    now = now_of(request)
    counted = (
        select(AgendaItem.meeting_id, func.count().label("n"))
        .where(AgendaItem.status.in_(ON_THE_AGENDA))
        .group_by(AgendaItem.meeting_id)
        .subquery()
    )
    rows = session.execute(
        select(Meeting, func.coalesce(counted.c.n, 0))
        .outerjoin(counted, counted.c.meeting_id == Meeting.id)
        .where(Meeting.ends_at > now - RECENT)
        .order_by(Meeting.starts_at, Meeting.id)
    ).all()
    visible = [(m, n) for m, n in rows if can_on_meeting(session, viewer, "view", m)]
    coming = [(m, n) for m, n in visible if m.ends_at > now]
    past = [(m, n) for m, n in reversed(visible) if m.ends_at <= now]
    written = {
        minute.meeting_id: minute
        for minute in session.scalars(select(Minute).where(Minute.meeting_id.in_([m.id for m, _ in past])))
    }
    note_listed(viewer, "meeting", [m.id for m, _ in visible])
    return render(
        request,
        "meetings/index.html",
        meetings=coming,
        past=[(m, n, _minutes_words(m, written.get(m.id))) for m, n in past],
        readable={m.id for m, _ in past if minutes.may_read(session, viewer, m, written.get(m.id))},
        recent_weeks=RECENT.days // 7,
        labels=STATUS_LABELS,
    )


def _minutes_words(meeting: Meeting, minute: Minute | None) -> str:
    if meeting.status == MeetingStatus.cancelled:
        return "Cancelled"
    if minute is None:
        return "To be written" if minutes.has_met(meeting) else "Not recorded as held"
    return minutes.MINUTES_STATUS_WORDS.get(minute.status, minute.status)


def _meeting_page(
    request: Request,
    session: Session,
    viewer: Principal,
    meeting: Meeting,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    now = now_of(request)
    coordinate = can_on_meeting(session, viewer, "coordinate", meeting)
    editable = coordinate and meeting.status in agenda.EDITABLE and meeting.starts_at > now
    met = minutes.has_met(meeting)
    slots = minutes.held_slots(meeting) if met else agenda.slots(meeting)
    return render(
        request,
        "meetings/meeting.html",
        status_code=status_code,
        meeting=meeting,
        series=meeting.series,
        slots=slots,
        held={item.id for item in papers.held_items(meeting)} if coordinate else set(),
        label=(lambda item: minutes.listed_as(session, item)) if met else agenda.item_label,
        met=met,
        decisions=minutes.decision_labels(session, meeting) if met else {},
        labels=STATUS_LABELS,
        editable=editable,
        addable=agenda.addable_referrals(session, meeting, now=now) if editable else [],
        has_next=agenda.next_meeting(session, meeting) is not None,
        capacity=meeting.series.capacity_items,
        can_papers=can_on_meeting(session, viewer, "papers", meeting),
        can_rsvp=can_on_meeting(session, viewer, "rsvp", meeting),
        can_minute=can_on_meeting(session, viewer, "minute", meeting) and meeting.status != MeetingStatus.planned,
        can_manage=can(viewer, "meetings.manage"),
        may_view=lambda referral: can_on_referral(viewer, "view", referral),
        errors=errors or {},
        typed=typed or {},
        done=DONE.get(done or ""),
        **meeting_page_extras(session, viewer, meeting),
    )


@router.get("/{meeting_id}")
def meeting_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, done: str = "") -> Response:
    meeting = access_meeting(session, viewer, meeting_id, "view")
    return _meeting_page(request, session, viewer, meeting, done=done)


def _edit(request: Request, session: Session, viewer: Principal, meeting_id: int, change, typed: dict[str, str]):
    """Run one agenda change in its own transaction; show the page again with the problem if refused."""
    try:
        with session.begin():
            meeting = access_meeting(session, viewer, meeting_id, "coordinate")
            done = change(meeting)
    except (Invalid, Conflict) as exc:
        session.rollback()
        problems = exc.problems if isinstance(exc, Invalid) else {"agenda": f"{exc}. Nothing was changed."}
        if isinstance(problems, list):
            problems = {"agenda": "; ".join(problems)}
        meeting = access_meeting(session, viewer, meeting_id, "view")
        code = 400 if isinstance(exc, Invalid) else 409
        return _meeting_page(request, session, viewer, meeting, status_code=code, errors=problems, typed=typed)
    return RedirectResponse(f"/meetings/{meeting_id}?done={done}#agenda", status_code=303)


@router.post("/{meeting_id}/items/{item_id}/move")
def move_item(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int, direction: str = Form("")
) -> Response:
    def change(meeting):
        agenda.move_item(
            session,
            meeting=meeting,
            item_id=item_id,
            direction=direction,
            now=now_of(request),
            actor_id=viewer.person_id,
        )
        return "moved"

    return _edit(request, session, viewer, meeting_id, change, {})


@router.post("/{meeting_id}/items/{item_id}/remove")
def remove_item(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, item_id: int, to: str = Form("")
) -> Response:
    def change(meeting):
        if to not in ("next", "off"):
            raise Invalid({f"to-{item_id}": "Choose whether to move the item to the next meeting or take it off"})
        moved = agenda.remove_item(
            session,
            meeting=meeting,
            item_id=item_id,
            now=now_of(request),
            actor_id=viewer.person_id,
            to_next_meeting=to == "next",
        )
        if moved:
            queue_item_moved(session, moved=moved, now=now_of(request), mail=mail_context(request), why="coordinator")
        return "deferred" if moved else "removed"

    return _edit(request, session, viewer, meeting_id, change, {f"to-{item_id}": to})


@router.post("/{meeting_id}/items")
def add_item(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, referral_id: str = Form("")
) -> Response:
    def change(meeting):
        referral = session.get(Referral, int(referral_id)) if re.fullmatch(r"[0-9]{1,9}", referral_id) else None
        if referral is None:
            raise Invalid({"referral_id": "Choose a referral to add"})
        agenda.add_referral(session, meeting=meeting, referral=referral, now=now_of(request), actor_id=viewer.person_id)
        return "added"

    return _edit(request, session, viewer, meeting_id, change, {"referral_id": referral_id})


@router.get("/{meeting_id}/papers")
def download_papers(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    """The viewer's pack: the full one for those who run the meeting, else their agency's."""
    settings = settings_of(request)
    with session.begin():
        meeting = access_meeting(session, viewer, meeting_id, "papers")
        papers.ensure_packs(session, meeting, now=now_of(request), storage_dir=settings.documents_dir)
        if can_on_meeting(session, viewer, "coordinate", meeting):
            pack = papers.current_pack(session, meeting, agency_id=None)
        else:
            invitation = invitation_for(session, meeting, viewer.person_id)
            agency_id = invitation.agency_id if invitation else None
            pack = papers.current_pack(session, meeting, agency_id=agency_id) if agency_id else None
        if pack is None:
            return render(request, "meetings/no_papers.html", status_code=404, meeting=meeting)
        if not may_download(session, viewer, pack):
            return render(request, "data_protection/document_withdrawn.html", status_code=410, document=pack)
        path = document_path(settings.documents_dir, pack)
        if not path.is_file():
            raise RuntimeError(f"papers pack {pack.id} has no stored file")
        audit.record(
            session,
            now=now_of(request),
            action="papers.downloaded",
            actor_person_id=viewer.person_id,
            actor_label=viewer.email,
            record_type="document",
            record_id=pack.id,
            ip_address=client_ip(request),
            meeting_id=meeting.id,
            papers_version=pack.papers_version,
        )
    return FileResponse(
        path,
        media_type="application/pdf",
        headers={
            "Content-Disposition": content_disposition(pack.original_filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
