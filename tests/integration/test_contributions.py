"""Agency contributions as a service: who may read each one (papers.view_for), nothing known, the version
check on a stale save, validation, audit, and who may contribute when (meetings.access)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person, Role
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Invalid
from meetings import contributions
from meetings.access import can_on_meeting, principal_for
from meetings.edits import EditConflict
from meetings.models import AgendaItem, AgendaItemStatus, Contribution, Meeting, MeetingStatus
from meetings.papers import view_for
from tests.factories import DEMO_MONDAY, PAPERS_SENT, load_demo_invited, send_papers

CLINIC = date(2026, 12, 3)
NOW = DEMO_MONDAY


@pytest.fixture
def clinic(session_factory, settings) -> dict:
    meeting = load_demo_invited(session_factory, NOW, on=CLINIC)
    send_papers(session_factory, settings, meeting.id)  # agencies read the cases once the papers are out
    with session_factory() as session:
        item = session.scalars(
            select(AgendaItem).where(AgendaItem.meeting_id == meeting.id, AgendaItem.referral_id.is_not(None))
        ).one()
        return {"meeting": meeting.id, "item": item.id}


def agency(session, code: str) -> Agency:
    return session.scalar(select(Agency).where(Agency.code == code))


def rep(session, code: str) -> Person:
    return session.scalar(
        select(Person).where(Person.email == f"{code.lower().replace('_', '-')}.rep@kestrelford.example.org")
    )


def save(session_factory, clinic, code: str, **fields) -> Contribution:
    values = {"body": "", "nothing_known": False, "visibility": "all_invitees", "base_version": 0} | fields
    with transaction(session_factory) as session:
        return contributions.save_contribution(
            session,
            item=session.get(AgendaItem, clinic["item"]),
            agency=agency(session, code),
            author_id=rep(session, code).id,
            now=NOW,
            **values,
        )


def readers(session, clinic) -> dict[str, set[str]]:
    """For each agency code: the codes of the agencies whose contributions it may read."""
    every = list(session.scalars(select(Contribution).where(Contribution.agenda_item_id == clinic["item"])))
    codes = {a.id: a.code for a in session.scalars(select(Agency))}
    result = {}
    for code in ("CAMHS", "HEALTH", "POLICE", "SAFEGUARDING", "EARLY_HELP"):
        shown = view_for(agency(session, code), every).contribution_ids
        result[code] = {codes[c.agency_id] for c in every if c.id in shown}
    result["chair"] = {codes[c.agency_id] for c in every if c.id in view_for(None, every).contribution_ids}
    return result


def test_each_agency_reads_only_what_was_shared_with_it(session_factory, session, clinic):
    save(
        session_factory,
        clinic,
        "CAMHS",
        body="Open to CAMHS.",
        visibility="named_agencies",
        visible_to_agencies=["health"],
    )
    save(session_factory, clinic, "POLICE", body="Known to the youth team.", visibility="chair_only")
    save(session_factory, clinic, "EARLY_HELP", nothing_known=True)
    seen = readers(session, clinic)
    assert seen["POLICE"] == {"POLICE", "EARLY_HELP"}  # its own chair-only one; not the health-only one
    assert seen["HEALTH"] == {"CAMHS", "EARLY_HELP"}
    assert seen["CAMHS"] == {"CAMHS", "EARLY_HELP"}
    assert seen["SAFEGUARDING"] == {"EARLY_HELP"}
    assert seen["chair"] == {"CAMHS", "POLICE", "EARLY_HELP"}
    stored = session.scalars(select(Contribution).order_by(Contribution.id)).all()
    assert stored[0].visible_to_agencies == ["HEALTH"]  # codes are kept upper case
    assert stored[2].nothing_known and stored[2].body == ""


def test_nothing_known_or_information_is_needed_but_not_both(session_factory, clinic):
    with pytest.raises(Invalid) as neither:
        save(session_factory, clinic, "CAMHS", body="   ")
    assert set(neither.value.problems) == {"body"}
    with pytest.raises(Invalid) as both:
        save(session_factory, clinic, "CAMHS", body="Known.", nothing_known=True)
    assert "not both" in both.value.problems["body"]


def test_named_agencies_must_name_known_agencies(session_factory, clinic):
    with pytest.raises(Invalid) as none:
        save(session_factory, clinic, "CAMHS", body="x", visibility="named_agencies", visible_to_agencies=[])
    assert none.value.problems == {"visible_to_agencies": "Choose at least one agency that may see this"}
    with pytest.raises(Invalid) as unknown:
        save(session_factory, clinic, "CAMHS", body="x", visibility="named_agencies", visible_to_agencies=["NOPE"])
    assert unknown.value.problems == {"visible_to_agencies": "Unknown agency: NOPE"}
    with pytest.raises(Invalid) as odd:
        save(session_factory, clinic, "CAMHS", body="x", visibility="everyone")
    assert set(odd.value.problems) == {"visibility"}


def test_a_stale_save_gets_both_texts_and_changes_nothing(session_factory, session, clinic):
    first = save(session_factory, clinic, "CAMHS", body="First text.")
    assert first.version == 1
    with pytest.raises(EditConflict) as stale:
        save(session_factory, clinic, "CAMHS", body="Second text.", base_version=0)
    assert (stale.value.theirs, stale.value.yours, stale.value.version) == ("First text.", "Second text.", 1)
    # Changing only who may read it from a stale form is a conflict too.
    with pytest.raises(EditConflict):
        save(session_factory, clinic, "CAMHS", body="First text.", visibility="chair_only", base_version=0)
    session.expire_all()
    row = session.scalars(select(Contribution)).one()
    assert (row.body, row.visibility, row.version) == ("First text.", "all_invitees", 1)

    newer = save(session_factory, clinic, "CAMHS", body="Second text.", base_version=1)
    assert newer.version == 2
    again = save(session_factory, clinic, "CAMHS", body="Second text.", base_version=1)  # a retry after a lost reply
    assert again.version == 2
    events = session.scalars(select(AuditEvent).where(AuditEvent.record_type == "contribution")).all()
    assert [e.action for e in events] == ["contribution.added", "contribution.changed"]


def test_only_listed_items_take_contributions(session_factory, clinic):
    with transaction(session_factory) as session:
        session.get(AgendaItem, clinic["item"]).status = AgendaItemStatus.removed
    with pytest.raises(Invalid) as refused:
        save(session_factory, clinic, "CAMHS", body="Late.")
    assert "no longer on the agenda" in refused.value.problems["item"]


def test_how_many_items_still_need_an_agency(session_factory, session, clinic):
    meeting = session.get(Meeting, clinic["meeting"])
    camhs = agency(session, "CAMHS")
    assert contributions.items_needing(session, meeting, camhs.id) == (1, 1)
    save(session_factory, clinic, "CAMHS", nothing_known=True)
    assert contributions.items_needing(session, meeting, camhs.id) == (0, 1)


def test_only_an_invited_agency_may_contribute_and_only_before_the_meeting(session_factory, session, clinic):
    meeting = session.get(Meeting, clinic["meeting"])
    after_papers = PAPERS_SENT + timedelta(hours=1)
    invited = principal_for(rep(session, "CAMHS"), now=after_papers)
    not_invited = principal_for(rep(session, "LADO"), now=after_papers)
    coordinator = principal_for(
        session.scalar(select(Person).where(Person.email.like("clinic.coordinator@%"))), now=after_papers
    )
    assert Role.agency_rep in not_invited.roles
    assert can_on_meeting(session, invited, "contribute", meeting)
    assert not can_on_meeting(session, principal_for(rep(session, "CAMHS"), now=NOW), "contribute", meeting)
    assert not can_on_meeting(session, not_invited, "contribute", meeting)
    assert not can_on_meeting(session, coordinator, "contribute", meeting)  # runs it: reads all, adds none
    meeting.started_at = meeting.starts_at - timedelta(minutes=5)
    assert not can_on_meeting(session, invited, "contribute", meeting)
    meeting.started_at, meeting.status = None, MeetingStatus.held
    assert not can_on_meeting(session, invited, "contribute", meeting)
    session.rollback()
