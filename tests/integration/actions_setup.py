"""Arranging actions for the action, chasing, reply and blockage tests: the demo borough, one of its held
clinics marked as ended, and an action agreed there."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.demo_pupils import PERSONAS
from meetings.models import Action, ActionStatus, AgendaItem, Meeting
from notifications.chasing import actions_due_follow_up, follow_up_action
from notifications.emails import MailContext
from notifications.models import OutboundMessage

APP = "clinic@kestrelford.example.org"
MAIL = MailContext(
    base_url="http://127.0.0.1:8000",
    mail_domain="kestrelford.example.org",
    team_name="Kestrelford Inclusion Team",
    app_address=APP,
    reply_secret="a-test-signing-key-of-more-than-32-characters",
)
HELD = date(2026, 11, 12)  # a demo clinic already held, with a decision on each item
LOADED_AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
CAMHS_REP = "camhs.rep@kestrelford.example.org"


def at(day: date, hour: int = 9) -> datetime:
    """A moment on a London day."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=LONDON).astimezone(UTC)


def child_names() -> set[str]:
    names = set()
    for persona in PERSONAS:
        for key in ("legal_first_name", "legal_surname", "preferred_name"):
            if persona.child.get(key):
                names.add(persona.child[key])
    return names


def load(session_factory) -> None:
    with transaction(session_factory) as session:
        load_demo(session, now=LOADED_AT)


def make_action(
    session_factory,
    *,
    due_on: date,
    now: datetime,
    agency: str = "CAMHS",
    owner_email: str | None = CAMHS_REP,
    meeting_on: date = HELD,
    ended: bool = True,
    description: str | None = None,
    involves_school: bool = False,
) -> int:
    """An open action agreed at the demo clinic on `meeting_on` about its first referral item; the meeting is
    marked ended (so its actions go out) unless `ended` is False. The wording names the child, as minutes
    sometimes do: no email may repeat it."""
    with transaction(session_factory) as session:
        meeting = session.scalar(select(Meeting).where(Meeting.meeting_date == meeting_on))
        if ended and meeting.ended_at is None:
            meeting.ended_at = meeting.ends_at
        item = session.scalar(
            select(AgendaItem)
            .where(AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None))
            .order_by(AgendaItem.id)
        )
        first_name = item.referral.child.preferred_name or item.referral.child.legal_first_name
        owner = session.scalar(select(Person).where(Person.email == owner_email)) if owner_email else None
        action = Action(
            agenda_item_id=item.id,
            meeting_id=meeting.id,
            referral_id=item.referral_id,
            description=description or f"Offer {first_name} a CAMHS appointment and tell the school the date.",
            owner_agency_id=session.scalar(select(Agency.id).where(Agency.code == agency)),
            owner_person_id=owner.id if owner else None,
            due_on=due_on,
            status=ActionStatus.open,
            created_at=now,
            involves_school=involves_school,
        )
        session.add(action)
        session.flush()
        return action.id


def sweep(session_factory, now: datetime, *, only: int | None = None) -> list[tuple[int, str]]:
    """One run of the action sweep as the flow runs it: what is due, then each step in a transaction of its own."""
    with transaction(session_factory) as session:
        due = actions_due_follow_up(session, now=now)
    taken = []
    for action_id in due:
        if only is not None and action_id != only:
            continue
        with transaction(session_factory) as session:
            step = follow_up_action(session, action_id, now=now, mail=MAIL)
        if step is not None:
            taken.append((action_id, step))
    return taken


def emails_about(session, action_id: int) -> list[OutboundMessage]:
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.idempotency_key.like(f"action:{action_id}:%"))
            .order_by(OutboundMessage.id)
        )
    )
