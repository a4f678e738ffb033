"""The directory file: areas, schools, agencies and people with their roles, in YAML.

An administrator keeps the directory in one text file, imports it, and can export it again in the
same format. Example::

    areas:
      - {code: N, name: North}
    schools:
      - {urn: "900001", name: Alderbrook Primary, phase: primary, area: N,
         email: office@alderbrook.example.org, safeguarding_email: dsl@alderbrook.example.org}
    agencies:
      - {code: CAMHS, name: Kestrelford CAMHS, mailbox: camhs@kestrelford.example.org,
         sharing_group: health, attach_papers: false, lead_contact_email: camhs.lead@kestrelford.example.org}
    people:
      - name: Priya Ashdown
        email: eip.north@kestrelford.example.org
        organisation: Kestrelford Borough Council
        job_title: Education Inclusion Partner (North)
        roles:
          - {role: eip, area: N}
          - {role: admin}

Rules:
- Every section is optional. Required fields: area code and name; school urn, name, phase, area,
  email and safeguarding_email; agency code, name and mailbox; person name and email.
  Optional: agency sharing_group (default "other", which sees the least), attach_papers (default
  false), lead_contact_email; person organisation, job_title and roles.
- Role scopes: eip needs an area, agency_rep an agency, school_referrer a school; the other roles
  (admin, coordinator, data_protection_officer) take none.
- An area, school or agency a row refers to must be in the file or already in the directory.
- Rows are matched by area code, school URN, agency code and person email (in any case). A person
  listed in the file ends up with exactly the roles listed; rows not in the file are left alone.
- Import is all or nothing: every problem is reported as "line N: ..." and nothing is saved.
- Only true/false and null are read as anything but text, so a URN such as 012345 keeps its zero.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from agencies.models import Agency, Area, Person, Phase, Role, RoleGrant, School, SharingGroup
from caseconf import audit
from caseconf.errors import Conflict, Invalid
from caseconf.validation import is_email_address

SECTIONS = ("areas", "schools", "agencies", "people")
SCOPES = ("area", "school", "agency")
# The one scope each scoped role needs; roles not listed take none.
ROLE_SCOPE = {Role.eip: "area", Role.agency_rep: "agency", Role.school_referrer: "school"}

CODE = re.compile(r"^[A-Za-z0-9_-]+$")
URN = re.compile(r"^[0-9]{6}$")


@dataclass(frozen=True)
class AreaEntry:
    code: str
    name: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SchoolEntry:
    urn: str
    name: str
    phase: Phase
    area: str
    email: str
    safeguarding_email: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AgencyEntry:
    code: str
    name: str
    mailbox: str
    sharing_group: SharingGroup = SharingGroup.other
    attach_papers: bool = False
    lead_contact_email: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class RoleEntry:
    role: Role
    area: str | None = None
    school: str | None = None
    agency: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PersonEntry:
    name: str
    email: str  # lower-case
    organisation: str = ""
    job_title: str = ""
    roles: tuple[RoleEntry, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Directory:
    areas: tuple[AreaEntry, ...] = ()
    schools: tuple[SchoolEntry, ...] = ()
    agencies: tuple[AgencyEntry, ...] = ()
    people: tuple[PersonEntry, ...] = ()


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportReport:
    areas: Counts = field(default_factory=Counts)
    schools: Counts = field(default_factory=Counts)
    agencies: Counts = field(default_factory=Counts)
    people: Counts = field(default_factory=Counts)

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated for c in (self.areas, self.schools, self.agencies, self.people))

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {kind: asdict(getattr(self, kind)) for kind in SECTIONS}

    def __str__(self) -> str:
        return "; ".join(
            f"{kind} {c.created} created, {c.updated} updated, {c.unchanged} unchanged"
            for kind, c in ((kind, getattr(self, kind)) for kind in SECTIONS)
        )


# --- reading -------------------------------------------------------------------------------


class _Row(dict):
    """A mapping from the file that remembers the line it starts on, and each key's line."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    # Only true/false and null are resolved: with YAML 1.1's defaults a URN 012345 would be read
    # as the octal number 5349, and an area code NO as false.
    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value in node.value:
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key_node.value}' is given twice in one row", key_node.start_mark
                )
            seen.add(key_node.value)
        row = _Row(super().construct_mapping(node, deep=True))
        row.line = node.start_mark.line + 1
        row.key_lines = {key_node.value: key_node.start_mark.line + 1 for key_node, _value in node.value}
        return row


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node))


class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def add(self, line: int, message: str) -> None:
        self.found.append((line, message))

    def messages(self) -> list[str]:
        return [f"line {line}: {message}" for line, message in sorted(self.found, key=lambda p: p[0])]


class _RowReader:
    """Reads one row's fields, noting each problem against the row's line."""

    def __init__(self, row: _Row, kind: str, allowed: tuple[str, ...], problems: _Problems):
        self.row, self.kind, self.problems = row, kind, problems
        for key in row:
            if key not in allowed:
                self.problem(f"{kind} has an unknown field '{key}' (allowed: {', '.join(allowed)})")

    def problem(self, message: str) -> None:
        self.problems.add(self.row.line, message)

    def text(self, key: str, *, required: bool = True, max_length: int = 200) -> str | None:
        value = self.row.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            if required:
                self.problem(f"{self.kind} is missing '{key}'")
            return None
        if not isinstance(value, str):
            self.problem(f"{self.kind} '{key}' must be text")
            return None
        if len(value) > max_length:
            self.problem(f"{self.kind} '{key}' is longer than {max_length} characters")
            return None
        return value

    def code(self, key: str, *, max_length: int) -> str | None:
        value = self.text(key, max_length=max_length)
        if value is not None and not CODE.match(value):
            self.problem(f"{self.kind} {key} '{value}' may only use letters, digits, '-' and '_'")
            return None
        return value

    def email(self, key: str, *, required: bool = True) -> str | None:
        value = self.text(key, required=required, max_length=320)
        if value is not None and not is_email_address(value):
            self.problem(f"{self.kind} {key} '{value}' does not look like an email address")
            return None
        return value

    def choice(self, key: str, enum: type[StrEnum], *, default: StrEnum | None = None) -> Any:
        value = self.text(key, required=default is None, max_length=60)
        if value is None:
            return default
        try:
            return enum(value)
        except ValueError:
            label = self.kind if key == self.kind else f"{self.kind} {key}"
            self.problem(f"{label} '{value}' is not one of: {', '.join(enum)}")
            return None

    def flag(self, key: str) -> bool:
        value = self.row.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problem(f"{self.kind} '{key}' must be true or false")
            return False
        return value


def _rows(document: _Row, section: str, problems: _Problems) -> list[_Row]:
    rows = document.get(section)
    if rows is None:
        return []
    line = document.key_lines[section]
    if not isinstance(rows, list):
        problems.add(line, f"'{section}' must be a list of rows, each starting with '- '")
        return []
    good = []
    for row in rows:
        if isinstance(row, _Row):
            good.append(row)
        else:
            # A plain value in a list keeps no line of its own; point at the section.
            problems.add(line, f"every entry under '{section}' must be a row of fields, not '{row}'")
    return good


def _load(text: str, problems: _Problems) -> _Row | None:
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader  # nosec B506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"the file is not valid YAML: {exc.problem or exc.context}"
        if exc.context and exc.context_mark and exc.context_mark.line != mark.line:
            message += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        if not isinstance(exc, yaml.constructor.ConstructorError):
            message += ". Check the indentation, brackets and quotes on this line and the one before"
        problems.add(mark.line + 1 if mark else 1, message)
        return None
    except yaml.YAMLError as exc:
        problems.add(1, f"the file is not valid YAML: {exc}")
        return None
    if document is None:
        problems.add(1, "the file is empty")
        return None
    if not isinstance(document, _Row):
        problems.add(1, f"the file must start with sections ({', '.join(SECTIONS)}), not a list or a value")
        return None
    for key in document:
        if key not in SECTIONS:
            line = document.key_lines.get(key, document.line)
            problems.add(line, f"unknown section '{key}' (allowed: {', '.join(SECTIONS)})")
    return document


def parse_directory(
    text: str,
    *,
    known_areas: set[str] | frozenset[str] = frozenset(),
    known_schools: set[str] | frozenset[str] = frozenset(),
    known_agencies: set[str] | frozenset[str] = frozenset(),
) -> Directory:
    """Read and check a directory file; raises Invalid listing every problem ("line N: ...").

    `known_*` are the codes already in the database, which rows may refer to as well as to rows
    in the file.
    """
    problems = _Problems()
    document = _load(text, problems)
    if document is None:
        raise Invalid(problems.messages())

    area_rows = _rows(document, "areas", problems)
    school_rows = _rows(document, "schools", problems)
    agency_rows = _rows(document, "agencies", problems)
    person_rows = _rows(document, "people", problems)

    # A reference to a row that is in the file but has its own problem is not reported again.
    refs = {
        "area": set(known_areas) | _given(area_rows, "code"),
        "school": set(known_schools) | _given(school_rows, "urn"),
        "agency": set(known_agencies) | _given(agency_rows, "code"),
    }
    areas = _read_areas(area_rows, problems)
    schools = _read_schools(school_rows, problems, refs["area"])
    agencies = _read_agencies(agency_rows, problems)
    people = _read_people(person_rows, problems, refs)
    if problems.found:
        raise Invalid(problems.messages())
    return Directory(areas=tuple(areas), schools=tuple(schools), agencies=tuple(agencies), people=tuple(people))


def _given(rows: list[_Row], key: str) -> set[str]:
    return {row[key].strip() for row in rows if isinstance(row.get(key), str)}


def _first_use(seen: dict[str, int], key: str | None, reader: _RowReader, what: str) -> bool:
    """True the first time a key is seen; otherwise notes the duplicate against this row."""
    if key is None:
        return False
    if key in seen:
        reader.problem(f"{what} is already listed on line {seen[key]}")
        return False
    seen[key] = reader.row.line
    return True


def _read_areas(rows: list[_Row], problems: _Problems) -> list[AreaEntry]:
    entries, codes, names = [], {}, {}
    for row in rows:
        reader = _RowReader(row, "area", ("code", "name"), problems)
        code = reader.code("code", max_length=20)
        name = reader.text("name", max_length=100)
        fresh_code = _first_use(codes, code, reader, f"area code '{code}'")
        fresh_name = _first_use(names, name, reader, f"area name '{name}'")
        if fresh_code and fresh_name:
            entries.append(AreaEntry(code=code, name=name, line=row.line))
    return entries


def _read_schools(rows: list[_Row], problems: _Problems, area_codes: set[str]) -> list[SchoolEntry]:
    entries, urns = [], {}
    fields = ("urn", "name", "phase", "area", "email", "safeguarding_email")
    for row in rows:
        reader = _RowReader(row, "school", fields, problems)
        urn = reader.text("urn", max_length=20)
        if urn is not None and not URN.match(urn):
            reader.problem(f"school URN '{urn}' must be exactly 6 digits")
            urn = None
        name = reader.text("name")
        phase = reader.choice("phase", Phase)
        area = reader.text("area", max_length=20)
        if area is not None and area not in area_codes:
            reader.problem(f"school area '{area}' is not in the file or the directory")
            area = None
        email = reader.email("email")
        safeguarding_email = reader.email("safeguarding_email")
        values = (urn, name, phase, area, email, safeguarding_email)
        if _first_use(urns, urn, reader, f"school URN '{urn}'") and None not in values:
            entries.append(SchoolEntry(*values, line=row.line))
    return entries


def _read_agencies(rows: list[_Row], problems: _Problems) -> list[AgencyEntry]:
    entries, codes = [], {}
    fields = ("code", "name", "mailbox", "sharing_group", "attach_papers", "lead_contact_email")
    for row in rows:
        reader = _RowReader(row, "agency", fields, problems)
        code = reader.code("code", max_length=30)
        name = reader.text("name")
        mailbox = reader.email("mailbox")
        sharing_group = reader.choice("sharing_group", SharingGroup, default=SharingGroup.other)
        attach_papers = reader.flag("attach_papers")
        lead = reader.email("lead_contact_email", required=False)
        if _first_use(codes, code, reader, f"agency code '{code}'") and None not in (name, mailbox, sharing_group):
            entries.append(AgencyEntry(code, name, mailbox, sharing_group, attach_papers, lead, line=row.line))
    return entries


def _read_people(rows: list[_Row], problems: _Problems, refs: dict[str, set[str]]) -> list[PersonEntry]:
    entries, emails = [], {}
    for row in rows:
        reader = _RowReader(row, "person", ("name", "email", "organisation", "job_title", "roles"), problems)
        name = reader.text("name")
        email = reader.email("email")
        email = email.lower() if email else None
        organisation = reader.text("organisation", required=False) or ""
        job_title = reader.text("job_title", required=False) or ""
        roles = _read_roles(row, reader, problems, refs)
        if _first_use(emails, email, reader, f"email '{email}'") and name is not None and roles is not None:
            entries.append(PersonEntry(name, email, organisation, job_title, roles, line=row.line))
    return entries


def _read_roles(
    person: _Row, person_reader: _RowReader, problems: _Problems, refs: dict[str, set[str]]
) -> tuple[RoleEntry, ...] | None:
    """The person's roles, or None if any is wrong (the problems are noted)."""
    rows = person.get("roles")
    if rows is None:
        return ()
    if not isinstance(rows, list) or not all(isinstance(r, _Row) for r in rows):
        person_reader.problem("person 'roles' must be a list of rows such as {role: eip, area: N}")
        return None
    entries, seen, before = [], {}, len(problems.found)
    for row in rows:
        reader = _RowReader(row, "role", ("role", *SCOPES), problems)
        role = reader.choice("role", Role)
        scope = {key: reader.text(key, required=False, max_length=30) for key in SCOPES}
        if role is None:
            continue
        needed = ROLE_SCOPE.get(role)
        if needed and scope[needed] is None:
            reader.problem(f"role '{role}' needs {'an' if needed[0] in 'aeiou' else 'a'} {needed}")
        for key in SCOPES:
            if key != needed and scope[key] is not None:
                reader.problem(f"role '{role}' cannot be limited to {'an' if key[0] in 'aeiou' else 'a'} {key}")
            elif scope[key] is not None and scope[key] not in refs[key]:
                reader.problem(f"role {key} '{scope[key]}' is not in the file or the directory")
        key = (role, scope["area"], scope["school"], scope["agency"])
        if _first_use(seen, "|".join(str(k) for k in key), reader, "the same role"):
            entries.append(RoleEntry(role, *key[1:], line=row.line))
    if len(problems.found) > before:
        return None
    return tuple(entries)


# --- import --------------------------------------------------------------------------------


def import_directory(session: Session, *, text: str, now: datetime, actor_person_id: int | None = None) -> ImportReport:
    """Create or update every row in the file; all or nothing.

    Raises Invalid (every problem, nothing saved) or Conflict (a clash the file cannot see, such as
    an area name already used by another area code). An import that changes nothing writes no
    audit event, so importing the same file twice leaves the database exactly as it was.
    """
    directory = parse_directory(
        text,
        known_areas=set(session.scalars(select(Area.code))),
        known_schools=set(session.scalars(select(School.urn))),
        known_agencies=set(session.scalars(select(Agency.code))),
    )
    report = ImportReport()
    try:
        _import_areas(session, directory.areas, report.areas)
        _import_schools(session, directory.schools, report.schools)
        _import_agencies(session, directory.agencies, report.agencies)
        _import_people(session, directory.people, report.people)
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"the directory could not be saved: {exc.orig}") from exc
    if report.changed:
        audit.record(
            session,
            now=now,
            action="directory.imported",
            actor_person_id=actor_person_id,
            record_type="directory",
            counts=report.as_dict(),
        )
    return report


def _apply(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


def _upsert(session: Session, existing: dict[str, Any], model: type, key: str, values: dict, counts: Counts):
    row = existing.get(values[key])
    if row is None:
        row = model(**values)
        session.add(row)
        existing[values[key]] = row
        counts.created += 1
    elif _apply(row, values):
        counts.updated += 1
    else:
        counts.unchanged += 1
    return row


def _import_areas(session: Session, entries: tuple[AreaEntry, ...], counts: Counts) -> None:
    existing = {a.code: a for a in session.scalars(select(Area))}
    for entry in entries:
        _upsert(session, existing, Area, "code", {"code": entry.code, "name": entry.name}, counts)
    session.flush()


def _import_schools(session: Session, entries: tuple[SchoolEntry, ...], counts: Counts) -> None:
    area_ids = dict(session.execute(select(Area.code, Area.id)).all())
    existing = {s.urn: s for s in session.scalars(select(School).where(School.urn.in_([e.urn for e in entries])))}
    for e in entries:
        values = {
            "urn": e.urn,
            "name": e.name,
            "phase": e.phase.value,
            "area_id": area_ids[e.area],
            "email": e.email,
            "safeguarding_email": e.safeguarding_email,
        }
        _upsert(session, existing, School, "urn", values, counts)
    session.flush()


def _import_agencies(session: Session, entries: tuple[AgencyEntry, ...], counts: Counts) -> None:
    existing = {a.code: a for a in session.scalars(select(Agency))}
    for e in entries:
        values = {
            "code": e.code,
            "name": e.name,
            "mailbox": e.mailbox,
            "sharing_group": e.sharing_group.value,
            "attach_papers": e.attach_papers,
            "lead_contact_email": e.lead_contact_email,
        }
        _upsert(session, existing, Agency, "code", values, counts)
    session.flush()


def _import_people(session: Session, entries: tuple[PersonEntry, ...], counts: Counts) -> None:
    ids = {
        "area": dict(session.execute(select(Area.code, Area.id)).all()),
        "school": dict(session.execute(select(School.urn, School.id)).all()),
        "agency": dict(session.execute(select(Agency.code, Agency.id)).all()),
    }
    existing = {
        p.email: p
        for p in session.scalars(
            select(Person).where(Person.email.in_([e.email for e in entries])).options(selectinload(Person.grants))
        )
    }
    for e in entries:
        wanted = {
            (r.role.value, ids["area"].get(r.area), ids["school"].get(r.school), ids["agency"].get(r.agency))
            for r in e.roles
        }
        values = {"name": e.name, "email": e.email, "organisation": e.organisation, "job_title": e.job_title}
        person = existing.get(e.email)
        if person is None:
            person = Person(**values, grants=[_grant(key) for key in sorted(wanted, key=str)])
            session.add(person)
            counts.created += 1
            continue
        fields_changed = _apply(person, values)
        grants_changed = _set_grants(person, wanted)
        if fields_changed or grants_changed:
            counts.updated += 1
        else:
            counts.unchanged += 1


def _grant(key: tuple[str, int | None, int | None, int | None]) -> RoleGrant:
    role, area_id, school_id, agency_id = key
    return RoleGrant(role=role, area_id=area_id, school_id=school_id, agency_id=agency_id)


def _set_grants(person: Person, wanted: set[tuple]) -> bool:
    current = {(g.role, g.area_id, g.school_id, g.agency_id): g for g in person.grants}
    for key in current.keys() - wanted:
        person.grants.remove(current[key])
    for key in sorted(wanted - current.keys(), key=str):
        person.grants.append(_grant(key))
    return current.keys() != wanted


# --- export --------------------------------------------------------------------------------


class _FlowRow(dict):
    """Written on one line, as in the documented format."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        # Indent lists under their key ("  - "), as in the documented format.
        return super().increase_indent(flow, False)


_Dumper.add_representer(
    _FlowRow, lambda dumper, row: dumper.represent_mapping("tag:yaml.org,2002:map", row, flow_style=True)
)


def export_directory(session: Session) -> str:
    """The whole directory in the import format; importing it back changes nothing."""
    areas = session.scalars(select(Area).order_by(Area.code)).all()
    schools = session.scalars(select(School).order_by(School.urn)).all()
    agencies = session.scalars(select(Agency).order_by(Agency.code)).all()
    people = session.scalars(select(Person).order_by(Person.email).options(selectinload(Person.grants))).all()
    area_codes = {a.id: a.code for a in areas}
    school_urns = {s.id: s.urn for s in schools}
    agency_codes = {a.id: a.code for a in agencies}

    def role_row(grant: RoleGrant) -> _FlowRow:
        row = _FlowRow(role=str(grant.role))
        if grant.area_id is not None:
            row["area"] = area_codes[grant.area_id]
        if grant.school_id is not None:
            row["school"] = school_urns[grant.school_id]
        if grant.agency_id is not None:
            row["agency"] = agency_codes[grant.agency_id]
        return row

    def person_row(person: Person) -> dict:
        row: dict[str, Any] = {"name": person.name, "email": person.email}
        if person.organisation:
            row["organisation"] = person.organisation
        if person.job_title:
            row["job_title"] = person.job_title
        roles = sorted((role_row(g) for g in person.grants), key=lambda r: list(r.values()))
        if roles:
            row["roles"] = roles
        return row

    def agency_row(agency: Agency) -> _FlowRow:
        row = _FlowRow(
            code=agency.code,
            name=agency.name,
            mailbox=agency.mailbox,
            sharing_group=agency.sharing_group,
            attach_papers=agency.attach_papers,
        )
        if agency.lead_contact_email:
            row["lead_contact_email"] = agency.lead_contact_email
        return row

    document = {
        "areas": [_FlowRow(code=a.code, name=a.name) for a in areas],
        "schools": [
            _FlowRow(
                urn=s.urn,
                name=s.name,
                phase=s.phase,
                area=area_codes[s.area_id],
                email=s.email,
                safeguarding_email=s.safeguarding_email,
            )
            for s in schools
        ],
        "agencies": [agency_row(a) for a in agencies],
        "people": [person_row(p) for p in people],
    }
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)
