"""Agency contributions on the portal: an invited agency's rep reads each item their agency may see, adds
what their agency knows (or that it knows nothing), chooses who may read it, and reads what other agencies
have shared with them. Plain forms; a stale form shows both texts instead of overwriting."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency
from caseconf import audit
from caseconf.db import transaction
from caseconf.errors import Forbidden, Invalid, NotFound
from meetings import contributions, papers
from meetings.access import Principal, access_meeting, can_on_meeting, invitation_for
from meetings.agenda import slots as agenda_slots
from meetings.concerns import concern_of
from meetings.edits import EditConflict
from meetings.models import Meeting, PupilOfConcern, Visibility
from meetings.referrals import reason_options
from web.deps import DbSession, SignedIn, client_ip, now_of, render

router = APIRouter(prefix="/meetings")
NO_AGENCIES: list[str] = []

VISIBILITY_WORDS = {
    Visibility.all_invitees: "Everyone invited to the meeting",
    Visibility.chair_only: "The chair and coordinator only",
    Visibility.named_agencies: "Only the agencies I choose",
}


def _agency_of(session: Session, viewer: Principal, meeting: Meeting) -> Agency:
    """The agency the viewer is invited for; those invited for no agency have nothing to add here."""
    invitation = invitation_for(session, meeting, viewer.person_id)
    if invitation is None or invitation.agency_id is None:
        raise Forbidden("meeting.contribute")
    return session.get(Agency, invitation.agency_id)


def _still_open(request: Request, session: Session, viewer: Principal, meeting: Meeting) -> bool:
    """Contributions close when the meeting room is opened or the meeting's start time has come."""
    return can_on_meeting(session, viewer, "contribute", meeting) and meeting.starts_at > now_of(request)


def _page(
    request: Request,
    session: Session,
    viewer: Principal,
    meeting_id: int,
    *,
    status_code: int = 200,
    errors: dict[int, dict[str, str]] | None = None,
    typed: dict[int, dict] | None = None,
    conflicts: dict[int, EditConflict] | None = None,
    done: int | None = None,
) -> Response:
    # The page shows the listed cases: open to an invited agency only while its view of the meeting is.
    meeting = access_meeting(session, viewer, meeting_id, "cases")
    agency = _agency_of(session, viewer, meeting)
    items = contributions.contributable_items(meeting)
    every = contributions.contributions_on(session, items)
    view = papers.view_for(agency, every)
    own = {c.agenda_item_id: c for c in every if c.agency_id == agency.id}
    shared: dict[int, list] = {}
    for contribution in every:
        if contribution.id in view.contribution_ids and contribution.agency_id != agency.id:
            shared.setdefault(contribution.agenda_item_id, []).append(contribution)
    agencies = list(session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.name)))
    referral_ids = [i.referral_id for i in items if i.referral_id]
    with transaction(request.app.state.session_factory) as audit_session:
        audit.record(
            audit_session,
            now=now_of(request),
            action="meeting.contributions_viewed",
            actor_person_id=viewer.person_id,
            actor_label=viewer.email,
            record_type="meeting",
            record_id=meeting.id,
            ip_address=client_ip(request),
            agency=agency.code,
            referral_ids=referral_ids,
        )
    errors = errors or {}
    all_errors = [
        {"text": message, "href": f"#{field}-{item_id}"}
        for item_id, fields in errors.items()
        for field, message in fields.items()
    ]
    return render(
        request,
        "contributions/index.html",
        status_code=status_code,
        meeting=meeting,
        agency=agency,
        items=items,
        concerns={i.id: concern_of(session, i) for i in items if i.concern_id},
        own=own,
        shared=shared,
        view=view,
        agencies=agencies,
        agency_names={a.id: a.name for a in agencies} | {agency.id: agency.name},
        reasons=dict(reason_options(session)),
        facts=papers.facts,
        open=_still_open(request, session, viewer, meeting),
        visibility_words=VISIBILITY_WORDS,
        errors=errors,
        all_errors=all_errors,
        typed=typed or {},
        conflicts=conflicts or {},
        done=done,
    )


@router.get("/{meeting_id}/contributions")
def contributions_page(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, done: int | None = None
) -> Response:
    return _page(request, session, viewer, meeting_id, done=done)


@router.post("/{meeting_id}/items/{item_id}/contribution")
def save(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    meeting_id: int,
    item_id: int,
    body: str = Form(""),
    nothing_known: str = Form(""),
    visibility: str = Form(""),
    agencies: Annotated[list[str], Form()] = NO_AGENCIES,
    base_version: str = Form("0"),
) -> Response:
    typed = {
        "body": body,
        "nothing_known": nothing_known == "yes",
        "visibility": visibility,
        "agencies": list(agencies),
        "base_version": base_version,
    }
    return _save(request, session, viewer, meeting_id, item_id, typed)


def _save(request: Request, session: Session, viewer: Principal, meeting_id: int, item_id: int, typed: dict):
    base = typed["base_version"]
    base_version = int(base) if base.isdigit() and len(base) < 9 else -1
    try:
        with session.begin():
            meeting = access_meeting(session, viewer, meeting_id, "contribute")
            if not _still_open(request, session, viewer, meeting):
                raise Forbidden("meeting.contribute")
            agency = _agency_of(session, viewer, meeting)
            item = next((i for i in contributions.contributable_items(meeting) if i.id == item_id), None)
            if item is None:
                raise NotFound(f"agenda item {item_id} on meeting {meeting_id}")
            contributions.save_contribution(
                session,
                item=item,
                agency=agency,
                author_id=viewer.person_id,
                body=typed["body"],
                nothing_known=typed["nothing_known"],
                visibility=typed["visibility"],
                visible_to_agencies=typed["agencies"],
                base_version=base_version,
                now=now_of(request),
            )
    except Invalid as exc:
        session.rollback()
        problems = exc.problems if isinstance(exc.problems, dict) else {"body": "; ".join(exc.problems)}
        problems = {("body" if field == "item" else field): message for field, message in problems.items()}
        return _page(
            request, session, viewer, meeting_id, status_code=400, errors={item_id: problems}, typed={item_id: typed}
        )
    except EditConflict as conflict:
        session.rollback()
        # The form goes back at the stored version: sending it again keeps the text in the box on purpose.
        typed = typed | {"base_version": str(conflict.version)}
        return _page(
            request,
            session,
            viewer,
            meeting_id,
            status_code=409,
            errors={
                item_id: {
                    "body": "Someone else from your agency saved this since you opened the page. Check both "
                    "texts, keep what is right in the box and save again"
                }
            },
            typed={item_id: typed},
            conflicts={item_id: conflict},
        )
    return RedirectResponse(f"/meetings/{meeting_id}/contributions?done={item_id}#item-{item_id}", status_code=303)


def meeting_page_extras(session: Session, viewer: Principal, meeting: Meeting) -> dict:
    """What the meeting page shows about contributions: a link for an invited agency's rep, and every
    agency's information, item by item, for those who run the meeting (the chair and coordinator)."""
    invitation = invitation_for(session, meeting, viewer.person_id)
    runs_it = can_on_meeting(session, viewer, "coordinate", meeting)
    items = [slot.item for slot in agenda_slots(meeting)]
    by_item: dict[int, list] = {}
    if runs_it:
        for contribution in contributions.contributions_on(session, items):
            by_item.setdefault(contribution.agenda_item_id, []).append(contribution)
    concern_ids = [i.concern_id for i in items if i.concern_id]
    return {
        "contribution_link": invitation is not None and invitation.agency_id is not None,
        "contributions_by_item": by_item,
        "agency_names": dict(session.execute(select(Agency.id, Agency.name)).tuples().all()) if by_item else {},
        "concern_labels": dict(
            session.execute(select(PupilOfConcern.id, PupilOfConcern.label).where(PupilOfConcern.id.in_(concern_ids)))
            .tuples()
            .all()
        )
        if concern_ids
        else {},
        "visibility_words": VISIBILITY_WORDS,
    }
