"""What the referral pages draw: a referral's data turned into rows, cards and labels for the templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from meetings import referrals
from meetings.models import Referral, ReferralStatus
from meetings.referral_form import PAGES, Field, Page, check_page
from meetings.referral_rules import LABELS

# Checkbox options that mean "none of the others"; GOV.UK shows them last, after "or".
EXCLUSIVE_OPTIONS = frozenset({"none", "none_identified"})
TAG_CLASSES = {
    ReferralStatus.draft: "govuk-tag--grey",
    ReferralStatus.submitted: "govuk-tag--blue",
    ReferralStatus.information_requested: "govuk-tag--orange",
    ReferralStatus.accepted: "govuk-tag--green",
    ReferralStatus.discussed: "govuk-tag--turquoise",
    ReferralStatus.actions_open: "govuk-tag--turquoise",
    ReferralStatus.review: "govuk-tag--yellow",
    ReferralStatus.signposted: "govuk-tag--purple",
    ReferralStatus.declined: "govuk-tag--grey",
    ReferralStatus.closed: "govuk-tag--grey",
    ReferralStatus.withdrawn: "govuk-tag--grey",
}


def child_name(referral: Referral) -> str:
    if referral.child is not None:
        return f"{referral.child.legal_first_name} {referral.child.legal_surname}"
    typed = (referral.draft_answers or {}).get("child", {})
    return " ".join(str(typed.get(n) or "").strip() for n in ("legal_first_name", "legal_surname")).strip()


@dataclass(frozen=True)
class ListedReferral:
    referral: Referral
    child_name: str
    status_label: str
    tag_classes: str
    next_meeting: Any
    open_actions: int
    todo: str


def timeline_entry(change) -> dict[str, Any]:
    to = ReferralStatus(change.to_status)
    if to == ReferralStatus.information_requested:
        note_label = "Question from the Education Inclusion Partner"
    elif to == ReferralStatus.submitted and change.from_status == ReferralStatus.information_requested:
        note_label = "The school's answer"
    elif to in (ReferralStatus.declined, ReferralStatus.withdrawn):
        note_label = "Reason"
    else:
        note_label = "Note"
    label = "Started" if to == ReferralStatus.draft else LABELS[to]
    if to == ReferralStatus.submitted:
        label = "Answer sent" if change.from_status == ReferralStatus.information_requested else "Submitted"
    return {"label": label, "at": change.changed_at, "note": change.note, "note_label": note_label}


@dataclass
class FieldView:
    """One question as the template draws it: what was typed, its problem, and questions revealed by it."""

    field: Field
    value: Any  # a string; a list for checkboxes; {"day", "month", "year"} for dates
    error: str | None
    options: tuple[tuple[str, str], ...]
    hint: str
    error_parts: tuple[str, ...] = ()
    revealed: dict[str, list[FieldView]] = field(default_factory=dict)

    @property
    def href(self) -> str:
        if self.field.kind == "date":
            return f"#{self.field.name}-{(self.error_parts or ('day',))[0]}"
        return f"#{self.field.name}"

    def option_items(self) -> list[tuple[str, str, bool]]:
        """(code, label, exclusive) in the order shown."""
        plain = [(c, label, False) for c, label in self.options if c not in EXCLUSIVE_OPTIONS]
        if self.field.kind != "checkboxes":
            return [(c, label, False) for c, label in self.options]
        return plain + [(c, label, True) for c, label in self.options if c in EXCLUSIVE_OPTIONS]


def date_error_parts(f: Field, answers: dict[str, Any], error: str | None) -> tuple[str, ...]:
    if not error:
        return ()
    parts = ("day", "month", "year")
    missing = tuple(p for p in parts if not str(answers.get(f"{f.name}-{p}", "")).strip())
    return missing if 0 < len(missing) < 3 else parts


def field_views(page: Page, answers: dict[str, Any], errors: dict[str, str], reasons) -> list[FieldView]:
    views: dict[str, FieldView] = {}
    for f in page.fields:
        if f.kind == "date":
            value: Any = {p: str(answers.get(f"{f.name}-{p}", "")) for p in ("day", "month", "year")}
        elif f.kind == "checkboxes":
            raw = answers.get(f.name) or []
            value = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        else:
            value = str(answers.get(f.name) or "")
        views[f.name] = FieldView(
            field=f,
            value=value,
            error=errors.get(f.name),
            options=reasons if f.name == "reasons" else f.options,
            hint=f.hint,
            error_parts=date_error_parts(f, answers, errors.get(f.name)) if f.kind == "date" else (),
        )
    shown = []
    for f in page.fields:
        view = views[f.name]
        parent = views.get(f.when[0]) if f.when else None
        if parent is not None and parent.field.kind == "radios" and len(f.when[1]) == 1:
            # Revealed under the one answer that needs it (GOV.UK conditional reveal).
            parent.revealed.setdefault(f.when[1][0], []).append(view)
            continue
        if parent is not None:
            chosen = dict(parent.options)
            which = " or ".join(f"‘{chosen.get(code, code)}’" for code in f.when[1])
            view.hint = f"Answer if you selected {which}." + (f" {f.hint}" if f.hint else "")
        shown.append(view)
    return shown


def flatten(views: list[FieldView]) -> list[FieldView]:
    flat = []
    for view in views:
        flat.append(view)
        for children in view.revealed.values():
            flat.extend(flatten(children))
    return flat


def readable(f: Field, value: Any, options) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"text": "Not given"}
    if f.kind == "date":
        return {"text": long_date(value)}
    labels = dict(options)
    if f.kind in ("radios", "select"):
        return {"text": labels.get(value, value)}
    if f.kind == "checkboxes":
        return {"html": Markup("<br>").join(labels.get(v, v) for v in value)}
    if f.kind == "textarea":
        return {"html": Markup("<br>").join(str(value).splitlines())}
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return {"text": str(value.to_integral_value())}  # "0 days", not "0.0 days"
    return {"text": str(value)}


def long_date(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


def answer_cards(session: Session, referral: Referral, *, today: date, editable: bool) -> list[dict[str, Any]]:
    """One summary card per page: its answers in words, and where to change each."""
    reasons = referrals.reason_options(session)
    cards = []
    for page in PAGES:
        raw = (referral.draft_answers or {}).get(page.key)
        answers = raw or {}
        result = check_page(page, answers, today=today, reasons=reasons)
        views = {v.field.name: v for v in flatten(field_views(page, answers, result.errors, reasons))}
        rows = []
        for f in page.fields:
            if f.when and str(answers.get(f.when[0], "")) not in f.when[1]:
                continue  # not asked, given the answer it depends on
            if f.name in result.errors:
                typed = views[f.name].value
                empty = not typed or (isinstance(typed, dict) and not any(typed.values()))
                value = {"text": "Not answered" if empty else f"Needs changing: {result.errors[f.name]}"}
            else:
                value = readable(f, result.values.get(f.name), reasons if f.name == "reasons" else f.options)
            row: dict[str, Any] = {"key": {"text": f.label}, "value": value}
            if editable:
                href = f"/referrals/{referral.id}/pages/{page.key}?return_to=check{views[f.name].href}"
                row["actions"] = {"items": [{"href": href, "text": "Change", "visuallyHiddenText": f.label.lower()}]}
            rows.append(row)
        cards.append({"page": page, "rows": rows, "complete": raw is not None and result.ok})
    return cards
