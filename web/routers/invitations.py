"""Meeting invitations on the portal: replying, who is coming, your meetings, and your calendar feed."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf import audit
from caseconf.db import transaction
from caseconf.errors import Invalid, NotFound
from meetings import invitations
from meetings.access import access_meeting, can_on_meeting, invitation_for
from meetings.contributions import items_needing
from meetings.models import MeetingStatus
from notifications.calendar import build_feed
from web.deps import DbSession, SignedIn, client_ip, note_listed, now_of, render, settings_of
from web.routers.auth import too_many_attempts
from web.security import token_attempts_blocked

router = APIRouter()

# What the portal's buttons send, as the iCalendar PARTSTAT a mail client would.
PORTAL_REPLIES = {"accept": "ACCEPTED", "tentative": "TENTATIVE", "decline": "DECLINED"}


def _rsvp_page(request: Request, session, viewer, meeting_id: int, *, status_code=200, error=None, done=False):
    meeting = access_meeting(session, viewer, meeting_id, "rsvp")
    invitation = invitation_for(session, meeting, viewer.person_id)
    open_for_replies = meeting.status != MeetingStatus.cancelled and meeting.starts_at > now_of(request)
    return render(
        request,
        "invitations/rsvp.html",
        status_code=status_code,
        meeting=meeting,
        invitation=invitation,
        open_for_replies=open_for_replies,
        error=error,
        done=done,
    )


@router.get("/meetings/{meeting_id}/rsvp")
def rsvp_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, done: str = "") -> Response:
    return _rsvp_page(request, session, viewer, meeting_id, done=done == "1")


@router.post("/meetings/{meeting_id}/rsvp")
def rsvp(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, reply: str = Form("")) -> Response:
    now = now_of(request)
    try:
        with session.begin():
            meeting = access_meeting(session, viewer, meeting_id, "rsvp")
            if reply not in PORTAL_REPLIES:
                raise Invalid({"reply": "Choose whether you will attend"})
            if meeting.status == MeetingStatus.cancelled or meeting.starts_at <= now:
                raise Invalid({"reply": "This meeting is no longer taking replies"})
            invitations.apply_rsvp(
                session,
                invitation=invitation_for(session, meeting, viewer.person_id),
                partstat=PORTAL_REPLIES[reply],
                now=now,
                source="portal",
                actor_person_id=viewer.person_id,
            )
    except Invalid as exc:
        session.rollback()
        return _rsvp_page(request, session, viewer, meeting_id, status_code=400, error=exc.problems["reply"])
    return RedirectResponse(f"/meetings/{meeting_id}/rsvp?done=1", status_code=303)


@router.get("/meetings/{meeting_id}/attendance")
def attendance(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    meeting = access_meeting(session, viewer, meeting_id, "view")
    summary = invitations.attendance_summary(session, meeting)
    codes = meeting.series.quorum_required_agencies
    names = dict(session.execute(select(Agency.code, Agency.name).where(Agency.code.in_(codes))).tuples().all())
    required_names = [names.get(code, code) for code in codes]
    return render(
        request, "invitations/attendance.html", meeting=meeting, summary=summary, required_names=required_names
    )


@router.get("/my-meetings")
def my_meetings(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    now = now_of(request)
    upcoming = invitations.upcoming_invitations(session, person_id=viewer.person_id, now=now)
    # For an agency's rep: how many items still need their agency's information, while it can be added.
    to_add = {
        i.id: items_needing(session, i.meeting, i.agency_id)
        for i in upcoming
        if i.agency_id is not None
        and i.meeting.starts_at > now
        and can_on_meeting(session, viewer, "contribute", i.meeting)
    }
    note_listed(viewer, "meeting", [i.meeting_id for i in upcoming])
    return render(request, "invitations/my_meetings.html", upcoming=upcoming, to_add=to_add)


@router.get("/calendar")
def calendar_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    person = session.get(Person, viewer.person_id)
    return render(request, "invitations/calendar.html", has_feed=person.calendar_feed_token_hash is not None)


@router.post("/calendar")
def create_feed(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    with session.begin():
        person = session.get(Person, viewer.person_id, with_for_update=True)
        token = invitations.replace_feed_token(session, person=person, now=now_of(request))
    feed_url = f"{settings_of(request).base_url}/calendar/{token}.ics"
    response = render(request, "invitations/calendar_created.html", feed_url=feed_url)
    response.headers["Cache-Control"] = "no-store"  # the address is a secret, shown this once
    return response


@router.post("/calendar/off")
def turn_off_feed(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    with session.begin():
        person = session.get(Person, viewer.person_id, with_for_update=True)
        invitations.turn_off_feed(session, person=person, now=now_of(request))
    return render(request, "invitations/calendar.html", has_feed=False, turned_off=True)


@router.get("/calendar/{token}.ics")
def feed(request: Request, session: DbSession, token: str) -> Response:
    if wait := token_attempts_blocked(request, kind="calendar_feed"):
        return too_many_attempts(request, wait)
    person = invitations.person_for_feed_token(session, token)
    if person is None:
        with transaction(request.app.state.session_factory) as audit_session:
            audit.record(
                audit_session, now=now_of(request), action="calendar_feed.refused", ip_address=client_ip(request)
            )
        raise NotFound("calendar feed")
    now = now_of(request)
    body = build_feed(
        invitations.feed_meetings(session, person_id=person.id, now=now),
        calendar_name=f"{settings_of(request).organisation_name} meetings",
        base_url=settings_of(request).base_url,
        now=now,
    )
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, no-store", "Content-Disposition": 'inline; filename="meetings.ics"'},
    )
