"""The append-only audit log: who did or saw what, to which record, when and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from caseconf.db import Base, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The actor is kept as an id and a label snapshot so the log outlives changes to people.
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), index=True)
    actor_label: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(80), index=True)
    record_type: Mapped[str | None] = mapped_column(String(60))
    record_id: Mapped[str | None] = mapped_column(String(60))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditImmutable(Exception):
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_change(_mapper, _connection, target: AuditEvent) -> None:
    raise AuditImmutable(f"audit event {target.id} cannot be changed or deleted")


def record(
    session: Session,
    *,
    now: datetime,
    action: str,
    actor_person_id: int | None = None,
    actor_label: str = "",
    record_type: str | None = None,
    record_id: int | str | None = None,
    ip_address: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Write one audit row in the caller's transaction."""
    event_row = AuditEvent(
        occurred_at=now,
        actor_person_id=actor_person_id,
        actor_label=actor_label,
        action=action,
        record_type=record_type,
        record_id=None if record_id is None else str(record_id),
        ip_address=ip_address,
        detail=detail,
    )
    session.add(event_row)
    return event_row
