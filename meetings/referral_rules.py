"""Which referral status may follow which (DESIGN.md section 3), and what each means to a school."""

from __future__ import annotations

from meetings.models import ReferralStatus as S

OPEN_STATUSES = frozenset(
    {S.draft, S.submitted, S.information_requested, S.accepted, S.discussed, S.actions_open, S.review}
)

ALLOWED: dict[S, frozenset[S]] = {
    S.draft: frozenset({S.submitted}),
    S.submitted: frozenset({S.information_requested, S.accepted, S.signposted, S.declined}),
    S.information_requested: frozenset({S.submitted}),
    S.accepted: frozenset({S.discussed}),
    S.discussed: frozenset({S.actions_open, S.review, S.closed}),
    S.actions_open: frozenset({S.review, S.closed}),
    S.review: frozenset({S.accepted, S.closed}),
    S.signposted: frozenset(),
    S.declined: frozenset(),
    S.closed: frozenset(),
    S.withdrawn: frozenset(),
}

# Shown to schools in emails and on the status page; never more than the status itself.
LABELS: dict[S, str] = {
    S.draft: "Draft",
    S.submitted: "Waiting for triage",
    S.information_requested: "More information needed",
    S.accepted: "Listed for a clinic",
    S.signposted: "Signposted to another service",
    S.declined: "Not taken to clinic",
    S.discussed: "Discussed at clinic",
    S.actions_open: "Actions in progress",
    S.review: "Due for review",
    S.closed: "Closed",
    S.withdrawn: "Withdrawn",
}

# What the school needs to do, if anything, at each status.
SCHOOL_TODO: dict[S, str] = {
    S.draft: "Finish and submit the referral.",
    S.information_requested: "Answer the Education Inclusion Partner's question on the referral page.",
}


def can_move(current: str, wanted: str) -> bool:
    current_status, wanted_status = S(current), S(wanted)
    if wanted_status == S.withdrawn:
        return current_status in OPEN_STATUSES
    return wanted_status in ALLOWED[current_status]
