"""Who may see or do what. Every page, download, PDF and email builder asks here; default deny.

Rules are listed in RULES: an action is allowed when the principal holds one of the roles named for it.
Rules on particular records (a referral, a meeting, an action) follow, each with its own function.
docs/access.md lists every role against every resource and action; tests/web/test_access_table.py
walks that table against the running app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from agencies.models import Agency, Person, Role, School, SharingGroup
from caseconf import audit
from caseconf.errors import Forbidden, NotFound
from meetings.models import (
    Action,
    AgendaItem,
    AgendaItemStatus,
    Invitation,
    Meeting,
    MeetingStatus,
    Minute,
    PupilOfConcern,
    Referral,
    ReferralStatus,
)


@dataclass(frozen=True)
class Grant:
    role: Role
    area_id: int | None = None
    school_id: int | None = None
    agency_id: int | None = None


@dataclass(frozen=True)
class Principal:
    person_id: int
    name: str
    email: str
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    # When the request is made: grants that last for a time (an agency's view of a meeting's cases) need it,
    # and are refused without it.
    now: datetime | None = None

    @property
    def roles(self) -> set[Role]:
        return {grant.role for grant in self.grants}

    def scopes(self, role: Role) -> list[Grant]:
        return [grant for grant in self.grants if grant.role == role]

    @property
    def school_ids(self) -> frozenset[int]:
        return frozenset(g.school_id for g in self.scopes(Role.school_referrer) if g.school_id is not None)

    @property
    def area_ids(self) -> frozenset[int]:
        return frozenset(g.area_id for g in self.scopes(Role.eip) if g.area_id is not None)

    @property
    def agency_ids(self) -> frozenset[int]:
        return frozenset(g.agency_id for g in self.scopes(Role.agency_rep) if g.agency_id is not None)


def principal_for(person: Person, *, now: datetime | None = None) -> Principal:
    return Principal(
        person_id=person.id,
        name=person.name,
        email=person.email,
        grants=tuple(
            Grant(Role(g.role), area_id=g.area_id, school_id=g.school_id, agency_id=g.agency_id) for g in person.grants
        ),
        now=now,
    )


def _actor(principal: Principal | None) -> dict:
    """Who to name in the audit row for a record this principal was let at."""
    return {"actor_person_id": principal.person_id, "actor_label": principal.email} if principal else {}


# Actions any signed-in person may take, whatever their roles (even none yet).
SIGNED_IN_ACTIONS = frozenset({"home.view"})

# action -> the roles that may take it. Anything not listed is refused.
RULES: dict[str, frozenset[Role]] = {
    "admin.view": frozenset({Role.admin}),
    "directory.manage": frozenset({Role.admin}),
    "triage.view": frozenset({Role.eip}),
    "clinic.coordinate": frozenset({Role.coordinator, Role.eip}),
    "referral.create": frozenset({Role.school_referrer}),
    "referrals.list": frozenset({Role.school_referrer}),
    "invitations.view": frozenset({Role.agency_rep, Role.eip, Role.coordinator}),
    "meetings.manage": frozenset({Role.admin, Role.coordinator}),
    "audit.view": frozenset({Role.data_protection_officer, Role.admin}),
    "retention.view": frozenset({Role.data_protection_officer, Role.admin}),  # reports name record ids only
    # A subject access export holds every section of a child's records: the data protection officer's alone.
    "subject_access.export": frozenset({Role.data_protection_officer}),
    # The tracker lists only the actions each may see (can_on_action); the page is open to all who may own some.
    # An admin runs the system, not the cases: no actions (their wording may name a child).
    "actions.track": frozenset({Role.coordinator, Role.eip, Role.agency_rep, Role.school_referrer}),
    "blockages.view": frozenset({Role.admin, Role.coordinator, Role.eip}),
    "concerns.add": frozenset({Role.school_referrer}),
}


def can(principal: Principal | None, action: str) -> bool:
    if principal is None:
        return False
    if action in SIGNED_IN_ACTIONS:
        return True
    allowed = RULES.get(action)
    return bool(allowed and principal.roles & allowed)


def require(principal: Principal | None, action: str) -> None:
    if not can(principal, action):
        raise Forbidden(action)


# The sharing matrix (notes/referral-form.md): the restricted sections of a referral and the sharing groups
# of the agencies that may read them. Every other section goes to each agency invited to discuss it.
RESTRICTED_SECTIONS: dict[str, frozenset[SharingGroup]] = {
    "health": frozenset({SharingGroup.safeguarding, SharingGroup.health}),
    "community_safety": frozenset({SharingGroup.safeguarding, SharingGroup.police}),
}


def may_see_section(sharing_group: str, section: str) -> bool:
    allowed = RESTRICTED_SECTIONS.get(section)
    return allowed is None or sharing_group in allowed


def has_consent_or_basis(referral: Referral) -> bool:
    if referral.consent_status == "given":
        return bool(referral.consent_given_by and referral.consent_given_on)
    return bool(referral.lawful_basis and referral.lawful_basis_reason and referral.lawful_basis_decided_by)


def may_share(referral: Referral | None) -> bool:
    """A child's case goes to other agencies only with consent or a recorded lawful basis, never once withdrawn."""
    return referral is not None and referral.consent_withdrawn_at is None and has_consent_or_basis(referral)


def agency_view_ends(meeting: Meeting) -> datetime:
    """An agency's view of a meeting's cases ends the series' access window after the meeting, or after its
    minutes went round if that was later."""
    session = object_session(meeting)
    circulated = (
        session.scalar(select(Minute.circulated_at).where(Minute.meeting_id == meeting.id)) if session else None
    )
    last = max(meeting.ends_at, circulated) if circulated else meeting.ends_at
    return last + timedelta(days=meeting.series.agency_access_days)


def agency_view_open(meeting: Meeting, now: datetime | None) -> bool:
    """From the papers' circulation until agency_view_ends; never for a cancelled meeting."""
    return (
        now is not None
        and meeting.status != MeetingStatus.cancelled
        and meeting.papers_sent_at is not None
        and meeting.papers_sent_at <= now <= agency_view_ends(meeting)
    )


@dataclass(frozen=True)
class CaseView:
    """What of one referral a person may read: every section (the school, those who run the clinic), or those
    the sharing groups of the agencies they represent at a meeting discussing it allow, until `until`."""

    full: bool
    sharing_groups: frozenset[str] = frozenset()
    until: datetime | None = None

    def shows(self, section: str) -> bool:
        return self.full or any(may_see_section(group, section) for group in self.sharing_groups)


def agency_listings(principal: Principal, referral: Referral) -> list[tuple[Meeting, str]]:
    """The meetings at which this agency rep may read the referral now, with the sharing group they represent:
    it is on the agenda, they are invited for one of their agencies, its papers have gone out and the agency
    view is open."""
    session = object_session(referral)
    if session is None or principal.now is None or not principal.agency_ids or not may_share(referral):
        return []
    rows = session.execute(
        select(Meeting, Agency.sharing_group)
        .join(AgendaItem, AgendaItem.meeting_id == Meeting.id)
        .join(Invitation, Invitation.meeting_id == Meeting.id)
        .join(Agency, Agency.id == Invitation.agency_id)
        .where(
            AgendaItem.referral_id == referral.id,
            AgendaItem.status != AgendaItemStatus.removed,
            Invitation.person_id == principal.person_id,
            Invitation.cancelled_at.is_(None),
            Invitation.agency_id.in_(sorted(principal.agency_ids)),
        )
    ).all()
    return [(meeting, group) for meeting, group in rows if agency_view_open(meeting, principal.now)]


def case_view(principal: Principal | None, referral: Referral) -> CaseView | None:
    """What of the referral the principal may read; None: nothing at all."""
    if principal is None:
        return None
    submitted = referral.status != ReferralStatus.draft
    if (
        referral.school_id in principal.school_ids
        or (referral.school.area_id in principal.area_ids and submitted)
        or (Role.coordinator in principal.roles and submitted)
    ):
        return CaseView(full=True)
    listings = agency_listings(principal, referral)
    if not listings:
        return None
    return CaseView(
        full=False,
        sharing_groups=frozenset(group for _, group in listings),
        until=max(agency_view_ends(meeting) for meeting, _ in listings),
    )


# What each role may do to one referral. A school sees its own; an EIP their area's; a coordinator any that
# has left the school (they run the clinics); an agency rep one listed at a meeting they are invited to, while
# the agency view is open (case_view). Reading includes its documents.
REFERRAL_ACTIONS = ("view", "edit_draft", "answer", "withdraw", "triage", "download")


def can_on_referral(principal: Principal | None, action: str, referral: Referral) -> bool:
    if principal is None or action not in REFERRAL_ACTIONS:
        return False
    if action in ("view", "download"):
        return case_view(principal, referral) is not None
    own_school = referral.school_id in principal.school_ids
    own_area = referral.school.area_id in principal.area_ids
    submitted = referral.status != ReferralStatus.draft
    if action == "edit_draft":
        return own_school and referral.status == ReferralStatus.draft
    if action == "answer":
        return own_school and referral.status == ReferralStatus.information_requested
    if action == "withdraw":
        return own_school
    return own_area and submitted  # triage


# Actions that change the referral: its row is locked until the transaction ends, so two people
# deciding at once are taken one after the other (the second then finds the new status).
CHANGING_ACTIONS = frozenset({"edit_draft", "answer", "withdraw", "triage"})


def access_referral(session: Session, principal: Principal | None, referral_id: int, action: str) -> Referral:
    """Load a referral for `action`, or refuse: NotFound if there is none, Forbidden if not allowed."""
    if not 0 < referral_id < 2**31:
        raise NotFound(f"referral {referral_id}")
    referral = session.get(Referral, referral_id, with_for_update=action in CHANGING_ACTIONS)
    if referral is None:
        raise NotFound(f"referral {referral_id}")
    if not can_on_referral(principal, action, referral):
        raise Forbidden(f"referral.{action}", record_type="referral", record_id=referral.id)
    audit.note_access("referral", referral.id, action, **_actor(principal))
    return referral


def can_read_access_log(principal: Principal | None, referral: Referral) -> bool:
    """Who may read a referral's access log: the data protection officer, an admin, the EIP for its area once
    it has been submitted, and the chair of a meeting that lists it."""
    if principal is None:
        return False
    if principal.roles & {Role.data_protection_officer, Role.admin}:
        return True
    if referral.status != ReferralStatus.draft and referral.school.area_id in principal.area_ids:
        return True
    session = object_session(referral)
    return session is not None and bool(
        session.scalar(
            select(AgendaItem.id)
            .join(Meeting, Meeting.id == AgendaItem.meeting_id)
            .where(
                AgendaItem.referral_id == referral.id,
                AgendaItem.status != AgendaItemStatus.removed,
                Meeting.chair_id == principal.person_id,
            )
            .limit(1)
        )
    )


# What each role may do to one meeting. The coordinator runs every clinic; an EIP those serving their
# area (a borough-wide series serves every area); an invitee sees the meeting they are invited to.
# minute: the live meeting room and the draft minutes (chair, minute-taker and those who run the clinic);
# approve: the chair alone; contribute: an invited agency's rep before the meeting is held;
# minutes: reading circulated minutes (those invited, and those who run it).
# cases: the pages that show the listed cases (what agencies contributed); papers: the pack, which an invitee
# may also ask for before it exists (and is told there is none yet).
MEETING_ACTIONS = ("view", "papers", "cases", "coordinate", "rsvp", "minute", "approve", "contribute", "minutes")
ROOM_CLOSED = frozenset({MeetingStatus.cancelled, MeetingStatus.minutes_circulated})
BEFORE_THE_MEETING = frozenset({MeetingStatus.planned, MeetingStatus.agenda_frozen, MeetingStatus.papers_sent})


def invitation_for(session: Session, meeting: Meeting, person_id: int) -> Invitation | None:
    """The person's live invitation to the meeting (not one withdrawn from them)."""
    invitation = session.scalar(
        select(Invitation).where(Invitation.meeting_id == meeting.id, Invitation.person_id == person_id)
    )
    return invitation if invitation is not None and invitation.cancelled_at is None else None


def can_on_meeting(session: Session, principal: Principal | None, action: str, meeting: Meeting) -> bool:
    if principal is None or action not in MEETING_ACTIONS:
        return False
    area_id = meeting.series.area_id
    runs_it = Role.coordinator in principal.roles or (
        Role.eip in principal.roles and (area_id is None or area_id in principal.area_ids)
    )
    runs_it = runs_it or meeting.chair_id == principal.person_id
    if action == "coordinate":
        return runs_it
    if action == "minute":
        return (runs_it or meeting.minute_taker_id == principal.person_id) and meeting.status not in ROOM_CLOSED
    if action == "approve":
        return meeting.chair_id == principal.person_id and meeting.status != MeetingStatus.cancelled
    invitation = invitation_for(session, meeting, principal.person_id)
    invited = invitation is not None
    # Those invited read the cases, papers and minutes while the agency view is open: from the papers'
    # circulation until the access window closes (a cancelled meeting's papers are withdrawn). A school invited
    # to its own Team Around the School reads them as an agency does.
    view_open = invited and agency_view_open(meeting, principal.now)
    if action == "contribute":
        return (
            view_open
            and invitation.agency_id is not None
            and meeting.status in BEFORE_THE_MEETING
            and meeting.started_at is None
        )
    if action == "rsvp":
        return invited and meeting.status != MeetingStatus.cancelled
    if action == "papers":
        return runs_it or view_open or (invited and meeting.papers_sent_at is None)
    if action in ("cases", "minutes"):
        return runs_it or view_open
    return runs_it or invited  # view


def access_meeting(session: Session, principal: Principal | None, meeting_id: int, action: str) -> Meeting:
    """Load a meeting for `action`, or refuse: NotFound if there is none, Forbidden if not allowed."""
    if not 0 < meeting_id < 2**31:
        raise NotFound(f"meeting {meeting_id}")
    meeting = session.get(Meeting, meeting_id, with_for_update=action in ("coordinate", "minute", "approve"))
    if meeting is None:
        raise NotFound(f"meeting {meeting_id}")
    if not can_on_meeting(session, principal, action, meeting):
        raise Forbidden(f"meeting.{action}", record_type="meeting", record_id=meeting.id)
    audit.note_access("meeting", meeting.id, action, **_actor(principal))
    if action in CASE_READS:
        note_cases_read(session, principal, meeting, CASE_READS[action])
    return meeting


# Meeting actions that show the listed cases, and how the look is named on each referral's access log. The
# minutes page and PDF, and the live meeting room, are let at through "view" and call note_cases_read too.
CASE_READS = {"papers": "papers", "cases": "contributions", "minutes": "minutes", "minute": "room"}


def listed_referral_ids(session: Session, meeting_id: int) -> list[int]:
    """The referrals on a meeting's agenda (not removed from it)."""
    return list(
        session.scalars(
            select(AgendaItem.referral_id)
            .where(
                AgendaItem.meeting_id == meeting_id,
                AgendaItem.referral_id.is_not(None),
                AgendaItem.status != AgendaItemStatus.removed,
            )
            .order_by(AgendaItem.referral_id)
            .distinct()
        )
    )


def note_cases_read(session: Session, principal: Principal | None, meeting: Meeting, via: str) -> None:
    """Note each referral listed on the meeting as read `via` its papers, contributions page, minutes or room,
    so that the look appears on each one's access log (one row per referral per request)."""
    audit.note_read_via(
        "referral", listed_referral_ids(session, meeting.id), via, meeting_id=meeting.id, **_actor(principal)
    )


# What each may do to one action: its owner, their agency's reps, the chair of the meeting that agreed it,
# and those who run clinics for its area update it; the school sees those that involve it. An action's
# school is its referral's, else its pupil of concern's (Team Around the School), else its meeting series'
# school, else the school that owns it; its area is that school's, else its meeting series' (a borough-wide
# series with no school serves every area).
ACTION_VERBS = ("view", "update")


@dataclass(frozen=True)
class ActionPlace:
    school_id: int | None
    area_id: int | None  # None: every area
    chair_id: int | None  # the chair of the meeting that agreed it


def action_place(action: Action) -> ActionPlace:
    """Where an action belongs: its school, its area and the chair of the meeting that agreed it."""
    session = object_session(action)
    referral = action.referral
    meeting = None
    if session is not None:
        if action.meeting_id is not None:
            meeting = session.get(Meeting, action.meeting_id)
        elif action.agenda_item_id is not None:
            item = session.get(AgendaItem, action.agenda_item_id)
            meeting = item.meeting if item is not None else None
    series = meeting.series if meeting is not None else None
    school_id = None
    if referral is not None:
        school_id = referral.school_id
    elif action.concern_id is not None and session is not None:
        concern = session.get(PupilOfConcern, action.concern_id)
        school_id = concern.school_id if concern is not None else None
    if school_id is None and series is not None:
        school_id = series.school_id
    if school_id is None:
        school_id = action.owner_school_id
    school = session.get(School, school_id) if school_id is not None and session is not None else None
    area_id = school.area_id if school is not None else (series.area_id if series is not None else None)
    return ActionPlace(school_id, area_id, meeting.chair_id if meeting is not None else None)


def can_on_action(principal: Principal | None, verb: str, action: Action) -> bool:
    if principal is None or verb not in ACTION_VERBS:
        return False
    agency_ids = {g.agency_id for g in principal.scopes(Role.agency_rep) if g.agency_id is not None}
    place = action_place(action)
    may_update = (
        action.owner_person_id == principal.person_id
        or (action.owner_agency_id is not None and action.owner_agency_id in agency_ids)
        or Role.coordinator in principal.roles
        or (place.chair_id is not None and place.chair_id == principal.person_id)
        or (Role.eip in principal.roles and (place.area_id is None or place.area_id in principal.area_ids))
    )
    if verb == "update":
        return may_update
    return (
        may_update
        or (action.involves_school and place.school_id is not None and place.school_id in principal.school_ids)
    )


def access_action(session: Session, principal: Principal | None, action_id: int, verb: str) -> Action:
    """Load an action for `verb`, or refuse: NotFound if there is none, Forbidden if not allowed."""
    if not 0 < action_id < 2**31:
        raise NotFound(f"action {action_id}")
    action = session.get(Action, action_id, with_for_update=verb == "update")
    if action is None:
        raise NotFound(f"action {action_id}")
    if not can_on_action(principal, verb, action):
        raise Forbidden(f"action.{verb}", record_type="action", record_id=action.id)
    audit.note_access("action", action.id, verb, **_actor(principal))
    return action
