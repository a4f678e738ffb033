"""The fictional demo borough: idempotent, term-time clinics at 13:30 London, and no real names."""

from __future__ import annotations

import json
import re
from datetime import time

import pytest
from sqlalchemy import JSON, String, Text, func, select

from agencies.models import Person, Role, RoleGrant, School
from caseconf.clock import LONDON
from caseconf.db import transaction
from caseconf.schema import load_metadata
from meetings.demo import DEMO_USERS, SERIES_NAME, load_demo
from meetings.models import (
    AgendaItem,
    Meeting,
    MeetingSeries,
    MeetingStatus,
    Referral,
    ReferralStatus,
    Term,
)

# From shared/domain.md section 8, "Real names in the seeds", and the case studies it cites.
REAL_NAMES = (
    "Perryfields",
    "Beacon",
    "Unity",
    "ContinU",
    "Newbridge",
    "Aspire",
    "Forge",
    "Barking",
    "Dagenham",
    "Hackney",
    "Worcestershire",
    "Waltham Forest",
    "Sutton",
    "Newham",
    "Southwark",
    "Manchester",
    "Leeds",
    "Sheffield",
    "Derby",
    "Cornwall",
    "LBBD",
    "Astrea",
    "Dunraven",
    "Carr Manor",
    "Surrey Square",
    "Rainbow Room",
    "Cicely Haughton",
    "Ormiston",
    "North Star",
    "River Tees",
    "Howard Partnership",
    "Time4U",
    "Thrive",
)


@pytest.fixture
def demo(session_factory, clock):
    with transaction(session_factory) as session:
        return load_demo(session, now=clock.now(), team_around_school=True)


def dump_every_table(session_factory) -> dict[str, list[str]]:
    with session_factory() as session:
        return {
            table.name: sorted(repr(tuple(row)) for row in session.execute(select(table)))
            for table in load_metadata().sorted_tables
        }


def test_loading_twice_changes_nothing_at_all(demo, session_factory, clock):
    before = dump_every_table(session_factory)
    clock.advance(days=300)  # even a much later run must not change anything

    with transaction(session_factory) as session:
        again = load_demo(session, now=clock.now(), team_around_school=True)

    assert demo.changed and not again.changed
    assert again.directory.people.unchanged == demo.directory.people.created
    after = dump_every_table(session_factory)
    assert after == before
    assert len(before["referral"]) == 8 and len(before["audit_event"]) == 2


def test_the_borough_has_its_schools_eips_and_clinic(demo, session_factory):
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(School)) == 12
        eip_areas = session.scalars(select(RoleGrant.area_id).where(RoleGrant.role == Role.eip)).all()
        assert len(eip_areas) == 3 and len(set(eip_areas)) == 3

        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == SERIES_NAME))
        assert (series.weekday, series.start_time, series.duration_minutes) == (3, time(13, 30), 120)
        assert series.quorum_required_agencies == ["SAFEGUARDING"]
        assert (series.capacity_items, series.item_minutes, series.chair_rotation_every) == (8, 15, 3)
        assert sorted(m.agency.code for m in series.members) == sorted(
            ["CAMHS", "POLICE", "EARLY_HELP", "YARM", "MASH", "SAFEGUARDING", "HEALTH"]
        )
        eips = set(session.scalars(select(RoleGrant.person_id).where(RoleGrant.role == Role.eip)))
        assert set(series.chair_rotation) == eips


def test_every_audience_has_a_demo_user(demo, session_factory):
    wanted = {Role.eip, Role.coordinator, Role.agency_rep, Role.school_referrer, Role.admin}
    with session_factory() as session:
        roles = set()
        for _label, email in DEMO_USERS:
            person = session.scalar(select(Person).where(Person.email == email))
            assert person is not None, email
            roles |= {grant.role for grant in person.grants}
    assert wanted <= roles
    assert len({label for label, _email in DEMO_USERS}) == len(DEMO_USERS)


def test_clinics_fall_on_term_time_thursdays_at_half_past_one_london(demo, session_factory):
    with session_factory() as session:
        terms = session.scalars(select(Term)).all()
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == SERIES_NAME))
        meetings = session.scalars(
            select(Meeting).where(Meeting.series_id == series.id).order_by(Meeting.meeting_date)
        ).all()

    assert len(meetings) == 26
    for meeting in meetings:
        day = meeting.meeting_date
        term = next((t for t in terms if t.starts_on <= day <= t.ends_on), None)
        assert term is not None, f"{day} is outside term"
        assert not term.half_term_starts_on <= day <= term.half_term_ends_on, f"{day} is in half-term"
        assert day.weekday() == 3
        local_start = meeting.starts_at.astimezone(LONDON)
        assert (local_start.date(), local_start.time()) == (day, time(13, 30))
        assert meeting.ends_at.astimezone(LONDON).time() == time(15, 30)
        assert meeting.calendar_uid.endswith("@kestrelford.example.org")
    # Both sides of the October clock change: 12:30Z in summer time, 13:30Z after.
    by_date = {m.meeting_date.isoformat(): m for m in meetings}
    assert by_date["2026-10-22"].starts_at.hour == 12 and by_date["2026-11-05"].starts_at.hour == 13
    assert len({m.calendar_uid for m in meetings}) == 26
    # Each EIP chairs three clinics in a row.
    assert [m.chair_id for m in meetings[:7]] == [series.chair_rotation[i // 3] for i in range(7)]


def test_referrals_cover_the_journey_with_references_and_history(demo, session_factory, clock):
    with session_factory() as session:
        referrals = session.scalars(select(Referral)).all()
        by_status = {r.status: r for r in referrals}
        wanted = {
            "draft",
            "submitted",
            "information_requested",
            "accepted",
            "signposted",
            "declined",
            "actions_open",
            "closed",
        }
        assert wanted <= set(by_status)
        assert {r.graduated_response_stage for r in referrals} >= {"s2", "s3", "s4", "s5", "s6a", "exclusion"}

        references = [r.reference for r in referrals if r.status != ReferralStatus.draft]
        assert all(re.fullmatch(r"VPHC-2026-\d{4}", ref) for ref in references)
        assert len(set(references)) == len(references) == 7
        assert by_status["draft"].reference is None

        for referral in referrals:
            chain = [(c.from_status, c.to_status) for c in referral.history]
            assert chain[0] == (None, "draft") and chain[-1][1] == referral.status
            assert all(prev[1] == nxt[0] for prev, nxt in zip(chain, chain[1:], strict=False))
            if referral.status != ReferralStatus.draft:
                assert referral.consent_status == "given" or referral.lawful_basis
                assert referral.reasons and referral.voice_of_child and referral.asks_of_clinic
                assert referral.attendance_percent is not None

        def clinic_of(referral):
            return session.scalar(select(Meeting).join(AgendaItem).where(AgendaItem.referral_id == referral.id))

        upcoming = clinic_of(by_status["accepted"])
        discussed = clinic_of(by_status["actions_open"])
        assert upcoming.starts_at > clock.now() and upcoming.status == MeetingStatus.planned
        assert discussed.meeting_date < upcoming.meeting_date
        assert discussed.status == MeetingStatus.minutes_circulated


def test_no_real_name_from_the_seeds_appears_anywhere(demo, session_factory):
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, REAL_NAMES)) + r")\b", re.IGNORECASE)
    found, texts = [], 0
    with session_factory() as session:
        for table in load_metadata().sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in session.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    text = value if isinstance(value, str) else json.dumps(value)
                    texts += 1
                    if match := pattern.search(text):
                        found.append(f"{table.name}.{column.name}: {match.group(0)}")
                    if "@" in text and isinstance(value, str) and column.name.endswith(("email", "mailbox")):
                        assert value.endswith(".example.org"), value
    assert texts > 500  # the scan did read the demo's text
    assert found == []


def test_held_clinics_agree_with_their_minutes_and_old_minutes_are_final(session_factory):
    """The summary says quorate and the statement read: attendance and the statement are recorded; minutes
    whose corrections window had passed when the demo was loaded are final, the others still open."""
    from datetime import UTC, date, datetime

    from meetings.models import Invitation, Meeting, MeetingSeries, Minute

    loaded_at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with transaction(session_factory) as session:
        load_demo(session, now=loaded_at)
    with session_factory() as session:
        series = session.scalar(select(MeetingSeries).where(MeetingSeries.name == SERIES_NAME))
        held = {
            m.meeting_date: m
            for m in session.scalars(select(Meeting).where(Meeting.series_id == series.id))
            if m.meeting_date in (date(2026, 9, 24), date(2026, 11, 12))
        }
        for meeting in held.values():
            invitations = session.scalars(select(Invitation).where(Invitation.meeting_id == meeting.id)).all()
            agencies = {i.agency.code for i in invitations if i.agency}
            assert {"SAFEGUARDING", "MASH", "CAMHS", "EARLY_HELP", "POLICE", "HEALTH"} <= agencies
            assert {i.attendance for i in invitations} == {"present"} and {i.rsvp for i in invitations} == {"accepted"}
            assert meeting.chair_id in {i.person_id for i in invitations}
            assert meeting.confidentiality_read
        september = session.scalar(select(Minute).where(Minute.meeting_id == held[date(2026, 9, 24)].id))
        assert september.status == "final" and september.finalised_at is not None
        assert september.finalised_at.astimezone(LONDON).date() == date(2026, 10, 13)
        november = session.scalar(select(Minute).where(Minute.meeting_id == held[date(2026, 11, 12)].id))
        assert november.status == "circulated" and november.finalised_at is None
