"""Actions agreed at meetings, followed to done: updates, the chasing ledger, tracker queries.

Must not import meetings.agenda (agenda imports this module to bring open actions back for review).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from meetings.models import AgendaItem, Meeting


def add_action_reviews(session: Session, meeting: Meeting, *, now: datetime) -> list[AgendaItem]:
    """At the agenda freeze: list the series' open actions for review. (Filled in with the tracker.)"""
    return []
