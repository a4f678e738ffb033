"""Directory tables, and the sign-in tokens and sessions that belong to people."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from caseconf.db import Base, UTCDateTime, one_of


class Phase(StrEnum):
    nursery = "nursery"
    infant = "infant"
    junior = "junior"
    first = "first"
    primary = "primary"
    middle = "middle"
    secondary = "secondary"
    all_through = "all_through"
    special = "special"
    pupil_referral_unit = "pupil_referral_unit"
    alternative_provision = "alternative_provision"


class SharingGroup(StrEnum):
    """Which column of the sharing matrix an agency reads from (notes/referral-form.md)."""

    safeguarding = "safeguarding"
    health = "health"
    police = "police"
    early_help = "early_help"
    other = "other"


class Role(StrEnum):
    admin = "admin"
    eip = "eip"
    coordinator = "coordinator"
    agency_rep = "agency_rep"
    school_referrer = "school_referrer"
    data_protection_officer = "data_protection_officer"


class Area(Base):
    __tablename__ = "area"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class School(Base):
    __tablename__ = "school"
    __table_args__ = (
        one_of("phase", Phase),
        CheckConstraint("length(urn) = 6", name="urn_six_digits"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    urn: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phase: Mapped[str] = mapped_column(String(30))
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    safeguarding_email: Mapped[str] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    area: Mapped[Area] = relationship()


class Agency(Base):
    __tablename__ = "agency"
    __table_args__ = (one_of("sharing_group", SharingGroup),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(30), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    mailbox: Mapped[str] = mapped_column(String(320))
    sharing_group: Mapped[str] = mapped_column(String(20), default=SharingGroup.other)
    # Papers go by portal link; attaching the pack is an opt-in per agency.
    attach_papers: Mapped[bool] = mapped_column(Boolean, default=False)
    lead_contact_email: Mapped[str | None] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Person(Base):
    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Stored lower-case so sign-in and imports match however people type it.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    organisation: Mapped[str] = mapped_column(String(200), default="")
    job_title: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    calendar_feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    grants: Mapped[list[RoleGrant]] = relationship(back_populates="person", cascade="all, delete-orphan")


class RoleGrant(Base):
    """A person's role, scoped to an area, a school or an agency where the role needs one."""

    __tablename__ = "role_grant"
    __table_args__ = (
        one_of("role", Role),
        CheckConstraint("role != 'eip' OR area_id IS NOT NULL", name="eip_has_area"),
        CheckConstraint("role != 'agency_rep' OR agency_id IS NOT NULL", name="rep_has_agency"),
        CheckConstraint("role != 'school_referrer' OR school_id IS NOT NULL", name="referrer_has_school"),
        UniqueConstraint("person_id", "role", "area_id", "school_id", "agency_id", name="uq_role_grant_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(30))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))

    person: Mapped[Person] = relationship(back_populates="grants")
    area: Mapped[Area | None] = relationship()
    school: Mapped[School | None] = relationship()
    agency: Mapped[Agency | None] = relationship()


class SignInToken(Base):
    """A one-time sign-in link; only its SHA-256 is stored."""

    __tablename__ = "sign_in_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_path: Mapped[str] = mapped_column(String(500), default="/")


class WebSession(Base):
    """A signed-in browser; the cookie holds a random id whose SHA-256 is stored here."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship()


class ApiToken(Base):
    """A bearer token for the JSON API that acts as its person, with their grants; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    # What the token is for, e.g. "Kestrelford MIS nightly sync"; shown when listing and in the audit log.
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship()
