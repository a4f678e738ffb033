"""Referral rules shared by every path that creates referrals."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from meetings.models import ReferenceCounter

REFERENCE_PREFIX = "VPHC"


def issue_reference(session: Session, *, year: int, prefix: str = REFERENCE_PREFIX) -> str:
    """The next reference of the year, e.g. VPHC-2026-0042.

    The counter row is locked (on PostgreSQL) for the rest of the transaction, so two
    submissions never share a number; the first of a year creates it.
    """
    counter = session.scalar(
        select(ReferenceCounter)
        .where(ReferenceCounter.prefix == prefix, ReferenceCounter.year == year)
        .with_for_update()
    )
    if counter is None:
        counter = ReferenceCounter(prefix=prefix, year=year, last_number=0)
        session.add(counter)
    counter.last_number += 1
    session.flush()
    return f"{prefix}-{year}-{counter.last_number:04d}"
