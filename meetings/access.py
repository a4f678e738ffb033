"""Who may see or do what. Every page, download, PDF and email builder asks here; default deny.

Rules are listed in RULES: an action is allowed when the principal holds one of the roles
named for it (scoped rules on particular records arrive with the records' own services).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agencies.models import Person, Role
from caseconf.errors import Forbidden


@dataclass(frozen=True)
class Grant:
    role: Role
    area_id: int | None = None
    school_id: int | None = None
    agency_id: int | None = None


@dataclass(frozen=True)
class Principal:
    person_id: int
    name: str
    email: str
    grants: tuple[Grant, ...] = field(default_factory=tuple)

    @property
    def roles(self) -> set[Role]:
        return {grant.role for grant in self.grants}

    def scopes(self, role: Role) -> list[Grant]:
        return [grant for grant in self.grants if grant.role == role]


def principal_for(person: Person) -> Principal:
    return Principal(
        person_id=person.id,
        name=person.name,
        email=person.email,
        grants=tuple(
            Grant(Role(g.role), area_id=g.area_id, school_id=g.school_id, agency_id=g.agency_id) for g in person.grants
        ),
    )


# Actions any signed-in person may take, whatever their roles (even none yet).
SIGNED_IN_ACTIONS = frozenset({"home.view"})

# action -> the roles that may take it. Anything not listed is refused.
RULES: dict[str, frozenset[Role]] = {
    "admin.view": frozenset({Role.admin}),
    "directory.manage": frozenset({Role.admin}),
    "triage.view": frozenset({Role.eip}),
    "clinic.coordinate": frozenset({Role.coordinator, Role.eip}),
    "referral.create": frozenset({Role.school_referrer}),
    "invitations.view": frozenset({Role.agency_rep, Role.eip, Role.coordinator}),
    "audit.view": frozenset({Role.data_protection_officer, Role.admin}),
}


def can(principal: Principal | None, action: str) -> bool:
    if principal is None:
        return False
    if action in SIGNED_IN_ACTIONS:
        return True
    allowed = RULES.get(action)
    return bool(allowed and principal.roles & allowed)


def require(principal: Principal | None, action: str) -> None:
    if not can(principal, action):
        raise Forbidden(action)
