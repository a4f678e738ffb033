"""The core members section of a series' page: adding, removing and changing deputies through the real app."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings.demo import COORDINATOR
from meetings.models import MeetingSeries, SeriesMember
from tests.factories import DEMO_MONDAY, load_demo_series, make_person
from tests.web.conftest import csrf_from, sign_in

ADMIN = "admin@kestrelford.example.org"


@pytest.fixture
def clock():
    return FixedClock(DEMO_MONDAY)


@pytest.fixture
def demo(session_factory, clock):
    series_id, _ = load_demo_series(session_factory, clock.now())
    with session_factory() as s:
        ids = {
            "series": series_id,
            "lado": s.scalar(select(Agency.id).where(Agency.code == "LADO")),
            "camhs": s.scalar(select(Agency.id).where(Agency.code == "CAMHS")),
            "lado_rep": s.scalar(select(Person.id).where(Person.email == "lado.rep@kestrelford.example.org")),
            "yos_rep": s.scalar(select(Person.id).where(Person.email == "yos.rep@kestrelford.example.org")),
        }
        ids["police_member"] = s.scalar(
            select(SeriesMember.id).join(Agency).where(SeriesMember.series_id == series_id, Agency.code == "POLICE")
        )
    return ids


def members(session_factory, series_id) -> dict[str, tuple[str, str | None]]:
    """Agency code -> (member's email, deputy's email or None)."""
    with session_factory() as s:
        series = s.get(MeetingSeries, series_id)
        return {m.agency.code: (m.person.email, m.deputy.email if m.deputy else None) for m in series.members}


def selected(html: str, select_id: str) -> str | None:
    """The value of the selected option of the select with that id."""
    body = re.search(rf'<select[^>]*id="{re.escape(select_id)}"[^>]*>(.*?)</select>', html, re.S)
    assert body, f"no select {select_id}"
    chosen = re.search(r'<option value="([^"]*)"\s+selected', body.group(1))
    return chosen.group(1) if chosen else None


@pytest.mark.parametrize("email", ["dsl@alderbrook.example.org", "camhs.rep@kestrelford.example.org"])
def test_school_referrers_and_agency_reps_may_not_change_members(client, session_factory, demo, email):
    sign_in(client, session_factory, email)
    token = csrf_from(client.get("/").text)
    series, member = demo["series"], demo["police_member"]
    assert client.get(f"/admin/series/{series}/members/{member}/remove").status_code == 403
    posts = {
        f"/admin/series/{series}/members": {"agency_id": str(demo["lado"]), "person_id": str(demo["lado_rep"])},
        f"/admin/series/{series}/members/{member}/remove": {},
        f"/admin/series/{series}/members/{member}/deputy": {"deputy_id": str(demo["yos_rep"])},
    }
    for path, data in posts.items():
        assert client.post(path, data=data | {"csrf_token": token}).status_code == 403, path
    assert members(session_factory, series)["POLICE"] == ("police.rep@kestrelford.example.org", None)
    assert "LADO" not in members(session_factory, series)


def test_the_series_page_lists_the_members_grouped_choices_and_a_form(client, session_factory, demo):
    sign_in(client, session_factory, COORDINATOR)
    page = client.get(f"/admin/series/{demo['series']}")
    assert page.status_code == 200
    text = page.text
    assert 'id="members"' in text and "7 core members" in text
    assert "Kestrelford Police Schools and Youth Team" in text
    assert f'href="/admin/series/{demo["series"]}/members/{demo["police_member"]}/remove"' in text
    assert '<optgroup label="Kestrelford Borough Council">' in text
    assert '<optgroup label="Kestrelford Youth Offending Service">' in text
    assert (
        'Change deputy<span class="govuk-visually-hidden"> for ' in text and text.count('name="deputy_id"') == 8
    )  # a row each, and the new member's
    assert not selected(text, "agency_id") and not selected(text, "person_id")


def test_adding_a_member_keeps_the_choices_on_error_and_adds_when_right(client, session_factory, session, demo):
    sign_in(client, session_factory, COORDINATOR)
    series = demo["series"]
    token = csrf_from(client.get(f"/admin/series/{series}").text)

    taken = client.post(
        f"/admin/series/{series}/members",
        data={
            "csrf_token": token,
            "agency_id": str(demo["camhs"]),
            "person_id": str(demo["lado_rep"]),
            "deputy_id": str(demo["lado_rep"]),
        },
    )
    assert taken.status_code == 400
    assert "There is a problem" in taken.text
    assert "already has a member in this series" in taken.text and 'href="#agency_id"' in taken.text
    assert "The deputy must be someone other than the member" in taken.text and 'href="#deputy_id"' in taken.text
    assert selected(taken.text, "agency_id") == str(demo["camhs"])
    assert selected(taken.text, "person_id") == str(demo["lado_rep"])
    assert selected(taken.text, "deputy_id") == str(demo["lado_rep"])
    assert "govuk-select--error" in taken.text

    nothing = client.post(f"/admin/series/{series}/members", data={"csrf_token": token})
    assert nothing.status_code == 400
    assert 'href="#person_id"' in nothing.text and "Choose an active person as the member" in nothing.text
    assert "LADO" not in members(session_factory, series)

    added = client.post(
        f"/admin/series/{series}/members",
        data={
            "csrf_token": token,
            "agency_id": str(demo["lado"]),
            "person_id": str(demo["lado_rep"]),
            "deputy_id": str(demo["yos_rep"]),
        },
    )
    assert added.status_code == 303
    banner = client.get(added.headers["location"]).text
    assert "The member has been added." in banner and "8 core members" in banner
    assert members(session_factory, series)["LADO"] == (
        "lado.rep@kestrelford.example.org",
        "yos.rep@kestrelford.example.org",
    )
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "series.member_added"))
    with session_factory() as s:
        assert event.actor_person_id == s.scalar(select(Person.id).where(Person.email == COORDINATOR))


def test_removing_a_member_asks_first(client, session_factory, demo):
    sign_in(client, session_factory, ADMIN)
    series, member = demo["series"], demo["police_member"]
    confirm = client.get(f"/admin/series/{series}/members/{member}/remove")
    assert confirm.status_code == 200
    assert "Remove" in confirm.text and "Kestrelford Police Schools and Youth Team" in confirm.text
    assert "will be sent a cancellation" in confirm.text
    assert "POLICE" in members(session_factory, series)  # looking is not removing

    removed = client.post(
        f"/admin/series/{series}/members/{member}/remove", data={"csrf_token": csrf_from(confirm.text)}
    )
    assert removed.status_code == 303
    assert "The member has been removed." in client.get(removed.headers["location"]).text
    assert "POLICE" not in members(session_factory, series)
    again = client.post(f"/admin/series/{series}/members/{member}/remove", data={"csrf_token": csrf_from(confirm.text)})
    assert again.status_code == 404
    assert client.post(f"/admin/series/{series}/members/{member}/remove", data={}).status_code == 403  # no CSRF


def test_changing_a_deputy_keeps_the_choice_on_error(client, session_factory, demo):
    with transaction(session_factory) as s:
        gone = make_person(s, email="gone@kestrelford.example.org", name="Gone Person", active=False).id
    sign_in(client, session_factory, COORDINATOR)
    series, member = demo["series"], demo["police_member"]
    token = csrf_from(client.get(f"/admin/series/{series}").text)
    path = f"/admin/series/{series}/members/{member}/deputy"
    field = f"deputy-{member}"

    no_change = client.post(path, data={"csrf_token": token, "deputy_id": ""})
    assert no_change.status_code == 400 and "has no deputy already" in no_change.text
    assert f'href="#{field}"' in no_change.text and f'id="{field}-error"' in no_change.text

    inactive = client.post(path, data={"csrf_token": token, "deputy_id": str(gone)})
    assert inactive.status_code == 400 and "Choose an active person as the deputy" in inactive.text
    themselves = client.post(path, data={"csrf_token": token, "deputy_id": "police.rep"})
    assert themselves.status_code == 400

    with session_factory() as s:
        police_rep = s.scalar(select(Person.id).where(Person.email == "police.rep@kestrelford.example.org"))
    same = client.post(path, data={"csrf_token": token, "deputy_id": str(police_rep)})
    assert same.status_code == 400 and "The deputy must be someone other than the member" in same.text
    assert selected(same.text, field) == str(police_rep)
    assert members(session_factory, series)["POLICE"][1] is None

    changed = client.post(path, data={"csrf_token": token, "deputy_id": str(demo["yos_rep"])})
    assert changed.status_code == 303
    page = client.get(changed.headers["location"]).text
    assert "The deputy has been changed." in page
    assert selected(page, field) == str(demo["yos_rep"])
    assert members(session_factory, series)["POLICE"] == (
        "police.rep@kestrelford.example.org",
        "yos.rep@kestrelford.example.org",
    )
    cleared = client.post(path, data={"csrf_token": token, "deputy_id": ""})
    assert cleared.status_code == 303 and members(session_factory, series)["POLICE"][1] is None
