"""Case and meeting tables. Statuses are explicit state machines with a history table each."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from agencies.models import Agency, Area, Person, School
from caseconf.db import Base, UTCDateTime, one_of


class ReferralStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    information_requested = "information_requested"
    accepted = "accepted"
    signposted = "signposted"
    declined = "declined"
    discussed = "discussed"
    actions_open = "actions_open"
    review = "review"
    closed = "closed"
    withdrawn = "withdrawn"


class Urgency(StrEnum):
    routine = "routine"
    priority = "priority"


class ConsentStatus(StrEnum):
    given = "given"
    refused = "refused"
    not_sought = "not_sought"


class SenStatus(StrEnum):
    none = "none"
    sen_support = "sen_support"
    ehcp = "ehcp"


class ExclusionStatus(StrEnum):
    none = "none"
    at_risk = "at_risk"
    excluded = "excluded"


class GraduatedResponseStage(StrEnum):
    s1 = "s1"
    s2 = "s2"
    s3 = "s3"
    s4 = "s4"
    s5 = "s5"
    s6a = "s6a"
    s6b = "s6b"
    exclusion = "exclusion"


class MeetingKind(StrEnum):
    hot_clinic = "hot_clinic"
    team_around_school = "team_around_school"


class MeetingStatus(StrEnum):
    planned = "planned"
    agenda_frozen = "agenda_frozen"
    papers_sent = "papers_sent"
    held = "held"
    minutes_draft = "minutes_draft"
    minutes_approved = "minutes_approved"
    minutes_circulated = "minutes_circulated"
    cancelled = "cancelled"


class AgendaItemKind(StrEnum):
    referral = "referral"
    action_review = "action_review"
    pupil_of_concern = "pupil_of_concern"
    consultation = "consultation"


class AgendaItemStatus(StrEnum):
    listed = "listed"
    discussed = "discussed"
    deferred = "deferred"
    removed = "removed"


class Rsvp(StrEnum):
    needs_action = "needs_action"
    accepted = "accepted"
    tentative = "tentative"
    declined = "declined"
    delegated = "delegated"


class Attendance(StrEnum):
    present = "present"
    apologies = "apologies"
    information_sent = "information_sent"
    absent = "absent"


class InviteeRole(StrEnum):
    chair = "chair"
    minute_taker = "minute_taker"
    member = "member"
    deputy = "deputy"
    school = "school"
    observer = "observer"


class Visibility(StrEnum):
    all_invitees = "all_invitees"
    chair_only = "chair_only"
    named_agencies = "named_agencies"


class MinutesStatus(StrEnum):
    draft = "draft"
    approved = "approved"
    circulated = "circulated"
    final = "final"


class Outcome(StrEnum):
    support_agreed = "support_agreed"
    referred_to_service = "referred_to_service"
    escalated_to_mash = "escalated_to_mash"
    signposted = "signposted"
    review_on_date = "review_on_date"
    deferred_for_information = "deferred_for_information"
    closed = "closed"


class ActionStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class ActionEventKind(StrEnum):
    assigned = "assigned"
    reminder = "reminder"
    chase = "chase"
    escalation = "escalation"
    update = "update"
    done = "done"
    cannot_do = "cannot_do"
    cancelled = "cancelled"


class NotDoneReason(StrEnum):
    circumstances_changed = "circumstances_changed"
    agency_did_not_act = "agency_did_not_act"
    other = "other"


class ConcernStatus(StrEnum):
    open = "open"
    listed = "listed"
    discussed = "discussed"
    removed = "removed"


class CorrectionStatus(StrEnum):
    open = "open"
    accepted = "accepted"
    declined = "declined"


class DocumentKind(StrEnum):
    upload = "upload"
    papers_pack = "papers_pack"
    minutes = "minutes"


class Child(Base):
    """Minimal identifying data; everything else lives on the referral."""

    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    legal_first_name: Mapped[str] = mapped_column(String(100))
    legal_surname: Mapped[str] = mapped_column(String(100))
    preferred_name: Mapped[str | None] = mapped_column(String(100))
    date_of_birth: Mapped[date] = mapped_column(Date)
    upn: Mapped[str | None] = mapped_column(String(13))
    gender: Mapped[str | None] = mapped_column(String(60))
    ethnicity: Mapped[str | None] = mapped_column(String(10))
    home_postcode: Mapped[str | None] = mapped_column(String(10))
    first_language: Mapped[str | None] = mapped_column(String(60))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id"), index=True)
    year_group: Mapped[str] = mapped_column(String(20))
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    school: Mapped[School] = relationship()


class ReferralReasonOption(Base):
    """The configurable list of reasons a school can pick (domain.md section 8)."""

    __tablename__ = "referral_reason_option"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ReferenceCounter(Base):
    """Issues VPHC-YYYY-NNNN references; the row is locked while a number is taken."""

    __tablename__ = "reference_counter"
    __table_args__ = (UniqueConstraint("prefix", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(10))
    year: Mapped[int] = mapped_column(Integer)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Referral(Base):
    __tablename__ = "referral"
    __table_args__ = (
        one_of("status", ReferralStatus),
        one_of("urgency", Urgency),
        one_of("consent_status", ConsentStatus),
        one_of("sen_status", SenStatus),
        one_of("permanent_exclusion", ExclusionStatus),
        one_of("graduated_response_stage", GraduatedResponseStage),
        CheckConstraint(
            "attendance_percent IS NULL OR (attendance_percent >= 0 AND attendance_percent <= 100)",
            name="attendance_in_range",
        ),
        CheckConstraint(
            "(suspensions_this_year IS NULL OR suspensions_this_year >= 0)"
            " AND (suspension_days_this_year IS NULL OR suspension_days_this_year >= 0)"
            " AND (suspensions_this_half_term IS NULL OR suspensions_this_half_term >= 0)",
            name="suspension_counts_not_negative",
        ),
        CheckConstraint("status = 'draft' OR reference IS NOT NULL", name="submitted_has_reference"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(30), default=ReferralStatus.draft, index=True)
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id"), index=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    immediate_risk_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the referrer has typed so far, page by page, kept even when it does not yet validate.
    draft_answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # G. The referral
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    reasons_other: Mapped[str | None] = mapped_column(Text)
    what_is_happening: Mapped[str | None] = mapped_column(Text)
    strengths: Mapped[str | None] = mapped_column(Text)
    voice_of_child: Mapped[str | None] = mapped_column(Text)
    voice_of_parent: Mapped[str | None] = mapped_column(Text)
    aces_considered: Mapped[list[str]] = mapped_column(JSON, default=list)
    aces_notes: Mapped[str | None] = mapped_column(Text)
    asks_of_clinic: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(20), default=Urgency.routine)
    urgency_reason: Mapped[str | None] = mapped_column(Text)

    # B. Family
    family: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # C. Education and inclusion
    attendance_percent: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    suspensions_this_year: Mapped[int | None] = mapped_column(Integer)
    suspension_days_this_year: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    suspensions_this_half_term: Mapped[int | None] = mapped_column(Integer)
    suspension_dates: Mapped[list[str]] = mapped_column(JSON, default=list)
    permanent_exclusion: Mapped[str] = mapped_column(String(20), default=ExclusionStatus.none)
    permanent_exclusion_on: Mapped[date | None] = mapped_column(Date)
    part_time_timetable: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sen_status: Mapped[str] = mapped_column(String(20), default=SenStatus.none)
    primary_need: Mapped[str | None] = mapped_column(String(20))
    graduated_response_stage: Mapped[str | None] = mapped_column(String(20))
    interventions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    # D. Social care and early help
    social_care_statuses: Mapped[list[str]] = mapped_column(JSON, default=list)
    early_help: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agencies_involved: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    awaiting_feedback: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    # E and F: restricted sections, shared per the sharing matrix only.
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    community_safety: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # H. Consent or lawful basis
    consent_status: Mapped[str | None] = mapped_column(String(20))
    consent_given_by: Mapped[str | None] = mapped_column(String(200))
    consent_given_on: Mapped[date | None] = mapped_column(Date)
    consent_method: Mapped[str | None] = mapped_column(String(100))
    lawful_basis: Mapped[str | None] = mapped_column(String(100))
    lawful_basis_reason: Mapped[str | None] = mapped_column(Text)
    lawful_basis_decided_by: Mapped[str | None] = mapped_column(String(200))
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    consent_withdrawal_note: Mapped[str | None] = mapped_column(Text)
    # Set when the retention schedule has removed what identifies the child; the reference and dates stay.
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    child_view_on_sharing: Mapped[str | None] = mapped_column(Text)

    child: Mapped[Child | None] = relationship()
    school: Mapped[School] = relationship()
    referrer: Mapped[Person] = relationship(foreign_keys=[referrer_id])
    history: Mapped[list[ReferralStatusChange]] = relationship(
        back_populates="referral", order_by="ReferralStatusChange.id"
    )


class ReferralStatusChange(Base):
    __tablename__ = "referral_status_change"
    __table_args__ = (one_of("to_status", ReferralStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str] = mapped_column(String(30))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    note: Mapped[str | None] = mapped_column(Text)

    referral: Mapped[Referral] = relationship(back_populates="history")


class Term(Base):
    """A school term; meetings in term-time-only series fall inside one, outside its half-term."""

    __tablename__ = "term"
    __table_args__ = (
        CheckConstraint("starts_on <= ends_on", name="term_dates_in_order"),
        CheckConstraint("(half_term_starts_on IS NULL) = (half_term_ends_on IS NULL)", name="half_term_complete"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    half_term_starts_on: Mapped[date | None] = mapped_column(Date)
    half_term_ends_on: Mapped[date | None] = mapped_column(Date)
    # Other days the schools are shut (training days, a local holiday): no meetings then either.
    closed_days: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates


class MeetingSeries(Base):
    __tablename__ = "meeting_series"
    __table_args__ = (
        one_of("kind", MeetingKind),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_valid"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("capacity_items > 0 AND item_minutes > 0", name="capacity_positive"),
        CheckConstraint("chair_rotation_every > 0", name="rotation_positive"),
        # A hot clinic may serve one area or the whole borough (no area); a TAS serves one school.
        CheckConstraint("kind != 'team_around_school' OR school_id IS NOT NULL", name="tas_has_school"),
        CheckConstraint("agency_access_days >= 0", name="access_days_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id"))
    weekday: Mapped[int] = mapped_column(Integer)  # Monday is 0
    start_time: Mapped[time] = mapped_column(Time)  # wall-clock time in Europe/London
    duration_minutes: Mapped[int] = mapped_column(Integer, default=120)
    term_time_only: Mapped[bool] = mapped_column(Boolean, default=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    chair_rotation: Mapped[list[int]] = mapped_column(JSON, default=list)  # person ids, in order
    chair_rotation_every: Mapped[int] = mapped_column(Integer, default=3)
    coordinator_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    capacity_items: Mapped[int] = mapped_column(Integer, default=8)
    item_minutes: Mapped[int] = mapped_column(Integer, default=15)
    cutoff_weekday: Mapped[int] = mapped_column(Integer, default=0)
    cutoff_time: Mapped[time] = mapped_column(Time, default=time(12, 0))
    papers_weekday: Mapped[int] = mapped_column(Integer, default=1)
    papers_time: Mapped[time] = mapped_column(Time, default=time(9, 0))
    quorum_min_agencies: Mapped[int] = mapped_column(Integer, default=3)
    quorum_required_agencies: Mapped[list[str]] = mapped_column(JSON, default=list)  # agency codes
    quorum_chair_required: Mapped[bool] = mapped_column(Boolean, default=True)
    quorum_check_time: Mapped[time] = mapped_column(Time, default=time(12, 0))  # on the working day before
    invite_days_ahead: Mapped[int] = mapped_column(Integer, default=28)
    # Follow-through timings (notes/meetings-practice.md section 5), in working days unless named otherwise.
    outcome_due_working_days: Mapped[int] = mapped_column(Integer, default=1)
    minutes_due_working_days: Mapped[int] = mapped_column(Integer, default=5)
    corrections_working_days: Mapped[int] = mapped_column(Integer, default=10)
    action_reminder_working_days: Mapped[int] = mapped_column(Integer, default=2)  # before the due date
    chase_every_working_days: Mapped[int] = mapped_column(Integer, default=3)
    escalate_after_chases: Mapped[int] = mapped_column(Integer, default=2)
    blockage_working_days: Mapped[int] = mapped_column(Integer, default=3)
    # Agency reps may read a listed referral from circulation until this many days after the meeting.
    agency_access_days: Mapped[int] = mapped_column(Integer, default=28)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    area: Mapped[Area | None] = relationship()
    school: Mapped[School | None] = relationship()
    members: Mapped[list[SeriesMember]] = relationship(back_populates="series", cascade="all, delete-orphan")


class SeriesMember(Base):
    """Core membership: an agency's named rep for a series, with an optional deputy."""

    __tablename__ = "series_member"
    __table_args__ = (UniqueConstraint("series_id", "agency_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("meeting_series.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))

    series: Mapped[MeetingSeries] = relationship(back_populates="members")
    agency: Mapped[Agency] = relationship()
    person: Mapped[Person] = relationship(foreign_keys=[person_id])
    deputy: Mapped[Person | None] = relationship(foreign_keys=[deputy_id])


class Meeting(Base):
    __tablename__ = "meeting"
    __table_args__ = (
        one_of("status", MeetingStatus),
        UniqueConstraint("series_id", "meeting_date"),
        CheckConstraint("sequence >= 0", name="sequence_not_negative"),
        CheckConstraint("starts_at < ends_at", name="starts_before_ends"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("meeting_series.id"), index=True)
    meeting_date: Mapped[date] = mapped_column(Date, index=True)
    start_time: Mapped[time] = mapped_column(Time)  # wall clock, Europe/London
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    location: Mapped[str] = mapped_column(String(200), default="")
    chair_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    minute_taker_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    status: Mapped[str] = mapped_column(String(30), default=MeetingStatus.planned, index=True)
    calendar_uid: Mapped[str] = mapped_column(String(200), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # When each sweep is due for this meeting, worked out from the series when the meeting is planned
    # or moved (meetings.schedule.meeting_deadlines), so a sweep only has to compare with now.
    cutoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    papers_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    quorum_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    quorum_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agenda_frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the coordinator's reordering: from then on new items go to the end, not into priority order.
    agenda_order_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Any change to a frozen agenda; papers are rebuilt and sent again when this is after papers_sent_at.
    agenda_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    papers_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    papers_version: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # opened in the meeting room
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # closed: outcomes and actions go out
    confidentiality_read: Mapped[bool] = mapped_column(Boolean, default=False)

    series: Mapped[MeetingSeries] = relationship()
    chair: Mapped[Person | None] = relationship(foreign_keys=[chair_id])
    minute_taker: Mapped[Person | None] = relationship(foreign_keys=[minute_taker_id])
    items: Mapped[list[AgendaItem]] = relationship(back_populates="meeting", order_by="AgendaItem.position")
    invitations: Mapped[list[Invitation]] = relationship(back_populates="meeting")


class MeetingStatusChange(Base):
    __tablename__ = "meeting_status_change"
    __table_args__ = (one_of("to_status", MeetingStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str] = mapped_column(String(30))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    note: Mapped[str | None] = mapped_column(Text)


class AgendaItem(Base):
    __tablename__ = "agenda_item"
    __table_args__ = (
        one_of("kind", AgendaItemKind),
        one_of("status", AgendaItemStatus),
        UniqueConstraint("meeting_id", "referral_id"),
        CheckConstraint("kind != 'referral' OR referral_id IS NOT NULL", name="referral_item_has_referral"),
        CheckConstraint("kind != 'action_review' OR action_id IS NOT NULL", name="review_item_has_action"),
        CheckConstraint("slot_minutes > 0", name="slot_positive"),
        CheckConstraint("kind != 'pupil_of_concern' OR concern_id IS NOT NULL", name="concern_item_has_concern"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("action.id", use_alter=True))
    position: Mapped[int] = mapped_column(Integer, default=0)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=15)
    status: Mapped[str] = mapped_column(String(20), default=AgendaItemStatus.listed)
    carried_from_id: Mapped[int | None] = mapped_column(ForeignKey("agenda_item.id"))
    agencies_needed: Mapped[list[str]] = mapped_column(JSON, default=list)
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str] = mapped_column(Text, default="")
    notes_version: Mapped[int] = mapped_column(Integer, default=0)
    concern_id: Mapped[int | None] = mapped_column(ForeignKey("pupil_of_concern.id"), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the current item: started, not ended
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the school was told the decision

    meeting: Mapped[Meeting] = relationship(back_populates="items")
    referral: Mapped[Referral | None] = relationship()


class Invitation(Base):
    __tablename__ = "invitation"
    __table_args__ = (
        one_of("rsvp", Rsvp),
        one_of("role", InviteeRole),
        CheckConstraint(
            "attendance IS NULL OR attendance IN ('present', 'apologies', 'information_sent', 'absent')",
            name="attendance_allowed",
        ),
        UniqueConstraint("meeting_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    role: Mapped[str] = mapped_column(String(20), default=InviteeRole.member)
    rsvp: Mapped[str] = mapped_column(String(20), default=Rsvp.needs_action)
    rsvp_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delegated_to: Mapped[str | None] = mapped_column(String(320))
    sequence_sent: Mapped[int | None] = mapped_column(Integer)  # the meeting SEQUENCE last sent to them
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # uninvited: they got a CANCEL
    rsvp_source: Mapped[str | None] = mapped_column(String(20))  # "email" (an iTIP REPLY) or "portal"
    attendance: Mapped[str | None] = mapped_column(String(20))
    attendance_note: Mapped[str | None] = mapped_column(String(500))
    deputy_for_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))

    meeting: Mapped[Meeting] = relationship(back_populates="invitations")
    person: Mapped[Person] = relationship(foreign_keys=[person_id])
    agency: Mapped[Agency | None] = relationship()


class Contribution(Base):
    """An agency's information for one agenda item, shared as the agency marks it."""

    __tablename__ = "contribution"
    __table_args__ = (one_of("visibility", Visibility), UniqueConstraint("agenda_item_id", "agency_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    agenda_item_id: Mapped[int] = mapped_column(ForeignKey("agenda_item.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    body: Mapped[str] = mapped_column(Text, default="")
    nothing_known: Mapped[bool] = mapped_column(Boolean, default=False)
    visibility: Mapped[str] = mapped_column(String(20), default=Visibility.all_invitees)
    visible_to_agencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    released_to_school: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Minute(Base):
    """The minutes of one meeting: header text and lifecycle; item notes live on AgendaItem."""

    __tablename__ = "minute"
    __table_args__ = (one_of("status", MinutesStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=MinutesStatus.draft)
    summary: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    circulated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    corrections_until: Mapped[date | None] = mapped_column(Date)
    finalised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Decision(Base):
    __tablename__ = "decision"
    __table_args__ = (one_of("outcome", Outcome),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agenda_item_id: Mapped[int] = mapped_column(ForeignKey("agenda_item.id", ondelete="CASCADE"), unique=True)
    outcome: Mapped[str] = mapped_column(String(40))
    service_name: Mapped[str | None] = mapped_column(String(200))
    rationale: Mapped[str] = mapped_column(Text)
    dissent: Mapped[str | None] = mapped_column(Text)
    review_on: Mapped[date | None] = mapped_column(Date)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    option_id: Mapped[int | None] = mapped_column(ForeignKey("outcome_option.id"))  # the label chosen
    version: Mapped[int] = mapped_column(Integer, default=1)

    option: Mapped[OutcomeOption | None] = relationship()


class Action(Base):
    __tablename__ = "action"
    __table_args__ = (
        one_of("status", ActionStatus),
        CheckConstraint(
            "not_done_reason IS NULL OR not_done_reason IN ('circumstances_changed', 'agency_did_not_act', 'other')",
            name="not_done_reason_allowed",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agenda_item_id: Mapped[int | None] = mapped_column(ForeignKey("agenda_item.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    owner_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"), index=True)
    owner_school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id"))
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    due_on: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(20), default=ActionStatus.open, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_done_reason: Mapped[str | None] = mapped_column(String(40))
    reply_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meeting.id"), index=True)  # where it was agreed
    concern_id: Mapped[int | None] = mapped_column(ForeignKey("pupil_of_concern.id"))
    involves_school: Mapped[bool] = mapped_column(Boolean, default=False)  # told to the school with the outcome
    latest_update: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[ActionEvent]] = relationship(order_by="ActionEvent.id")
    owner_agency: Mapped[Agency | None] = relationship()
    owner_person: Mapped[Person | None] = relationship(foreign_keys=[owner_person_id])
    referral: Mapped[Referral | None] = relationship()


class ActionEvent(Base):
    """Reminders, chases, escalations and updates: the action's history, and the chasing ledger."""

    __tablename__ = "action_event"
    __table_args__ = (one_of("kind", ActionEventKind), UniqueConstraint("action_id", "kind", "step"))

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    step: Mapped[int] = mapped_column(Integer, default=0)  # makes each chase happen once
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    by_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    note: Mapped[str | None] = mapped_column(Text)


class OutcomeOption(Base):
    """The configurable list of decisions a clinic can reach; `effect` says what it does to the referral."""

    __tablename__ = "outcome_option"
    __table_args__ = (one_of("effect", Outcome),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    effect: Mapped[str] = mapped_column(String(40))
    needs_service: Mapped[bool] = mapped_column(Boolean, default=False)  # "referred to a named service"
    needs_review_date: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class MinuteCorrection(Base):
    """A correction asked for by an attendee while the minutes are open for corrections."""

    __tablename__ = "minute_correction"
    __table_args__ = (one_of("status", CorrectionStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    minute_id: Mapped[int] = mapped_column(ForeignKey("minute.id", ondelete="CASCADE"), index=True)
    agenda_item_id: Mapped[int | None] = mapped_column(ForeignKey("agenda_item.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=CorrectionStatus.open)
    response: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))


class AgencyWait(Base):
    """A referral waiting on an outside agency (MASH or CAMHS feedback, say): flagged and chased when late."""

    __tablename__ = "agency_wait"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"), index=True)
    waiting_for: Mapped[str] = mapped_column(String(300))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    flag_after_working_days: Mapped[int] = mapped_column(Integer, default=3)
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    chases: Mapped[int] = mapped_column(Integer, default=0)
    last_chased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decision.id"))

    referral: Mapped[Referral] = relationship()
    agency: Mapped[Agency] = relationship()


class PupilOfConcern(Base):
    """A pupil a school puts on its Team Around the School agenda without a full clinic referral."""

    __tablename__ = "pupil_of_concern"
    __table_args__ = (one_of("status", ConcernStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id"), index=True)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("meeting_series.id"))
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id"))  # None: an anonymised consultation
    label: Mapped[str] = mapped_column(String(100))  # initials and year group, or "Anonymised: Year 8 pupil"
    concern: Mapped[str] = mapped_column(Text)
    ask: Mapped[str] = mapped_column(Text, default="")  # what the school wants from the meeting
    parent_agreed_on: Mapped[date | None] = mapped_column(Date)  # family agreed to discussion (OX)
    status: Mapped[str] = mapped_column(String(20), default=ConcernStatus.open)
    added_by_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)

    school: Mapped[School] = relationship()
    child: Mapped[Child | None] = relationship()


class Document(Base):
    """An upload or a generated pack, stored outside the web root under its SHA-256."""

    __tablename__ = "document"
    __table_args__ = (
        one_of("kind", DocumentKind),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        UniqueConstraint("referral_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    original_filename: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(200), default="")
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meeting.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))  # per-agency pack variant
    papers_version: Mapped[int | None] = mapped_column(Integer)  # the meeting's papers_version it was built for
    # Set when the file may no longer be served (consent withdrawn, or removed by the retention schedule).
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the retention schedule deleted the stored file; the row stays so nothing rebuilds it.
    file_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RetentionRun(Base):
    """One pass of the retention schedule: what was due (the dry-run report) and, if applied, what was done."""

    __tablename__ = "retention_run"
    __table_args__ = (CheckConstraint("mode IN ('dry_run', 'apply')", name="mode_valid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mode: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
