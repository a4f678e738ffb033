"""The signed-in home page: one section for each role the person holds."""

from dataclasses import dataclass
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agencies.models import Role
from caseconf.clock import london_today
from meetings import actions as action_service
from meetings import minutes
from meetings.access import Principal, can_on_meeting, require
from meetings.models import Meeting, MeetingStatus
from web.deps import DbSession, SignedIn, now_of, render

router = APIRouter()

# The order sections appear in when someone holds several roles.
SECTION_ORDER = (
    Role.admin,
    Role.eip,
    Role.coordinator,
    Role.agency_rep,
    Role.school_referrer,
    Role.data_protection_officer,
)
# What is left to do on a meeting's minutes, by the meeting's status.
MINUTES_TO_DO = {
    MeetingStatus.held: "write",
    MeetingStatus.minutes_draft: "approve",
    MeetingStatus.minutes_approved: "circulate",
}


@dataclass(frozen=True)
class MinutesToDo:
    meeting: Meeting
    step: str  # write, approve or circulate
    due_on: date
    overdue: bool


def minutes_to_do(session: Session, viewer: Principal, *, today: date) -> list[MinutesToDo]:
    """Meetings the viewer may see whose minutes are still to be written, approved or circulated."""
    found = session.scalars(
        select(Meeting).where(Meeting.status.in_(list(MINUTES_TO_DO))).order_by(Meeting.starts_at, Meeting.id)
    )
    rows = []
    for meeting in found:
        if not can_on_meeting(session, viewer, "view", meeting):
            continue
        due = minutes.minutes_due_on(meeting)
        rows.append(MinutesToDo(meeting, MINUTES_TO_DO[MeetingStatus(meeting.status)], due, today > due))
    return rows


@router.get("/")
def home(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "home.view")
    sections = [role.value for role in SECTION_ORDER if role in viewer.roles]
    today = london_today(now_of(request))
    follow_up = Role.coordinator in viewer.roles
    overdue = 0
    if follow_up:
        query = action_service.tracker_query(viewer, action_service.TrackerFilters(status="overdue"), today=today)
        overdue = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return render(
        request,
        "home/index.html",
        sections=sections,
        minutes_to_do=minutes_to_do(session, viewer, today=today) if follow_up else [],
        overdue_actions=overdue,
    )
