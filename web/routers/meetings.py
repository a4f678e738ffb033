"""Meetings for those who run or attend them: upcoming meetings, the agenda with the coordinator's
edits, and the papers pack download."""

from __future__ import annotations

import re

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caseconf import audit
from caseconf.errors import Conflict, Invalid
from meetings import agenda, papers
from meetings.access import (
    Principal,
    access_meeting,
    can,
    can_on_meeting,
    can_on_referral,
    invitation_for,
    require,
)
from meetings.documents import document_path
from meetings.models import AgendaItem, AgendaItemStatus, Meeting, MeetingStatus, Referral
from notifications.papers_mail import queue_item_moved
from web.deps import DbSession, SignedIn, client_ip, mail_context, now_of, render, settings_of
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


@router.get("")
def upcoming(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "invitations.view")
    now = now_of(request)
    listed = (
        select(AgendaItem.meeting_id, func.count().label("n"))
        .where(AgendaItem.status == AgendaItemStatus.listed)
        .group_by(AgendaItem.meeting_id)
        .subquery()
    )
    rows = session.execute(
        select(Meeting, func.coalesce(listed.c.n, 0))
        .outerjoin(listed, listed.c.meeting_id == Meeting.id)
        .where(Meeting.ends_at > now)
        .order_by(Meeting.starts_at, Meeting.id)
    ).all()
    visible = [(m, n) for m, n in rows if can_on_meeting(session, viewer, "view", m)]
    return render(request, "meetings/index.html", meetings=visible, labels=STATUS_LABELS)


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
    slots = agenda.slots(meeting)
    return render(
        request,
        "meetings/meeting.html",
        status_code=status_code,
        meeting=meeting,
        series=meeting.series,
        slots=slots,
        held={item.id for item in papers.held_items(meeting)} if coordinate else set(),
        label=agenda.item_label,
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
        if can_on_meeting(session, viewer, "coordinate", meeting):
            pack = papers.current_pack(session, meeting, agency_id=None)
        else:
            invitation = invitation_for(session, meeting, viewer.person_id)
            agency_id = invitation.agency_id if invitation else None
            pack = papers.current_pack(session, meeting, agency_id=agency_id) if agency_id else None
        if pack is None:
            return render(request, "meetings/no_papers.html", status_code=404, meeting=meeting)
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
