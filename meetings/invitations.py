"""Who is invited to a meeting, their replies, and whether the replies make a quorum."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, Role, RoleGrant
from caseconf import audit
from caseconf.errors import Invalid
from meetings.models import Invitation, InviteeRole, Meeting, MeetingKind, MeetingStatus, Rsvp

# A member who cannot come (or hands the meeting on) has their deputy invited in their place.
NOT_COMING = frozenset({Rsvp.declined, Rsvp.delegated})

PARTSTATS = {
    "ACCEPTED": Rsvp.accepted,
    "TENTATIVE": Rsvp.tentative,
    "DECLINED": Rsvp.declined,
    "DELEGATED": Rsvp.delegated,
    "NEEDS-ACTION": Rsvp.needs_action,
}


@dataclass(frozen=True)
class Invitee:
    person: Person
    agency: Agency | None
    role: InviteeRole
    deputy_for_id: int | None = None


def invitations_of(session: Session, meeting: Meeting) -> list[Invitation]:
    return list(session.scalars(select(Invitation).where(Invitation.meeting_id == meeting.id).order_by(Invitation.id)))


def invitees(session: Session, meeting: Meeting) -> list[Invitee]:
    """Everyone who should have an invitation now, each once, in the first role that applies."""
    series = meeting.series
    wanted: dict[int, Invitee] = {}

    def add(person: Person | None, agency: Agency | None, role: InviteeRole, deputy_for_id: int | None = None):
        if person is not None and person.active and person.id not in wanted:
            wanted[person.id] = Invitee(person, agency, role, deputy_for_id)

    add(meeting.chair, None, InviteeRole.chair)
    minute_taker = meeting.minute_taker_id or series.coordinator_id
    add(session.get(Person, minute_taker) if minute_taker else None, None, InviteeRole.minute_taker)
    replies = {i.person_id: i.rsvp for i in invitations_of(session, meeting) if i.cancelled_at is None}
    for member in sorted(series.members, key=lambda m: m.id):
        add(member.person, member.agency, InviteeRole.member)
        if member.deputy is not None and replies.get(member.person_id) in NOT_COMING:
            add(member.deputy, member.agency, InviteeRole.deputy, member.person_id)
    if series.kind == MeetingKind.team_around_school and series.school_id is not None:
        referrers = session.scalars(
            select(Person)
            .join(RoleGrant, RoleGrant.person_id == Person.id)
            .where(RoleGrant.role == Role.school_referrer, RoleGrant.school_id == series.school_id)
            .order_by(Person.id)
        )
        for person in referrers:
            add(person, None, InviteeRole.school)
    return list(wanted.values())


@dataclass
class SyncResult:
    added: list[int] = field(default_factory=list)  # person ids
    withdrawn: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.withdrawn or self.returned)


def sync_invitations(session: Session, meeting: Meeting, *, now: datetime) -> SyncResult:
    """Bring the meeting's invitations in line with who should be invited.

    Nobody is added to a cancelled meeting. A withdrawn invitation keeps its row (cancelled_at set) so
    that person can be sent a cancellation; someone who returns is treated as not yet sent anything.
    """
    result = SyncResult()
    if meeting.status == MeetingStatus.cancelled:
        return result
    # Deputies depend on replies, and replies on who is invited: settle the members first.
    wanted = {i.person.id: i for i in invitees(session, meeting)}
    existing = {i.person_id: i for i in invitations_of(session, meeting)}
    for person_id, invitee in wanted.items():
        invitation = existing.get(person_id)
        if invitation is None:
            session.add(
                Invitation(
                    meeting_id=meeting.id,
                    person_id=person_id,
                    agency_id=invitee.agency.id if invitee.agency else None,
                    role=invitee.role,
                    rsvp=Rsvp.needs_action,
                    deputy_for_id=invitee.deputy_for_id,
                )
            )
            result.added.append(person_id)
            continue
        if invitation.cancelled_at is not None:
            invitation.cancelled_at = None
            invitation.sequence_sent = None
            invitation.rsvp, invitation.rsvp_at, invitation.rsvp_source = Rsvp.needs_action, None, None
            result.returned.append(person_id)
        invitation.role = invitee.role
        invitation.agency_id = invitee.agency.id if invitee.agency else None
        invitation.deputy_for_id = invitee.deputy_for_id
    for person_id, invitation in existing.items():
        if person_id not in wanted and invitation.cancelled_at is None:
            invitation.cancelled_at = now
            result.withdrawn.append(person_id)
    if result.returned:
        # They were sent a cancellation at this SEQUENCE; a higher one makes their calendar take the
        # invitation back (and gives the email a key of its own).
        meeting.sequence += 1
    session.flush()
    if result.changed:
        audit.record(
            session,
            now=now,
            action="meeting.invitations_synced",
            record_type="meeting",
            record_id=meeting.id,
            added=result.added,
            withdrawn=result.withdrawn,
            returned=result.returned,
            sequence=meeting.sequence,
        )
    return result


def apply_rsvp(
    session: Session,
    *,
    invitation: Invitation,
    partstat: str,
    now: datetime,
    source: str,
    delegated_to: str | None = None,
    actor_person_id: int | None = None,
) -> Rsvp:
    """Record a reply (an iCalendar PARTSTAT such as ACCEPTED) on the invitation."""
    rsvp = PARTSTATS.get((partstat or "").strip().upper())
    if rsvp is None:
        raise Invalid({"partstat": f"{partstat!r} is not a reply we understand"})
    if invitation.cancelled_at is not None:
        raise Invalid({"invitation": "This invitation was withdrawn"})
    before = invitation.rsvp
    invitation.rsvp = rsvp
    invitation.rsvp_at = now
    invitation.rsvp_source = source
    invitation.delegated_to = ((delegated_to or "")[:320] or None) if rsvp == Rsvp.delegated else None
    audit.record(
        session,
        now=now,
        action="invitation.rsvp",
        actor_person_id=actor_person_id if actor_person_id is not None else invitation.person_id,
        record_type="invitation",
        record_id=invitation.id,
        meeting_id=invitation.meeting_id,
        before=before,
        after=rsvp.value,
        source=source,
    )
    return rsvp


@dataclass(frozen=True)
class AgencyAttendance:
    agency: Agency
    accepted: list[Person]
    tentative: list[Person]
    declined: list[Person]
    no_reply: list[Person]

    @property
    def coming(self) -> bool:
        return bool(self.accepted)


@dataclass(frozen=True)
class AttendanceSummary:
    meeting: Meeting
    chair: Person | None
    chair_rsvp: Rsvp | None
    agencies: list[AgencyAttendance]
    others: list[Invitation]  # chair, minute-taker, school: invited but not for an agency
    quorum_met: bool
    reasons: list[str]  # why quorum is not met; empty when it is
    missing_agencies: list[Agency]  # required agencies with nobody accepted

    @property
    def chair_accepted(self) -> bool:
        return self.chair_rsvp == Rsvp.accepted

    @property
    def agencies_coming(self) -> int:
        return sum(1 for a in self.agencies if a.coming)


def attendance_summary(session: Session, meeting: Meeting) -> AttendanceSummary:
    """Who is coming, per agency, and whether the accepted replies meet the series' quorum rule.

    Only an acceptance counts: a tentative reply is not a promise to come.
    """
    series = meeting.series
    live = [i for i in invitations_of(session, meeting) if i.cancelled_at is None]
    by_agency: dict[int, list[Invitation]] = {}
    for invitation in live:
        if invitation.agency_id is not None:
            by_agency.setdefault(invitation.agency_id, []).append(invitation)
    agencies = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_(list(by_agency))))}
    rows = []
    for agency_id, invitations in by_agency.items():

        def people(*states: Rsvp, of=invitations) -> list[Person]:
            return [i.person for i in of if i.rsvp in states]

        rows.append(
            AgencyAttendance(
                agency=agencies[agency_id],
                accepted=people(Rsvp.accepted),
                tentative=people(Rsvp.tentative),
                declined=people(Rsvp.declined, Rsvp.delegated),
                no_reply=people(Rsvp.needs_action),
            )
        )
    rows.sort(key=lambda row: row.agency.name)
    chair_invitation = next((i for i in live if i.person_id == meeting.chair_id), None)
    chair_rsvp = Rsvp(chair_invitation.rsvp) if chair_invitation else None

    reasons = []
    if series.quorum_chair_required and chair_rsvp != Rsvp.accepted:
        reasons.append("the chair has not accepted" if meeting.chair_id else "the meeting has no chair")
    coming = sum(1 for row in rows if row.coming)
    if coming < series.quorum_min_agencies:
        reasons.append(f"only {coming} agencies have accepted; {series.quorum_min_agencies} are needed")
    accepted_codes = {row.agency.code for row in rows if row.coming}
    required = [code for code in series.quorum_required_agencies if code not in accepted_codes]
    missing = list(session.scalars(select(Agency).where(Agency.code.in_(required)).order_by(Agency.name)))
    for agency in missing:
        reasons.append(f"nobody from {agency.name} has accepted")
    known = {a.code for a in missing}
    reasons.extend(f"nobody from {code} has accepted" for code in required if code not in known)
    return AttendanceSummary(
        meeting=meeting,
        chair=meeting.chair,
        chair_rsvp=chair_rsvp,
        agencies=rows,
        others=[i for i in live if i.agency_id is None],
        quorum_met=not reasons,
        reasons=reasons,
        missing_agencies=missing,
    )


def upcoming_invitations(session: Session, *, person_id: int, now: datetime) -> list[Invitation]:
    """A person's live invitations to meetings that have not started, soonest first."""
    return list(
        session.scalars(
            select(Invitation)
            .join(Meeting, Meeting.id == Invitation.meeting_id)
            .where(
                Invitation.person_id == person_id,
                Invitation.cancelled_at.is_(None),
                Meeting.starts_at > now,
                Meeting.status != MeetingStatus.cancelled,
            )
            .order_by(Meeting.starts_at)
        )
    )


def feed_meetings(session: Session, *, person_id: int, now: datetime, days_back: int = 60) -> list[Meeting]:
    """The meetings in a person's calendar feed: those they are invited to, recent and coming (cancelled too)."""
    return list(
        session.scalars(
            select(Meeting)
            .join(Invitation, Invitation.meeting_id == Meeting.id)
            .where(
                Invitation.person_id == person_id,
                Invitation.cancelled_at.is_(None),
                Meeting.starts_at > now - timedelta(days=days_back),
            )
            .order_by(Meeting.starts_at)
        )
    )


def _feed_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def replace_feed_token(session: Session, *, person: Person, now: datetime) -> str:
    """A new secret for the person's calendar feed; any earlier feed address stops working."""
    token = secrets.token_urlsafe(32)
    replaced = person.calendar_feed_token_hash is not None
    person.calendar_feed_token_hash = _feed_hash(token)
    audit.record(
        session,
        now=now,
        action="calendar_feed.replaced" if replaced else "calendar_feed.created",
        actor_person_id=person.id,
        actor_label=person.email,
        record_type="person",
        record_id=person.id,
    )
    return token


def turn_off_feed(session: Session, *, person: Person, now: datetime) -> bool:
    """Stop the person's calendar feed address working; False if they had none."""
    if person.calendar_feed_token_hash is None:
        return False
    person.calendar_feed_token_hash = None
    audit.record(
        session,
        now=now,
        action="calendar_feed.turned_off",
        actor_person_id=person.id,
        actor_label=person.email,
        record_type="person",
        record_id=person.id,
    )
    return True


def person_for_feed_token(session: Session, token: str) -> Person | None:
    """The person whose feed this is; only the token's SHA-256 is stored, so a lookup is by hash."""
    if not token or len(token) > 100:
        return None
    person = session.scalar(select(Person).where(Person.calendar_feed_token_hash == _feed_hash(token)))
    return person if person is not None and person.active else None
