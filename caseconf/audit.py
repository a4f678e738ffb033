"""The append-only audit log: who did or saw what, to which record, when and from where.

Services write rows for what they do (`record`). Reads are noted as they happen (`note_access` from the
access module's loaders, `note_listed` from list pages) into a collector that lives for one web request;
the web app writes the notes after the response (`flush_accesses`), one row per record, in a transaction
of its own, unless the request already wrote a row naming that record.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Select, String, and_, event, func, inspect, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from caseconf.clock import LONDON
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
    """Write one audit row in the caller's transaction. During a web request, the request's address, method,
    path and browser are filled in where the caller gave none."""
    collector = _collector.get()
    if collector is not None:
        ip_address = ip_address if ip_address is not None else collector.ip_address
        for name, value in collector.request.items():
            if value and name not in detail:
                detail[name] = value
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
    if collector is not None:
        collector.written.append(event_row)
    return event_row


# --- Reads noted during one request --------------------------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Note:
    record_type: str
    record_id: str | None  # None: a list, its ids in `ids`
    verb: str
    actor_person_id: int | None
    actor_label: str
    ids: list[str] = field(default_factory=list)
    # Read through another record (a referral listed on a meeting whose papers, minutes or cases were shown):
    # how (`via`) and through which meeting. Such a note is written only if the response showed something.
    via: str = ""
    meeting_id: int | str | None = None


@dataclass
class AccessCollector:
    """What one request looked at and which rows it wrote. Mutated in place (never re-set), so notes made in
    a copy of the context (a sync endpoint's thread, a middleware's task) reach the request's collector."""

    ip_address: str | None = None
    request: dict[str, str] = field(default_factory=dict)  # method, path, user_agent
    notes: list[Note] = field(default_factory=list)
    written: list[AuditEvent] = field(default_factory=list)


_collector: ContextVar[AccessCollector | None] = ContextVar("caseconf_audit_collector", default=None)


def start_collecting(
    *, ip_address: str | None = None, method: str = "", path: str = "", user_agent: str = ""
) -> tuple[AccessCollector, Token]:
    """Start noting for one web request (the audit middleware); rows written meanwhile get its address."""
    request = {"method": method.upper(), "path": path, "user_agent": user_agent[:300]}
    collector = AccessCollector(ip_address=ip_address, request=request)
    return collector, _collector.set(collector)


def stop_collecting(token: Token) -> None:
    _collector.reset(token)


def note_access(
    record_type: str,
    record_id: int | str,
    verb: str,
    *,
    actor_person_id: int | None = None,
    actor_label: str = "",
) -> None:
    """Note that this request read (or is about to change) one record. Outside a web request, nothing."""
    collector = _collector.get()
    if collector is not None:
        collector.notes.append(Note(record_type, str(record_id), verb, actor_person_id, actor_label))


def note_read_via(
    record_type: str,
    record_ids: Sequence[int | str],
    via: str,
    *,
    meeting_id: int | str | None = None,
    actor_person_id: int | None = None,
    actor_label: str = "",
) -> None:
    """Note that this request showed these records through another one: the referrals listed on a meeting whose
    papers, minutes, contributions page or room were shown (`via` says which). Each gets a row of its own, so
    the look appears on each referral's access log; none if the response showed nothing (a redirect, a 404),
    nor for a change answered without the page (a form post that succeeded, an autosave)."""
    collector = _collector.get()
    if collector is not None:
        for record_id in dict.fromkeys(str(i) for i in record_ids):
            collector.notes.append(
                Note(record_type, record_id, via, actor_person_id, actor_label, via=via, meeting_id=meeting_id)
            )


def note_listed(
    record_type: str,
    ids: list[int] | list[str],
    *,
    actor_person_id: int | None = None,
    actor_label: str = "",
) -> None:
    """Note that this request showed a list of records (their ids go in the row's detail)."""
    collector = _collector.get()
    if collector is not None:
        listed = [str(i) for i in ids]
        collector.notes.append(Note(record_type, None, "list", actor_person_id, actor_label, listed))


def _kept(row: AuditEvent) -> bool:
    """Whether a row written during the request is in the database (its transaction was not rolled back)."""
    return inspect(row).key is not None


def _covers(row: AuditEvent, record_type: str, record_id: str) -> bool:
    if row.record_type == record_type and row.record_id == record_id:
        return True
    named = (row.detail or {}).get(f"{record_type}_id")
    return named is not None and str(named) == record_id


def shown(status: int | None) -> bool:
    """Whether a response with this status showed a page or a file: a success, or a form shown again with its
    problems (400, 409, 422). Not a redirect, a refusal, a 'not found' or a failure."""
    return status is not None and (200 <= status < 300 or status in (400, 409, 422))


def flush_accesses(
    session: Session,
    collector: AccessCollector,
    *,
    now: datetime,
    method: str,
    path: str,
    status: int | None,
    ip_address: str | None,
    user_agent: str | None,
    actor_person_id: int | None = None,
    actor_label: str = "",
) -> list[AuditEvent]:
    """Write the request's notes: one row per record read or changed, one per kind of list shown."""
    if status == 403:
        return []  # refused: nothing was shown or changed, and the refusal has its own row
    kept = [row for row in collector.written if _kept(row)]
    merged: dict[tuple[str, str | None], Note] = {}
    verbs: dict[tuple[str, str | None], list[str]] = {}
    direct: set[tuple[str, str | None]] = set()  # records looked at themselves, not only through a meeting
    vias: dict[tuple[str, str | None], list[str]] = {}
    for note in collector.notes:
        key = (note.record_type, note.record_id)
        if key not in merged:
            merged[key] = Note(note.record_type, note.record_id, note.verb, note.actor_person_id, note.actor_label)
            verbs[key] = []
            vias[key] = []
        if note.verb not in verbs[key]:
            verbs[key].append(note.verb)
        if note.via:
            if note.via not in vias[key]:
                vias[key].append(note.via)
            merged[key].meeting_id = merged[key].meeting_id or note.meeting_id
        else:
            direct.add(key)
        merged[key].ids.extend(i for i in note.ids if i not in merged[key].ids)
    rows = []
    reading = method.upper() in SAFE_METHODS
    for key, note in merged.items():
        if note.record_id is not None and any(_covers(row, note.record_type, note.record_id) for row in kept):
            continue  # the request's own row already names this record
        if key not in direct and not (shown(status) and (reading or status >= 400)):
            # Seen only through a meeting, and the response showed nothing of it (a redirect, a 404), or it
            # was a change that did not show the page again (an autosave in the meeting room).
            continue
        if note.record_id is None:
            action = f"{note.record_type}.listed"
        elif key not in direct:
            action = f"{note.record_type}.viewed"  # a read through the meeting's papers, minutes or room
        else:
            action = f"{note.record_type}.{'viewed' if reading else 'change_requested'}"
        detail: dict[str, Any] = {"method": method.upper(), "path": path, "status": status, "verbs": verbs[key]}
        if note.record_id is None:
            detail["ids"] = note.ids
        if vias[key]:
            detail["via"] = ", ".join(vias[key])
            if note.meeting_id is not None:
                detail["meeting_id"] = note.meeting_id
        if user_agent:
            detail["user_agent"] = user_agent[:300]
        rows.append(
            record(
                session,
                now=now,
                action=action,
                actor_person_id=note.actor_person_id if note.actor_person_id is not None else actor_person_id,
                actor_label=note.actor_label or actor_label,
                record_type=note.record_type,
                record_id=note.record_id,
                ip_address=ip_address,
                **detail,
            )
        )
    return rows


# --- Reading the log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilters:
    """What to show. Dates are London dates, both ends included; text filters match exactly, except
    `person`, which matches any part of the actor's label (their email address)."""

    from_date: date | None = None
    to_date: date | None = None
    person: str = ""
    action: str = ""
    record_type: str = ""
    record_id: str = ""
    # Rows about any of these records: [(record_type, [record ids])] (a referral's log: it, its documents...).
    records: Sequence[tuple[str, Sequence[str]]] = ()


def london_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LONDON)


def log_query(filters: LogFilters) -> Select:
    query = select(AuditEvent)
    if filters.from_date is not None:
        query = query.where(AuditEvent.occurred_at >= london_day_start(filters.from_date))
    if filters.to_date is not None:
        query = query.where(AuditEvent.occurred_at < london_day_start(filters.to_date + timedelta(days=1)))
    if filters.person:
        pattern = "%" + filters.person.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
        query = query.where(func.lower(AuditEvent.actor_label).like(pattern))
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.record_type:
        query = query.where(AuditEvent.record_type == filters.record_type)
    if filters.record_id:
        query = query.where(AuditEvent.record_id == filters.record_id)
    if filters.records:
        wanted = [
            and_(AuditEvent.record_type == kind, AuditEvent.record_id.in_([str(i) for i in ids]))
            for kind, ids in filters.records
            if ids
        ]
        query = query.where(or_(*wanted)) if wanted else query.where(AuditEvent.id.is_(None))
    return query


def count_log(session: Session, filters: LogFilters) -> int:
    return session.scalar(select(func.count()).select_from(log_query(filters).subquery())) or 0


def read_log(session: Session, filters: LogFilters, *, limit: int | None = None, offset: int = 0) -> list[AuditEvent]:
    """Audit rows matching the filters, newest first."""
    query = log_query(filters).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def action_names(session: Session) -> list[str]:
    """Every action the log holds, for a filter's choices."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
