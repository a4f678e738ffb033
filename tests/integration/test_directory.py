"""Directory import and export on a real database: all or nothing, line-numbered problems, no-op re-import."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from agencies.directory import export_directory, import_directory, parse_directory
from agencies.models import Agency, Area, Person, RoleGrant, School
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid

# Line numbers matter below: the first line of each file is line 1.
GOOD = """\
areas:
  - {code: N, name: North}
  - {code: E, name: East}
schools:
  - {urn: "900001", name: Alderbrook Primary, phase: primary, area: N, email: office@alderbrook.example.org, safeguarding_email: dsl@alderbrook.example.org}
  - {urn: "900002", name: Millrace Primary, phase: primary, area: E, email: office@millrace.example.org, safeguarding_email: dsl@millrace.example.org}
agencies:
  - {code: CAMHS, name: Kestrelford CAMHS, mailbox: camhs@kestrelford.example.org, sharing_group: health, attach_papers: false, lead_contact_email: camhs.lead@kestrelford.example.org}
  - {code: POLICE, name: Kestrelford Police Schools Team, mailbox: police@kestrelford.example.org, sharing_group: police}
people:
  - name: Priya Ashdown
    email: EIP.North@Kestrelford.example.org
    organisation: Kestrelford Borough Council
    job_title: Education Inclusion Partner (North)
    roles:
      - {role: eip, area: N}
      - {role: admin}
  - name: Nadia Fenwick
    email: camhs.rep@kestrelford.example.org
    roles:
      - {role: agency_rep, agency: CAMHS}
  - name: Sam Redfern
    email: dsl@alderbrook.example.org
    roles:
      - {role: school_referrer, school: "900001"}
      - {role: school_referrer, school: "900002"}
"""

BAD = """\
areas:
  - {code: W, name: West}
schools:
  - {urn: "90003", name: St Brigid's CE Primary, phase: primary, area: W, email: office@stbrigids.example.org, safeguarding_email: dsl@stbrigids.example.org}
  - {urn: "900004", name: Copperbeech Infant, phase: infant, area: S, email: office@copperbeech.example.org, safeguarding_email: dsl@copperbeech.example.org}
people:
  - name: Tomasz Kettleby
    email: eip.east@kestrelford.example.org
    roles:
      - {role: eip}
  - name: Grace Oyelaran
    email: EIP.EAST@kestrelford.example.org
  - email: clinic.coordinator@kestrelford.example.org
    roles:
      - {role: coordinator, area: N}
"""


def import_text(session_factory, clock, text):
    with transaction(session_factory) as session:
        return import_directory(session, text=text, now=clock.now())


def row_counts(session_factory) -> dict[str, int]:
    with session_factory() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Area, School, Agency, Person, RoleGrant, AuditEvent)
        }


def grants_of(session_factory, email) -> set[tuple[str, str | None]]:
    with session_factory() as session:
        person = session.scalar(select(Person).where(Person.email == email))
        return {
            (g.role, g.area.code if g.area else g.school.urn if g.school else g.agency.code if g.agency else None)
            for g in person.grants
        }


def test_a_good_file_imports_everything(session_factory, clock):
    report = import_text(session_factory, clock, GOOD)

    assert report.as_dict() == {
        "areas": {"created": 2, "updated": 0, "unchanged": 0},
        "schools": {"created": 2, "updated": 0, "unchanged": 0},
        "agencies": {"created": 2, "updated": 0, "unchanged": 0},
        "people": {"created": 3, "updated": 0, "unchanged": 0},
    }
    assert row_counts(session_factory) == {
        "area": 2,
        "school": 2,
        "agency": 2,
        "person": 3,
        "role_grant": 5,
        "audit_event": 1,
    }
    with session_factory() as session:
        millrace = session.scalar(select(School).where(School.urn == "900002"))
        assert (millrace.name, millrace.phase, millrace.area.code) == ("Millrace Primary", "primary", "E")
        police = session.scalar(select(Agency).where(Agency.code == "POLICE"))
        assert (police.sharing_group, police.attach_papers, police.lead_contact_email) == ("police", False, None)
        event = session.scalar(select(AuditEvent))
        assert event.action == "directory.imported"
        assert event.detail["counts"]["people"]["created"] == 3
    # Email is the person's key, so it is kept lower-case.
    assert grants_of(session_factory, "eip.north@kestrelford.example.org") == {("eip", "N"), ("admin", None)}
    assert grants_of(session_factory, "dsl@alderbrook.example.org") == {
        ("school_referrer", "900001"),
        ("school_referrer", "900002"),
    }


def test_importing_the_same_file_again_changes_nothing(session_factory, clock):
    import_text(session_factory, clock, GOOD)
    before = row_counts(session_factory)

    report = import_text(session_factory, clock, GOOD)

    assert not report.changed
    assert report.as_dict() == {
        "areas": {"created": 0, "updated": 0, "unchanged": 2},
        "schools": {"created": 0, "updated": 0, "unchanged": 2},
        "agencies": {"created": 0, "updated": 0, "unchanged": 2},
        "people": {"created": 0, "updated": 0, "unchanged": 3},
    }
    assert row_counts(session_factory) == before


def test_a_changed_row_is_updated_in_place(session_factory, clock):
    import_text(session_factory, clock, GOOD)

    report = import_text(session_factory, clock, GOOD.replace("Millrace Primary", "Millrace Community Primary"))

    assert (report.schools.updated, report.schools.unchanged, report.schools.created) == (1, 1, 0)
    with session_factory() as session:
        assert session.scalar(select(School.name).where(School.urn == "900002")) == "Millrace Community Primary"


def test_a_bad_file_reports_every_problem_with_its_line_and_imports_nothing(session_factory, clock):
    import_text(session_factory, clock, GOOD)
    before = row_counts(session_factory)

    with pytest.raises(Invalid) as caught:
        import_text(session_factory, clock, BAD)

    assert caught.value.problems == [
        "line 4: school URN '90003' must be exactly 6 digits",
        "line 5: school area 'S' is not in the file or the directory",
        "line 10: role 'eip' needs an area",
        "line 11: email 'eip.east@kestrelford.example.org' is already listed on line 7",
        "line 13: person is missing 'name'",
        "line 15: role 'coordinator' cannot be limited to an area",
    ]
    # The good rows in the bad file (area W, Tomasz's person row) were not saved either.
    assert row_counts(session_factory) == before
    with session_factory() as session:
        assert session.scalar(select(Area).where(Area.code == "W")) is None


def test_unknown_sections_fields_and_values_are_problems():
    text = """\
areas:
  - {code: N, name: North, colour: red}
schools:
  - {urn: "900001", name: Alderbrook Primary, phase: primery, area: N, email: office at alderbrook, safeguarding_email: dsl@alderbrook.example.org}
agencies:
  - {code: CAMHS, name: CAMHS, mailbox: camhs@kestrelford.example.org, sharing_group: everyone, attach_papers: sometimes}
people:
  - {name: Ann Example, email: ann@kestrelford.example.org, roles: [{role: wizard}]}
buildings: []
"""
    with pytest.raises(Invalid) as caught:
        parse_directory(text)

    assert caught.value.problems == [
        "line 2: area has an unknown field 'colour' (allowed: code, name)",
        "line 4: school phase 'primery' is not one of: nursery, infant, junior, first, primary, middle, "
        "secondary, all_through, special, pupil_referral_unit, alternative_provision",
        "line 4: school email 'office at alderbrook' does not look like an email address",
        "line 6: agency sharing_group 'everyone' is not one of: safeguarding, health, police, early_help, other",
        "line 6: agency 'attach_papers' must be true or false",
        "line 8: role 'wizard' is not one of: admin, eip, coordinator, agency_rep, school_referrer, "
        "data_protection_officer",
        "line 9: unknown section 'buildings' (allowed: areas, schools, agencies, people)",
    ]


def test_malformed_yaml_is_one_problem_with_its_line(session_factory, clock):
    text = 'areas:\n  - {code: N, name: North}\nschools:\n  - {urn: "900001", name: Alderbrook: Primary}\n'

    with pytest.raises(Invalid) as caught:
        import_text(session_factory, clock, text)

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("line 4: the file is not valid YAML")
    assert row_counts(session_factory)["area"] == 0


def test_a_key_given_twice_in_a_row_is_reported():
    with pytest.raises(Invalid) as caught:
        parse_directory("areas:\n  - code: N\n    name: North\n    code: E\n")

    assert caught.value.problems == ["line 4: the file is not valid YAML: 'code' is given twice in one row"]


def test_unquoted_values_stay_text():
    # YAML 1.1 would read 012345 as an octal number and NO as false.
    directory = parse_directory(
        "areas:\n  - {code: NO, name: Northolt Outer}\n"
        "schools:\n  - {urn: 012345, name: Alderbrook Primary, phase: primary, area: NO,"
        " email: office@alderbrook.example.org, safeguarding_email: dsl@alderbrook.example.org}\n"
    )

    assert directory.areas[0].code == "NO"
    assert directory.schools[0].urn == "012345"


def test_rows_may_refer_to_what_is_already_in_the_directory(session_factory, clock):
    import_text(session_factory, clock, GOOD)
    text = (
        "people:\n  - name: Tomasz Kettleby\n    email: eip.east@kestrelford.example.org\n    roles:\n"
        '      - {role: eip, area: E}\n      - {role: school_referrer, school: "900001"}\n'
    )

    report = import_text(session_factory, clock, text)

    assert report.people.created == 1
    assert grants_of(session_factory, "eip.east@kestrelford.example.org") == {
        ("eip", "E"),
        ("school_referrer", "900001"),
    }
    # Without the database behind it, the same file refers to nothing.
    with pytest.raises(Invalid) as caught:
        parse_directory(text)
    assert caught.value.problems == [
        "line 5: role area 'E' is not in the file or the directory",
        "line 6: role school '900001' is not in the file or the directory",
    ]


def test_role_grants_are_set_to_exactly_the_files_roles(session_factory, clock):
    import_text(session_factory, clock, GOOD)
    text = """\
people:
  - name: Priya Ashdown
    email: eip.north@kestrelford.example.org
    organisation: Kestrelford Borough Council
    job_title: Education Inclusion Partner (North)
    roles:
      - {role: eip, area: E}
      - {role: coordinator}
"""
    report = import_text(session_factory, clock, text)

    assert (report.people.updated, report.people.created, report.people.unchanged) == (1, 0, 0)
    assert grants_of(session_factory, "eip.north@kestrelford.example.org") == {("eip", "E"), ("coordinator", None)}
    # People not in the file keep their roles.
    assert grants_of(session_factory, "camhs.rep@kestrelford.example.org") == {("agency_rep", "CAMHS")}
    assert row_counts(session_factory)["role_grant"] == 5


def test_export_then_import_changes_nothing(session_factory, clock):
    import_text(session_factory, clock, GOOD)
    before = row_counts(session_factory)
    with session_factory() as session:
        exported = export_directory(session)

    report = import_text(session_factory, clock, exported)

    assert not report.changed
    assert report.people.unchanged == 3 and report.schools.unchanged == 2
    assert row_counts(session_factory) == before
    assert "urn: '900001'" in exported
    # The export holds the same directory as the file it came from, whatever the order.
    assert normalised(parse_directory(exported)) == normalised(parse_directory(GOOD))


def normalised(directory):
    people = {(p.name, p.email, p.organisation, p.job_title, frozenset(p.roles)) for p in directory.people}
    return set(directory.areas), set(directory.schools), set(directory.agencies), people


def test_a_clash_with_another_row_in_the_database_is_a_conflict(session_factory, clock):
    import_text(session_factory, clock, GOOD)
    before = row_counts(session_factory)

    # Area names are unique too; this file cannot know "North" is taken by code N.
    with pytest.raises(Conflict):
        import_text(session_factory, clock, "areas:\n  - {code: NN, name: North}\n")

    assert row_counts(session_factory) == before
