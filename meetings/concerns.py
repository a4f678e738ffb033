"""Team Around the School: pupils of concern a school puts on its next meeting without a clinic referral.

Must not import meetings.agenda (agenda imports this module to list the concerns at the freeze).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from meetings.models import AgendaItem, Meeting


def add_concerns(session: Session, meeting: Meeting, *, now: datetime) -> list[AgendaItem]:
    """At a Team Around the School freeze: list the school's open pupils of concern. (Filled in with TAS.)"""
    return []
