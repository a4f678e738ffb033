"""A series' core membership: each agency's named rep, with an optional deputy.

The invitations sweep follows these rows: a new member is invited to the meetings already invited, a
removed one is sent a cancellation, and a deputy is invited only when their member cannot come.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person
from caseconf import audit
from caseconf.errors import Invalid, NotFound
from meetings.models import MeetingSeries, SeriesMember


def core_members(series: MeetingSeries) -> list[SeriesMember]:
    """The series' members in agency name order."""
    return sorted(series.members, key=lambda m: (m.agency.name.lower(), m.id))


def active_agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.name)))


def active_people_by_organisation(session: Session) -> list[tuple[str, list[Person]]]:
    """Active people grouped by organisation (A to Z), each group by name: the choices for a member or deputy."""
    groups: dict[str, list[Person]] = {}
    people = session.scalars(select(Person).where(Person.active.is_(True)).order_by(Person.name, Person.id))
    for person in people:
        groups.setdefault(person.organisation.strip() or "No organisation recorded", []).append(person)
    return sorted(groups.items(), key=lambda group: group[0].lower())


def get_member(series: MeetingSeries, member_id: int) -> SeriesMember:
    member = next((m for m in series.members if m.id == member_id), None)
    if member is None:
        raise NotFound(f"member {member_id} of series {series.id}")
    return member


def _active_person(session: Session, person_id: int | None) -> Person | None:
    person = session.get(Person, person_id) if person_id and 0 < person_id < 2**31 else None
    return person if person is not None and person.active else None


def _check_deputy(session: Session, member_person_id: int | None, deputy_id: int | None) -> Person | None:
    """The deputy, or None when none is chosen; Invalid at deputy_id when the choice will not do."""
    if deputy_id is None:
        return None
    deputy = _active_person(session, deputy_id)
    if deputy is None:
        raise Invalid({"deputy_id": "Choose an active person as the deputy, or no deputy"})
    if deputy.id == member_person_id:
        raise Invalid({"deputy_id": "The deputy must be someone other than the member"})
    return deputy


def add_member(
    session: Session,
    *,
    series: MeetingSeries,
    agency_id: int | None,
    person_id: int | None,
    deputy_id: int | None = None,
    now: datetime,
    actor_id: int | None,
) -> SeriesMember:
    """Name `person_id` as the agency's member of the series. One member per agency, each person once."""
    problems: dict[str, str] = {}
    agency = session.get(Agency, agency_id) if agency_id and 0 < agency_id < 2**31 else None
    if agency is None or not agency.active:
        problems["agency_id"] = "Choose an active agency"
    else:
        holder = next((m for m in series.members if m.agency_id == agency.id), None)
        if holder is not None:
            problems["agency_id"] = (
                f"{agency.name} already has a member in this series ({holder.person.name}): change or remove them first"
            )
    person = _active_person(session, person_id)
    if person is None:
        problems["person_id"] = "Choose an active person as the member"
    elif any(m.person_id == person.id for m in series.members):
        problems["person_id"] = f"{person.name} is already a member of this series"
    try:
        deputy = _check_deputy(session, person.id if person else None, deputy_id)
    except Invalid as exc:
        problems |= exc.problems
        deputy = None
    if problems:
        raise Invalid(problems)
    member = SeriesMember(series_id=series.id, agency=agency, person=person, deputy=deputy)
    series.members.append(member)
    session.flush()
    audit.record(
        session,
        now=now,
        action="series.member_added",
        actor_person_id=actor_id,
        record_type="meeting_series",
        record_id=series.id,
        member_id=member.id,
        agency=agency.code,
        person_id=person.id,
        deputy_id=deputy.id if deputy else None,
    )
    return member


def remove_member(session: Session, *, series: MeetingSeries, member_id: int, now: datetime, actor_id: int | None):
    """Take a member (and their deputy) off the series; the invitations sweep withdraws their invitations."""
    member = get_member(series, member_id)
    detail = {
        "member_id": member.id,
        "agency": member.agency.code,
        "person_id": member.person_id,
        "deputy_id": member.deputy_id,
    }
    series.members.remove(member)  # delete-orphan: the row goes at flush
    session.flush()
    audit.record(
        session,
        now=now,
        action="series.member_removed",
        actor_person_id=actor_id,
        record_type="meeting_series",
        record_id=series.id,
        **detail,
    )


def set_deputy(
    session: Session,
    *,
    series: MeetingSeries,
    member_id: int,
    deputy_id: int | None,
    now: datetime,
    actor_id: int | None,
) -> SeriesMember:
    """Give a member a new deputy, or none (deputy_id None)."""
    member = get_member(series, member_id)
    deputy = _check_deputy(session, member.person_id, deputy_id)
    if (deputy.id if deputy else None) == member.deputy_id:
        raise Invalid(
            {
                "deputy_id": f"{deputy.name} is already the deputy: choose someone else"
                if deputy
                else f"{member.person.name} has no deputy already: choose one"
            }
        )
    before = member.deputy_id
    member.deputy = deputy
    session.flush()
    audit.record(
        session,
        now=now,
        action="series.deputy_changed",
        actor_person_id=actor_id,
        record_type="meeting_series",
        record_id=series.id,
        member_id=member.id,
        agency=member.agency.code,
        person_id=member.person_id,
        before=before,
        after=member.deputy_id,
    )
    return member
